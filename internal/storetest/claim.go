package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// TestCacheClaims is the contract of a Cache's fill claims: what keeps a
// deleted document deleted (see docstore.Cache). newCache returns a cache
// whose fill locks live lockTTL unless released; every cache it returns
// within one test shares one backend, as the Lambda instances of one
// deployment share one Redis: a lock that one takes, the others see. lose
// makes that backend lose every key of id (entry, fill lock, tombstone), as
// a restart, a failover or an eviction would; it must touch nothing else.
// The expiry checks use locks of a quarter of a second and run in parallel;
// they poll for the expiry (at most expiryBound), they do not time it.
func TestCacheClaims(t *testing.T, newCache func(t *testing.T, lockTTL time.Duration) docstore.Cache, lose func(t *testing.T, id docstore.ID)) {
	const (
		longTTL     = time.Minute
		shortTTL    = 250 * time.Millisecond
		expiryBound = 20 * time.Second
	)
	claim := func(t *testing.T, c docstore.Cache, what string, id docstore.ID) docstore.Claim {
		t.Helper()
		cl := mustClaim(t, c, what, id)
		t.Cleanup(func() { c.Release(context.Background(), id, cl) })
		return cl
	}
	contended := func(t *testing.T, c docstore.Cache, what string, id docstore.ID) {
		t.Helper()
		doc, cl, err := c.Claim(t.Context(), id)
		if err != nil || doc != nil || cl != docstore.NoClaim {
			t.Fatalf("%s: Claim = (entry %v, claim %q, %v), want the lock held elsewhere", what, doc != nil, cl, err)
		}
		// Releasing no claim is a no-op: it must not free the holder's lock.
		if err := c.Release(t.Context(), id, cl); err != nil {
			t.Fatalf("%s: Release of no claim: %v", what, err)
		}
	}
	// claimAfterExpiry polls until the lock of id, never released by its
	// holder, can be taken.
	claimAfterExpiry := func(t *testing.T, c docstore.Cache, id docstore.ID) docstore.Claim {
		t.Helper()
		deadline := time.Now().Add(expiryBound)
		for {
			doc, cl, err := c.Claim(t.Context(), id)
			if err != nil || doc != nil {
				t.Fatalf("Claim while waiting for the expiry: (entry %v, %v)", doc != nil, err)
			}
			if cl != docstore.NoClaim {
				t.Cleanup(func() { c.Release(context.Background(), id, cl) })
				return cl
			}
			if time.Now().After(deadline) {
				t.Fatalf("a lock of %v was still held after %v", shortTTL, expiryBound)
			}
			time.Sleep(shortTTL / 10)
		}
	}
	fill := func(t *testing.T, c docstore.Cache, what string, id docstore.ID, cl docstore.Claim) *docstore.CachedDocument {
		t.Helper()
		doc := sampleCached(t, 100)
		if err := c.Fill(t.Context(), id, cl, doc); err != nil {
			t.Fatalf("%s: Fill: %v", what, err)
		}
		t.Cleanup(func() { c.Delete(context.Background(), id) })
		return doc
	}
	refused := func(t *testing.T, what string, id docstore.ID, caches ...docstore.Cache) {
		t.Helper()
		for i, c := range caches {
			if doc, err := c.Get(t.Context(), id); err != nil || doc != nil {
				t.Fatalf("%s: Get (cache %d) = (entry %v, %v), want no entry: the fill was not refused", what, i, doc != nil, err)
			}
		}
	}

	t.Run("OneHolderAtATime", func(t *testing.T) {
		a, b := newCache(t, longTTL), newCache(t, longTTL)
		id := docstore.NewID()
		claim(t, a, "the first Claim", id)
		contended(t, a, "a second Claim of the same cache", id)
		contended(t, b, "a Claim of another cache", id)
		contended(t, b, "a Claim after a contended one's release", id)
	})

	t.Run("IdsAreIndependent", func(t *testing.T) {
		c := newCache(t, longTTL)
		claim(t, c, "the claim of one id", docstore.NewID())
		claim(t, c, "the claim of another id", docstore.NewID())
	})

	t.Run("FillWithTheClaimStoresAndFreesIt", func(t *testing.T) {
		a, b := newCache(t, longTTL), newCache(t, longTTL)
		id := docstore.NewID()
		want := fill(t, a, "the holder", id, claim(t, a, "the holder", id))
		assertCached(t, "Get from another cache after the holder's Fill", mustGetCached(t, b, id), want)
	})

	t.Run("ReleaseFreesTheClaim", func(t *testing.T) {
		a, b := newCache(t, longTTL), newCache(t, longTTL)
		id := docstore.NewID()
		if err := a.Release(t.Context(), id, claim(t, a, "the first holder", id)); err != nil {
			t.Fatalf("Release: %v", err)
		}
		claim(t, b, "another cache after the release", id)
	})

	t.Run("AStaleReleaseKeepsTheNextHoldersClaim", func(t *testing.T) {
		a, b, c := newCache(t, longTTL), newCache(t, longTTL), newCache(t, longTTL)
		id := docstore.NewID()
		first := claim(t, a, "the first holder", id)
		a.Release(t.Context(), id, first)
		next := claim(t, b, "the next holder", id)
		if err := a.Release(t.Context(), id, first); err != nil {
			t.Fatalf("a second Release: %v", err)
		}
		contended(t, c, "a Claim after the first holder released twice", id)
		fill(t, b, "the next holder", id, next)
		mustGetCached(t, c, id)
	})

	t.Run("ReleaseWorksOnceTheRequestIsGone", func(t *testing.T) {
		a, b := newCache(t, longTTL), newCache(t, longTTL)
		id := docstore.NewID()
		ctx, cancel := context.WithCancel(t.Context())
		_, cl, err := a.Claim(ctx, id)
		if err != nil || cl == docstore.NoClaim {
			t.Fatalf("Claim: (claim %q, %v)", cl, err)
		}
		t.Cleanup(func() { a.Release(context.Background(), id, cl) })
		cancel() // the request that claimed is gone; the Service detaches the release
		if err := a.Release(context.WithoutCancel(ctx), id, cl); err != nil {
			t.Fatalf("Release on a context detached from a cancelled one: %v", err)
		}
		claim(t, b, "another cache after that release", id)
	})

	t.Run("AFillWithoutTheClaimIsRefused", func(t *testing.T) {
		a, b := newCache(t, longTTL), newCache(t, longTTL)
		id := docstore.NewID()
		held := claim(t, a, "the holder", id)
		for _, forged := range []docstore.Claim{docstore.NoClaim, "not-a-claim", held + "x"} {
			if err := b.Fill(t.Context(), id, forged, sampleCached(t, 10)); err != nil {
				t.Fatalf("Fill with the claim %q: %v, want nil (refused quietly)", forged, err)
			}
			refused(t, "a Fill with a claim nobody holds", id, a, b)
		}
		fill(t, a, "the holder, after the refused fills", id, held)
		mustGetCached(t, b, id)
	})

	t.Run("AFillAfterDeleteIsRefused", func(t *testing.T) {
		a, b := newCache(t, longTTL), newCache(t, longTTL)
		for _, tombstoneLost := range []bool{false, true} {
			id := docstore.NewID()
			cl := claim(t, a, "a miss before the Delete", id)
			if err := b.Delete(t.Context(), id); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if tombstoneLost {
				lose(t, id) // the tombstone is what a delete leaves: gone too
			}
			if err := a.Fill(t.Context(), id, cl, sampleCached(t, 10)); err != nil {
				t.Fatalf("Fill after Delete: %v, want nil (refused quietly)", err)
			}
			refused(t, "a Fill whose claim came before a Delete", id, a, b)
		}
	})

	t.Run("AFillWithALostLockIsRefused", func(t *testing.T) {
		// The cache loses its state (a restart, a failover, an eviction)
		// between the claim and the fill: the fill must not land.
		a, b := newCache(t, longTTL), newCache(t, longTTL)
		id := docstore.NewID()
		cl := claim(t, a, "the holder", id)
		lose(t, id)
		if err := a.Fill(t.Context(), id, cl, sampleCached(t, 10)); err != nil {
			t.Fatalf("Fill after the lock was lost: %v, want nil (refused quietly)", err)
		}
		refused(t, "a Fill whose lock the cache lost", id, a, b)
	})

	t.Run("AFillAfterAnotherHolderTookTheLockIsRefused", func(t *testing.T) {
		a, b, c := newCache(t, longTTL), newCache(t, longTTL), newCache(t, longTTL)
		id := docstore.NewID()
		stale := claim(t, a, "the first holder", id)
		lose(t, id) // its lock is gone, as if expired
		next := claim(t, b, "the next holder", id)
		if err := a.Fill(t.Context(), id, stale, sampleCached(t, 10)); err != nil {
			t.Fatalf("the first holder's Fill: %v, want nil (refused quietly)", err)
		}
		refused(t, "a Fill whose lock another holder took", id, a, b, c)
		a.Release(t.Context(), id, stale) // late, and harmless
		contended(t, c, "a Claim after the first holder's stale fill and release", id)
		fill(t, b, "the next holder", id, next)
		mustGetCached(t, c, id)
	})

	t.Run("ALateFillIsRefusedAndFreesTheClaim", func(t *testing.T) {
		a, b := newCache(t, longTTL), newCache(t, longTTL)
		id := docstore.NewID()
		cl := claim(t, a, "the holder", id)
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Millisecond))
		defer cancel()
		if err := a.Fill(ctx, id, cl, sampleCached(t, 10)); err != nil {
			t.Fatalf("Fill past its deadline: %v, want nil (refused quietly)", err)
		}
		refused(t, "a Fill past its deadline", id, a, b)
		claim(t, b, "another cache after the late fill", id)
	})

	t.Run("AnUnreleasedClaimExpires", func(t *testing.T) {
		t.Parallel()
		a, b := newCache(t, shortTTL), newCache(t, shortTTL)
		id := docstore.NewID()
		claim(t, a, "the holder that never releases", id)
		claimAfterExpiry(t, b, id)
	})

	t.Run("AnExpiredHoldersFillIsRefused", func(t *testing.T) {
		t.Parallel()
		a, b := newCache(t, shortTTL), newCache(t, shortTTL)
		id := docstore.NewID()
		stale := claim(t, a, "the holder whose lock expires", id)
		claimAfterExpiry(t, b, id)
		if err := a.Fill(t.Context(), id, stale, sampleCached(t, 10)); err != nil {
			t.Fatalf("Fill of an expired claim: %v, want nil (refused quietly)", err)
		}
		refused(t, "a Fill whose lock expired and was taken", id, a, b)
	})
}
