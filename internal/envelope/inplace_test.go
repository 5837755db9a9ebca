package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// referenceOpen decrypts a blob straight from docs/FORMAT.md, sharing no
// code with the package: what the Writer makes is the format on disk,
// whichever path (a copy into its buffer, or a segment sealed straight
// from the caller's bytes) sealed each segment.
func referenceOpen(t *testing.T, key []byte, b Binding, blob []byte, n int) []byte {
	t.Helper()
	if len(blob) < 80 || string(blob[:4]) != "IMGB" || blob[4] != 1 {
		t.Fatal("reference: not a version 1 blob")
	}
	s := int(binary.BigEndian.Uint32(blob[5:9]))
	info := append([]byte("imago/blob/v1"), blob[:48]...)
	info = binary.BigEndian.AppendUint32(info, uint32(len(b.DocumentID)))
	info = append(info, b.DocumentID...)
	info = binary.BigEndian.AppendUint32(info, uint32(len(b.Tenant)))
	info = append(info, b.Tenant...)
	okm, err := hkdf.Key(sha256.New, key, blob[9:41], string(info), 64)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(okm[32:], blob[48:80]) {
		t.Fatal("reference: key commitment differs")
	}
	block, _ := aes.NewCipher(okm[:32])
	aead, _ := cipher.NewGCM(block)
	segments := max(1, (n+s-1)/s)
	if want := 80 + n + 16*segments; len(blob) != want {
		t.Fatalf("reference: blob of %d bytes, want %d", len(blob), want)
	}
	var plain []byte
	rest := blob[80:]
	for i := range segments {
		size := min(s, n-i*s) + 16
		nonce := append(bytes.Clone(blob[41:48]), 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(nonce[7:11], uint32(i))
		if i == segments-1 {
			nonce[11] = 1
		}
		if plain, err = aead.Open(plain, nonce, rest[:size], nil); err != nil {
			t.Fatalf("reference: segment %d: %v", i, err)
		}
		rest = rest[size:]
	}
	return plain
}

// TestWritesOfAnySizeMakeTheFormat seals documents around the segment
// boundaries in writes of every shape — the whole document at once, whole
// segments, a segment and a byte, small pieces — and checks each blob
// against the reference decoder.
func TestWritesOfAnySizeMakeTheFormat(t *testing.T) {
	key := newKey(t)
	for _, seg := range []int{MinSegmentSize, 64, DefaultSegmentSize} {
		for _, size := range []int{0, 1, seg - 1, seg, seg + 1, 2 * seg, 2*seg + 1, 5*seg + 3} {
			plain := randomBytes(t, size)
			for _, piece := range []int{size + 1, seg, seg + 1, 2*seg + 1, 7} {
				t.Run(fmt.Sprintf("seg=%d/size=%d/piece=%d", seg, size, piece), func(t *testing.T) {
					var out bytes.Buffer
					w, err := NewWriter(&out, key, testBinding, seg)
					if err != nil {
						t.Fatal(err)
					}
					for p := plain; len(p) > 0; {
						k := min(len(p), piece)
						if n, err := w.Write(p[:k]); n != k || err != nil {
							t.Fatalf("Write: %d, %v", n, err)
						}
						p = p[k:]
					}
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					if got := referenceOpen(t, key, testBinding, out.Bytes(), size); !bytes.Equal(got, plain) {
						t.Fatal("the reference decoder reads other bytes")
					}
				})
			}
		}
	}
}

// TestReadsOfAnySize reads blobs with buffers smaller than a segment, just
// too small for a sealed segment, just large enough, and larger than the
// whole document: the plaintext is the same, and a tampered blob fails
// whatever the buffer.
func TestReadsOfAnySize(t *testing.T) {
	key := newKey(t)
	for _, seg := range []int{MinSegmentSize, 64, DefaultSegmentSize} {
		for _, size := range []int{0, 1, seg, seg + 1, 3*seg - 1, 3 * seg} {
			plain := randomBytes(t, size)
			blob := seal(t, key, testBinding, plain, seg)
			tampered := bytes.Clone(blob)
			tampered[len(tampered)-1] ^= 1
			for _, chunk := range []int{1, seg - 1, seg, seg + TagSize - 1, seg + TagSize, 2*(seg+TagSize) + 1, size + 3*seg} {
				name := fmt.Sprintf("seg=%d/size=%d/chunk=%d", seg, size, chunk)
				got, err := readInChunks(key, blob, size, chunk)
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("%s: read %d bytes, %v", name, len(got), err)
				}
				if _, err := readInChunks(key, tampered, size, chunk); err == nil {
					t.Fatalf("%s: a tampered blob was read", name)
				}
				if _, err := readInChunks(key, append(bytes.Clone(blob), 0), size, chunk); err == nil {
					t.Fatalf("%s: a blob with a byte after its end was read", name)
				}
			}
		}
	}
}

func readInChunks(key, blob []byte, size, chunk int) ([]byte, error) {
	h, err := ParseHeader(blob)
	if err != nil {
		return nil, err
	}
	o, err := h.Open(key, testBinding)
	if err != nil {
		return nil, err
	}
	r := o.NewReader(bytes.NewReader(blob[HeaderSize:]), 0, int64(size))
	var out []byte
	buf := make([]byte, chunk)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestSealAndOpenReuseTheirBuffers: sealing and opening a 1 MiB document
// with the default segment size allocate far less than one segment each
// time (the segment buffers are reused), where a fresh segment buffer per
// writer and reader cost 143 KB per MiB sealed.
func TestSealAndOpenReuseTheirBuffers(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled buffers on purpose")
	}
	key := newKey(t)
	plain := randomBytes(t, 1<<20)
	blob := seal(t, key, testBinding, plain, DefaultSegmentSize)
	out := make([]byte, len(plain))
	perOp := func(f func()) uint64 {
		const rounds = 20
		f()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range rounds {
			f()
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / rounds
	}
	sealed := perOp(func() {
		w, err := NewWriter(io.Discard, key, testBinding, DefaultSegmentSize)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plain)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	})
	opened := perOp(func() {
		h, err := ParseHeader(blob)
		if err != nil {
			t.Fatal(err)
		}
		o, err := h.Open(key, testBinding)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(o.NewReader(bytes.NewReader(blob[HeaderSize:]), 0, int64(len(plain))), out); err != nil {
			t.Fatal(err)
		}
	})
	if limit := uint64(DefaultSegmentSize / 4); sealed > limit || opened > limit {
		t.Fatalf("a 1 MiB seal allocates %d bytes, an open %d; want at most %d", sealed, opened, limit)
	}
}
