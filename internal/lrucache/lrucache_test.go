package lrucache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/lrucache"
	"github.com/imagodocs/imago/internal/storetest"
)

func TestLRUCache_Contract(t *testing.T) {
	storetest.TestCache(t, func(t *testing.T, ttl time.Duration) docstore.Cache {
		return lrucache.New(ttl, 64<<20)
	})
}

// The claims contract wants every cache of one test to share one backend:
// in a process that is one Cache, which the requests of `imago serve`
// share.
func TestLRUCache_ClaimsContract(t *testing.T) {
	var mu sync.Mutex
	shared := map[*testing.T]*lrucache.Cache{}
	cacheOf := func(t *testing.T, lockTTL time.Duration) *lrucache.Cache {
		mu.Lock()
		defer mu.Unlock()
		if c, ok := shared[t]; ok {
			return c
		}
		c := lrucache.NewWithFillLockTTL(time.Minute, 64<<20, lockTTL)
		shared[t] = c
		t.Cleanup(func() { mu.Lock(); delete(shared, t); mu.Unlock() })
		return c
	}
	storetest.TestCacheClaims(t,
		func(t *testing.T, lockTTL time.Duration) docstore.Cache { return cacheOf(t, lockTTL) },
		func(t *testing.T, _ docstore.ID) { lrucache.LoseState(cacheOf(t, 0)) })
}

// fill makes doc the entry of id through a claim, as the Service does.
func fill(t *testing.T, c *lrucache.Cache, id docstore.ID, doc *docstore.CachedDocument) {
	t.Helper()
	ctx := context.Background()
	_, claim, err := c.Claim(ctx, id)
	if err != nil || claim == docstore.NoClaim {
		t.Fatalf("Claim: (%q, %v)", claim, err)
	}
	if err := c.Fill(ctx, id, claim, doc); err != nil {
		t.Fatal(err)
	}
}

func TestLRUCache_EvictsLeastRecentlyUsedOverBudget(t *testing.T) {
	ctx := context.Background()
	c := lrucache.New(time.Hour, 250)
	ids := []docstore.ID{docstore.NewID(), docstore.NewID(), docstore.NewID()}
	for _, id := range ids[:2] {
		fill(t, c, id, &docstore.CachedDocument{Body: make([]byte, 100)})
	}
	c.Get(ctx, ids[0]) // ids[1] is now the least recently used
	fill(t, c, ids[2], &docstore.CachedDocument{Body: make([]byte, 100)})
	for i, want := range []bool{true, false, true} {
		got, _ := c.Get(ctx, ids[i])
		if (got != nil) != want {
			t.Fatalf("entry %d cached = %v, want %v", i, got != nil, want)
		}
	}
	big := docstore.NewID()
	fill(t, c, big, &docstore.CachedDocument{Body: make([]byte, 251)})
	if got, _ := c.Get(ctx, big); got != nil {
		t.Fatal("an entry larger than the whole cache was stored")
	}
	// The refused fill freed its lock.
	if _, claim, _ := c.Claim(ctx, big); claim == docstore.NoClaim {
		t.Fatal("a fill refused for its size kept the fill lock")
	}
}
