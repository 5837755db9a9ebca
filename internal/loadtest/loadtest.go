// Package loadtest drives an Imago HTTP API with many concurrent clients of
// two tenants, checks every answer against what the service acknowledged,
// and sums the run up in one line (`make load`, docs/design.md, "Benchmarks
// and load"):
//
//	load: <ops> ops, <errors> errors, <lost> lost, <mismatched> mismatched, p50 <d> p99 <d>
//
// The three counters:
//
//   - errors: a request that got an answer the API never gives to a correct
//     request at that moment: a status other than the one expected (any
//     5xx, 503 included: the driver does not retry), a network error or
//     timeout, or an answer that is not well-formed (an error that is not
//     the JSON error shape, metadata that does not parse).
//   - lost: an upload the service acknowledged (201, or an ingested
//     presigned upload) that later reads 404 (metadata or content) although
//     no DELETE of it was ever sent, or that is missing from the final
//     sweep.
//   - mismatched: an answer that contradicts what was acknowledged: bytes
//     whose content (whole or ranged) or SHA-256 differ from the upload,
//     metadata (size, sha256, filename, content type, custom metadata,
//     status) that differ, an Idempotency-Key replay that answers another
//     document, another tenant's document that is readable or listed, or a
//     document served (from the cache or not) after its DELETE answered 204.
//
// Every HTTP request is one op; p50 and p99 are over every op's latency.
// Documents' bytes are generated from a seed, so the driver can check any
// byte of any document it uploaded without holding them in memory.
//
// The JSON it sends and reads is package api's, the wire contract the
// server and the client share: the driver checks what the service does,
// not the spelling of its JSON, which the OpenAPI tests check against
// docs/openapi.yaml.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// Options configure a run.
type Options struct {
	URL      string        // base URL of the API, e.g. http://127.0.0.1:8080
	Tokens   [2]string     // bearer tokens of two different tenants
	Clients  int           // concurrent clients (default 32)
	Duration time.Duration // how long clients send requests (default 60s)
	// Rounds, when positive, replaces Duration with a fixed and complete
	// mix, for tests: each client runs every kind of upload Rounds times,
	// then, once every client has uploaded, every other kind of operation
	// Rounds times.
	Rounds         int
	MaxInlineBytes int64 // the service's IMAGO_MAX_INLINE_BYTES (default 4 MiB)
	// Presigned enables presigned uploads (POST /documents/uploads and a
	// PUT to the URL it answers) of documents over the inline limit.
	Presigned bool
	// IngestWait bounds how long a presigned upload may stay pending after
	// its PUT answered (the S3 event is asynchronous on the AWS backends).
	IngestWait time.Duration
	// RequestTimeout bounds one request; a request that takes longer is an
	// error.
	RequestTimeout time.Duration
	// Log receives one line per problem found (nil: discarded); at most
	// MaxProblemLines of them.
	Log             *log.Logger
	MaxProblemLines int
}

func (o *Options) defaults() {
	if o.Clients <= 0 {
		o.Clients = 32
	}
	if o.Duration <= 0 {
		o.Duration = 60 * time.Second
	}
	if o.MaxInlineBytes <= 0 {
		o.MaxInlineBytes = api.DefaultMaxInlineBytes
	}
	if o.IngestWait <= 0 {
		o.IngestWait = 60 * time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 60 * time.Second
	}
	if o.MaxProblemLines <= 0 {
		o.MaxProblemLines = 100
	}
	o.URL = strings.TrimSuffix(o.URL, "/")
}

// Result sums a run up.
type Result struct {
	Ops, Errors, Lost, Mismatched int64
	P50, P99                      time.Duration
	Elapsed                       time.Duration
	// ByOp counts the ops of each kind, for the curious.
	ByOp map[string]int64
}

// OK reports whether the run found nothing wrong.
func (r Result) OK() bool { return r.Errors == 0 && r.Lost == 0 && r.Mismatched == 0 }

// Line is the one summary line of docs/design.md ("Benchmarks and load").
func (r Result) Line() string {
	return fmt.Sprintf("load: %d ops, %d errors, %d lost, %d mismatched, p50 %v p99 %v",
		r.Ops, r.Errors, r.Lost, r.Mismatched, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond))
}

