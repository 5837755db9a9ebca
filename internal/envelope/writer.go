package envelope

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Writer seals a document into a blob as it is written. It holds one
// segment of plaintext: a full segment is sealed only once more data
// arrives, so that Close can mark the true last segment.
type Writer struct {
	dst   io.Writer
	aead  cipher.AEAD
	nonce [nonceSize]byte // prefix in place; counter and flag set per segment
	// buf holds the plaintext of the current segment, with room for its
	// tag: a segment is sealed in place. A segment written whole, with
	// more after it, is sealed straight from the caller's bytes into buf.
	buf    []byte
	pooled bool
	seg    int
	index  int64
	err    error
	closed bool
}

// NewWriter writes a fresh header to dst and returns a Writer for the
// document's plaintext. Close must be called to seal the last segment; it
// does not close dst.
func NewWriter(dst io.Writer, key []byte, b Binding, segmentSize int) (*Writer, error) {
	if segmentSize < MinSegmentSize || segmentSize > MaxSegmentSize {
		return nil, fmt.Errorf("envelope: segment size %d out of range [%d, %d]", segmentSize, MinSegmentSize, MaxSegmentSize)
	}
	h := &Header{Version: Version, SegmentSize: segmentSize}
	copy(h.raw[0:4], magic)
	h.raw[4] = Version
	binary.BigEndian.PutUint32(h.raw[5:9], uint32(segmentSize))
	if _, err := rand.Read(h.raw[9:48]); err != nil { // salt and nonce prefix
		return nil, fmt.Errorf("envelope: random: %w", err)
	}
	aead, commitment, err := deriveKeys(key, h, b)
	if err != nil {
		return nil, err
	}
	copy(h.raw[48:80], commitment)
	if _, err := dst.Write(h.raw[:]); err != nil {
		return nil, fmt.Errorf("envelope: write header: %w", err)
	}
	w := &Writer{dst: dst, aead: aead, seg: segmentSize}
	copy(w.nonce[:prefixSize], h.prefix())
	w.buf, w.pooled = segmentBuffer(segmentSize)
	w.buf = w.buf[:0]
	return w, nil
}

// Write encrypts p. Errors from the destination are sticky.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("envelope: write after close")
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == w.seg {
			if err := w.seal(w.buf, false); err != nil {
				return n, err
			}
		}
		if len(w.buf) == 0 && len(p) > w.seg {
			// A whole segment with more bytes after it, so not the last:
			// sealed from p at once, without a copy into buf first.
			if err := w.seal(p[:w.seg], false); err != nil {
				return n, err
			}
			p = p[w.seg:]
			n += w.seg
			continue
		}
		k := copy(w.buf[len(w.buf):w.seg], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		n += k
	}
	return n, nil
}

// Close seals the last segment. It does not close the destination.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.seal(w.buf, true)
	if w.pooled {
		releaseSegmentBuffer(w.buf)
	}
	w.buf, w.pooled = nil, false
	return err
}

// seal seals the next segment, whose plaintext is plain (w.buf itself, or
// bytes of the caller's when w.buf is empty), into w.buf and writes it.
func (w *Writer) seal(plain []byte, last bool) error {
	if w.index >= maxSegments {
		w.err = errors.New("envelope: document too large for the segment counter")
		return w.err
	}
	setCounter(&w.nonce, w.index, last)
	out := w.aead.Seal(w.buf[:0], w.nonce[:], plain, nil)
	if _, err := w.dst.Write(out); err != nil {
		w.err = fmt.Errorf("envelope: write segment %d: %w", w.index, err)
		return w.err
	}
	w.index++
	w.buf = w.buf[:0]
	return nil
}
