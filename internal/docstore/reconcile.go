package docstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Reconciliation of the staging area with the documents. Every staged
// byte is plaintext, and each has an owner that removes it: the ingest
// (which deletes what it encrypted), DELETE, a failed ingest. A process
// killed at the wrong moment, an event whose every delivery failed, or a
// document that expired while its bytes were staged leaves bytes without
// one; a reconciliation pass finds them in the staging area's inventory
// and finishes or removes them. `imago serve` runs one at start and then
// periodically (ReconcileLoop); on S3 the bucket's lifecycle rule on the
// staging prefix is the backstop instead.

// Bounds of reconciliation.
const (
	// ReconcileInterval is how often ReconcileLoop runs a pass.
	ReconcileInterval = time.Minute
	// ReconcileGrace is how long a staged item belongs to whatever staged
	// it before a pass may act on it: its own ingest (and that ingest's
	// retries) is under way, or its record is being created.
	ReconcileGrace = time.Minute
	// MaxReconcileItems is the most items one pass looks at; the rest wait
	// for the next.
	MaxReconcileItems = 1000
	// IngestTimeout bounds one ingest attempt that no request bounds (a
	// reconciliation's, the local staging area's deliveries): the upload
	// function's own limit in Lambda.
	IngestTimeout = 15 * time.Minute
	// reconcileStepTimeout bounds every other step of a pass.
	reconcileStepTimeout = 30 * time.Second
)

// ReconcileReport says what a pass did.
type ReconcileReport struct {
	// Ingested counts pending documents whose staged bytes were ingested:
	// available now, or failed for good.
	Ingested int
	// Removed counts staged objects and uploads in parts removed because
	// their document is available, failed or gone.
	Removed int
	// Expired counts pending or failed documents removed, with what they
	// had staged, past their ExpiresAt.
	Expired int
	// Left counts items left for a later pass: a lookup or an ingest
	// failed, retryably.
	Left int
}

// Reconcile makes the staging area agree with the documents, as of now:
//
//   - a staged object of a pending document is ingested (or its document
//     marked failed, when that is what its bytes deserve), unless an
//     ingest of it runs in this process or it is not settled yet;
//   - a staged object or upload in parts of a document that is available,
//     failed or gone is removed, and so is an upload in parts other than
//     the one its pending document names;
//   - a pending or failed document past its ExpiresAt is removed with
//     everything it staged, as the metadata store's own expiry does
//     (DynamoDB's TTL, boltstore's at start), however late that comes.
//
// An item is settled when it last changed before settledBefore. Only
// settled items are ingested, or removed for want of a record: an upload
// in parts is created before its record, and a staged object is ingested
// by its own delivery first.
//
// A failure on one item leaves it for the next pass (Left); the error is
// for an inventory that cannot be read. A Service whose staging area has
// no inventory has nothing to reconcile.
func (s *Service) Reconcile(ctx context.Context, now, settledBefore time.Time) (ReconcileReport, error) {
	const op = "docstore.Reconcile"
	var rep ReconcileReport
	if s.inventory == nil {
		return rep, nil
	}
	items, err := s.inventory.Inventory(ctx)
	if err != nil {
		return rep, E(op, fmt.Errorf("list the staging area: %w", err))
	}
	if len(items) > MaxReconcileItems {
		s.log.WarnContext(ctx, "more staged items than one reconciliation takes; the rest wait for the next", "items", len(items), "taken", MaxReconcileItems)
		items = items[:MaxReconcileItems]
	}
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		s.reconcileItem(ctx, it, now, it.Modified.Before(settledBefore), &rep)
	}
	return rep, nil
}

