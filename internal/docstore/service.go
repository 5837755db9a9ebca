// Package docstore is Imago's domain: documents, tenants, the Service that
// uploads, downloads, lists and deletes them, the small interfaces it
// consumes (BlobStore, MetadataStore, KeyService, Cache), and the error
// kinds every layer speaks. It imports no backend: package backends wires
// concrete ones in.
package docstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/imagodocs/imago/internal/envelope"
)

// Config holds the Service's limits.
type Config struct {
	// MaxInlineBytes is the largest document accepted by Upload and the
	// largest body Download returns in one response.
	MaxInlineBytes int64
	// CacheMaxBytes is the largest document kept in the cache.
	CacheMaxBytes int64
	// SegmentSize is the blob format's segment size for new documents.
	SegmentSize int
	// PendingTTL is how long a pending record may live before the metadata
	// store may expire it (an upload that died half-way).
	PendingTTL time.Duration
	// StagingPrefix is where presigned uploads are staged.
	StagingPrefix string
	// MultipartThreshold is the size over which a presigned upload goes in
	// parts (multipart.go); at most MaxStagedBytes.
	MultipartThreshold int64
	// FillWait bounds how long a miss waits for another instance holding
	// the fill lock before loading the origin itself; FillPoll is the
	// interval at which it looks at the cache meanwhile.
	FillWait, FillPoll time.Duration
	// CursorKey is the deployment's secret that authenticates listing
	// cursors (IMAGO_CURSOR_SECRET). Every instance of a deployment must
	// share it; without one a Service makes a random key of its own.
	CursorKey []byte
	// IngestHook, when set, runs in Ingest after the attempt's blob is
	// stored and before the record is marked available; an error fails
	// the attempt. Tests use it to pause (or crash) an ingest at that
	// point deterministically; it is nil in production.
	IngestHook func(ctx context.Context, id ID) error
}

func (c *Config) setDefaults() {
	if c.MaxInlineBytes <= 0 {
		c.MaxInlineBytes = 4 << 20
	}
	if c.CacheMaxBytes <= 0 {
		c.CacheMaxBytes = 8 << 20
	}
	if c.SegmentSize <= 0 {
		c.SegmentSize = envelope.DefaultSegmentSize
	}
	if c.PendingTTL <= 0 {
		c.PendingTTL = 24 * time.Hour
	}
	if c.MultipartThreshold <= 0 || c.MultipartThreshold > MaxStagedBytes {
		c.MultipartThreshold = DefaultMultipartThreshold
	}
	if c.StagingPrefix == "" {
		c.StagingPrefix = "staging/"
	}
	if c.FillWait <= 0 {
		c.FillWait = 2 * time.Second
	}
	if c.FillPoll <= 0 {
		c.FillPoll = 20 * time.Millisecond
	}
	if len(c.CursorKey) == 0 {
		c.CursorKey = randomCursorKey()
	}
}

// Backends are the ports the Service runs on.
type Backends struct {
	Blobs BlobStore
	Meta  MetadataStore
	Keys  KeyService
	Cache Cache
	// Staging is optional: without it there are no presigned uploads.
	Staging Staging
}

// Service implements Imago's operations. It is safe for concurrent use and
// meant to be built once per process (once per Lambda execution environment).
type Service struct {
	blobs   BlobStore
	meta    MetadataStore
	keys    KeyService
	cache   Cache
	staging Staging
	locker  FillLocker // nil when the cache is not shared between processes
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	flight  singleflight.Group
	stats   counters

	// multipart is staging's uploads in parts; nil when it takes none.
	multipart MultipartStaging
}

// NewService builds a Service. A nil logger discards logs.
func NewService(b Backends, cfg Config, log *slog.Logger) *Service {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{blobs: b.Blobs, meta: b.Meta, keys: b.Keys, cache: b.Cache, staging: b.Staging, cfg: cfg, log: log,
		now: func() time.Time { return time.Now().UTC() }}
	if l, ok := b.Cache.(FillLocker); ok {
		s.locker = l
	}
	if m, ok := b.Staging.(MultipartStaging); ok {
		s.multipart = m
	}
	return s
}

