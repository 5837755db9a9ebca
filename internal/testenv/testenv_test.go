package testenv

import (
	"fmt"
	"testing"
)

func TestTestenv_CheckLoopback(t *testing.T) {
	for val, ok := range map[string]bool{
		"http://127.0.0.1:19001":      true,
		"http://127.0.0.2:80":         true,
		"http://localhost:19002":      true,
		"http://[::1]:19003":          true,
		"redis://127.0.0.1:19004/0":   true,
		"imago-test":                  true, // not a URL
		"alias/imago-test":            true,
		"https://s3.amazonaws.com":    false,
		"http://10.0.0.5:9000":        false,
		"http://192.168.1.1":          false,
		"redis://cache.internal:6379": false,
	} {
		if err := checkLoopback(val); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", val, err, ok)
		}
	}
}

// recorder stands in for a test to see whether Require skips or fails.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skip(args ...any)                  { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestTestenv_RequireSkipsOrFails(t *testing.T) {
	const unset = "IMAGO_TESTENV_SELFTEST_UNSET"
	t.Setenv(unset, "")

	t.Setenv(RequireVar, "")
	r := &recorder{TB: t}
	Require(r, unset)
	if r.skipped == "" || r.failed != "" {
		t.Fatalf("without %s: skipped %q, failed %q; want a skip", RequireVar, r.skipped, r.failed)
	}

	t.Setenv(RequireVar, "1")
	r = &recorder{TB: t}
	Require(r, unset)
	if r.failed == "" || r.skipped != "" {
		t.Fatalf("with %s=1: skipped %q, failed %q; want a failure", RequireVar, r.skipped, r.failed)
	}

	const set = "IMAGO_TESTENV_SELFTEST_SET"
	t.Setenv(set, "http://127.0.0.1:1")
	r = &recorder{TB: t}
	if got := Require(r, set); got[set] != "http://127.0.0.1:1" || r.failed != "" || r.skipped != "" {
		t.Fatalf("Require of a set variable: %v (skipped %q, failed %q)", got, r.skipped, r.failed)
	}

	t.Setenv(set, "https://kms.eu-west-1.amazonaws.com")
	r = &recorder{TB: t}
	Require(r, set)
	if r.failed == "" {
		t.Fatalf("Require accepted a non-loopback endpoint")
	}
}
