package localfront_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/localfront"
	"github.com/imagodocs/imago/internal/localstaging"
)

// countingUpload is an upload function that counts its invocations.
type countingUpload struct{ calls atomic.Int32 }

func (u *countingUpload) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	u.calls.Add(1)
	return nil, nil
}

// statusRecorder passes a response through and keeps its status.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func TestClientDisconnectMidStagingPutIsNotAServerError(t *testing.T) {
	dir := t.TempDir()
	type served struct {
		status int
	}
	done := make(chan served, 1)
	var receiver http.Handler
	// The area is built once the server listens, as `imago serve` builds it.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		receiver.ServeHTTP(rec, r)
		done <- served{rec.status}
	}))
	st, err := localstaging.New(dir, "staging/", bytes.Repeat([]byte{1}, 32), "http://"+srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	upload := &countingUpload{}
	receiver = localfront.NewReceiver(st, upload, slog.New(slog.NewJSONHandler(&logs, nil)))
	srv.Start()
	defer srv.Close()

	const size = 1 << 20
	put, err := st.PresignPut(context.Background(), "staging/0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b", "application/pdf", size, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(put.URL)
	if !strings.HasPrefix(u.Path, localstaging.Path) {
		t.Fatalf("the presigned URL %s is not under %s", put.URL, localstaging.Path)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(conn)
	fmt.Fprintf(bw, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/pdf\r\nContent-Length: %d\r\n\r\n", u.RequestURI(), u.Host, size)
	bw.Write(bytes.Repeat([]byte("x"), 64<<10)) // a sixteenth of what it announced
	bw.Flush()
	conn.Close() // the client goes away

	select {
	case s := <-done:
		if s.status != http.StatusBadRequest {
			t.Errorf("a client that disconnected mid-PUT was answered %d, want 400", s.status)
		}
	case <-time.After(30 * time.Second): // a hang, not a timing assumption
		t.Fatal("the staging PUT was never answered")
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("a client's disconnect was logged as a server error: %s", line)
		}
	}
	if n := upload.calls.Load(); n != 0 {
		t.Errorf("the upload function was invoked %d times for a PUT that never arrived whole", n)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("left in the staging folder: %s", e.Name())
	}
}

// syncBuffer is written by the server's goroutines and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// recordingUpload is an upload function that keeps the events it gets and
// fails with err.
type recordingUpload struct {
	mu     sync.Mutex
	events []events.S3Event
	err    error
}

func (u *recordingUpload) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.S3Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.events = append(u.events, ev)
	return nil, u.err
}

func (u *recordingUpload) received() []events.S3Event {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.events)
}

// waitUntil polls cond, failing the test after 30 seconds (a bound on a
// condition, not a sleep standing in for one).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A staged PUT is announced to the upload function as S3 announces one:
// an aws:s3 ObjectCreated:Put record with the key URL-encoded and the size.
// An announcement the upload function fails is retried in the background,
// as S3 retries an asynchronous invocation: the PUT is answered 200 (its
// bytes are stored), the same event is tried Attempts times in all, and
// the staged object stays for the reconciliation to ingest.
func TestStagedPutIsAnnouncedAsS3Would(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprintf("upload fails=%v", failing), func(t *testing.T) {
			dir := t.TempDir()
			st, err := localstaging.New(dir, "staging/", bytes.Repeat([]byte{3}, 32), "http://imago.test")
			if err != nil {
				t.Fatal(err)
			}
			upload := &recordingUpload{}
			if failing {
				upload.err = errors.New("ingest failed")
			}
			const attempts = 3
			rc := localfront.NewReceiver(st, upload, nil, localfront.Delivery{Attempts: attempts, Backoff: time.Millisecond})
			key := "staging/0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b"
			body := []byte("%PDF-1.7 staged")
			put, err := st.PresignPut(context.Background(), key, "application/pdf", int64(len(body)), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPut, put.URL, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/pdf")
			w := httptest.NewRecorder()
			rc.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				t.Errorf("PUT answered %d %s, want 200", w.Code, w.Body.String())
			}
			want := 1
			if failing {
				want = attempts
			}
			waitUntil(t, fmt.Sprintf("%d deliveries", want), func() bool { return len(upload.received()) >= want })
			rc.Close()

			got := upload.received()
			if len(got) != want {
				t.Fatalf("the upload function got %d events, want %d", len(got), want)
			}
			for _, ev := range got {
				if len(ev.Records) != 1 {
					t.Fatalf("event %+v, want one record", ev)
				}
				rec := ev.Records[0]
				if rec.EventSource != "aws:s3" || rec.EventName != "ObjectCreated:Put" || rec.S3.Object.Key != url.QueryEscape(key) || rec.S3.Object.Size != int64(len(body)) {
					t.Errorf("event record %+v, want aws:s3 ObjectCreated:Put of %s, %d bytes", rec, url.QueryEscape(key), len(body))
				}
			}
			r, size, err := st.Open(context.Background(), key)
			if err != nil {
				t.Fatalf("the staged object (ingested by no attempt here) is gone: %v", err)
			}
			defer r.Close()
			if size != int64(len(body)) {
				t.Errorf("staged %d bytes, want %d", size, len(body))
			}
		})
	}
}

// blockingUpload is an upload function that waits for release, then
// reports whether its context had ended by then.
type blockingUpload struct {
	entered, release chan struct{}
	ended            chan error
}

func (u *blockingUpload) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	close(u.entered)
	<-u.release
	u.ended <- ctx.Err()
	return nil, ctx.Err()
}

// The event of a staged PUT belongs to no request: a client that goes away
// while its ingest runs cancels nothing.
func TestDeliveryOutlivesTheRequest(t *testing.T) {
	st, err := localstaging.New(t.TempDir(), "staging/", bytes.Repeat([]byte{4}, 32), "http://imago.test")
	if err != nil {
		t.Fatal(err)
	}
	upload := &blockingUpload{entered: make(chan struct{}), release: make(chan struct{}), ended: make(chan error, 1)}
	rc := localfront.NewReceiver(st, upload, nil)
	defer rc.Close()
	key := "staging/6b0c2e77-41c3-4b0e-9d0a-0f4f0d1f2a3b"
	body := []byte("staged")
	put, err := st.PresignPut(context.Background(), key, "text/plain", int64(len(body)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, http.MethodPut, put.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/plain")
	served := make(chan struct{})
	go func() {
		rc.ServeHTTP(httptest.NewRecorder(), req)
		close(served)
	}()
	<-upload.entered
	cancel() // the client is gone
	close(upload.release)
	if err := <-upload.ended; err != nil {
		t.Fatalf("the ingest's context ended with its request's: %v", err)
	}
	<-served
}