// Config returns the Service's effective limits.
func (s *Service) Config() Config { return s.cfg }

// UploadRequest is one inline upload.
type UploadRequest struct {
	Tenant         Tenant
	Filename       string
	ContentType    string
	Metadata       map[string]string
	Body           []byte
	IdempotencyKey string
}

// Upload stores a document: it generates a data key bound to the document,
// records the document as pending, streams the sealed blob to the blob
// store, then marks it available and writes it through to the cache. A
// failure at any step leaves nothing that Download or List would serve.
func (s *Service) Upload(ctx context.Context, req UploadRequest) (Document, error) {
	const op = "docstore.Upload"
	if req.Tenant == "" {
		return Document{}, E(op, KindUnauthenticated, "no caller identity")
	}
	if len(req.Body) == 0 {
		return Document{}, E(op, KindInvalid, "the document is empty")
	}
	if int64(len(req.Body)) > s.cfg.MaxInlineBytes {
		return Document{}, Errorf(op, KindTooLarge, "the document is %d bytes; the limit for an inline upload is %d bytes (use POST /documents/uploads)", len(req.Body), s.cfg.MaxInlineBytes)
	}
	desc, err := describe(req.Filename, req.ContentType, req.Metadata)
	if err != nil {
		return Document{}, err
	}
	sum := sha256.Sum256(req.Body)
	digest := hex.EncodeToString(sum[:])
	// Any delete of this document follows the Create below: a write-through
	// within FillDeadline of now cannot outlive that delete's tombstone.
	fillBy := time.Now().Add(FillDeadline)

	id := NewID()
	if req.IdempotencyKey != "" {
		if len(req.IdempotencyKey) > MaxIdempotencyBytes {
			return Document{}, Errorf(op, KindInvalid, "Idempotency-Key is longer than %d bytes", MaxIdempotencyBytes)
		}
		id = IDForIdempotencyKey(req.Tenant, req.IdempotencyKey)
	}

	rec, dk, err := s.newPending(ctx, req.Tenant, id, desc, int64(len(req.Body)))
	if err != nil {
		return Document{}, E(op, err)
	}
	defer clear(dk.Plaintext)
	var done Record
	if err := s.meta.Create(ctx, rec); err != nil {
		if KindOf(err) != KindConflict || req.IdempotencyKey == "" {
			return Document{}, E(op, fmt.Errorf("create record %s: %w", id, err))
		}
		prev, err := s.meta.Get(ctx, id)
		if err != nil {
			return Document{}, E(op, fmt.Errorf("get repeated upload %s: %w", id, err))
		}
		if prev.Status != StatusPending || prev.Tenant != req.Tenant {
			return s.repeatedUpload(ctx, op, req.Tenant, id, digest)
		}
		// An earlier attempt with this key left its record pending: its
		// answer was lost, or it is still running. This request carries
		// the whole document, so it finishes the upload itself.
		if done, err = s.finishPending(ctx, op, prev, req.Body, digest); err != nil {
			return Document{}, err
		}
	} else {
		// A fresh id: the blob goes under the document id. A retry that
		// finishes this upload meanwhile writes a blob of its own.
		if err := s.putBlob(ctx, rec, id, dk.Plaintext, bytes.NewReader(req.Body)); err != nil {
			s.abandon(rec.ID, "put blob", err)
			return Document{}, E(op, err)
		}
		done, err = s.meta.MarkAvailable(ctx, id, int64(len(req.Body)), digest, id)
		if KindOf(err) == KindConflict {
			// A retry with the same key finished it first: its blob won.
			s.dropBlob(id)
			return s.repeatedUpload(ctx, op, req.Tenant, id, digest)
		}
		if err != nil {
			s.abandon(rec.ID, "mark available", err)
			return Document{}, E(op, fmt.Errorf("mark %s available: %w", id, err))
		}
	}
	fillCtx, cancel := context.WithDeadline(ctx, fillBy)
	s.cacheSet(fillCtx, id, &CachedDocument{
		Tenant: req.Tenant, Filename: desc.filename, ContentType: desc.contentType,
		Size: int64(len(req.Body)), SHA256: digest, Body: req.Body,
	})
	cancel()
	s.log.InfoContext(ctx, "document stored", "op", op, "document", id, "size", len(req.Body))
	return done.Document, nil
}

