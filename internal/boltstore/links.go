package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/imagodocs/imago/internal/docstore"
)

var (
	linksBucket         = []byte("links")
	documentLinksBucket = []byte("links_by_document")
)

// linkItem is the stored form of a Link.
type linkItem struct {
	ID          docstore.LinkID `json:"id"`
	Document    docstore.ID     `json:"document_id"`
	Tenant      docstore.Tenant `json:"tenant"`
	SHA256      string          `json:"sha256"`
	CreatedAt   time.Time       `json:"created_at"`
	ExpiresAt   time.Time       `json:"expires_at"`
	MaxUses     int64           `json:"max_uses,omitempty"`
	Uses        int64           `json:"uses"`
	Disposition string          `json:"disposition"`
	RevokedAt   time.Time       `json:"revoked_at,omitzero"`
}

func (it linkItem) link() docstore.Link { return docstore.Link(it) }

// documentLinkKey orders a document's links newest first, ties by id:
// document ‖ ^created-ns ‖ link id.
func documentLinkKey(doc docstore.ID, created time.Time, id docstore.LinkID) []byte {
	k := append([]byte(doc), 0)
	k = binary.BigEndian.AppendUint64(k, ^uint64(created.UnixNano()))
	return append(k, id...)
}

func getLink(tx *bolt.Tx, id docstore.LinkID) (linkItem, bool, error) {
	raw := tx.Bucket(linksBucket).Get([]byte(id))
	if raw == nil {
		return linkItem{}, false, nil
	}
	var it linkItem
	if err := json.Unmarshal(raw, &it); err != nil {
		return linkItem{}, false, fmt.Errorf("decode link %s: %w", id, err)
	}
	return it, true, nil
}

func putLink(tx *bolt.Tx, it linkItem) error {
	raw, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return tx.Bucket(linksBucket).Put([]byte(it.ID), raw)
}

// CreateLink stores a new link; KindConflict if its id exists.
func (s *Store) CreateLink(ctx context.Context, l docstore.Link) error {
	const op = "boltstore.CreateLink"
	err := s.db.Update(func(tx *bolt.Tx) error {
		if _, ok, err := getLink(tx, l.ID); err != nil || ok {
			if ok {
				return docstore.E(op, docstore.KindConflict, fmt.Sprintf("link %s already exists", l.ID))
			}
			return err
		}
		it := linkItem(l)
		it.CreatedAt, it.ExpiresAt = it.CreatedAt.UTC(), it.ExpiresAt.UTC()
		if err := putLink(tx, it); err != nil {
			return err
		}
		return tx.Bucket(documentLinksBucket).Put(documentLinkKey(it.Document, it.CreatedAt, it.ID), nil)
	})
	if err != nil {
		return docstore.E(op, err)
	}
	return nil
}

// Link returns the link of id.
func (s *Store) Link(ctx context.Context, id docstore.LinkID) (docstore.Link, error) {
	const op = "boltstore.Link"
	var it linkItem
	err := s.db.View(func(tx *bolt.Tx) error {
		var ok bool
		var err error
		it, ok, err = getLink(tx, id)
		if err == nil && !ok {
			err = linkNotFound(op, id)
		}
		return err
	})
	if err != nil {
		return docstore.Link{}, docstore.E(op, err)
	}
	return it.link(), nil
}

func linkNotFound(op docstore.Op, id docstore.LinkID) error {
	return docstore.E(op, docstore.KindNotFound, fmt.Sprintf("link %s not found", id))
}

// Links returns every link of doc, newest first.
func (s *Store) Links(ctx context.Context, doc docstore.ID) ([]docstore.Link, error) {
	const op = "boltstore.Links"
	var links []docstore.Link
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := append([]byte(doc), 0)
		c := tx.Bucket(documentLinksBucket).Cursor()
		for k, _ := c.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			id := docstore.LinkID(k[len(prefix)+8:])
			it, ok, err := getLink(tx, id)
			if err != nil {
				return err
			}
			if ok {
				links = append(links, it.link())
			}
		}
		return nil
	})
	if err != nil {
		return nil, docstore.E(op, err)
	}
	return links, nil
}

