package envelope

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// The fuzz targets' blob is sealed under a fixed test key, so that the
// seeds committed under testdata/fuzz stay valid blobs whatever run
// mutates them; the salt and nonce prefix in each seed's header are what
// the writer drew when it was made.
var (
	fuzzKey   = bytes.Repeat([]byte{0x42}, KeySize)
	fuzzPlain = []byte("The quick brown fox jumps over the lazy dog; passport no. 0123456789, issued 2026.")
	fuzzSeg   = MinSegmentSize // many segments from a short plaintext
)

func fuzzBlob(f *testing.F) []byte { return seal(f, fuzzKey, testBinding, fuzzPlain, fuzzSeg) }

// FuzzParseHeader: ParseHeader never panics; what it accepts is within the
// format's bounds, and a header is only good for the key and binding its
// commitment names.
func FuzzParseHeader(f *testing.F) {
	blob := fuzzBlob(f)
	f.Add(blob[:HeaderSize])
	f.Add(blob[:HeaderSize-1])
	f.Add([]byte("IMGB\x01\x00\x00\x00\x0f"))
	f.Add([]byte("IMGB\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("ParseHeader: %v is not ErrAuth", err)
			}
			return
		}
		if len(b) < HeaderSize || h.Version != Version || h.SegmentSize < MinSegmentSize || h.SegmentSize > MaxSegmentSize {
			t.Fatalf("accepted a %d-byte header with version %d, segment size %d", len(b), h.Version, h.SegmentSize)
		}
		if _, err := h.Open(fuzzKey, Binding{DocumentID: "another document", Tenant: testBinding.Tenant}); !errors.Is(err, ErrAuth) {
			t.Fatalf("a header opened for a binding it was not made for: %v", err)
		}
		if _, err := h.Open(fuzzKey[:KeySize-1], testBinding); err == nil {
			t.Fatal("a header opened under a short key")
		}
	})
}

// FuzzOpenTamperedBlob seals a known plaintext, lets the fuzzer change the
// blob, and reads it back, whole and as the range [off, off+n): the answer
// is ErrAuth, or exactly the original plaintext. Read whole, only the very
// blob the writer made yields it.
func FuzzOpenTamperedBlob(f *testing.F) {
	blob := fuzzBlob(f)
	f.Add(blob, uint16(0), uint16(len(fuzzPlain)))
	f.Add(blob, uint16(20), uint16(13))
	f.Add(blob[:len(blob)-1], uint16(70), uint16(10))
	f.Add(append(bytes.Clone(blob), 0), uint16(0), uint16(1))
	swapped := bytes.Clone(blob)
	s := SegmentOffset(1, fuzzSeg)
	copy(swapped[s:], blob[s+int64(fuzzSeg+TagSize):s+2*int64(fuzzSeg+TagSize)])
	copy(swapped[s+int64(fuzzSeg+TagSize):], blob[s:s+int64(fuzzSeg+TagSize)])
	f.Add(swapped, uint16(16), uint16(32))
	size := int64(len(fuzzPlain))
	f.Fuzz(func(t *testing.T, b []byte, off, n uint16) {
		got, err := open(fuzzKey, testBinding, b, size)
		switch {
		case err != nil && !errors.Is(err, ErrAuth):
			t.Fatalf("whole read: %v is not ErrAuth", err)
		case err == nil && !bytes.Equal(got, fuzzPlain):
			t.Fatalf("whole read of a changed blob gave other plaintext: %q", got)
		case err == nil && int64(len(b)) != SealedSize(size, fuzzSeg):
			t.Fatalf("whole read of a %d-byte blob succeeded; the writer made %d bytes", len(b), SealedSize(size, fuzzSeg))
		}

		start, length := int64(off)%size, 1+int64(n)%size
		length = min(length, size-start)
		span, err := SpanOf(size, fuzzSeg, start, length)
		if err != nil {
			t.Fatalf("SpanOf(%d, %d): %v", start, length, err)
		}
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		o, err := h.Open(fuzzKey, testBinding)
		if err != nil {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("Open: %v is not ErrAuth", err)
			}
			return
		}
		if h.SegmentSize != fuzzSeg {
			t.Fatalf("a header with segment size %d passed the commitment of one with %d", h.SegmentSize, fuzzSeg)
		}
		if span.BlobOffset > int64(len(b)) {
			return
		}
		part := b[span.BlobOffset:min(int64(len(b)), span.BlobOffset+span.BlobLength)]
		r := o.NewReader(bytes.NewReader(part), span.FirstSegment, size)
		buf := make([]byte, span.Skip+length)
		if _, err := io.ReadFull(r, buf); err != nil {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("range read: %v is not ErrAuth", err)
			}
			return
		}
		if !bytes.Equal(buf[span.Skip:], fuzzPlain[start:start+length]) {
			t.Fatalf("range %d+%d of a changed blob gave %q, want %q", start, length, buf[span.Skip:], fuzzPlain[start:start+length])
		}
	})
}
