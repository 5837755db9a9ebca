// Package local assembles `imago serve`: the family of backends its
// configuration selects (the AWS ones when IMAGO_TABLE is set, the
// embedded ones otherwise), the App on them, the three functions' handlers
// and the local HTTP front that plays API Gateway (and S3, for the
// presigned uploads of the embedded backends) in front of them. It is
// package app's, apart so that what it links (the embedded backends, the
// local front) stays out of the Lambda functions, which import app only.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/app"
	"github.com/imagodocs/imago/internal/backends"
	"github.com/imagodocs/imago/internal/backends/awsbackends"
	"github.com/imagodocs/imago/internal/backends/embedded"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/localfront"
	"github.com/imagodocs/imago/internal/localstaging"
)

// The local staging area's receiver is what the local front passes the
// presigned PUTs of the embedded backends to.
var _ localfront.LocalStaging = (*localfront.Receiver)(nil)

// RedisPoolSize is `imago serve`'s pool of Redis connections (per node).
// One process serves every request at once, where a Lambda instance
// serves one: a Redis pool as small as a function's would make concurrent
// requests wait for a connection past the cache's timeout.
const RedisPoolSize = 64

// Server is an assembled `imago serve`, short of the HTTP server that
// serves Front on Listener.
type Server struct {
	*app.App
	// Listener listens on IMAGO_ADDR.
	Listener net.Listener
	// Front is the HTTP handler of the whole API.
	Front *localfront.Front

	closers []func() error
}

// Open assembles `imago serve` on cfg (its Redis pool made RedisPoolSize),
// with getenv's ingest hook (app.IngestPause) and, when assemblePauseDir
// is not "", every assembly of an upload in parts on the embedded staging
// area paused there (localstaging.Area.PauseAssemblies; crash tests only),
// each piece built once from what came before:
// the tokens, the listener, the backends (the embedded staging area's
// presigned URLs point at the listener, for the front to receive their
// PUTs), the App, the functions and the front. The embedded family's
// background work starts here: the deliveries of its staging events, and
// the reconciliation that finishes or removes what they (or a killed
// predecessor) left staged. Close ends both before it closes the backends.
func Open(ctx context.Context, cfg config.Config, getenv func(string) string, log *slog.Logger, assemblePauseDir string) (*Server, error) {
	cfg.RedisPoolSize = RedisPoolSize
	var tokens map[string]string
	if cfg.Tokens != "" {
		var err error
		if tokens, err = localfront.LoadTokens(cfg.Tokens); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	set, staging, err := openBackends(ctx, cfg, log, "http://"+ln.Addr().String())
	if err != nil {
		ln.Close()
		return nil, err
	}
	a, err := app.New(cfg, set, log, app.IngestPause(getenv, log))
	if err != nil {
		ln.Close()
		return nil, err
	}
	// The HTTP server closes the listener too; this is for a failed start.
	s := &Server{App: a, Listener: ln, closers: []func() error{ignoreClosed(ln.Close), a.Close}}

	upload := a.NewUploadFunction()
	functions := map[apigw.Function]localfront.Invoker{
		apigw.Upload:   upload,
		apigw.Download: a.Handler(apigw.Download),
		apigw.Metadata: a.Handler(apigw.Metadata),
	}
	s.Front = localfront.New(functions, cfg.TenantClaim, tokens, log)
	s.Front.LimitInlineUploads(cfg.MaxInlineBytes)
	if staging == nil {
		s.Front.EnableS3Events()
		return s, nil
	}
	if assemblePauseDir != "" {
		log.Warn("test hook: assemblies of uploads in parts pause", "dir", assemblePauseDir)
		staging.PauseAssemblies(assemblePauseDir)
	}
	receiver := localfront.NewReceiver(staging, upload, log)
	s.closers = append(s.closers, func() error { receiver.Close(); return nil })
	s.Front.EnableLocalStaging(receiver)
	background, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var reconciling sync.WaitGroup
	reconciling.Go(func() { a.Service.ReconcileLoop(background, docstore.ReconcileInterval) })
	// Expiries and purges: DynamoDB's TTL removes records by itself; the
	// embedded store is swept.
	reconciling.Go(func() { a.Service.SweepLoop(background, docstore.SweepInterval) })
	s.closers = append(s.closers, func() error { stopBackground(); reconciling.Wait(); return nil })
	return s, nil
}

// openBackends opens the backends: IMAGO_TABLE picks the family, the AWS
// backends (S3 receives the presigned PUTs), or the embedded ones, whose
// staging area the server at baseURL plays S3 for (staging is nil for the
// AWS family).
func openBackends(ctx context.Context, cfg config.Config, log *slog.Logger, baseURL string) (set *backends.Set, staging *localstaging.Area, err error) {
	if cfg.UsesAWS() {
		set, err = awsbackends.Open(ctx, cfg, log)
	} else {
		set, staging, err = embedded.Open(ctx, cfg, log, baseURL)
	}
	return set, staging, err
}

// Close stops the background work, then the receiver of presigned PUTs,
// then releases the backends, then the listener: the last opened first.
func (s *Server) Close() error {
	var err error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if e := s.closers[i](); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// ignoreClosed is closeFn without the error of a listener already closed
// (by the HTTP server that served on it).
func ignoreClosed(closeFn func() error) func() error {
	return func() error {
		if err := closeFn(); !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	}
}
