package apigw

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

// The audit trail's side of a request (docstore/audit.go): every request
// of a route with an Action, whose caller (or link) names a tenant, leaves
// one record, refused requests included, stored before the answer goes:
// Handle starts the append as soon as the answer is known, and Invoke and
// Respond encode the answer while it runs (a hit's base64, the response's
// JSON), then wait for it. An append that fails turns the answer into a
// 503 with no byte of the document.

// auditEntry is the record of req answered resp; ok false when the request
// is not recorded.
func (h *Handler) auditEntry(req *request, resp *Response) (docstore.AuditEntry, bool) {
	action := req.route.Action
	if action == "" || !h.svc.Auditing() {
		return docstore.AuditEntry{}, false
	}
	rc := req.ev.RequestContext
	e := docstore.AuditEntry{Tenant: req.tenant, Actor: h.actor(req), Action: action, Status: resp.Status,
		RequestID: rc.RequestID, SourceIP: rc.HTTP.SourceIP, UserAgent: rc.HTTP.UserAgent}
	if id, err := docstore.ParseID(req.id); err == nil {
		e.Document = id
	}
	switch action {
	case api.ActionLinkRead:
		// The link's holder is no tenant: the record goes to the trail of
		// the document's owner, its actor the link.
		if req.linkTenant == "" {
			return docstore.AuditEntry{}, false
		}
		e.Tenant, e.Actor, e.Link = req.linkTenant, api.ActorLinkPrefix+req.link, docstore.LinkID(req.link)
		fallthrough
	case api.ActionRead:
		e.Range = req.header("range")
		if resp.Status == 200 || resp.Status == 206 {
			n := int64(len(resp.Body))
			e.Bytes = &n
			e.Cache = resp.Header("x-imago-cache")
		}
	case api.ActionLinkCreate, api.ActionLinkRevoke:
		e.Link = docstore.LinkID(req.link)
	case api.ActionDelete:
		if req.query("purge") == "true" {
			e.Action = api.ActionPurge
		}
	}
	if e.Tenant == "" {
		return docstore.AuditEntry{}, false // no identity: a 401 names no trail
	}
	return e, true
}

// actor is the caller as the authorizer saw them: the JWT's subject, else
// the IAM principal, else the tenant.
func (h *Handler) actor(req *request) string {
	if a := req.ev.RequestContext.Authorizer; a != nil {
		if a.JWT != nil && a.JWT.Claims["sub"] != "" {
			return a.JWT.Claims["sub"]
		}
		if a.IAM != nil && a.IAM.UserARN != "" {
			return a.IAM.UserARN
		}
	}
	return string(req.tenant)
}

// startAudit appends e while the answer is encoded; the returned channel
// delivers the append's outcome.
func (h *Handler) startAudit(ctx context.Context, e docstore.AuditEntry) <-chan error {
	done := make(chan error, 1)
	go func() { done <- h.svc.Audit(context.WithoutCancel(ctx), e) }()
	return done
}

// settle waits for resp's audit record: resp itself once it is stored, a
// 503 when it could not be.
func (h *Handler) settle(ctx context.Context, resp *Response) (*Response, bool) {
	if resp.audit == nil {
		return resp, true
	}
	err := <-resp.audit
	resp.audit = nil
	if err == nil {
		return resp, true
	}
	h.log.ErrorContext(ctx, "audit record not stored: answering 503", "status_withheld", resp.Status, "error", err.Error())
	failed := errorResponse(err)
	failed.set("retry-after", "1")
	// A share link's answers keep their own headers, errors included.
	if resp.Header("referrer-policy") != "" {
		for _, name := range []string{"cache-control", "referrer-policy", "x-content-type-options"} {
			failed.set(name, resp.Header(name))
		}
	}
	return failed, false
}

// audit answers GET /audit: the caller's tenant's records.
func (h *Handler) audit(ctx context.Context, req *request) (*Response, error) {
	const op = "apigw.audit"
	var q docstore.AuditQuery
	if v := req.query("document"); v != "" {
		id, err := docstore.ParseID(v)
		if err != nil {
			return nil, err
		}
		q.Document = id
	}
	if v := req.query("action"); v != "" {
		known := false
		for _, a := range api.AuditActions {
			known = known || a == v
		}
		if !known {
			return nil, docstore.E(op, docstore.KindInvalid, fmt.Sprintf("action %q is not an audit action", truncate(v, 40)))
		}
		q.Action = v
	}
	for name, t := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if v := req.query(name); v != "" {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, docstore.E(op, docstore.KindInvalid, fmt.Sprintf("%s must be an RFC 3339 time", name))
			}
			*t = at
		}
	}
	limit := 0
	if v := req.query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, docstore.E(op, docstore.KindInvalid, fmt.Sprintf("limit must be a whole number from 1 to %d", api.MaxAuditLimit))
		}
		limit = n
	}
	page, err := h.svc.AuditPage(ctx, req.tenant, q, limit, req.query("cursor"))
	if err != nil {
		return nil, err
	}
	return jsonResponse(200, page), nil
}