// description is what a caller says of a new document, checked.
type description struct {
	filename, contentType string
	metadata              map[string]string
}

func describe(filename, contentType string, metadata map[string]string) (description, error) {
	var d description
	var err error
	if d.filename, err = CleanFilename(filename); err != nil {
		return d, err
	}
	if d.contentType, err = CleanContentType(contentType); err != nil {
		return d, err
	}
	if d.metadata = metadata; d.metadata == nil {
		d.metadata = map[string]string{}
	}
	return d, ValidateMetadata(d.metadata)
}

// newPending generates a document's data key, bound to the document and
// its tenant, and builds its pending record. The caller clears the key's
// plaintext once done with it.
func (s *Service) newPending(ctx context.Context, tenant Tenant, id ID, d description, size int64) (Record, DataKey, error) {
	dk, err := s.keys.GenerateDataKey(ctx, ContextFor(tenant, id))
	if err != nil {
		return Record{}, DataKey{}, fmt.Errorf("generate data key for %s: %w", id, err)
	}
	now := s.now()
	return Record{
		Document: Document{ID: id, Filename: d.filename, ContentType: d.contentType, Size: size,
			Status: StatusPending, CreatedAt: now, Metadata: d.metadata},
		Tenant: tenant, WrappedKey: dk.Wrapped, KeyID: dk.KeyID,
		FormatVersion: envelope.Version, SegmentSize: s.cfg.SegmentSize,
		ExpiresAt: now.Add(s.cfg.PendingTTL),
	}, dk, nil
}

// repeatedUpload answers an upload whose Idempotency-Key was used before:
// the first result when it is the same document, a conflict otherwise.
func (s *Service) repeatedUpload(ctx context.Context, op string, tenant Tenant, id ID, digest string) (Document, error) {
	prev, err := s.meta.Get(ctx, id)
	if err != nil {
		return Document{}, E(op, fmt.Errorf("get repeated upload %s: %w", id, err))
	}
	switch {
	case prev.Tenant != tenant: // cannot happen: the tenant is part of the id
		return Document{}, E(op, KindInternal, fmt.Errorf("idempotent id %s owned by another tenant", id))
	case prev.Status != StatusAvailable:
		return Document{}, E(op, KindConflict, "an upload with this Idempotency-Key is still in progress")
	case prev.SHA256 != digest:
		return Document{}, E(op, KindConflict, "this Idempotency-Key was used for a different document")
	}
	return prev.Document, nil
}

// finishPending completes the pending inline upload prev with body: the
// data key of its record, a blob of this attempt's own, and the conditional
// MarkAvailable, so that when two attempts race exactly one body wins and
// the other's blob is removed.
func (s *Service) finishPending(ctx context.Context, op string, prev Record, body []byte, digest string) (Record, error) {
	if prev.Size != int64(len(body)) {
		return Record{}, E(op, KindConflict, "this Idempotency-Key was used for a different document")
	}
	key, err := s.keys.Decrypt(ctx, prev.KeyID, prev.WrappedKey, ContextFor(prev.Tenant, prev.ID))
	if err != nil {
		return Record{}, E(op, fmt.Errorf("unwrap data key of %s: %w", prev.ID, err))
	}
	defer clear(key)
	blob := NewID()
	if err := s.putBlob(ctx, prev, blob, key, bytes.NewReader(body)); err != nil {
		s.dropBlob(blob)
		return Record{}, E(op, err)
	}
	done, err := s.meta.MarkAvailable(ctx, prev.ID, int64(len(body)), digest, blob)
	switch {
	case KindOf(err) == KindConflict: // the other attempt won
		s.dropBlob(blob)
		doc, err := s.repeatedUpload(ctx, op, prev.Tenant, prev.ID, digest)
		return Record{Document: doc, Tenant: prev.Tenant}, err
	case IsNotFound(err): // the other attempt failed and removed the record
		s.dropBlob(blob)
		return Record{}, E(op, KindUnavailable, "the upload was interrupted; retry it")
	case err != nil:
		return Record{}, E(op, fmt.Errorf("mark %s available: %w", prev.ID, err))
	}
	return done, nil
}

