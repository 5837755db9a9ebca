package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// run runs the imago command in process and returns its exit status,
// stdout and stderr.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	status := Main(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
	return status, stdout.String(), stderr.String()
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"}, {"help", "put"},
		{"put", "-h"}, {"get", "-h"}, {"ls", "-h"}, {"stat", "-h"}, {"rm", "--help"}, {"version", "-h"},
		{"serve", "-h"}, {"put", "file", "-h"},
		{"share", "-h"}, {"share", "--expires", "2h", "id", "-h"}, {"links", "-h"}, {"unshare", "--help"}, {"help", "share"},
		{"restore", "-h"}, {"hold", "-h"}, {"release", "--help"}, {"help", "restore"}, {"rm", "--purge", "id", "-h"},
		{"put", "--expires-in", "2h", "f", "-h"}, {"ls", "--trash", "-h"},
		{"audit", "-h"}, {"audit", "verify", "-h"}, {"audit", "--since", "24h", "-h"}, {"help", "audit"},
	} {
		// serve -h must not start a server: the listen address is taken.
		status, stdout, stderr := run(t, map[string]string{"IMAGO_ADDR": "256.0.0.1:1"}, args...)
		if status != 0 || !strings.Contains(stdout, "usage: imago") || stderr != "" {
			t.Errorf("imago %v: exit %d\nstdout: %s\nstderr: %s", args, status, stdout, stderr)
		}
		if strings.Contains(stdout, "serving on") {
			t.Errorf("imago %v started the server", args)
		}
	}
	_, stdout, _ := run(t, nil, "put", "-h")
	for _, flag := range []string{"-meta", "-parallel", "-quiet", "-url", "-token"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("put -h does not mention %s:\n%s", flag, stdout)
		}
	}
	_, stdout, _ = run(t, nil, "share", "-h")
	for _, flag := range []string{"-expires", "-max-uses", "-attachment", "-json", "-url", "-token"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("share -h does not mention %s:\n%s", flag, stdout)
		}
	}
	for cmd, flags := range map[string][]string{"put": {"-expires-in"}, "rm": {"-purge"}, "ls": {"-trash", "-json", "-limit"},
		"restore": {"-url", "-token"}, "hold": {"-url", "-token"}, "release": {"-url", "-token"}} {
		_, stdout, _ = run(t, nil, cmd, "-h")
		for _, flag := range flags {
			if !strings.Contains(stdout, flag) {
				t.Errorf("%s -h does not mention %s:\n%s", cmd, flag, stdout)
			}
		}
	}
	_, stdout, _ = run(t, nil, "-h")
	for _, cmd := range []string{"share [--expires", "links [--json] ID", "unshare ID LINK_ID", "--expires-in DURATION",
		"ls [--trash]", "rm [--purge] ID...", "restore ID...", "hold ID...", "release ID..."} {
		if !strings.Contains(stdout, cmd) {
			t.Errorf("imago -h does not list %s:\n%s", cmd, stdout)
		}
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"put"}, {"put", "--bogus", "f"}, {"put", "-meta", "novalue", "f"},
		{"get"}, {"get", "a", "b"}, {"get", "--parallel", "0", "id"}, {"ls", "--limit", "x"}, {"ls", "extra"},
		{"stat"}, {"stat", "a", "b"}, {"rm"}, {"version", "x"}, {"serve", "extra"}, {"--bogus", "ls"},
		{"share"}, {"share", "--expires", "1.5s", "id"}, {"links"}, {"unshare", "id"},
		{"put", "--expires-in", "1.5s", "f"}, {"restore"}, {"hold"}, {"release"}, {"rm", "--purge"},
	} {
		status, stdout, stderr := run(t, map[string]string{"IMAGO_URL": "http://127.0.0.1:1"}, args...)
		if status != 2 || stdout != "" || !strings.Contains(stderr, "usage") {
			t.Errorf("imago %v: exit %d, want 2\nstdout: %s\nstderr: %s", args, status, stdout, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	status, stdout, _ := run(t, nil, "version")
	if status != 0 || !strings.HasPrefix(stdout, "imago ") {
		t.Fatalf("version: exit %d %q", status, stdout)
	}
}

// TestCLIAgainstServe drives put, ls, stat, get and rm against `imago
// serve` as a user would, and checks what they print and their exit
// statuses.
func TestCLIAgainstServe(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": filepath.Join(dir, "data"), "IMAGO_ADDR": "127.0.0.1:0", "IMAGO_MAX_INLINE_BYTES": "512KiB"})
	env := map[string]string{"IMAGO_URL": srv.url, "XDG_CACHE_HOME": filepath.Join(dir, "cache")}

	docs := map[string][]byte{}
	var paths []string
	for i, size := range []int{1000, 3_000_000, 700_000} { // inline, presigned, presigned
		doc := make([]byte, size)
		rand.Read(doc)
		p := filepath.Join(dir, fmt.Sprintf("in %d.pdf", i))
		os.WriteFile(p, doc, 0o600)
		paths = append(paths, p)
		docs[filepath.Base(p)] = doc
	}
	status, stdout, stderr := run(t, env, append([]string{"put", "-meta", "case=4711", "--parallel", "2"}, paths...)...)
	if status != 0 || stderr != "" {
		t.Fatalf("put: exit %d, stderr %s", status, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("put printed %d lines, want one per file:\n%s", len(lines), stdout)
	}
	var ids []string
	for i, line := range lines {
		var md struct {
			ID, Filename, Status string
			Size                 int64
			Metadata             map[string]string
		}
		if err := json.Unmarshal([]byte(line), &md); err != nil {
			t.Fatalf("put line %d: %v: %s", i, err, line)
		}
		if md.Filename != filepath.Base(paths[i]) || md.Size != int64(len(docs[md.Filename])) || md.Metadata["case"] != "4711" {
			t.Fatalf("put line %d: %s", i, line)
		}
		ids = append(ids, md.ID)
	}

	// ls: one line per document, newest first: id, size, status, created, filename.
	status, stdout, _ = run(t, env, "ls")
	lines = strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if status != 0 || len(lines) != 3 {
		t.Fatalf("ls: exit %d\n%s", status, stdout)
	}
	for i, line := range lines {
		f := strings.Split(line, "\t")
		id := ids[2-i]
		name := filepath.Base(paths[2-i])
		if len(f) != 5 || f[0] != id || f[1] != fmt.Sprint(len(docs[name])) || f[2] != "available" || f[4] != name {
			t.Fatalf("ls line %d: %q, want %s %d available … %s", i, line, id, len(docs[name]), name)
		}
		if _, err := time.Parse(time.RFC3339, f[3]); err != nil {
			t.Fatalf("ls line %d: created %q: %v", i, f[3], err)
		}
	}
	status, stdout, _ = run(t, env, "ls", "--json", "--limit", "2")
	lines = strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if status != 0 || len(lines) != 2 {
		t.Fatalf("ls --json --limit 2: exit %d\n%s", status, stdout)
	}
	for i, line := range lines {
		var md struct{ ID, SHA256 string }
		if err := json.Unmarshal([]byte(line), &md); err != nil || md.ID != ids[2-i] || len(md.SHA256) != 64 {
			t.Fatalf("ls --json line %d: %v %s", i, err, line)
		}
	}

	status, stdout, _ = run(t, env, "stat", ids[1])
	if status != 0 || !strings.Contains(stdout, `"id":"`+ids[1]+`"`) || !strings.Contains(stdout, `"status":"available"`) {
		t.Fatalf("stat: exit %d %s", status, stdout)
	}

	// get: into -o FILE (whole, or Range parts above the server's 512 KiB), and to stdout.
	for i, id := range ids {
		want := docs[filepath.Base(paths[i])]
		dst := filepath.Join(dir, fmt.Sprintf("out-%d", i))
		if status, _, stderr := run(t, env, "get", "-o", dst, "--parallel", "3", id); status != 0 || stderr != "" {
			t.Fatalf("get %s: exit %d, stderr %q", id, status, stderr)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
			t.Fatalf("get %s: the file differs", id)
		}
		if _, err := os.Stat(dst + ".part"); err == nil {
			t.Fatalf("get %s left its .part", id)
		}
		status, stdout, _ := run(t, env, "get", id, "-o", "-")
		if status != 0 || stdout != string(want) {
			t.Fatalf("get -o - %s: exit %d, %d bytes, want %d", id, status, len(stdout), len(want))
		}
	}

	// rm, then everything about those documents is not found: exit 3.
	if status, _, stderr := run(t, env, "rm", ids[0], ids[1]); status != 0 {
		t.Fatalf("rm: exit %d %s", status, stderr)
	}
	missing := filepath.Join(dir, "missing")
	for _, args := range [][]string{{"stat", ids[0]}, {"get", "-o", missing, ids[1]}, {"rm", ids[0]}, {"rm", ids[2], ids[1]}, {"put", filepath.Join(dir, "no such file")}} {
		if status, _, stderr := run(t, env, args...); status != 3 || !strings.Contains(stderr, "not found") && !strings.Contains(stderr, "no such file") {
			t.Fatalf("imago %v: exit %d, want 3: %s", args, status, stderr)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("a get of a deleted document left a file")
	}
	if status, stdout, _ := run(t, env, "ls"); status != 0 || stdout != "" {
		t.Fatalf("ls after rm of everything: exit %d %q", status, stdout)
	}
}

// TestCLIRetriesThroughA503 puts a proxy in front of `imago serve` that
// answers the first request of each kind 503 with Retry-After: put, ls
// and get succeed all the same.
func TestCLIRetriesThroughA503(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": dir, "IMAGO_ADDR": "127.0.0.1:0"})
	target, _ := url.Parse(srv.url)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	seen := map[string]bool{}
	var refused atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := fmt.Sprint(r.Method, strings.Count(r.URL.Path, "/"))
		mu.Lock()
		first := !seen[key]
		seen[key] = true
		mu.Unlock()
		if first {
			refused.Add(1)
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"code":"unavailable","message":"try again"}}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	env := map[string]string{"IMAGO_URL": front.URL}
	p := filepath.Join(dir, "doc.txt")
	os.WriteFile(p, []byte("a document"), 0o600)
	status, stdout, stderr := run(t, env, "put", p)
	if status != 0 {
		t.Fatalf("put: exit %d %s", status, stderr)
	}
	var md struct{ ID string }
	json.Unmarshal([]byte(stdout), &md)
	if status, stdout, _ := run(t, env, "ls"); status != 0 || !strings.HasPrefix(stdout, md.ID) {
		t.Fatalf("ls: exit %d %s", status, stdout)
	}
	status, stdout, stderr = run(t, env, "get", "-o", "-", md.ID)
	if status != 0 || stdout != "a document" {
		t.Fatalf("get: exit %d %q %s", status, stdout, stderr)
	}
	if refused.Load() < 3 {
		t.Fatalf("only %d requests refused", refused.Load())
	}
}

// TestCLIIntegrityFailure: a server whose bytes do not hash to the
// metadata's SHA-256 makes get exit 4 and leave no file.
func TestCLIIntegrityFailure(t *testing.T) {
	const id = "6f1c2a8e-3b4d-4c5e-8f90-1a2b3c4d5e6f"
	content := []byte("these are not the bytes you are looking for")
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/documents/" + id:
			fmt.Fprintf(w, `{"id":%q,"filename":"x.txt","content_type":"text/plain","size":%d,"sha256":"%064x","status":"available","created_at":"2026-12-01T00:00:00Z","metadata":{}}`, id, len(content), 1)
		case "/documents/" + id + "/content":
			w.Write(content)
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()
	dir := t.TempDir()
	status, _, stderr := run(t, map[string]string{"IMAGO_URL": api.URL}, "get", "-o", filepath.Join(dir, "x.txt"), id)
	if status != 4 || !strings.Contains(stderr, "SHA-256") {
		t.Fatalf("get: exit %d, want 4: %s", status, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files left behind: %v", entries)
	}
	if status, _, _ := run(t, map[string]string{"IMAGO_URL": api.URL}, "get", "-o", "-", id); status != 4 {
		t.Fatalf("get -o -: exit %d, want 4", status)
	}
}

// TestGlobalFlags: --url and --token before the command override the
// environment.
func TestGlobalFlags(t *testing.T) {
	var auth atomic.Value
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		fmt.Fprint(w, `{"documents":[]}`)
	}))
	defer api.Close()
	for _, args := range [][]string{{"--url", api.URL, "--token", "s3cret", "ls"}, {"ls", "--url", api.URL, "--token", "s3cret"}} {
		status, _, stderr := run(t, map[string]string{"IMAGO_URL": "http://127.0.0.1:1", "IMAGO_TOKEN": "other"}, args...)
		if status != 0 || auth.Load() != "Bearer s3cret" {
			t.Fatalf("%v: exit %d, Authorization %q %s", args, status, auth.Load(), stderr)
		}
	}
}

// partsProxy stands between the client and `imago serve`, rewriting the
// part URLs serve presigns so that part PUTs go through it too; failFrom
// makes part PUTs from that many on answer 500.
type partsProxy struct {
	url      string
	partPuts atomic.Int64
	failFrom atomic.Int64 // 0: never
}

func newPartsProxy(t *testing.T, backend string) *partsProxy {
	target, _ := url.Parse(backend)
	p := &partsProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasSuffix(resp.Request.URL.Path, "/parts") || resp.Request.Method != "POST" {
			return nil
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		body := strings.ReplaceAll(b.String(), backend, p.url)
		resp.Body = io.NopCloser(strings.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", fmt.Sprint(len(body)))
		return nil
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" && r.URL.Query().Has("partNumber") {
			n := p.partPuts.Add(1)
			if from := p.failFrom.Load(); from > 0 && n >= from {
				w.WriteHeader(500)
				fmt.Fprint(w, `{"error":{"code":"internal","message":"the network went away"}}`)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	p.url = front.URL
	return p
}

// TestCLIPutResumesOnServe interrupts `imago put` of a document in parts
// on `imago serve` and runs it again: the second run sends only the
// parts serve lacks, and the document is the file.
func TestCLIPutResumesOnServe(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": filepath.Join(dir, "data"), "IMAGO_ADDR": "127.0.0.1:0", "IMAGO_MULTIPART_THRESHOLD": "8MiB"})
	proxy := newPartsProxy(t, srv.url)
	env := map[string]string{"IMAGO_URL": proxy.url, "XDG_CACHE_HOME": filepath.Join(dir, "cache")}
	doc := make([]byte, 40<<20+12345) // three parts of 16 MiB
	rand.Read(doc)
	src := filepath.Join(dir, "big.bin")
	os.WriteFile(src, doc, 0o600)

	proxy.failFrom.Store(2) // the first part goes through, the second fails
	status, _, stderr := run(t, env, "put", "--parallel", "1", src)
	if status != 1 || !strings.Contains(stderr, "resume") {
		t.Fatalf("interrupted put: exit %d %s", status, stderr)
	}
	proxy.failFrom.Store(0)
	before := proxy.partPuts.Load()
	status, stdout, stderr := run(t, env, "put", "--parallel", "2", src)
	if status != 0 {
		t.Fatalf("resumed put: exit %d %s", status, stderr)
	}
	if n := proxy.partPuts.Load() - before; n != 2 {
		t.Fatalf("resumed put sent %d parts, want the 2 serve lacks", n)
	}
	var md struct{ ID, Status string }
	json.Unmarshal([]byte(stdout), &md)
	if md.Status != "available" {
		t.Fatalf("resumed put: %s", stdout)
	}
	if _, stdout, _ := run(t, env, "ls"); strings.Count(stdout, "\n") != 1 {
		t.Fatalf("the resumed put made another document:\n%s", stdout)
	}
	dst := filepath.Join(dir, "back.bin")
	if status, _, stderr := run(t, env, "get", "-o", dst, md.ID); status != 0 {
		t.Fatalf("get: exit %d %s", status, stderr)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, doc) {
		t.Fatal("the document differs from the file")
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "cache", "imago", "uploads")); len(entries) != 0 {
		t.Fatalf("upload state left behind: %v", entries)
	}
}

// TestCLIGetResumesOnServe interrupts `imago get` of a document in Range
// parts and runs it again: the second run asks only for what FILE.part
// lacks.
func TestCLIGetResumesOnServe(t *testing.T) {
	f := newRangeFront(t)
	env, ranges := f.env, &f.ranges
	doc, id, dst, stderr := f.putThenInterruptGet(t)
	if !strings.Contains(stderr, "resume") {
		t.Fatalf("interrupted get: %s", stderr)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Fatal("an interrupted get left the file under its name")
	}
	before := ranges.Load()
	if status, _, stderr := run(t, env, "get", "-o", dst, id); status != 0 {
		t.Fatalf("resumed get: exit %d %s", status, stderr)
	}
	// 7 parts of 1 MiB in all, 3 received; the part size is remembered.
	if n := ranges.Load() - before; n != 4 {
		t.Fatalf("resumed get asked for %d ranges, want the 4 missing", n)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, doc) {
		t.Fatal("the resumed download differs")
	}
	for _, leftover := range []string{dst + ".part", dst + ".part.state"} {
		if _, err := os.Stat(leftover); err == nil {
			t.Fatalf("%s left behind", leftover)
		}
	}
}

// TestCLIRefusesAURLThatIsNotHTTP: an API URL that is not http(s)://host
// is a usage error at once, from the flag or from the environment.
func TestCLIRefusesAURLThatIsNotHTTP(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
	}{
		{nil, []string{"--url", "foo", "ls"}},
		{nil, []string{"ls", "--url", "ftp://x"}},
		{nil, []string{"--url", "://", "stat", "id"}},
		{nil, []string{"get", "--url", "http://", "id"}},
		{nil, []string{"put", "--url", "localhost:8080", "file"}},
		{map[string]string{"IMAGO_URL": "foo"}, []string{"rm", "id"}},
		{map[string]string{"IMAGO_ADDR": "bad host:1"}, []string{"ls"}},
	} {
		status, stdout, stderr := run(t, tc.env, tc.args...)
		if status != 2 || stdout != "" || !strings.Contains(stderr, "is not an http:// or https:// URL") {
			t.Errorf("imago %v (env %v): exit %d, want 2\nstdout: %s\nstderr: %s", tc.args, tc.env, status, stdout, stderr)
		}
	}
	for _, ok := range []string{"http://127.0.0.1:8080", "https://abc.execute-api.eu-west-1.amazonaws.com/prod/", "http://[::1]:80"} {
		if err := checkURL(ok); err != nil {
			t.Errorf("checkURL(%s): %v", ok, err)
		}
	}
}

// docServer is an API serving one document of the given filename, which
// counts the requests for its content.
type docServer struct {
	url      string
	id       string
	content  []byte
	contents atomic.Int64
}

func newDocServer(t *testing.T, filename string) *docServer {
	s := &docServer{id: "0f1c2a8e-3b4d-4c5e-8f90-1a2b3c4d5e6f", content: []byte("the document's bytes, " + filename)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/documents/" + s.id:
			json.NewEncoder(w).Encode(map[string]any{"id": s.id, "filename": filename, "content_type": "text/plain", "size": len(s.content),
				"sha256": fmt.Sprintf("%x", sha256.Sum256(s.content)), "status": "available", "created_at": "2026-12-01T00:00:00Z", "metadata": map[string]string{}})
		case "/documents/" + s.id + "/content":
			s.contents.Add(1)
			w.Write(s.content)
		default:
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error":{"code":"not_found","message":"no such document"}}`)
		}
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// TestCLIGetIntoAFolder: get -o DIR writes DIR/<the document's filename>,
// never a path out of DIR, and the id when the filename leaves no name.
func TestCLIGetIntoAFolder(t *testing.T) {
	for filename, want := range map[string]string{
		"report.pdf": "report.pdf", "../../etc/passwd": "passwd", `C:\Users\ann\scan.tiff`: "scan.tiff",
		"..": "", "": "", "dir/": "", "a/..": "",
	} {
		s := newDocServer(t, filename)
		if want == "" {
			want = s.id
		}
		dir := t.TempDir()
		status, _, stderr := run(t, map[string]string{"IMAGO_URL": s.url}, "get", "-o", dir, s.id)
		if status != 0 {
			t.Fatalf("filename %q: exit %d %s", filename, status, stderr)
		}
		entries, _ := os.ReadDir(dir)
		if got, _ := os.ReadFile(filepath.Join(dir, want)); len(entries) != 1 || !bytes.Equal(got, s.content) {
			t.Fatalf("filename %q: the folder holds %v, want just %s", filename, entries, want)
		}
	}
}

// TestCLIGetRefusesToReplaceAFile: an existing file is left alone, and
// nothing downloaded, unless --force is given.
func TestCLIGetRefusesToReplaceAFile(t *testing.T) {
	s := newDocServer(t, "report.pdf")
	env := map[string]string{"IMAGO_URL": s.url}
	dir := t.TempDir()
	file, inDir := filepath.Join(dir, "mine.pdf"), filepath.Join(dir, "report.pdf")
	for _, p := range []string{file, inDir} {
		os.WriteFile(p, []byte("keep me"), 0o600)
	}
	for _, args := range [][]string{{"get", "-o", file, s.id}, {"get", "-o", dir, s.id}} {
		status, _, stderr := run(t, env, args...)
		if status != 1 || !strings.Contains(stderr, "already exists") || !strings.Contains(stderr, "--force") {
			t.Fatalf("imago %v over a file: exit %d, want 1: %s", args, status, stderr)
		}
	}
	for _, p := range []string{file, inDir} {
		if got, _ := os.ReadFile(p); string(got) != "keep me" {
			t.Fatalf("%s was replaced", p)
		}
	}
	if n := s.contents.Load(); n != 0 {
		t.Fatalf("a refused get downloaded the content %d times", n)
	}
	for _, args := range [][]string{{"get", "--force", "-o", file, s.id}, {"get", "-o", dir, "--force", s.id}} {
		if status, _, stderr := run(t, env, args...); status != 0 {
			t.Fatalf("imago %v: exit %d %s", args, status, stderr)
		}
	}
	for _, p := range []string{file, inDir} {
		if got, _ := os.ReadFile(p); !bytes.Equal(got, s.content) {
			t.Fatalf("--force did not replace %s", p)
		}
	}
}

// TestCLIGetIsSilentWithoutATerminal: a get that succeeds prints nothing
// on a stderr that is not a terminal.
func TestCLIGetIsSilentWithoutATerminal(t *testing.T) {
	s := newDocServer(t, "report.pdf")
	dst := filepath.Join(t.TempDir(), "out.pdf")
	status, stdout, stderr := run(t, map[string]string{"IMAGO_URL": s.url}, "get", "-o", dst, s.id)
	if status != 0 || stdout != "" || stderr != "" {
		t.Fatalf("get: exit %d\nstdout: %q\nstderr: %q", status, stdout, stderr)
	}
}

// TestCLIGetIntoAMissingFolder: a folder that does not exist is a failure
// (exit 1) found before anything is downloaded, not a document not found.
func TestCLIGetIntoAMissingFolder(t *testing.T) {
	s := newDocServer(t, "report.pdf")
	dir := t.TempDir()
	dst := filepath.Join(dir, "no", "such", "file")
	status, _, stderr := run(t, map[string]string{"IMAGO_URL": s.url}, "get", "-o", dst, s.id)
	if status != 1 || !strings.Contains(stderr, "does not exist") {
		t.Fatalf("get -o %s: exit %d, want 1: %s", dst, status, stderr)
	}
	if n := s.contents.Load(); n != 0 {
		t.Fatalf("the content was downloaded %d times", n)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

// TestCLIPutIntegrityFailure: a document stored with a SHA-256 other than
// the file's makes put exit 4, naming the document and both hashes.
func TestCLIPutIntegrityFailure(t *testing.T) {
	const id = "7a1c2a8e-3b4d-4c5e-8f90-1a2b3c4d5e6f"
	stored := fmt.Sprintf("%064x", 7)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/documents" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"id":%q,"filename":"x.txt","content_type":"text/plain","size":%d,"sha256":%q,"status":"available","created_at":"2026-12-01T00:00:00Z","metadata":{}}`, id, len(body), stored)
	}))
	defer api.Close()
	src := filepath.Join(t.TempDir(), "x.txt")
	os.WriteFile(src, []byte("a document"), 0o600)
	status, stdout, stderr := run(t, map[string]string{"IMAGO_URL": api.URL, "XDG_CACHE_HOME": t.TempDir()}, "put", src)
	file := fmt.Sprintf("%x", sha256.Sum256([]byte("a document")))
	if status != 4 || stdout != "" || !strings.Contains(stderr, id) || !strings.Contains(stderr, stored) || !strings.Contains(stderr, file) {
		t.Fatalf("put: exit %d, want 4\nstdout: %s\nstderr: %s", status, stdout, stderr)
	}
}

// rangeFront is `imago serve` started on a fresh data folder with a 1 MiB
// response limit, behind a front that answers 500 to every Range request
// from the failFrom-th on (0: never), as a network that goes away would.
type rangeFront struct {
	url              string
	env              map[string]string // the CLI's IMAGO_URL and cache folder
	ranges, failFrom atomic.Int64
}

func newRangeFront(t *testing.T) *rangeFront {
	t.Helper()
	dir := t.TempDir()
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": filepath.Join(dir, "data"), "IMAGO_ADDR": "127.0.0.1:0", "IMAGO_MAX_INLINE_BYTES": "1MiB"})
	target, _ := url.Parse(srv.url)
	rp := httputil.NewSingleHostReverseProxy(target)
	f := &rangeFront{}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			if n := f.ranges.Add(1); f.failFrom.Load() > 0 && n >= f.failFrom.Load() {
				w.WriteHeader(500)
				fmt.Fprint(w, `{"error":{"code":"internal","message":"the network went away"}}`)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	f.url = front.URL
	f.env = map[string]string{"IMAGO_URL": front.URL, "XDG_CACHE_HOME": filepath.Join(dir, "cache")}
	return f
}

// putThenInterruptGet puts a 6 MiB document through f and runs a get of it
// into a fresh folder that fails after three 1 MiB Range parts (4 MiB and
// 2 MiB parts are refused first), as a network that goes away would; it
// checks that get exited 1 and lets Range requests through again. It
// returns the document, its id, the get's -o and the get's stderr.
func (f *rangeFront) putThenInterruptGet(t *testing.T) (doc []byte, id, dst, stderr string) {
	t.Helper()
	dir := t.TempDir()
	doc = make([]byte, 6<<20+321) // over 1 MiB: Range parts of 1 MiB once 4 MiB and 2 MiB were refused
	rand.Read(doc)
	src := filepath.Join(dir, "scan.bin")
	os.WriteFile(src, doc, 0o600)
	status, stdout, stderr := run(t, f.env, "put", src)
	if status != 0 {
		t.Fatalf("put: exit %d %s", status, stderr)
	}
	var md struct{ ID string }
	json.Unmarshal([]byte(stdout), &md)
	dst = filepath.Join(dir, "back.bin")
	f.failFrom.Store(6)
	status, _, stderr = run(t, f.env, "get", "--parallel", "1", "-o", dst, md.ID)
	if status != 1 {
		t.Fatalf("interrupted get: exit %d %s", status, stderr)
	}
	f.failFrom.Store(0)
	return doc, md.ID, dst, stderr
}
