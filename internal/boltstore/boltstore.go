// Package boltstore is the embedded MetadataStore and LinkStore of `imago
// serve`, on bbolt: one bucket of records by id, and one index of every
// record by tenant, newest first, so listing is a range scan; likewise one
// bucket of share links by id and one index of them by document (links.go).
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/imagodocs/imago/internal/docstore"
)

var (
	_ docstore.MetadataStore = (*Store)(nil)
	_ docstore.LinkStore     = (*Store)(nil)
)

var (
	recordsBucket = []byte("records")
	tenantBucket  = []byte("by_tenant")
	// trashBucket indexes the records in the trash, as tenantBucket the
	// others: a record is in exactly one of the two.
	trashBucket = []byte("trash_by_tenant")
)

// Store is a MetadataStore in a bbolt file.
type Store struct {
	db  *bolt.DB
	now func() time.Time
}

// Open opens (creating if needed) the store at path. Only one process may
// hold it; a second one gets a clear error instead of waiting forever.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("boltstore: %s is in use by another process", path)
		}
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{recordsBucket, tenantBucket, trashBucket, linksBucket, documentLinksBucket, auditBucket, auditChainBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: init %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now}
	if err := s.expireAndIndex(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.expireLinks(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the file.
func (s *Store) Close() error { return s.db.Close() }

// item is the stored form of a Record.
type item struct {
	ID            docstore.ID       `json:"id"`
	Tenant        docstore.Tenant   `json:"tenant"`
	Filename      string            `json:"filename"`
	ContentType   string            `json:"content_type"`
	Size          int64             `json:"size"`
	SHA256        string            `json:"sha256"`
	Status        docstore.Status   `json:"status"`
	CreatedAt     time.Time         `json:"created_at"`
	Metadata      map[string]string `json:"metadata"`
	WrappedKey    []byte            `json:"wrapped_key"`
	KeyID         string            `json:"key_id"`
	FormatVersion int               `json:"format_version"`
	SegmentSize   int               `json:"segment_size"`
	ExpiresAt     time.Time         `json:"expires_at,omitzero"`
	UploadID      string            `json:"upload_id,omitempty"`
	PartSize      int64             `json:"part_size,omitempty"`
	BlobID        docstore.ID       `json:"blob_id,omitempty"`
	Failure       string            `json:"failure,omitempty"`
	Expires       time.Time         `json:"expires,omitzero"`
	LegalHold     bool              `json:"legal_hold,omitempty"`
	DeletedAt     time.Time         `json:"deleted_at,omitzero"`
	PurgeAt       time.Time         `json:"purge_at,omitzero"`
	Version       int64             `json:"version,omitempty"`
}

func toItem(r docstore.Record) item {
	return item{ID: r.ID, Tenant: r.Tenant, Filename: r.Filename, ContentType: r.ContentType, Size: r.Size,
		SHA256: r.SHA256, Status: r.Status, CreatedAt: r.CreatedAt.UTC(), Metadata: r.Metadata,
		WrappedKey: r.WrappedKey, KeyID: r.KeyID, FormatVersion: r.FormatVersion, SegmentSize: r.SegmentSize,
		ExpiresAt: r.ExpiresAt.UTC(), UploadID: r.UploadID, PartSize: r.PartSize, BlobID: r.BlobID, Failure: r.Failure,
		Expires: r.Expires.UTC(), LegalHold: r.LegalHold, DeletedAt: r.DeletedAt.UTC(), PurgeAt: r.PurgeAt.UTC(), Version: r.Version}
}

func (it item) record() docstore.Record {
	md := it.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return docstore.Record{
		Document: docstore.Document{ID: it.ID,
			Descriptor: docstore.Descriptor{Filename: it.Filename, ContentType: it.ContentType, Size: it.Size, SHA256: it.SHA256},
			Status:     it.Status, CreatedAt: it.CreatedAt, Metadata: md, Failure: it.Failure,
			Expires: it.Expires, LegalHold: it.LegalHold, DeletedAt: it.DeletedAt, PurgeAt: it.PurgeAt},
		Tenant: it.Tenant, Version: it.Version, WrappedKey: it.WrappedKey, KeyID: it.KeyID, FormatVersion: it.FormatVersion,
		SegmentSize: it.SegmentSize, ExpiresAt: it.ExpiresAt, UploadID: it.UploadID, PartSize: it.PartSize, BlobID: it.BlobID,
	}
}

// indexKey orders a tenant's records newest first, ties by id descending:
// len(tenant) ‖ tenant ‖ ^created-ns ‖ ^id bytes.
func indexKey(tenant docstore.Tenant, created time.Time, id docstore.ID) []byte {
	k := tenantPrefix(tenant)
	k = binary.BigEndian.AppendUint64(k, ^uint64(created.UnixNano()))
	for i := 0; i < len(id); i++ {
		k = append(k, ^id[i])
	}
	return k
}

func tenantPrefix(tenant docstore.Tenant) []byte {
	k := binary.BigEndian.AppendUint32(nil, uint32(len(tenant)))
	return append(k, tenant...)
}

func get(tx *bolt.Tx, id docstore.ID) (item, bool, error) {
	raw := tx.Bucket(recordsBucket).Get([]byte(id))
	if raw == nil {
		return item{}, false, nil
	}
	var it item
	if err := json.Unmarshal(raw, &it); err != nil {
		return item{}, false, fmt.Errorf("decode record %s: %w", id, err)
	}
	return it, true, nil
}

func put(tx *bolt.Tx, it item) error {
	raw, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return tx.Bucket(recordsBucket).Put([]byte(it.ID), raw)
}

// Create stores a new record; KindConflict if the id exists.
func (s *Store) Create(ctx context.Context, rec docstore.Record) error {
	const op = "boltstore.Create"
	err := s.db.Update(func(tx *bolt.Tx) error {
		if _, ok, err := get(tx, rec.ID); err != nil || ok {
			if ok {
				return docstore.E(op, docstore.KindConflict, fmt.Sprintf("document %s already exists", rec.ID))
			}
			return err
		}
		it := toItem(rec)
		it.Version = 1
		if err := put(tx, it); err != nil {
			return err
		}
		return tx.Bucket(indexOf(it)).Put(indexKey(it.Tenant, it.CreatedAt, it.ID), nil)
	})
	if err != nil {
		return docstore.E(op, err)
	}
	return nil
}

// Get returns the record of id.
func (s *Store) Get(ctx context.Context, id docstore.ID) (docstore.Record, error) {
	const op = "boltstore.Get"
	var rec docstore.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		it, ok, err := get(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return docstore.E(op, docstore.KindNotFound, fmt.Sprintf("document %s not found", id))
		}
		rec = it.record()
		return nil
	})
	if err != nil {
		return docstore.Record{}, docstore.E(op, err)
	}
	return rec, nil
}

