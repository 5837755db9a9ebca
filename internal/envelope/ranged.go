package envelope

import (
	"context"
	"fmt"
	"io"
)

// RangeGetter returns the bytes [offset, offset+length) of a blob, or as
// many of them as the blob holds, and the size of the whole blob (S3's
// Content-Range total, a file's size). A blob store's ranged GET is one.
type RangeGetter func(ctx context.Context, offset, length int64) (body io.ReadCloser, blobSize int64, err error)

// Sealed is what the reader of a blob knows of it before fetching it: the
// size of the plaintext, the segment size and what the blob is bound to
// (all from the document's record).
type Sealed struct {
	PlainSize   int64
	SegmentSize int
	Binding     Binding
}

// ReadRange returns the plaintext bytes [offset, offset+length) of the
// blob get reads, fetching only the header and the segments that hold
// them: one request when the range starts in the first segment (header and
// segments are contiguous), two otherwise.
//
// key is called once, after the header has arrived and before the first
// segment is opened, so that a caller may unwrap the data key while the
// blob is being fetched. Its error is returned as is; the caller keeps the
// key's bytes and clears them.
//
// Every read checks the blob's size, as get reports it, against the sealed
// size of the plaintext size and segment size: a blob with bytes appended
// or removed is refused by every read, even of segments it still holds
// whole. A read that reaches the last segment also checks that the blob
// ends right after it (it asks for one byte more than the blob should hold
// and refuses the blob if that byte exists). With the checks of every
// segment, a blob with bytes changed is refused by every read of them.
// Such a blob is an error wrapping ErrAuth; an error of get, or of the
// bytes it returns, is wrapped as it is (so that a dropped connection
// keeps its kind).
func ReadRange(ctx context.Context, get RangeGetter, b Sealed, key func() ([]byte, error), offset, length int64) ([]byte, error) {
	if length == 0 {
		return []byte{}, nil
	}
	span, err := SpanOf(b.PlainSize, b.SegmentSize, offset, length)
	if err != nil {
		return nil, err
	}
	sealedSize := SealedSize(b.PlainSize, b.SegmentSize)
	toEnd := span.BlobOffset+span.BlobLength == sealedSize
	want := span.BlobLength
	if toEnd {
		want++ // a byte that must not be there
	}

	header, body, err := fetchSpan(ctx, get, span, want, sealedSize)
	if err != nil {
		return nil, err
	}
	defer body.Close()

	h, err := ParseHeader(header)
	if err != nil {
		return nil, err
	}
	if h.SegmentSize != b.SegmentSize {
		return nil, fmt.Errorf("%w: the header says segments of %d bytes, the reader %d", ErrAuth, h.SegmentSize, b.SegmentSize)
	}
	k, err := key()
	if err != nil {
		return nil, err
	}
	opener, err := h.Open(k, b.Binding)
	if err != nil {
		return nil, err
	}
	plain := opener.NewReader(body, span.FirstSegment, b.PlainSize)
	if _, err := io.CopyN(io.Discard, plain, span.Skip); err != nil {
		return nil, truncated(err)
	}
	out := make([]byte, length)
	if _, err := io.ReadFull(plain, out); err != nil {
		return nil, truncated(err)
	}
	if toEnd {
		if err := checkEnd(plain, b.PlainSize-(offset+length)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fetchSpan fetches the blob's header and want bytes of its segments from
// span.BlobOffset on: one request when the span starts in the first
// segment (header and segments are contiguous), two otherwise. Each
// answer's blob size is checked against sealedSize. The caller closes
// body.
func fetchSpan(ctx context.Context, get RangeGetter, span Span, want, sealedSize int64) (header []byte, body io.ReadCloser, err error) {
	header = make([]byte, HeaderSize)
	var blobSize int64
	if span.FirstSegment == 0 {
		if body, blobSize, err = get(ctx, 0, HeaderSize+want); err != nil {
			return nil, nil, fmt.Errorf("envelope: get header and segments: %w", err)
		}
		if err := checkSize(blobSize, sealedSize); err != nil {
			body.Close()
			return nil, nil, err
		}
		if err := readFull(body, header, "header"); err != nil {
			body.Close()
			return nil, nil, err
		}
		return header, body, nil
	}
	if err := getFull(ctx, get, header, sealedSize); err != nil {
		return nil, nil, err
	}
	if body, blobSize, err = get(ctx, span.BlobOffset, want); err != nil {
		return nil, nil, fmt.Errorf("envelope: get segments from %d: %w", span.FirstSegment, err)
	}
	if err := checkSize(blobSize, sealedSize); err != nil {
		body.Close()
		return nil, nil, err
	}
	return header, body, nil
}

// checkEnd reads the rest of the last segment's plaintext, the rest bytes
// after a range that ends before the document does; past it the segment
// reader reads one more byte of the blob and fails if there is one.
func checkEnd(plain io.Reader, rest int64) error {
	if rest > 0 {
		if _, err := io.CopyN(io.Discard, plain, rest); err != nil {
			return truncated(err)
		}
	}
	var more [1]byte
	if n, err := plain.Read(more[:]); n != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("%w: bytes after the last segment", ErrAuth)
		}
		return err
	}
	return nil
}

// getFull fetches exactly len(dst) bytes from the start of a blob of
// sealedSize bytes.
func getFull(ctx context.Context, get RangeGetter, dst []byte, sealedSize int64) error {
	rc, blobSize, err := get(ctx, 0, int64(len(dst)))
	if err != nil {
		return fmt.Errorf("envelope: get header: %w", err)
	}
	defer rc.Close()
	if err := checkSize(blobSize, sealedSize); err != nil {
		return err
	}
	return readFull(rc, dst, "header")
}

// checkSize refuses a blob whose size is not the sealed size its record
// implies: bytes were appended to it or cut from it.
func checkSize(blobSize, sealedSize int64) error {
	if blobSize != sealedSize {
		return fmt.Errorf("%w: the blob is %d bytes, its plaintext and segment sizes make %d", ErrAuth, blobSize, sealedSize)
	}
	return nil
}

// readFull reads exactly len(dst) bytes of what: a source that ends early
// is a truncated blob; a source's own error keeps its kind.
func readFull(r io.Reader, dst []byte, what string) error {
	if _, err := io.ReadFull(r, dst); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: truncated in the %s", ErrAuth, what)
		}
		return fmt.Errorf("envelope: read %s: %w", what, err)
	}
	return nil
}

// truncated turns the segment reader's clean end before the range's end
// (io.EOF from CopyN or ReadFull: the document is shorter than its record
// says) into an authentication failure.
func truncated(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: the blob ends before the range does", ErrAuth)
	}
	return err
}
