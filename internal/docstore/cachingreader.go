package docstore

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// wholeReader reads documents, or ranges of them, from the origin, taking
// the blob from pf when it prefetched it; origin.read is one.
type wholeReader func(ctx context.Context, rec Record, r ByteRange, pf *prefetch) ([]byte, error)

// prefetcher starts reading the blob kept under a document's id before its
// record has arrived; origin.prefetch is one.
type prefetcher func(ctx context.Context, id ID) *prefetch

// cachingReader is the cache tier in front of the origin. It owns what a
// miss shares with other misses — the cache's fill claim, taken in the
// miss's one round trip and across processes, singleflight among the
// waiters of one process, the fill deadline — and the per-request counts.
//
// The rule that keeps a deleted document deleted: an entry is filled only
// under a claim taken before the record read whose document it holds (see
// Cache). A whole-document miss claims as it looks (lookup), reads the
// record, then the origin, and fills with its claim; a miss that found the
// claim held waits for the holder's fill, and loads the origin itself
// without filling when none comes — unless the holder let go and it claimed
// in its place, and then it reads the record again before it fills.
//
// The cache is an optimisation: every failure of it is logged and counted
// and the read goes to the origin, filling nothing, so a broken cache costs
// a request its origin load, never an error. Only forget, which a delete
// must not pass, returns the cache's error.
type cachingReader struct {
	cache    Cache // nil: no cache tier
	record   func(ctx context.Context, id ID) (Record, error)
	origin   wholeReader
	prefetch prefetcher // nil: no prefetch
	maxBytes int64
	// fillWait bounds how long a miss waits for another holder of the
	// fill claim; fillPoll is how often it looks at the cache meanwhile.
	fillWait, fillPoll time.Duration
	flight             singleflight.Group
	log                *slog.Logger
	fillHook           func(ctx context.Context, id ID) // Config.FillHook

	// loads are the loads of this process's claim holders, by id: a
	// waiter of the same process takes the holder's bytes the moment its
	// load ends, not at its next look at the cache.
	loadsMu sync.Mutex
	loads   map[ID]*load
}

// load is a claim holder's load of one document, for this process's
// waiters: done is closed once body is set, and ok tells whether it was.
type load struct {
	done chan struct{}
	rec  Record
	body []byte
	ok   bool
}

func newCachingReader(cache Cache, record func(context.Context, ID) (Record, error), origin wholeReader, prefetch prefetcher, cfg Config, log *slog.Logger) *cachingReader {
	return &cachingReader{cache: cache, record: record, origin: origin, prefetch: prefetch, maxBytes: cfg.CacheMaxBytes,
		fillWait: cfg.FillWait, fillPoll: cfg.FillPoll, log: log, fillHook: cfg.FillHook,
		loads: map[ID]*load{}}
}

// readRequest is one read as the caching reader sees it; the caller keeps
// the HTTP rules in record and negotiate.
type readRequest struct {
	op Op
	// owns tells whether a tenant is the one the read is for: an entry of
	// any other is answered as a missing document.
	owns func(Tenant) bool
	id   ID
	// now is the read's time: an entry whose document expired by then is
	// a missing document.
	now time.Time
	// whole is a read of the whole document (no Range): only such a miss
	// claims the fill, waits for another holder's and prefetches; a range
	// is answered from an entry but never fills one.
	whole bool
	// conditional is a read that may only revalidate (If-None-Match): it
	// prefetches nothing.
	conditional bool
	// record reads id's record, checked for the caller: a missing, foreign
	// or unavailable document is its error.
	record func(ctx context.Context) (Record, error)
	// negotiate applies the caller's rules to the document d describes and
	// returns the bytes to read, or body false when the answer has none
	// (not modified).
	negotiate func(d Descriptor) (r ByteRange, body bool, err error)
}

// read answers req, as groupcache's Get does: it looks in the cache, and on
// a miss reads the record and the document — from the holder's fill, or the
// origin, filling the cache — hiding the claim, the wait and the fill from
// its caller. hit tells that the cache answered. Another tenant's entry is
// answered as a missing document, touching no other backend.
func (cr *cachingReader) read(ctx context.Context, req readRequest) (body []byte, hit bool, err error) {
	doc, m, foreign := cr.lookup(ctx, req.owns, req.id, req.whole)
	if foreign || (doc != nil && !doc.Expires.IsZero() && !req.now.Before(doc.Expires)) {
		cr.release(ctx, req.id, m.claim)
		return nil, false, notFound(req.op, req.id)
	}
	if doc == nil {
		body, err := cr.readMiss(ctx, req, m)
		return body, false, err
	}
	r, withBody, err := req.negotiate(doc.Descriptor)
	if err != nil || !withBody {
		return nil, true, err
	}
	return doc.Body[r.Start : r.Start+r.Length], true, nil
}

