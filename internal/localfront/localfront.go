// Package localfront is the HTTP front of `imago serve`: it turns each
// http.Request into the API Gateway HTTP API (payload 2.0) event the
// route's Lambda function would receive, as `sam local start-api` does,
// invokes that function with the event's JSON, and writes the function's
// JSON response back. The local run so exercises the very code, encoders
// included, that runs in Lambda. It plays S3 too, for the embedded staging
// area (Receiver, receiver.go): it takes the presigned PUTs and invokes the
// upload function with the ObjectCreated events S3 would send. One
// Invoker stands for a function either way, and one writer answers the
// API's JSON errors.
package localfront

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
)

// MaxRequestBytes is API Gateway's payload limit: larger requests never
// reach a function. Each route takes less (apigw.Route.MaxBodyBytes).
const MaxRequestBytes = 10 << 20

// Invoker is a Lambda function, as API Gateway and S3 invoke it: event
// JSON in, response JSON out.
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
	staging     LocalStaging
	maxInline   int64 // the inline upload limit: POST /documents's body
}

// LocalTenant is every caller's tenant when no tokens file is given.
const LocalTenant = "local"

// New returns a Front over the given functions. With tokens nil every
// caller is tenant "local"; otherwise a known bearer token is required.
func New(functions map[apigw.Function]Invoker, tenantClaim string, tokens map[string]string, log *slog.Logger) *Front {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Front{functions: functions, tenantClaim: tenantClaim, tokens: tokens, log: log, maxInline: docstore.DefaultMaxInlineBytes}
}

// LimitInlineUploads sets the inline upload limit (the service's
// MaxInlineBytes; docstore.DefaultMaxInlineBytes until set), which bounds
// the body the front reads for POST /documents.
func (f *Front) LimitInlineUploads(maxInline int64) { f.maxInline = maxInline }

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
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "could not read the event")
		return
	}
	event, err := s3Notification(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	if !f.invokeS3Event(r.Context(), w, event) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// s3Notification checks that body is an S3 event notification — a JSON
// object whose Records is a non-empty list of records, each from
// eventSource "aws:s3" with an object key — and returns it re-encoded as
// exactly that. The upload function takes any other payload for an API
// Gateway event, whose authorizer claims name the tenant: passed on as
// posted, a body with no Records, or with an API Gateway event's members
// beside them, would let the poster act as any tenant. Re-encoding drops
// every member but the records', whatever spelling of "Records" the
// decoder matched.
func s3Notification(body []byte) ([]byte, error) {
	var ev events.S3Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, errors.New("the body is not an S3 event notification (a JSON object with Records)")
	}
	if len(ev.Records) == 0 {
		return nil, errors.New("the S3 event notification has no Records")
	}
	for i, rec := range ev.Records {
		if rec.EventSource != "aws:s3" || rec.S3.Object.Key == "" {
			return nil, fmt.Errorf("record %d is not an S3 record (eventSource aws:s3, an s3.object.key)", i)
		}
	}
	return json.Marshal(&ev)
}

// invokeS3Event hands an S3 event to the upload function, answering the
// failure itself; it reports success.
func (f *Front) invokeS3Event(ctx context.Context, w http.ResponseWriter, event []byte) bool {
	if _, err := f.functions[apigw.Upload].Invoke(ctx, event); err != nil {
		f.log.ErrorContext(ctx, "S3 event failed", "error", err.Error())
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "the upload function failed on the event")
		return false
	}
	return true
}

// LocalStaging plays S3's part for the embedded staging area
// (Receiver): it takes the presigned PUTs under its Path, and
// announces to the upload function each object staged, as S3 would.
type LocalStaging interface {
	http.Handler
	// Path is the URL path under which it takes PUTs.
	Path() string
	// Completed announces the staged object of document id's upload in
	// parts, which the upload function has just completed: S3's
	// ObjectCreated:CompleteMultipartUpload event, delivered as S3
	// delivers it, apart from ctx's cancellation. An error says the event
	// could not be handed over at all.
	Completed(ctx context.Context, id docstore.ID) error
}

// EnableLocalStaging makes the front pass the presigned PUTs of the
// embedded staging area to st, and announce through st every upload in
// parts the upload function completes. The answer waits for the ingest's
// first attempt (bounded), so a client usually knows the document is
// available once it returns.
func (f *Front) EnableLocalStaging(st LocalStaging) { f.staging = st }

