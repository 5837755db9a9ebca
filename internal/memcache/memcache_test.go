package memcache_test

import (
	"context"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/memcache"
	"github.com/imagodocs/imago/internal/storetest"
)

func TestMemCache_Contract(t *testing.T) {
	storetest.TestCache(t, func(t *testing.T, ttl time.Duration) docstore.Cache {
		return memcache.New(ttl, 64<<20)
	})
}

func TestMemCache_EvictsLeastRecentlyUsedOverBudget(t *testing.T) {
	ctx := context.Background()
	c := memcache.New(time.Hour, 250)
	ids := []docstore.ID{docstore.NewID(), docstore.NewID(), docstore.NewID()}
	for _, id := range ids[:2] {
		c.Set(ctx, id, &docstore.CachedDocument{Body: make([]byte, 100)})
	}
	c.Get(ctx, ids[0]) // ids[1] is now the least recently used
	c.Set(ctx, ids[2], &docstore.CachedDocument{Body: make([]byte, 100)})
	for i, want := range []bool{true, false, true} {
		got, _ := c.Get(ctx, ids[i])
		if (got != nil) != want {
			t.Fatalf("entry %d cached = %v, want %v", i, got != nil, want)
		}
	}
	big := docstore.NewID()
	c.Set(ctx, big, &docstore.CachedDocument{Body: make([]byte, 251)})
	if got, _ := c.Get(ctx, big); got != nil {
		t.Fatal("an entry larger than the whole cache was stored")
	}
}
