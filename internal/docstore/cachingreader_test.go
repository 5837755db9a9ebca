package docstore

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSharedCache is an in-process Cache with a fill lock, for the logic of
// the caching reader; storetest proves the real ones.
type fakeSharedCache struct {
	mu      sync.Mutex
	entries map[ID]*CachedDocument
	locked  map[ID]bool
	lockErr error
	// onContended runs when TryLock finds the lock held.
	onContended func()
}

func newFakeSharedCache() *fakeSharedCache {
	return &fakeSharedCache{entries: map[ID]*CachedDocument{}, locked: map[ID]bool{}}
}

func (c *fakeSharedCache) Get(_ context.Context, id ID) (*CachedDocument, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[id], nil
}

func (c *fakeSharedCache) Set(_ context.Context, id ID, doc *CachedDocument) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[id] = doc
	return nil
}

func (c *fakeSharedCache) Delete(_ context.Context, id ID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
	return nil
}

func (c *fakeSharedCache) TryLock(_ context.Context, id ID) (func(), bool, error) {
	c.mu.Lock()
	if c.lockErr != nil {
		c.mu.Unlock()
		return nil, false, c.lockErr
	}
	if c.locked[id] {
		hook := c.onContended
		c.mu.Unlock()
		if hook != nil {
			hook()
		}
		return nil, false, nil
	}
	c.locked[id] = true
	c.mu.Unlock()
	return func() { c.mu.Lock(); delete(c.locked, id); c.mu.Unlock() }, true, nil
}

var _ FillLocker = (*fakeSharedCache)(nil)

// countingOrigin is an origin that serves one body and counts its reads.
type countingOrigin struct {
	body  []byte
	reads atomic.Int64
}

func (o *countingOrigin) read(_ context.Context, _ Record, r ByteRange) ([]byte, error) {
	o.reads.Add(1)
	return o.body[r.Start : r.Start+r.Length], nil
}

func testReader(cache Cache, o *countingOrigin, fillWait time.Duration) *cachingReader {
	return newCachingReader(cache, o.read, Config{CacheMaxBytes: 1 << 20, FillWait: fillWait, FillPoll: time.Millisecond}, slog.New(slog.DiscardHandler))
}

func testRecord(body []byte) Record {
	return Record{Document: Document{ID: NewID(), Descriptor: Descriptor{Size: int64(len(body)), SHA256: "x"}}, Tenant: "t"}
}

func TestCachingReader_HolderFillsWaiterReadsTheEntry(t *testing.T) {
	cache := newFakeSharedCache()
	o := &countingOrigin{body: []byte("the document")}
	cr := testReader(cache, o, time.Hour)
	rec := testRecord(o.body)
	release, _, _ := cache.TryLock(context.Background(), rec.ID) // another instance loads
	filled := make(chan struct{})
	cache.onContended = func() {
		select {
		case <-filled:
		default:
			close(filled)
			cache.Set(context.Background(), rec.ID, &CachedDocument{Tenant: "t", Descriptor: Descriptor{Size: rec.Size}, Body: []byte("from the holder")})
			release()
		}
	}
	ctx, rs := WithRequestStats(context.Background())
	got, err := cr.readWhole(ctx, rec, time.Now().Add(FillDeadline))
	if err != nil || string(got) != "from the holder" {
		t.Fatalf("readWhole = %q, %v; want the holder's entry", got, err)
	}
	if n := o.reads.Load(); n != 0 {
		t.Errorf("%d origin reads; the holder's fill should have been used", n)
	}
	if rs.LockWaits.Load() != 1 || rs.Fills.Load() != 0 {
		t.Errorf("lock waits %d, fills %d; want 1, 0", rs.LockWaits.Load(), rs.Fills.Load())
	}
}

