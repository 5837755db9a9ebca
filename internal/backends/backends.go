// Package backends holds what the two families of backends share: the
// built Set, and the choice of cache (Redis when IMAGO_REDIS_URL is set,
// an in-process cache otherwise). The families are its subpackages,
// siblings that import neither each other nor anything but this of their
// parent: awsbackends (S3, DynamoDB, KMS: the Lambda functions' and, when
// IMAGO_TABLE is set, `imago serve`'s) and embedded (files, bbolt, a local
// master key, the local staging area: `imago serve`'s only). Package app
// picks between them by IMAGO_TABLE.
package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/lrucache"
	"github.com/imagodocs/imago/internal/rediscache"
)

// Set is a built set of backends and what releases them.
type Set struct {
	docstore.Backends
	// Kind says which family was built, for logs: "embedded" or "aws".
	Kind string
	// CacheKind is "memory", or "redis" and how the client reaches it
	// ("redis (cluster)", "redis (single node)", …).
	CacheKind string
	closers   []func() error
}

// OnClose adds f to what Close runs; Close runs the last added first.
func (s *Set) OnClose(f func() error) { s.closers = append(s.closers, f) }

// Close releases files and connections.
func (s *Set) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	return errors.Join(errs...)
}

// memoryCacheBytes bounds the in-process cache: room for a few dozen
// typical documents, and always for several of the largest cacheable.
func memoryCacheBytes(cfg config.Config) int64 {
	return max(256<<20, 8*cfg.CacheMaxBytes)
}

// OpenCache gives set the cache cfg selects, for either family: Redis when
// IMAGO_REDIS_URL is set, else an in-process cache.
func OpenCache(ctx context.Context, cfg config.Config, set *Set, log *slog.Logger) error {
	if cfg.RedisURL == "" {
		set.Cache, set.CacheKind = lrucache.New(cfg.CacheTTL, memoryCacheBytes(cfg)), "memory"
		return nil
	}
	c, mode, closeFn, err := openRedis(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("redis cache: %w", err)
	}
	set.Cache, set.CacheKind = c, "redis ("+string(mode)+")"
	set.OnClose(closeFn)
	return nil
}

// redisLog sends go-redis's own messages (failed dials, pool trouble) to
// the structured log instead of plain text on stderr.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

// openRedis opens the Redis cache, in the mode the server speaks
// (rediscache.Open asks it unless the URL says).
func openRedis(ctx context.Context, cfg config.Config, log *slog.Logger) (*rediscache.Cache, rediscache.Mode, func() error, error) {
	if log != nil {
		redis.SetLogger(redisLog{log}) // go-redis has one process-wide logger
	}
	// IMAGO_REDIS_TIMEOUT is the budget of one cache call, dial included:
	// the per-call deadline, and no socket operation may wait longer.
	client, mode, err := rediscache.Open(ctx, cfg.RedisURL, rediscache.ClientOptions{
		DialTimeout: cfg.RedisTimeout, ReadTimeout: cfg.RedisTimeout, WriteTimeout: cfg.RedisTimeout,
		PoolSize: cfg.RedisPoolSize, Logger: log,
	})
	if err != nil {
		return nil, "", nil, err
	}
	c := rediscache.New(client, rediscache.Options{
		TTL: cfg.CacheTTL, MaxBytes: cfg.CacheMaxBytes, SealKey: cfg.CacheKey,
		Timeout: cfg.RedisTimeout, Logger: log,
	})
	return c, mode, client.Close, nil
}
