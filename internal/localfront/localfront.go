// Package localfront is the HTTP front of `imago serve`: it turns each
// http.Request into the API Gateway HTTP API (payload 2.0) event the
// route's Lambda function would receive, as `sam local start-api` does,
// invokes that function with the event's JSON, and writes the function's
// JSON response back. The local run so exercises the very code, encoders
// included, that runs in Lambda.
package localfront

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
)

// MaxRequestBytes is API Gateway's payload limit: larger requests never
// reach a function.
const MaxRequestBytes = 10 << 20

// Invoker is a Lambda function: event JSON in, response JSON out.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// Front routes requests to the functions.
type Front struct {
	functions   map[apigw.Function]Invoker
	tenantClaim string
	tokens      map[string]string // bearer token → tenant; nil: everyone is "local"
	log         *slog.Logger
	s3Events    bool
	staging     StagingReceiver
	stagingPath string
}

// LocalTenant is every caller's tenant when no tokens file is given.
const LocalTenant = "local"

// New returns a Front over the given functions. With tokens nil every
// caller is tenant "local"; otherwise a known bearer token is required.
func New(functions map[apigw.Function]Invoker, tenantClaim string, tokens map[string]string, log *slog.Logger) *Front {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Front{functions: functions, tenantClaim: tenantClaim, tokens: tokens, log: log}
}

// LoadTokens reads a tokens file: one "token tenant" pair a line, blank
// lines and lines starting with # ignored.
func LoadTokens(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	tokens := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("tokens file %s line %d: want \"token tenant\"", path, n)
		}
		tokens[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("tokens file %s holds no token", path)
	}
	return tokens, nil
}

// S3EventsPath is where `imago serve` takes S3 event notifications when it
// runs on the S3 backend: the local S3 server's event webhook (through
// scripts/testenv's relay) posts them here, and the upload function
// ingests them, as S3 would invoke it in AWS.
const S3EventsPath = "/_local/s3-events"

// EnableS3Events makes the front pass S3 event notifications posted to
// S3EventsPath to the upload function.
func (f *Front) EnableS3Events() { f.s3Events = true }

func (f *Front) serveS3Event(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "could not read the event")
		return
	}
	if !f.invokeS3Event(r.Context(), w, body) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// invokeS3Event hands an S3 event to the upload function, answering the
// failure itself; it reports success.
func (f *Front) invokeS3Event(ctx context.Context, w http.ResponseWriter, event []byte) bool {
	if _, err := f.functions[apigw.Upload].Invoke(ctx, event); err != nil {
		f.log.ErrorContext(ctx, "S3 event failed", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "internal", "the upload function failed on the event")
		return false
	}
	return true
}

// StagingReceiver is the receiving end of the embedded staging area
// (fsstore.Staging): it checks a presigned PUT and stores its body.
type StagingReceiver interface {
	Receive(key, contentType string, query url.Values, body io.Reader, length int64) error
}

// EnableLocalStaging makes the front take the presigned PUTs of the
// embedded staging area under stagingPath, then give the upload function
// the ObjectCreated event S3 would send. The ingest runs before the PUT is
// answered, so a client knows the document is available once it returns.
func (f *Front) EnableLocalStaging(st StagingReceiver, stagingPath string) {
	f.staging, f.stagingPath = st, stagingPath
}

func (f *Front) serveStagingPut(w http.ResponseWriter, r *http.Request) {
	key, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), f.stagingPath))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "malformed key")
		return
	}
	if pr, ok := f.staging.(PartReceiver); ok && pr.IsPart(r.URL.Query()) {
		// A part of an upload in parts: stored, answered with its ETag; the
		// event comes when the upload is completed.
		etag, err := pr.ReceivePart(key, r.URL.Query(), r.Body, r.ContentLength)
		if err != nil {
			f.writeStagingError(w, r, err)
			return
		}
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := f.staging.Receive(key, r.Header.Get("Content-Type"), r.URL.Query(), r.Body, r.ContentLength); err != nil {
		f.writeStagingError(w, r, err)
		return
	}
	if !f.invokeS3Event(r.Context(), w, objectCreated("ObjectCreated:Put", key, r.ContentLength)) {
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (f *Front) writeStagingError(w http.ResponseWriter, r *http.Request, err error) {
	kind := docstore.KindOf(err)
	if kind == docstore.KindInternal {
		f.log.ErrorContext(r.Context(), "staging PUT failed", "error", err.Error())
	}
	status := apigw.Status(kind)
	if kind == docstore.KindUnauthenticated {
		status = http.StatusForbidden // as S3 answers a bad signature
	}
	writeError(w, status, kind.String(), docstore.PublicMessage(err))
}

// objectCreated is the S3 event of an object created in the staging area.
func objectCreated(name, key string, size int64) []byte {
	event, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "local",
		"eventTime": time.Now().UTC().Format(time.RFC3339), "eventName": name,
		"s3": map[string]any{
			"bucket": map[string]any{"name": "imago-local"},
			"object": map[string]any{"key": url.QueryEscape(key), "size": size},
		},
	}}})
	return event
}

