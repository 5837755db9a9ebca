package loadtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

func (c *client) uploadPresignedOrRaw(ctx context.Context) {
	if c.opt.Presigned {
		c.uploadPresigned(ctx)
	} else {
		c.uploadRaw(ctx)
	}
}

// content regenerates the bytes of the document with this seed and size.
func content(seed uint64, size int64) []byte {
	var key [32]byte
	for i := range 4 {
		key[i*8] = byte(seed >> (8 * i))
		key[i*8+4] = byte(seed >> (8 * (i + 4)))
	}
	b := make([]byte, size)
	rand.NewChaCha8(key).Read(b)
	return b
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

var contentTypes = []string{"application/pdf", "image/jpeg", "image/png", "application/octet-stream", "text/plain; charset=utf-8"}

// newDoc describes a document to upload: its size, bytes, name, type and
// custom metadata.
func (c *client) newDoc(size int64) (*doc, []byte) {
	d := &doc{tenant: c.tenant, seed: c.rng.Uint64(), size: size,
		contentType: contentTypes[c.rng.IntN(len(contentTypes))],
		filename:    fmt.Sprintf("scan %d-%d.bin", c.tenant, c.rng.IntN(1e6)),
		metadata:    map[string]string{}}
	for i := range c.rng.IntN(3) {
		d.metadata[fmt.Sprintf("k%d", i)] = fmt.Sprintf("v-%d", c.rng.IntN(1e6))
	}
	body := content(d.seed, size)
	d.sha256 = hexSHA256(body)
	return d, body
}

// inlineSize is a random size up to the inline limit: mostly small and
// medium documents, some large, and the edges (one byte, segment
// boundaries, the limit itself).
func (c *client) inlineSize() int64 {
	limit := c.opt.MaxInlineBytes
	var n int64
	switch p := c.rng.IntN(20); {
	case p < 8:
		n = 1 + c.rng.Int64N(64<<10)
	case p < 16:
		n = 64<<10 + c.rng.Int64N(1<<20)
	case p < 19:
		n = 1<<20 + c.rng.Int64N(max(limit-1<<20, 1))
	default:
		edges := []int64{1, 65535, 65536, 65537, 2 * 65536, limit}
		n = edges[c.rng.IntN(len(edges))]
	}
	return min(max(n, 1), limit)
}

// acknowledged checks an upload's 201 answer against what was sent; the
// caller registers the document once nothing else of the upload is in
// flight.
func (c *client) acknowledged(rq request, a answer, d *doc) bool {
	if !c.expect(rq, a, http.StatusCreated) {
		return false
	}
	var got api.Document
	if err := json.Unmarshal(a.body, &got); err != nil || got.ID == "" {
		c.report(kindError, "%s: 201 with unparsable metadata: %.200q", rq.op, a.body)
		return false
	}
	d.id = got.ID
	if loc := a.header.Get("Location"); loc != "/documents/"+got.ID {
		c.report(kindMismatch, "%s %s: Location %q", rq.op, got.ID, loc)
	}
	if diff := d.diff(got); diff != "" {
		c.report(kindMismatch, "%s %s: acknowledged metadata: %s", rq.op, got.ID, diff)
		return false
	}
	return true
}

func (c *client) rawUploadRequest(op string, d *doc, body []byte) request {
	h := map[string]string{"Content-Type": d.contentType}
	for k, v := range d.metadata {
		h["X-Imago-Meta-"+k] = v
	}
	return request{op: op, method: "POST", target: "/documents?filename=" + url.QueryEscape(d.filename),
		tenant: c.tenant, body: body, header: h}
}

func (c *client) uploadRaw(ctx context.Context) {
	d, body := c.newDoc(c.inlineSize())
	rq := c.rawUploadRequest("upload-raw", d, body)
	if c.acknowledged(rq, c.do(ctx, rq), d) {
		c.reg.add(d)
	}
}

func (c *client) uploadForm(ctx context.Context) {
	d, body := c.newDoc(c.inlineSize())
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range d.metadata {
		mw.WriteField(k, v)
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, d.filename))
	h.Set("Content-Type", d.contentType)
	pw, _ := mw.CreatePart(h)
	pw.Write(body)
	mw.Close()
	rq := request{op: "upload-form", method: "POST", target: "/documents", tenant: c.tenant,
		body: buf.Bytes(), header: map[string]string{"Content-Type": mw.FormDataContentType()}}
	if c.acknowledged(rq, c.do(ctx, rq), d) {
		c.reg.add(d)
	}
}