// dropBlob removes a blob no record names, on a context of its own.
func (s *Service) dropBlob(blob ID) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.blobs.Delete(ctx, blob); err != nil {
		s.log.ErrorContext(ctx, "delete a blob no record names", "blob", blob, "error", err.Error())
	}
}

// putBlob streams the sealed form of src into the blob store as blob,
// without holding more than one segment of ciphertext. The blob is bound
// to the document (rec.ID), whatever id it is stored under.
func (s *Service) putBlob(ctx context.Context, rec Record, blob ID, key []byte, src io.Reader) error {
	pr, pw := io.Pipe()
	go func() {
		w, err := envelope.NewWriter(pw, key, envelope.Binding{DocumentID: string(rec.ID), Tenant: string(rec.Tenant)}, rec.SegmentSize)
		if err == nil {
			_, err = io.Copy(w, src)
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	err := s.blobs.Put(ctx, blob, pr, envelope.SealedSize(rec.Size, rec.SegmentSize))
	pr.CloseWithError(errors.New("blob store stopped reading")) // unblocks the writer on failure
	if err != nil {
		return fmt.Errorf("put blob %s of %s: %w", blob, rec.ID, err)
	}
	return nil
}

// abandon undoes a failed upload as far as it can, on a context of its own
// so that a cancelled request still cleans up. What it cannot remove stays
// pending, which nothing serves, until the store expires it.
func (s *Service) abandon(id ID, step string, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.log.WarnContext(ctx, "upload failed; removing what was written", "document", id, "step", step, "error", cause.Error())
	if err := s.blobs.Delete(ctx, id); err != nil {
		s.log.ErrorContext(ctx, "cleanup: delete blob", "document", id, "error", err.Error())
	}
	if err := s.meta.Delete(ctx, id); err != nil {
		s.log.ErrorContext(ctx, "cleanup: delete record", "document", id, "error", err.Error())
	}
}

// Get returns a document's metadata.
func (s *Service) Get(ctx context.Context, tenant Tenant, id ID) (Document, error) {
	rec, err := s.record(ctx, "docstore.Get", tenant, id)
	if err != nil {
		return Document{}, err
	}
	return rec.Document, nil
}

// record reads id's record and checks the caller owns it. Another tenant's
// document is reported exactly like a missing one.
func (s *Service) record(ctx context.Context, op string, tenant Tenant, id ID) (Record, error) {
	if tenant == "" {
		return Record{}, E(op, KindUnauthenticated, "no caller identity")
	}
	rec, err := s.meta.Get(ctx, id)
	if err != nil {
		if IsNotFound(err) {
			return Record{}, notFound(op, id)
		}
		return Record{}, E(op, fmt.Errorf("get record %s: %w", id, err))
	}
	if rec.Tenant != tenant {
		return Record{}, notFound(op, id)
	}
	return rec, nil
}

func notFound(op string, id ID) error {
	return Errorf(op, KindNotFound, "document %s not found", id)
}

// Page is one page of a listing.
type Page struct {
	Documents  []Document `json:"documents"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// Listing limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 1000
)

// List returns the tenant's available documents, newest first.
func (s *Service) List(ctx context.Context, tenant Tenant, limit int, cursor string) (Page, error) {
	const op = "docstore.List"
	if tenant == "" {
		return Page{}, E(op, KindUnauthenticated, "no caller identity")
	}
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		return Page{}, Errorf(op, KindInvalid, "limit must be between 1 and %d", MaxListLimit)
	}
	var after *ListPosition
	if cursor != "" {
		pos, err := DecodeCursor(s.cfg.CursorKey, tenant, cursor)
		if err != nil {
			return Page{}, err
		}
		after = &pos
	}
	// One more than asked tells whether there is a next page, so the last
	// page carries no cursor.
	recs, err := s.meta.List(ctx, tenant, after, limit+1)
	if err != nil {
		return Page{}, E(op, fmt.Errorf("list %s: %w", tenant, err))
	}
	page := Page{Documents: make([]Document, 0, min(len(recs), limit))}
	for i, r := range recs {
		if i == limit {
			last := recs[limit-1]
			page.NextCursor = EncodeCursor(s.cfg.CursorKey, tenant, ListPosition{CreatedAt: last.CreatedAt, ID: last.ID})
			break
		}
		page.Documents = append(page.Documents, r.Document)
	}
	return page, nil
}

// Delete removes a document's record, cache entry and blob. The wrapped data
// key goes with the record, so a copy of the blob left anywhere is unreadable.
//
// The cache goes first, leaving a tombstone that refuses every later fill
// of the id (see Cache): once Delete returns nil, no read is answered from
// the cache, whatever fills were in flight. If the cache cannot be told,
// nothing is deleted and the error is KindUnavailable (retryable): a 204
// with the document still cached would let it be served after its delete.
func (s *Service) Delete(ctx context.Context, tenant Tenant, id ID) error {
	const op = "docstore.Delete"
	rec, err := s.record(ctx, op, tenant, id)
	if err != nil {
		return err
	}
	if s.cache != nil {
		if err := s.cache.Delete(ctx, id); err != nil {
			s.cacheError(ctx, "delete", id, err)
			return E(op, KindUnavailable, fmt.Errorf("remove %s from the cache: %w", id, err))
		}
	}
	// Staged plaintext never outlives its document: a pending (or failed)
	// document's staged bytes (and its upload in parts) go first, so that a
	// failure leaves the document there to delete again.
	staged := rec.Status != StatusAvailable && s.staging != nil
	if staged {
		if err := s.discardStaged(ctx, rec); err != nil {
			return E(op, fmt.Errorf("delete staged bytes of %s: %w", id, err))
		}
	}
	// A fill may begin until the record is gone and lasts FillDeadline; the
	// tombstone, written before, lives TombstoneTTL. Bounding the record's
	// delete keeps the first inside the second.
	mctx, cancel := context.WithTimeout(ctx, TombstoneTTL-FillDeadline-deleteMargin)
	err = s.meta.Delete(mctx, id)
	cancel()
	if err != nil {
		return E(op, fmt.Errorf("delete record %s: %w", id, err))
	}
	if staged {
		// A PUT that landed meanwhile. (One landing later is deleted by
		// its ingest, which finds no record; an ingest running now finds
		// the record gone and removes its own blob.)
		if err := s.staging.Delete(ctx, s.stagingKey(id)); err != nil {
			s.log.ErrorContext(ctx, "delete staged bytes after the record", "document", id, "error", err.Error())
		}
	}
	if err := s.blobs.Delete(ctx, rec.Blob()); err != nil {
		// The record, and with it the key, is gone: the blob is unreadable.
		s.log.ErrorContext(ctx, "delete blob after its record", "document", id, "error", err.Error())
	}
	return nil
}

// deleteMargin is left, of the tombstone's lifetime, for a record delete
// sent before its deadline and executed after it.
const deleteMargin = 10 * time.Second

// DownloadRequest is one download.
type DownloadRequest struct {
	Tenant      Tenant
	ID          ID
	Range       string // the Range header, if any
	IfNoneMatch string // the If-None-Match header, if any
}

// Content is a download's answer.
type Content struct {
	ID          ID
	Filename    string
	ContentType string
	Size        int64  // of the whole document
	SHA256      string // of the whole document
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
func (s *Service) Download(ctx context.Context, req DownloadRequest) (*Content, error) {
	const op = "docstore.Download"
	if req.Tenant == "" {
		return nil, E(op, KindUnauthenticated, "no caller identity")
	}
	// A cache that failed once in this request is not asked again: a
	// broken or slow cache costs a request at most one timeout.
	doc, cacheOK := s.cacheGet(ctx, req.ID)
	if doc != nil {
		if doc.Tenant != req.Tenant {
			return nil, notFound(op, req.ID)
		}
		s.count(ctx, &s.stats.hits, func(r *RequestStats) *atomic.Int64 { return &r.Hits })
		c := &Content{ID: req.ID, Filename: doc.Filename, ContentType: doc.ContentType, Size: doc.Size, SHA256: doc.SHA256, CacheHit: true}
		return s.answer(op, c, req, func(r ByteRange) ([]byte, error) { return doc.Body[r.Start : r.Start+r.Length], nil })
	}
	s.count(ctx, &s.stats.misses, func(r *RequestStats) *atomic.Int64 { return &r.Misses })

	// A fill's deadline counts from before the record is read: a delete
	// that follows this read leaves a tombstone outliving the fill.
	fillBy := time.Now().Add(FillDeadline)
	rec, err := s.record(ctx, op, req.Tenant, req.ID)
	if err != nil {
		return nil, err
	}
	if rec.Status == StatusFailed {
		return nil, Errorf(op, KindConflict, "document %s failed to upload: %s", rec.ID, rec.Failure)
	}
	if rec.Status != StatusAvailable {
		return nil, Errorf(op, KindConflict, "document %s is not available yet (status %s)", rec.ID, rec.Status)
	}
	c := &Content{ID: rec.ID, Filename: rec.Filename, ContentType: rec.ContentType, Size: rec.Size, SHA256: rec.SHA256}
	content, err := s.answer(op, c, req, func(r ByteRange) ([]byte, error) {
		if cacheOK && r.Start == 0 && r.Length == rec.Size && rec.Size <= s.cfg.CacheMaxBytes {
			return s.loadAndFill(ctx, rec, fillBy)
		}
		return s.readRange(ctx, rec, r)
	})
	if err != nil && KindOf(err) == KindInternal && s.deletedSince(ctx, rec.ID) {
		// A DELETE removed the blob between our read of the record and of
		// the blob: the document is gone, which is a 404, not a fault.
		return nil, notFound(op, req.ID)
	}
	return content, err
}

// deletedSince reports whether id's record is gone now.
func (s *Service) deletedSince(ctx context.Context, id ID) bool {
	_, err := s.meta.Get(ctx, id)
	return IsNotFound(err)
}

// answer applies conditional and range headers, then reads what is needed.
func (s *Service) answer(op string, c *Content, req DownloadRequest, read func(ByteRange) ([]byte, error)) (*Content, error) {
	if matchesETag(req.IfNoneMatch, c.ETag()) {
		c.NotModified = true
		return c, nil
	}
	r := ByteRange{Start: 0, Length: c.Size}
	if req.Range != "" {
		var err error
		if r, err = ParseRange(req.Range, c.Size); err != nil {
			return nil, err
		}
		c.Range = &r
	}
	if r.Length > s.cfg.MaxInlineBytes {
		what := "the document is"
		if c.Range != nil {
			what = "the requested range is"
		}
		return nil, Errorf(op, KindTooLarge, "%s %d bytes, over the %d-byte response limit; request it in parts with Range: bytes=start-end", what, r.Length, s.cfg.MaxInlineBytes)
	}
	body, err := read(r)
	if err != nil {
		return nil, E(op, err)
	}
	c.Body = body
	return c, nil
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

// loadAndFill reads a whole document from the origin and fills the cache,
// loading it once however many requests miss at the same time: in this
// process through singleflight, across processes through the cache's fill
// lock when it has one. Nothing of it outlives fillBy (see FillDeadline):
// a caller joining a load in flight joins one that began before its own.
func (s *Service) loadAndFill(ctx context.Context, rec Record, fillBy time.Time) ([]byte, error) {
	v, err, _ := s.flight.Do(string(rec.ID), func() (any, error) {
		// The load is shared: one caller giving up must not fail the
		// others waiting on it, so it runs on its own bounded context.
		ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), fillBy)
		defer cancel()
		if s.locker != nil {
			release, acquired, err := s.locker.TryLock(ctx, rec.ID)
			if err != nil {
				s.cacheError(ctx, "fill lock", rec.ID, err)
			}
			if acquired {
				defer release()
				// Another instance may have filled the entry between our
				// miss and our lock.
				if doc, err := s.cache.Get(ctx, rec.ID); err == nil && doc != nil && doc.Tenant == rec.Tenant {
					return doc.Body, nil
				}
			} else if err == nil {
				doc, release := s.waitForFill(ctx, rec.ID)
				defer release()
				if doc != nil && doc.Tenant == rec.Tenant {
					return doc.Body, nil
				}
			}
		}
		body, err := s.readRange(ctx, rec, ByteRange{Start: 0, Length: rec.Size})
		if err != nil {
			return nil, err
		}
		s.count(ctx, &s.stats.fills, func(r *RequestStats) *atomic.Int64 { return &r.Fills })
		s.cacheSet(ctx, rec.ID, &CachedDocument{Tenant: rec.Tenant, Filename: rec.Filename,
			ContentType: rec.ContentType, Size: rec.Size, SHA256: rec.SHA256, Body: body})
		return body, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// waitForFill polls the cache while another instance loads the document,
// for at most FillWait; a nil document means load it yourself. When the
// holder lets go of the fill lock without filling (its load failed, or a
// delete refused its Set and dropped the lock), the waiter takes the lock
// and stops waiting at once, instead of sitting out FillWait; release then
// frees it (it is a no-op otherwise).
func (s *Service) waitForFill(ctx context.Context, id ID) (doc *CachedDocument, release func()) {
	release = func() {}
	s.count(ctx, &s.stats.lockWaits, func(r *RequestStats) *atomic.Int64 { return &r.LockWaits })
	deadline := time.NewTimer(s.cfg.FillWait)
	defer deadline.Stop()
	tick := time.NewTicker(s.cfg.FillPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, release
		case <-deadline.C:
			return nil, release
		case <-tick.C:
			doc, err := s.cache.Get(ctx, id)
			if err != nil {
				s.cacheError(ctx, "get while waiting for fill", id, err)
				return nil, release
			}
			if doc != nil {
				return doc, release
			}
			unlock, acquired, err := s.locker.TryLock(ctx, id)
			if err != nil {
				s.cacheError(ctx, "fill lock while waiting", id, err)
				return nil, release
			}
			if acquired {
				// The holder may have filled and let go between our Get and
				// our lock: look once more.
				doc, err := s.cache.Get(ctx, id)
				if err != nil {
					s.cacheError(ctx, "get while waiting for fill", id, err)
				}
				return doc, unlock
			}
		}
	}
}

// readRange unwraps the data key and decrypts only the segments holding r.
// A read that reaches the document's last segment also checks that the
// blob ends right after it: it asks for one byte more than the blob should
// hold, and refuses the blob if that byte exists. Together with the
// envelope's checks (every segment authenticated, the last one flagged,
// the header committed to the key and the document), a blob with bytes
// appended, removed or changed is refused by every whole read and every
// read of its end, never served.
func (s *Service) readRange(ctx context.Context, rec Record, r ByteRange) ([]byte, error) {
	if rec.FormatVersion != envelope.Version {
		return nil, fmt.Errorf("document %s has blob format %d, this build reads %d", rec.ID, rec.FormatVersion, envelope.Version)
	}
	if r.Length == 0 {
		return []byte{}, nil
	}
	// The data key is unwrapped while the blob is fetched: neither needs
	// the other, and a miss is then one round trip to the key service and
	// to the blob store at once, not one after the other.
	keyc := make(chan unwrappedKey, 1)
	go func() {
		k, err := s.keys.Decrypt(ctx, rec.KeyID, rec.WrappedKey, ContextFor(rec.Tenant, rec.ID))
		keyc <- unwrappedKey{k, err}
	}()
	var unwrapped unwrappedKey
	received := false
	defer func() {
		if !received {
			unwrapped = <-keyc
		}
		clear(unwrapped.key)
	}()
	span, err := envelope.SpanOf(rec.Size, rec.SegmentSize, r.Start, r.Length)
	if err != nil {
		return nil, err
	}
	blob := rec.Blob()
	toEnd := span.BlobOffset+span.BlobLength == envelope.SealedSize(rec.Size, rec.SegmentSize)
	want := span.BlobLength
	if toEnd {
		want++ // a byte that must not be there
	}
	// One request when the range starts in the first segment (header and
	// segments are contiguous), two otherwise.
	var header []byte
	var body io.ReadCloser
	if span.FirstSegment == 0 {
		body, err = s.blobs.Get(ctx, blob, 0, envelope.HeaderSize+want)
		if err == nil {
			header = make([]byte, envelope.HeaderSize)
			if _, err = io.ReadFull(body, header); err != nil {
				body.Close()
				err = blobReadError(err, fmt.Errorf("read header: %w", envelope.ErrAuth))
			}
		}
	} else {
		header, err = s.readAll(ctx, blob, 0, envelope.HeaderSize)
		if err == nil {
			body, err = s.blobs.Get(ctx, blob, span.BlobOffset, want)
		}
	}
	if err != nil {
		return nil, blobError(rec.ID, err)
	}
	defer body.Close()
	h, err := envelope.ParseHeader(header)
	if err != nil {
		return nil, fmt.Errorf("blob of %s: %w", rec.ID, err)
	}
	if h.SegmentSize != rec.SegmentSize {
		return nil, fmt.Errorf("blob of %s: header says segments of %d bytes, the record %d: %w", rec.ID, h.SegmentSize, rec.SegmentSize, envelope.ErrAuth)
	}
	unwrapped, received = <-keyc, true
	if unwrapped.err != nil {
		return nil, fmt.Errorf("unwrap data key of %s: %w", rec.ID, unwrapped.err)
	}
	opener, err := h.Open(unwrapped.key, envelope.Binding{DocumentID: string(rec.ID), Tenant: string(rec.Tenant)})
	if err != nil {
		return nil, fmt.Errorf("blob of %s: %w", rec.ID, err)
	}
	plain := opener.NewReader(body, span.FirstSegment, rec.Size)
	if _, err := io.CopyN(io.Discard, plain, span.Skip); err != nil {
		return nil, blobError(rec.ID, blobReadError(err, err))
	}
	out := make([]byte, r.Length)
	if _, err := io.ReadFull(plain, out); err != nil {
		return nil, blobError(rec.ID, blobReadError(err, err))
	}
	if toEnd {
		// The rest of the last segment's plaintext, when the range ends
		// before the document does; past it the envelope reader reads one
		// more byte of the blob and fails if there is one.
		if rest := rec.Size - (r.Start + r.Length); rest > 0 {
			if _, err := io.CopyN(io.Discard, plain, rest); err != nil {
				return nil, blobError(rec.ID, blobReadError(err, err))
			}
		}
		var more [1]byte
		if n, err := plain.Read(more[:]); n != 0 || err != io.EOF {
			if err == nil || err == io.EOF {
				err = fmt.Errorf("%w: bytes after the last segment", envelope.ErrAuth)
			}
			return nil, blobError(rec.ID, blobReadError(err, err))
		}
	}
	return out, nil
}

// unwrappedKey is a data key unwrapped by the key service, or why not.
type unwrappedKey struct {
	key []byte
	err error
}

func (s *Service) readAll(ctx context.Context, blob ID, off, n int64) ([]byte, error) {
	rc, err := s.blobs.Get(ctx, blob, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, blobReadError(err, fmt.Errorf("read %d bytes at %d: %w", n, off, err))
	}
	return b, nil
}

// blobReadError keeps a blob store's failure to deliver bytes (its
// KindUnavailable: a dropped connection) retryable, and makes anything else
// met while reading a blob — too few bytes, too many, bytes that do not
// authenticate — an integrity failure: wrapped, which is KindInternal.
func blobReadError(err, wrapped error) error {
	if KindOf(err) == KindUnavailable {
		return err
	}
	return E(KindInternal, wrapped)
}

// blobError classifies a blob store failure on a document whose record
// exists: a missing blob then is an internal inconsistency, not a 404.
func blobError(id ID, err error) error {
	switch KindOf(err) {
	case KindNotFound:
		return E(KindInternal, fmt.Errorf("blob of available document %s is missing: %w", id, err))
	case KindBadRange:
		// The blob is shorter than its record says: a range past its end.
		return E(KindInternal, fmt.Errorf("blob of %s is shorter than its record says: %w", id, err))
	}
	return fmt.Errorf("get blob %s: %w", id, err)
}
