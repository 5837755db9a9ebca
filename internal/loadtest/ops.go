package loadtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// client is one concurrent caller, always of the same tenant.
type client struct {
	*run
	tenant int
	rng    *rand.Rand
}

// liveCap bounds how many documents a tenant keeps: past it, uploads turn
// into deletes, so that reads keep landing on documents that are hot.
const liveCap = 400

// step runs one operation, picked at random.
func (c *client) step(ctx context.Context) {
	live := c.reg.liveCount(c.tenant)
	p := c.rng.IntN(100)
	if live < 4 {
		p = c.rng.IntN(30) // too few documents to read: upload
	} else if live > liveCap && p < 32 {
		p = 80 // too many: delete instead
	}
	switch {
	case p < 14:
		c.uploadRaw(ctx)
	case p < 24:
		c.uploadForm(ctx)
	case p < 30:
		c.uploadIdempotent(ctx)
	case p < 32:
		c.uploadPresignedOrRaw(ctx)
	case p < 54:
		c.downloadWhole(ctx)
	case p < 66:
		c.downloadRange(ctx)
	case p < 71:
		c.readMetadata(ctx)
	case p < 77:
		c.list(ctx)
	case p < 87:
		c.deleteOne(ctx)
	case p < 93:
		c.crossTenant(ctx)
	default:
		c.readDeleted(ctx)
	}
}

// The kinds of operation, for a run of Options.Rounds.
var (
	uploadOps = []func(*client, context.Context){(*client).uploadRaw, (*client).uploadForm, (*client).uploadIdempotent, (*client).uploadPresignedOrRaw}
	otherOps  = []func(*client, context.Context){(*client).downloadWhole, (*client).downloadRange, (*client).readMetadata,
		(*client).list, (*client).deleteOne, (*client).crossTenant, (*client).readDeleted}
)

func (c *client) uploadPresignedOrRaw(ctx context.Context) {
	if c.opt.Presigned {
		c.uploadPresigned(ctx)
	} else {
		c.uploadRaw(ctx)
	}
}

// answer is one HTTP exchange's outcome.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
	start  time.Time
}

// request describes one HTTP request.
type request struct {
	op     string
	method string
	target string // a path of the API, or an absolute (presigned) URL
	tenant int    // whose token goes with it; -1 for none
	body   []byte
	header map[string]string
}

