package client

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// hashFile reads the file once, in order: its SHA-256, which the stored
// document must have, and the MD5 of each part in have. A listed part is
// trusted only when its ETag is the MD5 of the file's bytes (S3's ETag of
// a part): a part whose PUT was cut may be listed at its full size all
// the same, padded with other bytes. Every other part is dropped from
// have, to be sent again (the new PUT replaces it).
func (u *upload) hashFile(ctx context.Context, have map[int]string) error {
	sum := sha256.New()
	buf := make([]byte, 256<<10)
	read := func(off, n int64, w io.Writer) error {
		got, err := io.CopyBuffer(w, ctxReader{ctx, io.NewSectionReader(u.f, off, n)}, buf)
		if err == nil && got != n {
			err = fmt.Errorf("the file is %d bytes shorter than it was (it changed while it was read)", n-got)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", u.state.Path, err)
		}
		return nil
	}
	if len(have) == 0 {
		if err := read(0, u.size, sum); err != nil {
			return err
		}
	} else {
		for n := 1; n <= u.state.PartCount; n++ {
			etag, listed := have[n]
			want, trusted := md5OfETag(etag)
			w, part := io.Writer(sum), md5.New()
			if trusted {
				w = io.MultiWriter(sum, part)
			}
			if err := read(int64(n-1)*u.state.PartSize, u.partLen(n), w); err != nil {
				return err
			}
			if listed && (!trusted || !bytes.Equal(part.Sum(nil), want)) {
				delete(have, n)
			}
		}
	}
	u.sha256 = hex.EncodeToString(sum.Sum(nil))
	return nil
}

// md5OfETag returns the MD5 an ETag names: S3's ETag of a part is its
// MD5 in hex, between quotes. Any other ETag (the ETag of an object
// uploaded in parts has a "-") names none.
func md5OfETag(etag string) ([]byte, bool) {
	h := strings.Trim(etag, `"`)
	if len(h) != 2*md5.Size {
		return nil, false
	}
	sum, err := hex.DecodeString(h)
	return sum, err == nil
}

// ctxReader stops reading once ctx ends: hashing a large file is long.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
