// Package apigw turns API Gateway HTTP API (payload format 2.0) events into
// calls of docstore.Service and its answers into responses: routing, input
// parsing, caller identity, and the mapping of error kinds to statuses.
// The three Lambda functions and `imago serve` all run through it.
package apigw

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
)

// DefaultTenantClaim is the JWT claim naming the tenant when
// IMAGO_TENANT_CLAIM is unset. Package config owns the value, so that
// reading the configuration does not link the handler.
const DefaultTenantClaim = config.DefaultTenantClaim

// Options configure a Handler.
type Options struct {
	// TenantClaim is the JWT claim naming the tenant (IMAGO_TENANT_CLAIM).
	TenantClaim string
	Logger      *slog.Logger
	// EmbeddedMetrics makes each request's log line a CloudWatch Embedded
	// Metric Format record (the "_aws" directive). A Lambda function's log
	// is CloudWatch's, so the functions set it; `imago serve` logs to a
	// terminal or a file, where the directive is only noise.
	EmbeddedMetrics bool
}

// Handler serves the routes of one function.
type Handler struct {
	svc         *docstore.Service
	fn          Function
	tenantClaim string
	log         *slog.Logger
	emf         bool
	// answered is set by the first request: the request log line says
	// cold_start on that one (in Lambda, the first API request of the
	// execution environment; the handler is built once per environment).
	answered atomic.Bool
}

// New returns the Handler of function fn.
func New(svc *docstore.Service, fn Function, opts Options) *Handler {
	return &Handler{svc: svc, fn: fn, tenantClaim: cmp.Or(opts.TenantClaim, DefaultTenantClaim),
		emf: opts.EmbeddedMetrics, log: functionLogger(opts, fn)}
}

// functionLogger is the logger of function fn's log lines: opts.Logger
// (none: nothing logged) naming the function.
func functionLogger(opts Options, fn Function) *slog.Logger {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return opts.Logger.With("function", string(fn))
}

// Invoke is the Lambda entry point (it implements lambda.Handler): the
// event's JSON in, the response's JSON out.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	resp := h.handlePayload(ctx, payload)
	out := resp.AppendLambdaJSON(nil) // while the audit record is appended
	if failed, ok := h.settle(ctx, resp); !ok {
		return failed.AppendLambdaJSON(nil), nil
	}
	return out, nil
}

// Respond is Invoke for aws-lambda-go's runtime, lambda.Start(h.Respond):
// the same answer, in a buffer the runtime gives back (Close) after
// sending it, so that answering a document allocates no buffer of its size.
func (h *Handler) Respond(ctx context.Context, payload json.RawMessage) (*LambdaResponse, error) {
	resp := h.handlePayload(ctx, payload)
	out := resp.LambdaResponse() // while the audit record is appended
	if failed, ok := h.settle(ctx, resp); !ok {
		out.Close()
		return failed.LambdaResponse(), nil
	}
	return out, nil
}

func (h *Handler) handlePayload(ctx context.Context, payload []byte) *Response {
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(payload, &ev); err != nil {
		h.log.ErrorContext(ctx, "undecodable event", "error", err.Error(), "bytes", len(payload))
		return errorResponse(docstore.E("apigw.Invoke", docstore.KindInvalid, "the event is not an API Gateway HTTP API event"))
	}
	return h.handle(ctx, &ev)
}

// request is a decoded event, as the route handlers use it.
type request struct {
	ev     *events.APIGatewayV2HTTPRequest
	route  Route
	id     string            // the {id} path parameter, unparsed
	params map[string]string // every path parameter, unparsed
	// link names the share link of the request in its log line: its id,
	// never its token.
	link string
	// linkTenant is the tenant of a share link's document, once read: the
	// trail its record goes to.
	linkTenant docstore.Tenant
	tenant     docstore.Tenant
	log        *slog.Logger
}

func (r *request) header(name string) string { return headerValue(r.ev.Headers, name) }

