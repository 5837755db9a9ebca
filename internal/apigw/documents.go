package apigw

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strconv"
	"strings"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

// multipartSlack is how much larger than the inline limit a multipart body
// may be: boundaries, part headers and text fields.
const multipartSlack = 256 << 10

func (h *Handler) upload(ctx context.Context, req *request) (*Response, error) {
	const op = "apigw.upload"
	body, err := req.body()
	if err != nil {
		return nil, err
	}
	limit := h.svc.Config().MaxInlineBytes
	up := docstore.UploadRequest{Tenant: req.tenant, IdempotencyKey: req.header("idempotency-key"), Metadata: map[string]string{}}
	if up.ExpiresIn, err = expiresInHeader(op, req); err != nil {
		return nil, err
	}
	for name, v := range req.ev.Headers {
		if key, ok := strings.CutPrefix(strings.ToLower(name), "x-imago-meta-"); ok {
			up.Metadata[key] = v
		}
	}

	ct := req.header("content-type")
	mediaType, params, perr := mime.ParseMediaType(ct)
	switch {
	case ct != "" && perr != nil:
		return nil, docstore.E(op, docstore.KindUnsupportedMedia, fmt.Sprintf("Content-Type %q is not a valid media type", ct))
	case mediaType == "multipart/form-data":
		if int64(len(body)) > limit+multipartSlack {
			return nil, tooLarge(op, int64(len(body)), limit)
		}
		if err := parseMultipart(body, params["boundary"], limit, &up); err != nil {
			return nil, err
		}
	case strings.HasPrefix(mediaType, "multipart/"):
		return nil, docstore.E(op, docstore.KindUnsupportedMedia, fmt.Sprintf("%s is not supported: send multipart/form-data with a \"file\" part, or the raw document", mediaType))
	case mediaType == "application/x-www-form-urlencoded":
		return nil, docstore.E(op, docstore.KindUnsupportedMedia, "a URL-encoded form carries no file: send multipart/form-data with a \"file\" part, or the raw document")
	default:
		if int64(len(body)) > limit {
			return nil, tooLarge(op, int64(len(body)), limit)
		}
		up.Body, up.ContentType, up.Filename = body, ct, req.query("filename")
	}

	doc, err := h.svc.Upload(ctx, up)
	if err != nil {
		return nil, err
	}
	req.id = string(doc.ID)
	resp := jsonResponse(201, doc.API())
	resp.set("location", "/documents/"+string(doc.ID))
	return resp, nil
}

func tooLarge(op docstore.Op, n, limit int64) error {
	return docstore.E(op, docstore.KindTooLarge, fmt.Sprintf("the request body is %d bytes; the limit for an inline upload is %d bytes (use POST /documents/uploads for larger documents)", n, limit))
}