func (s *Service) reconcileItem(ctx context.Context, it StagedItem, now time.Time, settled bool, rep *ReconcileReport) {
	rest, ok := strings.CutPrefix(it.Key, s.cfg.StagingPrefix)
	id, err := ParseID(rest)
	if !ok || err != nil {
		if settled {
			s.log.WarnContext(ctx, "removing a staged item that names no document", "key", it.Key)
			s.removeStagedItem(ctx, it, rep)
		}
		return
	}
	sctx, cancel := context.WithTimeout(ctx, reconcileStepTimeout)
	rec, err := s.meta.Get(sctx, id)
	cancel()
	switch {
	case IsNotFound(err):
		if settled {
			s.log.WarnContext(ctx, "removing staged bytes whose document is gone", "document", id)
			s.removeStagedItem(ctx, it, rep)
		}
		return
	case err != nil:
		s.log.WarnContext(ctx, "reconcile: read the record; left for the next pass", "document", id, "error", err.Error())
		rep.Left++
		return
	}

	if rec.Status != StatusAvailable && !rec.ExpiresAt.IsZero() && !now.Before(rec.ExpiresAt) {
		s.expire(ctx, rec, it, rep)
		return
	}
	switch {
	case rec.Status != StatusPending:
		s.log.WarnContext(ctx, "removing staged bytes of a document that is no longer pending", "document", id, "status", rec.Status)
		s.removeStagedItem(ctx, it, rep)
	case it.UploadID != "":
		// The upload in progress of a pending document is the client's to
		// finish, until the document expires. Another upload of its key
		// is nobody's.
		if it.UploadID != rec.UploadID && settled {
			s.removeStagedItem(ctx, it, rep)
		}
	case !settled || s.ingesting.running(it.Key):
		// Its own ingest runs, or is about to.
	default:
		s.log.WarnContext(ctx, "reconcile: ingesting staged bytes that no delivery ingested", "document", id)
		ictx, cancel := context.WithTimeout(ctx, IngestTimeout)
		err := s.Ingest(ictx, it.Key)
		cancel()
		if err != nil {
			s.log.WarnContext(ctx, "reconcile: ingest failed; left for the next pass", "document", id, "error", err.Error())
			rep.Left++
			return
		}
		rep.Ingested++
	}
}

// expire removes a pending or failed document past its expiry with what it
// staged: its staged object, its upload in parts, and the item found (which
// may be another upload of its key).
func (s *Service) expire(ctx context.Context, rec Record, it StagedItem, rep *ReconcileReport) {
	ctx, cancel := context.WithTimeout(ctx, reconcileStepTimeout)
	defer cancel()
	s.log.WarnContext(ctx, "removing an expired document and its staged bytes", "document", rec.ID, "status", rec.Status, "expired_at", rec.ExpiresAt)
	err := s.discardStaged(ctx, rec)
	if err == nil && it.UploadID != "" && it.UploadID != rec.UploadID {
		err = s.multipart.AbortMultipart(ctx, it.Key, it.UploadID)
	}
	if err == nil {
		err = s.meta.Delete(ctx, rec.ID)
	}
	if err != nil {
		s.log.WarnContext(ctx, "reconcile: remove an expired document; left for the next pass", "document", rec.ID, "error", err.Error())
		rep.Left++
		return
	}
	// An inline upload that died half-way may have left its blob; with the
	// record went the key that could read it.
	if err := s.blobs.Delete(ctx, rec.Blob()); err != nil {
		s.log.WarnContext(ctx, "reconcile: delete the blob of an expired document", "document", rec.ID, "error", err.Error())
	}
	rep.Expired++
}

// removeStagedItem removes a staged object or aborts an upload in parts.
func (s *Service) removeStagedItem(ctx context.Context, it StagedItem, rep *ReconcileReport) {
	ctx, cancel := context.WithTimeout(ctx, reconcileStepTimeout)
	defer cancel()
	var err error
	if it.UploadID != "" && s.multipart != nil {
		err = s.multipart.AbortMultipart(ctx, it.Key, it.UploadID)
	} else {
		err = s.staging.Delete(ctx, it.Key)
	}
	if err != nil {
		s.log.WarnContext(ctx, "reconcile: remove a staged item; left for the next pass", "key", it.Key, "error", err.Error())
		rep.Left++
		return
	}
	rep.Removed++
}

// ReconcileLoop runs a reconciliation pass at once, taking everything
// staged before it as settled (what a previous process left), then one
// every interval, taking what has not changed for ReconcileGrace as
// settled, until ctx ends. It returns at once when the staging area has
// no inventory.
func (s *Service) ReconcileLoop(ctx context.Context, interval time.Duration) {
	if s.inventory == nil {
		return
	}
	started := s.now()
	t := time.NewTimer(0)
	defer t.Stop()
	for first := true; ; first = false {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, settledBefore := s.now(), started
		if !first {
			settledBefore = now.Add(-ReconcileGrace)
		}
		rep, err := s.Reconcile(ctx, now, settledBefore)
		switch {
		case err != nil:
			s.log.ErrorContext(ctx, "reconciliation of the staging area failed", "error", err.Error())
		case rep != ReconcileReport{}:
			s.log.InfoContext(ctx, "reconciled the staging area", "ingested", rep.Ingested, "removed", rep.Removed, "expired", rep.Expired, "left", rep.Left)
		}
		t.Reset(interval)
	}
}

// inflight counts running operations by key.
type inflight struct {
	mu sync.Mutex
	n  map[string]int
}

// begin counts one more operation on key; the function it returns ends it.
func (f *inflight) begin(key string) (end func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.n[key]++
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.n[key]--; f.n[key] <= 0 {
			delete(f.n, key)
		}
	}
}

func (f *inflight) running(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[key] > 0
}
