package apigw

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

// The routes of a document's policy (docstore/policy.go): its expiry, the
// trash, the legal hold.

// expiresInHeader reads X-Imago-Expires-In: nil when absent, else a
// positive whole number of seconds.
func expiresInHeader(op docstore.Op, req *request) (*int64, error) {
	v := strings.TrimSpace(req.header(strings.ToLower(api.HeaderExpiresIn)))
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return nil, docstore.E(op, docstore.KindInvalid, api.HeaderExpiresIn+" must be a whole number of seconds, at least 1")
	}
	return &n, nil
}

// boolQuery reads a true/false query parameter (absent: false).
func boolQuery(req *request, name string) (bool, error) {
	switch v := req.query(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, docstore.E("apigw", docstore.KindInvalid, fmt.Sprintf("%s must be true or false, not %q", name, v))
	}
}

func (h *Handler) patch(ctx context.Context, req *request) (*Response, error) {
	const op = "apigw.patch"
	id, err := req.documentID()
	if err != nil {
		return nil, err
	}
	var in api.SetExpiry
	if err := decodeJSON(op, req, &in, `{"expires_at": "<RFC 3339>" or null}`); err != nil {
		return nil, err
	}
	var expires time.Time
	switch raw := bytes.TrimSpace(in.ExpiresAt); {
	case len(raw) == 0:
		return nil, docstore.E(op, docstore.KindInvalid, `the body must name expires_at: an RFC 3339 time, or null to clear it`)
	case string(raw) == "null":
	default:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, docstore.E(op, docstore.KindInvalid, "expires_at must be an RFC 3339 time or null")
		}
		if expires, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, docstore.E(op, docstore.KindInvalid, fmt.Sprintf("expires_at %q is not an RFC 3339 time", truncate(s, 64)))
		}
	}
	doc, err := h.svc.SetExpiry(ctx, req.tenant, id, expires)
	if err != nil {
		return nil, err
	}
	return jsonResponse(200, doc.API()), nil
}

func (h *Handler) restore(ctx context.Context, req *request) (*Response, error) {
	id, err := req.documentID()
	if err != nil {
		return nil, err
	}
	doc, err := h.svc.Restore(ctx, req.tenant, id)
	if err != nil {
		return nil, err
	}
	return jsonResponse(200, doc.API()), nil
}

// legalHold is the handler of PUT (hold true) or DELETE (false)
// /documents/{id}/legal-hold.
func legalHold(hold bool) routeHandler {
	return func(h *Handler, ctx context.Context, req *request) (*Response, error) {
		id, err := req.documentID()
		if err != nil {
			return nil, err
		}
		if err := h.svc.SetLegalHold(ctx, req.tenant, id, hold); err != nil {
			return nil, err
		}
		return &Response{Status: 204}, nil
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
