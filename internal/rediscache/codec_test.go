package rediscache

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

func testAEAD(t testing.TB) cipher.AEAD {
	t.Helper()
	block, err := aes.NewCipher(bytes.Repeat([]byte{7}, SealKeySize))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return aead
}

func TestCodecRoundTrip(t *testing.T) {
	docs := []*docstore.CachedDocument{
		{},
		{Tenant: "t", Descriptor: docstore.Descriptor{Filename: "f", ContentType: "c", Size: 3, SHA256: "s"}, Body: []byte("abc")},
		{Tenant: docstore.Tenant(strings.Repeat("T", 300)), Descriptor: docstore.Descriptor{Filename: "Relevé « 2024 ».pdf", Size: math.MaxInt64}, Body: make([]byte, 70_000)},
		{Descriptor: docstore.Descriptor{Size: -1}}, // encodes; decode rejects it (below)
	}
	for _, aead := range []cipher.AEAD{nil, testAEAD(t)} {
		for i, doc := range docs {
			key := docKey(docstore.NewID())
			val, err := encode(key, doc, aead)
			if err != nil {
				t.Fatal(err)
			}
			wantLen := prefixLen + recordLen(doc)
			if aead != nil {
				wantLen += nonceLen + tagLen
			}
			if len(val) != wantLen || cap(val) != wantLen {
				t.Fatalf("doc %d sealed=%v: value len %d cap %d, want %d", i, aead != nil, len(val), cap(val), wantLen)
			}
			got, err := decode(key, val, aead)
			if doc.Size < 0 {
				if err == nil {
					t.Fatalf("doc %d: a negative size decoded", i)
				}
				continue
			}
			if err != nil {
				t.Fatalf("doc %d sealed=%v: decode: %v", i, aead != nil, err)
			}
			if !sameDoc(got, doc) {
				t.Fatalf("doc %d sealed=%v: round trip changed the document", i, aead != nil)
			}
		}
	}
}

// The body of a hit is a sub-slice of the value read from Redis: no copy.
func TestDecodeDoesNotCopyBody(t *testing.T) {
	for _, aead := range []cipher.AEAD{nil, testAEAD(t)} {
		key := docKey(docstore.NewID())
		val, err := encode(key, &docstore.CachedDocument{Tenant: "t", Body: make([]byte, 1000)}, aead)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decode(key, val, aead)
		if err != nil {
			t.Fatal(err)
		}
		end := &val[len(val)-1]
		if aead != nil {
			end = &val[len(val)-1-tagLen]
		}
		if &got.Body[len(got.Body)-1] != end {
			t.Fatalf("sealed=%v: Body is a copy", aead != nil)
		}
	}
}

func TestDecodeRejectsTampering(t *testing.T) {
	aead := testAEAD(t)
	key := docKey(docstore.NewID())
	doc := &docstore.CachedDocument{Tenant: "t", Descriptor: docstore.Descriptor{Filename: "f"}, Body: []byte("some body")}
	val, err := encode(key, doc, aead)
	if err != nil {
		t.Fatal(err)
	}
	for i := range val {
		bad := bytes.Clone(val)
		bad[i] ^= 0x01
		if _, err := decode(key, bad, aead); err == nil {
			t.Fatalf("flipping a bit of byte %d went unnoticed", i)
		}
	}
	if _, err := decode(docKey(docstore.NewID()), bytes.Clone(val), aead); err == nil {
		t.Fatal("a value opened under another key")
	}
	if _, err := decode(key, bytes.Clone(val[:len(val)-1]), aead); err == nil {
		t.Fatal("a truncated value opened")
	}
}

// FuzzDecode: decode never panics, whatever the value and whether or not
// the reader seals; whatever it accepts re-encodes to the same document.
func FuzzDecode(f *testing.F) {
	aead := testAEAD(f)
	key := "imago:doc:00000000-0000-4000-8000-000000000000"
	doc := &docstore.CachedDocument{Tenant: "tenant", Descriptor: docstore.Descriptor{Filename: "a.pdf", ContentType: "application/pdf", Size: 4, SHA256: "ab"}, Body: []byte("body")}
	for _, a := range []cipher.AEAD{nil, aead} {
		val, err := encode(key, doc, a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(val)
		f.Add(val[:len(val)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{valueVersion})
	f.Add([]byte{valueVersion, 0})
	f.Add([]byte{valueVersion, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{valueVersion, flagSealed, 1, 2, 3})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, val []byte) {
		for _, a := range []cipher.AEAD{nil, aead} {
			got, err := decode(key, bytes.Clone(val), a)
			if err != nil {
				if got != nil {
					t.Fatal("a document and an error")
				}
				continue
			}
			if got.Size < 0 {
				t.Fatalf("accepted a negative size %d", got.Size)
			}
			again, err := encode(key, got, a)
			if err != nil {
				t.Fatal(err)
			}
			back, err := decode(key, again, a)
			if err != nil || !sameDoc(back, got) {
				t.Fatalf("re-encoding an accepted value changed it: %v", err)
			}
		}
	})
}

func BenchmarkDecode1MiB(b *testing.B) {
	for _, aead := range []cipher.AEAD{nil, testAEAD(b)} {
		name := map[bool]string{false: "plain", true: "sealed"}[aead != nil]
		b.Run(name, func(b *testing.B) {
			key := docKey(docstore.NewID())
			val, err := encode(key, &docstore.CachedDocument{Tenant: "t", Body: make([]byte, benchSize)}, aead)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, len(val))
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, val) // decode of a sealed value works in place
				if _, err := decode(key, buf, aead); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// An entry keeps its document's expiry, rounded up to the second so that
// it never answers later than the document may be read; a value written
// before entries had one (version 1) reads as an entry without one.
func TestCodecExpiry(t *testing.T) {
	at := time.Date(2027, 3, 1, 12, 0, 0, 1, time.UTC)
	for _, aead := range []cipher.AEAD{nil, testAEAD(t)} {
		key := docKey(docstore.NewID())
		doc := &docstore.CachedDocument{Tenant: "t", Descriptor: docstore.Descriptor{Size: 2}, Body: []byte("ab"), Expires: at}
		val, err := encode(key, doc, aead)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decode(key, val, aead)
		if err != nil || !got.Expires.Equal(at.Truncate(time.Second).Add(time.Second)) || string(got.Body) != "ab" {
			t.Fatalf("sealed=%v: %+v %v", aead != nil, got, err)
		}
	}
	// Version 1: the record without its expiry.
	v1 := []byte{valueVersion1, 0, 1, 't', 0, 0, 4, 0, 'x', 'y'} // tenant "t", size 2, sha "", body "xy"
	got, err := decode("k", v1, nil)
	if err != nil || !got.Expires.IsZero() || string(got.Body) != "xy" || got.Tenant != "t" {
		t.Fatalf("a version 1 value: %+v %v", got, err)
	}
}
