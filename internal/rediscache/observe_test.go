package rediscache

// Test-only helpers of package rediscache: counts of what it logs, and the
// breaker state the resilience tests check.

import (
	"context"
	"log/slog"
	"sync"
)

// The log messages of the events tests count: what an operator sees.
const (
	logUndecodable = "rediscache: undecodable entry, treated as a miss"
	logCallFailed  = "rediscache: call failed"
	logBreakerOpen = "rediscache: breaker open, Redis skipped"
)

// logCounts is a slog.Handler counting records by message, at every level.
type logCounts struct {
	mu sync.Mutex
	n  map[string]int
}

// newLogCounts returns the counts and the logger feeding them.
func newLogCounts() (*logCounts, *slog.Logger) {
	l := &logCounts{n: map[string]int{}}
	return l, slog.New(l)
}

func (l *logCounts) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg]
}

func (l *logCounts) Enabled(context.Context, slog.Level) bool { return true }

func (l *logCounts) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[r.Message]++
	return nil
}

func (l *logCounts) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounts) WithGroup(string) slog.Handler      { return l }

// current returns the breaker's state.
func (b *breaker) current() breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
