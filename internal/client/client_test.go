package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordSleeps makes the waits between attempts instant and returns
// what they would have been.
func recordSleeps(t *testing.T) func() []time.Duration {
	var mu sync.Mutex
	var waits []time.Duration
	sleepHook = func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
	}
	t.Cleanup(func() { sleepHook = nil })
	return func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(waits)
	}
}

func testClient(t *testing.T, f *fakeAPI, opt Options) *Client {
	opt.BaseURL = f.srv.URL
	opt.InlineLimit = f.inlineLimit
	if opt.StateDir == "" {
		opt.StateDir = t.TempDir()
	}
	if opt.PartSize == 0 {
		opt.PartSize = 256 << 10
	}
	return New(opt)
}

func randomFile(t *testing.T, size int) (string, []byte) {
	t.Helper()
	doc := make([]byte, size)
	rand.Read(doc)
	path := filepath.Join(t.TempDir(), "scan.tiff")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, doc
}

// failTimes answers 503 (or status) with Retry-After to the first n
// requests that match.
func failTimes(n int, status int, retryAfter string, match func(*http.Request) bool) func(http.ResponseWriter, *http.Request) bool {
	var left atomic.Int64
	left.Store(int64(n))
	return func(w http.ResponseWriter, r *http.Request) bool {
		if !match(r) || left.Add(-1) < 0 {
			return false
		}
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		apiError(w, status, "unavailable", "try later")
		return true
	}
}

