// Command imago runs Imago on a laptop and is a client of any Imago API.
// `imago serve` puts the three Lambda functions' handlers behind a local
// HTTP front, on embedded backends, or on S3, DynamoDB, KMS and Redis when
// IMAGO_TABLE (and IMAGO_REDIS_URL) are set; put, get, ls, stat, rm,
// restore, hold, release, share, links, unshare and audit (cli.go) drive
// internal/client.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/imagodocs/imago/internal/app"
	"github.com/imagodocs/imago/internal/app/local"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/localfront"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	status := Main(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(status)
}

const usage = `usage: imago [--url URL] [--token TOKEN] <command> [arguments]

commands:
  serve                                     serve the HTTP API on IMAGO_ADDR (default 127.0.0.1:8080)
  put [-meta k=v]... [--expires-in DURATION] [--parallel N] FILE...
                                            upload documents of any size; prints their metadata
  get [-o FILE|DIR] [--force] ID            download a document, checking its SHA-256
  ls [--trash] [--limit N] [--json]         list your documents (or your trash), newest first
  stat ID                                   a document's metadata JSON
  rm [--purge] ID...                        delete documents (into the trash, if the server has one)
  restore ID...                             bring documents back from the trash
  hold ID...                                put a legal hold on documents
  release ID...                             lift their legal hold
  share [--expires DURATION] [--max-uses N] [--attachment] [--json] ID
                                            create a share link to a document; prints its URL
  links [--json] ID                         list a document's live share links
  unshare ID LINK_ID                        revoke a share link
  audit [--since T] [--until T] [--action A] [--limit N] [--json] [ID]
                                            your audit trail, newest first
  audit verify                              check that the trail is intact
  version                                   the version

The client commands talk to --url (default IMAGO_URL, else http://$IMAGO_ADDR) with
--token (default IMAGO_TOKEN) as bearer token. "imago <command> -h" tells more.
Exit status: 0 success, 1 failure, 2 usage error, 3 not found, 4 integrity failure
(a SHA-256 mismatch, or an audit trail that is not intact).
`

const serveHelp = `usage: imago serve

Serves the whole HTTP API on IMAGO_ADDR (default 127.0.0.1:8080): on embedded backends
in IMAGO_DATA_DIR (default ./.imago), or on S3, DynamoDB, KMS and Redis when IMAGO_TABLE
(and IMAGO_REDIS_URL) are set. Configuration comes from the environment; see the README.
It stops on SIGINT or SIGTERM.
`