// UseLink counts one use of link id of doc, in one transaction.
func (s *Store) UseLink(ctx context.Context, id docstore.LinkID, doc docstore.ID, now time.Time) (docstore.Link, error) {
	const op = "boltstore.UseLink"
	var it linkItem
	err := s.db.Update(func(tx *bolt.Tx) error {
		var ok bool
		var err error
		it, ok, err = getLink(tx, id)
		switch {
		case err != nil:
			return err
		case !ok || it.Document != doc:
			return linkNotFound(op, id)
		case it.link().Gone(now) != "":
			return docstore.LinkGone(op, it.link(), now)
		}
		it.Uses++
		return putLink(tx, it)
	})
	if err != nil {
		return docstore.Link{}, docstore.E(op, err)
	}
	return it.link(), nil
}

// UnuseLink gives back one use of link id.
func (s *Store) UnuseLink(ctx context.Context, id docstore.LinkID) error {
	return s.changeLink("boltstore.UnuseLink", id, func(it *linkItem) bool {
		if it.Uses == 0 {
			return false
		}
		it.Uses--
		return true
	}, false)
}

// RevokeLink marks link id revoked at now, unless it already is.
func (s *Store) RevokeLink(ctx context.Context, id docstore.LinkID, now time.Time) error {
	return s.changeLink("boltstore.RevokeLink", id, func(it *linkItem) bool {
		if !it.RevokedAt.IsZero() {
			return false
		}
		it.RevokedAt = now.UTC()
		return true
	}, true)
}

// changeLink applies change to link id in one transaction, storing it when
// change says it changed; a missing link is KindNotFound when mustExist.
func (s *Store) changeLink(op docstore.Op, id docstore.LinkID, change func(*linkItem) bool, mustExist bool) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		it, ok, err := getLink(tx, id)
		switch {
		case err != nil:
			return err
		case !ok && mustExist:
			return linkNotFound(op, id)
		case !ok || !change(&it):
			return nil
		}
		return putLink(tx, it)
	})
	if err != nil {
		return docstore.E(op, err)
	}
	return nil
}

// DeleteLinks removes every link of doc.
func (s *Store) DeleteLinks(ctx context.Context, doc docstore.ID) error {
	links, err := s.Links(ctx, doc)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, l := range links {
			if err := deleteLink(tx, l.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return docstore.E("boltstore.DeleteLinks", err)
	}
	return nil
}

func deleteLink(tx *bolt.Tx, id docstore.LinkID) error {
	it, ok, err := getLink(tx, id)
	if err != nil || !ok {
		return err
	}
	if err := tx.Bucket(documentLinksBucket).Delete(documentLinkKey(it.Document, it.CreatedAt, it.ID)); err != nil {
		return err
	}
	return tx.Bucket(linksBucket).Delete([]byte(id))
}

// expireLinks removes the links that expired a day ago or more, as
// DynamoDB's TTL would: until then an expired link still answers 410 (its
// token says it expired anyway), rather than vanishing at once.
func (s *Store) expireLinks() error {
	cutoff := s.now().Add(-24 * time.Hour)
	err := s.db.Update(func(tx *bolt.Tx) error {
		var expired []docstore.LinkID
		err := tx.Bucket(linksBucket).ForEach(func(k, v []byte) error {
			var it linkItem
			if err := json.Unmarshal(v, &it); err != nil {
				return fmt.Errorf("decode link %s: %w", k, err)
			}
			if it.ExpiresAt.Before(cutoff) {
				expired = append(expired, it.ID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range expired {
			if err := deleteLink(tx, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore: expire links: %w", err)
	}
	return nil
}
