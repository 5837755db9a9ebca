package lrucache

import (
	"context"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// claimAndFill fills id as a miss does: Claim, then Fill.
func claimAndFill(t *testing.T, ctx context.Context, c *Cache, id docstore.ID, doc *docstore.CachedDocument) {
	t.Helper()
	_, claim, err := c.Claim(context.Background(), id)
	if err != nil || claim == docstore.NoClaim {
		t.Fatalf("Claim: (%q, %v)", claim, err)
	}
	if err := c.Fill(ctx, id, claim, doc); err != nil {
		t.Fatal(err)
	}
}

// A tombstone refuses fills for docstore.TombstoneTTL and then lets them in
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
	claimAndFill(t, ctx, c, id, doc)
	if got, _ := c.Get(ctx, id); got != nil {
		t.Fatal("a fill one second before the tombstone ends was stored")
	}
	now = now.Add(time.Second)
	claimAndFill(t, ctx, c, id, doc)
	if got, _ := c.Get(ctx, id); got == nil {
		t.Fatal("a fill after the tombstone ended was refused")
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

// A fill whose deadline has passed (one that took longer than
// docstore.FillDeadline) stores nothing.
func TestLateFillIsRefused(t *testing.T) {
	c := New(time.Hour, 1<<20)
	id := docstore.NewID()
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	claimAndFill(t, ctx, c, id, &docstore.CachedDocument{Body: []byte("late")})
	if got, _ := c.Get(context.Background(), id); got != nil {
		t.Fatal("a fill past its deadline was stored")
	}
}

// A fill lock left by a claim that is never filled nor released expires
// after its TTL: the next miss claims.
func TestFillLockExpires(t *testing.T) {
	ctx := context.Background()
	c := New(time.Hour, 1<<20)
	now := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return now }
	id := docstore.NewID()
	_, stale, _ := c.Claim(ctx, id)
	now = now.Add(DefaultFillLockTTL - time.Millisecond)
	if _, claim, _ := c.Claim(ctx, id); claim != docstore.NoClaim {
		t.Fatal("a fill lock was taken while another was held")
	}
	now = now.Add(time.Millisecond)
	_, next, _ := c.Claim(ctx, id)
	if next == docstore.NoClaim || next == stale {
		t.Fatalf("after the lock's TTL: claim %q (the stale one %q), want a new claim", next, stale)
	}
	c.Fill(ctx, id, stale, &docstore.CachedDocument{Body: []byte("stale")})
	if got, _ := c.Get(ctx, id); got != nil {
		t.Fatal("the expired holder's fill was stored")
	}
}