func TestRetriesHonourRetryAfter(t *testing.T) {
	waits := recordSleeps(t)
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	path, doc := randomFile(t, 1000)
	d, err := c.Put(context.Background(), path, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.setHook(failTimes(2, http.StatusServiceUnavailable, "3", func(r *http.Request) bool { return r.Method == "GET" }))
	got, err := c.Stat(context.Background(), d.ID)
	if err != nil || got.SHA256 != d.SHA256 {
		t.Fatalf("stat after two 503s: %v %+v", err, got)
	}
	if n := f.count("GET /documents/{id}"); n != 3 {
		t.Fatalf("GET /documents/{id} sent %d times, want 3 (two 503s, then 200)", n)
	}
	w := waits()
	if len(w) != 2 || w[0] < 3*time.Second || w[1] < 3*time.Second {
		t.Fatalf("waits %v, want two of at least Retry-After's 3s", w)
	}

	// 429 with an HTTP-date, on a download's Range parts.
	f.setHook(failTimes(1, http.StatusTooManyRequests, time.Now().Add(5*time.Second).UTC().Format(http.TimeFormat),
		func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/content") }))
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := c.Get(context.Background(), d.ID, dst, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); !bytes.Equal(b, doc) {
		t.Fatal("downloaded bytes differ")
	}
	if w := waits(); len(w) != 3 || w[2] < 3*time.Second {
		t.Fatalf("waits %v, want a third honouring the HTTP-date", w)
	}
}

func TestRetryBackoffGrowsAndGivesUp(t *testing.T) {
	waits := recordSleeps(t)
	f := newFakeAPI(t)
	c := testClient(t, f, Options{MaxAttempts: 5, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	f.setHook(failTimes(100, http.StatusServiceUnavailable, "", func(*http.Request) bool { return true }))
	_, err := c.Stat(context.Background(), "00000000-0000-4000-8000-000000000000")
	if !isStatus(err, 503) || !strings.Contains(err.Error(), "after 5 attempts") {
		t.Fatalf("err %v", err)
	}
	w := waits()
	if len(w) != 4 {
		t.Fatalf("%d waits, want 4", len(w))
	}
	for i, d := range w { // each drawn from the upper half of 100ms·2^i, capped at 1s
		hi := min(100*time.Millisecond<<i, time.Second)
		if d < hi/2 || d > hi {
			t.Fatalf("wait %d is %v, want within [%v, %v]", i, d, hi/2, hi)
		}
	}
}

func TestNoRetryOfAPermanentAnswer(t *testing.T) {
	recordSleeps(t)
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	_, err := c.Stat(context.Background(), "00000000-0000-4000-8000-000000000000")
	if !IsNotFound(err) || f.count("GET /documents/{id}") != 1 {
		t.Fatalf("404: %v, sent %d times", err, f.count("GET /documents/{id}"))
	}
}

func TestRetryOfANetworkFailure(t *testing.T) {
	recordSleeps(t)
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	var dropped atomic.Int64
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if dropped.Add(1) > 1 {
			return false
		}
		conn, _, err := w.(http.Hijacker).Hijack() // close the connection without answering
		if err == nil {
			conn.Close()
		}
		return true
	})
	if _, err := c.ListPage(context.Background(), 10, ""); err != nil {
		t.Fatalf("after a dropped connection: %v", err)
	}
	if n := f.count("GET /documents"); n != 2 {
		t.Fatalf("sent %d times, want 2", n)
	}
}

// TestStallTimeoutRetries answers headers and then sends nothing: the
// stall timeout ends the attempt, and the next one succeeds.
func TestStallTimeoutRetries(t *testing.T) {
	recordSleeps(t)
	f := newFakeAPI(t)
	c := testClient(t, f, Options{StallTimeout: 100 * time.Millisecond, PartSize: 1 << 20})
	path, doc := randomFile(t, 500_000)
	d, err := c.Put(context.Background(), path, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var stalled atomic.Int64
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/content") || stalled.Add(1) > 1 {
			return false
		}
		w.Header().Set("Content-Length", "500000")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // until the client gives up
		return true
	})
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := c.Get(context.Background(), d.ID, dst, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); !bytes.Equal(b, doc) || stalled.Load() != 2 {
		t.Fatalf("identical %v, content GETs %d", bytes.Equal(b, doc), stalled.Load())
	}
}

// TestPutBySize takes each size through the path the contract gives it:
// inline, presigned PUT, multipart.
func TestPutBySize(t *testing.T) {
	f := newFakeAPI(t)
	f.pendingPolls = 2
	c := testClient(t, f, Options{Parallel: 3})
	for _, tc := range []struct {
		size  int
		route string
	}{
		{1000, "POST /documents"},
		{int(f.inlineLimit) + 1, "PUT /_staging"},
		{int(f.threshold) + 12345, "POST /documents/{id}/complete"},
	} {
		path, doc := randomFile(t, tc.size)
		before := f.count(tc.route)
		progress := &countingProgress{}
		d, err := c.Put(context.Background(), path, PutOptions{Metadata: map[string]string{"case": "7"}, Progress: progress})
		if err != nil {
			t.Fatalf("%d bytes: %v", tc.size, err)
		}
		if d.Status != StatusAvailable || d.Size != int64(tc.size) || d.Metadata["case"] != "7" || d.ContentType != "image/tiff" || d.Filename != "scan.tiff" {
			t.Fatalf("%d bytes: %+v", tc.size, d)
		}
		if f.count(tc.route) != before+1 {
			t.Fatalf("%d bytes did not go through %s", tc.size, tc.route)
		}
		if !bytes.Equal(f.doc(d.ID).content, doc) {
			t.Fatalf("%d bytes: the server holds other bytes", tc.size)
		}
		if progress.total != int64(tc.size) || progress.moved.Load() != int64(tc.size) || !progress.finished {
			t.Fatalf("%d bytes: progress %d of %d, finished %v", tc.size, progress.moved.Load(), progress.total, progress.finished)
		}
	}
	if _, partPuts := f.snapshot(); len(partPuts) != 5 {
		t.Fatalf("%d parts sent, want 5", len(partPuts))
	}
}

type countingProgress struct {
	total, done int64
	moved       atomic.Int64
	finished    bool
}

func (p *countingProgress) Start(total, done int64) { p.total, p.done = total, done }
func (p *countingProgress) Add(n int64)             { p.moved.Add(n) }
func (p *countingProgress) Finish()                 { p.finished = true }

// TestPutResumesMultipart interrupts a multipart upload and runs Put
// again: it sends exactly the parts the server lacks.
func TestPutResumesMultipart(t *testing.T) {
	recordSleeps(t)
	f := newFakeAPI(t)
	c := testClient(t, f, Options{Parallel: 2})
	path, doc := randomFile(t, 10<<20+777) // 11 parts of 1 MiB
	var sent atomic.Int64
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/_parts/") && sent.Add(1) > 4 {
			apiError(w, 500, "internal", "the machine went away") // not retried: the put stops
			return true
		}
		return false
	})
	// One part at a time until the failure: a part PUT the interrupted
	// client gave up on could reach the server after the fact, and be
	// stored while the resumed Put sends it.
	first := New(Options{BaseURL: f.srv.URL, InlineLimit: f.inlineLimit, StateDir: c.opt.StateDir, Parallel: 1})
	if _, err := first.Put(context.Background(), path, PutOptions{}); err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("interrupted put: %v", err)
	}
	f.idle()
	ids, _ := f.snapshot()
	if len(ids) != 1 {
		t.Fatalf("%d documents created, want 1", len(ids))
	}
	id := ids[0]
	received := f.received(id)
	if received != 4 {
		t.Fatalf("%d parts received before the interruption, want 4", received)
	}

	f.setHook(nil)
	before := f.count("PUT /_parts")
	progress := &countingProgress{}
	d, err := c.Put(context.Background(), path, PutOptions{Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != id || f.count("POST /documents/uploads") != 1 {
		t.Fatalf("resumed put made another document: %s, %d uploads created", d.ID, f.count("POST /documents/uploads"))
	}
	if n := f.count("PUT /_parts") - before; n != 11-received {
		t.Fatalf("resumed put sent %d parts, want the %d missing", n, 11-received)
	}
	_, partPuts := f.snapshot()
	for n, puts := range partPuts {
		if puts != 1 {
			t.Fatalf("part %d stored %d times", n, puts)
		}
	}
	if !bytes.Equal(f.doc(id).content, doc) || d.Status != StatusAvailable {
		t.Fatalf("resumed upload: status %s, identical %v", d.Status, bytes.Equal(f.doc(id).content, doc))
	}
	if progress.done != int64(received)<<20 || progress.done+progress.moved.Load() != int64(len(doc)) {
		t.Fatalf("progress: %d already there + %d moved, of %d", progress.done, progress.moved.Load(), len(doc))
	}
	if entries, _ := os.ReadDir(c.opt.StateDir); len(entries) != 0 {
		t.Fatalf("state left after the upload completed: %v", entries)
	}
}

// TestPutResendsPartsNotOfTheFile interrupts a multipart upload, then
// makes the server hold received parts with other bytes of the same size
// (as S3 may list a part whose PUT was cut) or list one with an ETag that
// names no MD5: the resumed Put sends those again, and the document is
// the file.
func TestPutResendsPartsNotOfTheFile(t *testing.T) {
	for _, tc := range []struct {
		received    int64 // parts received before the interruption
		overwritten int   // a part the server then holds zeros of
		noMD5       int   // a part listed with an ETag of an object in parts
	}{
		{received: 5, overwritten: 2, noMD5: 4},
		{received: 1, overwritten: 1}, // no part listed is of the file
		{received: 2, noMD5: 2},
	} {
		recordSleeps(t)
		f := newFakeAPI(t)
		c := testClient(t, f, Options{Parallel: 1})
		path, doc := randomFile(t, 10<<20+777) // 11 parts of 1 MiB
		var sent atomic.Int64
		f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/_parts/") && sent.Add(1) > tc.received {
				apiError(w, 500, "internal", "the machine went away")
				return true
			}
			return false
		})
		if _, err := c.Put(context.Background(), path, PutOptions{}); err == nil {
			t.Fatal("interrupted put succeeded")
		}
		f.idle()
		f.setHook(nil)
		ids, _ := f.snapshot()
		id := ids[0]
		if n := f.received(id); n != int(tc.received) {
			t.Fatalf("%+v: %d parts received before the interruption", tc, n)
		}
		if tc.overwritten > 0 {
			f.overwritePart(id, tc.overwritten, make([]byte, 1<<20))
		}
		f.mu.Lock()
		f.listedETag = func(n int, etag string) string {
			if n == tc.noMD5 {
				return strings.TrimSuffix(etag, `"`) + `-1"`
			}
			return etag
		}
		f.mu.Unlock()

		d, err := c.Put(context.Background(), path, PutOptions{})
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		_, partPuts := f.snapshot()
		for n := 1; n <= 11; n++ {
			want := 1
			if n == tc.overwritten || n == tc.noMD5 {
				want = 2
			}
			if partPuts[n] != want {
				t.Errorf("%+v: part %d sent %d times, want %d", tc, n, partPuts[n], want)
			}
		}
		if !bytes.Equal(f.doc(id).content, doc) || d.SHA256 != fmt.Sprintf("%x", sha256.Sum256(doc)) {
			t.Fatalf("%+v: the server holds other bytes (SHA-256 %s)", tc, d.SHA256)
		}
	}
}

