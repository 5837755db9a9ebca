//go:build linux

// Package perf measures Imago from outside, against a peer measured in the
// same run: the functions' bootstraps under the Lambda Runtime Interface
// Emulator against the smallest Go function (testdata/hello), and the
// memory the functions and `imago serve` use on a 1 GiB document.
// scripts/bench turns the metrics these benchmarks report into the ratio
// and figure lines of docs/design.md, "Benchmarks and load".
package perf

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/testenv"
)

// cursorSecret and linkSecret are this run's deployment secrets for
// listing cursors and share links: one of each for all the functions, as
// template.yaml gives them.
var cursorSecret, linkSecret = testenv.RandomSecret(), testenv.RandomSecret()

var requiredEnv = append([]string{"IMAGO_TESTENV_BIN"}, testenv.AWSVars...)

var built struct {
	once sync.Once
	dir  string // DIR/NAME/bootstrap for hello, upload, download, metadata; DIR/imago
	err  error
}

// binaries builds the bootstraps (as `make build` does, for this machine)
// and the imago command once per test binary.
func binaries(b *testing.B) string {
	b.Helper()
	built.once.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			built.err = err
			return
		}
		dir, err := os.MkdirTemp("", "imago-perf-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		pkgs := map[string]string{"hello": "./internal/perf/testdata/hello", "upload": "./functions/upload",
			"download": "./functions/download", "metadata": "./functions/metadata"}
		for name, pkg := range pkgs {
			cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w",
				"-o", filepath.Join(dir, name, "bootstrap"), pkg)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
			if out, err := cmd.CombinedOutput(); err != nil {
				built.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "imago"), "./cmd/imago")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build ./cmd/imago: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		b.Fatal(built.err)
	}
	return built.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// functionEnv is a deployed function's environment, as template.yaml sets it.
func functionEnv(name string, memoryMB int) []string {
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "TZ=:UTC", "LANG=C.UTF-8",
		"AWS_LAMBDA_FUNCTION_NAME=imago-perf-" + name, "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=900", fmt.Sprintf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%d", memoryMB),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/imago-perf-" + name, "AWS_LAMBDA_LOG_STREAM_NAME=perf",
		"AWS_DEFAULT_REGION=" + os.Getenv("AWS_REGION"),
		"IMAGO_MAX_INLINE_BYTES=4MiB", "IMAGO_CACHE_MAX_BYTES=8MiB", "IMAGO_STAGING_PREFIX=staging/",
		"IMAGO_TENANT_CLAIM=sub", "IMAGO_LOG_LEVEL=warn",
		"IMAGO_CURSOR_SECRET=" + cursorSecret, // the stack generates one per deployment
		"IMAGO_LINK_SECRET=" + linkSecret,
	}
	// The AWS settings: region, credentials, endpoints of the local
	// servers, and what selects the AWS backends.
	return append(env, testenv.FunctionEnv()...)
}

func start(b *testing.B, name string, memoryMB int, extraEnv ...string) *testenv.Emulated {
	b.Helper()
	vals := testenv.Require(b, requiredEnv...)
	dir := filepath.Join(binaries(b), name)
	e, err := testenv.StartEmulated(filepath.Join(vals["IMAGO_TESTENV_BIN"], "aws-lambda-rie"), dir,
		append(functionEnv(name, memoryMB), extraEnv...), filepath.Join(b.TempDir(), name+".log"))
	if err != nil {
		b.Fatalf("start %s under the emulator: %v", name, err)
	}
	return e
}

// healthEvent is the API Gateway event of GET /health.
func healthEvent(b *testing.B) []byte {
	b.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	ev, err := os.ReadFile(filepath.Join(root, "events", "health.json"))
	if err != nil {
		b.Fatal(err)
	}
	return ev
}

func expectOK(b *testing.B, what string, out []byte) {
	b.Helper()
	var r struct {
		StatusCode int `json:"statusCode"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.StatusCode != 200 {
		b.Fatalf("%s answered %.300s", what, out)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkLambdaHealth is GET /health through the metadata bootstrap under
// the emulator against the hello bootstrap under another emulator, warm,
// invoked alternately so that both see the same machine. It reports the
// median latency of each (p50-ns, baseline-p50-ns).
func BenchmarkLambdaHealth(b *testing.B) {
	ev := healthEvent(b)
	hello, meta := start(b, "hello", 1024), start(b, "metadata", 1024)
	defer hello.Stop()
	defer meta.Stop()
	for _, f := range []*testenv.Emulated{hello, meta} { // cold starts are not this benchmark's
		out, err := f.Invoke(ev)
		if err != nil {
			b.Fatal(err)
		}
		expectOK(b, "health", out)
	}
	var tHello, tMeta []time.Duration
	i := 0
	for b.Loop() {
		pair := [2]*testenv.Emulated{hello, meta}
		if i%2 == 1 {
			pair = [2]*testenv.Emulated{meta, hello}
		}
		i++
		for _, f := range pair {
			t0 := time.Now()
			out, err := f.Invoke(ev)
			d := time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			expectOK(b, "health", out)
			if f == hello {
				tHello = append(tHello, d)
			} else {
				tMeta = append(tMeta, d)
			}
		}
	}
	b.ReportMetric(float64(median(tMeta)), "p50-ns")
	b.ReportMetric(float64(median(tHello)), "baseline-p50-ns")
}

// BenchmarkLambdaColdStart is a cold start: from starting the emulator with
// a bootstrap to the first answer to GET /health, for the metadata bootstrap
// (configuration, AWS clients and all) and for the hello bootstrap,
// alternately. It reports the median of each (cold-ns, baseline-cold-ns).
func BenchmarkLambdaColdStart(b *testing.B) {
	ev := healthEvent(b)
	binaries(b)
	var tHello, tMeta []time.Duration
	i := 0
	for b.Loop() {
		names := []string{"hello", "metadata"}
		if i%2 == 1 {
			names = []string{"metadata", "hello"}
		}
		i++
		for _, name := range names {
			f := start(b, name, 1024)
			out, err := f.Invoke(ev)
			d := time.Since(f.Started)
			f.Stop()
			if err != nil {
				b.Fatal(err)
			}
			expectOK(b, name+" health", out)
			if name == "hello" {
				tHello = append(tHello, d)
			} else {
				tMeta = append(tMeta, d)
			}
		}
	}
	b.ReportMetric(float64(median(tMeta)), "cold-ns")
	b.ReportMetric(float64(median(tHello)), "baseline-cold-ns")
}

// patternReader yields size bytes of a fixed random pattern, without
// holding the document in memory.
type patternReader struct {
	pattern []byte
	off     int64
	size    int64
}

func newPatternReader(size int64) *patternReader {
	p := make([]byte, 1<<20+7) // not a divisor of any part or segment size
	rand.Read(p)
	return &patternReader{pattern: p, size: size}
}

func (r *patternReader) Read(b []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && r.off < r.size {
		i := int(r.off % int64(len(r.pattern)))
		c := copy(b[n:], r.pattern[i:min(len(r.pattern), i+int(min(int64(len(b)-n), r.size-r.off)))])
		n += c
		r.off += int64(c)
	}
	return n, nil
}

func (r *patternReader) at(off int64, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = r.pattern[(off+int64(i))%int64(len(r.pattern))]
	}
	return out
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