func TestCachingReader_WaiterTakesOverAnAbandonedLock(t *testing.T) {
	cache := newFakeSharedCache()
	o := &countingOrigin{body: []byte("the document")}
	cr := testReader(cache, o, time.Hour) // finishes only if the waiter does not sit out FillWait
	rec := testRecord(o.body)
	release, _, _ := cache.TryLock(context.Background(), rec.ID)
	var once sync.Once
	cache.onContended = func() { once.Do(release) } // the holder gives up without filling
	got, err := cr.readWhole(context.Background(), rec, time.Now().Add(FillDeadline))
	if err != nil || string(got) != "the document" {
		t.Fatalf("readWhole = %q, %v", got, err)
	}
	if n := o.reads.Load(); n != 1 {
		t.Errorf("%d origin reads, want 1", n)
	}
	if doc, _ := cache.Get(context.Background(), rec.ID); doc == nil || string(doc.Body) != "the document" {
		t.Errorf("the waiter did not fill the cache: %v", doc)
	}
	if cache.locked[rec.ID] {
		t.Error("the waiter kept the fill lock")
	}
}

func TestCachingReader_WaitIsBoundedByFillWait(t *testing.T) {
	cache := newFakeSharedCache()
	o := &countingOrigin{body: []byte("the document")}
	cr := testReader(cache, o, 20*time.Millisecond)
	rec := testRecord(o.body)
	cache.TryLock(context.Background(), rec.ID) // held for good by a stuck instance
	got, err := cr.readWhole(context.Background(), rec, time.Now().Add(FillDeadline))
	if err != nil || string(got) != "the document" || o.reads.Load() != 1 {
		t.Fatalf("readWhole = %q, %v after %d reads; want the origin's bytes after one read", got, err, o.reads.Load())
	}
}

func TestCachingReader_LockErrorLoadsTheOrigin(t *testing.T) {
	cache := newFakeSharedCache()
	cache.lockErr = errors.New("connection refused")
	o := &countingOrigin{body: []byte("the document")}
	cr := testReader(cache, o, time.Hour)
	ctx, rs := WithRequestStats(context.Background())
	got, err := cr.readWhole(ctx, testRecord(o.body), time.Now().Add(FillDeadline))
	if err != nil || string(got) != "the document" {
		t.Fatalf("readWhole = %q, %v", got, err)
	}
	if rs.CacheErrors.Load() != 1 || rs.Fills.Load() != 1 {
		t.Errorf("cache errors %d, fills %d; want 1, 1", rs.CacheErrors.Load(), rs.Fills.Load())
	}
}

func TestCachingReader_EntryFilledBeforeTheLockIsUsed(t *testing.T) {
	cache := newFakeSharedCache()
	o := &countingOrigin{body: []byte("the document")}
	cr := testReader(cache, o, time.Hour)
	rec := testRecord(o.body)
	cache.Set(context.Background(), rec.ID, &CachedDocument{Tenant: "t", Body: []byte("filled meanwhile")})
	got, _ := cr.readWhole(context.Background(), rec, time.Now().Add(FillDeadline))
	if string(got) != "filled meanwhile" || o.reads.Load() != 0 {
		t.Fatalf("readWhole = %q after %d origin reads; want the entry found under the lock", got, o.reads.Load())
	}
	// An entry of another tenant under the same id is never served.
	other := testRecord(o.body)
	cache.Set(context.Background(), other.ID, &CachedDocument{Tenant: "someone else", Body: []byte("not yours")})
	got, _ = cr.readWhole(context.Background(), other, time.Now().Add(FillDeadline))
	if string(got) != "the document" {
		t.Fatalf("readWhole = %q; want the origin's bytes, not another tenant's entry", got)
	}
}

func TestCachingReader_FillPastItsDeadlineIsDropped(t *testing.T) {
	cache := newFakeSharedCache()
	o := &countingOrigin{body: []byte("the document")}
	cr := testReader(cache, o, time.Hour)
	rec := testRecord(o.body)
	if _, err := cr.readWhole(context.Background(), rec, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if doc, _ := cache.Get(context.Background(), rec.ID); doc != nil {
		t.Error("a fill whose deadline had passed was stored")
	}
}