func TestMD5OfETag(t *testing.T) {
	const sum = "9e107d9d372bb6826bd81d3542a419d6"
	for etag, want := range map[string]bool{
		`"` + sum + `"`: true, sum: true, `"` + strings.ToUpper(sum) + `"`: true,
		`"` + sum + `-3"`: false, `"` + sum[:31] + `"`: false, `"` + sum[:31] + `x"`: false, `""`: false, "": false,
	} {
		got, ok := md5OfETag(etag)
		if ok != want || ok && fmt.Sprintf("%x", got) != sum {
			t.Errorf("md5OfETag(%s) = %x, %v; want %v", etag, got, ok, want)
		}
	}
}

// TestPutChecksTheStoredSHA256: on every path, a document stored with a
// SHA-256 other than the file's is an *IntegrityError naming both.
func TestPutChecksTheStoredSHA256(t *testing.T) {
	f := newFakeAPI(t)
	f.wrongSHA = true
	c := testClient(t, f, Options{})
	for _, size := range []int{1000, int(f.inlineLimit) + 1, int(f.threshold) + 1} {
		path, doc := randomFile(t, size)
		d, err := c.Put(context.Background(), path, PutOptions{})
		var integrity *IntegrityError
		if !errors.As(err, &integrity) {
			t.Fatalf("%d bytes: err %v, want an integrity error", size, err)
		}
		file := fmt.Sprintf("%x", sha256.Sum256(doc))
		if !integrity.Upload || integrity.ID != d.ID || d.ID == "" || integrity.Want != file || integrity.Got != d.SHA256 || d.SHA256 == file {
			t.Fatalf("%d bytes: %+v, document %+v", size, integrity, d)
		}
		for _, s := range []string{d.ID, file, d.SHA256} {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("%d bytes: %q does not name %s", size, err, s)
			}
		}
	}
}

