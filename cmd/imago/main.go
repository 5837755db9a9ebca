// Command imago runs Imago on a laptop: `imago serve` puts the three
// Lambda functions' handlers behind a local HTTP front, on embedded
// backends, or on S3, DynamoDB, KMS and Redis when IMAGO_TABLE (and
// IMAGO_REDIS_URL) are set.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/app"
	"github.com/imagodocs/imago/internal/fsstore"
	"github.com/imagodocs/imago/internal/localfront"
)

// The embedded staging area is what the local front receives PUTs for:
// single ones and parts.
var (
	_ localfront.StagingReceiver = (*fsstore.Staging)(nil)
	_ localfront.PartReceiver    = (*fsstore.Staging)(nil)
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Main(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "imago:", err)
		os.Exit(1)
	}
}

const usage = `usage: imago <command> [arguments]

commands:
  serve                                  serve the HTTP API on IMAGO_ADDR (default 127.0.0.1:8080)
  put [-type T] [-meta k=v]... FILE      upload a document of any size; prints its metadata
  get [-o FILE] ID                       download a document (in Range parts when it is large)

put and get talk to IMAGO_URL (default http://$IMAGO_ADDR), with IMAGO_TOKEN as
bearer token if set. Configuration comes from the environment; see the README.
`

// Main runs the imago command; it returns when ctx is cancelled (serve) or
// the command is done.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, getenv, stdout, stderr)
	case "put":
		return runPut(ctx, args[1:], getenv, stdout, stderr)
	case "get":
		return runGet(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func serve(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	log := app.NewLogger(stderr, getenv)
	a, err := app.FromEnv(ctx, getenv, log)
	if err != nil {
		return err
	}
	defer a.Close()
	if st := a.Backends.LocalStaging; st != nil {
		// The metadata store's lock is held: no other process receives
		// PUTs into this staging folder. What a killed run left is swept.
		n, err := st.Sweep()
		if err != nil {
			return err
		}
		if n > 0 {
			log.Warn("removed staged plaintext a previous run left behind", "files", n)
		}
	}

	var tokens map[string]string
	if a.Config.Tokens != "" {
		if tokens, err = localfront.LoadTokens(a.Config.Tokens); err != nil {
			return err
		}
	}
	functions := map[apigw.Function]localfront.Invoker{
		apigw.Upload:   a.NewUploadFunction(),
		apigw.Download: a.Handler(apigw.Download),
		apigw.Metadata: a.Handler(apigw.Metadata),
	}
	front := localfront.New(functions, a.Config.TenantClaim, tokens, log)
	if a.Config.UsesAWS() {
		front.EnableS3Events()
	}

	ln, err := net.Listen("tcp", a.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.Config.Addr, err)
	}
	srv := &http.Server{
		Handler:           front,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	if st := a.Backends.LocalStaging; st != nil {
		st.SetBaseURL("http://" + ln.Addr().String())
		front.EnableLocalStaging(st, st.PathPrefix())
	}
	fmt.Fprintf(stdout, "imago serving on http://%s (backends: %s, cache: %s)\n", ln.Addr(), a.Backends.Kind, a.Backends.CacheKind)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
