package docstore

import (
	"context"
	"sync/atomic"
)

// The cache is an optimisation: each helper here logs a cache failure and
// carries on, so a broken cache costs a request its origin load, never an
// error.

// cacheGet returns the cached entry of id, if any, and whether the cache
// answered at all (false: it failed, or there is none).
func (s *Service) cacheGet(ctx context.Context, id ID) (*CachedDocument, bool) {
	if s.cache == nil {
		return nil, false
	}
	doc, err := s.cache.Get(ctx, id)
	if err != nil {
		s.cacheError(ctx, "get", id, err)
		return nil, false
	}
	return doc, true
}

// cacheSet fills the cache. ctx carries the fill's deadline (see
// FillDeadline); a fill past it is dropped, as the Cache would refuse it.
func (s *Service) cacheSet(ctx context.Context, id ID, doc *CachedDocument) {
	if s.cache == nil || doc.Size > s.cfg.CacheMaxBytes {
		return
	}
	if ctx.Err() != nil {
		return
	}
	if err := s.cache.Set(ctx, id, doc); err != nil {
		s.cacheError(ctx, "set", id, err)
	}
}

func (s *Service) cacheError(ctx context.Context, what string, id ID, err error) {
	s.count(ctx, &s.stats.cacheErrors, func(r *RequestStats) *atomic.Int64 { return &r.CacheErrors })
	s.log.WarnContext(ctx, "cache "+what+" failed; using the origin", "document", id, "error", err.Error())
}

type counters struct {
	hits, misses, fills, lockWaits, cacheErrors atomic.Int64
}

// RequestStats counts one request's cache work, for its log line and
// metrics. A Lambda instance serves one request at a time, but `imago
// serve` many: the Service's totals cannot tell requests apart.
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

func requestStats(ctx context.Context) *RequestStats {
	rs, _ := ctx.Value(requestStatsKey{}).(*RequestStats)
	return rs
}

// count adds one to a Service total and to the request's own count.
func (s *Service) count(ctx context.Context, total *atomic.Int64, pick func(*RequestStats) *atomic.Int64) {
	total.Add(1)
	if rs := requestStats(ctx); rs != nil {
		pick(rs).Add(1)
	}
}

// Stats counts the cache tier's work since the Service was built.
type Stats struct {
	Hits, Misses, Fills, LockWaits, CacheErrors int64
}

// Stats returns the current counts.
func (s *Service) Stats() Stats {
	return Stats{
		Hits: s.stats.hits.Load(), Misses: s.stats.misses.Load(), Fills: s.stats.fills.Load(),
		LockWaits: s.stats.lockWaits.Load(), CacheErrors: s.stats.cacheErrors.Load(),
	}
}
