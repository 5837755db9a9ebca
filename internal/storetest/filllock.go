package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// TestFillLocker is the contract of fill locks. newLocker returns a locker
// whose locks live ttl unless released. Every locker it returns shares one
// backend, as the Lambda instances of one deployment share one Redis: a
// lock that one takes, the others see. The expiry checks use locks of a
// quarter of a second and run in parallel; they poll for the expiry (at
// most expiryBound), they do not time it.
func TestFillLocker(t *testing.T, newLocker func(t *testing.T, ttl time.Duration) docstore.FillLocker) {
	const (
		longTTL     = time.Minute
		shortTTL    = 250 * time.Millisecond
		expiryBound = 20 * time.Second
	)
	acquire := func(t *testing.T, l docstore.FillLocker, what string, id docstore.ID) func() {
		t.Helper()
		release, ok, err := l.TryLock(t.Context(), id)
		if err != nil || !ok || release == nil {
			t.Fatalf("%s: TryLock = (release %v, acquired %v, %v), want it acquired", what, release != nil, ok, err)
		}
		t.Cleanup(release)
		return release
	}
	contended := func(t *testing.T, l docstore.FillLocker, what string, id docstore.ID) {
		t.Helper()
		release, ok, err := l.TryLock(t.Context(), id)
		if err != nil || ok || release == nil {
			t.Fatalf("%s: TryLock = (release %v, acquired %v, %v), want it held elsewhere and a no-op release", what, release != nil, ok, err)
		}
		release() // a no-op: it must not free the holder's lock
	}
	// acquireAfterExpiry polls until the lock of id, never released by
	// its holder, can be taken.
	acquireAfterExpiry := func(t *testing.T, l docstore.FillLocker, id docstore.ID) func() {
		t.Helper()
		deadline := time.Now().Add(expiryBound)
		for {
			release, ok, err := l.TryLock(t.Context(), id)
			if err != nil {
				t.Fatalf("TryLock while waiting for the expiry: %v", err)
			}
			if ok {
				t.Cleanup(release)
				return release
			}
			if time.Now().After(deadline) {
				t.Fatalf("a lock of %v was still held after %v", shortTTL, expiryBound)
			}
			time.Sleep(shortTTL / 10)
		}
	}

	t.Run("OneHolderAtATime", func(t *testing.T) {
		a, b := newLocker(t, longTTL), newLocker(t, longTTL)
		id := docstore.NewID()
		acquire(t, a, "the first TryLock", id)
		contended(t, a, "a second TryLock of the same locker", id)
		contended(t, b, "a TryLock of another locker", id)
		contended(t, b, "a TryLock after a contended one's release", id)
	})

	t.Run("IdsAreIndependent", func(t *testing.T) {
		l := newLocker(t, longTTL)
		acquire(t, l, "the lock of one id", docstore.NewID())
		acquire(t, l, "the lock of another id", docstore.NewID())
	})

	t.Run("ReleaseFreesTheLock", func(t *testing.T) {
		a, b := newLocker(t, longTTL), newLocker(t, longTTL)
		id := docstore.NewID()
		acquire(t, a, "the first holder", id)()
		acquire(t, b, "another locker after the release", id)
	})

	t.Run("ASecondReleaseKeepsTheNextHoldersLock", func(t *testing.T) {
		a, b, c := newLocker(t, longTTL), newLocker(t, longTTL), newLocker(t, longTTL)
		id := docstore.NewID()
		release := acquire(t, a, "the first holder", id)
		release()
		acquire(t, b, "the next holder", id)
		release()
		contended(t, c, "a TryLock after the first holder released twice", id)
	})

	t.Run("ReleaseWorksAfterTheContextEnds", func(t *testing.T) {
		a, b := newLocker(t, longTTL), newLocker(t, longTTL)
		id := docstore.NewID()
		ctx, cancel := context.WithCancel(t.Context())
		release, ok, err := a.TryLock(ctx, id)
		if err != nil || !ok {
			t.Fatalf("TryLock: (acquired %v, %v)", ok, err)
		}
		t.Cleanup(release)
		cancel() // the request that took the lock is gone
		release()
		acquire(t, b, "another locker after a release with a cancelled context", id)
	})

	t.Run("AnUnreleasedLockExpires", func(t *testing.T) {
		t.Parallel()
		a, b := newLocker(t, shortTTL), newLocker(t, longTTL)
		id := docstore.NewID()
		acquire(t, a, "the holder that never releases", id)
		acquireAfterExpiry(t, b, id)
	})

	t.Run("AnExpiredHoldersReleaseKeepsTheNewLock", func(t *testing.T) {
		t.Parallel()
		a, b, c := newLocker(t, shortTTL), newLocker(t, longTTL), newLocker(t, longTTL)
		id := docstore.NewID()
		stale := acquire(t, a, "the holder whose lock expires", id)
		acquireAfterExpiry(t, b, id)
		stale() // the first holder, late, releases what it took
		contended(t, c, "a TryLock after a stale release", id)
	})
}
