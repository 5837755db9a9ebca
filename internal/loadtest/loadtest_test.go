package loadtest_test

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/app"
	"github.com/imagodocs/imago/internal/backends/embedded"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/loadtest"
	"github.com/imagodocs/imago/internal/localfront"
)

var tokens = map[string]string{"token-a": "tenant-a", "token-b": "tenant-b"}

const inlineLimit = 256 << 10 // small documents keep the test fast

// serve runs what `imago serve` runs, on embedded backends in a temporary
// folder, with two tenants' tokens, behind wrap (which may break it).
func serve(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	env := map[string]string{"IMAGO_DATA_DIR": t.TempDir(), "IMAGO_MAX_INLINE_BYTES": "262144"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	// The staging area's URLs point at the server, as `imago serve`'s do.
	set, staging, err := embedded.Open(context.Background(), cfg, log, "http://"+srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, set, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	upload := a.NewUploadFunction()
	front := localfront.New(map[apigw.Function]localfront.Invoker{
		apigw.Upload:   upload,
		apigw.Download: a.Handler(apigw.Download),
		apigw.Metadata: a.Handler(apigw.Metadata),
	}, a.Config.TenantClaim, tokens, log)
	front.LimitInlineUploads(cfg.MaxInlineBytes)
	front.EnableLocalStaging(localfront.NewReceiver(staging, upload, log))
	h = front
	if wrap != nil {
		h = wrap(front)
	}
	srv.Start()
	return srv.URL
}

// drive runs every kind of operation rounds times from each of 4 clients.
func drive(t *testing.T, url string, rounds int) (loadtest.Result, string) {
	t.Helper()
	var problems syncBuffer
	res, err := loadtest.Run(context.Background(), loadtest.Options{
		URL: url, Tokens: [2]string{"token-a", "token-b"}, Clients: 4, Rounds: rounds,
		MaxInlineBytes: inlineLimit, Presigned: true, Log: log.New(&problems, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	return res, problems.String()
}

func TestRunAgainstServeFindsNothingWrong(t *testing.T) {
	res, problems := drive(t, serve(t, nil), 1)
	t.Logf("%s; %v", res.Line(), res.ByOp)
	if !res.OK() {
		t.Fatalf("%s\n%s", res.Line(), problems)
	}
	for _, op := range []string{"upload-raw", "upload-form", "upload-idempotent", "create-upload", "presigned-put",
		"download", "download-range", "metadata", "list", "delete", "read-deleted", "cross-tenant", "sweep-metadata"} {
		if res.ByOp[op] == 0 {
			t.Errorf("no %s op in %d ops: %v", op, res.Ops, res.ByOp)
		}
	}
	if !strings.HasPrefix(res.Line(), "load: ") || res.P99 < res.P50 {
		t.Errorf("summary: %s", res.Line())
	}
}

// The driver must catch a service that is wrong: each of these breaks
// the real service in one way and expects the counter that names it.
func TestRunCatchesABrokenService(t *testing.T) {
	for name, tc := range map[string]struct {
		breakIt func(w *recorded, r *http.Request)
		want    func(loadtest.Result) int64
	}{
		"a flipped byte in a download": {
			breakIt: func(w *recorded, r *http.Request) {
				if r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/content") && w.status == 200 && w.body.Len() > 0 {
					w.body.Bytes()[w.body.Len()/2] ^= 1
				}
			},
			want: func(r loadtest.Result) int64 { return r.Mismatched },
		},
		"a delete that deletes nothing": {
			breakIt: func(w *recorded, r *http.Request) {
				if r.Method == "DELETE" && w.status == 404 {
					return
				}
				if r.Method == "DELETE" {
					w.status = 204
				}
			},
			want: func(r loadtest.Result) int64 { return r.Mismatched },
		},
		"metadata forgotten": {
			breakIt: func(w *recorded, r *http.Request) {
				if r.Method == "GET" && strings.Count(r.URL.Path, "/") == 2 && w.status == 200 {
					w.status, w.body = 404, *bytes.NewBufferString(`{"error":{"code":"not_found","message":"document not found"}}`)
				}
			},
			want: func(r loadtest.Result) int64 { return r.Lost },
		},
		"a 500 to a delete": {
			breakIt: func(w *recorded, r *http.Request) {
				if r.Method == "DELETE" {
					w.status = 500
				}
			},
			want: func(r loadtest.Result) int64 { return r.Errors },
		},
	} {
		t.Run(name, func(t *testing.T) {
			url := serve(t, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					rec := &recorded{header: http.Header{}, status: 200}
					// A DELETE that deletes nothing is sent on as a GET.
					if r.Method == "DELETE" && name == "a delete that deletes nothing" {
						r2 := r.Clone(r.Context())
						r2.Method = "GET"
						h.ServeHTTP(rec, r2)
					} else {
						h.ServeHTTP(rec, r)
					}
					tc.breakIt(rec, r)
					rec.send(w)
				})
			})
			res, problems := drive(t, url, 1)
			if tc.want(res) == 0 || res.OK() {
				t.Fatalf("%s: not caught: %s\n%s", name, res.Line(), problems)
			}
		})
	}
}

// recorded holds an answer so that a test can change it before it is sent.
type recorded struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorded) Header() http.Header         { return r.header }
func (r *recorded) WriteHeader(s int)           { r.status = s }
func (r *recorded) Write(p []byte) (int, error) { return r.body.Write(p) }

func (r *recorded) send(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	if r.status == 204 || r.status == 304 {
		r.body.Reset()
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(r.body.Len()))
	}
	w.WriteHeader(r.status)
	w.Write(r.body.Bytes())
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