// parseMultipart reads a multipart/form-data body: exactly one "file" part
// (the document, with its filename and Content-Type) and text parts, each
// stored as a custom metadata pair.
func parseMultipart(body []byte, boundary string, limit int64, up *docstore.UploadRequest) error {
	const op = "apigw.parseMultipart"
	if boundary == "" {
		return docstore.E(op, docstore.KindInvalid, "multipart/form-data without a boundary parameter")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	sawFile := false
	for {
		part, err := mr.NextPart()
		// Only a bare io.EOF is an end: NextPart wraps the io.EOF of a
		// body cut short. And it answers a bare io.EOF, too, to a
		// delimiter followed by nothing, so the close delimiter
		// ("--boundary--", RFC 2046 §5.1.1) must be there: a body without
		// it may have lost any number of bytes.
		if err == io.EOF {
			if !hasCloseDelimiter(body, boundary) {
				return docstore.E(op, docstore.KindInvalid, "the multipart body is truncated: it has no closing boundary")
			}
			break
		}
		if err != nil {
			return docstore.E(op, docstore.KindInvalid, "malformed multipart body", err)
		}
		name := part.FormName()
		switch {
		case name == "file":
			if sawFile {
				return docstore.E(op, docstore.KindInvalid, "more than one \"file\" part")
			}
			sawFile = true
			data, err := io.ReadAll(io.LimitReader(part, limit+1))
			if err != nil {
				return docstore.E(op, docstore.KindInvalid, "malformed multipart body", err)
			}
			if int64(len(data)) > limit {
				return docstore.E(op, docstore.KindTooLarge, fmt.Sprintf("the file is over the %d-byte inline upload limit (use POST /documents/uploads for larger documents)", limit))
			}
			up.Body = data
			up.Filename = part.FileName()
			up.ContentType = part.Header.Get("Content-Type")
		case part.FileName() != "":
			return docstore.E(op, docstore.KindInvalid, fmt.Sprintf("unexpected file part %q: the document goes in the part named \"file\"", name))
		case name == "":
			return docstore.E(op, docstore.KindInvalid, "a multipart part has no name")
		default:
			v, err := io.ReadAll(io.LimitReader(part, docstore.MaxMetadataValBytes+1))
			if err != nil {
				return docstore.E(op, docstore.KindInvalid, "malformed multipart body", err)
			}
			up.Metadata[strings.ToLower(name)] = string(v)
		}
	}
	if !sawFile {
		return docstore.E(op, docstore.KindInvalid, "the multipart body has no \"file\" part")
	}
	return nil
}

// hasCloseDelimiter reports whether body holds the close delimiter of
// boundary, with the line ending the multipart reader settled on: bare LF
// when the first delimiter line is exactly "--boundary\n", else CRLF. No
// part can hold that sequence (the reader would end the part there) and
// the reader ends at the first one, so, once it has reported a clean end,
// finding one proves that it was the end the reader saw.
func hasCloseDelimiter(body []byte, boundary string) bool {
	dash := []byte("--" + boundary)
	for rest := body; len(rest) > 0; {
		line, next, _ := bytes.Cut(rest, []byte("\n"))
		if bytes.Equal(bytes.TrimRight(line, " \t\r"), dash) {
			nl := "\r\n"
			if len(line) == len(dash) {
				nl = "\n"
			}
			return bytes.Contains(rest, []byte(nl+string(dash)+"--"))
		}
		rest = next
	}
	return false
}

func (h *Handler) health(context.Context, *request) (*Response, error) {
	return jsonResponse(200, api.Health{Status: api.HealthOK}), nil
}

func (h *Handler) metadata(ctx context.Context, req *request) (*Response, error) {
	id, err := req.documentID()
	if err != nil {
		return nil, err
	}
	doc, err := h.svc.Get(ctx, req.tenant, id)
	if err != nil {
		return nil, err
	}
	return jsonResponse(200, doc.API()), nil
}

func (h *Handler) list(ctx context.Context, req *request) (*Response, error) {
	limit := 0
	if v := req.query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, docstore.E("apigw.list", docstore.KindInvalid, fmt.Sprintf("limit must be a whole number from 1 to %d", docstore.MaxListLimit))
		}
		limit = n
	}
	trash, err := boolQuery(req, "trash")
	if err != nil {
		return nil, err
	}
	list := h.svc.List
	if trash {
		list = h.svc.ListTrash
	}
	page, err := list(ctx, req.tenant, limit, req.query("cursor"))
	if err != nil {
		return nil, err
	}
	return jsonResponse(200, page.API()), nil
}

func (h *Handler) delete(ctx context.Context, req *request) (*Response, error) {
	id, err := req.documentID()
	if err != nil {
		return nil, err
	}
	purge, err := boolQuery(req, "purge")
	if err != nil {
		return nil, err
	}
	remove := h.svc.Delete
	if purge {
		remove = h.svc.Purge
	}
	if err := remove(ctx, req.tenant, id); err != nil {
		return nil, err
	}
	return &Response{Status: 204}, nil
}