// MarkAvailable flips a pending record to available. bbolt runs one write
// transaction at a time, so the check and the write are one step. The
// record's removal time is computed from it (Record.RemoveAt), so removeAt
// is not stored.
func (s *Store) MarkAvailable(ctx context.Context, id docstore.ID, size int64, sha256 string, blob docstore.ID, removeAt time.Time) (docstore.Record, error) {
	return s.finish("boltstore.MarkAvailable", id, func(_ *bolt.Tx, it *item) error {
		it.Status, it.Size, it.SHA256, it.BlobID, it.ExpiresAt = docstore.StatusAvailable, size, sha256, blob, time.Time{}
		return nil
	})
}

// MarkFailed flips a pending record to failed; it keeps its expiry.
func (s *Store) MarkFailed(ctx context.Context, id docstore.ID, reason string) (docstore.Record, error) {
	return s.finish("boltstore.MarkFailed", id, func(_ *bolt.Tx, it *item) error {
		it.Status, it.Failure = docstore.StatusFailed, reason
		return nil
	})
}

// finish applies change to a pending record, in one transaction.
func (s *Store) finish(op docstore.Op, id docstore.ID, change func(tx *bolt.Tx, it *item) error) (docstore.Record, error) {
	var rec docstore.Record
	err := s.db.Update(func(tx *bolt.Tx) error {
		it, ok, err := get(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return docstore.E(op, docstore.KindNotFound, fmt.Sprintf("document %s not found", id))
		}
		if it.Status != docstore.StatusPending {
			return docstore.E(op, docstore.KindConflict, fmt.Sprintf("document %s is %s, not pending", id, it.Status))
		}
		if err := change(tx, &it); err != nil {
			return err
		}
		it.Version++
		if err := put(tx, it); err != nil {
			return err
		}
		rec = it.record()
		return nil
	})
	if err != nil {
		return docstore.Record{}, docstore.E(op, err)
	}
	return rec, nil
}

