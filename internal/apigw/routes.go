package apigw

import (
	"context"
	"mime"
	"slices"
	"strings"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

// Function names one of the three Lambda functions.
type Function string

const (
	Upload   Function = "upload"
	Download Function = "download"
	Metadata Function = "metadata"
)

// Functions lists every function, in the order `imago serve` builds them.
var Functions = []Function{Upload, Download, Metadata}

// Route is one route of the HTTP API, the function that serves it and the
// handler that answers it.
type Route struct {
	Method   string
	Path     string // API Gateway route path: {id} is the document id, {link_id} a link's, {token} a link's token
	Function Function
	serve    routeHandler
	// Action is the audit trail's action of the route's requests (api's
	// Action constants); "" for a route not recorded (health, the audit
	// trail itself).
	Action string
}

// routeHandler answers one request on a route.
type routeHandler func(h *Handler, ctx context.Context, req *request) (*Response, error)

// caller is a route only a caller with an identity may use: the handler
// runs with req.tenant set.
func caller(serve routeHandler) routeHandler {
	return func(h *Handler, ctx context.Context, req *request) (*Response, error) {
		tenant, err := h.tenant(req.ev)
		if err != nil {
			return nil, err
		}
		req.tenant = tenant
		return serve(h, ctx, req)
	}
}

// anyone is a route that needs no identity.
func anyone(serve routeHandler) routeHandler { return serve }

// head is the HEAD route of a GET route's handler: the same status and
// headers, no body (RFC 9110 §9.3.2).
func head(serve routeHandler) routeHandler {
	return func(h *Handler, ctx context.Context, req *request) (*Response, error) {
		resp, err := serve(h, ctx, req)
		if resp != nil {
			resp.Body, resp.Binary = nil, false
		}
		return resp, err
	}
}

// Key is the API Gateway route key, e.g. "GET /documents/{id}".
func (r Route) Key() string { return r.Method + " " + r.Path }

// Routes is the HTTP API of docs/design.md ("Routes"), each row with its
// handler: the single source for the handlers' dispatch, template.yaml's
// events and the local front's routing.
var Routes = []Route{
	{"POST", "/documents", Upload, caller((*Handler).upload), api.ActionUpload},
	{"POST", "/documents/uploads", Upload, caller((*Handler).createUpload), api.ActionUpload},
	{"POST", "/documents/{id}/parts", Upload, caller((*Handler).presignParts), api.ActionUpload},
	{"GET", "/documents/{id}/parts", Upload, caller((*Handler).listParts), api.ActionUpload},
	CompleteUpload,
	{"GET", "/documents/{id}/content", Download, caller((*Handler).download), api.ActionRead},
	// A share link's holder has no identity: the token is the credential.
	{"GET", "/links/{token}", Download, anyone(linkHeaders((*Handler).linkContent)), api.ActionLinkRead},
	{"GET", "/documents/{id}", Metadata, caller((*Handler).metadata), api.ActionStat},
	{"GET", "/documents", Metadata, caller((*Handler).list), api.ActionList},
	{"DELETE", "/documents/{id}", Metadata, caller((*Handler).delete), api.ActionDelete},
	{"PATCH", "/documents/{id}", Metadata, caller((*Handler).patch), api.ActionRetention},
	{"POST", "/documents/{id}/restore", Metadata, caller((*Handler).restore), api.ActionRestore},
	{"PUT", "/documents/{id}/legal-hold", Metadata, caller(legalHold(true)), api.ActionHold},
	{"DELETE", "/documents/{id}/legal-hold", Metadata, caller(legalHold(false)), api.ActionRelease},
	{"POST", "/documents/{id}/links", Metadata, caller((*Handler).createLink), api.ActionLinkCreate},
	{"GET", "/documents/{id}/links", Metadata, caller((*Handler).listLinks), api.ActionStat},
	{"DELETE", "/documents/{id}/links/{link_id}", Metadata, caller((*Handler).revokeLink), api.ActionLinkRevoke},
	{"GET", "/health", Metadata, anyone((*Handler).health), ""},
	{"GET", "/audit", Metadata, caller((*Handler).audit), ""},
	// Load balancers and uptime checkers probe with HEAD.
	{"HEAD", "/health", Metadata, anyone(head((*Handler).health)), ""},
}

// CompleteUpload is the completion of an upload in parts: the route whose
// success creates the staged object, which S3 announces with an event (and
// `imago serve`'s local gateway, on the embedded backends, likewise).
var CompleteUpload = Route{"POST", "/documents/{id}/complete", Upload, caller((*Handler).completeUpload), api.ActionUpload}

// MaxJSONBodyBytes bounds the request body of every route but the inline
// upload: they take JSON of a few hundred bytes, and the largest, the
// completion of an upload in parts, lists at most docstore.MaxParts parts
// of well under 100 bytes each.
const MaxJSONBodyBytes = 2 << 20

// MaxBodyBytes is the largest request body the route can use: for the
// inline upload, maxInline (the service's MaxInlineBytes), with the slack
// of boundaries and text fields when the Content-Type is
// multipart/form-data, as the handler counts; for the others,
// MaxJSONBodyBytes. A front that reads bodies before handing them over
// refuses larger ones without reading them.
func (r Route) MaxBodyBytes(maxInline int64, contentType string) int64 {
	if r.Key() != "POST /documents" {
		return MaxJSONBodyBytes
	}
	if mediaType, _, err := mime.ParseMediaType(contentType); err == nil && mediaType == "multipart/form-data" {
		return maxInline + multipartSlack
	}
	return maxInline
}

// Match finds the route of a method and a request path, and the values of
// the path's parameters ({id}, {link_id}, {token}) by name. pathExists
// reports whether the path matched some route under another method (a 405
// rather than a 404).
func Match(method, path string) (route Route, params map[string]string, ok, pathExists bool) {
	path = strings.TrimSuffix(path, "/")
	for _, r := range Routes {
		p, matched := matchPath(r.Path, path)
		if !matched {
			continue
		}
		if r.Method == method {
			return r, p, true, true
		}
		pathExists = true
	}
	return Route{}, nil, false, pathExists
}

// matchPath matches a route path whose {name} segments each match one
// non-empty segment of path, and returns those segments by name.
func matchPath(pattern, path string) (map[string]string, bool) {
	pp := strings.Split(strings.TrimPrefix(pattern, "/"), "/")
	sp := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(pp) != len(sp) {
		return nil, false
	}
	var params map[string]string
	for i := range pp {
		name, isParam := strings.CutPrefix(pp[i], "{")
		switch {
		case isParam:
			if sp[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[strings.TrimSuffix(name, "}")] = sp[i]
		case pp[i] != sp[i]:
			return nil, false
		}
	}
	// "/documents/uploads" is its own route, not a document id: the POST
	// route comes first in Routes, and no other method has that path.
	return params, true
}

// routeByKey finds a route by its API Gateway route key.
func routeByKey(key string) (Route, bool) {
	for _, r := range Routes {
		if r.Key() == key {
			return r, true
		}
	}
	return Route{}, false
}

// Status maps an error kind to its HTTP status: the one place where that
// mapping lives.
func Status(kind docstore.Kind) int {
	switch kind {
	case docstore.KindInvalid:
		return 400
	case docstore.KindUnauthenticated:
		return 401
	case docstore.KindNotFound:
		return 404
	case docstore.KindConflict:
		return 409
	case docstore.KindGone:
		return 410
	case docstore.KindTooLarge:
		return 413
	case docstore.KindUnsupportedMedia:
		return 415
	case docstore.KindBadRange:
		return 416
	case docstore.KindUnavailable:
		return 503
	default:
		return 500
	}
}

// AllowedMethods lists, sorted, the methods of the routes whose path
// matches path: the Allow header of a 405 answer (RFC 9110 §15.5.6).
func AllowedMethods(path string) []string {
	path = strings.TrimSuffix(path, "/")
	var methods []string
	for _, r := range Routes {
		if _, ok := matchPath(r.Path, path); ok && !slices.Contains(methods, r.Method) {
			methods = append(methods, r.Method)
		}
	}
	slices.Sort(methods)
	return methods
}
