// Package functions_test checks what the three Lambda functions are built
// from: they run on the AWS backends only, so they link no embedded backend
// (internal/backends/embedded is `imago serve`'s), and without IMAGO_TABLE
// they fail at startup with a clear error instead of trying to run on
// files a Lambda function cannot keep.
package functions_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var functions = []string{"upload", "download", "metadata"}

// embeddedPackages are `imago serve`'s own: what a function must not link.
var embeddedPackages = []string{
	"go.etcd.io/bbolt",
	"github.com/imagodocs/imago/internal/backends/embedded",
	"github.com/imagodocs/imago/internal/boltstore",
	"github.com/imagodocs/imago/internal/fsstore",
	"github.com/imagodocs/imago/internal/localkeys",
	"github.com/imagodocs/imago/internal/localstaging",
	"github.com/imagodocs/imago/internal/localfront",
}

func goTool(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the functions' dependencies: %v", err)
	}
	return goBin
}

// TestFunctionsLinkNoEmbeddedBackend lists each function's dependencies as
// the Lambda build makes them (linux, arm64, the tags of the Makefile).
func TestFunctionsLinkNoEmbeddedBackend(t *testing.T) {
	goBin := goTool(t)
	for _, fn := range functions {
		t.Run(fn, func(t *testing.T) {
			cmd := exec.Command(goBin, "list", "-deps", "-tags", "lambda.norpc", "./"+fn)
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps ./functions/%s: %v\n%s", fn, err, stderr.String())
			}
			deps := strings.Fields(string(out))
			if len(deps) == 0 || deps[len(deps)-1] != "github.com/imagodocs/imago/functions/"+fn {
				t.Fatalf("go list -deps ./functions/%s did not list the function itself last: %q", fn, deps)
			}
			for _, dep := range deps {
				for _, banned := range embeddedPackages {
					if dep == banned || strings.HasPrefix(dep, banned+"/") {
						t.Errorf("functions/%s links %s, an embedded backend's package (`imago serve` only)", fn, dep)
					}
				}
			}
		})
	}
}

// TestFunctionWithoutTableFailsAtStartup runs each function's binary with
// the environment of a Lambda function that has no IMAGO_TABLE: it must
// exit at once, non-zero, with a startup error that names IMAGO_TABLE, as
// a Lambda init error (before any runtime API is reached).
func TestFunctionWithoutTableFailsAtStartup(t *testing.T) {
	goBin := goTool(t)
	dir := t.TempDir()
	for _, fn := range functions {
		t.Run(fn, func(t *testing.T) {
			bin := filepath.Join(dir, fn)
			build := exec.Command(goBin, "build", "-tags", "lambda.norpc", "-o", bin, "./"+fn)
			build.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("build functions/%s: %v\n%s", fn, err, out)
			}
			run := exec.Command(bin)
			run.Dir = t.TempDir() // where embedded backends, were they tried, would leave files
			run.Env = []string{
				"AWS_LAMBDA_FUNCTION_NAME=imago-" + fn,
				"AWS_LAMBDA_RUNTIME_API=127.0.0.1:9", // never reached
				"IMAGO_CURSOR_SECRET=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
			}
			var stderr bytes.Buffer
			run.Stderr = &stderr
			err := run.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("functions/%s without IMAGO_TABLE: %v, want exit status 1\n%s", fn, err, stderr.String())
			}
			log := stderr.String()
			if !strings.Contains(log, `"msg":"startup failed"`) || !strings.Contains(log, "IMAGO_TABLE is not set") {
				t.Errorf("functions/%s's startup log does not say IMAGO_TABLE is missing:\n%s", fn, log)
			}
			if entries, _ := os.ReadDir(run.Dir); len(entries) > 0 {
				t.Errorf("functions/%s without IMAGO_TABLE left %d files in its working folder", fn, len(entries))
			}
		})
	}
}