// uploadIdempotent uploads with an Idempotency-Key, replays the same
// upload (which must answer the same document), and sometimes reuses the
// key for other bytes (which must be a 409 and change nothing). The
// document is registered, so that other clients may delete it, only after
// the replays: a replay after a DELETE would rightly store it anew.
func (c *client) uploadIdempotent(ctx context.Context) {
	d, body := c.newDoc(c.inlineSize())
	key := fmt.Sprintf("load-%016x", c.rng.Uint64())
	rq := c.rawUploadRequest("upload-idempotent", d, body)
	rq.header["Idempotency-Key"] = key
	if !c.acknowledged(rq, c.do(ctx, rq), d) {
		return
	}
	defer c.reg.add(d)
	replay := c.do(ctx, rq)
	if !c.expect(rq, replay, http.StatusCreated) {
		return
	}
	var got api.Document
	if err := json.Unmarshal(replay.body, &got); err != nil {
		c.report(kindError, "idempotent replay: unparsable metadata: %.200q", replay.body)
		return
	}
	if diff := d.diff(got); diff != "" {
		c.report(kindMismatch, "idempotent replay of %s (key %s) answered another document: %s", d.id, key, diff)
	}
	if c.rng.IntN(4) == 0 {
		other := content(c.rng.Uint64(), d.size)
		rq2 := c.rawUploadRequest("upload-idempotent-conflict", d, other)
		rq2.header["Idempotency-Key"] = key
		c.expect(rq2, c.do(ctx, rq2), http.StatusConflict)
	}
}

// uploadPresigned uploads a document over the inline limit: create the
// upload, PUT the bytes to the presigned URL, wait for the ingest.
func (c *client) uploadPresigned(ctx context.Context) {
	d, body := c.newDoc(c.opt.MaxInlineBytes + 1 + c.rng.Int64N(2<<20))
	spec, _ := json.Marshal(api.CreateUpload{Filename: d.filename, ContentType: d.contentType, Size: &d.size, Metadata: d.metadata})
	rq := request{op: "create-upload", method: "POST", target: "/documents/uploads", tenant: c.tenant,
		body: spec, header: map[string]string{"Content-Type": "application/json"}}
	a := c.do(ctx, rq)
	if !c.expect(rq, a, http.StatusCreated) {
		return
	}
	var up api.CreatedUpload
	if err := json.Unmarshal(a.body, &up); err != nil || up.ID == "" || up.UploadURL == "" {
		c.report(kindError, "create-upload: unparsable answer: %.200q", a.body)
		return
	}
	put := request{op: "presigned-put", method: up.Method, target: up.UploadURL, tenant: -1, body: body, header: up.Headers}
	if !c.expect(put, c.do(ctx, put), http.StatusOK) {
		return
	}
	d.id = up.ID
	deadline := time.Now().Add(c.opt.IngestWait)
	for {
		get := request{op: "ingest-poll", method: "GET", target: "/documents/" + up.ID, tenant: c.tenant}
		a := c.do(ctx, get)
		if !c.expect(get, a, http.StatusOK) {
			return
		}
		var got api.Document
		if err := json.Unmarshal(a.body, &got); err != nil {
			c.report(kindError, "ingest-poll %s: unparsable metadata: %.200q", up.ID, a.body)
			return
		}
		if got.Status == api.StatusPending {
			if time.Now().After(deadline) {
				c.report(kindError, "presigned upload %s still pending %v after its PUT", up.ID, c.opt.IngestWait)
				return
			}
			time.Sleep(250 * time.Millisecond) // the S3 event is asynchronous
			continue
		}
		if diff := d.diff(got); diff != "" {
			c.report(kindMismatch, "presigned upload %s: ingested metadata: %s", up.ID, diff)
			return
		}
		break
	}
	c.reg.add(d)
}
