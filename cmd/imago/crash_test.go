package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/app"
)

// serveChildVar makes the test binary run `imago serve` instead of the
// tests: the crash tests need a process of its own to kill -9.
const serveChildVar = "IMAGO_TEST_SERVE_CHILD"

func init() {
	if os.Getenv(serveChildVar) != "1" {
		return
	}
	os.Exit(Main(context.Background(), []string{"serve"}, os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// child is `imago serve` in a process of its own.
type child struct {
	url    string
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
}

func startChild(t *testing.T, env map[string]string) *child {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = []string{serveChildVar + "=1", "IMAGO_ADDR=127.0.0.1:0", "PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(c.kill)
	select {
	case c.url = <-urls:
		return c
	case <-c.done:
		t.Fatalf("imago serve exited at start: %s", c.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("imago serve did not start: %s", c.stderr.String())
	}
	return nil
}

// kill is kill -9 of the serving process, as a crash or an OOM kill is.
func (c *child) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// putPresigned sends body (of length n) to an upload URL; it returns the
// status, or an error when the connection dies.
func putPresigned(up createdUpload, body io.Reader, n int64) (int, error) {
	req, err := http.NewRequest(up.Method, up.UploadURL, body)
	if err != nil {
		return 0, err
	}
	for k, v := range up.Headers {
		req.Header.Set(k, v)
	}
	req.ContentLength = n
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitFor polls cond until it holds, failing the test after a minute (a
// bound on a condition, not a sleep standing in for one).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// docState is GET /documents/{id}.
func docState(t *testing.T, url, id string) (status, sha string) {
	t.Helper()
	resp, body := get(t, url+"/documents/"+id)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /documents/%s: %d %s", id, resp.StatusCode, body)
	}
	var d struct{ Status, SHA256 string }
	json.Unmarshal(body, &d)
	return d.Status, d.SHA256
}

// assertNotHalfServed checks the invariant after a crash: the document is
// available with the right SHA-256 and serves exactly doc, or it is
// pending or failed and serves nothing.
func assertNotHalfServed(t *testing.T, url, id string, doc []byte, part int) string {
	t.Helper()
	status, sha := docState(t, url, id)
	switch status {
	case "available":
		if sha != fmt.Sprintf("%x", sha256.Sum256(doc)) {
			t.Fatalf("available with SHA-256 %s, not the document's", sha)
		}
		if got := getInRanges(t, url, id, len(doc), part); !bytes.Equal(got, doc) {
			t.Fatal("available, but serves other bytes")
		}
	case "pending", "failed":
		req, _ := http.NewRequest("GET", url+"/documents/"+id+"/content", nil)
		req.Header.Set("Range", "bytes=0-99")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 409 {
			t.Fatalf("a %s document's content: %d, want 409", status, resp.StatusCode)
		}
	default:
		t.Fatalf("status %q after the crash", status)
	}
	return status
}

// TestServeCrashMidPut kills `imago serve` while a 6 MB presigned PUT is
// half received, restarts it on the same data, and retries the PUT.
func TestServeCrashMidPut(t *testing.T) {
	dataDir := t.TempDir()
	// One address for both runs: the upload URL names it.
	env := map[string]string{"IMAGO_DATA_DIR": dataDir, "IMAGO_MAX_INLINE_BYTES": "4MiB", "IMAGO_ADDR": freeAddr(t)}
	srv := startChild(t, env)
	const size, sent = 6_000_000, 3_000_000
	doc := make([]byte, size)
	rand.Read(doc)
	up := createUpload(t, srv.url, size)

	// Half of it, then the client stalls: the server holds a half-written file.
	stall := make(chan struct{})
	putErr := make(chan error, 1)
	go func() {
		_, err := putPresigned(up, io.MultiReader(bytes.NewReader(doc[:sent]), stalled(stall)), size)
		putErr <- err
	}()
	staging := filepath.Join(dataDir, "staging")
	waitFor(t, "2 MiB of the PUT to reach the server's disk", func() bool {
		entries, _ := os.ReadDir(staging)
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && fi.Size() >= 2<<20 {
				return true
			}
		}
		return false
	})
	srv.kill()
	close(stall) // the client's body ends; its PUT fails
	if err := <-putErr; err == nil {
		t.Fatal("the PUT succeeded though the server was killed")
	}
	if !holdsPlaintext(dataDir, doc) {
		t.Fatal("the test did not crash the server mid-PUT: no plaintext on disk to clean up")
	}

	srv = startChild(t, env)
	assertNoPlaintext(t, dataDir, doc)
	if status := assertNotHalfServed(t, srv.url, up.ID, doc, 4<<20); status != "pending" {
		t.Fatalf("after the crash mid-PUT: %s, want pending", status)
	}
	if status, err := putPresigned(up, bytes.NewReader(doc), size); err != nil || status != 200 {
		t.Fatalf("retried PUT: %d %v", status, err)
	}
	if status := assertNotHalfServed(t, srv.url, up.ID, doc, 4<<20); status != "available" {
		t.Fatalf("after the retried PUT: %s", status)
	}
	assertNoPlaintext(t, dataDir, doc)
}

// TestServeCrashMidIngest kills `imago serve` while it ingests a staged
// document (held by the test hook after the blob is stored, before the
// record says available), restarts it: the restarted server ingests what
// is staged, and a retried PUT changes nothing.
func TestServeCrashMidIngest(t *testing.T) {
	dataDir, pauseDir := t.TempDir(), t.TempDir()
	env := map[string]string{"IMAGO_DATA_DIR": dataDir, "IMAGO_MAX_INLINE_BYTES": "1MiB", "IMAGO_ADDR": freeAddr(t)}
	paused := map[string]string{app.IngestPauseVar: pauseDir}
	for k, v := range env {
		paused[k] = v
	}
	srv := startChild(t, paused)
	const size = 2_500_000
	doc := make([]byte, size)
	rand.Read(doc)
	up := createUpload(t, srv.url, size)
	putErr := make(chan error, 1)
	go func() {
		_, err := putPresigned(up, bytes.NewReader(doc), size)
		putErr <- err
	}()
	waitFor(t, "the ingest to reach the hook", func() bool {
		_, err := os.Stat(filepath.Join(pauseDir, up.ID))
		return err == nil
	})
	srv.kill()
	if err := <-putErr; err == nil {
		t.Fatal("the PUT succeeded though the server was killed mid-ingest")
	}
	if !holdsPlaintext(dataDir, doc) {
		t.Fatal("the test did not crash the server mid-ingest: no staged plaintext to clean up")
	}

	// The reconciliation at start ingests what the killed ingest left
	// staged in full: nothing retries the PUT for it.
	srv = startChild(t, env)
	waitFor(t, "the staged document to be ingested and its plaintext removed", func() bool {
		status, _ := docState(t, srv.url, up.ID)
		return status != "pending" && !holdsPlaintext(dataDir, doc)
	})
	if status := assertNotHalfServed(t, srv.url, up.ID, doc, 1<<20); status != "available" {
		t.Fatalf("after the crash mid-ingest and the restart: %s, want available", status)
	}
	// A PUT the client retries anyway changes nothing.
	if status, err := putPresigned(up, bytes.NewReader(doc), size); err != nil || status != 200 {
		t.Fatalf("retried PUT: %d %v", status, err)
	}
	if status := assertNotHalfServed(t, srv.url, up.ID, doc, 1<<20); status != "available" {
		t.Fatalf("after the retried PUT: %s", status)
	}
	assertNoPlaintext(t, dataDir, doc)
	if code := send(t, "DELETE", srv.url+"/documents/"+up.ID, nil, nil); code != 204 {
		t.Fatalf("DELETE: %d", code)
	}
}

// TestServeRacingPutsOneBodyWins sends two different bodies of the
// declared size to one upload URL at once, round after round: whichever
// wins, the document serves bytes that hash to its recorded SHA-256.
func TestServeRacingPutsOneBodyWins(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": dataDir, "IMAGO_ADDR": "127.0.0.1:0"})
	const rounds, size = 12, 1_000_000
	mismatched := 0
	for round := range rounds {
		a, b := make([]byte, size), make([]byte, size)
		rand.Read(a)
		rand.Read(b)
		up := createUpload(t, srv.url, size)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, body := range [][]byte{a, b} {
			wg.Go(func() {
				<-start
				putPresigned(up, bytes.NewReader(body), size)
			})
		}
		close(start)
		wg.Wait()
		status, sha := docState(t, srv.url, up.ID)
		resp, content := get(t, srv.url+"/documents/"+up.ID+"/content")
		if status != "available" || resp.StatusCode != 200 {
			t.Fatalf("round %d: status %s, content %d", round, status, resp.StatusCode)
		}
		served := fmt.Sprintf("%x", sha256.Sum256(content))
		if served != sha || resp.Header.Get("ETag") != `"`+served+`"` {
			mismatched++
			t.Errorf("round %d: metadata names %s (ETag %s), content hashes to %s", round, sha, resp.Header.Get("ETag"), served)
		}
		if !bytes.Equal(content, a) && !bytes.Equal(content, b) {
			t.Errorf("round %d: the content is neither body", round)
		}
		// A restart's cold read (the cache filled on upload may hide it).
		if got := getInRanges(t, srv.url, up.ID, size, 300_000); !bytes.Equal(got, content) {
			t.Errorf("round %d: ranged reads differ from the whole", round)
		}
		assertNoPlaintext(t, filepath.Join(dataDir, "staging"), a)
		assertNoPlaintext(t, filepath.Join(dataDir, "staging"), b)
	}
	t.Logf("%d of %d rounds served bytes other than the recorded SHA-256's", mismatched, rounds)
}

// freeAddr is a loopback address nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// stalled blocks until release is closed, then ends the body early.
func stalled(release <-chan struct{}) io.Reader {
	return readerFunc(func([]byte) (int, error) { <-release; return 0, io.ErrUnexpectedEOF })
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// holdsPlaintext reports whether any file under dir holds one of doc's
// aligned 32-byte chunks (every 64-byte run of doc contains one), the
// opposite of what assertNoPlaintext checks.
func holdsPlaintext(dir string, doc []byte) bool {
	const chunk = 32
	index := make(map[[chunk]byte]bool, len(doc)/chunk)
	for i := 0; i+chunk <= len(doc); i += chunk {
		index[[chunk]byte(doc[i:i+chunk])] = true
	}
	found := false
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || found {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for j := 0; j+chunk <= len(data) && !found; j++ {
			found = index[[chunk]byte(data[j:j+chunk])]
		}
		return nil
	})
	return found
}

// inParts is an upload in parts of doc to `imago serve` at url, parts sent,
// not completed yet.
type inParts struct {
	id    string
	parts []partRef
}

// uploadParts creates an upload in parts of doc (in parts of partSize)
// and sends every part.
func uploadParts(t *testing.T, url string, doc []byte, partSize int) inParts {
	t.Helper()
	a := api{t: t, url: url}
	var up multipartUpload
	a.expect("POST", "/documents/uploads", map[string]any{"filename": "disk.img", "size": len(doc), "part_size": partSize}, 201, &up)
	if up.Method != "multipart" || up.PartCount < 2 {
		t.Fatalf("create upload: %+v, want one in parts", up)
	}
	numbers := make([]int, up.PartCount)
	for i := range numbers {
		numbers[i] = i + 1
	}
	var presigned struct{ Parts []presignedPart }
	a.expect("POST", "/documents/"+up.ID+"/parts", map[string]any{"numbers": numbers}, 200, &presigned)
	out := inParts{id: up.ID}
	for _, p := range presigned.Parts {
		status, etag := putPart(t, p, doc[(p.Number-1)*partSize:min(p.Number*partSize, len(doc))])
		if status != 200 || etag == "" {
			t.Fatalf("part %d: %d %q", p.Number, status, etag)
		}
		out.parts = append(out.parts, partRef{p.Number, etag})
	}
	return out
}

// complete sends POST /documents/{id}/complete on ctx; it returns the
// status, or the error of a request that never got an answer.
func (u inParts) complete(ctx context.Context, url string) (int, error) {
	body, _ := json.Marshal(map[string]any{"parts": u.parts})
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/documents/"+u.id+"/complete", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitForFile waits (bounded) until path exists.
func waitForFile(t *testing.T, what, path string) {
	t.Helper()
	waitFor(t, what, func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
}

// TestServeCrashMidAssembly kills `imago serve` while it assembles the
// parts of a completed upload (held by the test hook once the first part
// is written to the assembled file), restarts it on the same data, and
// checks, round after round: no plaintext part or assembled file of the
// document stays once the restarted server has reconciled its staging
// area, and the document ends available with its SHA-256, never pending
// for ever; or, deleted right after the restart, it is gone with every
// staged byte.
func TestServeCrashMidAssembly(t *testing.T) {
	const rounds, partSize = 4, 5 << 20
	for round := range rounds {
		deleteAfter := round%2 == 1
		dataDir, pauseDir := t.TempDir(), t.TempDir()
		env := map[string]string{"IMAGO_DATA_DIR": dataDir, "IMAGO_ADDR": freeAddr(t), "IMAGO_MULTIPART_THRESHOLD": "6MiB"}
		paused := map[string]string{assemblePauseVar: pauseDir}
		for k, v := range env {
			paused[k] = v
		}
		srv := startChild(t, paused)
		doc := make([]byte, partSize+2<<20+round) // over the threshold: two parts
		rand.Read(doc)
		up := uploadParts(t, srv.url, doc, partSize)

		completed := make(chan error, 1)
		go func() { _, err := up.complete(context.Background(), srv.url); completed <- err }()
		waitForFile(t, "the assembly to reach the hook", filepath.Join(pauseDir, up.id))
		staging := filepath.Join(dataDir, "staging")
		half, _ := filepath.Glob(filepath.Join(staging, ".put.*.tmp"))
		if len(half) != 1 || !holdsPlaintext(staging, doc[:partSize]) {
			t.Fatalf("round %d: no half-written assembly to crash in (%v)", round, half)
		}
		srv.kill()
		if err := <-completed; err == nil {
			t.Fatalf("round %d: the completion was answered though the server was killed", round)
		}

		srv = startChild(t, env)
		if deleteAfter {
			if code := send(t, "DELETE", srv.url+"/documents/"+up.id, nil, nil); code != 204 {
				t.Fatalf("round %d: DELETE after the restart: %d", round, code)
			}
			waitFor(t, "every staged byte of the deleted document to go", func() bool { return !holdsPlaintext(dataDir, doc) })
			if resp, _ := get(t, srv.url+"/documents/"+up.id); resp.StatusCode != 404 {
				t.Fatalf("round %d: after DELETE: %d", round, resp.StatusCode)
			}
		} else {
			waitFor(t, "the document to leave pending and its plaintext to go", func() bool {
				status, _ := docState(t, srv.url, up.id)
				return status != "pending" && !holdsPlaintext(dataDir, doc)
			})
			if status := assertNotHalfServed(t, srv.url, up.id, doc, 4<<20); status != "available" {
				t.Fatalf("round %d: after the restart: %s, want available (the parts were all there)", round, status)
			}
		}
		if left := stagedFiles(t, dataDir); len(left) != 0 {
			t.Fatalf("round %d: left in the staging area: %v", round, left)
		}
		srv.kill()
	}
}

// TestServeClientGoneMidCompleteStillIngests: a client that goes away
// while its completion runs (here, while the parts are being assembled)
// cancels nothing: the document still ends available, its staged bytes
// gone. Round after round, the hook holds the assembly until the server
// has seen the client go.
func TestServeClientGoneMidCompleteStillIngests(t *testing.T) {
	const rounds, partSize = 3, 5 << 20
	dataDir, pauseDir := t.TempDir(), t.TempDir()
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": dataDir, "IMAGO_ADDR": "127.0.0.1:0",
		"IMAGO_MULTIPART_THRESHOLD": "6MiB", assemblePauseVar: pauseDir})
	for round := range rounds {
		doc := make([]byte, partSize+2<<20+round) // over the threshold: two parts
		rand.Read(doc)
		up := uploadParts(t, srv.url, doc, partSize)

		ctx, cancel := context.WithCancel(context.Background())
		completed := make(chan error, 1)
		go func() { _, err := up.complete(ctx, srv.url); completed <- err }()
		marker := filepath.Join(pauseDir, up.id)
		waitForFile(t, "the assembly to reach the hook", marker)
		cancel()
		if err := <-completed; err == nil {
			t.Fatalf("round %d: the cancelled completion was answered", round)
		}
		waitForFile(t, "the server to see its client go", marker+".cancelled")
		os.Remove(marker) // the assembly goes on

		waitFor(t, "the document to leave pending and its staged bytes to go", func() bool {
			status, _ := docState(t, srv.url, up.id)
			return status != "pending" && len(stagedFiles(t, dataDir)) == 0
		})
		if status := assertNotHalfServed(t, srv.url, up.id, doc, 4<<20); status != "available" {
			t.Fatalf("round %d: %s, want available", round, status)
		}
		assertNoPlaintext(t, filepath.Join(dataDir, "staging"), doc)
	}
}