// headerValue finds a header by lower-case name: API Gateway lower-cases
// payload 2.0 header names, but a hand-written event may not.
func headerValue(headers map[string]string, name string) string {
	if v, ok := headers[name]; ok {
		return v
	}
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func (r *request) query(name string) string { return r.ev.QueryStringParameters[name] }

// body returns the request body, base64-decoded when API Gateway encoded it.
func (r *request) body() ([]byte, error) {
	if !r.ev.IsBase64Encoded {
		return []byte(r.ev.Body), nil
	}
	b, err := base64.StdEncoding.DecodeString(r.ev.Body)
	if err != nil {
		return nil, docstore.E("apigw.body", docstore.KindInvalid, "the request body is not valid base64", err)
	}
	return b, nil
}

// Handle routes one event and answers it; errors become JSON responses.
// It returns once the request's audit record is stored (or, if it could
// not be, with a 503).
func (h *Handler) Handle(ctx context.Context, ev *events.APIGatewayV2HTTPRequest) *Response {
	resp, _ := h.settle(ctx, h.handle(ctx, ev))
	return resp
}

// handle is Handle with the audit record appending still: the caller
// encodes the answer meanwhile, then settles it.
func (h *Handler) handle(ctx context.Context, ev *events.APIGatewayV2HTTPRequest) *Response {
	start := time.Now()
	coldStart := !h.answered.Swap(true)
	reqID := ev.RequestContext.RequestID
	if lc, ok := lambdacontext.FromContext(ctx); ok && reqID == "" {
		reqID = lc.AwsRequestID
	}
	log := h.log.With("request_id", reqID)
	method := ev.RequestContext.HTTP.Method
	path := cmp.Or(ev.RawPath, ev.RequestContext.HTTP.Path)
	req := &request{ev: ev, log: log}
	ctx, stats := docstore.WithRequestStats(ctx)
	resp := h.route(ctx, req, method, path)
	if e, ok := h.auditEntry(req, resp); ok {
		resp.audit = h.startAudit(ctx, e)
	}
	elapsed := time.Since(start)

	attrs := []any{"method", method, "route", req.route.Key(), "status", resp.Status,
		"duration_ms", float64(elapsed.Microseconds()) / 1000, "bytes_out", len(resp.Body)}
	attrs = append(attrs, "cold_start", coldStart)
	attrs = append(attrs, invocationOf(ctx).attrs()...)
	if req.id != "" {
		attrs = append(attrs, "document", req.id)
	}
	if req.link != "" {
		attrs = append(attrs, "link", req.link)
	}
	if req.tenant != "" {
		attrs = append(attrs, "tenant", string(req.tenant))
	}
	if c := resp.Header("x-imago-cache"); c != "" {
		attrs = append(attrs, "cache", c)
	}
	attrs = append(attrs, h.metrics(stats, resp.Status, elapsed)...)
	log.InfoContext(ctx, "request", attrs...)
	return resp
}

func (h *Handler) route(ctx context.Context, req *request, method, path string) *Response {
	route, params, ok := Route{}, map[string]string(nil), false
	// The route key API Gateway matched is authoritative; a "$default"
	// route or a hand-written event falls back to matching the path.
	if r, found := routeByKey(req.ev.RouteKey); found {
		route, params, ok = r, req.ev.PathParameters, true
	} else {
		var pathExists bool
		route, params, ok, pathExists = Match(method, path)
		if !ok && pathExists {
			// Not a domain error: no kind, and the only 405 there is.
			resp := errorJSON(405, api.CodeMethodNotAllowed, "method "+method+" is not allowed on "+path)
			resp.set("allow", strings.Join(AllowedMethods(path), ", "))
			return resp
		}
	}
	if !ok || route.Function != h.fn {
		return errorResponse(docstore.E("apigw", docstore.KindNotFound, fmt.Sprintf("no route %s %s", method, path)))
	}
	req.route, req.params, req.id = route, params, params["id"]
	resp, err := route.serve(h, ctx, req)
	if err != nil {
		return h.fail(ctx, req, err)
	}
	return resp
}

// tenant finds the caller's identity in the authorizer context: the
// configured JWT claim, else the IAM principal, else a Lambda authorizer's
// context value under the claim's name.
func (h *Handler) tenant(ev *events.APIGatewayV2HTTPRequest) (docstore.Tenant, error) {
	const op = "apigw.tenant"
	var id string
	if a := ev.RequestContext.Authorizer; a != nil {
		switch {
		case a.JWT != nil && a.JWT.Claims[h.tenantClaim] != "":
			id = a.JWT.Claims[h.tenantClaim]
		case a.IAM != nil && a.IAM.UserARN != "":
			id = a.IAM.UserARN
		case a.Lambda != nil:
			if v, ok := a.Lambda[h.tenantClaim].(string); ok {
				id = v
			}
		}
	}
	if id == "" {
		return "", docstore.E(op, docstore.KindUnauthenticated, "no caller identity: authenticate to call this route")
	}
	if len(id) > 256 || !utf8.ValidString(id) || strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return "", docstore.E(op, docstore.KindUnauthenticated, "the caller identity is not usable as a tenant")
	}
	return docstore.Tenant(id), nil
}

