package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

// The audit trail, in two buckets: records by tenant, newest first, ties
// by id descending (auditBucket: len(tenant) ‖ tenant ‖ ^unix-ms ‖ ^id),
// and the chains'
// places (auditChainBucket: len(tenant) ‖ tenant ‖ chain ‖ 0 ‖ seq, naming
// the record's key), which make an append conditional on its place being
// free. Records outlive the documents they name: nothing deletes them.

var _ docstore.AuditLog = (*Store)(nil)

var (
	auditBucket      = []byte("audit")
	auditChainBucket = []byte("audit_chains")
)

func auditKey(tenant docstore.Tenant, at time.Time, id string) []byte {
	k := tenantPrefix(tenant)
	k = binary.BigEndian.AppendUint64(k, ^uint64(at.UnixMilli()))
	for i := 0; i < len(id); i++ {
		k = append(k, ^id[i])
	}
	return k
}

func auditChainKey(tenant docstore.Tenant, chain string, seq int64) []byte {
	k := tenantPrefix(tenant)
	k = append(k, chain...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(seq))
}

// Append stores rec unless its chain's place is taken.
func (s *Store) Append(ctx context.Context, tenant docstore.Tenant, rec api.AuditRecord) error {
	const op = "boltstore.Append"
	at, err := time.Parse(api.AuditTimeLayout, rec.Time)
	if err != nil {
		return docstore.E(op, docstore.KindInvalid, fmt.Errorf("record time %q: %w", rec.Time, err))
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return docstore.E(op, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		place := auditChainKey(tenant, rec.Chain, rec.Seq)
		if tx.Bucket(auditChainBucket).Get(place) != nil {
			return docstore.E(op, docstore.KindConflict, fmt.Sprintf("audit chain %s has a record at %d", rec.Chain, rec.Seq))
		}
		key := auditKey(tenant, at, rec.ID)
		if err := tx.Bucket(auditBucket).Put(key, raw); err != nil {
			return err
		}
		return tx.Bucket(auditChainBucket).Put(place, key)
	})
	if err != nil {
		return docstore.E(op, err)
	}
	return nil
}

// Record returns the record at seq of tenant's chain.
func (s *Store) Record(ctx context.Context, tenant docstore.Tenant, chain string, seq int64) (api.AuditRecord, error) {
	const op = "boltstore.Record"
	var rec api.AuditRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		key := tx.Bucket(auditChainBucket).Get(auditChainKey(tenant, chain, seq))
		raw := tx.Bucket(auditBucket).Get(key)
		if key == nil || raw == nil {
			return docstore.E(op, docstore.KindNotFound, fmt.Sprintf("audit chain %s has no record at %d", chain, seq))
		}
		return json.Unmarshal(raw, &rec)
	})
	if err != nil {
		return api.AuditRecord{}, docstore.E(op, err)
	}
	return rec, nil
}

// Query returns up to limit of tenant's records q selects, newest first.
func (s *Store) Query(ctx context.Context, tenant docstore.Tenant, q docstore.AuditQuery, after *docstore.ListPosition, limit int) ([]api.AuditRecord, error) {
	const op = "boltstore.Query"
	var out []api.AuditRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := tenantPrefix(tenant)
		c := tx.Bucket(auditBucket).Cursor()
		var k, v []byte
		switch {
		case after != nil:
			start := auditKey(tenant, after.CreatedAt, string(after.ID))
			k, v = c.Seek(start)
			if bytes.Equal(k, start) {
				k, v = c.Next()
			}
		case !q.Until.IsZero():
			// Until is exclusive: start at the newest record before it.
			k, v = c.Seek(auditKey(tenant, q.Until.Add(-time.Millisecond), ""))
		default:
			k, v = c.Seek(prefix)
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			var rec api.AuditRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode audit record: %w", err)
			}
			at, _ := time.Parse(api.AuditTimeLayout, rec.Time)
			if !q.Since.IsZero() && at.Before(q.Since) {
				break // newest first: every later one is older still
			}
			if (!q.Until.IsZero() && !at.Before(q.Until)) || (q.Document != "" && rec.DocumentID != string(q.Document)) ||
				(q.Action != "" && rec.Action != q.Action) {
				continue
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, docstore.E(op, err)
	}
	return out, nil
}
