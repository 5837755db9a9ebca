// Package openapitest checks real exchanges with the HTTP API against its
// description, docs/openapi.yaml (OpenAPI 3.1), so that the document cannot
// drift from the code. It is used by tests only: the `imago serve` tests
// send their requests through Spec.Client, the Lambda end-to-end tests pass
// each event and its answer to Spec.CheckLambda.
//
// Each exchange is checked with kin-openapi's openapi3filter (the request
// against the operation's parameters and body, the response against the
// operation's declared statuses, headers and JSON schemas), and with what
// that validator leaves out: a 304's headers, a response body where none is
// declared, headers the API sends that the document does not declare, the
// X-Imago-Meta-* request headers, and the answers to requests that match no
// operation (404, and 405 with an Allow header listing the path's methods).
// A request the document refuses must be answered with a 4xx.
package openapitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/imagodocs/imago/internal/testenv"
)

func init() {
	// kin-openapi's own multipart/form-data decoder takes a part that is
	// not a declared property only when additionalProperties is an object
	// with properties of its own, so it cannot read the text parts that
	// POST /documents stores as metadata; this one can (see formDataDecoder).
	openapi3filter.RegisterBodyDecoder("multipart/form-data", formDataDecoder)
}

// formDataDecoder decodes a multipart/form-data body into an object of
// strings, one per part (the last of parts with the same name): a declared
// property by its name, any other part as an additional property, which the
// schema then validates. A part additionalProperties: false does not allow
// is an error.
func formDataDecoder(body io.Reader, h http.Header, schema *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	if schema == nil || schema.Value == nil || !schema.Value.Type.Is("object") {
		return nil, errors.New("multipart/form-data needs an object schema")
	}
	_, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	if params["boundary"] == "" {
		return nil, errors.New("multipart/form-data without a boundary")
	}
	closed := schema.Value.AdditionalProperties.Has != nil && !*schema.Value.AdditionalProperties.Has
	obj := map[string]any{}
	mr := multipart.NewReader(body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return obj, nil
		}
		if err != nil {
			return nil, err
		}
		name := part.FormName()
		if _, declared := schema.Value.Properties[name]; !declared && closed {
			return nil, fmt.Errorf("part %q is not declared", name)
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return nil, err
		}
		obj[name] = string(data)
	}
}

// DocumentPath is where the description lives, relative to the module root.
const DocumentPath = "docs/openapi.yaml"

// Spec is the loaded, validated description with its router, and a record
// of which operation answered which statuses.
type Spec struct {
	Doc    *openapi3.T
	router routers.Router

	mu   sync.Mutex
	seen map[string]map[int]int // "METHOD /path" → status → count
}

// Load reads and validates an OpenAPI document.
func Load(path string) (*Spec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("%s is not a valid OpenAPI document: %w", path, err)
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("%s is OpenAPI %s, not 3.1", path, doc.OpenAPI)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", path, err)
	}
	return &Spec{Doc: doc, router: router, seen: map[string]map[int]int{}}, nil
}

var loaded struct {
	once sync.Once
	spec *Spec
	err  error
}

// Repo loads the module's docs/openapi.yaml, once per test binary; it
// fails the test when the document does not load or is not valid.
func Repo(t testing.TB) *Spec {
	t.Helper()
	loaded.once.Do(func() {
		var root string
		if root, loaded.err = testenv.RepoRoot(); loaded.err == nil {
			loaded.spec, loaded.err = Load(filepath.Join(root, DocumentPath))
		}
	})
	if loaded.err != nil {
		t.Fatal(loaded.err)
	}
	return loaded.spec
}

// Exchange is one request to the API and the answer it got.
type Exchange struct {
	Method string
	// Target is the request's path and query, e.g. "/documents?limit=1".
	Target      string
	Header      http.Header
	RequestBody []byte

	Status         int
	ResponseHeader http.Header
	ResponseBody   []byte
}

func (ex *Exchange) String() string {
	return fmt.Sprintf("%s %s → %d", ex.Method, ex.Target, ex.Status)
}

// transportHeaders are response headers that belong to HTTP, not to the
// API: they need not be declared. Content-Length is checked where declared.
var transportHeaders = map[string]bool{
	"Content-Type": true, "Content-Length": true, "Date": true, "Connection": true,
	"Keep-Alive": true, "Transfer-Encoding": true,
}

