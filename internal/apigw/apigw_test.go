package apigw_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/docstore/servicetest"
	"github.com/imagodocs/imago/internal/lrucache"
)

const inlineLimit = 64 << 10

// api is the three functions over one set of embedded backends.
type api struct {
	t        *testing.T
	backends docstore.Backends
	blobDir  string
	svc      *docstore.Service
	handlers map[apigw.Function]*apigw.Handler
}

func newAPI(t *testing.T) *api {
	t.Helper()
	e := servicetest.OpenEmbedded(t, "", "")
	b := e.Backends
	b.Staging = nil // withStaging gives it one
	a := &api{t: t, blobDir: filepath.Join(e.Config.DataDir, "blobs"), backends: b}
	a.build(docstore.Config{MaxInlineBytes: inlineLimit, CacheMaxBytes: inlineLimit, SegmentSize: 1024})
	return a
}

func (a *api) build(cfg docstore.Config) {
	a.svc = docstore.NewService(a.backends, cfg, nil)
	a.handlers = map[apigw.Function]*apigw.Handler{}
	for _, fn := range apigw.Functions {
		a.handlers[fn] = apigw.New(a.svc, fn, apigw.Options{})
	}
}

// call is a request as API Gateway would deliver it.
type call struct {
	method, path string
	tenant       string // "" = no authorizer context
	headers      map[string]string
	query        map[string]string
	body         []byte
}

type reply struct {
	status  int
	headers map[string]string
	body    []byte
}

func (r reply) errorCode() string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (r reply) document(t *testing.T) docstore.Document {
	t.Helper()
	var d docstore.Document
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatalf("decode document from %s: %v", r.body, err)
	}
	return d
}

// do sends c through the JSON path Lambda uses: event JSON in, response
// JSON out, decoded with the standard events type.
func (a *api) do(c call) reply {
	t := a.t
	t.Helper()
	route, params, ok, _ := apigw.Match(c.method, c.path)
	fn := apigw.Metadata // unmatched requests still reach some function
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "$default", RawPath: c.path,
		Headers: map[string]string{}, QueryStringParameters: c.query}
	if ok {
		fn, ev.RouteKey = route.Function, route.Key()
		ev.PathParameters = params
	}
	ev.RequestContext.HTTP.Method = c.method
	ev.RequestContext.HTTP.Path = c.path
	ev.RequestContext.RequestID = "test"
	for k, v := range c.headers {
		ev.Headers[strings.ToLower(k)] = v
	}
	if c.body != nil {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(c.body), true
	}
	if c.tenant != "" {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": c.tenant}},
		}
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.handlers[fn].Invoke(context.Background(), payload)
	if err != nil {
		t.Fatalf("%s %s: Invoke: %v", c.method, c.path, err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("%s %s: response is not valid JSON: %v\n%s", c.method, c.path, err, out)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			t.Fatal(err)
		}
	}
	r := reply{status: resp.StatusCode, headers: resp.Headers, body: body}
	if r.status >= 400 {
		if r.headers["content-type"] != "application/json" || r.errorCode() == "" {
			t.Fatalf("%s %s: error %d is not the JSON error shape: %s", c.method, c.path, r.status, body)
		}
	}
	return r
}

