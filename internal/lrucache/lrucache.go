// Package lrucache is the in-process Cache of `imago serve`, and of a Lambda
// function without Redis: entries expire TTL after their last use (a hit
// slides the TTL, as GETEX does on Redis), and the total size is bounded by
// evicting the least recently used.
//
// It keeps the protocol of a shared cache (see docstore.Cache), so that the
// Service has one path whatever its cache: a miss claims the id's fill lock
// as it looks, and Fill stores the entry only while that claim still holds
// the lock, checked and written under the one mutex that guards the
// entries. Delete removes the entry and the lock and leaves a tombstone that
// refuses fills of the id for docstore.TombstoneTTL. Its state is lost only
// with the process, and with it every reader it served.
package lrucache

import (
	"bytes"
	"container/list"
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// DefaultFillLockTTL is the lifetime of a fill lock that is never released,
// as on Redis: a fill slower than that stores nothing, and a miss waiting
// for it claims in its place.
const DefaultFillLockTTL = 5 * time.Second

var _ docstore.Cache = (*Cache)(nil)

// Cache is an in-process docstore.Cache. Fill stores a copy; Get and Claim
// hand out the stored entry itself, without copying, so callers must not
// modify it.
type Cache struct {
	ttl      time.Duration
	maxBytes int64
	lockTTL  time.Duration
	now      func() time.Time

	mu      sync.Mutex
	entries map[docstore.ID]*list.Element
	lru     *list.List // front = most recently used
	bytes   int64
	// locks are the fill locks held, each with its token and its end;
	// tokens counts them, for their tokens. A lock is removed by its fill,
	// its release or a delete; one that expired unused is dropped once
	// there are more than sweepLocksAt.
	locks        map[docstore.ID]fillLock
	tokens       uint64
	sweepLocksAt int
	// tombstones maps a deleted id to when its tombstone ends; graves
	// lists the same ids in that order (every tombstone lives as long), so
	// expired ones are dropped from its front.
	tombstones map[docstore.ID]time.Time
	graves     []docstore.ID
}

type fillLock struct {
	claim docstore.Claim
	ends  time.Time
}

type entry struct {
	id      docstore.ID
	doc     *docstore.CachedDocument
	expires time.Time
}

// New returns a Cache whose entries live ttl after their last use and
// whose bodies total at most maxBytes; its fill locks live
// DefaultFillLockTTL.
func New(ttl time.Duration, maxBytes int64) *Cache {
	return NewWithFillLockTTL(ttl, maxBytes, DefaultFillLockTTL)
}

// NewWithFillLockTTL is New with fill locks living lockTTL.
func NewWithFillLockTTL(ttl time.Duration, maxBytes int64, lockTTL time.Duration) *Cache {
	return &Cache{ttl: ttl, maxBytes: maxBytes, lockTTL: lockTTL, now: time.Now,
		entries: make(map[docstore.ID]*list.Element), lru: list.New(),
		locks: make(map[docstore.ID]fillLock), sweepLocksAt: minLockSweep, tombstones: make(map[docstore.ID]time.Time)}
}

// Get returns the entry of id, sliding its TTL; nil on a miss.
func (c *Cache) Get(ctx context.Context, id docstore.ID) (*docstore.CachedDocument, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.get(id, c.now()), nil
}

func (c *Cache) get(id docstore.ID, now time.Time) *docstore.CachedDocument {
	el, ok := c.entries[id]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		c.remove(el)
		return nil
	}
	e.expires = now.Add(c.ttl)
	c.lru.MoveToFront(el)
	return e.doc
}

// Claim returns the entry of id, sliding its TTL; on a miss it takes the
// fill lock of id and returns its claim, or NoClaim when the lock is held.
func (c *Cache) Claim(ctx context.Context, id docstore.ID) (*docstore.CachedDocument, docstore.Claim, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if doc := c.get(id, now); doc != nil {
		return doc, docstore.NoClaim, nil
	}
	if l, ok := c.locks[id]; ok && now.Before(l.ends) {
		return nil, docstore.NoClaim, nil
	}
	c.tokens++
	claim := docstore.Claim(strconv.FormatUint(c.tokens, 36))
	c.locks[id] = fillLock{claim: claim, ends: now.Add(c.lockTTL)}
	if len(c.locks) > c.sweepLocksAt {
		for id, l := range c.locks {
			if !now.Before(l.ends) {
				delete(c.locks, id)
			}
		}
		c.sweepLocksAt = max(minLockSweep, 2*len(c.locks))
	}
	return nil, claim, nil
}

// minLockSweep is the fewest locks held that make a Claim drop the expired
// ones: the sweep costs one pass over them, so its threshold doubles with
// the locks that remain, and its cost per Claim stays constant.
const minLockSweep = 64

// held reports whether claim holds the fill lock of id at now.
func (c *Cache) held(id docstore.ID, claim docstore.Claim, now time.Time) bool {
	l, ok := c.locks[id]
	return ok && claim != docstore.NoClaim && l.claim == claim && now.Before(l.ends)
}

// Fill stores doc under id and releases the fill lock, if claim still
// holds the lock. It stores nothing when the lock is gone or another's,
// when id was deleted less than docstore.TombstoneTTL ago, when the body is
// larger than the whole cache, or when ctx's deadline has passed (the fill
// is late: see docstore.FillDeadline).
func (c *Cache) Fill(ctx context.Context, id docstore.ID, claim docstore.Claim, doc *docstore.CachedDocument) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.held(id, claim, now) {
		return nil
	}
	delete(c.locks, id)
	c.buryExpired(now)
	if _, deleted := c.tombstones[id]; deleted {
		return nil
	}
	size := int64(len(doc.Body))
	if size > c.maxBytes {
		return nil
	}
	// Checked under the mutex, on the clock the tombstones use: a fill
	// that is late cannot slip in once its deadline has passed.
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

// Release frees the fill lock of id if claim holds it.
func (c *Cache) Release(ctx context.Context, id docstore.ID, claim docstore.Claim) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.locks[id]; ok && l.claim == claim {
		delete(c.locks, id)
	}
	return nil
}

// Delete removes the entry and the fill lock of id and leaves its
// tombstone.
func (c *Cache) Delete(ctx context.Context, id docstore.ID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[id]; ok {
		c.remove(el)
	}
	delete(c.locks, id)
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
