//go:build linux

package lambdae2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/testenv"
)

// The functions, as the functions/ folder names them.
const (
	fnUpload   = "upload"
	fnDownload = "download"
	fnMetadata = "metadata"
)

// requiredEnv must be set (and point at loopback) for these tests to run:
// the local servers, Redis, the credentials and the emulator's folder.
var requiredEnv = append([]string{"IMAGO_TESTENV_BIN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "IMAGO_REDIS_URL"},
	testenv.AWSVars...)

// cursorSecret and linkSecret are this run's deployment secrets for
// listing cursors and share links: one of each for all the functions, as
// template.yaml gives them.
var cursorSecret, linkSecret = testenv.RandomSecret(), testenv.RandomSecret()

// functionSettings mirror template.yaml: timeout (s) and memory (MB).
var functionSettings = map[string][2]int{
	fnUpload:   {900, 2048},
	fnDownload: {29, 1024},
	fnMetadata: {29, 1024},
}

// maxInline is IMAGO_MAX_INLINE_BYTES as template.yaml sets it (the default).
const maxInline = 4 << 20

var build struct {
	once   sync.Once
	logged sync.Once
	dir    string // DIR/{upload,download,metadata}/bootstrap
	err    error
	took   time.Duration
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		// Every emulator the tests started has stopped, and with it the
		// bootstrap it started: none may outlive the run (the emulator
		// starts it in a process group of its own).
		for _, pid := range running(build.dir) {
			fmt.Fprintf(os.Stderr, "a bootstrap outlived its emulator: pid %d; ending it\n", pid)
			syscall.Kill(pid, syscall.SIGKILL)
			code = 1
		}
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// running lists the processes that run an executable below dir.
func running(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", ent.Name(), "exe")); err == nil && strings.HasPrefix(exe, dir+string(filepath.Separator)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// requireEnv skips (or, under IMAGO_REQUIRE_TESTENV=1, fails) the test when
// the local servers or the emulator are missing.
func requireEnv(t *testing.T, extra ...string) map[string]string {
	t.Helper()
	vals := testenv.Require(t, append(append([]string{}, requiredEnv...), extra...)...)
	rie := filepath.Join(vals["IMAGO_TESTENV_BIN"], "aws-lambda-rie")
	if st, err := os.Stat(rie); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		msg := fmt.Sprintf("the Lambda Runtime Interface Emulator is not installed at %s: run `scripts/testenv up`", rie)
		if testenv.Required() {
			t.Fatalf("%s=1: %s", testenv.RequireVar, msg)
		}
		t.Skip(msg)
	}
	return vals
}

// repoRoot is the module root above the test's working directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// bootstraps builds the three functions for this machine, once per test
// binary, exactly as a Lambda deployment package holds them: an executable
// named bootstrap. It returns the folder holding NAME/bootstrap.
func bootstraps(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		start := time.Now()
		defer func() { build.took = time.Since(start) }()
		root := repoRoot(t)
		dir, err := os.MkdirTemp("", "imago-lambdae2e-")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		goBin, err := exec.LookPath("go")
		if err != nil {
			build.err = fmt.Errorf("go command: %w", err)
			return
		}
		// One go build for the three: they share almost every package.
		out := filepath.Join(dir, "out") + string(filepath.Separator)
		cmd := exec.Command(goBin, "build", "-tags", "lambda.norpc", "-o", out,
			"./functions/"+fnUpload, "./functions/"+fnDownload, "./functions/"+fnMetadata)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
		if msg, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build of the functions: %v\n%s", err, msg)
			return
		}
		for _, fn := range []string{fnUpload, fnDownload, fnMetadata} {
			if err := os.MkdirAll(filepath.Join(dir, fn), 0o755); err != nil {
				build.err = err
				return
			}
			if err := os.Rename(filepath.Join(out, fn), filepath.Join(dir, fn, "bootstrap")); err != nil {
				build.err = err
				return
			}
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	build.logged.Do(func() { t.Logf("built the three bootstraps in %s", build.took.Round(time.Millisecond)) })
	return build.dir
}

// function is one Lambda function running under the emulator.
type function struct {
	name string
	url  string // the invoke URL
	log  string // the emulator's (and the function's) output

	mu sync.Mutex // the emulator runs one invocation at a time

	// kill is kill -9 of the emulator and the bootstrap, as a crashed or
	// timed-out execution environment ends.
	kill func()
}

// startFunction builds (once) and starts function fn under the emulator on
// free loopback ports, with the environment of a deployed function; t's
// cleanup stops it. It returns once the emulator accepts invocations (the
// function itself starts on the first one, as a cold start does).
// extraEnv ("K=V") is added to the function's environment.
func startFunction(t *testing.T, fn string, extraEnv ...string) *function {
	t.Helper()
	vals := requireEnv(t)
	dir := filepath.Join(bootstraps(t), fn)
	rie := filepath.Join(vals["IMAGO_TESTENV_BIN"], "aws-lambda-rie")
	logPath := filepath.Join(t.TempDir(), fn+".log")

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		f, err := launch(t, rie, dir, fn, logPath, extraEnv)
		if err == nil {
			return f
		}
		lastErr = err
	}
	t.Fatalf("start %s under the emulator: %v\n%s", fn, lastErr, tail(logPath, 40))
	return nil
}

func launch(t *testing.T, rie, dir, fn, logPath string, extraEnv []string) (*function, error) {
	settings := functionSettings[fn]
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"TZ=:UTC",
		"LANG=C.UTF-8",
		"AWS_LAMBDA_FUNCTION_NAME=imago-e2e-" + fn,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(settings[0]),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(settings[1]),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/imago-e2e-" + fn,
		"AWS_LAMBDA_LOG_STREAM_NAME=e2e",
		"AWS_DEFAULT_REGION=" + os.Getenv("AWS_REGION"),
		// What template.yaml sets and these tests rely on.
		"IMAGO_MAX_INLINE_BYTES=4MiB",
		"IMAGO_CACHE_MAX_BYTES=8MiB",
		"IMAGO_STAGING_PREFIX=staging/",
		"IMAGO_TENANT_CLAIM=sub",
		"IMAGO_LOG_LEVEL=info",
		// What the deployment's Secrets Manager secret gives every function.
		"IMAGO_CURSOR_SECRET=" + cursorSecret,
		"IMAGO_LINK_SECRET=" + linkSecret,
	}
	// The region, credentials and endpoints of the local servers, and the
	// settings that select the AWS backends: nothing else of the test's
	// environment leaks into a function.
	env = append(env, testenv.FunctionEnv()...)
	env = append(env, extraEnv...) // a test's own settings win

	e, err := testenv.StartEmulated(rie, dir, env, logPath)
	if err != nil {
		return nil, err
	}
	f := &function{name: fn, url: e.URL, log: logPath, kill: e.Stop}
	t.Cleanup(func() {
		e.Shutdown()
		if t.Failed() {
			t.Logf("output of %s under the emulator (last lines):\n%s", fn, tail(logPath, 60))
		}
	})
	return f, nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no output: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 600 {
			lines[i] = l[:600] + "…"
		}
	}
	return strings.Join(lines, "\n")
}

