//go:build linux

package lambdae2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/s3store"
	"github.com/imagodocs/imago/internal/testenv"
)

// document is the metadata JSON of docs/design.md ("Metadata JSON"), and
// nothing more.
type document struct {
	ID          string            `json:"id"`
	Filename    string            `json:"filename"`
	ContentType string            `json:"content_type"`
	Size        int64             `json:"size"`
	SHA256      string            `json:"sha256"`
	Status      string            `json:"status"`
	CreatedAt   time.Time         `json:"created_at"`
	Metadata    map[string]string `json:"metadata"`
	// The document's policy: expires_at when it has an expiry,
	// deleted_at and purge_at in the trash.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	LegalHold bool      `json:"legal_hold"`
	DeletedAt time.Time `json:"deleted_at,omitzero"`
	PurgeAt   time.Time `json:"purge_at,omitzero"`
}

type page struct {
	Documents  []document `json:"documents"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// decodeStrict decodes a JSON answer that must hold exactly v's fields:
// a field the design does not name (key material, say) fails the test.
func decodeStrict(t testing.TB, what string, r reply, v any) {
	t.Helper()
	if ct := r.header("content-type"); ct != "application/json" {
		t.Fatalf("%s: content-type %q, want application/json", what, ct)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v in %q", what, err, snippet(r.body))
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkDoc compares a document's metadata with what was uploaded.
func checkDoc(t testing.TB, what string, got document, want document) {
	t.Helper()
	if got.ID == "" || got.Filename != want.Filename || got.ContentType != want.ContentType ||
		got.Size != want.Size || got.SHA256 != want.SHA256 || got.Status != want.Status ||
		got.CreatedAt.IsZero() || fmt.Sprint(got.Metadata) != fmt.Sprint(want.Metadata) {
		t.Fatalf("%s: metadata %+v, want %+v", what, got, want)
	}
	if d := time.Since(got.CreatedAt); d < -time.Minute || d > 10*time.Minute {
		t.Fatalf("%s: created_at %s is not now", what, got.CreatedAt)
	}
}

// s3Client talks to the local S3 server, as an auditor would.
func s3Client(t testing.TB) (*s3.Client, string) {
	t.Helper()
	cfg := testenv.AWSConfig(t, "S3")
	return s3store.NewClient(cfg), os.Getenv("IMAGO_BUCKET")
}

// objectGone reports whether HeadObject answers 404 for key.
func objectGone(t testing.TB, c *s3.Client, bucket, key string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err == nil {
		return false
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == 404 {
		return true
	}
	t.Fatalf("HeadObject %s: %v", key, err)
	return false
}

// TestLambdaE2E_Routes drives every route of the HTTP API through the three
// functions under the emulator, with the events API Gateway sends.
func TestLambdaE2E_Routes(t *testing.T) {
	t.Parallel()
	requireEnv(t)
	up, down, meta := startFunction(t, fnUpload), startFunction(t, fnDownload), startFunction(t, fnMetadata)
	tenant := "e2e-" + randomHex(8)
	other := "e2e-other-" + randomHex(8)

	// GET /health: no identity needed, no backend touched.
	r := meta.call(t, apiEvent(t, apiRequest{sample: "health", route: "GET /health"})).expect(t, "GET /health", 200)
	var health map[string]string
	decodeStrict(t, "GET /health", r, &health)
	if health["status"] != "ok" || len(health) != 1 {
		t.Fatalf("GET /health: %v", health)
	}

	// POST /documents, raw body with Content-Type, ?filename=, metadata
	// headers and an Idempotency-Key.
	doc1 := randomBytes(2_500_000)
	filename1 := "contract ü 2026.pdf"
	idemKey := "e2e-" + randomHex(16)
	rawUpload := apiRequest{sample: "upload", route: "POST /documents", sub: tenant,
		query:   url.Values{"filename": {filename1}},
		headers: map[string]string{"content-type": "application/pdf", "x-imago-meta-case": "4711", "idempotency-key": idemKey},
		body:    doc1, binary: true}
	r = up.call(t, apiEvent(t, rawUpload)).expect(t, "POST /documents (raw)", 201)
	var d1 document
	decodeStrict(t, "POST /documents (raw)", r, &d1)
	checkDoc(t, "POST /documents (raw)", d1, document{Filename: filename1, ContentType: "application/pdf",
		Size: int64(len(doc1)), SHA256: sha256Hex(doc1), Status: "available", Metadata: map[string]string{"case": "4711"}})
	if loc := r.header("location"); loc != "/documents/"+d1.ID {
		t.Fatalf("POST /documents: location %q, want /documents/%s", loc, d1.ID)
	}
	// The same request again (a client's retry) is the same document.
	r = up.call(t, apiEvent(t, rawUpload)).expect(t, "POST /documents (retried)", 201)
	var again document
	decodeStrict(t, "POST /documents (retried)", r, &again)
	if again.ID != d1.ID || again.SHA256 != d1.SHA256 {
		t.Fatalf("a retried upload with the same Idempotency-Key made another document: %s, first %s", again.ID, d1.ID)
	}

	// POST /documents, multipart/form-data: a "file" part and a text part.
	doc2 := randomBytes(1_000_000)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	ph := textproto.MIMEHeader{}
	ph.Set("Content-Disposition", `form-data; name="file"; filename="scan.png"`)
	ph.Set("Content-Type", "image/png")
	pw, _ := mw.CreatePart(ph)
	pw.Write(doc2)
	mw.WriteField("country", "FR")
	mw.Close()
	r = up.call(t, apiEvent(t, apiRequest{sample: "upload-multipart", route: "POST /documents", sub: tenant,
		headers: map[string]string{"content-type": mw.FormDataContentType()}, body: form.Bytes(), binary: true})).
		expect(t, "POST /documents (multipart)", 201)
	var d2 document
	decodeStrict(t, "POST /documents (multipart)", r, &d2)
	checkDoc(t, "POST /documents (multipart)", d2, document{Filename: "scan.png", ContentType: "image/png",
		Size: int64(len(doc2)), SHA256: sha256Hex(doc2), Status: "available", Metadata: map[string]string{"country": "FR"}})

	// GET /documents/{id}
	getMeta := func(id, sub string) reply {
		return meta.call(t, apiEvent(t, apiRequest{sample: "get-metadata", route: "GET /documents/{id}", id: id, sub: sub}))
	}
	r = getMeta(d1.ID, tenant).expect(t, "GET /documents/{id}", 200)
	var m1 document
	decodeStrict(t, "GET /documents/{id}", r, &m1)
	if fmt.Sprint(m1) != fmt.Sprint(d1) {
		t.Fatalf("GET /documents/{id}: %+v, upload answered %+v", m1, d1)
	}

	// GET /documents, newest first, one per page: the cursor leads to the
	// second page, which is the last and has no cursor.
	list := func(sub string, q url.Values) reply {
		return meta.call(t, apiEvent(t, apiRequest{sample: "list", route: "GET /documents", query: q, sub: sub}))
	}
	r = list(tenant, url.Values{"limit": {"1"}}).expect(t, "GET /documents?limit=1", 200)
	var p1 page
	decodeStrict(t, "GET /documents?limit=1", r, &p1)
	if len(p1.Documents) != 1 || p1.Documents[0].ID != d2.ID || p1.NextCursor == "" {
		t.Fatalf("first page: %+v, want [%s] and a cursor", p1, d2.ID)
	}
	r = list(tenant, url.Values{"limit": {"1"}, "cursor": {p1.NextCursor}}).expect(t, "GET /documents?cursor=", 200)
	var p2 page
	decodeStrict(t, "GET /documents?cursor=", r, &p2)
	if len(p2.Documents) != 1 || p2.Documents[0].ID != d1.ID || p2.NextCursor != "" {
		t.Fatalf("second page: %+v, want [%s] and no cursor", p2, d1.ID)
	}
	if bytes.Contains(r.body, []byte("next_cursor")) {
		t.Fatalf("the last page names a next_cursor: %s", r.body)
	}
	r = list(tenant, nil).expect(t, "GET /documents", 200)
	var all page
	decodeStrict(t, "GET /documents", r, &all)
	if len(all.Documents) != 2 || all.Documents[0].ID != d2.ID || all.Documents[1].ID != d1.ID || all.NextCursor != "" {
		t.Fatalf("GET /documents: %+v", all)
	}
	forged := []byte(p1.NextCursor)
	forged[len(forged)/2] ^= 1
	list(tenant, url.Values{"cursor": {string(forged)}}).expectError(t, "a forged cursor", 400, "invalid")
	list(other, url.Values{"cursor": {p1.NextCursor}}).expectError(t, "another tenant's cursor", 400, "invalid")
	r = list(other, nil).expect(t, "another tenant's GET /documents", 200)
	var none page
	decodeStrict(t, "another tenant's GET /documents", r, &none)
	if len(none.Documents) != 0 {
		t.Fatalf("another tenant lists %+v", none)
	}

	// GET /documents/{id}/content: the upload wrote through to the cache.
	content := func(id, sub string, headers map[string]string) reply {
		sample := "download"
		if headers["range"] != "" {
			sample = "download-range"
		}
		return down.call(t, apiEvent(t, apiRequest{sample: sample, route: "GET /documents/{id}/content", id: id, sub: sub, headers: headers}))
	}
	etag1 := `"` + sha256Hex(doc1) + `"`
	r = content(d1.ID, tenant, nil).expect(t, "GET content", 200)
	wantHeaders := map[string]string{
		"content-type":           "application/pdf",
		"content-length":         strconv.Itoa(len(doc1)),
		"etag":                   etag1,
		"x-imago-cache":          "hit",
		"accept-ranges":          "bytes",
		"content-disposition":    `attachment; filename="contract _ 2026.pdf"; filename*=UTF-8''contract%20%C3%BC%202026.pdf`,
		"x-content-type-options": "nosniff",
	}
	for name, want := range wantHeaders {
		if got := r.header(name); got != want {
			t.Errorf("GET content: %s %q, want %q", name, got, want)
		}
	}
	if !r.IsBase64Encoded || !bytes.Equal(r.body, doc1) {
		t.Fatalf("GET content: base64 %v, %d bytes, identical %v", r.IsBase64Encoded, len(r.body), bytes.Equal(r.body, doc1))
	}

	// A miss (the cache entry gone) is answered from S3 and refills the cache.
	evictFromCache(t, d2.ID)
	r = content(d2.ID, tenant, nil).expect(t, "GET content (miss)", 200)
	if r.header("x-imago-cache") != "miss" || !bytes.Equal(r.body, doc2) || r.header("content-type") != "image/png" {
		t.Fatalf("GET content after eviction: cache %q, identical %v, type %q", r.header("x-imago-cache"), bytes.Equal(r.body, doc2), r.header("content-type"))
	}
	r = content(d2.ID, tenant, nil).expect(t, "GET content (refilled)", 200)
	if r.header("x-imago-cache") != "hit" || !bytes.Equal(r.body, doc2) {
		t.Fatalf("GET content after a miss: cache %q, identical %v", r.header("x-imago-cache"), bytes.Equal(r.body, doc2))
	}

	// If-None-Match: 304, no body.
	r = content(d1.ID, tenant, map[string]string{"if-none-match": etag1}).expect(t, "GET content, If-None-Match", 304)
	if r.header("etag") != etag1 || len(r.body) != 0 {
		t.Fatalf("304: etag %q, %d body bytes", r.header("etag"), len(r.body))
	}

	// Range: 206 with exactly those bytes; a suffix range; an unsatisfiable one.
	r = content(d1.ID, tenant, map[string]string{"range": "bytes=1000-199999"}).expect(t, "GET content, Range", 206)
	if cr := r.header("content-range"); cr != "bytes 1000-199999/2500000" {
		t.Fatalf("206: content-range %q", cr)
	}
	if r.header("content-length") != "199000" || !bytes.Equal(r.body, doc1[1000:200000]) {
		t.Fatalf("206: content-length %q, identical %v", r.header("content-length"), bytes.Equal(r.body, doc1[1000:200000]))
	}
	r = content(d1.ID, tenant, map[string]string{"range": "bytes=-100"}).expect(t, "GET content, suffix Range", 206)
	if !bytes.Equal(r.body, doc1[len(doc1)-100:]) || r.header("content-range") != "bytes 2499900-2499999/2500000" {
		t.Fatalf("suffix range: content-range %q, identical %v", r.header("content-range"), bytes.Equal(r.body, doc1[len(doc1)-100:]))
	}
	r = content(d1.ID, tenant, map[string]string{"range": "bytes=3000000-"})
	r.expectError(t, "an unsatisfiable Range", 416, "range_not_satisfiable")
	if cr := r.header("content-range"); cr != "bytes */2500000" {
		t.Fatalf("416: content-range %q", cr)
	}

	// The inline limit exactly: the largest upload and the largest whole
	// download, which must fit Lambda's payloads (6 MB) base64 and all.
	big := randomBytes(maxInline)
	r = up.call(t, apiEvent(t, apiRequest{sample: "upload", route: "POST /documents", sub: tenant,
		query: url.Values{"filename": {"big.bin"}}, headers: map[string]string{"content-type": "application/octet-stream"},
		body: big, binary: true})).expect(t, "POST /documents of exactly the limit", 201)
	var dBig document
	decodeStrict(t, "POST /documents of exactly the limit", r, &dBig)
	evictFromCache(t, dBig.ID) // the download reads S3 and refills the cache
	r = content(dBig.ID, tenant, nil).expect(t, "GET content of exactly the limit", 200)
	if !bytes.Equal(r.body, big) || r.header("x-imago-cache") != "miss" {
		t.Fatalf("GET content of %d bytes: identical %v, cache %q", len(big), bytes.Equal(r.body, big), r.header("x-imago-cache"))
	}
	if len(r.raw) > 6<<20 {
		t.Fatalf("the answer to GET content is %d bytes, over Lambda's 6 MB response payload", len(r.raw))
	}
	up.call(t, apiEvent(t, apiRequest{sample: "upload", route: "POST /documents", sub: tenant,
		headers: map[string]string{"content-type": "application/octet-stream"}, body: append(big, 0), binary: true})).
		expectError(t, "POST /documents over the limit", 413, "too_large")
	meta.call(t, apiEvent(t, apiRequest{sample: "delete", route: "DELETE /documents/{id}", id: dBig.ID, sub: tenant})).
		expect(t, "DELETE (limit-sized document)", 204)

	// Another tenant's document is a 404, the very answer an unknown id gets.
	unknown := "00000000-0000-4000-8000-" + randomHex(6)
	sameAsUnknown := func(what string, theirs, unknownReply reply) {
		t.Helper()
		msgTheirs := theirs.expectError(t, what+" of another tenant", 404, "not_found")
		msgUnknown := unknownReply.expectError(t, what+" of an unknown id", 404, "not_found")
		if strings.ReplaceAll(msgTheirs, d1.ID, unknown) != msgUnknown {
			t.Fatalf("%s: another tenant's document answers %q, an unknown one %q", what, msgTheirs, msgUnknown)
		}
	}
	sameAsUnknown("GET /documents/{id}", getMeta(d1.ID, other), getMeta(unknown, other))
	sameAsUnknown("GET content", content(d1.ID, other, nil), content(unknown, other, nil))
	del := func(id, sub string) reply {
		return meta.call(t, apiEvent(t, apiRequest{sample: "delete", route: "DELETE /documents/{id}", id: id, sub: sub}))
	}
	sameAsUnknown("DELETE", del(d1.ID, other), del(unknown, other))

	// No caller identity: 401, before anything is read or written.
	up.call(t, apiEvent(t, apiRequest{sample: "upload", route: "POST /documents",
		headers: map[string]string{"content-type": "text/plain"}, body: []byte("anonymous")})).
		expectError(t, "POST /documents without identity", 401, "unauthenticated")
	getMeta(d1.ID, "").expectError(t, "GET /documents/{id} without identity", 401, "unauthenticated")
	content(d1.ID, "", nil).expectError(t, "GET content without identity", 401, "unauthenticated")
	list("", nil).expectError(t, "GET /documents without identity", 401, "unauthenticated")
	del(d1.ID, "").expectError(t, "DELETE without identity", 401, "unauthenticated")

	// DELETE: 204, then the document is gone everywhere: metadata, content
	// (cache included), the blob in S3.
	r = del(d1.ID, tenant).expect(t, "DELETE", 204)
	if len(r.body) != 0 {
		t.Fatalf("204 with a body: %q", r.body)
	}
	getMeta(d1.ID, tenant).expectError(t, "GET /documents/{id} after DELETE", 404, "not_found")
	content(d1.ID, tenant, nil).expectError(t, "GET content after DELETE", 404, "not_found")
	del(d1.ID, tenant).expectError(t, "DELETE after DELETE", 404, "not_found")
	c, bucket := s3Client(t)
	if !objectGone(t, c, bucket, "blobs/"+d1.ID) {
		t.Fatalf("the blob of a deleted document is still in S3")
	}
	del(d2.ID, tenant).expect(t, "DELETE (second document)", 204)
}

// evictFromCache removes a document's cache entry from Redis, as an expiry would.
func evictFromCache(t testing.TB, id string) {
	t.Helper()
	opts, err := redis.ParseURL(os.Getenv("IMAGO_REDIS_URL"))
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := rc.Del(ctx, testenv.CacheEntryKey(id)).Result()
	if err != nil || n != 1 {
		t.Fatalf("DEL %s: %d, %v (was the upload not written through?)", testenv.CacheEntryKey(id), n, err)
	}
}
