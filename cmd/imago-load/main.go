// Command imago-load is the driver of `make load`: it sends a mix of
// uploads, downloads, listings, deletes and cross-tenant reads from many
// concurrent clients of two tenants to a running Imago API, checks every
// answer, and ends with one line
//
//	load: <ops> ops, <errors> errors, <lost> lost, <mismatched> mismatched, p50 <d> p99 <d>
//
// exiting 1 unless errors, lost and mismatched are all 0 (see package
// internal/loadtest for what each counts). scripts/load starts the servers
// and `imago serve` and runs it; run alone it needs
//
//	IMAGO_URL       the API's base URL
//	LOAD_TOKENS     two bearer tokens of two different tenants, space- or comma-separated
//	LOAD_CLIENTS    concurrent clients (default 32)
//	LOAD_DURATION   how long to send requests (default 60s)
//	LOAD_PRESIGNED  0 to leave out presigned uploads (default 1)
//	IMAGO_MAX_INLINE_BYTES  the service's inline limit (default 4MiB)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := runMain(ctx, os.Getenv, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "imago-load:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// options reads the driver's settings from the environment.
func options(getenv func(string) string, stderr io.Writer) (loadtest.Options, error) {
	opt := loadtest.Options{URL: getenv("IMAGO_URL"), Log: log.New(stderr, "imago-load: ", log.Ltime|log.Lmicroseconds),
		Presigned: true, Clients: 32, Duration: 60 * time.Second}
	var errs []error
	if opt.URL == "" {
		errs = append(errs, errors.New("IMAGO_URL is not set (`make load` starts a service itself when it is unset)"))
	}
	tokens := strings.FieldsFunc(getenv("LOAD_TOKENS"), func(r rune) bool { return r == ',' || r == ' ' })
	if len(tokens) != 2 {
		errs = append(errs, errors.New("LOAD_TOKENS must name two bearer tokens of two different tenants"))
	} else {
		opt.Tokens = [2]string{tokens[0], tokens[1]}
	}
	if v := getenv("LOAD_CLIENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("LOAD_CLIENTS=%q: want a positive number", v))
		}
		opt.Clients = n
	}
	if v := getenv("LOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("LOAD_DURATION=%q: want a positive Go duration such as 60s", v))
		}
		opt.Duration = d
	}
	if v := getenv("IMAGO_MAX_INLINE_BYTES"); v != "" {
		n, err := config.ParseSize(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("IMAGO_MAX_INLINE_BYTES=%q: want a size such as 4MiB", v))
		}
		opt.MaxInlineBytes = n
	}
	if v := getenv("LOAD_PRESIGNED"); v == "0" || v == "false" {
		opt.Presigned = false
	}
	return opt, errors.Join(errs...)
}

func runMain(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) (bool, error) {
	opt, err := options(getenv, stderr)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(stderr, "imago-load: %d clients for %v against %s\n", opt.Clients, opt.Duration, opt.URL)
	res, err := loadtest.Run(ctx, opt)
	if err != nil {
		return false, err
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(res.ByOp)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, res.ByOp[k]))
	}
	fmt.Fprintf(stderr, "imago-load: %.1f ops/s over %v; %s\n", float64(res.Ops)/res.Elapsed.Seconds(), res.Elapsed.Round(time.Millisecond), strings.Join(parts, " "))
	fmt.Fprintln(stdout, res.Line())
	return res.OK(), nil
}
