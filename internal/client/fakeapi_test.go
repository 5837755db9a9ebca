package client

import (
	"bytes"
	"cmp"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/imagodocs/imago/internal/api"
)

// fakeAPI is an in-process Imago API that follows docs/design.md's contract
// for the routes the client uses — inline uploads, presigned uploads,
// multipart uploads (presigned parts, ListParts, complete, 202 pending,
// ingest), metadata, listing, deletion, whole and Range downloads (413
// over the inline limit), share links (create, list, revoke), a
// document's policy (retention at upload, the trash, restore, purge, the
// legal hold), the audit trail's listing (GET /audit, from the records a
// test gives it) — so that the client's logic is tested with
// faults injected where a real server would not make them. The real
// `imago serve` is driven by cmd/imago's tests.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	inlineLimit int64 // largest inline upload and whole download
	threshold   int64 // uploads above this go in parts
	partSize    int64 // the part size it answers

	// pendingPolls is how many metadata reads a completed multipart
	// upload stays pending for; failIngest makes its ingest fail.
	pendingPolls int
	failIngest   string

	// hook, when set, sees every request first; it returns true when it
	// answered the request itself.
	hook func(w http.ResponseWriter, r *http.Request) bool
	// corrupt makes downloads serve other bytes than the document's.
	corrupt bool
	// wrongSHA makes the documents stored record a SHA-256 other than
	// their bytes'.
	wrongSHA bool
	// deletionDelay is IMAGO_DELETION_DELAY: DELETE moves a document to
	// the trash for that long; zero purges at once.
	deletionDelay time.Duration
	// listedETag, when set, rewrites the ETags GET /documents/{id}/parts
	// lists (set it under mu).
	listedETag func(number int, etag string) string

	mu        sync.Mutex
	inFlight  int        // requests being served, under mu
	drained   *sync.Cond // signalled when inFlight drops to 0
	docs      map[string]*fakeDoc
	order     []string          // creation order
	requests  map[string]int    // "METHOD route" → count
	partPuts  map[int]int       // part number → successful PUTs
	rangeGets []string          // Range headers of content GETs answered
	linkPosts []string          // bodies of POST /documents/{id}/links
	auditRecs []api.AuditRecord // GET /audit's records, newest first
	auditGets []string          // the queries of GET /audit answered
}

type fakeDoc struct {
	Document
	content   []byte
	multipart bool
	parts     map[int][]byte
	polls     int
	links     []*api.Link // newest first
	revoked   map[string]bool
	// expiresIn is the retention its upload asked for, as sent (the
	// header's value or the JSON number); empty when none was.
	expiresIn string
}

// trashed says whether d is in the trash.
func (d *fakeDoc) trashed() bool { return d.DeletedAt != nil }

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, inlineLimit: 1 << 20, threshold: 4 << 20, partSize: 1 << 20,
		docs: map[string]*fakeDoc{}, requests: map[string]int{}, partPuts: map[int]int{}}
	f.drained = sync.NewCond(&f.mu)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[key]
}

// setHook sets the hook (nil for none) while requests may be in flight.
func (f *fakeAPI) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

// received is how many parts of document id the server holds.
func (f *fakeAPI) received(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.docs[id].parts)
}

func (f *fakeAPI) ranges() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rangeGets)
}

func (f *fakeAPI) doc(id string) *fakeDoc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.docs[id]
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSONAnswer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// route names a request by its route, ids left out.
func route(r *http.Request) string {
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(p) == 1:
		return r.Method + " /" + p[0]
	case p[0] == "documents" && p[1] == "uploads":
		return r.Method + " /documents/uploads"
	case p[0] == "documents" && len(p) == 2:
		return r.Method + " /documents/{id}"
	case p[0] == "documents" && len(p) == 3:
		return r.Method + " /documents/{id}/" + p[2]
	case p[0] == "documents" && len(p) == 4:
		return r.Method + " /documents/{id}/" + p[2] + "/{id}"
	}
	return r.Method + " /" + p[0]
}

// idle waits until no request is being answered: a client that gave up
// on a request does not wait for the server to finish it.
// idle waits until no request is being served.
func (f *fakeAPI) idle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.inFlight > 0 {
		f.drained.Wait()
	}
}