// TestPutStartsOverWhenTheFileChanged: a resumed upload's parts are of
// the old bytes, so a file modified since is uploaded anew.
func TestPutStartsOverWhenTheFileChanged(t *testing.T) {
	recordSleeps(t)
	f := newFakeAPI(t)
	c := testClient(t, f, Options{Parallel: 1})
	path, _ := randomFile(t, 6<<20)
	f.setHook(failTimes(1, 500, "", func(r *http.Request) bool { return r.Method == "PUT" && strings.Contains(r.URL.Path, "/_parts/") }))
	if _, err := c.Put(context.Background(), path, PutOptions{}); err == nil {
		t.Fatal("interrupted put succeeded")
	}
	f.setHook(nil)
	doc := make([]byte, 6<<20)
	rand.Read(doc)
	os.WriteFile(path, doc, 0o600)
	os.Chtimes(path, time.Now(), time.Now().Add(time.Hour))
	d, err := c.Put(context.Background(), path, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.count("POST /documents/uploads") != 2 || !bytes.Equal(f.doc(d.ID).content, doc) {
		t.Fatalf("uploads created %d, identical %v", f.count("POST /documents/uploads"), bytes.Equal(f.doc(d.ID).content, doc))
	}
}

func TestPutReportsAFailedIngest(t *testing.T) {
	f := newFakeAPI(t)
	f.failIngest = "the staged object is not the announced size"
	c := testClient(t, f, Options{})
	path, _ := randomFile(t, 5<<20)
	_, err := c.Put(context.Background(), path, PutOptions{})
	var ingest *IngestError
	if !errors.As(err, &ingest) || ingest.Failure != f.failIngest {
		t.Fatalf("err %v", err)
	}
}

func TestPutWaitForIngestIsBounded(t *testing.T) {
	f := newFakeAPI(t)
	f.pendingPolls = 1 << 30
	c := testClient(t, f, Options{IngestWait: time.Millisecond})
	path, _ := randomFile(t, 5<<20)
	if _, err := c.Put(context.Background(), path, PutOptions{}); err == nil || !strings.Contains(err.Error(), "still pending") {
		t.Fatalf("err %v", err)
	}
}

func TestGetInParallelRanges(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{Parallel: 4})
	path, doc := randomFile(t, 3<<20+5)
	d, err := c.Put(context.Background(), path, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out.tiff")
	progress := &countingProgress{}
	if _, err := c.Get(context.Background(), d.ID, dst, GetOptions{Progress: progress}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); !bytes.Equal(b, doc) {
		t.Fatal("downloaded bytes differ")
	}
	if n := len(f.ranges()); n != 13 { // 256 KiB parts
		t.Fatalf("%d range GETs, want 13", n)
	}
	if progress.moved.Load() != int64(len(doc)) {
		t.Fatalf("progress %d of %d", progress.moved.Load(), len(doc))
	}
	assertOnly(t, filepath.Dir(dst), "out.tiff")
}

// TestGetLearnsThePartSize: a server whose limit is below the client's
// part size answers 413 until the part is small enough.
func TestGetLearnsThePartSize(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{PartSize: 4 << 20})
	path, doc := randomFile(t, 3<<20)
	d, _ := c.Put(context.Background(), path, PutOptions{})
	var out bytes.Buffer
	if _, err := c.Download(context.Background(), d.ID, &out, GetOptions{}); err != nil || !bytes.Equal(out.Bytes(), doc) {
		t.Fatalf("download: %v, identical %v", err, bytes.Equal(out.Bytes(), doc))
	}
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := c.Get(context.Background(), d.ID, dst, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); !bytes.Equal(b, doc) {
		t.Fatal("downloaded bytes differ")
	}
}

