package apigw

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

// The routes of uploads in parts (docstore/multipart.go).

// decodeJSON reads the request body as exactly one JSON object of the
// shape of v, refusing unknown fields; shape describes it in the error.
func decodeJSON(op docstore.Op, req *request, v any, shape string) error {
	body, err := req.body()
	if err != nil {
		return err
	}
	if mt, _, _ := mime.ParseMediaType(req.header("content-type")); mt != "" && mt != "application/json" {
		return docstore.E(op, docstore.KindUnsupportedMedia, fmt.Sprintf("send %s as application/json", shape))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return docstore.E(op, docstore.KindInvalid, "the body must be JSON "+shape, err)
	}
	if dec.More() {
		return docstore.E(op, docstore.KindInvalid, "the body must hold one JSON object")
	}
	return nil
}

func (h *Handler) presignParts(ctx context.Context, req *request) (*Response, error) {
	id, err := req.documentID()
	if err != nil {
		return nil, err
	}
	var in api.PresignParts
	if err := decodeJSON("apigw.presignParts", req, &in, `{"numbers": [1, 2, …]}`); err != nil {
		return nil, err
	}
	parts, err := h.svc.PresignParts(ctx, req.tenant, id, in.Numbers)
	if err != nil {
		return nil, err
	}
	return jsonResponse(200, api.PresignedParts{Parts: parts}), nil
}

func (h *Handler) listParts(ctx context.Context, req *request) (*Response, error) {
	id, err := req.documentID()
	if err != nil {
		return nil, err
	}
	parts, err := h.svc.ListParts(ctx, req.tenant, id)
	if err != nil {
		return nil, err
	}
	return jsonResponse(200, api.Parts{Parts: parts}), nil
}

func (h *Handler) completeUpload(ctx context.Context, req *request) (*Response, error) {
	id, err := req.documentID()
	if err != nil {
		return nil, err
	}
	var in api.Complete
	if err := decodeJSON("apigw.completeUpload", req, &in, `{"parts": [{"number", "etag"}, …]}`); err != nil {
		return nil, err
	}
	parts := make([]docstore.Part, len(in.Parts))
	for i, p := range in.Parts {
		parts[i] = docstore.Part{Number: p.Number, ETag: p.ETag}
	}
	doc, err := h.svc.CompleteUpload(ctx, req.tenant, id, parts)
	if err != nil {
		return nil, err
	}
	resp := jsonResponse(202, doc.API())
	resp.set("location", "/documents/"+string(id))
	return resp, nil
}
