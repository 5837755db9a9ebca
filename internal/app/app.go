// Package app assembles Imago from its configuration: backends, the
// service, and one handler per Lambda function. The three functions'
// main packages and `imago serve` all start here, so they run the same
// code on the same configuration.
package app

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/backends"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
)

// App is an assembled Imago.
type App struct {
	Config   config.Config
	Service  *docstore.Service
	Backends *backends.Set
	Log      *slog.Logger
}

// NewLogger returns the structured JSON logger every process uses. The
// level comes from IMAGO_LOG_LEVEL (debug, info, warn, error; default info).
func NewLogger(w io.Writer, getenv func(string) string) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(getenv("IMAGO_LOG_LEVEL"))); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// New builds an App from cfg.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	set, err := backends.Open(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	svc := docstore.NewService(set.Backends, docstore.Config{
		MaxInlineBytes: cfg.MaxInlineBytes,
		CacheMaxBytes:  cfg.CacheMaxBytes,
		StagingPrefix:  cfg.StagingPrefix,

		MultipartThreshold: cfg.MultipartThreshold,
	}, log)
	log.Info("imago ready", "backends", set.Kind, "cache", set.CacheKind)
	return &App{Config: cfg, Service: svc, Backends: set, Log: log}, nil
}

// FromEnv reads the configuration from the environment and builds an App.
func FromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (*App, error) {
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg, log)
}

// Handler returns the Lambda handler of function fn.
func (a *App) Handler(fn apigw.Function) *apigw.Handler {
	return apigw.New(a.Service, fn, apigw.Options{TenantClaim: a.Config.TenantClaim, Logger: a.Log})
}

// Close releases the backends.
func (a *App) Close() error { return a.Backends.Close() }

// Must is for the functions' main packages: it logs a startup failure and
// exits, as a Lambda init error should.
func Must(a *App, err error) *App {
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("startup failed", "error", err.Error())
		os.Exit(1)
	}
	return a
}
