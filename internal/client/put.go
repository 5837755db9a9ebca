package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/imagodocs/imago/internal/api"
)

// PutOptions describe one document to upload.
type PutOptions struct {
	Filename    string            // default: the file's base name
	ContentType string            // default: from the file name's extension
	Metadata    map[string]string // custom metadata
	Progress    Progress          // told of the bytes sent; nil for none
	// ExpiresIn is the document's retention, a whole number of seconds
	// counted from the upload's first request; zero for the server's
	// default (IMAGO_RETENTION). An upload in parts that Put resumes keeps
	// the retention its first run gave it.
	ExpiresIn time.Duration
}

// Put uploads the file at path and returns the document's metadata once
// the API has stored it (status available). A file up to InlineLimit goes
// in the body of POST /documents; a larger one through POST
// /documents/uploads, as one presigned PUT or, when the API answers
// "multipart", in parallel parts. Put of a file whose multipart upload was
// interrupted resumes it: it sends only the parts the server lacks, as
// long as the file's size and modification time are unchanged, and the
// server holds each of those parts with the MD5 of the file's bytes.
//
// The stored document's SHA-256 must be the file's: when it is not, Put
// returns an *IntegrityError (and leaves the document, which it names).
func (c *Client) Put(ctx context.Context, path string, opt PutOptions) (Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return Document{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Document{}, err
	}
	if !fi.Mode().IsRegular() {
		return Document{}, fmt.Errorf("put %s: not a regular file", path)
	}
	// Checked before any request: the server would refuse it (400) only
	// once the bytes were sent.
	if opt.ExpiresIn < 0 || opt.ExpiresIn%time.Second != 0 {
		return Document{}, fmt.Errorf("put %s: the retention %v is not a whole number of seconds", path, opt.ExpiresIn)
	}
	if opt.Filename == "" {
		opt.Filename = filepath.Base(path)
	}
	if opt.ContentType == "" {
		opt.ContentType = mime.TypeByExtension(filepath.Ext(opt.Filename))
	}
	if opt.ContentType == "" {
		opt.ContentType = "application/octet-stream"
	}
	if opt.Metadata == nil {
		opt.Metadata = map[string]string{}
	}
	progress := orNoProgress(opt.Progress)
	defer progress.Finish()

	abs, err := filepath.Abs(path)
	if err != nil {
		return Document{}, err
	}
	u := &upload{c: c, f: f, size: fi.Size(), opt: opt, progress: progress, stateFile: c.uploadStateFile(abs),
		state: uploadState{Server: c.base, Path: abs, Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}}
	d, err := u.run(ctx)
	if err != nil {
		return d, fmt.Errorf("put %s: %w", path, err)
	}
	return d, nil
}

// upload is one Put in progress.
type upload struct {
	c         *Client
	f         *os.File
	size      int64
	opt       PutOptions
	progress  Progress
	stateFile string
	state     uploadState
	sha256    string // the file's, hex
}

// run resumes the upload an earlier run left, or starts one, and checks
// that the document stored is the file.
func (u *upload) run(ctx context.Context) (Document, error) {
	r, err := u.resume(ctx)
	if err != nil {
		return Document{}, err
	}
	if err := u.hashFile(ctx, r.have); err != nil {
		return Document{}, err
	}
	var d Document
	switch {
	case r.completed != nil:
		d, err = u.c.waitAvailable(ctx, *r.completed)
	case r.pending:
		d, err = u.multipart(ctx, r.have)
	default:
		d, err = u.start(ctx)
	}
	if err != nil {
		return d, err
	}
	// Whatever the path, a part cut short, a part the storage holds other
	// bytes of, or a file that changed on the way ends here rather than
	// in a document reported stored.
	if !strings.EqualFold(d.SHA256, u.sha256) {
		return d, &IntegrityError{ID: d.ID, Want: u.sha256, Got: d.SHA256, Upload: true}
	}
	return d, nil
}

// start uploads the file afresh.
func (u *upload) start(ctx context.Context) (Document, error) {
	if u.size <= u.c.opt.InlineLimit {
		d, err := u.inline(ctx)
		if !isStatus(err, http.StatusRequestEntityTooLarge) {
			return d, err
		}
		// The server's inline limit is lower than ours: upload instead.
	}
	var up api.CreatedUpload
	req := jsonRequest("POST", "/documents/uploads", api.CreateUpload{Filename: u.opt.Filename,
		ContentType: u.opt.ContentType, Size: &u.size, Metadata: u.opt.Metadata, ExpiresIn: u.expiresIn()})
	req.header.Set("Idempotency-Key", uuid.NewString())
	if _, err := u.c.call(ctx, req, &up); err != nil {
		return Document{}, fmt.Errorf("create upload: %w", err)
	}
	if up.Method != api.MethodMultipart {
		return u.presigned(ctx, up)
	}
	if up.PartSize <= 0 || up.PartCount <= 0 || int64(up.PartCount-1)*up.PartSize >= max(u.size, 1) || int64(up.PartCount)*up.PartSize < u.size {
		return Document{}, fmt.Errorf("create upload: the server cut %d bytes into %d parts of %d", u.size, up.PartCount, up.PartSize)
	}
	u.state.ID, u.state.PartSize, u.state.PartCount = up.ID, up.PartSize, up.PartCount
	if err := writeJSON(u.stateFile, u.state); err != nil {
		return Document{}, err
	}
	return u.multipart(ctx, nil)
}

