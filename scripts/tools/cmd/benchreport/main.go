// Command benchreport reads the output of `go test -bench` (several -count
// runs) and of scripts/bench's own measurements, and prints one line per
// comparison in the format of docs/design.md, "Benchmarks and load":
//
//	ratio <name> <value>x (goal <=|>= <value>x)
//	figure <name> <value> <unit> (goal <=|>= <value> <unit>)
//
// then a short table (name, value, goal, held or not). Every value is the
// median over the runs of the input; a ratio is the median of the runs'
// own ratios, the i-th run of the subject over the i-th of the baseline,
// when both have as many runs. It exits 1 when a comparison has no
// measurement in the input, 0 otherwise: a goal missed is reported, not an
// error, so that one slow figure does not hide the others.
//
// Besides benchmark lines it reads lines `figure <name> <value> <unit>`
// (scripts/bench measures the bootstrap sizes itself).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A metric names one value of one benchmark: the benchmark (without the
// -GOMAXPROCS suffix) and the unit of the value on its line (ns/op, or a
// metric the benchmark reported).
type metric struct{ bench, unit string }

// A comparison is one line of the report.
type comparison struct {
	name string
	// ratio: value = subject/baseline (lower is better, "<=") or
	// baseline/subject (a throughput ratio, ">=").
	subject, baseline metric
	// figure: value = subject scaled by scale, in unit.
	unit   string
	scale  float64
	goal   float64
	atMost bool // goal is "<=" (else ">=")
}

func (c comparison) isRatio() bool { return c.baseline.bench != "" }

