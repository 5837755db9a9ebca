package docstore

import (
	"context"
	"fmt"
	"time"
)

// Delete answers DELETE /documents/{id}: with a deletion delay configured
// (Config.DeletionDelay) an available document moves to the trash
// (policy.go), restorable until its purge; without one, or for an upload
// that never finished, it is purged at once. A document under a legal hold
// refuses (KindConflict); one already in the trash is not found (Purge
// takes it).
func (s *Service) Delete(ctx context.Context, tenant Tenant, id ID) error {
	return s.remove(ctx, "docstore.Delete", tenant, id, false)
}

// Purge answers DELETE /documents/{id}?purge=true: the document goes at
// once, from the trash or not, unless a legal hold keeps it.
func (s *Service) Purge(ctx context.Context, tenant Tenant, id ID) error {
	return s.remove(ctx, "docstore.Purge", tenant, id, true)
}

func (s *Service) remove(ctx context.Context, op Op, tenant Tenant, id ID, purge bool) error {
	for attempt := 0; ; attempt++ {
		rec, err := s.storedRecord(ctx, op, tenant, id)
		if err != nil {
			return err
		}
		now := s.now()
		switch {
		case rec.Expired(now) || (rec.Trashed() && !purge):
			return notFound(op, id)
		case rec.LegalHold:
			return heldError(op, id)
		case !purge && s.cfg.DeletionDelay > 0 && rec.Status == StatusAvailable:
			return s.trash(ctx, op, tenant, id)
		}
		err = s.purge(ctx, op, rec)
		if KindOf(err) == KindConflict && attempt+1 < changeAttempts {
			continue // the record changed (a hold, a restore): decide again
		}
		return err
	}
}

// purge removes a document's record, cache entry, staged bytes, blob and
// links, the record only if it is still the one rec read (its Version). The
// wrapped data key goes with the record, so a copy of the blob left
// anywhere is unreadable.
//
// The cache goes first, and again once the record is gone: once purge
// returns nil, no read is answered from the cache, whatever fills were in
// flight. A fill lands only under a claim taken before its record read
// (see Cache); the first forget removes the claims taken so far, the
// second those taken between it and the record's delete, and a claim taken
// later finds no record. Neither rests on the tombstone the cache also
// keeps, which Redis may lose. If the cache cannot be told first, nothing
// is deleted and the error is KindUnavailable (retryable): a 204 with the
// document still cached would let it be served after its delete.
func (s *Service) purge(ctx context.Context, op Op, rec Record) error {
	id := rec.ID
	if err := s.reader.forget(ctx, id); err != nil {
		return E(op, KindUnavailable, fmt.Errorf("remove %s from the cache: %w", id, err))
	}
	// Staged plaintext never outlives its document: whatever its status,
	// its staged bytes (and its upload in parts) go first, so that a
	// failure leaves the document there to delete again. An available
	// document has normally none left, but an ingest whose last step (the
	// staged object's delete) failed, or a PUT to its URL after the
	// ingest, leaves some; removing what is not there is no error.
	staged := s.staging != nil
	if staged {
		if err := s.discardStaged(ctx, rec); err != nil {
			return E(op, fmt.Errorf("delete staged bytes of %s: %w", id, err))
		}
	}
	// A fill may begin until the record is gone and lasts FillDeadline; the
	// tombstone, written before, lives TombstoneTTL. Bounding the record's
	// delete keeps the first inside the second.
	mctx, cancel := context.WithTimeout(ctx, TombstoneTTL-FillDeadline-deleteMargin)
	err := s.meta.DeleteVersion(mctx, id, rec.Version)
	cancel()
	if IsNotFound(err) {
		return notFound(op, id) // purged meanwhile
	}
	if err != nil {
		return E(op, fmt.Errorf("delete record %s: %w", id, err))
	}
	// A miss that claimed after the first forget read the record before it
	// went, and may fill: this forget removes its claim, or the entry it
	// filled. It runs even if the caller has gone away. Should it fail, the
	// record is gone all the same: the tombstone of the first forget still
	// refuses that fill unless the cache lost it too, and a retried DELETE
	// would find no record to answer but a 404.
	if err := s.reader.forget(context.WithoutCancel(ctx), id); err != nil {
		s.log.ErrorContext(ctx, "forget the cache entry after the record", "document", id, "error", err.Error())
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
	// Its links go too. A link left behind (this step failed, or a link
	// made while the record was being deleted) finds no document and
	// answers 404, and its record expires with it.
	if s.links != nil {
		if err := s.links.DeleteLinks(context.WithoutCancel(ctx), id); err != nil {
			s.log.ErrorContext(ctx, "delete the links of a deleted document", "document", id, "error", err.Error())
		}
	}
	return nil
}

// deleteMargin is left, of the tombstone's lifetime, for a record delete
// sent before its deadline and executed after it.
const deleteMargin = 10 * time.Second