// afterComplete plays S3's ObjectCreated:CompleteMultipartUpload event once
// the upload function has completed an upload in parts on the embedded
// staging area, before the answer goes out, as a single PUT's event does.
// The ingest does not belong to this request: a client that goes away
// cancels nothing.
func (f *Front) afterComplete(ctx context.Context, w http.ResponseWriter, route apigw.Route, id string, resp *functionResponse) bool {
	if route.Key() != apigw.CompleteUpload.Key() || resp.StatusCode != http.StatusAccepted {
		return true
	}
	docID, err := docstore.ParseID(id) // the staged object's key has the canonical id
	if err != nil {
		return true
	}
	if err := f.staging.Completed(ctx, docID); err != nil {
		f.log.ErrorContext(ctx, "S3 event failed", "error", err.Error())
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "the upload function failed on the event")
		return false
	}
	return true
}

func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case f.s3Events && r.Method == http.MethodPost && r.URL.Path == S3EventsPath:
		f.serveS3Event(w, r)
		return
	case f.staging != nil && r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, f.staging.Path()):
		f.staging.ServeHTTP(w, r)
		return
	}
	route, params, ok, pathExists := apigw.Match(r.Method, r.URL.EscapedPath())
	if !ok {
		status, code, msg := http.StatusNotFound, api.CodeNotFound, "no route "+r.Method+" "+r.URL.Path
		if pathExists {
			status, code, msg = http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path
			w.Header().Set("Allow", strings.Join(apigw.AllowedMethods(r.URL.EscapedPath()), ", "))
		}
		writeError(w, status, code, msg)
		return
	}
	fn, ok := f.functions[route.Function]
	if !ok {
		writeError(w, http.StatusNotFound, api.CodeNotFound, "no function serves "+route.Key())
		return
	}
	// An undecodable query is the caller's error: url.Query would drop
	// the bad pairs without a word, and a listing whose cursor was
	// dropped would silently start over at the first page.
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "the query string is not valid URL encoding")
		return
	}
	// A body is held several times over on its way to the function (read,
	// base64, the event's JSON, decoded again): one the route cannot take
	// is refused before any of it is read when its length is announced,
	// and as soon as it passes the limit when it is not.
	limit := min(route.MaxBodyBytes(f.maxInline, r.Header.Get("Content-Type")), MaxRequestBytes)
	if r.ContentLength > limit {
		writeTooLarge(w, route, limit)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeTooLarge(w, route, limit)
			return
		}
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "could not read the request body")
		return
	}
	ev := f.event(r, route, params, query, body)
	payload, err := json.Marshal(ev)
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "internal error")
		return
	}
	out, err := fn.Invoke(r.Context(), payload)
	if err != nil {
		f.log.ErrorContext(r.Context(), "function failed", "function", string(route.Function), "error", err.Error())
		writeError(w, http.StatusBadGateway, api.CodeInternal, "the function failed")
		return
	}
	var resp functionResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		f.log.ErrorContext(r.Context(), "function answered an undecodable response", "function", string(route.Function), "error", err.Error())
		writeError(w, http.StatusBadGateway, api.CodeInternal, "the function's response is malformed")
		return
	}
	if f.staging != nil && !f.afterComplete(r.Context(), w, route, params["id"], &resp) {
		return
	}
	writeResponse(w, r.Method == http.MethodHead, &resp)
}

// writeResponse writes the function's answer; head drops its body, and
// the Content-Length of that empty body, which would misstate the GET's.
func writeResponse(w http.ResponseWriter, head bool, resp *functionResponse) {
	body, err := resp.Body.text()
	if err != nil {
		writeError(w, http.StatusBadGateway, api.CodeInternal, "the function's response body is malformed")
		return
	}
	size := len(body)
	if resp.IsBase64Encoded {
		if size, err = base64DecodedLen(body); err != nil {
			writeError(w, http.StatusBadGateway, api.CodeInternal, "the function's response body is not valid base64")
			return
		}
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
	status := cmp.Or(resp.StatusCode, http.StatusOK)
	if head {
		w.WriteHeader(status)
		return
	}
	if status != http.StatusNoContent && status != http.StatusNotModified {
		h.Set("Content-Length", strconv.Itoa(size))
	}
	w.WriteHeader(status)
	if !resp.IsBase64Encoded {
		w.Write(body)
		return
	}
	// One 48 KiB buffer whatever the size. The length was checked; a
	// character that is not base64 surfaces here, after the status went
	// out: the connection is cut, so the client sees a short body, never
	// a wrong one.
	if _, err := io.Copy(w, base64.NewDecoder(base64.StdEncoding, bytes.NewReader(body))); err != nil {
		panic(http.ErrAbortHandler)
	}
}

// writeTooLarge refuses a body over the route's limit, closing the
// connection: the rest of the body is never read.
func writeTooLarge(w http.ResponseWriter, route apigw.Route, limit int64) {
	msg := fmt.Sprintf("the request body is over the %d-byte limit of %s", limit, route.Key())
	if route.Key() == "POST /documents" {
		msg += " (use POST /documents/uploads for larger documents)"
	}
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, api.CodeTooLarge, msg)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(api.NewErrorBody(code, msg))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