// snapshot returns, under the lock, the ids of the documents and the
// successful PUTs of each part number.
func (f *fakeAPI) snapshot() (ids []string, partPuts map[int]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	partPuts = map[int]int{}
	for id := range f.docs {
		ids = append(ids, id)
	}
	for n, puts := range f.partPuts {
		partPuts[n] = puts
	}
	return ids, partPuts
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.inFlight++
	f.requests[route(r)]++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		if f.inFlight--; f.inFlight == 0 {
			f.drained.Broadcast()
		}
		f.mu.Unlock()
	}()
	f.mu.Lock()
	hook := f.hook
	f.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == "POST" && r.URL.Path == "/documents":
		if int64(len(body)) > f.inlineLimit {
			apiError(w, 413, "too_large", "over the inline limit")
			return
		}
		meta := map[string]string{}
		for k, v := range r.Header {
			if m, ok := strings.CutPrefix(k, "X-Imago-Meta-"); ok {
				meta[strings.ToLower(m)] = v[0]
			}
		}
		raw := r.Header.Get(api.HeaderExpiresIn)
		secs, err := strconv.ParseInt(raw, 10, 64)
		if raw != "" && (err != nil || secs < 1) {
			apiError(w, 400, "invalid", "bad "+api.HeaderExpiresIn)
			return
		}
		d := f.add(r.URL.Query().Get("filename"), r.Header.Get("Content-Type"), int64(len(body)), meta)
		d.setExpiry(raw, secs)
		f.store(d, body)
		w.Header().Set("Location", "/documents/"+d.ID)
		writeJSONAnswer(w, 201, d.Document)
	case r.Method == "POST" && r.URL.Path == "/documents/uploads":
		var req struct {
			Filename    string            `json:"filename"`
			ContentType string            `json:"content_type"`
			Size        int64             `json:"size"`
			Metadata    map[string]string `json:"metadata"`
			ExpiresIn   json.RawMessage   `json:"expires_in"`
		}
		if json.Unmarshal(body, &req) != nil {
			apiError(w, 400, "invalid", "bad JSON")
			return
		}
		secs, err := strconv.ParseInt(string(req.ExpiresIn), 10, 64)
		if req.ExpiresIn != nil && (err != nil || secs < 1) {
			apiError(w, 400, "invalid", "bad expires_in")
			return
		}
		d := f.add(req.Filename, req.ContentType, req.Size, req.Metadata)
		d.setExpiry(string(req.ExpiresIn), secs)
		exp := time.Now().Add(time.Hour)
		if req.Size > f.threshold {
			d.multipart, d.parts = true, map[int][]byte{}
			count := int((req.Size + f.partSize - 1) / f.partSize)
			writeJSONAnswer(w, 201, map[string]any{"id": d.ID, "method": "multipart", "part_size": f.partSize, "part_count": count, "expires_at": exp})
			return
		}
		writeJSONAnswer(w, 201, map[string]any{"id": d.ID, "method": "PUT", "upload_url": f.srv.URL + "/_staging/" + d.ID,
			"headers": map[string]string{"Content-Type": req.ContentType}, "expires_at": exp})
	case r.Method == "PUT" && p[0] == "_staging":
		d := f.docs[p[1]]
		if d == nil || d.Status != StatusPending || int64(len(body)) != d.Size {
			apiError(w, 400, "invalid", "bad staging PUT")
			return
		}
		f.store(d, body)
		w.WriteHeader(200)
	case r.Method == "PUT" && p[0] == "_parts":
		d := f.docs[p[1]]
		n, _ := strconv.Atoi(p[2])
		if d == nil || !d.multipart || d.Status != StatusPending {
			apiError(w, 404, "NoSuchUpload", "no such upload")
			return
		}
		if want := min(f.partSize, d.Size-int64(n-1)*f.partSize); int64(len(body)) != want || r.ContentLength != want {
			apiError(w, 400, "bad_part", fmt.Sprintf("part %d is %d bytes, want %d", n, len(body), want))
			return
		}
		d.parts[n] = body
		f.partPuts[n]++
		w.Header().Set("ETag", etag(body))
		w.WriteHeader(200)
	case r.Method == "GET" && r.URL.Path == "/audit":
		f.audit(w, r)
	case p[0] != "documents":
		apiError(w, 404, "not_found", "no route")
	case r.Method == "GET" && len(p) == 1:
		f.list(w, r)
	default:
		d := f.docs[p[1]]
		// A document in the trash answers only its restore, its legal
		// hold and its purge.
		if d == nil || d.trashed() && !(len(p) == 3 && (p[2] == "restore" || p[2] == "legal-hold") ||
			len(p) == 2 && r.Method == "DELETE" && r.URL.Query().Get("purge") == "true") {
			apiError(w, 404, "not_found", "document "+p[1]+" not found")
			return
		}
		f.document(w, r, d, p[2:], body)
	}
}