// TestGetResumesAPartFile interrupts a download and runs Get again: it
// asks only for the bytes the .part lacks.
func TestGetResumesAPartFile(t *testing.T) {
	recordSleeps(t)
	f := newFakeAPI(t)
	c := testClient(t, f, Options{Parallel: 1})
	path, doc := randomFile(t, 2<<20+100) // 9 parts of 256 KiB
	d, _ := c.Put(context.Background(), path, PutOptions{})
	var served atomic.Int64
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/content") && served.Add(1) > 5 {
			apiError(w, 500, "internal", "gone")
			return true
		}
		return false
	})
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := c.Get(context.Background(), d.ID, dst, GetOptions{}); err == nil {
		t.Fatal("interrupted get succeeded")
	}
	if _, err := os.Stat(dst); err == nil {
		t.Fatal("an interrupted get left the file under its name")
	}
	if _, err := os.Stat(dst + ".part"); err != nil {
		t.Fatalf("no .part left to resume: %v", err)
	}
	f.setHook(nil)
	before := len(f.ranges())
	progress := &countingProgress{}
	if _, err := c.Get(context.Background(), d.ID, dst, GetOptions{Progress: progress}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.ranges()) - before; n != 4 {
		t.Fatalf("resumed get asked for %d ranges, want the 4 missing: %v", n, f.ranges()[before:])
	}
	if progress.done != 5*256<<10 {
		t.Fatalf("resumed at %d", progress.done)
	}
	if b, _ := os.ReadFile(dst); !bytes.Equal(b, doc) {
		t.Fatal("resumed download differs")
	}
	assertOnly(t, filepath.Dir(dst), "out")
}

