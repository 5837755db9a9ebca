package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	wire "github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/openapitest"
)

// TestServeShareLinksMatchOpenAPI drives the share link routes of `imago
// serve` as their users would — the owner with a token, the link's holder
// with none — and checks every exchange against docs/openapi.yaml.
func TestServeShareLinksMatchOpenAPI(t *testing.T) {
	spec := openapitest.Repo(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("secret-a tenant-a\nsecret-b tenant-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	srv := startServer(t, map[string]string{
		"IMAGO_DATA_DIR": dataDir, "IMAGO_ADDR": "127.0.0.1:0", "IMAGO_TOKENS": tokens,
		"IMAGO_MAX_INLINE_BYTES": "1MiB", "IMAGO_LINK_MAX_TTL": "2h",
	})
	c := &apiClient{t: t, url: srv.url, http: spec.Client(t, srv.url)}
	const a, b = "secret-a", "secret-b"
	jsonCT := map[string]string{"Content-Type": "application/json"}

	doc := make([]byte, 300_000)
	rand.Read(doc)
	var d wire.Document
	c.want("upload", 201, c.do("POST", "/documents?filename=passport%20%C3%BC.pdf", a, map[string]string{"Content-Type": "application/pdf"}, doc)).json(t, &d)
	links := "/documents/" + d.ID + "/links"

	// Made with every default, and with every field.
	created := c.want("POST links", 201, c.do("POST", links, a, nil, nil))
	var l wire.Link
	created.json(t, &l)
	if loc := created.header.Get("Location"); loc != links+"/"+l.ID {
		t.Fatalf("Location %q, want %s", loc, links+"/"+l.ID)
	}
	if !strings.HasPrefix(l.URL, srv.url+wire.LinksPath) || l.Disposition != wire.DispositionInline || l.MaxUses != nil ||
		l.Uses != 0 || l.DocumentID != d.ID || time.Until(l.ExpiresAt) > time.Hour || time.Until(l.ExpiresAt) < 59*time.Minute {
		t.Fatalf("a default link: %+v (server %s)", l, srv.url)
	}
	var once wire.Link
	c.want("POST links, every field", 201, c.do("POST", links, a, jsonCT, []byte(`{"expires_in":600,"max_uses":1,"disposition":"attachment"}`))).json(t, &once)
	if once.MaxUses == nil || *once.MaxUses != 1 || once.Disposition != wire.DispositionAttachment {
		t.Fatalf("a one-use attachment link: %+v", once)
	}

	// The holder: no token, the document, the link headers.
	holder := func(what string, status int, url string, header map[string]string) answer {
		t.Helper()
		ans := c.want(what, status, c.do("GET", strings.TrimPrefix(url, srv.url), "", header, nil))
		for k, v := range map[string]string{"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"} {
			if got := ans.header.Get(k); got != v {
				t.Fatalf("%s: %s %q, want %q", what, k, got, v)
			}
		}
		return ans
	}
	whole := holder("GET link", 200, l.URL, nil)
	if !bytes.Equal(whole.body, doc) || whole.header.Get("X-Imago-Cache") != "hit" || whole.header.Get("ETag") != `"`+d.SHA256+`"` ||
		!strings.HasPrefix(whole.header.Get("Content-Disposition"), `inline; filename="passport _.pdf"`) {
		t.Fatalf("GET link: %d bytes, headers %v", len(whole.body), whole.header)
	}
	part := holder("GET link, Range", 206, l.URL, map[string]string{"Range": "bytes=0-99"})
	if !bytes.Equal(part.body, doc[:100]) || part.header.Get("Content-Range") != "bytes 0-99/300000" {
		t.Fatalf("GET link, Range: %q", part.header.Get("Content-Range"))
	}
	holder("GET link, If-None-Match", 304, l.URL, map[string]string{"If-None-Match": whole.header.Get("ETag")})
	holder("GET link, Range past the end", 416, l.URL, map[string]string{"Range": "bytes=300000-"})
	att := holder("GET one-use link", 200, once.URL, nil)
	if !strings.HasPrefix(att.header.Get("Content-Disposition"), "attachment; ") {
		t.Fatalf("an attachment link's Content-Disposition: %q", att.header.Get("Content-Disposition"))
	}
	holder("GET one-use link again", 410, once.URL, nil).json(t, new(wire.ErrorBody))
	token := strings.TrimPrefix(l.URL, srv.url+wire.LinksPath)
	holder("GET link, tampered", 404, srv.url+wire.LinksPath+flipChar(token, 10), nil)
	holder("GET link, truncated", 404, srv.url+wire.LinksPath+token[:len(token)-1], nil)
	holder("GET link, garbage", 404, srv.url+wire.LinksPath+"..", nil)

	// Listed with their uses; the owner's token only.
	var list wire.Links
	c.want("GET links", 200, c.do("GET", links, a, nil, nil)).json(t, &list)
	if len(list.Links) != 1 || list.Links[0].ID != l.ID || list.Links[0].Uses != 2 || list.Links[0].URL != l.URL {
		t.Fatalf("GET links (the used-up one is not live): %+v", list.Links)
	}
	c.want("GET links, another tenant", 404, c.do("GET", links, b, nil, nil))
	c.want("GET links, no token", 401, c.do("GET", links, "", nil, nil))
	c.want("GET links, not a UUID", 400, c.do("GET", "/documents/nope/links", a, nil, nil))

	// Refused creations.
	for name, body := range map[string]string{
		"expires_in under a minute": `{"expires_in":59}`, "expires_in over the longest": `{"expires_in":7201}`,
		"expires_in not an integer": `{"expires_in":90.5}`, "expires_in a string": `{"expires_in":"3600"}`,
		"max_uses 0": `{"max_uses":0}`, "a bad disposition": `{"disposition":"download"}`,
		"an unknown field": `{"expire":60}`, "not JSON": `{`,
	} {
		c.want("POST links, "+name, 400, c.do("POST", links, a, jsonCT, []byte(body)))
	}
	c.want("POST links, text/plain", 415, c.do("POST", links, a, map[string]string{"Content-Type": "text/plain"}, []byte(`{}`)))
	c.want("POST links, another tenant", 404, c.do("POST", links, b, nil, nil))
	c.want("POST links, no token", 401, c.do("POST", links, "", nil, nil))
	var pending struct{ ID string }
	c.want("create an upload", 201, c.do("POST", "/documents/uploads", a, jsonCT, []byte(`{"filename":"later.bin","size":10}`))).json(t, &pending)
	c.want("POST links, a pending document", 409, c.do("POST", "/documents/"+pending.ID+"/links", a, nil, nil))

	// Revoked: 410 at once though the document is cached; idempotent.
	c.want("DELETE link, another tenant", 404, c.do("DELETE", links+"/"+l.ID, b, nil, nil))
	c.want("DELETE link, no token", 401, c.do("DELETE", links+"/"+l.ID, "", nil, nil))
	c.want("DELETE link, unknown", 404, c.do("DELETE", links+"/AAAAAAAAAAAAAAAAAAAAAA", a, nil, nil))
	c.want("DELETE link", 204, c.do("DELETE", links+"/"+l.ID, a, nil, nil))
	c.want("DELETE link, again", 204, c.do("DELETE", links+"/"+l.ID, a, nil, nil))
	holder("GET revoked link", 410, l.URL, nil)

	// Over the response limit: 413; its ranges are uses.
	big := make([]byte, 1_500_000)
	rand.Read(big)
	bigID := uploadPresigned(t, c, a, big)
	var bl wire.Link
	c.want("POST links, large document", 201, c.do("POST", "/documents/"+bigID+"/links", a, jsonCT, []byte(`{"max_uses":2}`))).json(t, &bl)
	holder("GET link, over the limit", 413, bl.URL, nil)
	got := holder("GET link, first range", 206, bl.URL, map[string]string{"Range": "bytes=0-999999"}).body
	got = append(got, holder("GET link, second range", 206, bl.URL, map[string]string{"Range": "bytes=1000000-"}).body...)
	if !bytes.Equal(got, big) {
		t.Fatal("a large document through a link's ranges: the bytes differ")
	}
	holder("GET link, a third range of a two-use link", 410, bl.URL, map[string]string{"Range": "bytes=0-9"})

	// Deleted: its live links answer 404.
	var live wire.Link
	c.want("POST links, before the delete", 201, c.do("POST", links, a, nil, nil)).json(t, &live)
	holder("GET link before the delete", 200, live.URL, nil)
	c.want("DELETE document", 204, c.do("DELETE", "/documents/"+d.ID, a, nil, nil))
	holder("GET link of a deleted document", 404, live.URL, nil)
	c.want("GET links of a deleted document", 404, c.do("GET", links, a, nil, nil))

	for _, must := range []struct {
		op     string
		status int
	}{
		{"POST /documents/{id}/links", 201}, {"POST /documents/{id}/links", 400}, {"POST /documents/{id}/links", 401},
		{"POST /documents/{id}/links", 404}, {"POST /documents/{id}/links", 409}, {"POST /documents/{id}/links", 415},
		{"GET /documents/{id}/links", 200}, {"GET /documents/{id}/links", 400}, {"GET /documents/{id}/links", 401}, {"GET /documents/{id}/links", 404},
		{"DELETE /documents/{id}/links/{link_id}", 204}, {"DELETE /documents/{id}/links/{link_id}", 401}, {"DELETE /documents/{id}/links/{link_id}", 404},
		{"GET /links/{token}", 200}, {"GET /links/{token}", 206}, {"GET /links/{token}", 304}, {"GET /links/{token}", 404},
		{"GET /links/{token}", 410}, {"GET /links/{token}", 413}, {"GET /links/{token}", 416},
	} {
		if !spec.Exercised(must.op, must.status) {
			t.Errorf("%s %d was never exercised", must.op, must.status)
		}
	}
	// No log line holds a token: the link id names a link there.
	logs := srv.stdout.String() + srv.stderr.String()
	for _, u := range []string{l.URL, once.URL, bl.URL, live.URL} {
		tok := u[strings.LastIndex(u, "/")+1:]
		if strings.Contains(logs, tok[:40]) {
			t.Fatalf("the server's log holds a share link's token:\n%s", logs)
		}
	}
	if !strings.Contains(logs, l.ID) {
		t.Fatalf("the server's log never names link %s", l.ID)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "link.key")); err != nil {
		t.Fatalf("the link secret's file: %v", err)
	}
}