var comparisons = []comparison{
	{name: "cache-hit-1MiB-vs-redis-get", subject: metric{"BenchmarkCacheHit1MiB/handler-hit", "ns/op"},
		baseline: metric{"BenchmarkCacheHit1MiB/baseline=raw-redis-get", "ns/op"}, goal: 2.0, atMost: true},
	{name: "cache-hit-1MiB-sealed-vs-redis-get", subject: metric{"BenchmarkCacheHit1MiB/handler-hit-sealed", "ns/op"},
		baseline: metric{"BenchmarkCacheHit1MiB/baseline=raw-redis-get", "ns/op"}, goal: 2.5, atMost: true},
	// A share link's answer from a hot cache against the owner's hit, and
	// against the conditional UpdateItem that counts its use, which it
	// overlaps with the cache read and cannot go below.
	{name: "link-hit-1MiB-vs-owner-hit", subject: metric{"BenchmarkLinkHit1MiB/link-hit", "ns/op"},
		baseline: metric{"BenchmarkLinkHit1MiB/baseline=owner-hit", "ns/op"}, goal: 1.3, atMost: true},
	{name: "link-hit-1MiB-vs-use-update", subject: metric{"BenchmarkLinkHit1MiB/link-hit", "ns/op"},
		baseline: metric{"BenchmarkLinkHit1MiB/floor=use-update", "ns/op"}, goal: 1.3, atMost: true},
	// A 1 MiB hit with its audit record appended (while the answer is
	// encoded) against the same hit unaudited, and against the record's
	// PutItem alone; and how many records one tenant appends per second,
	// 32 requests at once, on DynamoDB Local.
	{name: "cache-hit-1MiB-audited-vs-unaudited", subject: metric{"BenchmarkCacheHit1MiBAudited/audited", "ns/op"},
		baseline: metric{"BenchmarkCacheHit1MiBAudited/baseline=unaudited", "ns/op"}, goal: 1.5, atMost: true},
	{name: "cache-hit-1MiB-audited-vs-audit-put", subject: metric{"BenchmarkCacheHit1MiBAudited/audited", "ns/op"},
		baseline: metric{"BenchmarkCacheHit1MiBAudited/floor=audit-put", "ns/op"}, goal: 1.3, atMost: true},
	{name: "audit-appends-per-second", subject: metric{"BenchmarkAuditAppends", "appends/s"}, unit: "appends/s", scale: 1, goal: 500},
	{name: "miss-1MiB-vs-s3-get", subject: metric{"BenchmarkMiss1MiB/handler-miss", "ns/op"},
		baseline: metric{"BenchmarkMiss1MiB/baseline=s3-get-object", "ns/op"}, goal: 1.5, atMost: true},
	// The miss against what it cannot do without, the record's GetItem then
	// the blob's GetObject, measured beside it in the same benchmark.
	{name: "miss-1MiB-vs-floor", subject: metric{"BenchmarkMiss1MiB/handler-miss", "ns/op"},
		baseline: metric{"BenchmarkMiss1MiB/floor=get-item-then-s3-get", "ns/op"}, goal: 1.15, atMost: true},
	// The same with a model of AWS's latencies added before every call
	// (which the local servers lack): the blob is fetched while the record
	// is read, so the miss goes below the sequential floor.
	{name: "miss-1MiB-vs-floor-aws-latency", subject: metric{"BenchmarkMiss1MiB/handler-miss-latency", "ns/op"},
		baseline: metric{"BenchmarkMiss1MiB/floor=get-item-then-s3-get-latency", "ns/op"}, goal: 0.9, atMost: true},
	// What the miss cannot go below on the local servers (plain SDK calls,
	// internal/perf): the record's GetItem over the GetObject (at most half
	// of it, or a miss that reads the record before the blob cannot make
	// 1.5x), the two one after the other, and the two at once.
	{name: "miss-floor-getitem-vs-s3-get", subject: metric{"BenchmarkMissFloor1MiB/dynamodb-get-item", "ns/op"},
		baseline: metric{"BenchmarkMissFloor1MiB/baseline=s3-get-object", "ns/op"}, goal: 0.5, atMost: true},
	{name: "miss-floor-sequential-vs-s3-get", subject: metric{"BenchmarkMissFloor1MiB/get-item-then-s3-get", "ns/op"},
		baseline: metric{"BenchmarkMissFloor1MiB/baseline=s3-get-object", "ns/op"}, goal: 1.5, atMost: true},
	{name: "miss-floor-overlapped-vs-s3-get", subject: metric{"BenchmarkMissFloor1MiB/get-item-with-s3-get", "ns/op"},
		baseline: metric{"BenchmarkMissFloor1MiB/baseline=s3-get-object", "ns/op"}, goal: 1.5, atMost: true},
	// Throughput ratios: the baseline's time over the envelope's.
	{name: "envelope-seal-vs-aes-gcm", subject: metric{"BenchmarkSeal1MiB/baseline=aes-gcm", "ns/op"},
		baseline: metric{"BenchmarkSeal1MiB/envelope", "ns/op"}, goal: 0.9},
	{name: "envelope-open-vs-aes-gcm", subject: metric{"BenchmarkOpen1MiB/baseline=aes-gcm", "ns/op"},
		baseline: metric{"BenchmarkOpen1MiB/envelope", "ns/op"}, goal: 0.9},
	// The same, the raw cipher reading its bytes from a reader first, as
	// the envelope must: the format's own price, without the copy.
	{name: "envelope-open-vs-aes-gcm-from-reader", subject: metric{"BenchmarkOpen1MiB/baseline=aes-gcm-from-reader", "ns/op"},
		baseline: metric{"BenchmarkOpen1MiB/envelope", "ns/op"}, goal: 0.9},
	{name: "health-rie-vs-empty-handler", subject: metric{"BenchmarkLambdaHealth", "p50-ns"},
		baseline: metric{"BenchmarkLambdaHealth", "baseline-p50-ns"}, goal: 1.3, atMost: true},
	{name: "cold-start-vs-hello-bootstrap", subject: metric{"BenchmarkLambdaColdStart", "cold-ns"},
		baseline: metric{"BenchmarkLambdaColdStart", "baseline-cold-ns"}, goal: 1.5, atMost: true},
	{name: "bootstrap-size-upload", subject: metric{"figure", "bootstrap-size-upload"}, unit: "MiB", scale: 1, goal: 15, atMost: true},
	{name: "bootstrap-size-download", subject: metric{"figure", "bootstrap-size-download"}, unit: "MiB", scale: 1, goal: 15, atMost: true},
	{name: "bootstrap-size-metadata", subject: metric{"figure", "bootstrap-size-metadata"}, unit: "MiB", scale: 1, goal: 15, atMost: true},
	{name: "ingest-1GiB-peak-rss", subject: metric{"BenchmarkLambdaMemory1GiB", "ingest-peak-MiB"}, unit: "MiB", scale: 1, goal: 64, atMost: true},
	{name: "ranged-get-1GiB-peak-rss", subject: metric{"BenchmarkLambdaMemory1GiB", "ranged-get-peak-MiB"}, unit: "MiB", scale: 1, goal: 64, atMost: true},
	{name: "serve-ingest-1GiB-peak-rss", subject: metric{"BenchmarkServeMemory1GiB", "serve-ingest-peak-MiB"}, unit: "MiB", scale: 1, goal: 96, atMost: true},
	{name: "serve-ranged-get-1GiB-peak-rss", subject: metric{"BenchmarkServeMemory1GiB", "serve-ranged-get-peak-MiB"}, unit: "MiB", scale: 1, goal: 96, atMost: true},
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// parse collects every value of every metric in r.
func parse(r io.Reader) (map[metric][]float64, error) {
	vals := map[metric][]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 4 && f[0] == "figure":
			// figure NAME VALUE UNIT, measured by scripts/bench.
			if v, err := strconv.ParseFloat(f[2], 64); err == nil {
				vals[metric{"figure", f[1]}] = append(vals[metric{"figure", f[1]}], v)
			}
		case len(f) >= 4 && strings.HasPrefix(f[0], "Benchmark"):
			name := procSuffix.ReplaceAllString(f[0], "")
			// NAME ITERATIONS (VALUE UNIT)…
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					break
				}
				m := metric{name, f[i+1]}
				vals[m] = append(vals[m], v)
			}
		}
	}
	return vals, sc.Err()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio is the median of the runs' ratios when subject and baseline were