// Main runs the imago command with args (the program name left out) and
// returns its exit status. It takes everything from its arguments, so
// tests run it in process; serve returns when ctx is cancelled.
func Main(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("imago", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	url := global.String("url", "", "")
	token := global.String("token", "", "")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "imago: %v\n%s", err, usage)
		return exitUsage
	}
	if *url != "" || *token != "" {
		env := getenv
		getenv = func(k string) string {
			switch {
			case k == "IMAGO_URL" && *url != "":
				return *url
			case k == "IMAGO_TOKEN" && *token != "":
				return *token
			}
			return env(k)
		}
	}
	args = global.Args()
	if len(args) == 0 {
		fmt.Fprintf(stderr, "imago: no command given\n%s", usage)
		return exitUsage
	}
	name, args := args[0], args[1:]
	switch name {
	case "help":
		if len(args) == 1 {
			return Main(ctx, []string{args[0], "-h"}, getenv, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	case "serve":
		return runServe(ctx, args, getenv, stdout, stderr)
	}
	var cmd *command
	for _, c := range commands {
		if c.name == name {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "imago: unknown command %q\n%s", name, usage)
		return exitUsage
	}
	c := &cli{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if cmd.flags != nil {
		cmd.flags(c, fs)
	}
	positional, err := parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		cmd.help(stdout, fs)
		return exitOK
	}
	if err == nil {
		err = checkFlags(fs, c, *url, getenv)
	}
	if err != nil {
		err = usageError{fmt.Sprintf("%s: %v", name, err)}
	} else {
		err = cmd.run(ctx, c, fs, positional)
	}
	reportError(stderr, cmd, name, err)
	return exitStatus(err)
}

// checkFlags checks the parsed flags that several commands share:
// --parallel, and the API's URL, named in the error as the user gave it
// (--url, IMAGO_URL, or IMAGO_ADDR by default). globalURL is the --url
// given before the command.
func checkFlags(fs *flag.FlagSet, c *cli, globalURL string, getenv func(string) string) error {
	if fs.Lookup("parallel") != nil && c.parallel < 1 {
		return errors.New("--parallel wants a number from 1 up")
	}
	if fs.Lookup("url") != nil {
		if err := checkURL(c.url); err != nil {
			source := "--url"
			if !isSet(fs, "url") && globalURL == "" {
				source = "IMAGO_URL"
				if getenv("IMAGO_URL") == "" {
					source = "http://$IMAGO_ADDR"
				}
			}
			return fmt.Errorf("%s: %w", source, err)
		}
	}
	return nil
}

// reportError writes the error of command name to stderr: a usage error
// with the command's usage, an error the command reported itself not at
// all, any other as it is.
func reportError(stderr io.Writer, cmd *command, name string, err error) {
	var usageErr usageError
	var done reported
	switch {
	case err == nil:
	case errors.As(err, &usageErr):
		fmt.Fprintf(stderr, "imago %v\n%s\n(imago %s -h tells more)\n", err, cmd.usage(), name)
	case errors.As(err, &done):
	default:
		fmt.Fprintln(stderr, "imago:", err)
	}
}

// isSet says whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, serveHelp)
			return exitOK
		}
		fmt.Fprintf(stderr, "imago serve: takes no arguments\n%s", serveHelp)
		return exitUsage
	}
	if err := serve(ctx, getenv, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "imago:", err)
		return exitFailure
	}
	return exitOK
}

// serveLogger is `imago serve`'s logger: JSON lines, as every function
// writes them, unless stderr is a terminal, where a person reads them and
// slog's key=value text is easier on the eye.
func serveLogger(stderr io.Writer, getenv func(string) string) *slog.Logger {
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: app.LogLevel(getenv)}))
	}
	return app.NewLogger(stderr, getenv)
}

// assemblePauseVar names a folder for crash tests: when set, `imago serve`
// pauses every assembly of an upload in parts once its first part is
// written, so that a test can kill the process, or drop the client, at
// exactly that point (localstaging.Area.PauseAssemblies). Never set in
// production.
const assemblePauseVar = "IMAGO_TEST_ASSEMBLE_PAUSE_DIR"

// transferIdleTimeout is how long a request or response body may stay
// still before `imago serve` drops the connection (a variable for tests).
var transferIdleTimeout = 60 * time.Second

// serve runs `imago serve`: the configuration, the assembly package local
// makes of it, then the HTTP server until ctx ends.
func serve(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	log := serveLogger(stderr, getenv)
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	s, err := local.Open(ctx, cfg, getenv, log, getenv(assemblePauseVar))
	if err != nil {
		return err
	}
	defer s.Close()
	// No ReadTimeout or WriteTimeout: they bound a whole request, and a
	// presigned PUT of a 5 GiB part may take hours while it moves. A
	// transfer is cut when it stops moving instead.
	srv := &http.Server{
		Handler:           localfront.WithIdleTimeout(s.Front, transferIdleTimeout),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(stdout, "imago serving on http://%s (backends: %s, cache: %s)\n", s.Listener.Addr(), s.Backends.Kind, s.Backends.CacheKind)
	return runServer(ctx, srv, s.Listener)
}

// runServer serves on ln until srv fails or ctx ends, then shuts srv down.
func runServer(ctx context.Context, srv *http.Server, ln net.Listener) error {
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
