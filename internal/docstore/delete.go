package docstore

import (
	"context"
	"fmt"
	"time"
)

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
