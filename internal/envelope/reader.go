package envelope

import (
	"crypto/cipher"
	"crypto/subtle"
	"fmt"
	"io"
)

// Opener decrypts the segments of one blob.
type Opener struct {
	aead   cipher.AEAD
	prefix []byte
	seg    int
}

// Open checks that the header was made with key for binding b (the key
// commitment) and returns an Opener for its segments.
func (h *Header) Open(key []byte, b Binding) (*Opener, error) {
	aead, commitment, err := deriveKeys(key, h, b)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(commitment, h.commitment()) != 1 {
		return nil, ErrAuth
	}
	return &Opener{aead: aead, prefix: h.prefix(), seg: h.SegmentSize}, nil
}

// NewReader returns the plaintext of a document of plainSize bytes whose
// segments are read from src, src being positioned at the start of segment
// first. Segments are decrypted one at a time as the plaintext is read; a
// reader stopped early never reads further. Reading to the end also checks
// that src holds nothing after the last segment.
//
// A Read with room for a whole sealed segment (its plaintext and tag) gets
// the segment read and decrypted in place in its own buffer, without a
// copy; only a segment that does not fit goes through the reader's own.
func (o *Opener) NewReader(src io.Reader, first int64, plainSize int64) io.Reader {
	r := &reader{o: o, src: src, index: first, size: plainSize, count: SegmentCount(plainSize, o.seg)}
	copy(r.nonce[:prefixSize], o.prefix)
	return r
}

type reader struct {
	o     *Opener
	src   io.Reader
	index int64 // next segment to read
	count int64 // segments in the document
	size  int64
	nonce [nonceSize]byte
	// in is the scratch of a segment too large for the caller's buffer,
	// taken when first needed and given back once the reader has failed or
	// read its last segment (a reader stopped early leaves its scratch to
	// the collector).
	in     []byte
	pooled bool
	plain  []byte // unread plaintext of the current segment, in in
	err    error
}

func (r *reader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.plain) > 0 {
			k := copy(p[n:], r.plain)
			r.plain = r.plain[k:]
			n += k
			r.releaseIfDone()
			continue
		}
		if r.err != nil {
			break
		}
		var k int
		k, r.err = r.next(p[n:])
		n += k
		r.releaseIfDone()
	}
	if n > 0 || len(p) == 0 {
		return n, nil
	}
	return 0, r.err
}

// releaseIfDone gives the scratch back once no segment needs it any more:
// the reader failed, or the last segment's plaintext is all read.
func (r *reader) releaseIfDone() {
	if r.pooled && len(r.plain) == 0 && (r.err != nil || r.index >= r.count) {
		releaseSegmentBuffer(r.in)
		r.in, r.pooled = nil, false
	}
}

// next decrypts the next segment: into dst when it fits there whole,
// returning its plaintext size, or else into r.in, setting r.plain. After
// the last segment it returns io.EOF.
func (r *reader) next(dst []byte) (int, error) {
	for {
		if r.index >= r.count {
			// Past the last segment: anything more in src is tampering.
			var one [1]byte
			if n, _ := io.ReadFull(r.src, one[:]); n > 0 {
				return 0, ErrAuth
			}
			return 0, io.EOF
		}
		sealed := segmentPlainSize(r.size, r.o.seg, r.index) + TagSize
		direct := len(dst) >= int(sealed)
		in := dst
		if !direct {
			if r.in == nil {
				r.in, r.pooled = segmentBuffer(r.o.seg)
			}
			in = r.in
		}
		in = in[:sealed]
		if _, err := io.ReadFull(r.src, in); err != nil {
			// Only a source that ended cleanly is a truncated blob: ReadFull
			// then returns io.EOF or io.ErrUnexpectedEOF itself. An error of
			// the source's own (a connection dropped mid-body, which may wrap
			// io.ErrUnexpectedEOF) keeps its kind, so that it is retryable.
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return 0, fmt.Errorf("%w: truncated at segment %d", ErrAuth, r.index)
			}
			return 0, fmt.Errorf("envelope: read segment %d: %w", r.index, err)
		}
		last := r.index == r.count-1
		setCounter(&r.nonce, r.index, last)
		plain, err := r.o.aead.Open(in[:0], r.nonce[:], in, nil)
		if err != nil {
			return 0, fmt.Errorf("%w: segment %d", ErrAuth, r.index)
		}
		r.index++
		switch {
		case len(plain) == 0: // the empty last segment of an empty document
			continue
		case direct:
			return len(plain), nil
		}
		r.plain = plain
		return 0, nil
	}
}