// List returns up to limit records of tenant not in the trash, whatever
// their status, newest first.
func (s *Store) List(ctx context.Context, tenant docstore.Tenant, after *docstore.ListPosition, limit int) ([]docstore.Record, error) {
	return s.list("boltstore.List", tenantBucket, tenant, after, limit)
}

// ListTrash returns up to limit records of tenant in the trash, newest
// first.
func (s *Store) ListTrash(ctx context.Context, tenant docstore.Tenant, after *docstore.ListPosition, limit int) ([]docstore.Record, error) {
	return s.list("boltstore.ListTrash", trashBucket, tenant, after, limit)
}

func (s *Store) list(op docstore.Op, index []byte, tenant docstore.Tenant, after *docstore.ListPosition, limit int) ([]docstore.Record, error) {
	var out []docstore.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := tenantPrefix(tenant)
		c := tx.Bucket(index).Cursor()
		k, _ := c.Seek(prefix)
		if after != nil {
			start := indexKey(tenant, after.CreatedAt, after.ID)
			k, _ = c.Seek(start)
			if bytes.Equal(k, start) {
				k, _ = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Next() {
			idBytes := bytes.Clone(k[len(prefix)+8:])
			for i := range idBytes {
				idBytes[i] = ^idBytes[i]
			}
			it, ok, err := get(tx, docstore.ID(idBytes))
			if err != nil {
				return err
			}
			if ok {
				out = append(out, it.record())
			}
		}
		return nil
	})
	if err != nil {
		return nil, docstore.E(op, err)
	}
	return out, nil
}

// Delete removes the record of id and its index entry.
func (s *Store) Delete(ctx context.Context, id docstore.ID) error {
	err := s.db.Update(func(tx *bolt.Tx) error { return deleteItem(tx, id) })
	if err != nil {
		return docstore.E("boltstore.Delete", err)
	}
	return nil
}

func deleteItem(tx *bolt.Tx, id docstore.ID) error {
	it, ok, err := get(tx, id)
	if err != nil || !ok {
		return err
	}
	if err := tx.Bucket(indexOf(it)).Delete(indexKey(it.Tenant, it.CreatedAt, it.ID)); err != nil {
		return err
	}
	return tx.Bucket(recordsBucket).Delete([]byte(id))
}

// expireAndIndex removes pending and failed records past their ExpiresAt,
// as DynamoDB's TTL would (uploads that died half-way or failed), and puts
// every other one in the tenant index: a store written before pending and
// failed records were listed has only its available ones there.
func (s *Store) expireAndIndex() error {
	now := s.now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		var expired []docstore.ID
		var unindexed []item
		err := tx.Bucket(recordsBucket).ForEach(func(k, v []byte) error {
			var it item
			if err := json.Unmarshal(v, &it); err != nil {
				return fmt.Errorf("decode record %s: %w", k, err)
			}
			switch {
			case it.Status != docstore.StatusAvailable && !it.ExpiresAt.IsZero() && it.ExpiresAt.Before(now):
				expired = append(expired, it.ID)
			case tx.Bucket(indexOf(it)).Get(indexKey(it.Tenant, it.CreatedAt, it.ID)) == nil:
				unindexed = append(unindexed, it)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range expired {
			if err := deleteItem(tx, id); err != nil {
				return err
			}
		}
		for _, it := range unindexed {
			if err := tx.Bucket(indexOf(it)).Put(indexKey(it.Tenant, it.CreatedAt, it.ID), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore: expire pending records: %w", err)
	}
	return nil
}
