package localfront

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// testIdle is the idle limit of these tests: far above a step of a
// transfer that moves, far below the whole transfer.
const testIdle = 300 * time.Millisecond

// guard bounds a wait that only a defect makes long.
const guard = 10 * time.Second

// idleServer serves h as `imago serve` does (WithIdleTimeout, no
// ReadTimeout or WriteTimeout), on a listener whose connections have small
// socket buffers, so that a slow client holds up the server's writes.
func idleServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: WithIdleTimeout(h, testIdle), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(smallBuffers{ln})
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(32 << 10)
		tc.SetReadBuffer(32 << 10)
	}
	return c, err
}

// dial opens a client connection with small socket buffers.
func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	tc.SetReadBuffer(32 << 10)
	tc.SetWriteBuffer(32 << 10)
	t.Cleanup(func() { tc.Close() })
	return tc
}

// bodyCounter reads a request body to its end and reports what it got.
type bodyCounter struct {
	n   atomic.Int64
	err atomic.Value
}

func (b *bodyCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	b.n.Store(n)
	if err != nil {
		b.err.Store(err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// A request body that keeps moving is read whole however long it takes
// (here four times the idle limit); one that stops is cut once it has
// not moved for the idle limit.
func TestIdleTimeoutCutsStalledRequestBodiesOnly(t *testing.T) {
	h := &bodyCounter{}
	addr := idleServer(t, h)

	c := dial(t, addr)
	const steps, step = 24, 2 << 10
	io.WriteString(c, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(steps*step)+"\r\n\r\n")
	for range steps {
		time.Sleep(testIdle / 6)
		if _, err := c.Write(make([]byte, step)); err != nil {
			t.Fatalf("the server stopped reading a body that moves: %v", err)
		}
	}
	c.SetReadDeadline(time.Now().Add(guard))
	if status := readStatus(t, c); status != http.StatusNoContent || h.n.Load() != steps*step {
		t.Fatalf("a slow body that moves: %d, %d bytes read", status, h.n.Load())
	}

	c = dial(t, addr)
	io.WriteString(c, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
	c.Write(make([]byte, 1000))
	// Nothing more is sent: the server must give up on its own.
	c.SetReadDeadline(time.Now().Add(guard))
	readStatus(t, c) // an answer, or the connection closed
	var netErr net.Error
	if err, _ := h.err.Load().(error); !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("a stalled body: the handler's read ended with %v, want a timeout", err)
	}
}

// A response body that a slow client keeps taking goes out whole however
// long it takes; one the client stops taking fails once it has not moved
// for the idle limit.
func TestIdleTimeoutCutsStalledResponseBodiesOnly(t *testing.T) {
	const size = 2 << 20 // far more than the socket buffers hold
	doc := bytes.Repeat([]byte("imago"), size/5)
	writeErr := make(chan error, 1)
	addr := idleServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
		_, err := w.Write(doc) // one write of the whole body
		writeErr <- err
	}))

	c := dial(t, addr)
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	var got []byte
	var readErr error
	buf := make([]byte, 32<<10)
	start := time.Now()
	for complete := false; !complete && readErr == nil; {
		time.Sleep(testIdle / 20)
		c.SetReadDeadline(time.Now().Add(guard))
		var n int
		n, readErr = c.Read(buf)
		got = append(got, buf[:n]...)
		i := bytes.Index(got, []byte("\r\n\r\n"))
		complete = i >= 0 && len(got)-i-4 >= len(doc)
	}
	if _, body, ok := bytes.Cut(got, []byte("\r\n\r\n")); !ok || !bytes.Equal(body, doc) {
		t.Fatalf("a slow client that reads got %d bytes, then %v", len(got), readErr)
	}
	if took := time.Since(start); took < 2*testIdle {
		t.Fatalf("the body went out in %v: the socket buffers are too large for this test", took)
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("a slow client that reads: the write failed: %v", err)
	}

	c = dial(t, addr)
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	// Nothing is read: the server's write must fail on its own.
	select {
	case err := <-writeErr:
		var netErr net.Error
		if !errors.As(err, &netErr) || !netErr.Timeout() {
			t.Fatalf("a client that stopped reading: the write ended with %v, want a timeout", err)
		}
	case <-time.After(guard):
		t.Fatal("the write to a client that stopped reading never gave up")
	}
}

// readStatus reads an answer's status line; 0 if the connection closed.
func readStatus(t *testing.T, c net.Conn) int {
	t.Helper()
	line := make([]byte, 0, 64)
	b := make([]byte, 1)
	for len(line) < 64 {
		if _, err := c.Read(b); err != nil {
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				t.Fatal("no answer within the guard time")
			}
			return 0
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	if len(line) < 12 {
		return 0
	}
	status, _ := strconv.Atoi(string(line[9:12]))
	return status
}
