// Command localkms serves github.com/nsmithuk/local-kms (a KMS-compatible
// server speaking the real KMS JSON protocol) on a loopback address only.
//
// local-kms's own main listens on every interface; this program reuses its
// exported request handler and database over a listener of its own, and
// refuses any address that is not a loopback address.
//
//	localkms -addr 127.0.0.1:19003 -data .testenv/data/kms -region us-east-1
//
// GET /health answers 200 (for readiness probes); everything else is
// local-kms's handler (POST / with X-Amz-Target: TrentService.<Op>).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	kms "github.com/nsmithuk/local-kms/src"
	"github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19003", "loopback listen address host:port")
	dataDir := flag.String("data", ".testenv/data/kms", "directory of the key database (created if missing)")
	region := flag.String("region", envOr("KMS_REGION", "us-east-1"), "region used in key ARNs")
	account := flag.String("account", envOr("KMS_ACCOUNT_ID", "111122223333"), "account id used in key ARNs")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("localkms: ")

	if err := run(*addr, *dataDir, *region, *account); err != nil {
		log.Fatal(err)
	}
}

func run(addr, dataDir, region, account string) error {
	if err := requireLoopback(addr); err != nil {
		return err
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}
	config.AWSRegion = region
	config.AWSAccountId = account
	config.DatabasePath = abs

	db, err := openDatabase(abs)
	if err != nil {
		return fmt.Errorf("open key database %s: %w", abs, err)
	}
	defer db.Close()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		kms.HandleRequest(w, r, db)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("serving local-kms on http://%s (region %s, account %s, data %s)", ln.Addr(), region, account, abs)

	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		log.Printf("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return nil
}

// openDatabase wraps data.NewDatabase, which panics on failure (for example
// when another process holds the leveldb lock).
func openDatabase(path string) (db *data.Database, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return data.NewDatabase(path), nil
}

func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad -addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: only loopback addresses are allowed (e.g. 127.0.0.1:19003)", addr)
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