func etag(b []byte) string {
	sum := md5.Sum(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// setExpiry gives d the retention its upload asked for: raw as sent,
// secs its value.
func (d *fakeDoc) setExpiry(raw string, secs int64) {
	if raw == "" {
		return
	}
	at := d.CreatedAt.Add(time.Duration(secs) * time.Second)
	d.expiresIn, d.ExpiresAt = raw, &at
}

func (f *fakeAPI) add(filename, contentType string, size int64, meta map[string]string) *fakeDoc {
	if meta == nil {
		meta = map[string]string{}
	}
	d := &fakeDoc{Document: Document{ID: uuid.NewString(), Filename: filename, ContentType: contentType, Size: size,
		Status: StatusPending, CreatedAt: time.Now().UTC().Truncate(time.Second), Metadata: meta}}
	f.docs[d.ID] = d
	f.order = append(f.order, d.ID)
	return d
}

// overwritePart makes part n of document id hold b, as a cut PUT may
// leave it on S3.
func (f *fakeAPI) overwritePart(id string, n int, b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.docs[id].parts[n] = b
}

func (f *fakeAPI) store(d *fakeDoc, content []byte) {
	sum := sha256.Sum256(content)
	if f.wrongSHA {
		sum = sha256.Sum256(append([]byte("not "), content...))
	}
	d.content, d.SHA256, d.Status = content, hex.EncodeToString(sum[:]), StatusAvailable
}

func (f *fakeAPI) document(w http.ResponseWriter, r *http.Request, d *fakeDoc, rest []string, body []byte) {
	switch {
	case len(rest) > 0 && rest[0] == "links":
		f.links(w, r, d, rest[1:], body)
	case len(rest) == 0 && r.Method == "GET":
		if d.Status == StatusPending && d.content != nil { // completed, being ingested
			if d.polls++; d.polls > f.pendingPolls {
				if f.failIngest != "" {
					d.Status = StatusFailed
					d.Failure = f.failIngest
				} else {
					f.store(d, d.content)
				}
			}
		}
		writeJSONAnswer(w, 200, d.Document)
	case len(rest) == 0 && r.Method == "DELETE":
		switch {
		case d.LegalHold:
			apiError(w, 409, "conflict", "document "+d.ID+" is under a legal hold: lift the hold to delete it")
			return
		case f.deletionDelay > 0 && r.URL.Query().Get("purge") != "true":
			now := time.Now().UTC().Truncate(time.Second)
			purge := now.Add(f.deletionDelay)
			d.DeletedAt, d.PurgeAt = &now, &purge
		default:
			delete(f.docs, d.ID)
		}
		w.WriteHeader(204)
	case len(rest) == 1 && rest[0] == "restore" && r.Method == "POST":
		if !d.trashed() {
			apiError(w, 409, "conflict", "document "+d.ID+" is not in the trash")
			return
		}
		d.restore()
		writeJSONAnswer(w, 200, d.Document)
	case len(rest) == 1 && rest[0] == "legal-hold" && (r.Method == "PUT" || r.Method == "DELETE"):
		d.LegalHold = r.Method == "PUT"
		w.WriteHeader(204)
	case rest[0] == "parts" && r.Method == "POST":
		var req struct{ Numbers []int }
		json.Unmarshal(body, &req)
		if !d.multipart || d.content != nil {
			apiError(w, 409, "conflict", "not a pending multipart upload")
			return
		}
		var parts []map[string]any
		for _, n := range req.Numbers {
			parts = append(parts, map[string]any{"number": n, "method": "PUT",
				"url": fmt.Sprintf("%s/_parts/%s/%d", f.srv.URL, d.ID, n), "headers": map[string]string{}, "expires_at": time.Now().Add(time.Hour)})
		}
		writeJSONAnswer(w, 200, map[string]any{"parts": parts})
	case rest[0] == "parts" && r.Method == "GET":
		if !d.multipart || d.content != nil {
			apiError(w, 409, "conflict", "not a pending multipart upload")
			return
		}
		parts := []map[string]any{}
		var numbers []int
		for n := range d.parts {
			numbers = append(numbers, n)
		}
		sort.Ints(numbers)
		for _, n := range numbers {
			tag := etag(d.parts[n])
			if f.listedETag != nil {
				tag = f.listedETag(n, tag)
			}
			parts = append(parts, map[string]any{"number": n, "size": len(d.parts[n]), "etag": tag})
		}
		writeJSONAnswer(w, 200, map[string]any{"parts": parts})
	case rest[0] == "complete" && r.Method == "POST":
		var req struct {
			Parts []api.CompletedPart `json:"parts"`
		}
		json.Unmarshal(body, &req)
		if !d.multipart || d.content != nil {
			apiError(w, 409, "conflict", "not a pending multipart upload")
			return
		}
		var content []byte
		for i, p := range req.Parts {
			if p.Number != i+1 || d.parts[p.Number] == nil || etag(d.parts[p.Number]) != p.ETag {
				apiError(w, 400, "invalid", fmt.Sprintf("part %d missing or mismatched", i+1))
				return
			}
			content = append(content, d.parts[p.Number]...)
		}
		if int64(len(content)) != d.Size {
			apiError(w, 400, "invalid", "parts do not add up to the size")
			return
		}
		d.content = content
		writeJSONAnswer(w, 202, d.Document)
	case rest[0] == "content" && r.Method == "GET":
		if d.Status != StatusAvailable {
			apiError(w, 409, "conflict", "not available")
			return
		}
		content := d.content
		if f.corrupt {
			content = append([]byte(nil), content...)
			content[len(content)/2] ^= 1
		}
		rng := r.Header.Get("Range")
		if rng == "" {
			if d.Size > f.inlineLimit {
				apiError(w, 413, "too_large", fmt.Sprintf("over the %d-byte limit; use Range", f.inlineLimit))
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			w.WriteHeader(200)
			w.Write(content)
			return
		}
		var a, b int64
		if _, err := fmt.Sscanf(rng, "bytes=%d-%d", &a, &b); err != nil || a > b || b >= d.Size {
			apiError(w, 416, "bad_range", "bad range")
			return
		}
		if b-a+1 > f.inlineLimit {
			apiError(w, 413, "too_large", "range over the limit")
			return
		}
		f.rangeGets = append(f.rangeGets, rng)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, d.Size))
		w.Header().Set("Content-Length", strconv.FormatInt(b-a+1, 10))
		w.WriteHeader(206)
		w.Write(content[a : b+1])
	default:
		apiError(w, 405, "method_not_allowed", "no such route")
	}
}

func (f *fakeAPI) list(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit == 0 {
		limit = 50
	}
	start, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
	trash := r.URL.Query().Get("trash") == "true"
	var ids []string // newest first
	for i := len(f.order) - 1; i >= 0; i-- {
		if d := f.docs[f.order[i]]; d != nil && d.trashed() == trash {
			ids = append(ids, f.order[i])
		}
	}
	page := Page{Documents: []Document{}}
	for i := start; i < len(ids) && i < start+limit; i++ {
		page.Documents = append(page.Documents, f.docs[ids[i]].Document)
	}
	if start+limit < len(ids) {
		page.NextCursor = strconv.Itoa(start + limit)
	}
	writeJSONAnswer(w, 200, page)
}

// restore takes d out of the trash.
func (d *fakeDoc) restore() { d.DeletedAt, d.PurgeAt = nil, nil }

// links answers the share link routes of document d: POST and GET
// /documents/{id}/links, DELETE /documents/{id}/links/{link_id}.
func (f *fakeAPI) links(w http.ResponseWriter, r *http.Request, d *fakeDoc, rest []string, body []byte) {
	switch {
	case len(rest) == 0 && r.Method == "POST":
		f.linkPosts = append(f.linkPosts, string(body))
		var req api.CreateLink
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			apiError(w, 400, "invalid", "bad JSON: "+err.Error())
			return
		}
		ttl := int64(api.DefaultLinkTTL)
		if req.ExpiresIn != nil {
			ttl = *req.ExpiresIn
		}
		disp := cmp.Or(req.Disposition, api.DispositionInline)
		switch {
		case ttl < api.MinLinkTTL || ttl > api.DefaultLinkMaxTTL, req.MaxUses != nil && *req.MaxUses < 1,
			disp != api.DispositionInline && disp != api.DispositionAttachment:
			apiError(w, 400, "invalid", "bad link")
			return
		case d.Status != StatusAvailable:
			apiError(w, 409, "conflict", "not available")
			return
		}
		now := time.Now().UTC().Truncate(time.Second)
		id := uuid.NewString()
		l := &api.Link{ID: id, DocumentID: d.ID, URL: f.srv.URL + api.LinksPath + "tok-" + id, ExpiresAt: now.Add(time.Duration(ttl) * time.Second),
			MaxUses: req.MaxUses, Disposition: disp, CreatedAt: now}
		d.links = append([]*api.Link{l}, d.links...)
		w.Header().Set("Location", "/documents/"+d.ID+"/links/"+id)
		writeJSONAnswer(w, 201, l)
	case len(rest) == 0 && r.Method == "GET":
		ls := api.Links{Links: []api.Link{}}
		for _, l := range d.links {
			if !d.revoked[l.ID] {
				ls.Links = append(ls.Links, *l)
			}
		}
		writeJSONAnswer(w, 200, ls)
	case len(rest) == 1 && r.Method == "DELETE":
		for _, l := range d.links {
			if l.ID == rest[0] {
				if d.revoked == nil {
					d.revoked = map[string]bool{}
				}
				d.revoked[l.ID] = true
				w.WriteHeader(204)
				return
			}
		}
		apiError(w, 404, "not_found", "link "+rest[0]+" not found")
	default:
		apiError(w, 405, "method_not_allowed", "no such route")
	}
}

