package apigw

import (
	"strings"

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

// Route is one route of the HTTP API and the function that serves it.
type Route struct {
	Method   string
	Path     string // API Gateway route path, with {id} for the document id
	Function Function
}

// Key is the API Gateway route key, e.g. "GET /documents/{id}".
func (r Route) Key() string { return r.Method + " " + r.Path }

// Routes is the HTTP API of DESIGN.md, and the single source for
// template.yaml's events and the local front's routing.
var Routes = []Route{
	{"POST", "/documents", Upload},
	{"POST", "/documents/uploads", Upload},
	{"POST", "/documents/{id}/parts", Upload},
	{"GET", "/documents/{id}/parts", Upload},
	{"POST", "/documents/{id}/complete", Upload},
	{"GET", "/documents/{id}/content", Download},
	{"GET", "/documents/{id}", Metadata},
	{"GET", "/documents", Metadata},
	{"DELETE", "/documents/{id}", Metadata},
	{"GET", "/health", Metadata},
}

// Match finds the route of a method and a request path, and the path's
// {id} if it has one. pathExists reports whether the path matched some
// route under another method (a 405 rather than a 404).
func Match(method, path string) (route Route, id string, ok, pathExists bool) {
	path = strings.TrimSuffix(path, "/")
	for _, r := range Routes {
		seg, matched := matchPath(r.Path, path)
		if !matched {
			continue
		}
		if r.Method == method {
			return r, seg, true, true
		}
		pathExists = true
	}
	return Route{}, "", false, pathExists
}

// matchPath matches a route path with at most one {id} segment.
func matchPath(pattern, path string) (string, bool) {
	pp := strings.Split(strings.TrimPrefix(pattern, "/"), "/")
	sp := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(pp) != len(sp) {
		return "", false
	}
	id := ""
	for i := range pp {
		switch {
		case pp[i] == "{id}":
			if sp[i] == "" {
				return "", false
			}
			id = sp[i]
		case pp[i] != sp[i]:
			return "", false
		}
	}
	// "/documents/uploads" is its own route, not a document id.
	return id, true
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
