// Package fsstore keeps blobs as files under a folder: the embedded
// BlobStore of `imago serve`. A blob is written to a temporary file in the
// same folder, fsynced, then renamed into place, so a reader sees either the
// whole previous blob or the whole new one, never a partial write.
package fsstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/imagodocs/imago/internal/docstore"
)

var _ docstore.BlobStore = (*Store)(nil)

// Store is a BlobStore on the local file system.
type Store struct {
	dir string
}

// New returns a Store keeping blobs under dir, which it creates (0700).
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fsstore: create %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// path fans blobs out over 256 folders by the id's first two hex digits.
func (s *Store) path(id docstore.ID) string {
	return filepath.Join(s.dir, string(id[:2]), string(id))
}

// Put writes exactly size bytes of r as the blob of id.
func (s *Store) Put(ctx context.Context, id docstore.ID, r io.Reader, size int64) (err error) {
	const op = "fsstore.Put"
	final := s.path(id)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return docstore.E(op, fmt.Errorf("create folder for %s: %w", id, err))
	}
	tmp, err := os.CreateTemp(filepath.Dir(final), "."+string(id)+".*.tmp")
	if err != nil {
		return docstore.E(op, fmt.Errorf("create temp file for %s: %w", id, err))
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, io.LimitReader(&ctxReader{ctx: ctx, r: r}, size+1))
	if err != nil {
		return docstore.E(op, fmt.Errorf("write blob %s: %w", id, err))
	}
	if n != size {
		return docstore.E(op, fmt.Errorf("blob %s: got %d bytes, expected %d", id, n, size))
	}
	if err := tmp.Sync(); err != nil {
		return docstore.E(op, fmt.Errorf("sync blob %s: %w", id, err))
	}
	if err := tmp.Close(); err != nil {
		return docstore.E(op, fmt.Errorf("close blob %s: %w", id, err))
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return docstore.E(op, fmt.Errorf("rename blob %s: %w", id, err))
	}
	return syncDir(filepath.Dir(final))
}

// syncDir makes a rename durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return docstore.E("fsstore.Put", fmt.Errorf("open %s: %w", dir, err))
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return docstore.E("fsstore.Put", fmt.Errorf("sync %s: %w", dir, err))
	}
	return nil
}

// Get returns length bytes of the blob from offset (to the end if length < 0).
func (s *Store) Get(ctx context.Context, id docstore.ID, offset, length int64) (docstore.BlobReader, error) {
	const op = "fsstore.Get"
	f, err := os.Open(s.path(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, docstore.E(op, docstore.KindNotFound, fmt.Errorf("blob %s: %w", id, err))
		}
		return nil, docstore.E(op, fmt.Errorf("open blob %s: %w", id, err))
	}
	// The size of the file opened: a Put renames a new file into place,
	// which leaves this one as it is.
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, docstore.E(op, fmt.Errorf("stat blob %s: %w", id, err))
	}
	if length < 0 {
		length = 1<<63 - 1 - offset
	}
	return &section{SectionReader: io.NewSectionReader(f, offset, length), f: f, size: info.Size()}, nil
}

type section struct {
	*io.SectionReader
	f    *os.File
	size int64
}

func (s *section) Close() error { return s.f.Close() }

// Size is the size of the whole file (SectionReader.Size is the section's).
func (s *section) Size() int64 { return s.size }

// Delete removes the blob of id.
func (s *Store) Delete(ctx context.Context, id docstore.ID) error {
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return docstore.E("fsstore.Delete", fmt.Errorf("delete blob %s: %w", id, err))
	}
	return nil
}

// ctxReader stops a copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