// run is the state of one run, shared by its clients.
type run struct {
	opt  Options
	http *http.Client
	reg  *registry

	ops, errors, lost, mismatched atomic.Int64
	problems                      atomic.Int64

	mu        sync.Mutex
	latencies []time.Duration
	byOp      map[string]int64
}

// Run drives the API for opt.Duration with opt.Clients clients, then
// sweeps every document it knows: each live one must still be there, whole
// and unchanged, each deleted one must still be gone. It returns an error
// only when it could not run at all (bad options, the API unreachable at
// the start).
func Run(ctx context.Context, opt Options) (Result, error) {
	opt.defaults()
	if opt.URL == "" {
		return Result{}, errors.New("no URL to drive")
	}
	if opt.Tokens[0] == "" || opt.Tokens[1] == "" || opt.Tokens[0] == opt.Tokens[1] {
		return Result{}, errors.New("two different bearer tokens are needed, one per tenant")
	}
	r := &run{
		opt: opt,
		http: &http.Client{
			Transport: &http.Transport{MaxIdleConns: 2 * opt.Clients, MaxIdleConnsPerHost: 2 * opt.Clients, IdleConnTimeout: time.Minute},
			Timeout:   opt.RequestTimeout,
		},
		reg:  newRegistry(),
		byOp: map[string]int64{},
	}
	defer r.http.CloseIdleConnections()
	if err := r.preflight(ctx); err != nil {
		return Result{}, err
	}

	start := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, opt.Duration)
	defer cancel()
	var wg, uploaded sync.WaitGroup
	uploaded.Add(opt.Clients)
	for i := range opt.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{run: r, tenant: i % 2, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))}
			if opt.Rounds <= 0 {
				uploaded.Done()
				for runCtx.Err() == nil {
					c.step(ctx)
				}
				return
			}
			for range opt.Rounds {
				for _, op := range uploadOps {
					op(c, ctx)
				}
			}
			uploaded.Done()
			uploaded.Wait()
			for range opt.Rounds {
				for _, op := range otherOps {
					op(c, ctx)
				}
			}
		}()
	}
	wg.Wait()
	r.sweep(ctx)
	return r.result(time.Since(start)), nil
}

// preflight checks that the API answers and that the two tokens are two
// tenants the service knows, so that a misconfigured run fails with a
// reason instead of thousands of errors.
func (r *run) preflight(ctx context.Context) error {
	for t, token := range r.opt.Tokens {
		req, err := http.NewRequestWithContext(ctx, "GET", r.opt.URL+"/documents?limit=1", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := r.http.Do(req)
		if err != nil {
			return fmt.Errorf("the API at %s does not answer: %w", r.opt.URL, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("listing with token %d: %d %s", t+1, resp.StatusCode, strings.TrimSpace(string(body)))
		}
	}
	return nil
}

// record accounts for one op.
func (r *run) record(op string, took time.Duration) {
	r.ops.Add(1)
	r.mu.Lock()
	r.latencies = append(r.latencies, took)
	r.byOp[op]++
	r.mu.Unlock()
}

// problem kinds.
type problemKind int

const (
	kindError problemKind = iota
	kindLost
	kindMismatch
)

func (r *run) report(kind problemKind, format string, args ...any) {
	label := "error"
	switch kind {
	case kindError:
		r.errors.Add(1)
	case kindLost:
		r.lost.Add(1)
		label = "lost"
	case kindMismatch:
		r.mismatched.Add(1)
		label = "mismatched"
	}
	if r.opt.Log != nil && r.problems.Add(1) <= int64(r.opt.MaxProblemLines) {
		r.opt.Log.Printf("%s: %s", label, fmt.Sprintf(format, args...))
	}
}

func (r *run) result(elapsed time.Duration) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{Ops: r.ops.Load(), Errors: r.errors.Load(), Lost: r.lost.Load(), Mismatched: r.mismatched.Load(),
		Elapsed: elapsed, ByOp: map[string]int64{}}
	for k, v := range r.byOp {
		res.ByOp[k] = v
	}
	if n := len(r.latencies); n > 0 {
		l := slices.Clone(r.latencies)
		slices.Sort(l)
		res.P50, res.P99 = l[quantileIndex(n, 0.50)], l[quantileIndex(n, 0.99)]
	}
	return res
}

// quantileIndex is the nearest-rank index of quantile q in n sorted values.
func quantileIndex(n int, q float64) int {
	i := int(float64(n)*q+0.999999) - 1
	return min(max(i, 0), n-1)
}
