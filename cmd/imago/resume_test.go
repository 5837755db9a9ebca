package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/testenv"
)

// cliChildVar makes the test binary run the imago command line with the
// arguments it holds (a JSON array) instead of the tests: a client the
// test kills -9 is a process of its own.
const cliChildVar = "IMAGO_TEST_CLI_CHILD"

func init() {
	var args []string
	if json.Unmarshal([]byte(os.Getenv(cliChildVar)), &args) != nil {
		return
	}
	os.Exit(Main(context.Background(), args, os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// startCLI starts `imago args...` in a process of its own; done is
// closed when it has exited.
func startCLI(t *testing.T, env map[string]string, args ...string) (cmd *exec.Cmd, done chan struct{}, stderr *syncBuffer) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(self)
	raw, _ := json.Marshal(args)
	cmd.Env = []string{cliChildVar + "=" + string(raw), "PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr = &syncBuffer{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
	})
	return cmd, done, stderr
}

// awsFront stands between the imago client and `imago serve` on the AWS
// backends, as the client's network would:
//   - it asks serve for 5 MiB parts (the smallest S3 takes), so that a
//     file of a few MiB goes in several;
//   - it rewrites the part URLs serve presigns so that part PUTs go
//     through it too, on to S3 with their Host kept (it is signed);
//   - it posts a completed upload's S3 event to serve, as S3 and the
//     relay would.
type awsFront struct {
	t      *testing.T
	url    string
	serve  string
	s3     *url.URL
	bucket string

	mu       sync.Mutex
	partPuts map[int]int // part number → PUTs S3 answered 2xx
	failFrom int         // the part PUTs from this one on answer 500; 0: never
	puts     int
	// onPart, when set, is called as each part body passes, with the
	// part's number and how many of its bytes have passed; it may block.
	onPart func(number int, passed int64)
	busy   sync.WaitGroup // requests being passed on
}

const frontPartSize = 5 << 20

func newAWSFront(t *testing.T, serveURL string, env map[string]string) *awsFront {
	s3, err := url.Parse(env["AWS_ENDPOINT_URL_S3"])
	if err != nil {
		t.Fatal(err)
	}
	f := &awsFront{t: t, serve: serveURL, s3: s3, bucket: env["IMAGO_BUCKET"], partPuts: map[int]int{}}
	target, _ := url.Parse(serveURL)
	api := httputil.NewSingleHostReverseProxy(target)
	api.ModifyResponse = f.modifyAPI
	store := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(s3)
			pr.Out.Host = s3.Host // signed
		},
		ModifyResponse: func(resp *http.Response) error {
			if n, err := strconv.Atoi(resp.Request.URL.Query().Get("partNumber")); err == nil && resp.StatusCode < 300 {
				f.mu.Lock()
				f.partPuts[n]++
				f.mu.Unlock()
			}
			return nil
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.busy.Add(1)
		defer f.busy.Done()
		if !strings.HasPrefix(r.URL.Path, "/"+f.bucket+"/") {
			if r.Method == "POST" && r.URL.Path == "/documents/uploads" {
				f.askForSmallParts(r)
			}
			api.ServeHTTP(w, r)
			return
		}
		if n, err := strconv.Atoi(r.URL.Query().Get("partNumber")); err == nil && r.Method == "PUT" {
			f.mu.Lock()
			f.puts++
			fail := f.failFrom > 0 && f.puts >= f.failFrom
			hook := f.onPart
			f.mu.Unlock()
			if fail {
				w.WriteHeader(500)
				fmt.Fprint(w, `<Error><Code>InternalError</Code><Message>the network went away</Message></Error>`)
				return
			}
			if hook != nil {
				r.Body = &hookedBody{ReadCloser: r.Body, hook: func(passed int64) { hook(n, passed) }}
			}
		}
		store.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// askForSmallParts adds part_size to a POST /documents/uploads.
func (f *awsFront) askForSmallParts(r *http.Request) {
	var req map[string]any
	raw, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(raw, &req); err != nil {
		f.t.Errorf("create upload: %v in %s", err, raw)
		return
	}
	req["part_size"] = frontPartSize
	raw, _ = json.Marshal(req)
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
	r.Header.Set("Content-Length", strconv.Itoa(len(raw)))
}

func (f *awsFront) modifyAPI(resp *http.Response) error {
	r := resp.Request
	switch {
	case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/parts") && resp.StatusCode == 200:
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		raw = bytes.ReplaceAll(raw, []byte(strings.TrimSuffix(f.s3.String(), "/")), []byte(f.url))
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		resp.ContentLength = int64(len(raw))
		resp.Header.Set("Content-Length", strconv.Itoa(len(raw)))
	case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/complete") && resp.StatusCode == 202:
		id := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[1]
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		var d struct{ Size int64 }
		json.Unmarshal(raw, &d)
		status, err := postS3Event(f.serve, f.bucket, "CompleteMultipartUpload", id, d.Size)
		if err != nil {
			return err
		}
		if status != 204 {
			f.t.Errorf("S3 event of %s: %d", id, status)
		}
	}
	return nil
}

// set changes the faults and the hook between runs of the client.
func (f *awsFront) set(failFrom int, onPart func(int, int64)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failFrom, f.puts, f.onPart = failFrom, 0, onPart
}

// sent returns the part PUTs S3 accepted, by part number, and forgets them.
func (f *awsFront) sent() map[int]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	puts := f.partPuts
	f.partPuts = map[int]int{}
	return puts
}

type hookedBody struct {
	io.ReadCloser
	passed int64
	hook   func(passed int64)
}

func (b *hookedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.passed += int64(n)
	b.hook(b.passed)
	return n, err
}

// serveOnAWS starts `imago serve` on the local AWS servers, with the
// front before it, and returns the environment of a client of the front.
func serveOnAWS(t *testing.T) (*server, *awsFront, map[string]string) {
	env := testenv.Require(t, awsVars...)
	testenv.AWSConfig(t)
	dir := t.TempDir()
	env["IMAGO_ADDR"], env["IMAGO_MULTIPART_THRESHOLD"], env["IMAGO_DATA_DIR"] = "127.0.0.1:0", "6MiB", filepath.Join(dir, "data")
	testenv.AddCredentials(env)
	srv := startServer(t, env)
	front := newAWSFront(t, srv.url, env)
	return srv, front, map[string]string{"IMAGO_URL": front.url, "XDG_CACHE_HOME": filepath.Join(dir, "cache")}
}

// pendingUpload is the id of the one interrupted upload whose state the
// client keeps under cache.
func pendingUpload(t *testing.T, cache string) string {
	t.Helper()
	states, _ := filepath.Glob(filepath.Join(cache, "imago", "uploads", "*.json"))
	if len(states) != 1 {
		t.Fatalf("%d upload states kept, want 1", len(states))
	}
	raw, _ := os.ReadFile(states[0])
	var st struct{ ID string }
	if json.Unmarshal(raw, &st); st.ID == "" {
		t.Fatalf("upload state %s", raw)
	}
	return st.ID
}

// putOK checks a put's exit and output and that the document it names
// serves exactly doc, and deletes it.
func putOK(t *testing.T, srvURL string, doc []byte, status int, stdout, stderr string) {
	t.Helper()
	var md struct{ ID, Status, SHA256 string }
	json.Unmarshal([]byte(stdout), &md)
	if status != 0 {
		t.Fatalf("put: exit %d %s", status, stderr)
	}
	defer func() {
		if t.Failed() { // a document other than the file is not left in the shared bucket
			req, _ := http.NewRequest("DELETE", srvURL+"/documents/"+md.ID, nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	if want := fmt.Sprintf("%x", sha256.Sum256(doc)); md.Status != "available" || md.SHA256 != want {
		t.Fatalf("put printed %s, want sha256 %s", stdout, want)
	}
	if got := getInRanges(t, srvURL, md.ID, len(doc), 4<<20); !bytes.Equal(got, doc) {
		t.Fatalf("document %s serves other bytes than the file", md.ID)
	}
	if code := send(t, "DELETE", srvURL+"/documents/"+md.ID, nil, nil); code != 204 {
		t.Fatalf("DELETE %s: %d", md.ID, code)
	}
}

// TestCLIPutResendsAPartS3HoldsOtherBytesOf: an interrupted put leaves
// parts on S3, one of which then holds other bytes of the same size (as a
// PUT cut short may leave it, zero-padded); the resumed put sends that
// part again and its document is the file.
func TestCLIPutResendsAPartS3HoldsOtherBytesOf(t *testing.T) {
	srv, front, env := serveOnAWS(t)
	doc := make([]byte, 3*frontPartSize+1<<20+321) // four parts
	rand.Read(doc)
	src := filepath.Join(t.TempDir(), "scan.bin")
	os.WriteFile(src, doc, 0o600)

	front.set(3, nil) // parts 1 and 2 go through, then the network fails
	if status, _, stderr := run(t, env, "put", "--parallel", "1", src); status != 1 || !strings.Contains(stderr, "resume") {
		t.Fatalf("interrupted put: exit %d %s", status, stderr)
	}
	if puts := front.sent(); len(puts) != 2 {
		t.Fatalf("parts on S3 before the resume: %v, want 1 and 2", puts)
	}
	id := pendingUpload(t, env["XDG_CACHE_HOME"])
	// Part 2 now holds zeros, at its full size.
	a := api{t, srv.url, ""}
	var presigned struct{ Parts []presignedPart }
	a.expect("POST", "/documents/"+id+"/parts", map[string]any{"numbers": []int{2}}, 200, &presigned)
	if status, _ := putPart(t, presigned.Parts[0], make([]byte, frontPartSize)); status != 200 {
		t.Fatalf("PUT zeros as part 2: %d", status)
	}
	var listed struct{ Parts []receivedPart }
	a.expect("GET", "/documents/"+id+"/parts", nil, 200, &listed)
	if len(listed.Parts) != 2 || listed.Parts[1].Size != frontPartSize {
		t.Fatalf("listed parts: %+v", listed.Parts)
	}

	front.set(0, nil)
	status, stdout, stderr := run(t, env, "put", "--parallel", "2", src)
	if puts := front.sent(); puts[1] != 0 || puts[2] != 1 || puts[3] != 1 || puts[4] != 1 {
		t.Errorf("the resumed put sent parts %v, want 2 (other bytes on S3), 3 and 4 once each", puts)
	}
	putOK(t, srv.url, doc, status, stdout, stderr)
}

// TestCLIPutKilledMidPartResumes kills `imago put` (kill -9, by its PID)
// while S3 is receiving one of its parts, round after round, at another
// part and offset each time, and runs the same put again: the document it
// reports is the file, byte for byte.
func TestCLIPutKilledMidPartResumes(t *testing.T) {
	srv, front, env := serveOnAWS(t)
	const rounds = 4
	cutListed := 0
	for round := range rounds {
		doc := make([]byte, 3*frontPartSize+1<<20+round*777) // four parts
		rand.Read(doc)
		src := filepath.Join(t.TempDir(), fmt.Sprintf("round-%d.bin", round))
		os.WriteFile(src, doc, 0o600)
		// Part cut (a whole part, which the client's socket cannot hold
		// at once) is cut after at bytes, every part before it sent.
		cut, at := 2+round%2, int64(round+1)*frontPartSize/10

		reached, killed := make(chan struct{}), make(chan struct{})
		var once sync.Once
		front.set(0, func(n int, passed int64) {
			if n == cut && passed >= at {
				once.Do(func() { close(reached); <-killed })
			}
		})
		cmd, done, stderr := startCLI(t, env, "put", "--parallel", "1", src)
		select {
		case <-reached:
		case <-done:
			t.Fatalf("round %d: put ended before part %d was cut: %s", round, cut, stderr.String())
		case <-time.After(2 * time.Minute):
			t.Fatalf("round %d: part %d never reached %d bytes", round, cut, at)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		close(killed) // the part's body ends with the client: S3 gets it cut short
		front.busy.Wait()
		front.set(0, nil)
		// The parts before the cut are sent; the cut one may have arrived
		// whole after all, when what was left of it fit in the kernel's
		// socket buffers as the client died.
		if puts := front.sent(); len(puts) != cut-1 && len(puts) != cut {
			t.Fatalf("round %d: parts sent before the kill: %v, want 1…%d", round, puts, cut-1)
		}
		// What S3 lists of the part cut: nothing, or (versitygw) the part
		// at its full size with other bytes.
		var listed struct{ Parts []receivedPart }
		api{t, srv.url, ""}.expect("GET", "/documents/"+pendingUpload(t, env["XDG_CACHE_HOME"])+"/parts", nil, 200, &listed)
		for _, p := range listed.Parts {
			if sum := md5.Sum(doc[(p.Number-1)*frontPartSize : min(p.Number*frontPartSize, len(doc))]); p.Number == cut && p.Size == frontPartSize &&
				!strings.EqualFold(strings.Trim(p.ETag, `"`), hex.EncodeToString(sum[:])) {
				cutListed++
			}
		}

		status, stdout, stderrText := run(t, env, "put", "--parallel", "2", src)
		putOK(t, srv.url, doc, status, stdout, stderrText)
		front.sent() // forgotten: the next round counts its own
	}
	t.Logf("%d of %d rounds left S3 listing the part cut at its full size, with other bytes", cutListed, rounds)
}

// TestCLIGetResumeRereadsThePart interrupts `imago get` of a document in
// Range parts, flips a byte inside the prefix FILE.part holds, and runs
// the same get again: FILE is the document all the same, never a file
// with the flipped byte (which the earlier get exited 0 with).
func TestCLIGetResumeRereadsThePart(t *testing.T) {
	f := newRangeFront(t)
	doc, id, dst, _ := f.putThenInterruptGet(t)
	part, err := os.OpenFile(dst+".part", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	part.ReadAt(b, 1<<20+4321) // inside the second 1 MiB part received
	b[0] ^= 1
	part.WriteAt(b, 1<<20+4321)
	part.Close()

	// The prefix no longer reads as it was received: it is downloaded again.
	status, _, stderr := run(t, f.env, "get", "-o", dst, id)
	got, _ := os.ReadFile(dst)
	if status != 0 || !bytes.Equal(got, doc) {
		t.Fatalf("resumed get: exit %d, the file is the document: %v; %s", status, bytes.Equal(got, doc), stderr)
	}
}
