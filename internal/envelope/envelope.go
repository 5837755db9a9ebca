// Package envelope implements Imago's blob format: a document encrypted
// with its own data key as a stream of independently authenticated
// segments, so that memory stays at one segment whatever the document size
// and a byte range can be read by fetching and decrypting only the segments
// that hold it.
//
// The construction follows Tink's AES-GCM-HKDF streaming AEAD and age's
// STREAM. docs/FORMAT.md specifies it byte by byte; in short:
//
//	header   = magic "IMGB" ‖ version (1) ‖ segment size (uint32 BE)
//	           ‖ salt (32) ‖ nonce prefix (7) ‖ key commitment (32)      80 bytes
//	keys     = HKDF-SHA256(ikm = data key, salt = salt,
//	           info = "imago/blob/v1" ‖ header[0:48] ‖ lp(document id) ‖ lp(tenant))
//	           → 64 bytes: segment key (32) ‖ key commitment (32)
//	segment i= AES-256-GCM(segment key, nonce = prefix ‖ uint32 BE i ‖ last?1:0,
//	           plaintext[i*S : (i+1)*S]), no additional data
//
// where lp(x) is a uint32 BE length followed by x. A document of n bytes has
// max(1, ceil(n/S)) segments; only the last may be shorter than S, and an
// empty document is one empty last segment. Binding the document id and the
// tenant into the key derivation means a blob swapped between documents or
// tenants fails its key commitment before any segment is opened; the
// counter and last flag in the nonce catch reordering and truncation; the
// commitment covers every header byte, so a flipped header bit is caught too.
package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

const (
	// Version is the only format version this package writes and reads.
	Version = 1
	// HeaderSize is the size of the blob header in bytes.
	HeaderSize = 80
	// TagSize is the AES-GCM tag added to every segment.
	TagSize = 16
	// DefaultSegmentSize is the plaintext size of every segment but the last.
	DefaultSegmentSize = 64 << 10
	// MinSegmentSize and MaxSegmentSize bound the segment size a header may
	// declare, so a forged header cannot make a reader allocate without limit.
	MinSegmentSize = 16
	MaxSegmentSize = 16 << 20
	// KeySize is the data key size: AES-256.
	KeySize = 32

	magic          = "IMGB"
	saltSize       = 32
	prefixSize     = 7
	commitmentSize = 32
	nonceSize      = 12
	maxSegments    = math.MaxUint32 + 1
)

// ErrAuth is returned for any blob that does not authenticate: a wrong key,
// document or tenant, a tampered header or segment, reordering, truncation
// or trailing data. The causes are deliberately not told apart.
var ErrAuth = errors.New("envelope: blob failed authentication")

// Binding names what a blob belongs to; it is bound into the key derivation.
type Binding struct {
	DocumentID string
	Tenant     string
}

// SegmentCount is the number of segments of a document of plainSize bytes.
func SegmentCount(plainSize int64, segmentSize int) int64 {
	if plainSize <= 0 {
		return 1
	}
	return (plainSize + int64(segmentSize) - 1) / int64(segmentSize)
}

// SealedSize is the size of the blob of a document of plainSize bytes.
func SealedSize(plainSize int64, segmentSize int) int64 {
	return HeaderSize + plainSize + SegmentCount(plainSize, segmentSize)*TagSize
}

// SegmentOffset is the offset in the blob at which segment i starts.
func SegmentOffset(i int64, segmentSize int) int64 {
	return HeaderSize + i*int64(segmentSize+TagSize)
}

// Span describes the part of a blob that holds a plaintext byte range.
type Span struct {
	FirstSegment int64 // index of the first segment holding the range
	BlobOffset   int64 // where that segment starts in the blob
	BlobLength   int64 // bytes of blob from BlobOffset to the end of the last needed segment
	Skip         int64 // plaintext bytes to discard from the first segment
}

