package docstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/imagodocs/imago/internal/envelope"
)

// UploadRequest is one inline upload.
type UploadRequest struct {
	Tenant         Tenant
	Filename       string
	ContentType    string
	Metadata       map[string]string
	Body           []byte
	IdempotencyKey string
	// ExpiresIn is the document's retention in seconds (X-Imago-Expires-In);
	// nil: the configured one (Config.Retention).
	ExpiresIn *int64
}

// Upload stores a document: it generates a data key bound to the document,
// records the document as pending, streams the sealed blob to the blob
// store, then marks it available and writes it through to the cache. A
// failure at any step leaves nothing that Download or List would serve.
func (s *Service) Upload(ctx context.Context, req UploadRequest) (Document, error) {
	const op = "docstore.Upload"
	desc, id, digest, err := s.checkUpload(op, req)
	if err != nil {
		return Document{}, err
	}

	rec, dk, err := s.newPending(ctx, op, req.Tenant, id, desc, int64(len(req.Body)), req.ExpiresIn)
	if err != nil {
		return Document{}, E(op, err)
	}
	defer clear(dk.Plaintext)
	// The write-through claims the document's fill lock before the record
	// exists, let alone is available (see Cache): a delete that comes
	// between removes the claim, and the write-through then stores nothing.
	// Without the claim (held by a retry of this upload, or a cache that
	// failed) there is no write-through; a later miss fills. Any delete of
	// this document follows the Create below: a write-through within
	// FillDeadline of now cannot outlive that delete's tombstone.
	fillBy := time.Now().Add(FillDeadline)
	claim := s.reader.claimWrite(ctx, id, int64(len(req.Body)))
	defer func() { s.reader.release(ctx, id, claim) }()
	var done Document
	if err := s.meta.Create(ctx, rec); err != nil {
		if KindOf(err) != KindConflict || req.IdempotencyKey == "" {
			return Document{}, E(op, fmt.Errorf("create record %s: %w", id, err))
		}
		prev, err := s.meta.Get(ctx, id)
		if err != nil {
			return Document{}, E(op, fmt.Errorf("get repeated upload %s: %w", id, err))
		}
		if prev.Status != StatusPending || prev.Tenant != req.Tenant {
			return repeatOf(op, prev, req.Tenant, digest)
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
		if err := s.origin.write(ctx, rec, id, dk.Plaintext, bytes.NewReader(req.Body)); err != nil {
			s.abandon(ctx, rec.ID, "put blob", err)
			return Document{}, E(op, err)
		}
		marked, err := s.origin.commit(ctx, rec, int64(len(req.Body)), digest, id)
		if KindOf(err) == KindConflict {
			// A retry with the same key finished it first: its blob won.
			return s.repeatedUpload(ctx, op, req.Tenant, id, digest)
		}
		if err != nil {
			s.abandon(ctx, id, "mark available", err)
			return Document{}, E(op, fmt.Errorf("mark %s available: %w", id, err))
		}
		done = marked.Document
	}
	fillCtx, cancel := context.WithDeadline(ctx, fillBy)
	s.reader.fill(fillCtx, id, claim, &CachedDocument{Tenant: req.Tenant, Body: req.Body, Expires: done.Expires,
		Descriptor: Descriptor{Filename: desc.filename, ContentType: desc.contentType, Size: int64(len(req.Body)), SHA256: digest}})
	cancel()
	claim = NoClaim // filled, or released by fill
	s.log.InfoContext(ctx, "document stored", "op", op, "document", id, "size", len(req.Body))
	return done, nil
}

// checkUpload checks an inline upload and names its document: the id its
// Idempotency-Key derives, or a fresh one. It returns the document's
// checked description, its id and the hex SHA-256 of its body.
func (s *Service) checkUpload(op Op, req UploadRequest) (description, ID, string, error) {
	if req.Tenant == "" {
		return description{}, "", "", E(op, KindUnauthenticated, "no caller identity")
	}
	if len(req.Body) == 0 {
		return description{}, "", "", E(op, KindInvalid, "the document is empty")
	}
	if int64(len(req.Body)) > s.cfg.MaxInlineBytes {
		return description{}, "", "", E(op, KindTooLarge, fmt.Sprintf("the document is %d bytes; the limit for an inline upload is %d bytes (use POST /documents/uploads)", len(req.Body), s.cfg.MaxInlineBytes))
	}
	desc, err := describe(req.Filename, req.ContentType, req.Metadata)
	if err != nil {
		return description{}, "", "", err
	}
	sum := sha256.Sum256(req.Body)
	digest := hex.EncodeToString(sum[:])
	id := NewID()
	if req.IdempotencyKey != "" {
		if len(req.IdempotencyKey) > MaxIdempotencyBytes {
			return description{}, "", "", E(op, KindInvalid, fmt.Sprintf("Idempotency-Key is longer than %d bytes", MaxIdempotencyBytes))
		}
		id = IDForIdempotencyKey(req.Tenant, req.IdempotencyKey)
	}
	return desc, id, digest, nil
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
func (s *Service) newPending(ctx context.Context, op Op, tenant Tenant, id ID, d description, size int64, expiresIn *int64) (Record, DataKey, error) {
	// Expiry counts from the upload's request, whatever path its bytes
	// take afterwards.
	now := s.now()
	expires, err := s.expiryOf(op, now, expiresIn)
	if err != nil {
		return Record{}, DataKey{}, err
	}
	dk, err := s.keys.GenerateDataKey(ctx, ContextFor(tenant, id))
	if err != nil {
		return Record{}, DataKey{}, fmt.Errorf("generate data key for %s: %w", id, err)
	}
	return Record{
		Document: Document{ID: id, Descriptor: Descriptor{Filename: d.filename, ContentType: d.contentType, Size: size},
			Status: StatusPending, CreatedAt: now, Metadata: d.metadata, Expires: expires},
		Tenant: tenant, WrappedKey: dk.Wrapped, KeyID: dk.KeyID,
		FormatVersion: envelope.Version, SegmentSize: s.cfg.SegmentSize,
		ExpiresAt: now.Add(s.cfg.PendingTTL),
	}, dk, nil
}

// repeatedUpload answers an upload whose Idempotency-Key was used before
// and whose attempt lost to another: the first result when it is the same
// document, a conflict otherwise (repeatOf).
func (s *Service) repeatedUpload(ctx context.Context, op Op, tenant Tenant, id ID, digest string) (Document, error) {
	prev, err := s.meta.Get(ctx, id)
	if err != nil {
		return Document{}, E(op, fmt.Errorf("get repeated upload %s: %w", id, err))
	}
	return repeatOf(op, prev, tenant, digest)
}

// repeatOf answers an upload of a document hashing to digest whose
// Idempotency-Key left the record prev: prev's document when it is the
// same one and available, a conflict otherwise.
func repeatOf(op Op, prev Record, tenant Tenant, digest string) (Document, error) {
	switch {
	case prev.Tenant != tenant: // cannot happen: the tenant is part of the id
		return Document{}, E(op, KindInternal, fmt.Errorf("idempotent id %s owned by another tenant", prev.ID))
	case prev.Status != StatusAvailable:
		return Document{}, E(op, KindConflict, "an upload with this Idempotency-Key is still in progress")
	case prev.SHA256 != digest:
		return Document{}, E(op, KindConflict, "this Idempotency-Key was used for a different document")
	}
	return prev.Document, nil
}

// finishPending completes the pending inline upload prev with body: the
// data key of its record, a blob of this attempt's own, and the conditional
// commit, so that when two attempts race exactly one body wins and the
// other's blob is removed.
func (s *Service) finishPending(ctx context.Context, op Op, prev Record, body []byte, digest string) (Document, error) {
	if prev.Size != int64(len(body)) {
		return Document{}, E(op, KindConflict, "this Idempotency-Key was used for a different document")
	}
	key, err := s.keys.Decrypt(ctx, prev.KeyID, prev.WrappedKey, ContextFor(prev.Tenant, prev.ID))
	if err != nil {
		return Document{}, E(op, fmt.Errorf("unwrap data key of %s: %w", prev.ID, err))
	}
	defer clear(key)
	blob := NewID()
	if err := s.origin.write(ctx, prev, blob, key, bytes.NewReader(body)); err != nil {
		s.origin.drop(ctx, prev.ID, blob)
		return Document{}, E(op, err)
	}
	done, err := s.origin.commit(ctx, prev, int64(len(body)), digest, blob)
	switch {
	case KindOf(err) == KindConflict: // the other attempt won
		return s.repeatedUpload(ctx, op, prev.Tenant, prev.ID, digest)
	case IsNotFound(err): // the other attempt failed and removed the record
		return Document{}, E(op, KindUnavailable, "the upload was interrupted; retry it")
	case err != nil:
		return Document{}, E(op, fmt.Errorf("mark %s available: %w", prev.ID, err))
	}
	return done.Document, nil
}

// abandon undoes a failed upload of document id as far as it can, whatever
// becomes of the request (see detached). What it cannot remove stays
// pending, which nothing serves, until the store expires it.
func (s *Service) abandon(ctx context.Context, id ID, step string, cause error) {
	s.log.WarnContext(ctx, "upload failed; removing what was written", "document", id, "step", step, "error", cause.Error())
	detached(ctx, s.log, "delete blob", func(ctx context.Context) error { return s.blobs.Delete(ctx, id) }, "document", id)
	detached(ctx, s.log, "delete record", func(ctx context.Context) error { return s.meta.Delete(ctx, id) }, "document", id)
}