// readMiss answers req after a lookup that found no entry (m): it reads the
// record, then the document. A miss of a whole document holds the fill
// claim by now, or knows who does (see Cache): the record read comes after
// the claim, so a delete that removes the record first leaves this miss
// nothing to fill. The fill's deadline starts here, with the claim, and
// travels in the context the whole read runs on; a path that does not hand
// the claim to readWhole releases it.
func (cr *cachingReader) readMiss(ctx context.Context, req readRequest, m miss) ([]byte, error) {
	fillCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), time.Now().Add(FillDeadline))
	defer cancel()
	defer func() { cr.release(ctx, req.id, m.claim) }()
	// A whole document that is not merely revalidated is fetched while its
	// record is read, on the guess that its blob is kept under its id (see
	// prefetch): a miss then waits for the slower of the two, not for both.
	// Not by a miss that waits for another holder's fill: concurrent misses
	// still read the blob once.
	if req.whole && !req.conditional && !m.wait && cr.prefetch != nil {
		m.blob = cr.prefetch(ctx, req.id)
		defer m.blob.discard()
	}
	rec, err := req.record(ctx)
	if err != nil {
		return nil, err
	}
	r, withBody, err := req.negotiate(rec.Descriptor)
	if err != nil || !withBody {
		return nil, err
	}
	// Only a whole document asked for without Range goes through the cache:
	// a range is read from the origin, segments and all, and fills nothing.
	var body []byte
	if (m.claim != NoClaim || m.wait) && cr.caches(rec.Size) {
		held := m
		m.claim, m.wait = NoClaim, false // readWhole fills with the claim or releases it
		body, err = cr.readWhole(fillCtx, rec, held)
	} else {
		body, err = cr.origin(ctx, rec, r, m.blob)
	}
	if err == nil {
		return body, nil
	}
	if KindOf(err) == KindInternal && cr.deletedSince(ctx, rec.ID) {
		// A DELETE removed the blob between our read of the record and of
		// the blob: the document is gone, which is a 404, not a fault.
		return nil, notFound(req.op, req.id)
	}
	return nil, E(req.op, err)
}

// deletedSince reports whether id's record is gone now.
func (cr *cachingReader) deletedSince(ctx context.Context, id ID) bool {
	_, err := cr.record(ctx, id)
	return IsNotFound(err)
}

// miss is what a lookup that found no entry may do with the cache: fill it
// with claim, wait for another holder's fill (wait), or neither (no cache,
// a cache that failed, or a read of a range).
type miss struct {
	claim Claim
	wait  bool
	// blob is the document's blob, fetched while its record was read
	// (see prefetch); nil when none was.
	blob *prefetch
}

// lookup returns the cached entry of id when its tenant owns it; foreign
// reports an entry of another tenant's, which the caller answers as a
// missing document without going to the origin. A whole-document read
// (whole) looks with Cache.Claim: a miss then holds the claim (m.claim),
// which the caller fills with or releases, or learns that another holder
// has it (m.wait). A read of a range looks with Get and claims nothing. A
// request whose cache failed gets an empty miss and does not ask the cache
// again, so a broken or slow cache costs it at most one timeout.
func (cr *cachingReader) lookup(ctx context.Context, owns func(Tenant) bool, id ID, whole bool) (doc *CachedDocument, m miss, foreign bool) {
	if cr.cache != nil {
		var err error
		if whole {
			doc, m.claim, err = cr.cache.Claim(ctx, id)
			m.wait = err == nil && doc == nil && m.claim == NoClaim
		} else {
			doc, err = cr.cache.Get(ctx, id)
		}
		if err != nil {
			cr.failed(ctx, "lookup", id, err)
			doc, m = nil, miss{}
		}
	}
	switch {
	case doc == nil:
		count(ctx, func(r *RequestStats) *atomic.Int64 { return &r.Misses })
	case !owns(doc.Tenant):
		return nil, miss{}, true
	default:
		count(ctx, func(r *RequestStats) *atomic.Int64 { return &r.Hits })
	}
	return doc, m, false
}