// SpanOf maps the plaintext range [offset, offset+length) of a document of
// plainSize bytes to the segments that hold it. The range must lie within
// the document and length must be positive.
func SpanOf(plainSize int64, segmentSize int, offset, length int64) (Span, error) {
	if offset < 0 || length <= 0 || offset+length > plainSize {
		return Span{}, fmt.Errorf("envelope: range %d+%d outside a document of %d bytes", offset, length, plainSize)
	}
	s := int64(segmentSize)
	first := offset / s
	last := (offset + length - 1) / s
	end := SegmentOffset(last, segmentSize) + segmentPlainSize(plainSize, segmentSize, last) + TagSize
	start := SegmentOffset(first, segmentSize)
	return Span{FirstSegment: first, BlobOffset: start, BlobLength: end - start, Skip: offset - first*s}, nil
}

// segmentPlainSize is the plaintext size of segment i.
func segmentPlainSize(plainSize int64, segmentSize int, i int64) int64 {
	n := SegmentCount(plainSize, segmentSize)
	if i < n-1 {
		return int64(segmentSize)
	}
	return plainSize - (n-1)*int64(segmentSize)
}

// Header is a parsed blob header.
type Header struct {
	Version     int
	SegmentSize int
	raw         [HeaderSize]byte
}

// ParseHeader parses the first HeaderSize bytes of a blob. It checks the
// structure only; Open checks that the header belongs to a key and binding.
func ParseHeader(b []byte) (*Header, error) {
	if len(b) < HeaderSize {
		return nil, ErrAuth
	}
	if string(b[0:4]) != magic {
		return nil, fmt.Errorf("%w: not an Imago blob", ErrAuth)
	}
	if b[4] != Version {
		return nil, fmt.Errorf("%w: unsupported format version %d", ErrAuth, b[4])
	}
	seg := binary.BigEndian.Uint32(b[5:9])
	if seg < MinSegmentSize || seg > MaxSegmentSize {
		return nil, fmt.Errorf("%w: segment size %d out of range", ErrAuth, seg)
	}
	h := &Header{Version: int(b[4]), SegmentSize: int(seg)}
	copy(h.raw[:], b[:HeaderSize])
	return h, nil
}

func (h *Header) salt() []byte       { return h.raw[9:41] }
func (h *Header) prefix() []byte     { return h.raw[41:48] }
func (h *Header) commitment() []byte { return h.raw[48:80] }

// deriveKeys returns the segment AEAD and the key commitment for a header.
func deriveKeys(key []byte, h *Header, b Binding) (cipher.AEAD, []byte, error) {
	if len(key) != KeySize {
		return nil, nil, fmt.Errorf("envelope: data key is %d bytes, want %d", len(key), KeySize)
	}
	info := make([]byte, 0, 13+48+8+len(b.DocumentID)+len(b.Tenant))
	info = append(info, "imago/blob/v1"...)
	info = append(info, h.raw[0:48]...)
	info = binary.BigEndian.AppendUint32(info, uint32(len(b.DocumentID)))
	info = append(info, b.DocumentID...)
	info = binary.BigEndian.AppendUint32(info, uint32(len(b.Tenant)))
	info = append(info, b.Tenant...)
	okm, err := hkdf.Key(sha256.New, key, h.salt(), string(info), KeySize+commitmentSize)
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: derive keys: %w", err)
	}
	block, err := aes.NewCipher(okm[:KeySize])
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: %w", err)
	}
	return aead, okm[KeySize:], nil
}

// setCounter writes the segment counter and last flag of a nonce whose
// prefix is already in place.
func setCounter(dst *[nonceSize]byte, i int64, last bool) {
	binary.BigEndian.PutUint32(dst[prefixSize:prefixSize+4], uint32(i))
	dst[nonceSize-1] = 0
	if last {
		dst[nonceSize-1] = 1
	}
}

// Segment buffers (one segment and its tag) of the default segment size
// are reused across writers and readers: a document's worth of them
// would otherwise be allocated, and zeroed, for every upload and download.
var segmentBuffers = sync.Pool{New: func() any {
	b := make([]byte, DefaultSegmentSize+TagSize)
	return &b
}}

// segmentBuffer returns a buffer of segmentSize+TagSize bytes, and whether
// it came from the pool.
func segmentBuffer(segmentSize int) ([]byte, bool) {
	if segmentSize != DefaultSegmentSize {
		return make([]byte, segmentSize+TagSize), false
	}
	return *segmentBuffers.Get().(*[]byte), true
}

func releaseSegmentBuffer(b []byte) {
	b = b[:cap(b)]
	segmentBuffers.Put(&b)
}

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
