package lrucache

// LoseState empties c as a restart of its process would: entries, fill
// locks and tombstones alike.
func LoseState(c *Cache) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fresh := NewWithFillLockTTL(c.ttl, c.maxBytes, c.lockTTL)
	c.entries, c.lru, c.bytes = fresh.entries, fresh.lru, 0
	c.locks, c.tombstones, c.graves = fresh.locks, fresh.tombstones, nil
}
