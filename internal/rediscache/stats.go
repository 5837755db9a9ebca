package rediscache

import (
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a Cache's counters, cumulative since New.
type Stats struct {
	Hits           uint64 // Get found a usable entry
	Misses         uint64 // Get found nothing, or an entry it could not use (counted in Undecodable too)
	Undecodable    uint64 // entries that were garbage, of an unknown version, or failed to open
	Sets           uint64 // entries stored
	SetsRefused    uint64 // Set calls that stored nothing: the document was deleted, or the fill was late
	SkippedLarge   uint64 // Set calls whose body was over MaxBytes, not stored
	Deletes        uint64 // Delete calls that reached Redis
	Errors         uint64 // calls that failed (Redis slow, down, or answering with an error)
	BreakerSkips   uint64 // calls answered "unavailable" by the open breaker, without touching Redis
	BreakerOpens   uint64 // times the breaker opened
	LocksAcquired  uint64 // fill locks taken
	LocksContended uint64 // fill locks found held by another process
}

type counters struct {
	hits, misses, undecodable, sets, setsRefused, skippedLarge, deletes, errors,
	breakerSkips, breakerOpens, locksAcquired, locksContended atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Hits:           c.hits.Load(),
		Misses:         c.misses.Load(),
		Undecodable:    c.undecodable.Load(),
		Sets:           c.sets.Load(),
		SetsRefused:    c.setsRefused.Load(),
		SkippedLarge:   c.skippedLarge.Load(),
		Deletes:        c.deletes.Load(),
		Errors:         c.errors.Load(),
		BreakerSkips:   c.breakerSkips.Load(),
		BreakerOpens:   c.breakerOpens.Load(),
		LocksAcquired:  c.locksAcquired.Load(),
		LocksContended: c.locksContended.Load(),
	}
}

// Sub returns the counts since prev, an earlier snapshot of the same Cache:
// what one invocation (or one reporting interval) did.
func (s Stats) Sub(prev Stats) Stats {
	return Stats{
		Hits:           s.Hits - prev.Hits,
		Misses:         s.Misses - prev.Misses,
		Undecodable:    s.Undecodable - prev.Undecodable,
		Sets:           s.Sets - prev.Sets,
		SetsRefused:    s.SetsRefused - prev.SetsRefused,
		SkippedLarge:   s.SkippedLarge - prev.SkippedLarge,
		Deletes:        s.Deletes - prev.Deletes,
		Errors:         s.Errors - prev.Errors,
		BreakerSkips:   s.BreakerSkips - prev.BreakerSkips,
		BreakerOpens:   s.BreakerOpens - prev.BreakerOpens,
		LocksAcquired:  s.LocksAcquired - prev.LocksAcquired,
		LocksContended: s.LocksContended - prev.LocksContended,
	}
}

// metrics lists the counters by their metric names, in a fixed order.
func (s Stats) metrics() []struct {
	name  string
	value uint64
} {
	return []struct {
		name  string
		value uint64
	}{
		{"CacheHits", s.Hits},
		{"CacheMisses", s.Misses},
		{"CacheUndecodable", s.Undecodable},
		{"CacheSets", s.Sets},
		{"CacheSetsRefused", s.SetsRefused},
		{"CacheSkippedLarge", s.SkippedLarge},
		{"CacheDeletes", s.Deletes},
		{"CacheErrors", s.Errors},
		{"CacheBreakerSkips", s.BreakerSkips},
		{"CacheBreakerOpens", s.BreakerOpens},
		{"CacheLocksAcquired", s.LocksAcquired},
		{"CacheLocksContended", s.LocksContended},
	}
}

// LogValue makes Stats a structured log group:
// logger.Info("done", "cache", c.Stats().Sub(before)).
func (s Stats) LogValue() slog.Value {
	ms := s.metrics()
	attrs := make([]slog.Attr, len(ms))
	for i, m := range ms {
		attrs[i] = slog.Uint64(m.name, m.value)
	}
	return slog.GroupValue(attrs...)
}

// EMF renders s as one CloudWatch Embedded Metric Format record (a JSON
// object to print as a single line to stdout in Lambda), every counter a
// Count metric without dimensions, timestamped now. Counters are emitted as
// given: pass a Sub delta, not the cumulative snapshot, or CloudWatch will
// sum the same events again on every record.
func (s Stats) EMF(namespace string) []byte {
	type metricDef struct {
		Name string `json:"Name"`
		Unit string `json:"Unit"`
	}
	ms := s.metrics()
	defs := make([]metricDef, len(ms))
	rec := make(map[string]any, len(ms)+1)
	for i, m := range ms {
		defs[i] = metricDef{Name: m.name, Unit: "Count"}
		rec[m.name] = m.value
	}
	rec["_aws"] = map[string]any{
		"Timestamp": time.Now().UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  namespace,
			"Dimensions": [][]string{{}},
			"Metrics":    defs,
		}},
	}
	b, err := json.Marshal(rec)
	if err != nil { // cannot happen: only strings, numbers and slices of them
		return nil
	}
	return b
}