func flipChar(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// uploadPresigned uploads doc by presigned PUT, as tenant token, and waits
// until it is available.
func uploadPresigned(t *testing.T, c *apiClient, token string, doc []byte) string {
	t.Helper()
	var up wire.CreatedUpload
	c.want("POST /documents/uploads", 201, c.do("POST", "/documents/uploads", token, map[string]string{"Content-Type": "application/json"},
		fmt.Appendf(nil, `{"filename":"big.bin","content_type":"application/octet-stream","size":%d}`, len(doc)))).json(t, &up)
	req, _ := http.NewRequest(up.Method, up.UploadURL, bytes.NewReader(doc))
	for k, v := range up.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT to the upload URL: %d", resp.StatusCode)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var m wire.Document
		json.Unmarshal(c.do("GET", "/documents/"+up.ID, token, nil, nil).body, &m)
		if m.Status == wire.StatusAvailable {
			return up.ID
		}
	}
	t.Fatalf("document %s never became available", up.ID)
	return ""
}

// serveAndPut starts `imago serve` on the embedded backends in a folder of
// the test's and puts a 50,000-byte document there with `imago put`: the
// server, the CLI's environment, the folder, the document and its
// metadata.
func serveAndPut(t *testing.T) (srv *server, env map[string]string, dir string, doc []byte, d wire.Document) {
	t.Helper()
	dir = t.TempDir()
	srv = startServer(t, map[string]string{"IMAGO_DATA_DIR": filepath.Join(dir, "data"), "IMAGO_ADDR": "127.0.0.1:0"})
	env = map[string]string{"IMAGO_URL": srv.url}
	file := filepath.Join(dir, "contract.pdf")
	doc = make([]byte, 50_000)
	rand.Read(doc)
	if err := os.WriteFile(file, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, env, "put", file)
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil {
		t.Fatalf("put: %d %q %s", code, out, errOut)
	}
	return srv, env, dir, doc, d
}