// Check validates one exchange against the document and records it. The
// error lists every mismatch found.
func (s *Spec) Check(ctx context.Context, ex Exchange) error {
	req, err := ex.request(ctx)
	if err != nil {
		return err
	}
	route, pathParams, err := s.router.FindRoute(req)
	if errors.Is(err, routers.ErrMethodNotAllowed) {
		// A concrete path without the method may still match a templated
		// one with it, as API Gateway routes: GET /documents/uploads is
		// GET /documents/{id} with the id "uploads".
		if r, params, ok := s.templatedRoute(req); ok {
			route, pathParams, err = r, params, nil
		}
	}
	switch {
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return s.checkUnrouted(ctx, ex, req, http.StatusMethodNotAllowed, "MethodNotAllowed")
	case errors.Is(err, routers.ErrPathNotFound):
		return s.checkUnrouted(ctx, ex, req, http.StatusNotFound, "NotFound")
	case err != nil:
		return fmt.Errorf("%s: no route: %w", ex.String(), err)
	}
	s.record(route.Method+" "+route.Path, ex.Status)

	var problems []string
	reqInput := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: pathParams, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	reqErr := openapi3filter.ValidateRequest(ctx, reqInput)
	if reqErr == nil {
		reqErr = checkMetadataHeaders(route.Operation, req.Header)
	}
	if reqErr != nil && (ex.Status < 400 || ex.Status > 499) {
		problems = append(problems, fmt.Sprintf("the document refuses the request (%v), yet the API answered %d", reqErr, ex.Status))
	}
	reqInput.Request.Body = io.NopCloser(bytes.NewReader(ex.RequestBody))

	respRef := route.Operation.Responses.Status(ex.Status)
	if respRef == nil || respRef.Value == nil {
		problems = append(problems, fmt.Sprintf("status %d is not declared for %s %s", ex.Status, route.Method, route.Path))
		return joinProblems(ex, problems)
	}
	problems = append(problems, checkResponse(ctx, ex, reqInput, respRef.Value)...)
	return joinProblems(ex, problems)
}

// checkUnrouted checks the answer to a request that matches no operation
// against components.responses[name]; a 405 must carry Allow naming the
// methods the document lists for the path.
func (s *Spec) checkUnrouted(ctx context.Context, ex Exchange, req *http.Request, status int, name string) error {
	s.record("(unrouted)", ex.Status)
	if ex.Status != status {
		return joinProblems(ex, []string{fmt.Sprintf("the document has no %s operation on this path, so the answer must be %d, not %d", ex.Method, status, ex.Status)})
	}
	ref := s.Doc.Components.Responses[name]
	if ref == nil || ref.Value == nil {
		return joinProblems(ex, []string{"components.responses." + name + " is missing"})
	}
	op := &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(status, ref))}
	route := &routers.Route{Spec: s.Doc, Method: ex.Method, Operation: op}
	input := &openapi3filter.RequestValidationInput{Request: req, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	problems := checkResponse(ctx, ex, input, ref.Value)
	if status == http.StatusMethodNotAllowed {
		want := s.methodsOf(req.URL.Path)
		got := strings.Split(ex.ResponseHeader.Get("Allow"), ",")
		for i := range got {
			got[i] = strings.TrimSpace(got[i])
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			problems = append(problems, fmt.Sprintf("Allow %q, the document lists %s for this path", ex.ResponseHeader.Get("Allow"), strings.Join(want, ", ")))
		}
	}
	return joinProblems(ex, problems)
}

// methodsOf lists, sorted, the methods of every path item that path matches.
func (s *Spec) methodsOf(path string) []string {
	var methods []string
	for _, template := range s.Doc.Paths.InMatchingOrder() {
		if _, ok := matchTemplate(template, path); !ok {
			continue
		}
		for method := range s.Doc.Paths.Value(template).Operations() {
			if !slices.Contains(methods, method) {
				methods = append(methods, method)
			}
		}
	}
	sort.Strings(methods)
	return methods
}

// templatedRoute finds an operation of the request's method on a path
// template that matches the request path.
func (s *Spec) templatedRoute(req *http.Request) (*routers.Route, map[string]string, bool) {
	for _, template := range s.Doc.Paths.InMatchingOrder() {
		params, ok := matchTemplate(template, req.URL.EscapedPath())
		if !ok {
			continue
		}
		item := s.Doc.Paths.Value(template)
		if op := item.GetOperation(req.Method); op != nil {
			return &routers.Route{Spec: s.Doc, Path: template, PathItem: item, Method: req.Method, Operation: op}, params, true
		}
	}
	return nil, nil, false
}

// matchTemplate matches an escaped request path against a path template
// whose {name} segments each match one non-empty segment.
func matchTemplate(template, path string) (map[string]string, bool) {
	ts := strings.Split(strings.Trim(template, "/"), "/")
	ps := strings.Split(strings.Trim(path, "/"), "/")
	if len(ts) != len(ps) {
		return nil, false
	}
	params := map[string]string{}
	for i, t := range ts {
		if name, ok := strings.CutPrefix(t, "{"); ok && strings.HasSuffix(name, "}") {
			v, err := url.PathUnescape(ps[i])
			if err != nil || v == "" {
				return nil, false
			}
			params[strings.TrimSuffix(name, "}")] = v
			continue
		}
		if t != ps[i] {
			return nil, false
		}
	}
	return params, true
}