// PartReceiver is the receiving end of the embedded staging area's
// uploads in parts (fsstore.Staging).
type PartReceiver interface {
	// IsPart tells a part's PUT from a single PUT by its query.
	IsPart(query url.Values) bool
	// ReceivePart checks a presigned part PUT, stores it and returns its ETag.
	ReceivePart(key string, query url.Values, body io.Reader, length int64) (etag string, err error)
	// Key is the staging key of a document id.
	Key(id string) string
}

// completeRoute is the route whose success creates the staged object of an
// upload in parts, which S3 would announce with an event.
const completeRoute = "POST /documents/{id}/complete"

// afterComplete plays S3's ObjectCreated:CompleteMultipartUpload event once
// the upload function has completed an upload in parts on the embedded
// staging area, before the answer goes out, as a single PUT's event does.
func (f *Front) afterComplete(ctx context.Context, w http.ResponseWriter, route apigw.Route, id string, resp *events.APIGatewayV2HTTPResponse) bool {
	pr, ok := f.staging.(PartReceiver)
	if !ok || route.Key() != completeRoute || resp.StatusCode != http.StatusAccepted {
		return true
	}
	docID, err := docstore.ParseID(id) // the staged object's key has the canonical id
	if err != nil {
		return true
	}
	return f.invokeS3Event(ctx, w, objectCreated("ObjectCreated:CompleteMultipartUpload", pr.Key(string(docID)), 0))
}

func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case f.s3Events && r.Method == http.MethodPost && r.URL.Path == S3EventsPath:
		f.serveS3Event(w, r)
		return
	case f.staging != nil && r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, f.stagingPath):
		f.serveStagingPut(w, r)
		return
	}
	route, id, ok, pathExists := apigw.Match(r.Method, r.URL.EscapedPath())
	if !ok {
		status, code, msg := http.StatusNotFound, "not_found", "no route "+r.Method+" "+r.URL.Path
		if pathExists {
			status, code, msg = http.StatusMethodNotAllowed, "method_not_allowed", "method "+r.Method+" is not allowed on "+r.URL.Path
		}
		writeError(w, status, code, msg)
		return
	}
	fn, ok := f.functions[route.Function]
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no function serves "+route.Key())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the request is over API Gateway's %d-byte limit (use POST /documents/uploads)", MaxRequestBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "invalid", "could not read the request body")
		return
	}
	ev := f.event(r, route, id, body)
	payload, err := json.Marshal(ev)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	out, err := fn.Invoke(r.Context(), payload)
	if err != nil {
		f.log.ErrorContext(r.Context(), "function failed", "function", string(route.Function), "error", err.Error())
		writeError(w, http.StatusBadGateway, "internal", "the function failed")
		return
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		f.log.ErrorContext(r.Context(), "function answered an undecodable response", "function", string(route.Function), "error", err.Error())
		writeError(w, http.StatusBadGateway, "internal", "the function's response is malformed")
		return
	}
	if f.staging != nil && !f.afterComplete(r.Context(), w, route, id, &resp) {
		return
	}
	writeResponse(w, &resp)
}

// event builds the payload 2.0 event API Gateway would send.
func (f *Front) event(r *http.Request, route apigw.Route, id string, body []byte) *events.APIGatewayV2HTTPRequest {
	now := time.Now()
	headers := make(map[string]string, len(r.Header)+1)
	for k, v := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	if r.Host != "" {
		headers["host"] = r.Host
	}
	query := map[string]string{}
	for k, v := range r.URL.Query() {
		query[k] = strings.Join(v, ",")
	}
	ev := &events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              route.Key(),
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Headers:               headers,
		QueryStringParameters: query,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			AccountID:  "000000000000",
			APIID:      "local",
			DomainName: r.Host,
			RequestID:  uuid.NewString(),
			RouteKey:   route.Key(),
			Stage:      "$default",
			Time:       now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:  now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto,
				SourceIP: sourceIP(r.RemoteAddr), UserAgent: r.UserAgent(),
			},
		},
	}
	if cookies := r.Header.Values("Cookie"); len(cookies) > 0 {
		for _, c := range cookies {
			ev.Cookies = append(ev.Cookies, strings.Split(c, "; ")...)
		}
		delete(ev.Headers, "cookie")
	}
	if id != "" {
		ev.PathParameters = map[string]string{"id": id}
	}
	if len(body) > 0 {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	if tenant, ok := f.tenant(r); ok {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{
				Claims: map[string]string{f.tenantClaim: tenant},
			},
		}
	}
	return ev
}

// tenant plays API Gateway's JWT authorizer: without a tokens file every
// caller is "local"; with one, the bearer token names the tenant. An
// unknown token gets no identity, which the function answers with 401.
func (f *Front) tenant(r *http.Request) (string, bool) {
	if f.tokens == nil {
		return LocalTenant, true
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", false
	}
	tenant, ok := f.tokens[strings.TrimSpace(token)]
	return tenant, ok
}

func sourceIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

func writeResponse(w http.ResponseWriter, resp *events.APIGatewayV2HTTPResponse) {
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			writeError(w, http.StatusBadGateway, "internal", "the function's response body is not valid base64")
			return
		}
		body = b
	}
	h := w.Header()
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	status := resp.StatusCode
	if status == 0 {
		status = http.StatusOK
	}
	if status != http.StatusNoContent && status != http.StatusNotModified {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	w.Write(body)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]map[string]string{"error": {"code": code, "message": msg}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
