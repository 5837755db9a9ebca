package localfront

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/fsstore"
)

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not the JSON error shape: %s", body)
	}
	return e.Error.Code
}

func TestUndecodableQueryIsRefused(t *testing.T) {
	f, recs := front(t, nil)
	for _, target := range []string{"/documents?cursor=%%%%", "/documents?limit=1&cursor=%zz", "/documents?%=x"} {
		recs[apigw.Metadata].got = events.APIGatewayV2HTTPRequest{}
		w := httptest.NewRecorder()
		f.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		if w.Code != http.StatusBadRequest || errorCode(t, w.Body.Bytes()) != "invalid" {
			t.Errorf("GET %s: %d %s, want 400 invalid", target, w.Code, w.Body.String())
		}
		if recs[apigw.Metadata].got.RouteKey != "" {
			t.Errorf("GET %s reached the function with query %v", target, recs[apigw.Metadata].got.QueryStringParameters)
		}
	}
	// A well-formed one still reaches it whole.
	f.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/documents?cursor=a%2Bb&limit=2", nil))
	if q := recs[apigw.Metadata].got.QueryStringParameters; q["cursor"] != "a+b" || q["limit"] != "2" {
		t.Errorf("query: %v", q)
	}
}

func TestMethodNotAllowedCarriesAllow(t *testing.T) {
	f, _ := front(t, nil)
	for target, want := range map[string]string{
		"/documents": "GET, POST",
		"/documents/0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b/content": "GET",
		"/health": "GET",
	} {
		w := httptest.NewRecorder()
		f.ServeHTTP(w, httptest.NewRequest("PATCH", target, nil))
		if w.Code != http.StatusMethodNotAllowed || errorCode(t, w.Body.Bytes()) != "method_not_allowed" {
			t.Errorf("PATCH %s: %d %s", target, w.Code, w.Body.String())
		}
		if got := w.Header().Get("Allow"); got != want {
			t.Errorf("PATCH %s: Allow %q, want %q", target, got, want)
		}
	}
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
	st, err := fsstore.NewStaging(dir, "staging/", bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	f, recs := front(t, nil)
	f.log = slog.New(slog.NewJSONHandler(&logs, nil))
	f.EnableLocalStaging(st, st.PathPrefix())
	type served struct {
		status int
	}
	done := make(chan served, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		f.ServeHTTP(rec, r)
		done <- served{rec.status}
	}))
	defer srv.Close()
	st.SetBaseURL(srv.URL)

	const size = 1 << 20
	put, err := st.PresignPut(context.Background(), "staging/0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b", "application/pdf", size, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(put.URL)
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
	if recs[apigw.Upload].got.RouteKey != "" || recs[apigw.Upload].got.Body != "" {
		t.Error("the upload function was invoked for a PUT that never arrived whole")
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