// measured in the same number of runs (scripts/bench runs each pair side
// by side, one run after the other: on a shared machine the load drifts
// between runs far more than within one), else the ratio of the medians.
func ratio(subject, baseline []float64) float64 {
	if len(subject) != len(baseline) {
		return median(subject) / median(baseline)
	}
	r := make([]float64, len(subject))
	for i := range subject {
		r[i] = subject[i] / baseline[i]
	}
	return median(r)
}

type result struct {
	c     comparison
	value float64
	ok    bool // measured
}

func (r result) held() bool {
	if r.c.atMost {
		return r.value <= r.c.goal
	}
	return r.value >= r.c.goal
}

func (r result) op() string {
	if r.c.atMost {
		return "<="
	}
	return ">="
}

func (r result) line() string {
	if r.c.isRatio() {
		return fmt.Sprintf("ratio %s %.2fx (goal %s %gx)", r.c.name, r.value, r.op(), r.c.goal)
	}
	return fmt.Sprintf("figure %s %.1f %s (goal %s %g %s)", r.c.name, r.value, r.c.unit, r.op(), r.c.goal, r.c.unit)
}

func evaluate(vals map[metric][]float64) []result {
	var out []result
	for _, c := range comparisons {
		s := vals[c.subject]
		if len(s) == 0 {
			out = append(out, result{c: c})
			continue
		}
		if !c.isRatio() {
			out = append(out, result{c: c, value: median(s) * c.scale, ok: true})
			continue
		}
		bl := vals[c.baseline]
		if len(bl) == 0 || median(bl) == 0 {
			out = append(out, result{c: c})
			continue
		}
		out = append(out, result{c: c, value: ratio(s, bl), ok: true})
	}
	return out
}

func main() {
	only := flag.String("only", "", "comma-separated names to report (default: all)")
	flag.Parse()
	vals, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	results := evaluate(vals)
	if *only != "" {
		want := strings.Split(*only, ",")
		results = slices.DeleteFunc(results, func(r result) bool { return !slices.Contains(want, r.c.name) })
	}
	missing := 0
	for _, r := range results {
		if r.ok {
			fmt.Println(r.line())
		} else {
			missing++
			fmt.Printf("missing %s: no measurement in this run\n", r.c.name)
		}
	}
	fmt.Println()
	fmt.Printf("%-34s %12s %12s  %s\n", "name", "value", "goal", "held")
	for _, r := range results {
		if !r.ok {
			fmt.Printf("%-34s %12s %12s  %s\n", r.c.name, "-", "", "not measured")
			continue
		}
		unit := "x"
		if !r.c.isRatio() {
			unit = " " + r.c.unit
		}
		held := "yes"
		if !r.held() {
			held = "NO"
		}
		fmt.Printf("%-34s %12s %12s  %s\n", r.c.name, fmt.Sprintf("%.2f%s", r.value, unit),
			fmt.Sprintf("%s %g%s", r.op(), r.c.goal, unit), held)
	}
	if missing > 0 {
		os.Exit(1)
	}
}
