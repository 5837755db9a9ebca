package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// TestCache runs the Cache contract's entries against the caches newCache
// returns, each with entries living ttl (TestCacheClaims is the contract of
// the fill lock). The TTL checks use TTLs of one and two seconds and run in
// parallel, so the suite takes about three seconds.
func TestCache(t *testing.T, newCache func(t *testing.T, ttl time.Duration) docstore.Cache) {
	const longTTL = time.Minute

	t.Run("MissIsNilNil", func(t *testing.T) {
		c := newCache(t, longTTL)
		doc, err := c.Get(t.Context(), docstore.NewID())
		if err != nil || doc != nil {
			t.Fatalf("Get of a missing entry: got (%v, %v), want (nil, nil)", doc, err)
		}
	})

	t.Run("FillGetRoundTrip", func(t *testing.T) {
		c := newCache(t, longTTL)
		for _, size := range []int{0, 1, 70_000} {
			id := docstore.NewID()
			want := sampleCached(t, size)
			mustFillCached(t, c, id, want)
			assertCached(t, fmt.Sprintf("Get of a %d-byte entry", size), mustGetCached(t, c, id), want)
			doc, claim, err := c.Claim(t.Context(), id)
			if err != nil || claim != docstore.NoClaim || doc == nil {
				t.Fatalf("Claim of a %d-byte entry: (entry %v, claim %q, %v), want the entry and no claim", size, doc != nil, claim, err)
			}
			assertCached(t, fmt.Sprintf("Claim of a %d-byte entry", size), doc, want)
		}
	})

	t.Run("EntryIndependentOfCallerBuffers", func(t *testing.T) {
		c := newCache(t, longTTL)
		id := docstore.NewID()
		doc := sampleCached(t, 100)
		want := *doc
		want.Body = bytes.Clone(doc.Body)
		mustFillCached(t, c, id, doc)
		doc.Body[0] ^= 0xff // the caller reuses its buffer
		doc.Filename = "changed"
		got := mustGetCached(t, c, id)
		assertCached(t, "Get after the caller changed what it filled", got, &want)
		// What Get returns is read-only by contract (an in-process cache
		// hands out its own entry, as a memory-speed hit should).
	})

	t.Run("Delete", func(t *testing.T) {
		c := newCache(t, longTTL)
		id := docstore.NewID()
		mustFillCached(t, c, id, sampleCached(t, 10))
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

	t.Run("FillAfterDeleteIsNotVisible", func(t *testing.T) {
		// A fill that claimed and read the origin before a delete writes
		// after it: the delete must win, whichever instance deletes and
		// whichever fills.
		c := newCache(t, longTTL)
		for _, cached := range []bool{true, false} {
			id := docstore.NewID()
			if cached {
				mustFillCached(t, c, id, sampleCached(t, 10))
				if err := c.Delete(t.Context(), id); err != nil {
					t.Fatalf("Delete: %v", err)
				}
			}
			claim := mustClaim(t, c, "a miss before the Delete", id)
			if err := c.Delete(t.Context(), id); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if err := c.Fill(t.Context(), id, claim, sampleCached(t, 10)); err != nil {
				t.Fatalf("Fill after Delete: %v, want nil (refused quietly)", err)
			}
			for i, c := range []docstore.Cache{c, newCache(t, longTTL)} {
				if doc, err := c.Get(t.Context(), id); err != nil || doc != nil {
					t.Fatalf("Get (cache %d, cached before: %v) after a Fill that came after Delete: got (%v, %v), want (nil, nil)", i, cached, doc, err)
				}
			}
		}
		// Other ids are untouched.
		other := docstore.NewID()
		want := sampleCached(t, 10)
		mustFillCached(t, c, other, want)
		assertCached(t, "Get of another id", mustGetCached(t, c, other), want)
	})

	t.Run("TTLExpiry", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, time.Second)
		id := docstore.NewID()
		mustFillCached(t, c, id, sampleCached(t, 10))
		time.Sleep(2100 * time.Millisecond)
		if doc, err := c.Get(t.Context(), id); err != nil || doc != nil {
			t.Fatalf("Get 2.1s after a Fill with a 1s TTL: got (%v, %v), want (nil, nil)", doc, err)
		}
	})

	// A hit slides the TTL, whether it comes from Get (a range) or from
	// Claim (a whole document).
	for name, hit := range map[string]func(ctx context.Context, c docstore.Cache, id docstore.ID) (*docstore.CachedDocument, error){
		"GetSlidesTTL": func(ctx context.Context, c docstore.Cache, id docstore.ID) (*docstore.CachedDocument, error) {
			return c.Get(ctx, id)
		},
		"ClaimSlidesTTL": func(ctx context.Context, c docstore.Cache, id docstore.ID) (*docstore.CachedDocument, error) {
			doc, _, err := c.Claim(ctx, id)
			return doc, err
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := newCache(t, 2*time.Second)
			id := docstore.NewID()
			want := sampleCached(t, 10)
			mustFillCached(t, c, id, want)
			time.Sleep(1200 * time.Millisecond)
			got, err := hit(t.Context(), c, id)
			if err != nil || got == nil {
				t.Fatalf("a hit 1.2s after a Fill with a 2s TTL: (%v, %v)", got, err)
			}
			assertCached(t, "a hit 1.2s after a Fill with a 2s TTL", got, want)
			// Without the slide the entry would have expired at 2.0s.
			time.Sleep(1300 * time.Millisecond)
			assertCached(t, "Get 2.5s after the Fill, 1.3s after a hit", mustGetCached(t, c, id), want)
		})
	}
}

func sampleCached(t *testing.T, size int) *docstore.CachedDocument {
	body := randomBytes(t, size)
	return &docstore.CachedDocument{Tenant: randomTenant(), Descriptor: docstore.Descriptor{Filename: "Relevé « 2024 » \"final\".pdf", ContentType: "application/pdf; charset=binary", Size: int64(size), SHA256: fmt.Sprintf("%x", body[:min(size, 32)]) + "00"}, Body: body}
}

// mustFillCached makes doc the entry of id the only way there is: a miss's
// Claim, then Fill.
func mustFillCached(t *testing.T, c docstore.Cache, id docstore.ID, doc *docstore.CachedDocument) {
	t.Helper()
	claim := mustClaim(t, c, "the Claim before a Fill", id)
	if err := c.Fill(t.Context(), id, claim, doc); err != nil {
		t.Fatalf("Fill %s: %v", id, err)
	}
	t.Cleanup(func() { c.Delete(context.Background(), id) })
}

// mustClaim claims id, which must be a miss whose fill lock is free.
func mustClaim(t *testing.T, c docstore.Cache, what string, id docstore.ID) docstore.Claim {
	t.Helper()
	doc, claim, err := c.Claim(t.Context(), id)
	if err != nil || doc != nil || claim == docstore.NoClaim {
		t.Fatalf("%s: Claim = (entry %v, claim %q, %v), want the fill lock", what, doc != nil, claim, err)
	}
	return claim
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
