package apigw_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/localstaging"
)

// withStaging gives the API an embedded staging area that takes uploads in
// parts over threshold bytes. Nothing listens at its base URL: the tests
// deliver the PUTs to it directly, as `imago serve` would.
func (a *api) withStaging(threshold int64) (*localstaging.Area, string) {
	a.t.Helper()
	dir := filepath.Join(a.t.TempDir(), "staging")
	st, err := localstaging.New(dir, "staging/", bytes.Repeat([]byte{7}, 32), "http://127.0.0.1:9")
	if err != nil {
		a.t.Fatal(err)
	}
	a.backends.Staging = st
	a.build(docstore.Config{MaxInlineBytes: inlineLimit, CacheMaxBytes: inlineLimit, SegmentSize: 1024, MultipartThreshold: threshold})
	return st, dir
}

func jsonCall(method, path, tenant string, v any) call {
	b, _ := json.Marshal(v)
	return call{method: method, path: path, tenant: tenant, body: b, headers: map[string]string{"Content-Type": "application/json"}}
}

// receive delivers a presigned part PUT to the staging area.
func receive(t *testing.T, st *localstaging.Area, rawURL string, body []byte) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), localstaging.Path))
	etag, err := st.ReceivePart(key, u.Query(), bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("part PUT: %v", err)
	}
	return etag
}

func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	return files
}

func TestUploadInPartsRoutes(t *testing.T) {
	a := newAPI(t)
	st, stagingDir := a.withStaging(5 << 20)
	const partSize = 5 << 20
	doc := randomDoc(t, partSize+100)

	r := a.do(jsonCall("POST", "/documents/uploads", "alice", map[string]any{"filename": "a.bin", "size": len(doc), "part_size": partSize}))
	var up struct {
		ID        string
		Method    string
		PartSize  int64  `json:"part_size"`
		PartCount int    `json:"part_count"`
		UploadURL string `json:"upload_url"`
	}
	json.Unmarshal(r.body, &up)
	if r.status != 201 || up.Method != "multipart" || up.PartSize != partSize || up.PartCount != 2 || up.UploadURL != "" ||
		bytes.Contains(r.body, []byte("upload_url")) || r.headers["location"] != "/documents/"+up.ID {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	path := "/documents/" + up.ID

	// Bad requests: each a JSON error with an honest status.
	for _, tc := range []struct {
		c      call
		status int
	}{
		{call{method: "POST", path: path + "/parts", tenant: "alice", body: []byte(`{"numbers": [1`)}, 400},
		{call{method: "POST", path: path + "/parts", tenant: "alice", body: []byte(`{"numbers": [1]} {}`)}, 400},
		{call{method: "POST", path: path + "/parts", tenant: "alice", body: []byte(`{"numbers": ["1"]}`)}, 400},
		{call{method: "POST", path: path + "/parts", tenant: "alice", body: []byte(`{"numbers": [1]}`), headers: map[string]string{"Content-Type": "text/plain"}}, 415},
		{call{method: "POST", path: path + "/complete", tenant: "alice", body: []byte(`{"parts": [{"number": 1, "etag": "x", "size": 3}]}`)}, 400},
		{jsonCall("POST", "/documents/not-a-uuid/parts", "alice", map[string]any{"numbers": []int{1}}), 400},
		{jsonCall("POST", path+"/parts", "", map[string]any{"numbers": []int{1}}), 401},
		{call{method: "GET", path: path + "/parts"}, 401},
		{jsonCall("POST", path+"/parts", "bob", map[string]any{"numbers": []int{1}}), 404},
		{jsonCall("POST", "/documents/"+string(docstore.NewID())+"/complete", "alice", map[string]any{"parts": []any{}}), 404},
		{jsonCall("POST", "/documents/uploads", "alice", map[string]any{"size": 7 << 20, "part_size": 0}), 400},
		{jsonCall("POST", "/documents/uploads", "alice", map[string]any{"size": int64(5<<40) + 1}), 413},
	} {
		if got := a.do(tc.c); got.status != tc.status {
			t.Errorf("%s %s %s: %d %s, want %d", tc.c.method, tc.c.path, tc.c.body, got.status, got.body, tc.status)
		}
	}

	r = a.do(jsonCall("POST", path+"/parts", "alice", map[string]any{"numbers": []int{2, 1}}))
	var pp struct {
		Parts []struct {
			Number int
			URL    string
			Method string
		}
	}
	json.Unmarshal(r.body, &pp)
	if r.status != 200 || len(pp.Parts) != 2 || pp.Parts[0].Number != 2 || pp.Parts[1].Number != 1 || pp.Parts[0].Method != "PUT" {
		t.Fatalf("presign parts: %d %s", r.status, r.body)
	}
	e2 := receive(t, st, pp.Parts[0].URL, doc[partSize:])
	e1 := receive(t, st, pp.Parts[1].URL, doc[:partSize])

	r = a.do(call{method: "GET", path: path + "/parts", tenant: "alice"})
	want := fmt.Sprintf(`{"parts":[{"number":1,"size":%d,"etag":%q},{"number":2,"size":100,"etag":%q}]}`, partSize, e1, e2)
	if r.status != 200 || string(r.body) != want {
		t.Fatalf("list parts: %d %s, want %s", r.status, r.body, want)
	}
	parts := []map[string]any{{"number": 1, "etag": e1}, {"number": 2, "etag": strings.Trim(e2, `"`)}} // quotes optional
	r = a.do(jsonCall("POST", path+"/complete", "alice", map[string]any{"parts": parts}))
	if d := r.document(t); r.status != 202 || d.Status != docstore.StatusPending || d.ID != docstore.ID(up.ID) {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	// Nothing ingests it here: completing it again before the ingest is a
	// conflict, and so are its parts routes.
	if r := a.do(jsonCall("POST", path+"/complete", "alice", map[string]any{"parts": parts})); r.status != 409 {
		t.Fatalf("a second complete before the ingest: %d %s", r.status, r.body)
	}
	if r := a.do(call{method: "GET", path: path + "/parts", tenant: "alice"}); r.status != 409 {
		t.Fatalf("list parts after complete: %d %s", r.status, r.body)
	}
	// The assembled object awaits its ingest: it is the document.
	rc, size, err := st.Open(t.Context(), "staging/"+up.ID)
	if err != nil || size != int64(len(doc)) {
		t.Fatalf("staged object after complete: %d bytes, %v", size, err)
	}
	rc.Close()
	// DELETE before the ingest removes it too.
	if r := a.do(call{method: "DELETE", path: path, tenant: "alice"}); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if files := filesUnder(t, stagingDir); len(files) != 0 {
		t.Fatalf("staged bytes left after DELETE: %v", files)
	}
	if err := a.svc.Ingest(t.Context(), "staging/"+up.ID); err != nil {
		t.Fatalf("a late event after DELETE: %v", err)
	}

	// A single-PUT upload is not one in parts.
	r = a.do(jsonCall("POST", "/documents/uploads", "alice", map[string]any{"filename": "s.bin", "size": 1000}))
	single := r.document(t)
	if r := a.do(jsonCall("POST", "/documents/"+string(single.ID)+"/parts", "alice", map[string]any{"numbers": []int{1}})); r.status != 409 {
		t.Fatalf("parts of a single-PUT upload: %d %s", r.status, r.body)
	}
}
