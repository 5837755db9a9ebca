package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkCacheHit1MiB/baseline=raw-redis-get-2   	    1000	   1000000 ns/op	1048.58 MB/s
BenchmarkCacheHit1MiB/handler-hit-2              	    1000	   1900000 ns/op
BenchmarkCacheHit1MiB/baseline=raw-redis-get-2   	    1000	   3000000 ns/op
BenchmarkCacheHit1MiB/handler-hit-2              	    1000	   2100000 ns/op
BenchmarkCacheHit1MiB/baseline=raw-redis-get-2   	    1000	   1000000 ns/op
BenchmarkCacheHit1MiB/handler-hit-2              	    1000	   2000000 ns/op
BenchmarkCacheHit1MiB/handler-hit-sealed-2       	    1000	   2200000 ns/op
BenchmarkSeal1MiB/baseline=aes-gcm-2 	 100	 900 ns/op
BenchmarkSeal1MiB/envelope-2         	 100	 1000 ns/op
BenchmarkLambdaHealth-2 	 200	 5 ns/op	 1300000 p50-ns	 1000000 baseline-p50-ns
figure bootstrap-size-upload 16.2 MiB
`

func TestEvaluate(t *testing.T) {
	vals, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]result{}
	for _, r := range evaluate(vals) {
		got[r.c.name] = r
	}
	for name, want := range map[string]struct {
		line string
		held bool
	}{
		// the runs' ratios 1.9, 0.7 (a slow baseline run) and 2.0: median 1.9
		"cache-hit-1MiB-vs-redis-get": {"ratio cache-hit-1MiB-vs-redis-get 1.90x (goal <= 2x)", true},
		// one subject run against three baseline runs: medians, 2.2 ms over 1.0 ms
		"cache-hit-1MiB-sealed-vs-redis-get": {"ratio cache-hit-1MiB-sealed-vs-redis-get 2.20x (goal <= 2.5x)", true},
		"envelope-seal-vs-aes-gcm":           {"ratio envelope-seal-vs-aes-gcm 0.90x (goal >= 0.9x)", true},
		"health-rie-vs-empty-handler":        {"ratio health-rie-vs-empty-handler 1.30x (goal <= 1.3x)", true},
		"bootstrap-size-upload":              {"figure bootstrap-size-upload 16.2 MiB (goal <= 15 MiB)", false},
	} {
		r := got[name]
		if !r.ok || r.line() != want.line || r.held() != want.held {
			t.Errorf("%s: %q held=%v ok=%v, want %q held=%v", name, r.line(), r.held(), r.ok, want.line, want.held)
		}
	}
	if r := got["miss-1MiB-vs-s3-get"]; r.ok {
		t.Errorf("miss measured from nothing: %+v", r)
	}
}
