package localfront

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/apigw"
)

// recorder is a function that keeps the event it got and answers a
// canned API Gateway response.
type recorder struct {
	got  events.APIGatewayV2HTTPRequest
	resp events.APIGatewayV2HTTPResponse
}

func (r *recorder) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if err := json.Unmarshal(payload, &r.got); err != nil {
		return nil, err
	}
	return json.Marshal(r.resp)
}

func front(t *testing.T, tokens map[string]string) (*Front, map[apigw.Function]*recorder) {
	recs := map[apigw.Function]*recorder{}
	fns := map[apigw.Function]Invoker{}
	for _, fn := range apigw.Functions {
		recs[fn] = &recorder{resp: events.APIGatewayV2HTTPResponse{StatusCode: 200}}
		fns[fn] = recs[fn]
	}
	return New(fns, "sub", tokens, nil), recs
}

func TestRequestBecomesThePayload2Event(t *testing.T) {
	f, recs := front(t, nil)
	body := "raw \x00 document bytes"
	req := httptest.NewRequest("POST", "/documents?filename=a%20b.pdf&x=1&x=2", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/pdf")
	req.Header.Add("X-Imago-Meta-Case", "7")
	req.Header.Add("Accept", "a")
	req.Header.Add("Accept", "b")
	req.Header.Set("Cookie", "s=1; t=2")
	w := httptest.NewRecorder()
	f.ServeHTTP(w, req)

	ev := recs[apigw.Upload].got
	if ev.Version != "2.0" || ev.RouteKey != "POST /documents" || ev.RawPath != "/documents" || ev.RequestContext.HTTP.Method != "POST" {
		t.Fatalf("route: %+v", ev)
	}
	if ev.Headers["content-type"] != "application/pdf" || ev.Headers["x-imago-meta-case"] != "7" || ev.Headers["accept"] != "a,b" {
		t.Errorf("headers are not lower-cased and joined: %v", ev.Headers)
	}
	if _, ok := ev.Headers["cookie"]; ok || strings.Join(ev.Cookies, "|") != "s=1|t=2" {
		t.Errorf("cookies: %v / header %q", ev.Cookies, ev.Headers["cookie"])
	}
	if ev.QueryStringParameters["filename"] != "a b.pdf" || ev.QueryStringParameters["x"] != "1,2" || ev.RawQueryString != "filename=a%20b.pdf&x=1&x=2" {
		t.Errorf("query: %v %q", ev.QueryStringParameters, ev.RawQueryString)
	}
	decoded, _ := base64.StdEncoding.DecodeString(ev.Body)
	if !ev.IsBase64Encoded || string(decoded) != body {
		t.Errorf("body: base64 %v, %q", ev.IsBase64Encoded, decoded)
	}
	if ev.RequestContext.Authorizer == nil || ev.RequestContext.Authorizer.JWT.Claims["sub"] != LocalTenant || ev.RequestContext.RequestID == "" {
		t.Errorf("request context: %+v", ev.RequestContext)
	}

	f.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/documents/0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b/content", nil))
	if ev := recs[apigw.Download].got; ev.RouteKey != "GET /documents/{id}/content" || ev.PathParameters["id"] != "0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b" || ev.Body != "" {
		t.Errorf("download event: %+v", ev)
	}
}

func TestResponseIsWrittenBack(t *testing.T) {
	f, recs := front(t, nil)
	recs[apigw.Download].resp = events.APIGatewayV2HTTPResponse{StatusCode: 206, IsBase64Encoded: true,
		Body: base64.StdEncoding.EncodeToString([]byte("part")), Headers: map[string]string{"content-range": "bytes 0-3/10", "x-imago-cache": "hit"}}
	w := httptest.NewRecorder()
	f.ServeHTTP(w, httptest.NewRequest("GET", "/documents/0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b/content", nil))
	if w.Code != 206 || w.Body.String() != "part" || w.Header().Get("Content-Range") != "bytes 0-3/10" || w.Header().Get("Content-Length") != "4" {
		t.Fatalf("response: %d %q %v", w.Code, w.Body.String(), w.Header())
	}
}

func TestRoutingErrorsAndLimits(t *testing.T) {
	f, _ := front(t, nil)
	for _, tc := range []struct {
		method, path string
		body         io.Reader
		status       int
		code         string
	}{
		{"GET", "/nowhere", nil, 404, "not_found"},
		{"PATCH", "/documents", nil, 405, "method_not_allowed"},
		{"POST", "/documents", io.LimitReader(zeros{}, MaxRequestBytes+1), 413, "too_large"},
	} {
		w := httptest.NewRecorder()
		f.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, tc.body))
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		json.Unmarshal(w.Body.Bytes(), &e)
		if w.Code != tc.status || e.Error.Code != tc.code || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, w.Code, w.Body.String())
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestTokensNameTheTenant(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(path, []byte("# comment\n\nsecret-a alice\n secret-b   bob \n"), 0o600)
	tokens, err := LoadTokens(path)
	if err != nil || tokens["secret-a"] != "alice" || tokens["secret-b"] != "bob" || len(tokens) != 2 {
		t.Fatalf("LoadTokens: %v %v", tokens, err)
	}
	f, recs := front(t, tokens)
	for header, want := range map[string]string{"Bearer secret-b": "bob", "Bearer nope": "", "": "", "Basic secret-a": ""} {
		req := httptest.NewRequest("GET", "/documents", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		recs[apigw.Metadata].got = events.APIGatewayV2HTTPRequest{}
		f.ServeHTTP(httptest.NewRecorder(), req)
		got := ""
		if a := recs[apigw.Metadata].got.RequestContext.Authorizer; a != nil {
			got = a.JWT.Claims["sub"]
		}
		if got != want {
			t.Errorf("Authorization %q: tenant %q, want %q", header, got, want)
		}
	}
	for _, bad := range []string{"only-one-field\n", "a b c\n", "# nothing\n"} {
		os.WriteFile(path, []byte(bad), 0o600)
		if _, err := LoadTokens(path); err == nil {
			t.Errorf("LoadTokens accepted %q", bad)
		}
	}
}

// TestResponseBodiesOfEveryShape writes back bodies around base64's
// padding, large ones (decoded in pieces), and plain bodies whose JSON
// string carries escapes (json.Marshal escapes <, >, & and controls).
func TestResponseBodiesOfEveryShape(t *testing.T) {
	f, recs := front(t, nil)
	doc := make([]byte, 200_003)
	for i := range doc {
		doc[i] = byte(i * 31)
	}
	for _, n := range []int{0, 1, 2, 3, 4, 5, 48 << 10, 200_003} {
		recs[apigw.Download].resp = events.APIGatewayV2HTTPResponse{StatusCode: 200, IsBase64Encoded: true,
			Body: base64.StdEncoding.EncodeToString(doc[:n])}
		w := httptest.NewRecorder()
		f.ServeHTTP(w, httptest.NewRequest("GET", "/documents/0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b/content", nil))
		if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), doc[:n]) || w.Header().Get("Content-Length") != strconv.Itoa(n) {
			t.Fatalf("%d bytes: %d, %d bytes back, Content-Length %q", n, w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
		}
	}
	for _, text := range []string{"", "plain", `{"a":"<b> & \"c\"\n\t\\ é \u2028"}`} {
		recs[apigw.Metadata].resp = events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: text}
		w := httptest.NewRecorder()
		f.ServeHTTP(w, httptest.NewRequest("GET", "/health", nil))
		if w.Code != 200 || w.Body.String() != text || w.Header().Get("Content-Length") != strconv.Itoa(len(text)) {
			t.Fatalf("%q: %d %q", text, w.Code, w.Body.String())
		}
	}
}

// HEAD /health reaches the function and answers its status and headers,
// without a body or the Content-Length of an empty one.
func TestHeadHealth(t *testing.T) {
	f, recs := front(t, nil)
	recs[apigw.Metadata].resp = events.APIGatewayV2HTTPResponse{StatusCode: 200, Headers: map[string]string{"content-type": "application/json"}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	resp, err := http.Head(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Content-Length") != "" {
		t.Fatalf("HEAD /health: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if got := recs[apigw.Metadata].got; got.RouteKey != "HEAD /health" || got.RequestContext.HTTP.Method != "HEAD" {
		t.Fatalf("the function got %q (%s)", got.RouteKey, got.RequestContext.HTTP.Method)
	}
}