func (c *client) do(ctx context.Context, rq request) answer {
	target := rq.target
	if strings.HasPrefix(target, "/") {
		target = c.opt.URL + target
	}
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	a := answer{start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, rq.method, target, body)
	if err != nil {
		a.err = err
		return a
	}
	if rq.tenant >= 0 {
		req.Header.Set("Authorization", "Bearer "+c.opt.Tokens[rq.tenant])
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err == nil {
		a.body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		a.status, a.header = resp.StatusCode, resp.Header
	}
	a.err = err
	c.record(rq.op, time.Since(a.start))
	return a
}

// expect reports an error unless the answer has one of the statuses;
// errors that are not the API's JSON error shape are errors too.
func (c *client) expect(rq request, a answer, statuses ...int) bool {
	if a.err != nil {
		c.report(kindError, "%s %s: %v", rq.method, rq.target, a.err)
		return false
	}
	for _, s := range statuses {
		if a.status == s {
			if s >= 400 && !isJSONError(a.body) {
				c.report(kindError, "%s %s: %d answer is not the JSON error shape: %.200q", rq.method, rq.target, a.status, a.body)
				return false
			}
			return true
		}
	}
	c.report(kindError, "%s %s: status %d, want %v: %.300s", rq.method, rq.target, a.status, statuses, a.body)
	return false
}

func isJSONError(body []byte) bool {
	var e api.ErrorBody
	return json.Unmarshal(body, &e) == nil && e.Error.Code != "" && e.Error.Message != ""
}

// diff says how got differs from what d was uploaded as ("" if not).
func (d *doc) diff(got api.Document) string {
	var out []string
	check := func(field string, g, w any) {
		if g != w {
			out = append(out, fmt.Sprintf("%s %v, want %v", field, g, w))
		}
	}
	check("id", got.ID, d.id)
	check("size", got.Size, d.size)
	check("sha256", got.SHA256, d.sha256)
	check("filename", got.Filename, d.filename)
	check("content_type", got.ContentType, d.contentType)
	check("status", got.Status, api.StatusAvailable)
	if !maps.Equal(got.Metadata, d.metadata) && !(len(got.Metadata) == 0 && len(d.metadata) == 0) {
		out = append(out, fmt.Sprintf("metadata %v, want %v", got.Metadata, d.metadata))
	}
	if got.CreatedAt.IsZero() {
		out = append(out, "no created_at")
	}
	return strings.Join(out, "; ")
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

// readable interprets an answer to a read of d, a document of this
// driver's own: 404 is a lost document unless a DELETE of it was sent, and
// a document served after its DELETE answered is a mismatch. It reports
// whether the caller should go on and check the answer's content.
func (c *client) readable(rq request, a answer, d *doc, ok ...int) bool {
	sent, deleted := c.reg.deleteState(d)
	if a.err == nil && a.status == http.StatusNotFound {
		if sent.IsZero() {
			c.report(kindLost, "%s %s: 404 for an acknowledged document never deleted", rq.op, d.id)
			return false
		}
		c.expect(rq, a, http.StatusNotFound) // the delete won; the error must still be JSON
		return false
	}
	if !sent.IsZero() && a.err == nil && !slices.Contains(ok, a.status) {
		// Say so: a read racing a DELETE may answer 404, nothing else.
		c.report(kindError, "%s %s %s: status %d while a DELETE of it was in flight (sent %v before this read's answer), want %v or 404: %.300s",
			rq.method, rq.target, rq.header["Range"], a.status, time.Since(sent).Round(time.Millisecond), ok, a.body)
		return false
	}
	if !c.expect(rq, a, ok...) {
		return false
	}
	if !deleted.IsZero() && deleted.Before(a.start) {
		c.report(kindMismatch, "%s %s: %d (X-Imago-Cache %q) for a document whose DELETE had answered 204",
			rq.op, d.id, a.status, a.header.Get("X-Imago-Cache"))
		return false
	}
	return true
}

func (c *client) downloadWhole(ctx context.Context) {
	d := c.reg.pickLive(c.rng, c.tenant)
	if d == nil {
		return
	}
	rq := request{op: "download", method: "GET", target: "/documents/" + d.id + "/content", tenant: c.tenant}
	etag := `"` + d.sha256 + `"`
	conditional := c.rng.IntN(8) == 0
	if conditional {
		rq.op, rq.header = "download-conditional", map[string]string{"If-None-Match": etag}
	}
	if d.size > c.opt.MaxInlineBytes {
		// Too large for one response: 413 naming the limit (or 304, which
		// carries no body).
		c.readable(rq, c.do(ctx, rq), d, http.StatusRequestEntityTooLarge, http.StatusNotModified)
		return
	}
	a := c.do(ctx, rq)
	if conditional {
		c.readable(rq, a, d, http.StatusNotModified)
		return
	}
	if !c.readable(rq, a, d, http.StatusOK) {
		return
	}
	want := content(d.seed, d.size)
	if !bytes.Equal(a.body, want) {
		c.report(kindMismatch, "download %s: %d bytes (sha256 %s), want %d (sha256 %s), X-Imago-Cache %q",
			d.id, len(a.body), hexSHA256(a.body), d.size, d.sha256, a.header.Get("X-Imago-Cache"))
		return
	}
	c.checkContentHeaders(rq, a, d, d.size)
}

func (c *client) checkContentHeaders(rq request, a answer, d *doc, length int64) {
	var bad []string
	if got := a.header.Get("ETag"); got != `"`+d.sha256+`"` {
		bad = append(bad, "ETag "+got)
	}
	if got := a.header.Get("Content-Length"); got != strconv.FormatInt(length, 10) {
		bad = append(bad, "Content-Length "+got)
	}
	if got := a.header.Get("X-Imago-Cache"); got != "hit" && got != "miss" {
		bad = append(bad, "X-Imago-Cache "+got)
	}
	if got := a.header.Get("Content-Type"); got != d.contentType {
		bad = append(bad, "Content-Type "+got)
	}
	if len(bad) > 0 {
		c.report(kindMismatch, "%s %s: headers: %s", rq.op, d.id, strings.Join(bad, ", "))
	}
}

func (c *client) downloadRange(ctx context.Context) {
	d := c.reg.pickLive(c.rng, c.tenant)
	if d == nil {
		return
	}
	start := c.rng.Int64N(d.size)
	maxRange := min(c.opt.MaxInlineBytes, 1<<20)
	length := 1 + c.rng.Int64N(min(d.size-start, maxRange))
	spec := fmt.Sprintf("bytes=%d-%d", start, start+length-1)
	if c.rng.IntN(6) == 0 { // a suffix range: the last bytes
		length = min(d.size, 1+c.rng.Int64N(min(maxRange, 128<<10)))
		start = d.size - length
		spec = fmt.Sprintf("bytes=-%d", length)
	}
	rq := request{op: "download-range", method: "GET", target: "/documents/" + d.id + "/content", tenant: c.tenant,
		header: map[string]string{"Range": spec}}
	a := c.do(ctx, rq)
	if !c.readable(rq, a, d, http.StatusPartialContent) {
		return
	}
	want := content(d.seed, d.size)[start : start+length]
	if !bytes.Equal(a.body, want) {
		c.report(kindMismatch, "range %s of %s (size %d): %d bytes that differ, X-Imago-Cache %q",
			spec, d.id, d.size, len(a.body), a.header.Get("X-Imago-Cache"))
		return
	}
	if got, want := a.header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, d.size); got != want {
		c.report(kindMismatch, "range %s of %s: Content-Range %q, want %q", spec, d.id, got, want)
	}
	c.checkContentHeaders(rq, a, d, length)
}

func (c *client) readMetadata(ctx context.Context) {
	d := c.reg.pickLive(c.rng, c.tenant)
	if d == nil {
		return
	}
	rq := request{op: "metadata", method: "GET", target: "/documents/" + d.id, tenant: c.tenant}
	a := c.do(ctx, rq)
	if !c.readable(rq, a, d, http.StatusOK) {
		return
	}
	c.checkMetadata(rq, a, d)
}

func (c *client) checkMetadata(rq request, a answer, d *doc) {
	var got api.Document
	if err := json.Unmarshal(a.body, &got); err != nil {
		c.report(kindError, "%s %s: unparsable metadata: %.200q", rq.op, d.id, a.body)
		return
	}
	if diff := d.diff(got); diff != "" {
		c.report(kindMismatch, "%s %s: %s", rq.op, d.id, diff)
	}
}

// listingLag is how long a listing may lag behind the record it lists: it
// is read from the tenant index, which DynamoDB updates after the table
// (within a second, normally; DynamoDB Local and bbolt at once).
const listingLag = 2 * time.Second

// list walks up to three pages of the tenant's listing: every document
// must be the tenant's own, none may have been deleted before the walk
// began, each known one must carry its acknowledged metadata, and the
// pages must be newest first with no document twice.
func (c *client) list(ctx context.Context) {
	limit := 1 + c.rng.IntN(60)
	seen := map[string]bool{}
	var last time.Time
	cursor := ""
	walkStart := time.Now()
	for range 3 {
		target := "/documents?limit=" + strconv.Itoa(limit)
		if cursor != "" {
			target += "&cursor=" + url.QueryEscape(cursor)
		}
		rq := request{op: "list", method: "GET", target: target, tenant: c.tenant}
		pageSent := time.Now()
		a := c.do(ctx, rq)
		if !c.expect(rq, a, http.StatusOK) {
			return
		}
		var page api.Page
		if err := json.Unmarshal(a.body, &page); err != nil || page.Documents == nil {
			c.report(kindError, "list: unparsable page: %.200q", a.body)
			return
		}
		if len(page.Documents) > limit {
			c.report(kindMismatch, "list: %d documents on a page of limit %d", len(page.Documents), limit)
		}
		for _, m := range page.Documents {
			if seen[m.ID] {
				c.report(kindMismatch, "list: document %s twice in one walk (limit %d)", m.ID, limit)
			}
			seen[m.ID] = true
			if !last.IsZero() && m.CreatedAt.After(last) {
				c.report(kindMismatch, "list: %s (created %v) after an older document (%v): not newest first", m.ID, m.CreatedAt, last)
			}
			last = m.CreatedAt
			if other, _, _ := c.reg.known(1-c.tenant, m.ID); other != nil {
				c.report(kindMismatch, "list: another tenant's document %s in the listing", m.ID)
				continue
			}
			d, _, deleted := c.reg.known(c.tenant, m.ID)
			if d == nil {
				continue // not yet registered (an upload in flight) or from another run
			}
			if !deleted.IsZero() && deleted.Before(walkStart) {
				c.report(kindMismatch, "list: %s listed after its DELETE answered 204", m.ID)
				continue
			}
			if m.Status == "pending" && c.reg.addedSince(d, pageSent.Add(-listingLag)) {
				// Listings hold pending documents too: this one's upload
				// was acknowledged while the page was read (or so shortly
				// before that the listing's index had not caught up).
				continue
			}
			if diff := d.diff(m); diff != "" {
				c.report(kindMismatch, "list: %s: %s", m.ID, diff)
			}
		}
		if page.NextCursor == "" {
			return
		}
		cursor = page.NextCursor
	}
}

// deleteOne deletes one of the tenant's documents; right after the 204,
// its metadata and content must be 404.
func (c *client) deleteOne(ctx context.Context) {
	d := c.reg.claimForDelete(c.rng, c.tenant)
	if d == nil {
		return
	}
	rq := request{op: "delete", method: "DELETE", target: "/documents/" + d.id, tenant: c.tenant}
	a := c.do(ctx, rq)
	switch {
	case a.err != nil:
		// The outcome is unknown: the document stays claimed, so that a
		// later 404 is not counted lost.
		c.report(kindError, "DELETE %s: %v", d.id, a.err)
		return
	case a.status == http.StatusNotFound:
		c.report(kindLost, "DELETE %s: 404 for an acknowledged document never deleted", d.id)
		return
	case !c.expect(rq, a, http.StatusNoContent):
		if a.status < 500 {
			c.reg.unclaim(d)
		}
		return
	}
	c.reg.markDeleted(d)
	c.checkGone(ctx, d, "after delete")
}

// checkGone reads a deleted document's metadata and content: both must be
// 404, never a cache hit.
func (c *client) checkGone(ctx context.Context, d *doc, when string) {
	for _, target := range []string{"/documents/" + d.id, "/documents/" + d.id + "/content"} {
		rq := request{op: "read-deleted", method: "GET", target: target, tenant: d.tenant}
		a := c.do(ctx, rq)
		if a.err == nil && a.status != http.StatusNotFound && a.status < 500 {
			_, deletedAt := c.reg.deleteState(d)
			c.report(kindMismatch, "GET %s %s: %d (X-Imago-Cache %q), want 404; its DELETE answered 204 %v before this read",
				target, when, a.status, a.header.Get("X-Imago-Cache"), a.start.Sub(deletedAt).Round(time.Millisecond))
			continue
		}
		c.expect(rq, a, http.StatusNotFound)
	}
}

func (c *client) readDeleted(ctx context.Context) {
	if d := c.reg.pickDeleted(c.rng, c.tenant); d != nil {
		c.checkGone(ctx, d, "of a deleted document")
	}
}

// crossTenant reads, and sometimes tries to delete, a document of the
// other tenant: every answer must be 404, and the document must survive.
func (c *client) crossTenant(ctx context.Context) {
	d := c.reg.pickLive(c.rng, 1-c.tenant)
	if d == nil {
		return
	}
	targets := []string{"/documents/" + d.id, "/documents/" + d.id + "/content"}
	method := "GET"
	if c.rng.IntN(5) == 0 {
		method, targets = "DELETE", targets[:1]
	}
	for _, target := range targets {
		rq := request{op: "cross-tenant", method: method, target: target, tenant: c.tenant}
		a := c.do(ctx, rq)
		if a.err == nil && a.status < 300 {
			c.report(kindMismatch, "%s %s with the other tenant's token: %d, want 404", method, target, a.status)
			continue
		}
		c.expect(rq, a, http.StatusNotFound)
	}
}
