package docstore

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSharedCache is an in-process Cache keeping the claim protocol, for
// the logic of the caching reader; storetest proves the real ones.
type fakeSharedCache struct {
	mu       sync.Mutex
	entries  map[ID]*CachedDocument
	locks    map[ID]Claim
	tokens   int
	claimErr error
	// refuseFills makes Fill store nothing (it still releases the lock).
	refuseFills bool
	// onContended runs when Claim finds the lock held.
	onContended func()
}

func newFakeSharedCache() *fakeSharedCache {
	return &fakeSharedCache{entries: map[ID]*CachedDocument{}, locks: map[ID]Claim{}}
}

func (c *fakeSharedCache) Get(_ context.Context, id ID) (*CachedDocument, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[id], nil
}

func (c *fakeSharedCache) Claim(_ context.Context, id ID) (*CachedDocument, Claim, error) {
	c.mu.Lock()
	if c.claimErr != nil {
		c.mu.Unlock()
		return nil, NoClaim, c.claimErr
	}
	if doc := c.entries[id]; doc != nil {
		c.mu.Unlock()
		return doc, NoClaim, nil
	}
	if _, held := c.locks[id]; held {
		hook := c.onContended
		c.mu.Unlock()
		if hook != nil {
			hook()
		}
		return nil, NoClaim, nil
	}
	c.tokens++
	claim := Claim(strconv.Itoa(c.tokens))
	c.locks[id] = claim
	c.mu.Unlock()
	return nil, claim, nil
}

func (c *fakeSharedCache) Fill(ctx context.Context, id ID, claim Claim, doc *CachedDocument) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locks[id] != claim || claim == NoClaim {
		return nil
	}
	delete(c.locks, id)
	if ctx.Err() == nil && !c.refuseFills {
		c.entries[id] = doc
	}
	return nil
}

func (c *fakeSharedCache) Release(_ context.Context, id ID, claim Claim) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locks[id] == claim {
		delete(c.locks, id)
	}
	return nil
}

func (c *fakeSharedCache) Delete(_ context.Context, id ID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
	delete(c.locks, id)
	return nil
}

func (c *fakeSharedCache) held(id ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.locks[id]
	return ok
}

// countingOrigin is an origin that serves one body and counts its reads.
type countingOrigin struct {
	body  []byte
	reads atomic.Int64
}

func (o *countingOrigin) read(_ context.Context, _ Record, r ByteRange, _ *prefetch) ([]byte, error) {
	o.reads.Add(1)
	return o.body[r.Start : r.Start+r.Length], nil
}

// testReader is a caching reader whose record reads answer rec (or err).
func testReader(cache Cache, o *countingOrigin, fillWait time.Duration, rec Record, recErr error) *cachingReader {
	record := func(context.Context, ID) (Record, error) { return rec, recErr }
	return newCachingReader(cache, record, o.read, nil, Config{CacheMaxBytes: 1 << 20, FillWait: fillWait, FillPoll: time.Millisecond}, slog.New(slog.DiscardHandler))
}

func testRecord(body []byte) Record {
	return Record{Document: Document{ID: NewID(), Status: StatusAvailable, Descriptor: Descriptor{Size: int64(len(body)), SHA256: "x"}}, Tenant: "t"}
}

// claimOf takes the claim of id as another instance's miss would.
func claimOf(t *testing.T, c Cache, id ID) Claim {
	t.Helper()
	_, claim, err := c.Claim(context.Background(), id)
	if err != nil || claim == NoClaim {
		t.Fatalf("Claim: (%q, %v)", claim, err)
	}
	return claim
}

