package docstore

import (
	"context"
	"fmt"
	"time"
)

// A document's policy (docs/design.md, "Retention, deletion delay, legal
// hold"): how long it is kept (Expires), whether a deletion is delayed in
// the trash (DeletedAt, PurgeAt), and whether a legal hold stops both.
//
// Reads are exact: from the instant a document expires, or is moved to
// the trash, every read answers 404 — the record's check here, the cache
// entry's own expiry (CachedDocument.Expires), a trash that forgets the
// cache as a delete does — whatever the background removal has done yet.
// Storage is eventual: the record carries the time its store may remove it
// (RemoveAt: a DynamoDB TTL attribute; the embedded store's sweeper), and
// that removal then takes blob, links and cache entry with it (Expire).
//
// Every change of a policy is one conditional write of the record, on the
// version the change read (MetadataStore.SetPolicy, DeletePurged): of two
// racing changes one wins and the other reads again and decides again.

// Policy is the part of a record its policy routes change.
type Policy struct {
	Expires            time.Time
	LegalHold          bool
	DeletedAt, PurgeAt time.Time
}

// PolicyOf is d's policy.
func PolicyOf(d Document) Policy {
	return Policy{Expires: d.Expires, LegalHold: d.LegalHold, DeletedAt: d.DeletedAt, PurgeAt: d.PurgeAt}
}

// Trashed reports whether the document is in the trash.
func (d Document) Trashed() bool { return !d.DeletedAt.IsZero() }

// Expired reports whether the document's retention has ended at now and
// no hold keeps it.
func (d Document) Expired(now time.Time) bool {
	return !d.LegalHold && !d.Expires.IsZero() && !now.Before(d.Expires)
}

// Gone reports whether no read may see the document at now: expired, or
// in the trash.
func (d Document) Gone(now time.Time) bool { return d.Trashed() || d.Expired(now) }

// RemoveAt is when the store may remove the record, and with it the
// document: a pending or failed upload's ExpiresAt; for an available one
// the earlier of its expiry and its purge, unless it is held (zero: never).
func (r Record) RemoveAt() time.Time {
	if r.Status != StatusAvailable {
		return r.ExpiresAt
	}
	return removeAt(PolicyOf(r.Document))
}

func removeAt(p Policy) time.Time {
	if p.LegalHold {
		return time.Time{}
	}
	at := p.Expires
	if !p.PurgeAt.IsZero() && (at.IsZero() || p.PurgeAt.Before(at)) {
		at = p.PurgeAt
	}
	return at
}

// RemoveAt is when a record with policy p, available, may be removed.
func (p Policy) RemoveAt() time.Time { return removeAt(p) }

// cacheExpiry is when a cache entry of r's document stops answering: its
// expiry, unless held (a hold lifted forgets the entry).
func (r Record) cacheExpiry() time.Time {
	if r.LegalHold {
		return time.Time{}
	}
	return r.Expires
}

// expiryOf is the expiry of a document uploaded at now asking for
// expiresIn seconds (nil: the configured retention, zero: none).
func (s *Service) expiryOf(op Op, now time.Time, expiresIn *int64) (time.Time, error) {
	if expiresIn == nil {
		if s.cfg.Retention <= 0 {
			return time.Time{}, nil
		}
		return now.Add(s.cfg.Retention), nil
	}
	if *expiresIn <= 0 || *expiresIn > maxExpiresIn {
		return time.Time{}, E(op, KindInvalid, fmt.Sprintf("expires_in must be a whole number of seconds from 1 to %d", int64(maxExpiresIn)))
	}
	return now.Add(time.Duration(*expiresIn) * time.Second), nil
}

// maxExpiresIn bounds an expires_in: a hundred years, far past any
// retention rule and far inside time.Duration.
const maxExpiresIn = 100 * 366 * 24 * 3600

// changeAttempts bounds how often a policy change reads again after losing
// a race; each loss is another change that won.
const changeAttempts = 8

// change applies decide to tenant's document id and writes the policy it
// returns, conditioned on the version read; on a lost race it reads again.
// decide sees the record (trashed ones too, never expired ones) and returns
// the new policy, or an error to answer.
func (s *Service) change(ctx context.Context, op Op, tenant Tenant, id ID, decide func(rec Record, now time.Time) (Policy, error)) (Record, error) {
	for attempt := 0; ; attempt++ {
		rec, err := s.anyRecord(ctx, op, tenant, id)
		if err != nil {
			return Record{}, err
		}
		now := s.now()
		p, err := decide(rec, now)
		if err != nil {
			return Record{}, err
		}
		// A document leaving readers (to the trash, or to an expiry now
		// or sooner) is forgotten by the cache first, as a delete is; one
		// whose cached expiry changes is forgotten too, so that the next
		// fill carries the new one.
		seen := p.DeletedAt != rec.DeletedAt || p.Expires != rec.Expires || p.LegalHold != rec.LegalHold
		if seen {
			if err := s.reader.forget(ctx, id); err != nil {
				return Record{}, E(op, KindUnavailable, fmt.Errorf("remove %s from the cache: %w", id, err))
			}
		}
		out, err := s.meta.SetPolicy(ctx, id, p, rec.Version)
		switch {
		case err == nil:
			if seen {
				// A fill that read the record before this write may land
				// after the first forget; this one removes it.
				if ferr := s.reader.forget(context.WithoutCancel(ctx), id); ferr != nil {
					s.log.ErrorContext(ctx, "forget the cache entry after a policy change", "document", id, "error", ferr.Error())
				}
			}
			return out, nil
		case IsNotFound(err):
			return Record{}, notFound(op, id)
		case KindOf(err) == KindConflict && attempt+1 < changeAttempts:
			continue // another change won: decide again on what it left
		}
		return Record{}, E(op, fmt.Errorf("change the policy of %s: %w", id, err))
	}
}

