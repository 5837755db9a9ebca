// Package app assembles Imago, in one place: the service over a set of
// backends, and one handler per Lambda function. Each of the three
// functions' main packages is one call to the subpackage lambdamain, which
// starts at FromEnv, on the AWS backends (package awsbackends) only;
// `imago serve` calls the subpackage local, which picks either family by
// IMAGO_TABLE and puts the same handlers behind a local HTTP front. They
// are subpackages so that each binary links only its own: no embedded
// backend in a Lambda function, no Lambda runtime in `imago serve`. All
// run the same code on the same configuration.
package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/backends"
	"github.com/imagodocs/imago/internal/backends/awsbackends"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/dynamostore"
)

// App is an assembled Imago.
type App struct {
	Config   config.Config
	Service  *docstore.Service
	Backends *backends.Set
	Log      *slog.Logger
	// embeddedMetrics: the handlers' log lines are CloudWatch EMF records
	// (a Lambda function's; see apigw.Options.EmbeddedMetrics).
	embeddedMetrics bool
}

// NewLogger returns the structured JSON logger every process uses. The
// level comes from IMAGO_LOG_LEVEL (debug, info, warn, error; default info).
func NewLogger(w io.Writer, getenv func(string) string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: LogLevel(getenv)}))
}

// LogLevel is IMAGO_LOG_LEVEL's level in getenv's environment (info when
// unset or not a level).
func LogLevel(getenv func(string) string) slog.Level {
	var level slog.Level
	if err := level.UnmarshalText([]byte(getenv("IMAGO_LOG_LEVEL"))); err != nil {
		level = slog.LevelInfo
	}
	return level
}

// New assembles an App over set, which it takes over: Close releases it,
// and so does a New that fails. ingestHook, when set, runs in every ingest
// (IngestPause; nil in production).
func New(cfg config.Config, set *backends.Set, log *slog.Logger, ingestHook func(context.Context, docstore.ID) error) (*App, error) {
	cursorKey, err := cfg.CursorSecret()
	if err != nil {
		set.Close()
		return nil, err
	}
	linkKey, err := cfg.LinkSecret()
	if err != nil {
		set.Close()
		return nil, err
	}
	svc := docstore.NewService(set.Backends, docstore.Config{
		MaxInlineBytes:     cfg.MaxInlineBytes,
		CacheMaxBytes:      cfg.CacheMaxBytes,
		StagingPrefix:      cfg.StagingPrefix,
		MultipartThreshold: cfg.MultipartThreshold,
		CursorKey:          cursorKey,
		LinkKey:            linkKey,
		LinkMaxTTL:         cfg.LinkMaxTTL,
		Retention:          cfg.Retention,
		DeletionDelay:      cfg.DeletionDelay,
		AuditOff:           cfg.AuditOff,
		IngestHook:         ingestHook,
	}, log)
	log.Info("imago ready", "backends", set.Kind, "cache", set.CacheKind)
	return &App{Config: cfg, Service: svc, Backends: set, Log: log}, nil
}

// FromEnv is a Lambda function's start: it reads the configuration from
// the environment, builds the AWS backends it selects (IMAGO_TABLE unset
// is awsbackends.ErrNoTable) and assembles an App on them.
func FromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (*App, error) {
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	set, err := awsbackends.Open(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	a, err := New(cfg, set, log, IngestPause(getenv, log))
	if err != nil {
		return nil, err
	}
	a.embeddedMetrics = true
	return a, nil
}

// IngestPauseVar names a folder for crash tests: when set, every ingest,
// once its blob is stored and before its document is marked available,
// creates a file named after the document there and waits until its
// context ends, so that a test can kill the process at exactly that point.
// Never set in production.
const IngestPauseVar = "IMAGO_TEST_INGEST_PAUSE_DIR"

// IngestPause is the ingest hook IngestPauseVar asks for in getenv's
// environment, or nil.
func IngestPause(getenv func(string) string, log *slog.Logger) func(context.Context, docstore.ID) error {
	dir := getenv(IngestPauseVar)
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
	return apigw.New(a.Service, fn, a.handlerOptions())
}

// handlerOptions are the options of every function's handler.
func (a *App) handlerOptions() apigw.Options {
	return apigw.Options{TenantClaim: a.Config.TenantClaim, Logger: a.Log, EmbeddedMetrics: a.embeddedMetrics}
}

// NewUploadFunction returns the upload function's handler, which takes
// the S3 events of the staging prefix besides its routes. Only the S3
// backends have a bucket: on the embedded ones the events come from
// `imago serve` itself, whatever IMAGO_BUCKET says.
func (a *App) NewUploadFunction() *apigw.UploadFunction {
	bucket := ""
	if a.Config.UsesAWS() {
		bucket = a.Config.Bucket
	}
	return apigw.NewUploadFunction(a.Service, a.handlerOptions(), bucket)
}

// NewMetadataFunction is the metadata function's handler: its routes, and
// the documents table's stream (TTL deletions), whose item images it reads
// as dynamostore writes them.
func (a *App) NewMetadataFunction() *apigw.MetadataFunction {
	return apigw.NewMetadataFunction(a.Service, a.handlerOptions(), dynamostore.DecodeStreamImage)
}

// Close releases the backends.
func (a *App) Close() error { return a.Backends.Close() }