// checkResponse validates a response against its declaration: kin-openapi
// for status, headers and body (it skips 304s), then what it leaves out.
func checkResponse(ctx context.Context, ex Exchange, reqInput *openapi3filter.RequestValidationInput, decl *openapi3.Response) []string {
	var problems []string
	if ex.Status != http.StatusNotModified {
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: reqInput,
			Status:                 ex.Status,
			Header:                 ex.ResponseHeader,
			Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		in.SetBodyBytes(ex.ResponseBody)
		if err := openapi3filter.ValidateResponse(ctx, in); err != nil {
			problems = append(problems, err.Error())
		}
	} else {
		for name, h := range decl.Headers {
			if err := checkHeader(name, h.Value, ex.ResponseHeader); err != nil {
				problems = append(problems, err.Error())
			}
		}
	}
	if len(decl.Content) == 0 && len(ex.ResponseBody) > 0 {
		problems = append(problems, fmt.Sprintf("%d declares no body, yet the answer has %d bytes", ex.Status, len(ex.ResponseBody)))
	}
	if len(decl.Content) > 0 && ex.ResponseHeader.Get("Content-Type") == "" {
		problems = append(problems, fmt.Sprintf("%d declares a body, yet the answer has no Content-Type", ex.Status))
	}
	for name := range ex.ResponseHeader {
		if transportHeaders[name] {
			continue
		}
		if !declaresHeader(decl, name) {
			problems = append(problems, fmt.Sprintf("header %s is not declared for %d", name, ex.Status))
		}
	}
	return problems
}

func declaresHeader(decl *openapi3.Response, canonical string) bool {
	for name := range decl.Headers {
		if http.CanonicalHeaderKey(name) == canonical {
			return true
		}
	}
	return false
}

// checkHeader validates one declared header by hand (for the responses
// kin-openapi does not validate).
func checkHeader(name string, h *openapi3.Header, got http.Header) error {
	v, ok := got[http.CanonicalHeaderKey(name)]
	if !ok {
		if h.Required {
			return fmt.Errorf("required header %s is missing", name)
		}
		return nil
	}
	if h.Schema == nil || h.Schema.Value == nil {
		return nil
	}
	var value any = strings.Join(v, ",")
	if h.Schema.Value.Type.Is("integer") {
		n, err := strconv.ParseInt(value.(string), 10, 64)
		if err != nil {
			return fmt.Errorf("header %s %q is not an integer", name, value)
		}
		value = n
	}
	if err := h.Schema.Value.VisitJSON(value, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("header %s: %w", name, err)
	}
	return nil
}

// metadataHeaders is the x-imago-metadata-headers extension of an
// operation: a family of request headers OpenAPI cannot name one by one.
type metadataHeaders struct {
	Prefix     string              `json:"prefix"`
	KeyPattern string              `json:"keyPattern"`
	Schema     *openapi3.SchemaRef `json:"schema"`
}

func checkMetadataHeaders(op *openapi3.Operation, h http.Header) error {
	raw, ok := op.Extensions["x-imago-metadata-headers"]
	if !ok {
		return nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	var mh metadataHeaders
	if err := json.Unmarshal(b, &mh); err != nil {
		return fmt.Errorf("x-imago-metadata-headers: %w", err)
	}
	keyRE, err := regexp.Compile(mh.KeyPattern)
	if err != nil {
		return fmt.Errorf("x-imago-metadata-headers keyPattern: %w", err)
	}
	for name, vs := range h {
		key, ok := strings.CutPrefix(strings.ToLower(name), strings.ToLower(mh.Prefix))
		if !ok {
			continue
		}
		if !keyRE.MatchString(key) {
			return fmt.Errorf("header %s: key %q does not match %s", name, key, mh.KeyPattern)
		}
		if mh.Schema != nil && mh.Schema.Value != nil {
			if err := mh.Schema.Value.VisitJSON(strings.Join(vs, ","), openapi3.EnableJSONSchema2020()); err != nil {
				return fmt.Errorf("header %s: %w", name, err)
			}
		}
	}
	return nil
}

func joinProblems(ex Exchange, problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s does not match %s:\n  - %s\n  response body: %s", ex.String(), DocumentPath,
		strings.Join(problems, "\n  - "), snippet(ex.ResponseBody, ex.ResponseHeader))
}