// anyRecord reads tenant's record of id, in the trash or not; an expired
// or purged one is not found (gone for every route, whatever the removal
// has done yet), one not available a conflict.
func (s *Service) anyRecord(ctx context.Context, op Op, tenant Tenant, id ID) (Record, error) {
	rec, err := s.storedRecord(ctx, op, tenant, id)
	if err != nil {
		return Record{}, err
	}
	// Expired, or purged from the trash whatever the sweep has done yet: no
	// change brings it back (Sweep relies on it).
	if now := s.now(); rec.Expired(now) || (rec.Status == StatusAvailable && rec.due(now)) {
		return Record{}, notFound(op, id)
	}
	if rec.Status != StatusAvailable {
		return Record{}, E(op, KindConflict, fmt.Sprintf("document %s is %s: its policy changes once it is available", id, rec.Status))
	}
	return rec, nil
}

// SetExpiry changes the expiry of tenant's document id (zero: none).
func (s *Service) SetExpiry(ctx context.Context, tenant Tenant, id ID, expires time.Time) (Document, error) {
	const op = "docstore.SetExpiry"
	rec, err := s.change(ctx, op, tenant, id, func(rec Record, now time.Time) (Policy, error) {
		if rec.Trashed() {
			return Policy{}, notFound(op, id)
		}
		if !expires.IsZero() && !expires.After(now) {
			return Policy{}, E(op, KindInvalid, "expires_at must be in the future")
		}
		p := PolicyOf(rec.Document)
		p.Expires = expires.UTC()
		return p, nil
	})
	return rec.Document, err
}

// SetLegalHold puts a legal hold on tenant's document id, or lifts it; in
// the trash or not. Setting a hold that is set, or lifting one that is
// not, changes nothing.
func (s *Service) SetLegalHold(ctx context.Context, tenant Tenant, id ID, hold bool) error {
	const op = "docstore.SetLegalHold"
	_, err := s.change(ctx, op, tenant, id, func(rec Record, now time.Time) (Policy, error) {
		p := PolicyOf(rec.Document)
		p.LegalHold = hold
		return p, nil
	})
	return err
}

// Restore brings tenant's document id back from the trash, whole, until
// its purge. A document not in the trash is a conflict. Its share links
// stay dead: the trash removed them, and Restore removes any made while
// the trash did, before the document is readable again.
func (s *Service) Restore(ctx context.Context, tenant Tenant, id ID) (Document, error) {
	const op = "docstore.Restore"
	if s.links != nil {
		if rec, err := s.anyRecord(ctx, op, tenant, id); err == nil && rec.Trashed() {
			if err := s.links.DeleteLinks(ctx, id); err != nil {
				return Document{}, E(op, fmt.Errorf("delete the links of %s: %w", id, err))
			}
		}
	}
	rec, err := s.change(ctx, op, tenant, id, func(rec Record, now time.Time) (Policy, error) {
		switch {
		case !rec.Trashed():
			return Policy{}, E(op, KindConflict, fmt.Sprintf("document %s is not in the trash", id))
		case !rec.LegalHold && !now.Before(rec.PurgeAt):
			return Policy{}, notFound(op, id) // purged, whatever the sweep has done yet
		}
		p := PolicyOf(rec.Document)
		p.DeletedAt, p.PurgeAt = time.Time{}, time.Time{}
		return p, nil
	})
	return rec.Document, err
}

// trash moves tenant's document id to the trash until now+delay, and
// removes its share links: a restore does not revive them.
func (s *Service) trash(ctx context.Context, op Op, tenant Tenant, id ID) error {
	defer func() {
		if s.links != nil {
			detached(ctx, s.log, "delete the links of a document in the trash", func(ctx context.Context) error {
				return s.links.DeleteLinks(ctx, id)
			}, "document", id)
		}
	}()
	_, err := s.change(ctx, op, tenant, id, func(rec Record, now time.Time) (Policy, error) {
		switch {
		case rec.Trashed():
			return Policy{}, notFound(op, id)
		case rec.LegalHold:
			return Policy{}, heldError(op, id)
		}
		p := PolicyOf(rec.Document)
		p.DeletedAt, p.PurgeAt = now, now.Add(s.cfg.DeletionDelay)
		return p, nil
	})
	return err
}

func heldError(op Op, id ID) error {
	return E(op, KindConflict, fmt.Sprintf("document %s is under a legal hold: lift the hold to delete it", id))
}