// caches reports whether a document of size bytes is kept in the cache.
func (cr *cachingReader) caches(size int64) bool {
	return cr.cache != nil && size <= cr.maxBytes
}

// claimWrite claims id's fill lock for an upload's write-through of size
// bytes; NoClaim when the document is not cached, the cache failed, or
// something holds the lock or the entry already.
func (cr *cachingReader) claimWrite(ctx context.Context, id ID, size int64) Claim {
	if !cr.caches(size) {
		return NoClaim
	}
	_, claim, err := cr.cache.Claim(ctx, id)
	if err != nil {
		cr.failed(ctx, "claim", id, err)
		return NoClaim
	}
	return claim
}

// fill stores doc as the entry of id under claim. ctx carries the fill's
// deadline (see FillDeadline); a fill past it is dropped, as the Cache
// would refuse it, and its claim released.
func (cr *cachingReader) fill(ctx context.Context, id ID, claim Claim, doc *CachedDocument) {
	if claim == NoClaim {
		return
	}
	if ctx.Err() != nil {
		cr.release(ctx, id, claim)
		return
	}
	if err := cr.cache.Fill(ctx, id, claim, doc); err != nil {
		cr.failed(ctx, "fill", id, err)
	}
}

// release lets go of a claim that will not be filled, so that a waiter
// claims in its place at once instead of sitting out its wait. It outlives
// the request's cancellation: a request that gave up still frees its lock.
func (cr *cachingReader) release(ctx context.Context, id ID, claim Claim) {
	if claim == NoClaim {
		return
	}
	if err := cr.cache.Release(context.WithoutCancel(ctx), id, claim); err != nil {
		cr.failed(ctx, "release", id, err)
	}
}

// forget removes id from the cache, with its fill lock, and leaves its
// tombstone (see Cache).
func (cr *cachingReader) forget(ctx context.Context, id ID) error {
	if cr.cache == nil {
		return nil
	}
	if err := cr.cache.Delete(ctx, id); err != nil {
		cr.failed(ctx, "delete", id, err)
		return err
	}
	return nil
}

