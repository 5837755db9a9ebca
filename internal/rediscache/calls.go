package rediscache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/docstore"
)

// callCtx bounds one call by the cache's timeout.
func (c *Cache) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// skipped counts and builds the error of a call the open breaker refused.
func (c *Cache) skipped(op docstore.Op, cmd, key string) error {
	return docstore.E(op, docstore.KindUnavailable, fmt.Errorf("redis %s %s: %w", cmd, key, ErrCircuitOpen))
}

// failed counts a failed call, feeds its outcome to the breaker and builds
// its error. allowed tells whether the call went through breaker.allow (and
// so may be the half-open probe, whose turn must be handed on if the
// outcome says nothing about Redis).
func (c *Cache) failed(ctx context.Context, op docstore.Op, cmd, key string, err error, allowed bool) error {
	var reply redis.Error
	switch {
	case ctx.Err() != nil:
		// The caller gave up (or its own deadline passed): no verdict on
		// Redis.
		if allowed {
			c.br.release()
		}
	case errors.As(err, &reply):
		// Redis answered, quickly, with an error: it is up.
		c.br.record(true)
	default:
		c.br.record(false)
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "rediscache: call failed",
		slog.String("op", string(op)), slog.String("key", key), slog.String("error", err.Error()))
	return docstore.E(op, docstore.KindUnavailable, fmt.Errorf("redis %s %s: %w", cmd, key, err))
}

func (c *Cache) breakerChanged(from, to breakerState, failures int) {
	switch to {
	case stateOpen:
		if from == stateClosed {
			c.log.LogAttrs(context.Background(), slog.LevelWarn, "rediscache: breaker open, Redis skipped",
				slog.Int("consecutive_failures", failures), slog.Duration("cooldown", c.br.cooldown))
		}
	case stateClosed:
		c.log.LogAttrs(context.Background(), slog.LevelInfo, "rediscache: breaker closed, Redis answers again")
	}
}