var invokeClient = &http.Client{Timeout: 2 * time.Minute}

// invoke sends payload to the function through the emulator's invoke API
// and returns the function's answer. An emulator error or a function error
// ({"errorMessage", "errorType"}: the handler returned an error or
// panicked) fails the test.
func (f *function) invoke(t testing.TB, payload []byte) []byte {
	t.Helper()
	body, fnErr, err := f.tryInvoke(payload)
	if err != nil {
		t.Fatalf("invoke %s: %v\n%s", f.name, err, tail(f.log, 30))
	}
	if fnErr != nil {
		t.Fatalf("invoke %s: function error %s: %s\n%s", f.name, fnErr.ErrorType, fnErr.ErrorMessage, tail(f.log, 30))
	}
	return body
}

type functionError struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

func (f *function) tryInvoke(payload []byte) ([]byte, *functionError, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp, err := invokeClient.Post(f.url, "application/json", bytes.NewReader(payload))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("the emulator answered %s: %q", resp.Status, snippet(body))
	}
	var fe functionError
	if json.Unmarshal(body, &fe) == nil && fe.ErrorType != "" && fe.ErrorMessage != "" {
		return body, &fe, nil
	}
	return body, nil, nil
}

// reply is a function's answer to an API Gateway event.
type reply struct {
	events.APIGatewayV2HTTPResponse
	raw  []byte
	body []byte // Body, base64-decoded when IsBase64Encoded
}

// call invokes the function with an API Gateway event and decodes the
// answer as API Gateway does: the payload 2.0 response shape, nothing else.
func (f *function) call(t testing.TB, event []byte) reply {
	t.Helper()
	raw := f.invoke(t, event)
	var r reply
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r.APIGatewayV2HTTPResponse); err != nil {
		t.Fatalf("%s answered something that is not an API Gateway v2 response (%v): %q", f.name, err, snippet(raw))
	}
	r.raw = raw
	if r.StatusCode < 100 || r.StatusCode > 599 {
		t.Fatalf("%s answered status %d", f.name, r.StatusCode)
	}
	r.body = []byte(r.Body)
	if r.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(r.Body)
		if err != nil {
			t.Fatalf("%s: body marked base64 is not: %v", f.name, err)
		}
		r.body = b
	}
	for name := range r.Headers {
		if name != strings.ToLower(name) {
			t.Errorf("%s: response header %q is not lower-case", f.name, name)
		}
	}
	checkOpenAPI(t, event, r)
	return r
}

// header returns a response header by its (lower-case) name.
func (r reply) header(name string) string { return r.Headers[name] }

func (r reply) String() string { return snippet(r.raw) }

// expect fails the test unless the answer has the status.
func (r reply) expect(t testing.TB, what string, status int) reply {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.StatusCode, status, r)
	}
	return r
}

// decode decodes a JSON body, which must say it is JSON.
func (r reply) decode(t testing.TB, what string, v any) {
	t.Helper()
	if ct := r.header("content-type"); ct != "application/json" {
		t.Fatalf("%s: content-type %q, want application/json", what, ct)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%s: body is not the expected JSON (%v): %q", what, err, snippet(r.body))
	}
}

// expectError checks an error answer: the status, and the JSON error body
// with its machine-readable code. It returns the message.
func (r reply) expectError(t testing.TB, what string, status int, code string) string {
	t.Helper()
	r.expect(t, what, status)
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	r.decode(t, what, &e)
	if e.Error.Code != code || e.Error.Message == "" {
		t.Fatalf("%s: error %+v, want code %q and a message", what, e.Error, code)
	}
	return e.Error.Message
}

func snippet(b []byte) string {
	s := string(b)
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}