// readWhole reads the whole document rec for a miss m (see lookup): with
// m.claim it loads the origin and fills the cache; with m.wait it waits
// for the holder's fill, one wait shared by the misses of this process
// (singleflight). Either way the caller's claim is used or released here.
// ctx carries the fill's deadline (see FillDeadline) and none of the
// request's cancellation (see readMiss): one caller giving up must not fail
// the others waiting on its fill or sharing its wait.
func (cr *cachingReader) readWhole(ctx context.Context, rec Record, m miss) ([]byte, error) {
	if m.claim != NoClaim {
		return cr.loadAndFill(ctx, rec, m.claim, m.blob)
	}
	v, err, _ := cr.flight.Do(string(rec.ID), func() (any, error) {
		doc, claim := cr.waitForFill(ctx, rec.ID)
		switch {
		case doc != nil && doc.Tenant == rec.Tenant:
			return doc.Body, nil
		case claim != NoClaim:
			return cr.takeOver(ctx, rec, claim, m.blob)
		}
		return cr.load(ctx, rec, m.blob)
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// load reads the whole document rec from the origin, its blob from pf when
// pf fetched it.
func (cr *cachingReader) load(ctx context.Context, rec Record, pf *prefetch) ([]byte, error) {
	return cr.origin(ctx, rec, ByteRange{Start: 0, Length: rec.Size}, pf)
}

// loadAndFill reads the whole document rec from the origin and fills the
// cache with it under claim, which was taken before rec was read. The
// waiters of this process get the bytes as soon as they are read.
func (cr *cachingReader) loadAndFill(ctx context.Context, rec Record, claim Claim, pf *prefetch) ([]byte, error) {
	l := &load{done: make(chan struct{}), rec: rec}
	cr.loadsMu.Lock()
	cr.loads[rec.ID] = l // one claim holder at a time: a stale one is done
	cr.loadsMu.Unlock()
	body, err := cr.load(ctx, rec, pf)
	l.body, l.ok = body, err == nil
	cr.loadsMu.Lock()
	if cr.loads[rec.ID] == l {
		delete(cr.loads, rec.ID)
	}
	cr.loadsMu.Unlock()
	close(l.done)
	if err != nil {
		cr.release(ctx, rec.ID, claim)
		return nil, err
	}
	if cr.fillHook != nil {
		cr.fillHook(ctx, rec.ID)
	}
	count(ctx, func(r *RequestStats) *atomic.Int64 { return &r.Fills })
	cr.fill(ctx, rec.ID, claim, &CachedDocument{Tenant: rec.Tenant, Descriptor: rec.Descriptor, Body: body, Expires: rec.cacheExpiry()})
	return body, nil
}

// takeOver loads rec's document for a waiter that claimed id when the
// holder let go without filling. Its record read came before its claim, so
// it reads the record again, now under the claim, and fills only when that
// record still describes the same document; otherwise it releases the
// claim and loads what it read first, filling nothing.
func (cr *cachingReader) takeOver(ctx context.Context, rec Record, claim Claim, pf *prefetch) ([]byte, error) {
	fresh, err := cr.record(ctx, rec.ID)
	if err == nil && fresh.Status == StatusAvailable && fresh.Tenant == rec.Tenant &&
		fresh.Size == rec.Size && fresh.SHA256 == rec.SHA256 && fresh.Blob() == rec.Blob() {
		return cr.loadAndFill(ctx, fresh, claim, pf)
	}
	cr.release(ctx, rec.ID, claim)
	return cr.load(ctx, rec, pf)
}

// waitForFill polls the cache while another holder of id's claim loads the
// document, for at most fillWait. It returns the entry once it appears, or
// the claim it took when the holder let go of the lock without filling (its
// load failed, a Delete removed the lock, it expired): then the caller
// stops waiting at once instead of sitting out fillWait. Neither means the
// wait ended or the cache failed: load the origin, filling nothing.
//
// When the holder is of this process, the wait ends with its load: the
// bytes it read are the entry it is about to fill.
func (cr *cachingReader) waitForFill(ctx context.Context, id ID) (*CachedDocument, Claim) {
	count(ctx, func(r *RequestStats) *atomic.Int64 { return &r.LockWaits })
	deadline := time.NewTimer(cr.fillWait)
	defer deadline.Stop()
	tick := time.NewTicker(cr.fillPoll)
	defer tick.Stop()
	var local *load // this process's holder's load, once seen
	for {
		var loaded <-chan struct{} // nil, which blocks, until local is seen
		if local == nil {
			cr.loadsMu.Lock()
			local = cr.loads[id]
			cr.loadsMu.Unlock()
		}
		if local != nil {
			loaded = local.done
		}
		select {
		case <-ctx.Done():
			return nil, NoClaim
		case <-deadline.C:
			return nil, NoClaim
		case <-loaded:
			if local.ok {
				return &CachedDocument{Tenant: local.rec.Tenant, Descriptor: local.rec.Descriptor, Body: local.body, Expires: local.rec.cacheExpiry()}, NoClaim
			}
			local = nil // its load failed and let go of the claim: look again
		case <-tick.C:
			doc, claim, err := cr.cache.Claim(ctx, id)
			if err != nil {
				cr.failed(ctx, "claim while waiting for a fill", id, err)
				return nil, NoClaim
			}
			if doc != nil || claim != NoClaim {
				return doc, claim
			}
		}
	}
}

func (cr *cachingReader) failed(ctx context.Context, what string, id ID, err error) {
	count(ctx, func(r *RequestStats) *atomic.Int64 { return &r.CacheErrors })
	cr.log.WarnContext(ctx, "cache "+what+" failed; using the origin", "document", id, "error", err.Error())
}

// RequestStats counts one request's cache work, for its log line and
// metrics. A Lambda instance serves one request at a time, but `imago
// serve` many: the counts live in the request's context, not the Service.
type RequestStats struct {
	Hits, Misses, Fills, LockWaits, CacheErrors atomic.Int64
}

type requestStatsKey struct{}

// WithRequestStats returns a context under which the Service counts the
// request's cache work in the returned RequestStats.
func WithRequestStats(ctx context.Context) (context.Context, *RequestStats) {
	rs := &RequestStats{}
	return context.WithValue(ctx, requestStatsKey{}, rs), rs
}

// count adds one to the request's count that pick selects, if the request
// counts.
func count(ctx context.Context, pick func(*RequestStats) *atomic.Int64) {
	if rs, _ := ctx.Value(requestStatsKey{}).(*RequestStats); rs != nil {
		pick(rs).Add(1)
	}
}