// documentID parses the {id} path parameter.
func (r *request) documentID() (docstore.ID, error) { return docstore.ParseID(r.id) }

// fail answers an error: its kind picks the status, its public message is
// all the caller sees, and the whole chain goes to the log.
func (h *Handler) fail(ctx context.Context, req *request, err error) *Response {
	resp := errorResponse(err)
	if resp.Status >= 500 {
		req.log.ErrorContext(ctx, "request failed", "route", req.route.Key(), "status", resp.Status, "error", err.Error())
	} else {
		req.log.InfoContext(ctx, "request refused", "route", req.route.Key(), "status", resp.Status, "error", err.Error())
	}
	var rangeErr *docstore.UnsatisfiableRange
	if errors.As(err, &rangeErr) {
		resp.set("content-range", "bytes */"+strconv.FormatInt(rangeErr.Size, 10))
	}
	if resp.Status == 503 {
		resp.set("retry-after", "1")
	}
	return resp
}

func errorResponse(err error) *Response {
	kind := docstore.KindOf(err)
	return errorJSON(Status(kind), kind.String(), docstore.PublicMessage(err))
}

// errorJSON is the one shape of every error answer.
func errorJSON(status int, code, message string) *Response {
	return jsonResponse(status, api.NewErrorBody(code, message))
}

// MetricsNamespace is the CloudWatch namespace of Imago's metrics.
const MetricsNamespace = "Imago"

var metricDefinitions = []map[string]string{
	{"Name": "CacheHits", "Unit": "Count"},
	{"Name": "CacheMisses", "Unit": "Count"},
	{"Name": "CacheFills", "Unit": "Count"},
	{"Name": "CacheLockWaits", "Unit": "Count"},
	{"Name": "CacheErrors", "Unit": "Count"},
	{"Name": "Errors5xx", "Unit": "Count"},
	{"Name": "Latency", "Unit": "Milliseconds"},
}

// metrics are the request's counts on its log line. With EmbeddedMetrics
// the line is a CloudWatch Embedded Metric Format record as well: the
// "_aws" member declares the metrics, the top-level fields of the same
// names carry the values, so one line is both the log and the metrics,
// with no extra API call from the function.
func (h *Handler) metrics(rs *docstore.RequestStats, status int, elapsed time.Duration) []any {
	errors5xx := 0
	if status >= 500 {
		errors5xx = 1
	}
	var attrs []any
	if h.emf {
		attrs = append(attrs, "_aws", map[string]any{
			"Timestamp": time.Now().UnixMilli(),
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  MetricsNamespace,
				"Dimensions": [][]string{{"function"}},
				"Metrics":    metricDefinitions,
			}},
		})
	}
	return append(attrs,
		"CacheHits", rs.Hits.Load(), "CacheMisses", rs.Misses.Load(), "CacheFills", rs.Fills.Load(),
		"CacheLockWaits", rs.LockWaits.Load(), "CacheErrors", rs.CacheErrors.Load(),
		"Errors5xx", errors5xx, "Latency", float64(elapsed.Microseconds())/1000)
}
