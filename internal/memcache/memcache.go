// Package memcache is the in-process Cache of `imago serve`: entries expire
// TTL after their last use (a hit slides the TTL, as GETEX does on Redis),
// and the total size is bounded by evicting the least recently used.
//
// Delete leaves a tombstone that refuses Sets of the id for
// docstore.TombstoneTTL, checked and written under the one lock that guards
// the entries, so a fill that read the origin before a delete cannot store
// the document after it (see docstore.Cache).
package memcache

import (
	"bytes"
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

var _ docstore.Cache = (*Cache)(nil)

// Cache is an in-process docstore.Cache. Set stores a copy; Get hands out
// the stored entry itself, without copying, so callers must not modify it.
type Cache struct {
	ttl      time.Duration
	maxBytes int64
	now      func() time.Time

	mu      sync.Mutex
	entries map[docstore.ID]*list.Element
	lru     *list.List // front = most recently used
	bytes   int64
	// tombstones maps a deleted id to when its tombstone ends; graves
	// lists the same ids in that order (every tombstone lives as long), so
	// expired ones are dropped from its front.
	tombstones map[docstore.ID]time.Time
	graves     []docstore.ID
}

type entry struct {
	id      docstore.ID
	doc     *docstore.CachedDocument
	expires time.Time
}

// New returns a Cache whose entries live ttl after their last use and
// whose bodies total at most maxBytes.
func New(ttl time.Duration, maxBytes int64) *Cache {
	return &Cache{ttl: ttl, maxBytes: maxBytes, now: time.Now,
		entries: make(map[docstore.ID]*list.Element), lru: list.New(),
		tombstones: make(map[docstore.ID]time.Time)}
}

// Get returns the entry of id, sliding its TTL; nil on a miss.
func (c *Cache) Get(ctx context.Context, id docstore.ID) (*docstore.CachedDocument, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[id]
	if !ok {
		return nil, nil
	}
	e := el.Value.(*entry)
	now := c.now()
	if !now.Before(e.expires) {
		c.remove(el)
		return nil, nil
	}
	e.expires = now.Add(c.ttl)
	c.lru.MoveToFront(el)
	return e.doc, nil
}

// Set stores doc under id. It stores nothing when the body is larger than
// the whole cache, when id was deleted less than docstore.TombstoneTTL ago,
// or when ctx's deadline has passed (the fill is late: see
// docstore.FillDeadline).
func (c *Cache) Set(ctx context.Context, id docstore.ID, doc *docstore.CachedDocument) error {
	size := int64(len(doc.Body))
	if size > c.maxBytes {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.buryExpired(now)
	if _, deleted := c.tombstones[id]; deleted {
		return nil
	}
	// Checked under the lock, on the clock the tombstones use: a Set that
	// is late cannot slip in once its deadline has passed.
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		return nil
	}
	if el, ok := c.entries[id]; ok {
		c.remove(el)
	}
	for c.bytes+size > c.maxBytes {
		oldest := c.lru.Back()
		c.remove(oldest)
	}
	stored := *doc
	stored.Body = bytes.Clone(doc.Body)
	c.entries[id] = c.lru.PushFront(&entry{id: id, doc: &stored, expires: now.Add(c.ttl)})
	c.bytes += size
	c.sweep(now)
	return nil
}

// Delete removes the entry of id and leaves its tombstone.
func (c *Cache) Delete(ctx context.Context, id docstore.ID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[id]; ok {
		c.remove(el)
	}
	now := c.now()
	c.buryExpired(now)
	if _, ok := c.tombstones[id]; !ok {
		c.graves = append(c.graves, id)
	}
	// A second delete restarts the tombstone where it stands in graves:
	// buryExpired then keeps it until its new end.
	c.tombstones[id] = now.Add(docstore.TombstoneTTL)
	return nil
}

// Evict removes the entry of id as its expiry would: unlike Delete it
// leaves no tombstone, so the next miss fills the cache again. It is how
// tests make a document cold.
func (c *Cache) Evict(ctx context.Context, id docstore.ID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[id]; ok {
		c.remove(el)
	}
	return nil
}

// buryExpired drops the tombstones that have ended.
func (c *Cache) buryExpired(now time.Time) {
	n := 0
	for _, id := range c.graves {
		end, ok := c.tombstones[id]
		if ok && now.Before(end) {
			break
		}
		if ok {
			delete(c.tombstones, id)
		}
		n++
	}
	if n > 0 {
		c.graves = append(c.graves[:0:0], c.graves[n:]...)
	}
}

// sweep drops a few expired entries from the cold end, so memory held by
// entries nobody asks for again is returned without a background goroutine.
func (c *Cache) sweep(now time.Time) {
	for i := 0; i < 8; i++ {
		el := c.lru.Back()
		if el == nil || now.Before(el.Value.(*entry).expires) {
			return
		}
		c.remove(el)
	}
}

func (c *Cache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*entry)
	delete(c.entries, e.id)
	c.bytes -= int64(len(e.doc.Body))
}