// resumable is what an earlier run of Put left to go on with.
type resumable struct {
	// pending says a multipart upload of this very file is pending; have
	// holds the parts the server lists for it (number → ETag), each of
	// the right size, not yet checked against the file.
	pending bool
	have    map[int]string
	// completed is the document of an upload the earlier run completed
	// but stopped before it could say so.
	completed *Document
}

// resume finds the multipart upload a state file describes, if it is of
// this very file and the server still has it.
func (u *upload) resume(ctx context.Context) (resumable, error) {
	var st uploadState
	if !readJSON(u.stateFile, &st) {
		return resumable{}, nil
	}
	if st.Server != u.state.Server || st.Path != u.state.Path || st.Size != u.state.Size || st.ModTime != u.state.ModTime || st.ID == "" {
		os.Remove(u.stateFile) // the file changed: its old upload is of other bytes
		return resumable{}, nil
	}
	u.state = st
	var parts api.Parts
	_, err := u.c.call(ctx, request{method: "GET", url: docPath(st.ID) + "/parts"}, &parts)
	switch {
	case isStatus(err, http.StatusConflict):
		// Not a pending multipart upload any more: the last run completed
		// it but stopped before it could say so.
		d, err := u.c.Stat(ctx, st.ID)
		os.Remove(u.stateFile)
		if err == nil && d.Size == u.size && d.Status != StatusFailed {
			return resumable{completed: &d}, nil
		}
		return resumable{}, nil
	case IsNotFound(err):
		os.Remove(u.stateFile) // deleted or expired: start again
		return resumable{}, nil
	case err != nil:
		return resumable{}, fmt.Errorf("resume upload %s: %w", st.ID, err)
	}
	have := map[int]string{}
	for _, p := range parts.Parts {
		if p.Number >= 1 && p.Number <= st.PartCount && p.Size == u.partLen(p.Number) && p.ETag != "" {
			have[p.Number] = p.ETag
		}
	}
	return resumable{pending: true, have: have}, nil
}

// expiresIn is the retention to send, in seconds; nil for none.
func (u *upload) expiresIn() *int64 {
	if u.opt.ExpiresIn <= 0 {
		return nil
	}
	secs := int64(u.opt.ExpiresIn / time.Second)
	return &secs
}

// partLen is the length of part n (1-based): part_size, but the last.
func (u *upload) partLen(n int) int64 {
	off := int64(n-1) * u.state.PartSize
	return min(u.state.PartSize, u.size-off)
}

func (u *upload) section(off, n int64) func() io.Reader {
	return func() io.Reader { return io.NewSectionReader(u.f, off, n) }
}

func (u *upload) inline(ctx context.Context) (Document, error) {
	h := http.Header{"Content-Type": {u.opt.ContentType}, "Idempotency-Key": {uuid.NewString()}}
	for k, v := range u.opt.Metadata {
		h.Set("X-Imago-Meta-"+k, v)
	}
	if secs := u.expiresIn(); secs != nil {
		h.Set(api.HeaderExpiresIn, strconv.FormatInt(*secs, 10))
	}
	u.progress.Start(u.size, 0)
	var d Document
	_, err := u.c.call(ctx, request{method: "POST", url: "/documents?filename=" + url.QueryEscape(u.opt.Filename),
		header: h, body: u.section(0, u.size), size: u.size, transfer: true, progress: u.progress}, &d)
	if err != nil {
		return Document{}, err
	}
	return u.c.waitAvailable(ctx, d)
}

func (u *upload) presigned(ctx context.Context, up api.CreatedUpload) (Document, error) {
	if up.UploadURL == "" {
		return Document{}, fmt.Errorf("create upload: the answer has no upload_url (method %q)", up.Method)
	}
	u.progress.Start(u.size, 0)
	err := u.c.retry(ctx, func(ctx context.Context) error {
		resp, done, err := u.c.attempt(ctx, request{method: cmp.Or(up.Method, api.MethodPut), url: up.UploadURL, header: headerOf(up.Headers),
			body: u.section(0, u.size), size: u.size, transfer: true, progress: u.progress})
		if err != nil {
			return err
		}
		defer done()
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	})
	if err != nil {
		return Document{}, fmt.Errorf("upload %s: %w", up.ID, err)
	}
	return u.c.waitAvailable(ctx, Document{ID: up.ID, Size: u.size, Status: StatusPending})
}