// TestGetResumeReadsThePrefixFromDisk interrupts a download, flips a byte
// in the prefix FILE.part holds, and runs Get again: the prefix no longer
// reads as it was received, so it is downloaded again, and the file is
// the document.
func TestGetResumeReadsThePrefixFromDisk(t *testing.T) {
	recordSleeps(t)
	f := newFakeAPI(t)
	c := testClient(t, f, Options{Parallel: 1})
	path, doc := randomFile(t, 2<<20+100) // 9 parts of 256 KiB
	d, _ := c.Put(context.Background(), path, PutOptions{})
	var served atomic.Int64
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/content") && served.Add(1) > 5 {
			apiError(w, 500, "internal", "gone")
			return true
		}
		return false
	})
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := c.Get(context.Background(), d.ID, dst, GetOptions{}); err == nil {
		t.Fatal("interrupted get succeeded")
	}
	f.setHook(nil)
	var st downloadState
	if !readJSON(dst+".part.state", &st) || st.Done != 5*256<<10 {
		t.Fatalf("state after the interruption: %+v", st)
	}
	part, err := os.OpenFile(dst+".part", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	part.ReadAt(b, st.Done/2)
	b[0] ^= 0x20
	part.WriteAt(b, st.Done/2)
	part.Close()

	before := len(f.ranges())
	progress := &countingProgress{}
	if _, err := c.Get(context.Background(), d.ID, dst, GetOptions{Progress: progress}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, doc) {
		t.Fatal("the resumed download differs from the document")
	}
	if n := len(f.ranges()) - before; n != 9 || progress.done != 0 {
		t.Fatalf("resumed get asked for %d ranges from %d on, want all 9 again", n, progress.done)
	}
	assertOnly(t, filepath.Dir(dst), "out")
}

// TestGetIntegrityFailure: bytes that do not hash to the document's
// SHA-256 leave no file behind.
func TestGetIntegrityFailure(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	for _, size := range []int{1000, 2 << 20} {
		path, _ := randomFile(t, size)
		d, _ := c.Put(context.Background(), path, PutOptions{})
		f.corrupt = true
		dst := filepath.Join(t.TempDir(), "out")
		_, err := c.Get(context.Background(), d.ID, dst, GetOptions{})
		var integrity *IntegrityError
		if !errors.As(err, &integrity) || integrity.Want != d.SHA256 {
			t.Fatalf("%d bytes: err %v", size, err)
		}
		assertOnly(t, filepath.Dir(dst))
		f.corrupt = false
	}
}

func TestListPagesThrough(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	var ids []string
	for range 5 {
		path, _ := randomFile(t, 10)
		d, _ := c.Put(context.Background(), path, PutOptions{})
		ids = append([]string{d.ID}, ids...) // newest first
	}
	var got []string
	for d, err := range c.List(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.ID)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("listed %v, want %v", got, ids)
	}
	got = nil
	for d, err := range c.List(context.Background(), 3) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.ID)
	}
	if !slices.Equal(got, ids[:3]) {
		t.Fatalf("limit 3: %v", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "7": 7 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %v, want %v", v, got, want)
		}
	}
}

// assertOnly checks that dir holds exactly the files named.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, names) {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}

// TestSlowAnswersAreWaitedFor: a server that stores a document before it
// answers its PUT, or assembles the parts before it answers complete,
// may take longer than the stall and request timeouts once it has the
// body; the client waits for it (up to AnswerTimeout) instead of giving
// up and sending it all again.
func TestSlowAnswersAreWaitedFor(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{StallTimeout: 300 * time.Millisecond, RequestTimeout: 300 * time.Millisecond, MaxAttempts: 1})
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/_staging/") || strings.HasSuffix(r.URL.Path, "/complete") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return true
			}
			time.Sleep(time.Second) // the whole body has arrived: the server is storing it
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		return false
	})
	for _, size := range []int{2 << 20, 5 << 20} { // presigned PUT, parts
		path, doc := randomFile(t, size)
		d, err := c.Put(context.Background(), path, PutOptions{})
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if !bytes.Equal(f.doc(d.ID).content, doc) {
			t.Fatalf("%d bytes: the server holds other bytes", size)
		}
	}
}
