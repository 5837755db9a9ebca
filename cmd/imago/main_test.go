package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/testenv"
)

// server is `imago serve` running in this process on a free port.
type server struct {
	url    string
	cancel context.CancelFunc
	done   chan error
	// stdout and stderr are what it has written so far: its log.
	stdout, stderr *syncBuffer
}

// syncBuffer is written by the server and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var servingLine = regexp.MustCompile(`serving on (http://\S+)`)

func startServer(t *testing.T, env map[string]string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	s := &server{cancel: cancel, done: make(chan error, 1), stdout: stdout, stderr: stderr}
	getenv := func(k string) string { return env[k] }
	go func() {
		var err error
		if status := Main(ctx, []string{"serve"}, getenv, nil, stdout, stderr); status != 0 {
			err = fmt.Errorf("exit status %d", status)
		}
		s.done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingLine.FindStringSubmatch(stdout.String()); m != nil {
			s.url = m[1]
			t.Cleanup(s.stop)
			return s
		}
		select {
		case err := <-s.done:
			t.Fatalf("imago serve exited: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	t.Fatalf("imago serve did not start\n%s", stderr.String())
	return nil
}

func (s *server) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel = nil
}

func uploadMultipart(t *testing.T, url, filename string, doc []byte) map[string]any {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fw, _ := w.CreateFormFile("file", filename)
	fw.Write(doc)
	w.WriteField("department", "legal")
	w.Close()
	resp, err := http.Post(url+"/documents", w.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		t.Fatalf("upload: %d %s", resp.StatusCode, raw)
	}
	var md map[string]any
	if err := json.Unmarshal(raw, &md); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Location") != "/documents/"+md["id"].(string) {
		t.Fatalf("Location %q", resp.Header.Get("Location"))
	}
	return md
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestServeEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{"IMAGO_DATA_DIR": dataDir, "IMAGO_ADDR": "127.0.0.1:0"}
	srv := startServer(t, env)

	doc := make([]byte, 3_000_000)
	rand.Read(doc)
	sum := sha256.Sum256(doc)
	md := uploadMultipart(t, srv.url, "scan 1.bin", doc)
	id := md["id"].(string)
	if md["sha256"] != fmt.Sprintf("%x", sum) || md["size"].(float64) != 3_000_000 || md["status"] != "available" {
		t.Fatalf("upload metadata: %v", md)
	}

	resp, body := get(t, srv.url+"/documents/"+id+"/content")
	if resp.StatusCode != 200 || sha256.Sum256(body) != sum {
		t.Fatalf("download: %d, identical=%v", resp.StatusCode, sha256.Sum256(body) == sum)
	}
	if resp.Header.Get("X-Imago-Cache") != "hit" {
		t.Fatalf("download right after upload: X-Imago-Cache %q", resp.Header.Get("X-Imago-Cache"))
	}
	if resp.Header.Get("Content-Length") != "3000000" || resp.Header.Get("ETag") != fmt.Sprintf(`"%x"`, sum) {
		t.Fatalf("headers: %v", resp.Header)
	}

	resp, body = get(t, srv.url+"/documents/"+id)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"department":"legal"`) {
		t.Fatalf("metadata: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, srv.url+"/documents")
	if resp.StatusCode != 200 || !strings.Contains(string(body), id) {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}

	// Nothing under the data folder holds a run of the document.
	assertNoPlaintext(t, dataDir, doc)

	// After a restart on the same data the cache is cold: miss, then hit.
	srv.stop()
	srv = startServer(t, env)
	for _, want := range []string{"miss", "hit"} {
		resp, body = get(t, srv.url+"/documents/"+id+"/content")
		if resp.StatusCode != 200 || sha256.Sum256(body) != sum || resp.Header.Get("X-Imago-Cache") != want {
			t.Fatalf("after restart: %d identical=%v cache=%q, want %q", resp.StatusCode, sha256.Sum256(body) == sum, resp.Header.Get("X-Imago-Cache"), want)
		}
	}

	if status := send(t, "DELETE", srv.url+"/documents/"+id, nil, nil); status != 204 {
		t.Fatalf("delete: %d", status)
	}
	for _, p := range []string{"/documents/" + id, "/documents/" + id + "/content"} {
		if resp, body := get(t, srv.url+p); resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s after delete: %d %s", p, resp.StatusCode, body)
		}
	}
}

// send makes one request and returns its status.
func send(t *testing.T, method, url string, body []byte, header map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

type createdUpload struct {
	ID        string            `json:"id"`
	UploadURL string            `json:"upload_url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expires_at"`
}

// createUpload announces a document of size bytes and checks the answer.
func createUpload(t *testing.T, url string, size int) createdUpload {
	t.Helper()
	resp, err := http.Post(url+"/documents/uploads", "application/json",
		strings.NewReader(fmt.Sprintf(`{"filename":"big scan.tiff","content_type":"image/tiff","size":%d,"metadata":{"case":"7"}}`, size)))
	if err != nil {
		t.Fatal(err)
	}
	var up createdUpload
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != 201 || up.Method != "PUT" || up.ExpiresAt.Before(time.Now()) {
		t.Fatalf("create upload: %d %+v", resp.StatusCode, up)
	}
	if _, body := get(t, url+"/documents/"+up.ID); !strings.Contains(string(body), `"status":"pending"`) {
		t.Fatalf("before the PUT: %s", body)
	}
	return up
}

// getInRanges downloads a document of size bytes in Range parts of part
// bytes, each of which must be a 206.
func getInRanges(t *testing.T, url, id string, size, part int) []byte {
	t.Helper()
	var got []byte
	for off := 0; off < size; off += part {
		req, _ := http.NewRequest("GET", url+"/documents/"+id+"/content", nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+part-1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 206 {
			t.Fatalf("range at %d: %d %s", off, resp.StatusCode, body)
		}
		got = append(got, body...)
	}
	return got
}

func assertNoPlaintext(t *testing.T, dir string, doc []byte) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		testenv.AssertNoPlaintext(t, p, data, doc)
		return nil
	})
}

func TestServeTokensFile(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	os.WriteFile(tokens, []byte("# token tenant\nsecret-a tenant-a\nsecret-b tenant-b\n"), 0o600)
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": dir, "IMAGO_ADDR": "127.0.0.1:0", "IMAGO_TOKENS": tokens})
	do := func(method, path, token string, body []byte) (int, []byte) {
		req, _ := http.NewRequest(method, srv.url+path, bytes.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if status, _ := do("POST", "/documents", "", []byte("x")); status != 401 {
		t.Fatalf("no token: %d", status)
	}
	if status, _ := do("POST", "/documents", "wrong", []byte("x")); status != 401 {
		t.Fatalf("unknown token: %d", status)
	}
	status, body := do("POST", "/documents", "secret-a", []byte("tenant a's document"))
	if status != 201 {
		t.Fatalf("upload: %d %s", status, body)
	}
	var md struct{ ID string }
	json.Unmarshal(body, &md)
	if status, _ := do("GET", "/documents/"+md.ID+"/content", "secret-b", nil); status != 404 {
		t.Fatalf("tenant b reading a's document: %d", status)
	}
	if status, body := do("GET", "/documents/"+md.ID+"/content", "secret-a", nil); status != 200 || string(body) != "tenant a's document" {
		t.Fatalf("owner: %d %s", status, body)
	}
	if status, _ := do("GET", "/health", "", nil); status != 200 {
		t.Fatalf("health without token: %d", status)
	}
}

func TestServeRefusesOversizedRequest(t *testing.T) {
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": t.TempDir(), "IMAGO_ADDR": "127.0.0.1:0"})
	resp, err := http.Post(srv.url+"/documents", "application/octet-stream", bytes.NewReader(make([]byte, 5<<20)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), `"too_large"`) {
		t.Fatalf("5 MiB upload: %d %s", resp.StatusCode, b)
	}
}

func TestMainRejectsBadConfiguration(t *testing.T) {
	var out, errOut bytes.Buffer
	env := map[string]string{"IMAGO_CACHE_TTL": "soon", "IMAGO_DATA_DIR": t.TempDir()}
	status := Main(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, nil, &out, &errOut)
	if status != 1 || !strings.Contains(errOut.String(), "IMAGO_CACHE_TTL") {
		t.Fatalf("bad IMAGO_CACHE_TTL: exit %d, %s", status, errOut.String())
	}
	if status := Main(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, nil, &out, &errOut); status != 2 {
		t.Fatalf("unknown command: exit %d", status)
	}
}

// TestServePresignedUploadOnEmbeddedBackends takes a document over the
// inline limit through POST /documents/uploads and the presigned PUT that
// `imago serve` receives itself, then reads it back in Range parts.
func TestServePresignedUploadOnEmbeddedBackends(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": dataDir, "IMAGO_ADDR": "127.0.0.1:0", "IMAGO_MAX_INLINE_BYTES": "1MiB"})
	doc := make([]byte, 3_500_000)
	rand.Read(doc)
	sum := sha256.Sum256(doc)

	up := createUpload(t, srv.url, len(doc))
	if !strings.HasPrefix(up.UploadURL, srv.url) {
		t.Fatalf("upload URL %s is not imago serve's", up.UploadURL)
	}
	put := func(url string, body []byte, contentType string) int {
		return send(t, up.Method, url, body, map[string]string{"Content-Type": contentType})
	}
	ct := up.Headers["Content-Type"]
	if status := put(up.UploadURL, doc[:1000], ct); status != 400 {
		t.Fatalf("PUT of fewer bytes than signed: %d", status)
	}
	if status := put(up.UploadURL, doc, "text/plain"); status != 403 {
		t.Fatalf("PUT with another Content-Type than signed: %d", status)
	}
	if status := put(strings.Replace(up.UploadURL, "signature=", "signature=0", 1), doc, ct); status != 403 {
		t.Fatalf("PUT with a forged signature: %d", status)
	}
	if status := put(up.UploadURL, doc, ct); status != 200 {
		t.Fatalf("presigned PUT: %d", status)
	}
	_, body := get(t, srv.url+"/documents/"+up.ID)
	if !strings.Contains(string(body), `"status":"available"`) || !strings.Contains(string(body), fmt.Sprintf("%x", sum)) {
		t.Fatalf("after the PUT: %s", body)
	}
	if resp, body := get(t, srv.url+"/documents/"+up.ID+"/content"); resp.StatusCode != 413 || !strings.Contains(string(body), "1048576") {
		t.Fatalf("whole GET over the limit: %d %s", resp.StatusCode, body)
	}
	got := getInRanges(t, srv.url, up.ID, len(doc), 1<<20)
	if sha256.Sum256(got) != sum {
		t.Fatal("the document assembled from ranges differs")
	}
	if entries, _ := os.ReadDir(filepath.Join(dataDir, "staging")); len(entries) != 0 {
		t.Fatalf("staged plaintext left behind: %v", entries)
	}
	assertNoPlaintext(t, dataDir, doc)
	// A replayed PUT of the same URL after ingest changes nothing.
	if status := put(up.UploadURL, doc, ct); status != 200 {
		t.Fatalf("replayed PUT: %d", status)
	}
	if entries, _ := os.ReadDir(filepath.Join(dataDir, "staging")); len(entries) != 0 {
		t.Fatalf("a replayed PUT left plaintext behind: %v", entries)
	}
}

// TestCLIPutAndGet uses `imago put` and `imago get` against `imago serve`:
// a small document inline, a large one through the presigned path and
// back in Range parts.
func TestCLIPutAndGet(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": filepath.Join(dir, "data"), "IMAGO_ADDR": "127.0.0.1:0", "IMAGO_MAX_INLINE_BYTES": "512KiB"})
	env := map[string]string{"IMAGO_URL": srv.url}
	getenv := func(k string) string { return env[k] }
	for _, size := range []int{1000, 2_000_000} {
		doc := make([]byte, size)
		rand.Read(doc)
		src := filepath.Join(dir, fmt.Sprintf("in-%d.pdf", size))
		os.WriteFile(src, doc, 0o600)
		var out, errOut bytes.Buffer
		// The client's inline limit is the API's default (4 MiB); the
		// server's is lower, so the 2 MB document exercises the 413 path.
		if status := Main(context.Background(), []string{"put", "-meta", "case=1", src}, getenv, nil, &out, &errOut); status != 0 {
			t.Fatalf("put %d bytes: exit %d %s", size, status, errOut.String())
		}
		var md map[string]any
		json.Unmarshal(out.Bytes(), &md)
		id, _ := md["id"].(string)
		if md["content_type"] != "application/pdf" || md["status"] != "available" {
			t.Fatalf("put %d bytes: %s", size, out.String())
		}
		dst := filepath.Join(dir, fmt.Sprintf("out-%d", size))
		if status := Main(context.Background(), []string{"get", "-o", dst, id}, getenv, nil, &out, &errOut); status != 0 {
			t.Fatalf("get %d bytes: exit %d %s", size, status, errOut.String())
		}
		got, _ := os.ReadFile(dst)
		if !bytes.Equal(got, doc) {
			t.Fatalf("get %d bytes: the file differs", size)
		}
	}
	var out, errOut bytes.Buffer
	if status := Main(context.Background(), []string{"get", "-o", filepath.Join(dir, "x"), "00000000-0000-4000-8000-000000000000"}, getenv, nil, &out, &errOut); status != 3 {
		t.Fatalf("get of an unknown id: exit %d %s", status, errOut.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Fatal("a failed get left a file")
	}
}

// TestServeEmbeddedIgnoresIMAGO_BUCKET is a user with IMAGO_BUCKET
// exported (for another shell's AWS work, say) but no IMAGO_TABLE: the
// embedded backends serve, and the staging events imago serve makes itself
// are ingested, not ignored as another bucket's (which left every presigned
// upload pending for good).
func TestServeEmbeddedIgnoresIMAGO_BUCKET(t *testing.T) {
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": t.TempDir(), "IMAGO_ADDR": "127.0.0.1:0",
		"IMAGO_MAX_INLINE_BYTES": "1MiB", "IMAGO_BUCKET": "some-bucket"})
	doc := make([]byte, 1_500_000)
	rand.Read(doc)
	up := createUpload(t, srv.url, len(doc))
	if status := send(t, up.Method, up.UploadURL, doc, map[string]string{"Content-Type": up.Headers["Content-Type"]}); status != 200 {
		t.Fatalf("presigned PUT: %d", status)
	}
	if _, body := get(t, srv.url+"/documents/"+up.ID); !strings.Contains(string(body), `"status":"available"`) {
		t.Fatalf("after the PUT: %s", body)
	}
}