func randomDoc(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func (a *api) upload(tenant string, body []byte, name string) docstore.Document {
	a.t.Helper()
	r := a.do(call{method: "POST", path: "/documents", tenant: tenant, body: body,
		headers: map[string]string{"Content-Type": "application/pdf"}, query: map[string]string{"filename": name}})
	if r.status != 201 {
		a.t.Fatalf("upload: %d %s", r.status, r.body)
	}
	return r.document(a.t)
}

func multipartBody(t *testing.T, parts ...[3]string) ([]byte, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts { // name, filename ("" for a text part), content
		h := textproto.MIMEHeader{}
		if p[1] != "" {
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p[0], p[1]))
			h.Set("Content-Type", "image/png")
		} else {
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q`, p[0]))
		}
		pw, _ := w.CreatePart(h)
		pw.Write([]byte(p[2]))
	}
	w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

func TestHealthNeedsNoIdentity(t *testing.T) {
	a := newAPI(t)
	r := a.do(call{method: "GET", path: "/health"})
	if r.status != 200 || string(r.body) != `{"status":"ok"}` {
		t.Fatalf("health: %d %s", r.status, r.body)
	}
	// HEAD, as load balancers probe: the same answer without its body.
	r = a.do(call{method: "HEAD", path: "/health"})
	if r.status != 200 || len(r.body) != 0 || r.headers["content-type"] != "application/json" {
		t.Fatalf("HEAD /health: %d %q %v", r.status, r.body, r.headers)
	}
}

func TestUploadAndReadBack(t *testing.T) {
	a := newAPI(t)
	doc := randomDoc(t, 5000)
	sum := sha256.Sum256(doc)

	t.Run("raw body", func(t *testing.T) {
		r := a.do(call{method: "POST", path: "/documents", tenant: "alice", body: doc,
			headers: map[string]string{"Content-Type": "application/pdf", "X-Imago-Meta-Case": "42", "X-Imago-Meta-Owner": "Zoë"},
			query:   map[string]string{"filename": "contract.pdf"}})
		if r.status != 201 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		d := r.document(t)
		if r.headers["location"] != "/documents/"+string(d.ID) {
			t.Errorf("Location %q for id %s", r.headers["location"], d.ID)
		}
		want := docstore.Document{ID: d.ID, Descriptor: docstore.Descriptor{Filename: "contract.pdf", ContentType: "application/pdf", Size: 5000, SHA256: hex.EncodeToString(sum[:])}, Status: "available", CreatedAt: d.CreatedAt, Metadata: map[string]string{"case": "42", "owner": "Zoë"}}
		if fmt.Sprint(d) != fmt.Sprint(want) {
			t.Errorf("document\n got %+v\nwant %+v", d, want)
		}
		if strings.Contains(string(r.body), "key") {
			t.Errorf("metadata JSON mentions key material: %s", r.body)
		}
		got := a.do(call{method: "GET", path: "/documents/" + string(d.ID), tenant: "alice"})
		if got.status != 200 || fmt.Sprint(got.document(t)) != fmt.Sprint(d) {
			t.Errorf("GET metadata: %d %s", got.status, got.body)
		}
		c := a.do(call{method: "GET", path: "/documents/" + string(d.ID) + "/content", tenant: "alice"})
		if c.status != 200 || !bytes.Equal(c.body, doc) {
			t.Fatalf("content: status %d, %d bytes, equal=%v", c.status, len(c.body), bytes.Equal(c.body, doc))
		}
		wantHeaders := map[string]string{
			"content-type": "application/pdf", "content-length": "5000", "etag": `"` + hex.EncodeToString(sum[:]) + `"`,
			"x-imago-cache": "hit", "content-disposition": `attachment; filename="contract.pdf"; filename*=UTF-8''contract.pdf`,
		}
		for k, v := range wantHeaders {
			if c.headers[k] != v {
				t.Errorf("header %s = %q, want %q", k, c.headers[k], v)
			}
		}
	})

	t.Run("multipart", func(t *testing.T) {
		body, ct := multipartBody(t, [3]string{"file", `C:\scans\passport scan.png`, string(doc)}, [3]string{"Country", "", "FR"})
		r := a.do(call{method: "POST", path: "/documents", tenant: "alice", body: body, headers: map[string]string{"Content-Type": ct}})
		if r.status != 201 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		d := r.document(t)
		if d.Filename != "passport scan.png" || d.ContentType != "image/png" || d.Metadata["country"] != "FR" || d.Size != 5000 {
			t.Fatalf("multipart document: %+v", d)
		}
		c := a.do(call{method: "GET", path: "/documents/" + string(d.ID) + "/content", tenant: "alice"})
		if !bytes.Equal(c.body, doc) {
			t.Fatal("multipart upload does not read back identical")
		}
	})
}

func TestBadInputIsRefusedAndNothingStored(t *testing.T) {
	big := randomDoc(t, inlineLimit+1)
	mpBig, mpBigCT := multipartBody(t, [3]string{"file", "big.bin", string(big)})
	noFile, noFileCT := multipartBody(t, [3]string{"note", "", "hello"})
	twoFiles, twoFilesCT := multipartBody(t, [3]string{"file", "a", "x"}, [3]string{"file", "b", "y"})
	cases := []struct {
		name   string
		c      call
		status int
		code   string
	}{
		{"no identity", call{method: "POST", path: "/documents", body: []byte("x")}, 401, "unauthenticated"},
		{"empty body", call{method: "POST", path: "/documents", tenant: "t"}, 400, "invalid"},
		{"raw body over the inline limit", call{method: "POST", path: "/documents", tenant: "t", body: big}, 413, "too_large"},
		{"multipart file over the inline limit", call{method: "POST", path: "/documents", tenant: "t", body: mpBig, headers: map[string]string{"content-type": mpBigCT}}, 413, "too_large"},
		{"malformed multipart", call{method: "POST", path: "/documents", tenant: "t", body: []byte("--xyz\r\nnot a header\r\n"), headers: map[string]string{"content-type": "multipart/form-data; boundary=xyz"}}, 400, "invalid"},
		{"multipart without boundary", call{method: "POST", path: "/documents", tenant: "t", body: []byte("x"), headers: map[string]string{"content-type": "multipart/form-data"}}, 400, "invalid"},
		{"multipart without a file part", call{method: "POST", path: "/documents", tenant: "t", body: noFile, headers: map[string]string{"content-type": noFileCT}}, 400, "invalid"},
		{"two file parts", call{method: "POST", path: "/documents", tenant: "t", body: twoFiles, headers: map[string]string{"content-type": twoFilesCT}}, 400, "invalid"},
		{"multipart/mixed", call{method: "POST", path: "/documents", tenant: "t", body: []byte("x"), headers: map[string]string{"content-type": "multipart/mixed; boundary=a"}}, 415, "unsupported_media_type"},
		{"url-encoded form", call{method: "POST", path: "/documents", tenant: "t", body: []byte("a=b"), headers: map[string]string{"content-type": "application/x-www-form-urlencoded"}}, 415, "unsupported_media_type"},
		{"unparsable content type", call{method: "POST", path: "/documents", tenant: "t", body: []byte("x"), headers: map[string]string{"content-type": "text/"}}, 415, "unsupported_media_type"},
		{"bad metadata key", call{method: "POST", path: "/documents", tenant: "t", body: []byte("x"), headers: map[string]string{"x-imago-meta-bad key": "v"}}, 400, "invalid"},
		{"filename with control character", call{method: "POST", path: "/documents", tenant: "t", body: []byte("x"), query: map[string]string{"filename": "a\x01b"}}, 400, "invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAPI(t)
			r := a.do(tc.c)
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			list := a.do(call{method: "GET", path: "/documents", tenant: "t"})
			if !strings.Contains(string(list.body), `"documents":[]`) {
				t.Errorf("a document was listed after a refused upload: %s", list.body)
			}
			if n := countFiles(t, a.blobDir); n != 0 {
				t.Errorf("%d blob files left after a refused upload", n)
			}
		})
	}
}

func countFiles(t *testing.T, dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func TestReadsOfMissingOrForeignDocuments(t *testing.T) {
	a := newAPI(t)
	d := a.upload("alice", []byte("alice's passport"), "p.pdf")
	unknown := string(docstore.NewID())
	for _, tc := range []struct {
		name, method, path, tenant string
		status                     int
		code                       string
	}{
		{"metadata: not a UUID", "GET", "/documents/not-a-uuid", "alice", 400, "invalid"},
		{"content: not a UUID", "GET", "/documents/123/content", "alice", 400, "invalid"},
		{"delete: not a UUID", "DELETE", "/documents/x", "alice", 400, "invalid"},
		{"metadata: unknown", "GET", "/documents/" + unknown, "alice", 404, "not_found"},
		{"content: unknown", "GET", "/documents/" + unknown + "/content", "alice", 404, "not_found"},
		{"delete: unknown", "DELETE", "/documents/" + unknown, "alice", 404, "not_found"},
		{"metadata: another tenant's", "GET", "/documents/" + string(d.ID), "mallory", 404, "not_found"},
		{"content: another tenant's, cached", "GET", "/documents/" + string(d.ID) + "/content", "mallory", 404, "not_found"},
		{"delete: another tenant's", "DELETE", "/documents/" + string(d.ID), "mallory", 404, "not_found"},
		{"no identity", "GET", "/documents/" + string(d.ID), "", 401, "unauthenticated"},
		{"list without identity", "GET", "/documents", "", 401, "unauthenticated"},
		{"unknown route", "GET", "/nothing", "alice", 404, "not_found"},
		{"wrong method", "PUT", "/documents/" + string(d.ID), "alice", 405, "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(call{method: tc.method, path: tc.path, tenant: tc.tenant})
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if tc.status == 404 && strings.Contains(string(r.body), "alice") {
				t.Fatalf("a 404 leaks the owner: %s", r.body)
			}
		})
	}
	// The foreign reads and deletes changed nothing.
	if r := a.do(call{method: "GET", path: "/documents/" + string(d.ID) + "/content", tenant: "alice"}); string(r.body) != "alice's passport" {
		t.Fatalf("owner's read after foreign attempts: %d %s", r.status, r.body)
	}
	// Another tenant is refused on a cache miss too.
	a.backends.Cache.(*lrucache.Cache).Evict(context.Background(), d.ID)
	if r := a.do(call{method: "GET", path: "/documents/" + string(d.ID) + "/content", tenant: "mallory"}); r.status != 404 {
		t.Fatalf("foreign read on a miss: %d", r.status)
	}
}

func TestDownloadConditionalsRangesAndCache(t *testing.T) {
	a := newAPI(t)
	doc := randomDoc(t, 10_000)
	d := a.upload("t", doc, "scan.tiff")
	path := "/documents/" + string(d.ID) + "/content"
	etag := `"` + d.SHA256 + `"`

	r := a.do(call{method: "GET", path: path, tenant: "t", headers: map[string]string{"If-None-Match": etag}})
	if r.status != 304 || len(r.body) != 0 || r.headers["etag"] != etag {
		t.Fatalf("If-None-Match: %d, %d bytes, etag %q", r.status, len(r.body), r.headers["etag"])
	}
	if r := a.do(call{method: "GET", path: path, tenant: "t", headers: map[string]string{"If-None-Match": `"other"`}}); r.status != 200 {
		t.Fatalf("If-None-Match with another tag: %d", r.status)
	}

	for _, cached := range []bool{true, false} {
		for _, tc := range []struct {
			rng          string
			start, end   int
			contentRange string
		}{
			{"bytes=0-0", 0, 0, "bytes 0-0/10000"},
			{"bytes=1000-3047", 1000, 3047, "bytes 1000-3047/10000"},
			{"bytes=9000-", 9000, 9999, "bytes 9000-9999/10000"},
			{"bytes=-10", 9990, 9999, "bytes 9990-9999/10000"},
			{"bytes=5000-99999", 5000, 9999, "bytes 5000-9999/10000"},
			{"Bytes=0-1", 0, 1, "bytes 0-1/10000"}, // the unit is case-insensitive
		} {
			if !cached {
				a.backends.Cache.(*lrucache.Cache).Evict(context.Background(), d.ID)
			}
			r := a.do(call{method: "GET", path: path, tenant: "t", headers: map[string]string{"Range": tc.rng}})
			if r.status != 206 || r.headers["content-range"] != tc.contentRange || !bytes.Equal(r.body, doc[tc.start:tc.end+1]) {
				t.Fatalf("cached=%v %s: %d %q, %d bytes", cached, tc.rng, r.status, r.headers["content-range"], len(r.body))
			}
			if want := map[bool]string{true: "hit", false: "miss"}[cached]; r.headers["x-imago-cache"] != want {
				t.Fatalf("cached=%v %s: X-Imago-Cache %q", cached, tc.rng, r.headers["x-imago-cache"])
			}
		}
	}
	for _, bad := range []string{"bytes=10000-", "bytes=-0"} {
		r := a.do(call{method: "GET", path: path, tenant: "t", headers: map[string]string{"Range": bad}})
		if r.status != 416 || r.headers["content-range"] != "bytes */10000" {
			t.Fatalf("Range %q: %d content-range %q", bad, r.status, r.headers["content-range"])
		}
	}
	// Several ranges, another unit or no range at all: the Range header is
	// ignored and the whole document served, as RFC 9110 allows.
	for _, ignored := range []string{"bytes=0-1,5-6", "items=0-1", "bytes=20-10", "bytes=abc", "garbage"} {
		r := a.do(call{method: "GET", path: path, tenant: "t", headers: map[string]string{"Range": ignored}})
		if r.status != 200 || r.headers["content-range"] != "" || !bytes.Equal(r.body, doc) {
			t.Fatalf("Range %q: %d content-range %q, %d bytes, want the whole document", ignored, r.status, r.headers["content-range"], len(r.body))
		}
	}

	// A miss loads and fills the cache; the next read is a hit.
	a.backends.Cache.(*lrucache.Cache).Evict(context.Background(), d.ID)
	if r := a.do(call{method: "GET", path: path, tenant: "t"}); r.headers["x-imago-cache"] != "miss" || !bytes.Equal(r.body, doc) {
		t.Fatalf("after eviction: %q, equal %v", r.headers["x-imago-cache"], bytes.Equal(r.body, doc))
	}
	if r := a.do(call{method: "GET", path: path, tenant: "t"}); r.headers["x-imago-cache"] != "hit" {
		t.Fatalf("second read: %q", r.headers["x-imago-cache"])
	}
}

func TestWholeDocumentOverTheResponseLimitAsksForRange(t *testing.T) {
	a := newAPI(t)
	doc := randomDoc(t, 50_000)
	d := a.upload("t", doc, "big.bin")
	a.backends.Cache.(*lrucache.Cache).Evict(context.Background(), d.ID)
	a.build(docstore.Config{MaxInlineBytes: 20_000, CacheMaxBytes: 20_000, SegmentSize: 1024})
	path := "/documents/" + string(d.ID) + "/content"
	r := a.do(call{method: "GET", path: path, tenant: "t"})
	if r.status != 413 || !strings.Contains(string(r.body), "20000") || !strings.Contains(string(r.body), "Range") {
		t.Fatalf("whole GET: %d %s", r.status, r.body)
	}
	var got []byte
	for off := 0; off < len(doc); off += 20_000 {
		r := a.do(call{method: "GET", path: path, tenant: "t", headers: map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", off, off+19_999)}})
		if r.status != 206 {
			t.Fatalf("range at %d: %d %s", off, r.status, r.body)
		}
		got = append(got, r.body...)
	}
	if !bytes.Equal(got, doc) {
		t.Fatal("document assembled from ranges differs")
	}
}

func TestListPagesNewestFirst(t *testing.T) {
	a := newAPI(t)
	var ids []docstore.ID
	for i := 0; i < 5; i++ {
		ids = append(ids, a.upload("lister", []byte(fmt.Sprintf("doc %d", i)), fmt.Sprintf("%d.txt", i)).ID)
	}
	a.upload("someone-else", []byte("not listed"), "x")
	var seen []docstore.ID
	cursor := ""
	for page := 0; ; page++ {
		q := map[string]string{"limit": "2"}
		if cursor != "" {
			q["cursor"] = cursor
		}
		r := a.do(call{method: "GET", path: "/documents", tenant: "lister", query: q})
		if r.status != 200 {
			t.Fatalf("page %d: %d %s", page, r.status, r.body)
		}
		var p docstore.Page
		json.Unmarshal(r.body, &p)
		for _, d := range p.Documents {
			seen = append(seen, d.ID)
		}
		if p.NextCursor == "" {
			if strings.Contains(string(r.body), "next_cursor") {
				t.Fatalf("last page carries next_cursor: %s", r.body)
			}
			break
		}
		cursor = p.NextCursor
	}
	want := []docstore.ID{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want newest first %v", seen, want)
	}

	r := a.do(call{method: "GET", path: "/documents", tenant: "lister", query: map[string]string{"limit": "2"}})
	var first docstore.Page
	json.Unmarshal(r.body, &first)
	forged := []byte(first.NextCursor)
	forged[5] ^= 1
	for name, q := range map[string]map[string]string{
		"forged cursor":          {"cursor": string(forged)},
		"garbage cursor":         {"cursor": "!!!"},
		"zero limit":             {"limit": "0"},
		"limit not a number":     {"limit": "ten"},
		"limit over the maximum": {"limit": "100000"},
	} {
		if r := a.do(call{method: "GET", path: "/documents", tenant: "lister", query: q}); r.status != 400 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := a.do(call{method: "GET", path: "/documents", tenant: "someone-else", query: map[string]string{"cursor": first.NextCursor}}); r.status != 400 {
		t.Errorf("another tenant's cursor: %d %s", r.status, r.body)
	}
}

func TestDeleteRemovesEverything(t *testing.T) {
	a := newAPI(t)
	d := a.upload("t", []byte("to be shredded"), "x.txt")
	if r := a.do(call{method: "DELETE", path: "/documents/" + string(d.ID), tenant: "t"}); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	for _, p := range []string{"/documents/" + string(d.ID), "/documents/" + string(d.ID) + "/content"} {
		if r := a.do(call{method: "GET", path: p, tenant: "t"}); r.status != 404 {
			t.Fatalf("GET %s after delete: %d", p, r.status)
		}
	}
	if n := countFiles(t, a.blobDir); n != 0 {
		t.Fatalf("%d blob files left after delete", n)
	}
	if doc, _ := a.backends.Cache.Get(context.Background(), d.ID); doc != nil {
		t.Fatal("cache entry left after delete")
	}
}

func TestIdempotentUpload(t *testing.T) {
	a := newAPI(t)
	send := func(tenant, key string, body []byte) reply {
		return a.do(call{method: "POST", path: "/documents", tenant: tenant, body: body, headers: map[string]string{"Idempotency-Key": key}})
	}
	first := send("t", "req-1", []byte("contract v1"))
	again := send("t", "req-1", []byte("contract v1"))
	if first.status != 201 || again.status != 201 || first.document(t).ID != again.document(t).ID {
		t.Fatalf("retry: %d %s / %d %s", first.status, first.body, again.status, again.body)
	}
	if r := send("t", "req-1", []byte("contract v2")); r.status != 409 {
		t.Fatalf("same key, other document: %d %s", r.status, r.body)
	}
	if r := send("other", "req-1", []byte("contract v1")); r.status != 201 || r.document(t).ID == first.document(t).ID {
		t.Fatalf("same key, other tenant: %d %s", r.status, r.body)
	}
}

func TestContentDispositionIsSafeForAnyFilename(t *testing.T) {
	for name, want := range map[string]string{
		"report.pdf":         `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`,
		`a"b\c.pdf`:          `attachment; filename="a_b_c.pdf"; filename*=UTF-8''a%22b%5Cc.pdf`,
		"Relevé 2024.pdf":    `attachment; filename="Relev_ 2024.pdf"; filename*=UTF-8''Relev%C3%A9%202024.pdf`,
		"x\r\nSet-Cookie: a": `attachment; filename="x__Set-Cookie: a"; filename*=UTF-8''x%0D%0ASet-Cookie%3A%20a`,
		"":                   "attachment",
	} {
		if got := apigw.ContentDisposition(name); got != want {
			t.Errorf("ContentDisposition(%q)\n got %s\nwant %s", name, got, want)
		}
	}
}

