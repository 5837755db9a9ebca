// Package backends builds the backends a Lambda function runs on: S3,
// DynamoDB and KMS (IMAGO_TABLE, IMAGO_BUCKET, IMAGO_KMS_KEY_ID), with
// Redis as the cache when IMAGO_REDIS_URL is set and an in-process cache
// otherwise. It links no embedded backend: those (files, bbolt, a local
// master key, the local staging area) are package embedded's, which only
// `imago serve` imports; it picks between the two families by IMAGO_TABLE.
package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/lrucache"
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

// ErrNoTable is Open's error when IMAGO_TABLE is unset: there is nothing
// else a Lambda function can run on.
var ErrNoTable = errors.New("IMAGO_TABLE is not set: a Lambda function runs on the AWS backends only (set IMAGO_TABLE, IMAGO_BUCKET and IMAGO_KMS_KEY_ID); the embedded backends are `imago serve`'s")

// Open builds the AWS backends cfg selects, and the cache.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*Set, error) {
	if !cfg.UsesAWS() {
		return nil, ErrNoTable
	}
	set, err := openAWS(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := OpenCache(ctx, cfg, set, log); err != nil {
		set.Close()
		return nil, err
	}
	return set, nil
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