func snippet(body []byte, h http.Header) string {
	if !strings.Contains(h.Get("Content-Type"), "json") {
		return fmt.Sprintf("(%d bytes of %s)", len(body), h.Get("Content-Type"))
	}
	if len(body) > 600 {
		return string(body[:600]) + "…"
	}
	return string(body)
}

func (ex *Exchange) request(ctx context.Context) (*http.Request, error) {
	u, err := url.ParseRequestURI(ex.Target)
	if err != nil {
		return nil, fmt.Errorf("%s: bad target: %w", ex.String(), err)
	}
	req, err := http.NewRequestWithContext(ctx, ex.Method, u.String(), bytes.NewReader(ex.RequestBody))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ex.String(), err)
	}
	if len(ex.RequestBody) == 0 {
		req.Body = http.NoBody
	}
	req.Header = ex.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	return req, nil
}

func (s *Spec) record(op string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[op] == nil {
		s.seen[op] = map[int]int{}
	}
	s.seen[op][status]++
}

// Unexercised lists the declared "METHOD /path status" answers no checked
// exchange has had.
func (s *Spec) Unexercised() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for path, item := range s.Doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code := range op.Responses.Map() {
				status, _ := strconv.Atoi(code)
				if s.seen[method+" "+path][status] == 0 {
					out = append(out, method+" "+path+" "+code)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// Exercised reports whether some checked exchange of operation "METHOD
// /path" was answered status.
func (s *Spec) Exercised(op string, status int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[op][status] > 0
}

// CheckLambda checks an API Gateway HTTP API (payload 2.0) event and the
// function's answer to it.
func (s *Spec) CheckLambda(ctx context.Context, event, response []byte) error {
	ex, err := LambdaExchange(event, response)
	if err != nil {
		return err
	}
	return s.Check(ctx, ex)
}

// LambdaExchange turns an API Gateway event and a function's answer into
// the HTTP exchange API Gateway makes of them.
func LambdaExchange(event, response []byte) (Exchange, error) {
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(event, &ev); err != nil {
		return Exchange{}, fmt.Errorf("not an API Gateway event: %w", err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(response, &resp); err != nil {
		return Exchange{}, fmt.Errorf("not an API Gateway response: %w", err)
	}
	ex := Exchange{Method: ev.RequestContext.HTTP.Method, Target: ev.RawPath, Header: http.Header{}, Status: resp.StatusCode, ResponseHeader: http.Header{}}
	if ex.Method == "" {
		ex.Method, _, _ = strings.Cut(ev.RouteKey, " ")
	}
	if ev.RawQueryString != "" {
		ex.Target += "?" + ev.RawQueryString
	}
	for k, v := range ev.Headers {
		ex.Header.Set(k, v)
	}
	var err error
	if ex.RequestBody, err = lambdaBody(ev.Body, ev.IsBase64Encoded); err != nil {
		return Exchange{}, fmt.Errorf("event body: %w", err)
	}
	for k, v := range resp.Headers {
		ex.ResponseHeader.Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			ex.ResponseHeader.Add(k, v)
		}
	}
	if ex.ResponseBody, err = lambdaBody(resp.Body, resp.IsBase64Encoded); err != nil {
		return Exchange{}, fmt.Errorf("response body: %w", err)
	}
	return ex, nil
}

func lambdaBody(body string, b64 bool) ([]byte, error) {
	if !b64 {
		return []byte(body), nil
	}
	return base64.StdEncoding.DecodeString(body)
}

// HTTPExchange is the exchange of an HTTP request (whose body was reqBody)
// and its response (whose body was body).
func HTTPExchange(req *http.Request, reqBody []byte, resp *http.Response, body []byte) Exchange {
	header := req.Header.Clone()
	if req.Host != "" {
		header.Set("Host", req.Host)
	}
	return Exchange{Method: req.Method, Target: req.URL.RequestURI(), Header: header, RequestBody: reqBody,
		Status: resp.StatusCode, ResponseHeader: resp.Header.Clone(), ResponseBody: body}
}

// Client returns an HTTP client for the API at base whose every exchange
// is checked against the document; a mismatch fails t. Requests to other
// hosts (S3's presigned URLs) and to base's /_local/ paths (imago serve
// playing S3) are not the API's and pass unchecked.
func (s *Spec) Client(t testing.TB, base string) *http.Client {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &checkingTransport{spec: s, t: t, host: u.Host, next: http.DefaultTransport}}
}

type checkingTransport struct {
	spec *Spec
	t    testing.TB
	host string
	next http.RoundTripper
}

func (c *checkingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != c.host || strings.HasPrefix(req.URL.Path, "/_local/") {
		return c.next.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := c.spec.Check(req.Context(), HTTPExchange(req, reqBody, resp, body)); err != nil {
		c.t.Errorf("%v", err)
	}
	return resp, nil
}
