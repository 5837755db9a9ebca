package docstore

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// wholeReader reads whole documents from the origin; origin.read is one.
type wholeReader func(ctx context.Context, rec Record, r ByteRange) ([]byte, error)

// cachingReader is the cache tier in front of the origin. It owns what a
// miss shares with other misses — singleflight within the process, the
// cache's fill lock across processes, the fill deadline that keeps a fill
// inside a delete's tombstone — and the per-request counts.
//
// The cache is an optimisation: every failure of it is logged and counted
// and the read goes to the origin, so a broken cache costs a request its
// origin load, never an error. Only forget, which a delete must not pass,
// returns the cache's error.
type cachingReader struct {
	cache    Cache      // nil: no cache tier
	locker   FillLocker // nil when the cache is not shared between processes
	origin   wholeReader
	maxBytes int64
	// fillWait bounds how long a miss waits for another instance holding
	// the fill lock; fillPoll is how often it looks at the cache meanwhile.
	fillWait, fillPoll time.Duration
	flight             singleflight.Group
	log                *slog.Logger
}

func newCachingReader(cache Cache, origin wholeReader, cfg Config, log *slog.Logger) *cachingReader {
	cr := &cachingReader{cache: cache, origin: origin, maxBytes: cfg.CacheMaxBytes,
		fillWait: cfg.FillWait, fillPoll: cfg.FillPoll, log: log}
	if l, ok := cache.(FillLocker); ok {
		cr.locker = l
	}
	return cr
}

// lookup returns the cached entry of id when tenant owns it; foreign
// reports an entry of another tenant's, which the caller answers as a
// missing document without going to the origin. cacheOK reports whether the
// cache answered at all (false: it failed, or there is none): a request
// whose cache failed once does not ask it again, so a broken or slow cache
// costs it at most one timeout.
func (cr *cachingReader) lookup(ctx context.Context, tenant Tenant, id ID) (doc *CachedDocument, foreign, cacheOK bool) {
	if cr.cache != nil {
		var err error
		if doc, err = cr.cache.Get(ctx, id); err != nil {
			cr.failed(ctx, "get", id, err)
			doc = nil
		} else {
			cacheOK = true
		}
	}
	switch {
	case doc == nil:
		count(ctx, func(r *RequestStats) *atomic.Int64 { return &r.Misses })
	case doc.Tenant != tenant:
		return nil, true, cacheOK
	default:
		count(ctx, func(r *RequestStats) *atomic.Int64 { return &r.Hits })
	}
	return doc, false, cacheOK
}

// caches reports whether a document of size bytes is kept in the cache.
func (cr *cachingReader) caches(size int64) bool {
	return cr.cache != nil && size <= cr.maxBytes
}

// fill stores doc as the entry of id. ctx carries the fill's deadline (see
// FillDeadline); a fill past it is dropped, as the Cache would refuse it.
func (cr *cachingReader) fill(ctx context.Context, id ID, doc *CachedDocument) {
	if !cr.caches(doc.Size) || ctx.Err() != nil {
		return
	}
	if err := cr.cache.Set(ctx, id, doc); err != nil {
		cr.failed(ctx, "set", id, err)
	}
}

// forget removes id from the cache and leaves its tombstone (see Cache).
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

// readWhole reads the whole document rec from the origin and fills the
// cache, loading it once however many requests miss at the same time: in
// this process through singleflight, across processes through the cache's
// fill lock when it has one. Nothing of it outlives fillBy (see
// FillDeadline): a caller joining a load in flight joins one that began
// before its own.
func (cr *cachingReader) readWhole(ctx context.Context, rec Record, fillBy time.Time) ([]byte, error) {
	v, err, _ := cr.flight.Do(string(rec.ID), func() (any, error) {
		// The load is shared: one caller giving up must not fail the
		// others waiting on it, so it runs on its own bounded context.
		ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), fillBy)
		defer cancel()
		doc, release := cr.lockOrWait(ctx, rec.ID)
		defer release()
		if doc != nil && doc.Tenant == rec.Tenant {
			return doc.Body, nil
		}
		body, err := cr.origin(ctx, rec, ByteRange{Start: 0, Length: rec.Size})
		if err != nil {
			return nil, err
		}
		count(ctx, func(r *RequestStats) *atomic.Int64 { return &r.Fills })
		cr.fill(ctx, rec.ID, &CachedDocument{Tenant: rec.Tenant, Descriptor: rec.Descriptor, Body: body})
		return body, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// lockOrWait takes id's fill lock, or waits for the instance that holds it
// to fill the entry. It returns the entry when one appeared, and what to
// call once the load is done (releasing the lock when this caller took it).
// Without a shared cache, or when the lock cannot be taken or waited for,
// it returns no entry: the caller loads the origin itself.
func (cr *cachingReader) lockOrWait(ctx context.Context, id ID) (*CachedDocument, func()) {
	noop := func() {}
	if cr.locker == nil {
		return nil, noop
	}
	release, acquired, err := cr.locker.TryLock(ctx, id)
	switch {
	case err != nil:
		cr.failed(ctx, "fill lock", id, err)
		return nil, noop
	case acquired:
		// Another instance may have filled the entry between our miss and
		// our lock. (A failed look is no loss: the caller loads the origin.)
		doc, _ := cr.cache.Get(ctx, id)
		return doc, release
	}
	return cr.waitForFill(ctx, id)
}

// waitForFill polls the cache while another instance loads the document,
// for at most fillWait; a nil document means load it yourself. When the
// holder lets go of the fill lock without filling (its load failed, or a
// delete refused its Set and dropped the lock), the waiter takes the lock
// and stops waiting at once, instead of sitting out fillWait; release then
// frees it (it is a no-op otherwise).
func (cr *cachingReader) waitForFill(ctx context.Context, id ID) (doc *CachedDocument, release func()) {
	release = func() {}
	count(ctx, func(r *RequestStats) *atomic.Int64 { return &r.LockWaits })
	deadline := time.NewTimer(cr.fillWait)
	defer deadline.Stop()
	tick := time.NewTicker(cr.fillPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, release
		case <-deadline.C:
			return nil, release
		case <-tick.C:
			doc, err := cr.cache.Get(ctx, id)
			if err != nil {
				cr.failed(ctx, "get while waiting for fill", id, err)
				return nil, release
			}
			if doc != nil {
				return doc, release
			}
			unlock, acquired, err := cr.locker.TryLock(ctx, id)
			if err != nil {
				cr.failed(ctx, "fill lock while waiting", id, err)
				return nil, release
			}
			if acquired {
				// The holder may have filled and let go between our Get and
				// our lock: look once more.
				doc, err := cr.cache.Get(ctx, id)
				if err != nil {
					cr.failed(ctx, "get while waiting for fill", id, err)
				}
				return doc, unlock
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
