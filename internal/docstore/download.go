package docstore

import (
	"context"
	"fmt"
	"strings"
)

// DownloadRequest is one download.
type DownloadRequest struct {
	Tenant      Tenant
	ID          ID
	Range       string // the Range header, if any
	IfNoneMatch string // the If-None-Match header, if any
}

// Content is a download's answer.
type Content struct {
	ID ID
	Descriptor
	Body        []byte // the document, or the range; must not be modified
	Range       *ByteRange
	NotModified bool
	CacheHit    bool
}

// ETag is the entity tag of the document: its quoted SHA-256.
func (c *Content) ETag() string { return `"` + c.SHA256 + `"` }

// Download returns a document or a range of it. A cache hit answers with no
// other backend touched; a miss reads the record, unwraps the data key and
// reads only the segments it needs, filling the cache with whole documents.
//
// Download owns the HTTP rules — the tenant check, the record's status,
// If-None-Match, Range and the response limit; the caching reader decides
// between the cache and the origin, and the origin owns the bytes.
func (s *Service) Download(ctx context.Context, req DownloadRequest) (*Content, error) {
	const op = "docstore.Download"
	if req.Tenant == "" {
		return nil, E(op, KindUnauthenticated, "no caller identity")
	}
	c := &Content{ID: req.ID}
	body, hit, err := s.reader.read(ctx, readRequest{
		op: op, owns: func(t Tenant) bool { return t == req.Tenant }, id: req.ID, now: s.now(),
		whole: req.Range == "", conditional: req.IfNoneMatch != "",
		record: func(ctx context.Context) (Record, error) { return s.available(ctx, op, req.Tenant, req.ID) },
		negotiate: func(d Descriptor) (ByteRange, bool, error) {
			c.Descriptor = d
			r, err := s.negotiate(op, c, req)
			return r, !c.NotModified, err
		},
	})
	if err != nil {
		return nil, err
	}
	c.Body, c.CacheHit = body, hit
	return c, nil
}

// available reads id's record for tenant and checks that its document can
// be read: a pending or failed upload is a conflict.
func (s *Service) available(ctx context.Context, op Op, tenant Tenant, id ID) (Record, error) {
	rec, err := s.record(ctx, op, tenant, id)
	if err != nil {
		return Record{}, err
	}
	if rec.Status == StatusFailed {
		return Record{}, E(op, KindConflict, fmt.Sprintf("document %s failed to upload: %s", rec.ID, rec.Failure))
	}
	if rec.Status != StatusAvailable {
		return Record{}, E(op, KindConflict, fmt.Sprintf("document %s is not available yet (status %s)", rec.ID, rec.Status))
	}
	return rec, nil
}

// negotiate applies the conditional and range headers to c: it marks c
// NotModified when If-None-Match matches, sets c.Range from Range, and
// returns the bytes to read, refusing more than the response limit.
func (s *Service) negotiate(op Op, c *Content, req DownloadRequest) (ByteRange, error) {
	r := ByteRange{Start: 0, Length: c.Size}
	if matchesETag(req.IfNoneMatch, c.ETag()) {
		c.NotModified = true
		return r, nil
	}
	if req.Range != "" {
		rng, ok, err := ParseRange(req.Range, c.Size)
		if err != nil {
			return r, err
		}
		if ok { // else a Range to ignore: the whole document, a 200
			r = rng
			c.Range = &r
		}
	}
	if r.Length > s.cfg.MaxInlineBytes {
		what := "the document is"
		if c.Range != nil {
			what = "the requested range is"
		}
		return r, E(op, KindTooLarge, fmt.Sprintf("%s %d bytes, over the %d-byte response limit; request it in parts with Range: bytes=start-end", what, r.Length, s.cfg.MaxInlineBytes))
	}
	return r, nil
}

// matchesETag implements If-None-Match's weak comparison for one tag.
func matchesETag(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
