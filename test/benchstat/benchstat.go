// Package benchstat is what the benchmarks of `make bench` share: how many times each repeats
// its fault, and the BENCH line the Makefile collects.
package benchstat

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Runs is SHOAL_BENCH_RUNS, the faults each benchmark repeats (default 10).
func Runs() int {
	if n, err := strconv.Atoi(os.Getenv("SHOAL_BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return 10
}

// Report logs and prints on a BENCH line the median, p90, p99, min and max of ds; with no
// measurement it fails the benchmark.
func Report(tb testing.TB, what string, ds []time.Duration) {
	tb.Helper()
	if len(ds) == 0 {
		tb.Errorf("%s: no measurement", what)
		return
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	// Nearest-rank percentiles: with fewer than 100 runs p99 is the maximum.
	pct := func(p int) time.Duration { return s[min(len(s)-1, (len(s)*p+99)/100-1)].Round(time.Millisecond) }
	line := fmt.Sprintf("%s over %d runs: median %s, p90 %s, p99 %s, min %s, max %s", what, len(s),
		pct(50), pct(90), pct(99), s[0].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
	tb.Log(line)
	fmt.Println("BENCH", line)
}

// Rates is "median (min-max) over n runs" of rates such as MB/s.
func Rates(r []float64) string {
	s := slices.Clone(r)
	slices.Sort(s)
	return fmt.Sprintf("median %.1f (%.1f-%.1f) over %d runs", s[len(s)/2], s[0], s[len(s)-1], len(s))
}

// RunsOr is SHOAL_BENCH_RUNS when it is set, else n: for benchmarks too long for Runs' default.
func RunsOr(n int) int {
	if os.Getenv("SHOAL_BENCH_RUNS") != "" {
		return Runs()
	}
	return n
}

// Size is the positive whole number in the environment variable name (a data size, in MB), or
// def when it is unset; anything else fails the benchmark rather than run on a size not asked for.
func Size(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}
