package docstore

import (
	"context"
	"fmt"
	"time"
)

// RemovalSchedule is a MetadataStore that lists the records due for
// removal (Record.RemoveAt passed): the embedded store, whose sweeper
// (Sweep) plays the part DynamoDB's TTL plays on AWS.
type RemovalSchedule interface {
	// Due returns up to limit records whose RemoveAt is at or before now.
	Due(ctx context.Context, now time.Time, limit int) ([]Record, error)
}

// sweepBatch bounds one sweep's records; the next sweep takes the rest.
const sweepBatch = 500

// Sweep removes the documents whose record is due for removal at now —
// expired, purged from the trash, uploads that never finished — and
// returns how many it removed. It survives being cut short (a crash, a
// stop) at any point: an available document's record goes last, after its
// cache entry, staged bytes, blob and links, so a sweep cut short leaves
// the record, due still, for the next sweep to finish; readers saw the
// document gone from its RemoveAt on, whatever the sweep had done.
//
// Before it removes anything of an available document, the sweep writes
// the record once more, unchanged but for its version: a policy change
// that read the record before it fell due (a PATCH extending the expiry)
// then fails its conditional write and reads again, and a record due is
// beyond every change (anyRecord), so nothing rescues a document whose
// blob the sweep is removing. A pending or failed upload is purged as a
// DELETE purges it.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	const op = "docstore.Sweep"
	sched, ok := s.meta.(RemovalSchedule)
	if !ok {
		return 0, nil
	}
	now := s.now()
	due, err := sched.Due(ctx, now, sweepBatch)
	if err != nil {
		return 0, E(op, fmt.Errorf("list records due: %w", err))
	}
	removed := 0
	for _, rec := range due {
		if !rec.due(now) {
			continue
		}
		if rec.Status == StatusAvailable {
			// The record of the removal comes first: a sweep that cannot
			// store it removes nothing, and the next sweep tries again.
			if err := s.auditSystem(ctx, rec, removalAction(rec), 200); err != nil {
				return removed, err
			}
			err = s.sweepAvailable(ctx, op, rec)
		} else {
			err = s.purge(ctx, op, rec)
		}
		switch {
		case err == nil:
			removed++
			s.log.InfoContext(ctx, "document removed by its policy", "document", rec.ID, "status", rec.Status)
		case KindOf(err) == KindConflict || IsNotFound(err):
			// Changed (a hold or a restore before it fell due) or gone
			// since the listing: the next sweep decides again.
		default:
			return removed, err
		}
	}
	return removed, nil
}

// due reports whether the record's removal time has come at now.
func (r Record) due(now time.Time) bool {
	at := r.RemoveAt()
	return !at.IsZero() && !now.Before(at)
}

// sweepAvailable removes an available document due for removal: the fence
// (see Sweep), then everything but the record, then the record.
func (s *Service) sweepAvailable(ctx context.Context, op Op, rec Record) error {
	fenced, err := s.meta.SetPolicy(ctx, rec.ID, PolicyOf(rec.Document), rec.Version)
	if err != nil {
		return E(op, fmt.Errorf("fence %s: %w", rec.ID, err))
	}
	if err := s.reader.forget(ctx, rec.ID); err != nil {
		return E(op, KindUnavailable, fmt.Errorf("remove %s from the cache: %w", rec.ID, err))
	}
	if s.staging != nil {
		if err := s.discardStaged(ctx, fenced); err != nil {
			return E(op, fmt.Errorf("delete staged bytes of %s: %w", rec.ID, err))
		}
	}
	if err := s.blobs.Delete(ctx, fenced.Blob()); err != nil {
		return E(op, fmt.Errorf("delete blob of %s: %w", rec.ID, err))
	}
	if s.links != nil {
		if err := s.links.DeleteLinks(ctx, rec.ID); err != nil {
			return E(op, fmt.Errorf("delete links of %s: %w", rec.ID, err))
		}
	}
	if err := s.meta.DeleteVersion(ctx, rec.ID, fenced.Version); err != nil {
		return E(op, fmt.Errorf("delete record %s: %w", rec.ID, err))
	}
	return nil
}

// Removed finishes the removal of a document whose record its store has
// removed by itself (a DynamoDB TTL deletion, announced by the table's
// stream): old is the record as it was. It takes the cache entry, the
// staged bytes, the blob and the links. It is idempotent: a redelivered
// record finds nothing left to remove. A record of the same id found now is
// another document (an upload with the same Idempotency-Key): only old's
// blob goes then, if it is not the new one's.
func (s *Service) Removed(ctx context.Context, old Record) error {
	const op = "docstore.Removed"
	cur, err := s.meta.Get(ctx, old.ID)
	switch {
	case err == nil:
		if cur.Blob() != old.Blob() {
			if err := s.blobs.Delete(ctx, old.Blob()); err != nil {
				return E(op, fmt.Errorf("delete blob %s of a removed record: %w", old.Blob(), err))
			}
		}
		return nil
	case !IsNotFound(err):
		return E(op, fmt.Errorf("get record %s: %w", old.ID, err))
	}
	if old.Status == StatusAvailable {
		// Recorded first: a record of the stream retried (an error here)
		// records it again, a chain holding the removal at least once.
		if err := s.auditSystem(ctx, old, removalAction(old), 200); err != nil {
			return err
		}
	}
	if err := s.reader.forget(ctx, old.ID); err != nil {
		return E(op, KindUnavailable, fmt.Errorf("remove %s from the cache: %w", old.ID, err))
	}
	if s.staging != nil {
		if err := s.discardStaged(ctx, old); err != nil {
			return E(op, fmt.Errorf("delete staged bytes of %s: %w", old.ID, err))
		}
	}
	if err := s.blobs.Delete(ctx, old.Blob()); err != nil {
		return E(op, fmt.Errorf("delete blob of %s: %w", old.ID, err))
	}
	if s.links != nil {
		if err := s.links.DeleteLinks(ctx, old.ID); err != nil {
			return E(op, fmt.Errorf("delete links of %s: %w", old.ID, err))
		}
	}
	s.log.InfoContext(ctx, "document removed by its store", "document", old.ID, "status", old.Status)
	return nil
}

// SweepInterval is how often `imago serve` sweeps its embedded store: at
// least once a minute, so that storage follows an expiry within one.
const SweepInterval = 30 * time.Second

// SweepLoop sweeps at once, then every interval, until ctx ends; a store
// that keeps no removal schedule (DynamoDB, whose TTL removes records by
// itself) is not swept.
func (s *Service) SweepLoop(ctx context.Context, interval time.Duration) {
	if _, ok := s.meta.(RemovalSchedule); !ok {
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.Sweep(ctx); err != nil {
			s.log.ErrorContext(ctx, "sweep of documents due for removal failed", "removed", n, "error", err.Error())
		} else if n > 0 {
			s.log.InfoContext(ctx, "swept documents due for removal", "removed", n)
		}
		t.Reset(interval)
	}
}
