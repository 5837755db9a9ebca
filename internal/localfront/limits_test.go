package localfront

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
)

// rawRequest sends a request's head (with Content-Length n) on a fresh
// connection, then body, and returns the answer's status and error code,
// or an error if no answer comes within the guard time.
func rawRequest(addr, method, path, contentType string, n int64, body io.Reader) (int, string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", method, path, contentType, n)
	if body != nil {
		go io.Copy(c, body) // fails once the server closes: what is left is never sent
	}
	c.SetReadDeadline(time.Now().Add(guard))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", fmt.Errorf("%s %s with %d bytes announced: no answer: %w", method, path, n, err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error.Code, nil
}

// A body whose announced length is over what its route can take is
// refused at once, before a byte of it is sent: the front does not wait
// for it, and no function sees the request.
func TestOversizeBodyIsRefusedUnread(t *testing.T) {
	f, recs := front(t, nil)
	f.LimitInlineUploads(1 << 20)
	srv := httptest.NewServer(f)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	for _, tc := range []struct {
		path, contentType string
		n                 int64
	}{
		{"/documents", "application/pdf", 1<<20 + 1},
		{"/documents", "multipart/form-data; boundary=x", 1<<20 + 256<<10 + 1},
		{"/documents", "application/pdf", 10_000_000},
		{"/documents/uploads", "application/json", apigw.MaxJSONBodyBytes + 1},
		{"/documents/" + string(docstore.NewID()) + "/complete", "application/json", apigw.MaxJSONBodyBytes + 1},
	} {
		// No body follows the head: an answer proves nothing waited for it.
		status, code, err := rawRequest(addr, "POST", tc.path, tc.contentType, tc.n, nil)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusRequestEntityTooLarge || code != "too_large" {
			t.Errorf("POST %s (%s) of %d bytes: %d %q, want 413 too_large", tc.path, tc.contentType, tc.n, status, code)
		}
	}
	if got := recs[apigw.Upload].got.RouteKey; got != "" {
		t.Errorf("the upload function was invoked (%s)", got)
	}
}

// countingReader is an endless body that counts what was read of it.
type countingReader struct{ n atomic.Int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	clear(p)
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// A body of unannounced length (chunked) is read only up to the route's
// limit, then refused.
func TestUnannouncedBodyIsReadUpToTheLimit(t *testing.T) {
	f, recs := front(t, nil)
	f.LimitInlineUploads(1 << 20)
	for path, limit := range map[string]int64{"/documents": 1 << 20, "/documents/uploads": apigw.MaxJSONBodyBytes} {
		body := &countingReader{}
		req := httptest.NewRequest("POST", path, body)
		req.ContentLength = -1
		w := httptest.NewRecorder()
		f.ServeHTTP(w, req)
		if w.Code != http.StatusRequestEntityTooLarge || errorCode(t, w.Body.Bytes()) != "too_large" {
			t.Errorf("POST %s, chunked: %d %s", path, w.Code, w.Body.String())
		}
		if read := body.n.Load(); read > limit+64<<10 {
			t.Errorf("POST %s, chunked: %d bytes read for a %d-byte limit", path, read, limit)
		}
	}
	if got := recs[apigw.Upload].got.RouteKey; got != "" {
		t.Errorf("the upload function was invoked (%s)", got)
	}
}

// gate is a function that holds every invocation until released, and
// says when n of them are held at once.
type gate struct {
	n       int32
	held    atomic.Int32
	all     chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gate) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if g.held.Add(1) == g.n {
		close(g.all)
	}
	<-g.release
	runtime.KeepAlive(payload)
	return []byte(`{"statusCode":201}`), nil
}

// Concurrent oversize uploads cost the server no memory of their size:
// before their limits were checked up front, each 10 MB body was read,
// base64-encoded and wrapped in an event (about 40 MB a request) before
// the upload function refused it.
func TestConcurrentOversizeUploadsHoldNoMemory(t *testing.T) {
	const clients, size = 8, 10_000_000
	g := &gate{n: clients, all: make(chan struct{}), release: make(chan struct{})}
	defer g.once.Do(func() { close(g.release) })
	f := New(map[apigw.Function]Invoker{apigw.Upload: g}, "sub", nil, nil)
	srv := httptest.NewServer(f)
	defer srv.Close()

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		for {
			p := peak.Load()
			if m.HeapInuse <= p || peak.CompareAndSwap(p, m.HeapInuse) {
				return
			}
		}
	}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				sample()
			}
		}
	}()

	type answer struct {
		status int
		err    error
	}
	answered := make(chan answer, clients)
	for range clients {
		go func() {
			status, _, err := rawRequest(srv.Listener.Addr().String(), "POST", "/documents", "application/octet-stream", size, io.LimitReader(zeros{}, size))
			answered <- answer{status, err}
		}()
	}
	for range clients {
		select {
		case a := <-answered:
			if a.err != nil || a.status != http.StatusRequestEntityTooLarge {
				t.Errorf("a %d-byte upload: %d %v, want 413", size, a.status, a.err)
			}
			continue
		case <-g.all:
			// Every body reached the function: what they hold is live now.
			sample()
			t.Errorf("%d oversize uploads all reached the upload function", clients)
		}
		break
	}
	close(stop)
	<-sampled
	if grew := int64(peak.Load()) - int64(before.HeapInuse); grew > 64<<20 {
		t.Errorf("%d concurrent %d-byte uploads grew the heap in use by %d MiB", clients, size, grew>>20)
	}
	g.once.Do(func() { close(g.release) })
}
