// Package backends is the one place that picks and builds backends from the
// configuration: embedded ones (files, bbolt, a local master key, an
// in-process cache) when IMAGO_TABLE is unset, S3, DynamoDB and KMS when it
// is set, and Redis as the cache whenever IMAGO_REDIS_URL is set.
package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/imagodocs/imago/internal/boltstore"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/fsstore"
	"github.com/imagodocs/imago/internal/localkeys"
	"github.com/imagodocs/imago/internal/memcache"
)

// Set is a built set of backends and what releases them.
type Set struct {
	docstore.Backends
	// Kind says which family was built, for logs: "embedded" or "aws".
	Kind string
	// CacheKind is "memory" or "redis".
	CacheKind string
	// LocalStaging is the embedded staging area, whose presigned PUTs
	// `imago serve` receives itself; nil on the AWS backends (S3 does).
	LocalStaging *fsstore.Staging
	closers      []func() error
}

// Close releases files and connections.
func (s *Set) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	return errors.Join(errs...)
}

// Open builds the backends cfg selects.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*Set, error) {
	var set *Set
	var err error
	if cfg.UsesAWS() {
		set, err = openAWS(ctx, cfg)
	} else {
		set, err = openEmbedded(cfg)
	}
	if err != nil {
		return nil, err
	}
	if err := openCache(ctx, cfg, set, log); err != nil {
		set.Close()
		return nil, err
	}
	return set, nil
}

func openEmbedded(cfg config.Config) (*Set, error) {
	set := &Set{Kind: "embedded"}
	blobs, err := fsstore.New(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return nil, err
	}
	meta, err := boltstore.Open(filepath.Join(cfg.DataDir, "meta.db"))
	if err != nil {
		return nil, err
	}
	set.closers = append(set.closers, meta.Close)
	keys, err := localkeys.Open(filepath.Join(cfg.DataDir, "master.key"))
	if err != nil {
		meta.Close()
		return nil, err
	}
	stagingKey, err := localkeys.KeyFile(filepath.Join(cfg.DataDir, "staging.key"))
	if err != nil {
		meta.Close()
		return nil, err
	}
	staging, err := fsstore.NewStaging(filepath.Join(cfg.DataDir, "staging"), cfg.StagingPrefix, stagingKey)
	if err != nil {
		meta.Close()
		return nil, err
	}
	set.Blobs, set.Meta, set.Keys, set.Staging, set.LocalStaging = blobs, meta, keys, staging, staging
	return set, nil
}

// memoryCacheBytes bounds the in-process cache: room for a few dozen
// typical documents, and always for several of the largest cacheable.
func memoryCacheBytes(cfg config.Config) int64 {
	return max(256<<20, 8*cfg.CacheMaxBytes)
}

func openCache(ctx context.Context, cfg config.Config, set *Set, log *slog.Logger) error {
	if cfg.RedisURL == "" {
		set.Cache, set.CacheKind = memcache.New(cfg.CacheTTL, memoryCacheBytes(cfg)), "memory"
		return nil
	}
	c, closeFn, err := openRedis(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("redis cache: %w", err)
	}
	set.Cache, set.CacheKind = c, "redis"
	set.closers = append(set.closers, closeFn)
	return nil
}