func TestCachingReader_HolderFillsWaiterReadsTheEntry(t *testing.T) {
	cache := newFakeSharedCache()
	o := &countingOrigin{body: []byte("the document")}
	rec := testRecord(o.body)
	cr := testReader(cache, o, time.Hour, rec, nil)
	claim := claimOf(t, cache, rec.ID) // another instance loads
	var once sync.Once
	cache.onContended = func() {
		once.Do(func() {
			cache.Fill(context.Background(), rec.ID, claim, &CachedDocument{Tenant: "t", Descriptor: Descriptor{Size: rec.Size}, Body: []byte("from the holder")})
		})
	}
	ctx, rs := WithRequestStats(context.Background())
	got, err := cr.readWhole(ctx, rec, miss{wait: true})
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

// A waiter whose holder lets go without filling claims in its place, reads
// the record again under its claim, and fills.
func TestCachingReader_WaiterTakesOverAnAbandonedLock(t *testing.T) {
	cache := newFakeSharedCache()
	o := &countingOrigin{body: []byte("the document")}
	rec := testRecord(o.body)
	cr := testReader(cache, o, time.Hour, rec, nil) // finishes only if the waiter does not sit out FillWait
	claim := claimOf(t, cache, rec.ID)
	var once sync.Once
	cache.onContended = func() { once.Do(func() { cache.Release(context.Background(), rec.ID, claim) }) } // the holder gives up
	got, err := cr.readWhole(context.Background(), rec, miss{wait: true})
	if err != nil || string(got) != "the document" {
		t.Fatalf("readWhole = %q, %v", got, err)
	}
	if n := o.reads.Load(); n != 1 {
		t.Errorf("%d origin reads, want 1", n)
	}
	if doc, _ := cache.Get(context.Background(), rec.ID); doc == nil || string(doc.Body) != "the document" {
		t.Errorf("the waiter did not fill the cache: %v", doc)
	}
	if cache.held(rec.ID) {
		t.Error("the waiter kept the fill lock")
	}
}

// A waiter that claims in the holder's place but finds the record gone (or
// changed) when it reads it again under the claim fills nothing: its first
// record read came before its claim.
func TestCachingReader_WaiterFillsNothingWhenTheRecordChanged(t *testing.T) {
	o := &countingOrigin{body: []byte("the document")}
	rec := testRecord(o.body)
	changed := rec
	changed.SHA256 = "another document under the same id"
	for name, reread := range map[string]struct {
		rec Record
		err error
	}{
		"gone":    {Record{}, E("test", KindNotFound, "no record")},
		"changed": {changed, nil},
	} {
		t.Run(name, func(t *testing.T) {
			cache := newFakeSharedCache()
			cr := testReader(cache, o, time.Hour, reread.rec, reread.err)
			claim := claimOf(t, cache, rec.ID)
			var once sync.Once
			cache.onContended = func() { once.Do(func() { cache.Release(context.Background(), rec.ID, claim) }) }
			if _, err := cr.readWhole(context.Background(), rec, miss{wait: true}); err != nil {
				t.Fatal(err)
			}
			if doc, _ := cache.Get(context.Background(), rec.ID); doc != nil {
				t.Error("a waiter filled with a record read before its claim")
			}
			if cache.held(rec.ID) {
				t.Error("the waiter kept the fill lock")
			}
		})
	}
}

// A waiter whose holder never fills loads the origin after FillWait, and
// fills nothing: it read the record before any claim of its own.
func TestCachingReader_WaitIsBoundedByFillWaitAndFillsNothing(t *testing.T) {
	cache := newFakeSharedCache()
	o := &countingOrigin{body: []byte("the document")}
	rec := testRecord(o.body)
	cr := testReader(cache, o, 20*time.Millisecond, rec, nil)
	claimOf(t, cache, rec.ID) // held for good by a stuck instance
	got, err := cr.readWhole(context.Background(), rec, miss{wait: true})
	if err != nil || string(got) != "the document" || o.reads.Load() != 1 {
		t.Fatalf("readWhole = %q, %v after %d reads; want the origin's bytes after one read", got, err, o.reads.Load())
	}
	if doc, _ := cache.Get(context.Background(), rec.ID); doc != nil {
		t.Error("a waiter without a claim filled the cache")
	}
}

// A cache whose Claim fails is a miss that holds nothing and waits for
// nothing: the request loads the origin and fills nothing.
func TestCachingReader_ClaimErrorIsAMissWithoutFill(t *testing.T) {
	cache := newFakeSharedCache()
	cache.claimErr = errors.New("connection refused")
	o := &countingOrigin{body: []byte("the document")}
	rec := testRecord(o.body)
	cr := testReader(cache, o, time.Hour, rec, nil)
	ctx, rs := WithRequestStats(context.Background())
	doc, m, foreign := cr.lookup(ctx, func(t Tenant) bool { return t == "t" }, rec.ID, true)
	if doc != nil || foreign || m != (miss{}) {
		t.Fatalf("lookup with a failing cache = (%v, %+v, %v), want an empty miss", doc, m, foreign)
	}
	if rs.CacheErrors.Load() != 1 || rs.Misses.Load() != 1 {
		t.Errorf("cache errors %d, misses %d; want 1, 1", rs.CacheErrors.Load(), rs.Misses.Load())
	}
}

func TestCachingReader_EntryFilledMeanwhileIsUsed(t *testing.T) {
	cache := newFakeSharedCache()
	o := &countingOrigin{body: []byte("the document")}
	rec := testRecord(o.body)
	cr := testReader(cache, o, time.Hour, rec, nil)
	claim := claimOf(t, cache, rec.ID)
	cache.Fill(context.Background(), rec.ID, claim, &CachedDocument{Tenant: "t", Body: []byte("filled meanwhile")})
	got, _ := cr.readWhole(context.Background(), rec, miss{wait: true})
	if string(got) != "filled meanwhile" || o.reads.Load() != 0 {
		t.Fatalf("readWhole = %q after %d origin reads; want the entry the holder filled", got, o.reads.Load())
	}
	// An entry of another tenant under the same id is never served.
	other := testRecord(o.body)
	claim = claimOf(t, cache, other.ID)
	cache.Fill(context.Background(), other.ID, claim, &CachedDocument{Tenant: "someone else", Body: []byte("not yours")})
	got, _ = cr.readWhole(context.Background(), other, miss{wait: true})
	if string(got) != "the document" {
		t.Fatalf("readWhole = %q; want the origin's bytes, not another tenant's entry", got)
	}
}

func TestCachingReader_FillPastItsDeadlineIsDropped(t *testing.T) {
	cache := newFakeSharedCache()
	o := &countingOrigin{body: []byte("the document")}
	rec := testRecord(o.body)
	cr := testReader(cache, o, time.Hour, rec, nil)
	claim := claimOf(t, cache, rec.ID)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := cr.readWhole(ctx, rec, miss{claim: claim}); err != nil {
		t.Fatal(err)
	}
	if doc, _ := cache.Get(context.Background(), rec.ID); doc != nil {
		t.Error("a fill whose deadline had passed was stored")
	}
	if cache.held(rec.ID) {
		t.Error("a fill dropped for its deadline kept the fill lock")
	}
}

// blockingOrigin serves one body once released, and says when a read
// began.
type blockingOrigin struct {
	countingOrigin
	entered, release chan struct{}
}

func (o *blockingOrigin) read(ctx context.Context, rec Record, r ByteRange, pf *prefetch) ([]byte, error) {
	o.entered <- struct{}{}
	<-o.release
	return o.countingOrigin.read(ctx, rec, r, pf)
}

// A miss waiting on a holder of its own process takes the holder's bytes
// as its load ends, without a look at the cache: here the cache refuses
// the holder's fill (a DELETE came between, say), so a waiter that learned
// of the end of the load only from the cache would claim and load again.
func TestCachingReader_AWaiterOfThisProcessTakesTheHoldersLoad(t *testing.T) {
	cache := newFakeSharedCache()
	cache.refuseFills = true
	o := &blockingOrigin{countingOrigin: countingOrigin{body: []byte("the document")},
		entered: make(chan struct{}, 1), release: make(chan struct{})}
	rec := testRecord(o.body)
	record := func(context.Context, ID) (Record, error) { return rec, nil }
	cr := newCachingReader(cache, record, o.read, nil, Config{CacheMaxBytes: 1 << 20, FillWait: time.Hour, FillPoll: time.Millisecond}, slog.New(slog.DiscardHandler))
	claim := claimOf(t, cache, rec.ID) // the first miss's lookup
	holder := make(chan string, 1)
	go func() {
		got, _ := cr.readWhole(context.Background(), rec, miss{claim: claim})
		holder <- string(got)
	}()
	<-o.entered // the holder is loading
	waiting := make(chan struct{})
	var once sync.Once
	cache.onContended = func() { once.Do(func() { close(waiting) }) }
	waiter := make(chan string, 1)
	go func() {
		got, _ := cr.readWhole(context.Background(), rec, miss{wait: true})
		waiter <- string(got)
	}()
	<-waiting // the waiter polls the cache: it has seen the holder's load
	close(o.release)
	if got := <-holder; got != "the document" {
		t.Fatalf("the holder got %q", got)
	}
	if got := <-waiter; got != "the document" {
		t.Fatalf("the waiter got %q", got)
	}
	if n := o.reads.Load(); n != 1 {
		t.Errorf("%d origin reads, want 1: the waiter did not take the holder's load", n)
	}
}
