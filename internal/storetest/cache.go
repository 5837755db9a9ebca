package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// TestCache runs the Cache contract against the caches newCache returns,
// each with entries living ttl. The TTL checks use TTLs of one and two
// seconds (Redis counts them in whole seconds with EX) and run in parallel,
// so the suite takes about three seconds.
func TestCache(t *testing.T, newCache func(t *testing.T, ttl time.Duration) docstore.Cache) {
	const longTTL = time.Minute

	t.Run("MissIsNilNil", func(t *testing.T) {
		c := newCache(t, longTTL)
		doc, err := c.Get(t.Context(), docstore.NewID())
		if err != nil || doc != nil {
			t.Fatalf("Get of a missing entry: got (%v, %v), want (nil, nil)", doc, err)
		}
	})

	t.Run("SetGetRoundTrip", func(t *testing.T) {
		c := newCache(t, longTTL)
		for _, size := range []int{0, 1, 70_000} {
			id := docstore.NewID()
			want := sampleCached(t, size)
			mustSetCached(t, c, id, want)
			assertCached(t, fmt.Sprintf("Get of a %d-byte entry", size), mustGetCached(t, c, id), want)
		}
	})

	t.Run("SetReplaces", func(t *testing.T) {
		c := newCache(t, longTTL)
		id := docstore.NewID()
		mustSetCached(t, c, id, sampleCached(t, 500))
		second := sampleCached(t, 20)
		second.Filename = "second.txt"
		mustSetCached(t, c, id, second)
		assertCached(t, "Get after a second Set", mustGetCached(t, c, id), second)
	})

	t.Run("EntryIndependentOfCallerBuffers", func(t *testing.T) {
		c := newCache(t, longTTL)
		id := docstore.NewID()
		doc := sampleCached(t, 100)
		want := *doc
		want.Body = bytes.Clone(doc.Body)
		mustSetCached(t, c, id, doc)
		doc.Body[0] ^= 0xff // the caller reuses its buffer
		doc.Filename = "changed"
		got := mustGetCached(t, c, id)
		assertCached(t, "Get after the caller changed what it Set", got, &want)
		// What Get returns is read-only by contract (an in-process cache
		// hands out its own entry, as a memory-speed hit should).
	})

	t.Run("Delete", func(t *testing.T) {
		c := newCache(t, longTTL)
		id := docstore.NewID()
		mustSetCached(t, c, id, sampleCached(t, 10))
		if err := c.Delete(t.Context(), id); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if doc, err := c.Get(t.Context(), id); err != nil || doc != nil {
			t.Fatalf("Get after Delete: got (%v, %v), want (nil, nil)", doc, err)
		}
		if err := c.Delete(t.Context(), id); err != nil {
			t.Fatalf("second Delete: %v", err)
		}
		if err := c.Delete(t.Context(), docstore.NewID()); err != nil {
			t.Fatalf("Delete of an entry that never existed: %v", err)
		}
	})

	t.Run("SetAfterDeleteIsNotVisible", func(t *testing.T) {
		// A fill that read the origin before a delete writes after it: the
		// delete must win, whichever instance deletes and whichever fills.
		c := newCache(t, longTTL)
		id := docstore.NewID()
		mustSetCached(t, c, id, sampleCached(t, 10))
		if err := c.Delete(t.Context(), id); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		late := sampleCached(t, 10)
		if err := c.Set(t.Context(), id, late); err != nil {
			t.Fatalf("Set after Delete: %v, want nil (refused quietly)", err)
		}
		for i, c := range []docstore.Cache{c, newCache(t, longTTL)} {
			if doc, err := c.Get(t.Context(), id); err != nil || doc != nil {
				t.Fatalf("Get (cache %d) after a Set that came after Delete: got (%v, %v), want (nil, nil)", i, doc, err)
			}
		}
		// Never cached before the delete: the same.
		never := docstore.NewID()
		if err := c.Delete(t.Context(), never); err != nil {
			t.Fatalf("Delete of an entry that never existed: %v", err)
		}
		if err := c.Set(t.Context(), never, late); err != nil {
			t.Fatalf("Set after Delete: %v", err)
		}
		if doc, err := c.Get(t.Context(), never); err != nil || doc != nil {
			t.Fatalf("Get after Delete then Set of an id never cached: got (%v, %v), want (nil, nil)", doc, err)
		}
		// Other ids are untouched.
		other := docstore.NewID()
		want := sampleCached(t, 10)
		mustSetCached(t, c, other, want)
		assertCached(t, "Get of another id", mustGetCached(t, c, other), want)
	})

	t.Run("TTLExpiry", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, time.Second)
		id := docstore.NewID()
		mustSetCached(t, c, id, sampleCached(t, 10))
		time.Sleep(2100 * time.Millisecond)
		if doc, err := c.Get(t.Context(), id); err != nil || doc != nil {
			t.Fatalf("Get 2.1s after a Set with a 1s TTL: got (%v, %v), want (nil, nil)", doc, err)
		}
	})

	t.Run("GetSlidesTTL", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, 2*time.Second)
		id := docstore.NewID()
		want := sampleCached(t, 10)
		mustSetCached(t, c, id, want)
		time.Sleep(1200 * time.Millisecond)
		assertCached(t, "Get 1.2s after a Set with a 2s TTL", mustGetCached(t, c, id), want)
		// Without the slide the entry would have expired at 2.0s.
		time.Sleep(1300 * time.Millisecond)
		assertCached(t, "Get 2.5s after the Set, 1.3s after a hit", mustGetCached(t, c, id), want)
	})
}

func sampleCached(t *testing.T, size int) *docstore.CachedDocument {
	body := randomBytes(t, size)
	return &docstore.CachedDocument{Tenant: randomTenant(), Descriptor: docstore.Descriptor{Filename: "Relevé « 2024 » \"final\".pdf", ContentType: "application/pdf; charset=binary", Size: int64(size), SHA256: fmt.Sprintf("%x", body[:min(size, 32)]) + "00"}, Body: body}
}

func mustSetCached(t *testing.T, c docstore.Cache, id docstore.ID, doc *docstore.CachedDocument) {
	t.Helper()
	if err := c.Set(t.Context(), id, doc); err != nil {
		t.Fatalf("Set %s: %v", id, err)
	}
	t.Cleanup(func() { c.Delete(context.Background(), id) })
}

func mustGetCached(t *testing.T, c docstore.Cache, id docstore.ID) *docstore.CachedDocument {
	t.Helper()
	doc, err := c.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	if doc == nil {
		t.Fatalf("Get %s: a miss, want a hit", id)
	}
	return doc
}

func assertCached(t *testing.T, what string, got, want *docstore.CachedDocument) {
	t.Helper()
	if got.Tenant != want.Tenant || got.Filename != want.Filename || got.ContentType != want.ContentType ||
		got.Size != want.Size || got.SHA256 != want.SHA256 || !bytes.Equal(got.Body, want.Body) {
		t.Fatalf("%s: got {tenant %q, filename %q, content type %q, size %d, sha256 %q, %d body bytes}, "+
			"want {tenant %q, filename %q, content type %q, size %d, sha256 %q, %d body bytes} (bodies equal: %v)",
			what, got.Tenant, got.Filename, got.ContentType, got.Size, got.SHA256, len(got.Body),
			want.Tenant, want.Filename, want.ContentType, want.Size, want.SHA256, len(want.Body), bytes.Equal(got.Body, want.Body))
	}
}
