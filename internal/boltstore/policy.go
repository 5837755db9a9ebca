package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/imagodocs/imago/internal/docstore"
)

// indexOf is the listing index that holds it: the trash's while it is in
// the trash, the tenant's otherwise.
func indexOf(it item) []byte {
	if !it.DeletedAt.IsZero() {
		return trashBucket
	}
	return tenantBucket
}

// SetPolicy writes p as the policy of the available record id, if its
// version is version, moving it between the listing and the trash's
// listing as p says; one transaction.
func (s *Store) SetPolicy(ctx context.Context, id docstore.ID, p docstore.Policy, version int64) (docstore.Record, error) {
	const op = "boltstore.SetPolicy"
	var rec docstore.Record
	err := s.db.Update(func(tx *bolt.Tx) error {
		it, err := getVersion(tx, op, id, version)
		if err != nil {
			return err
		}
		if it.Status != docstore.StatusAvailable {
			return docstore.E(op, docstore.KindConflict, fmt.Sprintf("document %s is %s, not available", id, it.Status))
		}
		key := indexKey(it.Tenant, it.CreatedAt, it.ID)
		if err := tx.Bucket(indexOf(it)).Delete(key); err != nil {
			return err
		}
		it.Expires, it.LegalHold, it.DeletedAt, it.PurgeAt = p.Expires.UTC(), p.LegalHold, p.DeletedAt.UTC(), p.PurgeAt.UTC()
		it.Version++
		if err := put(tx, it); err != nil {
			return err
		}
		rec = it.record()
		return tx.Bucket(indexOf(it)).Put(key, nil)
	})
	if err != nil {
		return docstore.Record{}, docstore.E(op, err)
	}
	return rec, nil
}

// getVersion reads record id, which must be at version.
func getVersion(tx *bolt.Tx, op docstore.Op, id docstore.ID, version int64) (item, error) {
	it, ok, err := get(tx, id)
	switch {
	case err != nil:
		return item{}, err
	case !ok:
		return item{}, docstore.E(op, docstore.KindNotFound, fmt.Sprintf("document %s not found", id))
	case it.Version != version:
		return item{}, docstore.E(op, docstore.KindConflict, fmt.Sprintf("document %s changed (version %d, not %d)", id, it.Version, version))
	}
	return it, nil
}

// DeleteVersion removes record id if its version is version.
func (s *Store) DeleteVersion(ctx context.Context, id docstore.ID, version int64) error {
	const op = "boltstore.DeleteVersion"
	err := s.db.Update(func(tx *bolt.Tx) error {
		if _, err := getVersion(tx, op, id, version); err != nil {
			return err
		}
		return deleteItem(tx, id)
	})
	if err != nil {
		return docstore.E(op, err)
	}
	return nil
}

var _ docstore.RemovalSchedule = (*Store)(nil)

// Due returns up to limit records whose removal time is at or before now:
// a scan of every record (an embedded store holds a laptop's documents).
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]docstore.Record, error) {
	const op = "boltstore.Due"
	var due []docstore.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(recordsBucket).ForEach(func(k, v []byte) error {
			if len(due) >= limit {
				return nil
			}
			var it item
			if err := json.Unmarshal(v, &it); err != nil {
				return fmt.Errorf("decode record %s: %w", k, err)
			}
			rec := it.record()
			if at := rec.RemoveAt(); !at.IsZero() && !now.Before(at) {
				due = append(due, rec)
			}
			return nil
		})
	})
	if err != nil {
		return nil, docstore.E(op, err)
	}
	return due, nil
}