// failingBlobs fails every Put, as an unreachable or broken S3 would.
type failingBlobs struct {
	docstore.BlobStore
	err error
}

func (f failingBlobs) Put(ctx context.Context, id docstore.ID, r io.Reader, size int64) error {
	io.CopyN(io.Discard, r, size/2) // fail half-way through the stream
	return f.err
}

func TestBackendFailuresAreHonestAndLeakNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
	}{
		{"unavailable backend", docstore.E("s3store.Put", docstore.KindUnavailable, errors.New("dial tcp 10.1.2.3:443: i/o timeout")), 503},
		{"broken backend", errors.New("AccessDenied: arn:aws:iam::123456789012:role/secret-role"), 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAPI(t)
			a.backends.Blobs = failingBlobs{BlobStore: a.backends.Blobs, err: tc.err}
			a.build(docstore.Config{MaxInlineBytes: inlineLimit, CacheMaxBytes: inlineLimit, SegmentSize: 1024})
			r := a.do(call{method: "POST", path: "/documents", tenant: "t", body: randomDoc(t, 10_000)})
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			for _, leak := range []string{"10.1.2.3", "arn:aws", "AccessDenied", "s3store"} {
				if strings.Contains(string(r.body), leak) {
					t.Fatalf("response leaks %q: %s", leak, r.body)
				}
			}
			if list := a.do(call{method: "GET", path: "/documents", tenant: "t"}); !strings.Contains(string(list.body), `"documents":[]`) {
				t.Fatalf("a failed upload is listed: %s", list.body)
			}
		})
	}
}

