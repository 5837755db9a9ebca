package docstore

import (
	"context"
	"fmt"
	"strings"
	"time"
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
// Download owns the HTTP rules — the tenant check, If-None-Match, Range and
// the response limit; the caching reader and the origin own the bytes.
func (s *Service) Download(ctx context.Context, req DownloadRequest) (*Content, error) {
	const op = "docstore.Download"
	if req.Tenant == "" {
		return nil, E(op, KindUnauthenticated, "no caller identity")
	}
	doc, m, foreign := s.reader.lookup(ctx, req.Tenant, req.ID, req.Range == "")
	if foreign {
		return nil, notFound(op, req.ID)
	}
	if doc != nil {
		c := &Content{ID: req.ID, Descriptor: doc.Descriptor, CacheHit: true}
		r, err := s.negotiate(op, c, req)
		if err != nil {
			return nil, err
		}
		if !c.NotModified {
			c.Body = doc.Body[r.Start : r.Start+r.Length]
		}
		return c, nil
	}

	// A miss of a whole document holds the fill claim now, or knows who
	// does (see Cache): the record read below comes after the claim, so a
	// delete that removes the record first leaves this miss nothing to
	// fill. A path that does not hand the claim to readWhole releases it.
	fillBy := time.Now().Add(FillDeadline)
	defer func() { s.reader.release(ctx, req.ID, m.claim) }()
	// A whole document that is not merely revalidated is fetched while its
	// record is read, on the guess that its blob is kept under its id (see
	// prefetch): a miss then waits for the slower of the two, not for both.
	// Not by a miss that waits for another holder's fill: concurrent misses
	// still read the blob once.
	if req.Range == "" && req.IfNoneMatch == "" && !m.wait {
		m.blob = s.origin.prefetch(ctx, req.ID)
		defer m.blob.discard()
	}
	rec, err := s.record(ctx, op, req.Tenant, req.ID)
	if err != nil {
		return nil, err
	}
	if rec.Status == StatusFailed {
		return nil, E(op, KindConflict, fmt.Sprintf("document %s failed to upload: %s", rec.ID, rec.Failure))
	}
	if rec.Status != StatusAvailable {
		return nil, E(op, KindConflict, fmt.Sprintf("document %s is not available yet (status %s)", rec.ID, rec.Status))
	}
	c := &Content{ID: rec.ID, Descriptor: rec.Descriptor}
	r, err := s.negotiate(op, c, req)
	if err != nil {
		return nil, err
	}
	if c.NotModified {
		return c, nil
	}
	// Only a whole document asked for without Range goes through the cache:
	// a range is read from the origin, segments and all, and fills nothing.
	if (m.claim != NoClaim || m.wait) && s.reader.caches(rec.Size) {
		held := m
		m.claim, m.wait = NoClaim, false // readWhole fills with the claim or releases it
		c.Body, err = s.reader.readWhole(ctx, rec, held, fillBy)
	} else {
		c.Body, err = s.origin.read(ctx, rec, r, m.blob)
	}
	if err == nil {
		return c, nil
	}
	if KindOf(err) == KindInternal && s.deletedSince(ctx, rec.ID) {
		// A DELETE removed the blob between our read of the record and of
		// the blob: the document is gone, which is a 404, not a fault.
		return nil, notFound(op, req.ID)
	}
	return nil, E(op, err)
}

// deletedSince reports whether id's record is gone now.
func (s *Service) deletedSince(ctx context.Context, id ID) bool {
	_, err := s.meta.Get(ctx, id)
	return IsNotFound(err)
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