func (h *Handler) createUpload(ctx context.Context, req *request) (*Response, error) {
	const op = "apigw.createUpload"
	body, err := req.body()
	if err != nil {
		return nil, err
	}
	// No Content-Type is taken as JSON; anything else must parse, as
	// application/json.
	if ct := req.header("content-type"); strings.TrimSpace(ct) != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, docstore.E(op, docstore.KindUnsupportedMedia, "send the upload's description as application/json")
		}
	}
	var in api.CreateUpload
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, docstore.E(op, docstore.KindInvalid, "the body must be JSON {filename, content_type, size, metadata, part_size, expires_in}", err)
	}
	if dec.More() {
		return nil, docstore.E(op, docstore.KindInvalid, "the body must hold one JSON object")
	}
	if in.Size == nil {
		return nil, docstore.E(op, docstore.KindInvalid, "size is required")
	}
	cu := docstore.CreateUploadRequest{Tenant: req.tenant, Filename: in.Filename,
		ContentType: in.ContentType, Size: *in.Size, Metadata: in.Metadata, ExpiresIn: in.ExpiresIn}
	if in.PartSize != nil {
		if *in.PartSize == 0 {
			return nil, docstore.E(op, docstore.KindInvalid, fmt.Sprintf("part_size must be from %d (5 MiB) to %d (5 GiB) bytes", int64(docstore.MinPartSize), int64(docstore.MaxPartSize)))
		}
		cu.PartSize = *in.PartSize
	}
	up, err := h.svc.CreateUpload(ctx, cu)
	if err != nil {
		return nil, err
	}
	req.id = string(up.ID)
	resp := jsonResponse(201, up.API())
	resp.set("location", "/documents/"+string(up.ID))
	return resp, nil
}

func (h *Handler) download(ctx context.Context, req *request) (*Response, error) {
	id, err := req.documentID()
	if err != nil {
		return nil, err
	}
	c, err := h.svc.Download(ctx, docstore.DownloadRequest{
		Tenant: req.tenant, ID: id, Range: req.header("range"), IfNoneMatch: req.header("if-none-match"),
	})
	if err != nil {
		return nil, err
	}
	return contentResponse(c, "attachment", "private, no-cache"), nil
}

// contentResponse is the answer of a download, c: the document's bytes
// with its headers, or a 304. disposition is the Content-Disposition's
// type (inline or attachment), cacheControl the Cache-Control header.
func contentResponse(c *docstore.Content, disposition, cacheControl string) *Response {
	cache := "miss"
	if c.CacheHit {
		cache = "hit"
	}
	resp := &Response{Status: 200, Binary: true, Headers: make([]Header, 0, 12)}
	resp.set("etag", c.ETag())
	resp.set("x-imago-cache", cache)
	resp.set("cache-control", cacheControl)
	if c.NotModified {
		resp.Status, resp.Binary = 304, false
		return resp
	}
	resp.Body = c.Body
	resp.set("content-type", c.ContentType)
	resp.set("content-length", strconv.Itoa(len(c.Body)))
	resp.set("content-disposition", Disposition(disposition, c.Filename))
	resp.set("accept-ranges", "bytes")
	resp.set("x-content-type-options", "nosniff")
	if c.Range != nil {
		resp.Status = 206
		resp.set("content-range", "bytes "+strconv.FormatInt(c.Range.Start, 10)+"-"+strconv.FormatInt(c.Range.End(), 10)+"/"+strconv.FormatInt(c.Size, 10))
	}
	return resp
}

// ContentDisposition is an RFC 6266 attachment header safe for any
// filename (see Disposition).
func ContentDisposition(filename string) string { return Disposition("attachment", filename) }

// Disposition is an RFC 6266 header of type kind (inline or attachment)
// safe for any filename: an ASCII fallback in filename= (quotes,
// backslashes, control and non-ASCII characters replaced) and the exact
// name, percent-encoded UTF-8, in filename*= (RFC 8187).
func Disposition(kind, filename string) string {
	if filename == "" {
		return kind
	}
	var fallback strings.Builder
	for _, r := range filename {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '%' {
			fallback.WriteByte('_')
		} else {
			fallback.WriteRune(r)
		}
	}
	return kind + `; filename="` + fallback.String() + `"; filename*=UTF-8''` + encodeRFC8187(filename)
}

// encodeRFC8187 percent-encodes every byte but RFC 8187's attr-char.
func encodeRFC8187(s string) string {
	const attrChars = "!#$&+-.^_`|~"
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(attrChars, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}