func TestRequestLogIsEmbeddedMetricsAndHoldsNoDocument(t *testing.T) {
	a := newAPI(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	for _, fn := range apigw.Functions {
		a.handlers[fn] = apigw.New(a.svc, fn, apigw.Options{Logger: log, EmbeddedMetrics: true})
	}
	doc := []byte("SECRET-PASSPORT-NUMBER-0123456789 " + strings.Repeat("x", 100))
	d := a.upload("t", doc, "passport.txt")
	a.do(call{method: "GET", path: "/documents/" + string(d.ID) + "/content", tenant: "t"})
	if strings.Contains(logs.String(), "SECRET-PASSPORT") || strings.Contains(logs.String(), base64.StdEncoding.EncodeToString(doc[:30])) {
		t.Fatal("the logs hold document bytes")
	}
	var last map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if rec["msg"] == "request" {
			last = rec
		}
	}
	if last == nil || last["request_id"] != "test" || last["function"] != "download" || last["cache"] != "hit" {
		t.Fatalf("request log line: %v", last)
	}
	aws, _ := last["_aws"].(map[string]any)
	directives, _ := aws["CloudWatchMetrics"].([]any)
	if len(directives) != 1 {
		t.Fatalf("no EMF directive: %v", last)
	}
	directive := directives[0].(map[string]any)
	for _, dims := range directive["Dimensions"].([]any) {
		for _, dim := range dims.([]any) {
			if _, ok := last[dim.(string)].(string); !ok {
				t.Errorf("dimension %v has no value on the line", dim)
			}
		}
	}
	for _, m := range directive["Metrics"].([]any) {
		name := m.(map[string]any)["Name"].(string)
		if _, ok := last[name].(float64); !ok {
			t.Errorf("metric %s has no numeric value on the line", name)
		}
	}
	if last["CacheHits"] != float64(1) || last["CacheMisses"] != float64(0) {
		t.Errorf("cache counts on a hit: hits %v misses %v", last["CacheHits"], last["CacheMisses"])
	}
}

// imago serve's log is a terminal's or a file's, not CloudWatch's: its
// request lines carry the counts but not the EMF directive.
func TestRequestLogWithoutEmbeddedMetricsHasNoDirective(t *testing.T) {
	a := newAPI(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	for _, fn := range apigw.Functions {
		a.handlers[fn] = apigw.New(a.svc, fn, apigw.Options{Logger: log})
	}
	d := a.upload("t", []byte("a document"), "a.txt")
	a.do(call{method: "GET", path: "/documents/" + string(d.ID) + "/content", tenant: "t"})
	requests := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if rec["msg"] != "request" {
			continue
		}
		requests++
		if _, ok := rec["_aws"]; ok {
			t.Errorf("request line carries the EMF directive: %s", line)
		}
		if _, ok := rec["CacheHits"].(float64); !ok {
			t.Errorf("request line lost its cache counts: %s", line)
		}
	}
	if requests != 2 {
		t.Fatalf("%d request lines, want 2:\n%s", requests, logs.String())
	}
}