// multipart sends every part the server does not have (have: number →
// ETag) with Parallel workers, then completes the upload.
func (u *upload) multipart(ctx context.Context, have map[int]string) (Document, error) {
	id, count := u.state.ID, u.state.PartCount
	etags := make([]string, count+1)
	var missing []int
	var already int64
	for n := 1; n <= count; n++ {
		if etag, ok := have[n]; ok {
			etags[n] = etag
			already += u.partLen(n)
		} else {
			missing = append(missing, n)
		}
	}
	u.progress.Start(u.size, already)

	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan api.PresignedPart)
	g.Go(func() error { // presign in batches, as the workers need them
		defer close(jobs)
		for len(missing) > 0 {
			batch := missing[:min(len(missing), api.MaxPartsPerRequest, 8*u.c.opt.Parallel)]
			missing = missing[len(batch):]
			urls, err := u.presign(gctx, batch)
			if err != nil {
				return err
			}
			for _, p := range urls {
				select {
				case jobs <- p:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		}
		return nil
	})
	for range u.c.opt.Parallel {
		g.Go(func() error {
			for p := range jobs {
				etag, err := u.sendPart(gctx, p)
				if err != nil {
					return err
				}
				etags[p.Number] = etag
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Document{}, fmt.Errorf("upload %s in parts: %w (run the same put again to resume)", id, err)
	}

	parts := make([]api.CompletedPart, 0, count)
	for n := 1; n <= count; n++ {
		parts = append(parts, api.CompletedPart{Number: n, ETag: etags[n]})
	}
	var d Document
	complete := jsonRequest("POST", docPath(id)+"/complete", api.Complete{Parts: parts})
	complete.slow = true // assembling the parts may take minutes
	_, err := u.c.call(ctx, complete, &d)
	if isStatus(err, http.StatusConflict) {
		// A retried complete whose first attempt went through.
		if d, err = u.c.Stat(ctx, id); err == nil && d.Status == StatusPending && d.Size != u.size {
			err = fmt.Errorf("document %s is %d bytes, not %d", id, d.Size, u.size)
		}
	}
	if err != nil {
		return Document{}, fmt.Errorf("complete upload %s: %w", id, err)
	}
	os.Remove(u.stateFile)
	return u.c.waitAvailable(ctx, d)
}

func (u *upload) presign(ctx context.Context, numbers []int) ([]api.PresignedPart, error) {
	var out api.PresignedParts
	if _, err := u.c.call(ctx, jsonRequest("POST", docPath(u.state.ID)+"/parts", api.PresignParts{Numbers: numbers}), &out); err != nil {
		return nil, fmt.Errorf("presign parts: %w", err)
	}
	if len(out.Parts) != len(numbers) {
		return nil, fmt.Errorf("presign parts: asked for %d URLs, got %d", len(numbers), len(out.Parts))
	}
	return out.Parts, nil
}

// sendPart PUTs one part and returns its ETag. A URL that expired on the
// way (403) is presigned again, a few times.
func (u *upload) sendPart(ctx context.Context, p api.PresignedPart) (string, error) {
	off, n := int64(p.Number-1)*u.state.PartSize, u.partLen(p.Number)
	for renewals := 0; ; renewals++ {
		var etag string
		err := u.c.retry(ctx, func(ctx context.Context) error {
			resp, done, err := u.c.attempt(ctx, request{method: cmp.Or(p.Method, api.MethodPut), url: p.URL, header: headerOf(p.Headers),
				body: u.section(off, n), size: n, transfer: true, progress: u.progress})
			if err != nil {
				return err
			}
			defer done()
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if etag = resp.Header.Get("ETag"); etag == "" && err == nil {
				err = permanent(errors.New("the answer has no ETag"))
			}
			return err
		})
		if isStatus(err, http.StatusForbidden) && renewals < 2 {
			urls, perr := u.presign(ctx, []int{p.Number})
			if perr != nil {
				return "", perr
			}
			p = urls[0]
			continue
		}
		if err != nil {
			return "", fmt.Errorf("part %d: %w", p.Number, err)
		}
		return etag, nil
	}
}

// waitAvailable polls a document until its ingest is over, for at most
// IngestWait (default: 2 minutes plus a second per 16 MiB).
func (c *Client) waitAvailable(ctx context.Context, d Document) (Document, error) {
	wait := c.opt.IngestWait
	if wait <= 0 {
		wait = 2*time.Minute + time.Duration(d.Size/(16<<20))*time.Second
	}
	deadline := time.Now().Add(wait)
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		switch d.Status {
		case StatusAvailable:
			return d, nil
		case StatusFailed:
			return d, &IngestError{ID: d.ID, Failure: cmp.Or(d.Failure, "no reason given")}
		}
		if d.Status != "" && d.Status != StatusPending {
			return d, fmt.Errorf("document %s has status %q", d.ID, d.Status)
		}
		if time.Now().After(deadline) {
			return d, fmt.Errorf("document %s is still pending after %v; `imago stat %s` tells when it is available", d.ID, wait, d.ID)
		}
		if err := c.sleepPoll(ctx, delay); err != nil {
			return d, err
		}
		next, err := c.Stat(ctx, d.ID)
		if err != nil {
			return d, err
		}
		d = next
	}
}

func headerOf(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}
