package apigw

import (
	"bytes"
	"cmp"
	"context"
	"strings"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

// The routes of share links (docstore/links.go).

func (h *Handler) createLink(ctx context.Context, req *request) (*Response, error) {
	const op = "apigw.createLink"
	id, err := req.documentID()
	if err != nil {
		return nil, err
	}
	var in api.CreateLink
	// Every field is optional, and so is the body.
	if body, err := req.body(); err != nil || len(bytes.TrimSpace(body)) > 0 {
		if err := decodeJSON(op, req, &in, "{expires_in, max_uses, disposition}"); err != nil {
			return nil, err
		}
	}
	l, err := h.svc.CreateLink(ctx, req.tenant, id, in)
	if err != nil {
		return nil, err
	}
	req.link = string(l.ID)
	resp := jsonResponse(201, h.linkJSON(req, l))
	resp.set("location", "/documents/"+string(id)+"/links/"+string(l.ID))
	return resp, nil
}

func (h *Handler) listLinks(ctx context.Context, req *request) (*Response, error) {
	id, err := req.documentID()
	if err != nil {
		return nil, err
	}
	links, err := h.svc.Links(ctx, req.tenant, id)
	if err != nil {
		return nil, err
	}
	out := api.Links{Links: make([]api.Link, len(links))}
	for i, l := range links {
		out.Links[i] = h.linkJSON(req, l)
	}
	return jsonResponse(200, out), nil
}

func (h *Handler) revokeLink(ctx context.Context, req *request) (*Response, error) {
	id, err := req.documentID()
	if err != nil {
		return nil, err
	}
	req.link = req.params["link_id"]
	if err := h.svc.RevokeLink(ctx, req.tenant, id, docstore.LinkID(req.link)); err != nil {
		return nil, err
	}
	return &Response{Status: 204}, nil
}

// linkJSON is l as the API answers it, its URL on the API the request came
// through.
func (h *Handler) linkJSON(req *request, l docstore.Link) api.Link {
	return l.API(baseURL(req) + api.LinksPath + h.svc.LinkToken(l))
}

// baseURL is the API's URL as the caller reached it: API Gateway's domain
// and, unless it is the $default stage (served at the root), the stage;
// the scheme API Gateway (or the local front) says it was reached by.
func baseURL(req *request) string {
	rc := req.ev.RequestContext
	scheme := strings.ToLower(cmp.Or(req.header("x-forwarded-proto"), "https"))
	if scheme != "http" {
		scheme = "https"
	}
	host := cmp.Or(rc.DomainName, req.header("host"))
	u := scheme + "://" + host
	if rc.Stage != "" && rc.Stage != "$default" {
		u += "/" + rc.Stage
	}
	return u
}

// linkContent answers GET /links/{token}: the document, as the owner's
// content route answers it, with the link's disposition.
func (h *Handler) linkContent(ctx context.Context, req *request) (*Response, error) {
	c, err := h.svc.ReadLink(ctx, docstore.LinkReadRequest{
		Token: req.params["token"], Range: req.header("range"), IfNoneMatch: req.header("if-none-match"),
	})
	if c != nil {
		req.id, req.link, req.linkTenant = string(c.Link.Document), string(c.Link.ID), c.Link.Tenant
	}
	if err != nil {
		return nil, err
	}
	return contentResponse(c.Content, c.Link.Disposition, linkCacheControl), nil
}

// linkCacheControl keeps a link's answer out of every cache: a revoked
// link must not be answered by a browser's or a proxy's copy.
const linkCacheControl = "private, no-store"

// linkHeaders puts the headers every answer of a share link carries,
// errors included, on serve's: no cache keeps it, no Referer carries the
// token onwards from a page it shows, no browser guesses another type.
func linkHeaders(serve routeHandler) routeHandler {
	return func(h *Handler, ctx context.Context, req *request) (*Response, error) {
		resp, err := serve(h, ctx, req)
		if err != nil {
			resp = h.fail(ctx, req, err)
		}
		resp.set("cache-control", linkCacheControl)
		resp.set("referrer-policy", "no-referrer")
		resp.set("x-content-type-options", "nosniff")
		return resp, nil
	}
}
