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
	"path/filepath"

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
	return newApp(ctx, cfg, log, nil)
}

func newApp(ctx context.Context, cfg config.Config, log *slog.Logger, ingestHook func(context.Context, docstore.ID) error) (*App, error) {
	cursorKey, err := cfg.CursorSecret()
	if err != nil {
		return nil, err
	}
	set, err := backends.Open(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	svc := docstore.NewService(set.Backends, docstore.Config{
		MaxInlineBytes:     cfg.MaxInlineBytes,
		CacheMaxBytes:      cfg.CacheMaxBytes,
		StagingPrefix:      cfg.StagingPrefix,
		MultipartThreshold: cfg.MultipartThreshold,
		CursorKey:          cursorKey,
		IngestHook:         ingestHook,
	}, log)
	log.Info("imago ready", "backends", set.Kind, "cache", set.CacheKind)
	return &App{Config: cfg, Service: svc, Backends: set, Log: log}, nil
}

// FromEnv reads the configuration from the environment and builds an App.
func FromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger, adjust ...func(*config.Config)) (*App, error) {
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	for _, f := range adjust {
		f(&cfg)
	}
	return newApp(ctx, cfg, log, ingestPause(getenv(IngestPauseVar), log))
}

// IngestPauseVar names a folder for crash tests: when set, every ingest,
// once its blob is stored and before its document is marked available,
// creates a file named after the document there and waits until its
// context ends, so that a test can kill the process at exactly that point.
// Never set in production.
const IngestPauseVar = "IMAGO_TEST_INGEST_PAUSE_DIR"

func ingestPause(dir string, log *slog.Logger) func(context.Context, docstore.ID) error {
	if dir == "" {
		return nil
	}
	return func(ctx context.Context, id docstore.ID) error {
		log.WarnContext(ctx, "test hook: ingest paused before marking the document available", "document", id)
		if err := os.WriteFile(filepath.Join(dir, string(id)), nil, 0o600); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
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