// posted returns the bodies of the POSTs that created share links.
func (f *fakeAPI) posted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.linkPosts)
}

// setAudit gives GET /audit these records, newest first.
func (f *fakeAPI) setAudit(recs []api.AuditRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auditRecs = slices.Clone(recs)
}

// auditQueries returns the queries of the GET /audit requests answered.
func (f *fakeAPI) auditQueries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.auditGets)
}

// audit answers GET /audit as docs/design.md says: filters, limit (100 by
// default, 1000 at most), an opaque cursor; a bad one is a 400.
func (f *fakeAPI) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := api.DefaultAuditLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.MaxAuditLimit {
			apiError(w, 400, "invalid", "bad limit")
			return
		}
		limit = n
	}
	bounds := map[string]time.Time{}
	for _, name := range []string{"since", "until"} {
		if v := q.Get(name); v != "" {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				apiError(w, 400, "invalid", name+" must be an RFC 3339 time")
				return
			}
			bounds[name] = at
		}
	}
	start := 0
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "c"))
		if err != nil || !strings.HasPrefix(v, "c") {
			apiError(w, 400, "invalid", "bad cursor")
			return
		}
		start = n
	}
	f.auditGets = append(f.auditGets, r.URL.RawQuery)
	var selected []api.AuditRecord
	for _, rec := range f.auditRecs {
		at, _ := time.Parse(api.AuditTimeLayout, rec.Time)
		if since, ok := bounds["since"]; ok && at.Before(since) {
			continue
		}
		if until, ok := bounds["until"]; ok && !at.Before(until) {
			continue
		}
		if d := q.Get("document"); d != "" && rec.DocumentID != d {
			continue
		}
		if a := q.Get("action"); a != "" && rec.Action != a {
			continue
		}
		selected = append(selected, rec)
	}
	page := api.AuditPage{Records: []api.AuditRecord{}}
	for i := start; i < len(selected) && i < start+limit; i++ {
		page.Records = append(page.Records, selected[i])
	}
	if start+limit < len(selected) {
		page.NextCursor = "c" + strconv.Itoa(start+limit)
	}
	writeJSONAnswer(w, 200, page)
}
