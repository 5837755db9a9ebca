package client

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// GetOptions tune one download.
type GetOptions struct {
	Progress Progress // told of the bytes received; nil for none
}

// minPartSize is the smallest Range part Get falls back to when the
// server refuses larger ones as too large (413).
const minPartSize = 64 << 10

// downloadState is the sidecar of a FILE.part: which document it holds
// and how far. Done is the contiguous prefix received, Hash the SHA-256
// state over that prefix as it was received, so a resumed Get does not
// ask for those bytes again. It reads them again all the same: the
// SHA-256 checked at the end is of the bytes on disk, never of a record
// of them.
type downloadState struct {
	ID       string `json:"id"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	PartSize int64  `json:"part_size"`
	Done     int64  `json:"done"`
	Hash     []byte `json:"hash"`
}

// Get downloads a document into the file dst. The bytes go to dst+".part"
// first — whole, or in Range parts Parallel at a time — and the file
// takes its name only once the SHA-256 of the bytes read back from the
// .part is the document's. A .part left by an interrupted Get of the same
// document is resumed, unless its prefix no longer reads as it was
// received (then it is downloaded again). When the bytes do not hash to
// the document's SHA-256, Get removes the .part and returns an
// *IntegrityError. Get replaces a file already at dst.
func (c *Client) Get(ctx context.Context, id, dst string, opt GetOptions) (Document, error) {
	d, err := c.statReadable(ctx, id)
	if err != nil {
		return d, err
	}
	progress := orNoProgress(opt.Progress)
	defer progress.Finish()

	partPath, statePath := dst+".part", dst+".part.state"
	dl, err := c.openPart(ctx, d, partPath, statePath)
	if err != nil {
		return d, fmt.Errorf("get %s: %w", id, err)
	}
	defer dl.f.Close()
	progress.Start(d.Size, dl.st.Done)
	dl.progress = progress

	err = dl.run(ctx)
	if err == nil {
		if got := hex.EncodeToString(dl.hash.Sum(nil)); got != d.SHA256 {
			err = &IntegrityError{ID: id, Want: d.SHA256, Got: got}
		}
	}
	var integrity *IntegrityError
	if errors.As(err, &integrity) || IsNotFound(err) {
		// Nothing worth resuming: bad bytes, or a document that is gone.
		dl.f.Close()
		os.Remove(partPath)
		os.Remove(statePath)
		return d, err
	}
	if err != nil {
		return d, fmt.Errorf("get %s: %w (run the same get again to resume)", id, err)
	}
	if err := dl.f.Close(); err != nil {
		return d, fmt.Errorf("get %s: %w", id, err)
	}
	if err := os.Rename(partPath, dst); err != nil {
		return d, fmt.Errorf("get %s: %w", id, err)
	}
	os.Remove(statePath)
	return d, nil
}

// statReadable returns id's metadata, and an error unless its content can
// be read now.
func (c *Client) statReadable(ctx context.Context, id string) (Document, error) {
	d, err := c.Stat(ctx, id)
	if err != nil {
		return d, err
	}
	return d, readable(d)
}

func readable(d Document) error {
	switch d.Status {
	case StatusAvailable:
		return nil
	case StatusFailed:
		return &IngestError{ID: d.ID, Failure: cmp.Or(d.Failure, "no reason given")}
	}
	return fmt.Errorf("document %s is %s, not available yet", d.ID, d.Status)
}

// download is one Get into a .part file.
type download struct {
	c         *Client
	doc       Document
	f         *os.File
	st        downloadState
	hash      hash.Hash
	statePath string
	progress  Progress
}

// openPart opens the .part file, resuming it when its sidecar describes
// this very document and its prefix still reads as it did when it was
// received, else starting it empty.
func (c *Client) openPart(ctx context.Context, d Document, partPath, statePath string) (*download, error) {
	f, err := os.OpenFile(partPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	dl := &download{c: c, doc: d, f: f, hash: sha256.New(), statePath: statePath}
	var st downloadState
	if readJSON(statePath, &st) && st.ID == d.ID && st.SHA256 == d.SHA256 && st.Size == d.Size &&
		st.PartSize > 0 && st.Done >= 0 && st.Done <= d.Size {
		fi, err := f.Stat()
		if err == nil && fi.Size() >= st.Done {
			// The prefix is hashed from disk, and the hash carried on
			// from there. Bytes that changed since they were received (a
			// bad disk, another program) are caught here, before the rest
			// is fetched, and downloaded again; the sidecar is no proof
			// of what the .part holds.
			if _, err := io.Copy(dl.hash, ctxReader{ctx, io.NewSectionReader(f, 0, st.Done)}); err != nil {
				f.Close()
				return nil, fmt.Errorf("read back %s: %w", partPath, err)
			}
			received := sha256.New()
			if received.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash) == nil &&
				bytes.Equal(received.Sum(nil), dl.hash.Sum(nil)) {
				dl.st = st
				return dl, nil
			}
		}
		dl.hash.Reset()
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	dl.st = downloadState{ID: d.ID, SHA256: d.SHA256, Size: d.Size, PartSize: c.opt.PartSize}
	return dl, nil
}

func (dl *download) run(ctx context.Context) error {
	if dl.st.Done == 0 && dl.doc.Size <= dl.st.PartSize {
		err := dl.c.fetch(ctx, dl.doc, 0, -1, dl.writerAt(0), dl.progress)
		if !isStatus(err, http.StatusRequestEntityTooLarge) {
			if err == nil {
				err = dl.advance(dl.doc.Size) // hashed as read back, as every part is
			}
			return err
		}
		// The server's limit is lower than our part size: go by ranges.
	}
	if dl.st.Done == dl.doc.Size {
		return nil
	}
	// The first missing part alone, to learn a part size the server takes.
	for {
		n := min(dl.st.PartSize, dl.doc.Size-dl.st.Done)
		err := dl.c.fetch(ctx, dl.doc, dl.st.Done, n, dl.writerAt(dl.st.Done), dl.progress)
		if isStatus(err, http.StatusRequestEntityTooLarge) && dl.st.PartSize/2 >= minPartSize {
			dl.st.PartSize /= 2
			continue
		}
		if err != nil {
			return err
		}
		if err := dl.advance(dl.st.Done + n); err != nil {
			return err
		}
		break
	}
	return dl.parallel(ctx)
}

// parallel fetches the rest in parts, Parallel at a time; the parts
// received extend the prefix, hashed in order, as they join it.
func (dl *download) parallel(ctx context.Context) error {
	base, ps := dl.st.Done, dl.st.PartSize
	count := int((dl.doc.Size - base + ps - 1) / ps)
	g, gctx := errgroup.WithContext(ctx)
	jobs, finished := make(chan int), make(chan int)
	g.Go(func() error {
		defer close(jobs)
		for i := range count {
			select {
			case jobs <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range dl.c.opt.Parallel {
		g.Go(func() error {
			for i := range jobs {
				off := base + int64(i)*ps
				if err := dl.c.fetch(gctx, dl.doc, off, min(ps, dl.doc.Size-off), dl.writerAt(off), dl.progress); err != nil {
					return err
				}
				select {
				case finished <- i:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		received := make([]bool, count)
		next := 0
		for next < count {
			var i int
			select {
			case i = <-finished:
			case <-gctx.Done():
				return gctx.Err()
			}
			received[i] = true
			for next < count && received[next] {
				next++
			}
			if err := dl.advance(min(base+int64(next)*ps, dl.doc.Size)); err != nil {
				return err
			}
		}
		return nil
	})
	return g.Wait()
}

// advance hashes the .part from the prefix received so far up to end and
// records the new prefix in the sidecar.
func (dl *download) advance(end int64) error {
	if end <= dl.st.Done {
		return nil
	}
	if _, err := io.Copy(dl.hash, io.NewSectionReader(dl.f, dl.st.Done, end-dl.st.Done)); err != nil {
		return permanent(fmt.Errorf("read back %s: %w", dl.f.Name(), err))
	}
	state, err := dl.hash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return permanent(err)
	}
	dl.st.Done, dl.st.Hash = end, state
	return writeJSON(dl.statePath, dl.st)
}

func (dl *download) writerAt(off int64) func() io.Writer {
	return func() io.Writer { return fileWriter{io.NewOffsetWriter(dl.f, off)} }
}

// fileWriter marks errors writing the local file as permanent: another
// attempt of the request would not cure a full disk.
type fileWriter struct{ w io.Writer }

func (fw fileWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if err != nil {
		err = permanent(err)
	}
	return n, err
}

// fetch GETs the document's bytes [off, off+n) — the whole document when
// n is -1 — into the writer newWriter makes for each attempt, retrying.
func (c *Client) fetch(ctx context.Context, d Document, off, n int64, newWriter func() io.Writer, progress Progress) error {
	want := n
	h := http.Header{}
	if n >= 0 {
		h.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+n-1, 10))
	} else {
		want = d.Size
	}
	return c.retry(ctx, func(ctx context.Context) error {
		resp, done, err := c.attempt(ctx, request{method: "GET", url: docPath(d.ID) + "/content", header: h, transfer: true})
		if err != nil {
			return err
		}
		defer done()
		defer resp.Body.Close()
		if n >= 0 {
			wantRange := fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, d.Size)
			if resp.StatusCode != http.StatusPartialContent || !strings.EqualFold(resp.Header.Get("Content-Range"), wantRange) {
				return permanent(fmt.Errorf("range %d-%d: answered %s, Content-Range %q", off, off+n-1, resp.Status, resp.Header.Get("Content-Range")))
			}
		} else if resp.StatusCode != http.StatusOK {
			return permanent(fmt.Errorf("answered %s", resp.Status))
		}
		counted := &countingWriter{w: newWriter(), progress: progress}
		_, err = io.Copy(counted, io.LimitReader(resp.Body, want+1))
		if err == nil && counted.n != want {
			err = fmt.Errorf("bytes %d-%d: received %d bytes, want %d: %w", off, off+want-1, counted.n, want, io.ErrUnexpectedEOF)
		}
		if err != nil {
			progress.Add(-counted.n) // they will be received again
		}
		return err
	})
}

type countingWriter struct {
	w        io.Writer
	n        int64
	progress Progress
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	cw.progress.Add(int64(n))
	return n, err
}

// Download writes a document to w, in order, whole or in Range parts of
// PartSize, each held in memory until it arrived whole so that a retried
// part never writes twice. The SHA-256 is checked at the end: on a
// mismatch the bytes were written all the same and an *IntegrityError is
// returned. Get, which writes into a file, removes them instead.
func (c *Client) Download(ctx context.Context, id string, w io.Writer, opt GetOptions) (Document, error) {
	d, err := c.statReadable(ctx, id)
	if err != nil {
		return d, err
	}
	progress := orNoProgress(opt.Progress)
	defer progress.Finish()
	progress.Start(d.Size, 0)
	sum := sha256.New()
	var buf bytes.Buffer
	attemptBuf := func() io.Writer { buf.Reset(); return &buf }
	ps := c.opt.PartSize
	whole := d.Size <= ps
	if whole {
		err = c.fetch(ctx, d, 0, -1, attemptBuf, progress)
		if whole = !isStatus(err, http.StatusRequestEntityTooLarge); whole && err != nil {
			return d, err
		}
		if whole {
			sum.Write(buf.Bytes())
			if _, err := w.Write(buf.Bytes()); err != nil {
				return d, err
			}
		}
	}
	for off := int64(0); !whole && off < d.Size; {
		n := min(ps, d.Size-off)
		err := c.fetch(ctx, d, off, n, attemptBuf, progress)
		if isStatus(err, http.StatusRequestEntityTooLarge) && ps/2 >= minPartSize {
			ps /= 2
			continue
		}
		if err != nil {
			return d, fmt.Errorf("get %s: %w", id, err)
		}
		sum.Write(buf.Bytes())
		if _, err := w.Write(buf.Bytes()); err != nil {
			return d, err
		}
		off += n
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != d.SHA256 {
		return d, &IntegrityError{ID: id, Want: d.SHA256, Got: got}
	}
	return d, nil
}
