package memcache

import (
	"context"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// A tombstone refuses Sets for docstore.TombstoneTTL and then lets them in
// again (an id may come back: an upload retried with its Idempotency-Key),
// and expired tombstones do not pile up.
func TestTombstoneLifetime(t *testing.T) {
	ctx := context.Background()
	c := New(time.Hour, 1<<20)
	now := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return now }
	id := docstore.NewID()
	doc := &docstore.CachedDocument{Tenant: "t", Descriptor: docstore.Descriptor{Size: 3}, Body: []byte("abc")}

	c.Delete(ctx, id)
	now = now.Add(docstore.TombstoneTTL - time.Second)
	c.Set(ctx, id, doc)
	if got, _ := c.Get(ctx, id); got != nil {
		t.Fatal("a Set one second before the tombstone ends was stored")
	}
	now = now.Add(time.Second)
	c.Set(ctx, id, doc)
	if got, _ := c.Get(ctx, id); got == nil {
		t.Fatal("a Set after the tombstone ended was refused")
	}

	for range 100 {
		c.Delete(ctx, docstore.NewID())
	}
	now = now.Add(docstore.TombstoneTTL)
	c.Delete(ctx, id)
	if len(c.tombstones) != 1 || len(c.graves) != 1 {
		t.Fatalf("after the others expired: %d tombstones, %d graves; want 1 and 1", len(c.tombstones), len(c.graves))
	}
}

// A Set whose deadline has passed (a fill that took longer than
// docstore.FillDeadline) stores nothing.
func TestLateSetIsRefused(t *testing.T) {
	c := New(time.Hour, 1<<20)
	id := docstore.NewID()
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	c.Set(ctx, id, &docstore.CachedDocument{Body: []byte("late")})
	if got, _ := c.Get(context.Background(), id); got != nil {
		t.Fatal("a Set past its deadline was stored")
	}
}
