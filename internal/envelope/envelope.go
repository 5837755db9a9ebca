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
	"errors"
	"fmt"
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
