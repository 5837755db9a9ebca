// Package memcache is the in-process Cache of `imago serve`: entries expire
// TTL after their last use (a hit slides the TTL, as GETEX does on Redis),
// and the total size is bounded by evicting the least recently used.
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
		entries: make(map[docstore.ID]*list.Element), lru: list.New()}
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

// Set stores doc under id; a body larger than the whole cache is not stored.
func (c *Cache) Set(ctx context.Context, id docstore.ID, doc *docstore.CachedDocument) error {
	size := int64(len(doc.Body))
	if size > c.maxBytes {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[id]; ok {
		c.remove(el)
	}
	now := c.now()
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

// Delete removes the entry of id.
func (c *Cache) Delete(ctx context.Context, id docstore.ID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[id]; ok {
		c.remove(el)
	}
	return nil
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