// TestCLIShareAgainstServe makes and uses a link as README shows: `imago
// share`, then the URL with no token at all.
func TestCLIShareAgainstServe(t *testing.T) {
	srv, env, _, doc, d := serveAndPut(t)
	code, out, errOut := run(t, env, "share", "--max-uses", "1", "--expires", "10m", d.ID)
	url := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(url, srv.url+wire.LinksPath) {
		t.Fatalf("share: %d %q %s", code, out, errOut)
	}
	resp, body := get(t, url)
	if resp.StatusCode != 200 || !bytes.Equal(body, doc) {
		t.Fatalf("GET the shared URL: %d", resp.StatusCode)
	}
	if resp, _ := get(t, url); resp.StatusCode != 410 {
		t.Fatalf("GET the used-up URL: %d, want 410", resp.StatusCode)
	}
	code, out, _ = run(t, env, "share", "--json", d.ID)
	var l wire.Link
	if code != 0 || json.Unmarshal([]byte(out), &l) != nil {
		t.Fatalf("share --json: %d %q", code, out)
	}
	if code, out, _ = run(t, env, "links", d.ID); code != 0 || !strings.Contains(out, l.ID) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("links (the live one only): %d %q", code, out)
	}
	if code, _, _ = run(t, env, "unshare", d.ID, l.ID); code != 0 {
		t.Fatalf("unshare: %d", code)
	}
	if resp, _ := get(t, l.URL); resp.StatusCode != 410 {
		t.Fatalf("GET a revoked URL: %d, want 410", resp.StatusCode)
	}
	if code, _, _ = run(t, env, "unshare", d.ID, "AAAAAAAAAAAAAAAAAAAAAA"); code != 3 {
		t.Fatalf("unshare of an unknown link: exit %d, want 3", code)
	}
	if code, _, _ = run(t, env, "share", "00000000-0000-4000-8000-000000000000"); code != 3 {
		t.Fatalf("share of an unknown document: exit %d, want 3", code)
	}
}
