package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// droppingSource serves the first n bytes of a blob, then fails the way a
// connection dropped mid-body does: with an error of its own that wraps
// io.ErrUnexpectedEOF.
type droppingSource struct {
	r   io.Reader
	err error
}

func (d *droppingSource) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err == io.EOF {
		return n, d.err
	}
	return n, err
}

// A source that fails mid-blob is not a truncated blob: the reader keeps
// the source's error (which says the backend may be retried) instead of
// calling the blob tampered with.
func TestSourceErrorIsNotTruncation(t *testing.T) {
	const seg = 64
	key := newKey(t)
	plain := randomBytes(t, 5*seg)
	blob := seal(t, key, testBinding, plain, seg)
	h, err := ParseHeader(blob)
	if err != nil {
		t.Fatal(err)
	}
	o, err := h.Open(key, testBinding)
	if err != nil {
		t.Fatal(err)
	}
	dropped := fmt.Errorf("connection dropped: %w", io.ErrUnexpectedEOF)
	cut := blob[HeaderSize : HeaderSize+2*(seg+TagSize)+10]
	_, err = io.ReadAll(o.NewReader(&droppingSource{r: bytes.NewReader(cut), err: dropped}, 0, int64(len(plain))))
	if !errors.Is(err, dropped) || errors.Is(err, ErrAuth) {
		t.Fatalf("source failed mid-blob: %v; want the source's error, not ErrAuth", err)
	}
	// The same bytes from a source that simply ends are a truncated blob.
	mustFail(t, "truncated", key, testBinding, blob[:HeaderSize+2*(seg+TagSize)+10], int64(len(plain)))
}
