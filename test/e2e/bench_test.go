package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/test/harness"
)

// Benchmarks measure, they do not assert times: `make bench` runs them with -benchtime 1x and
// SHOAL_BENCH_RUNS faults each (default 10), on one cluster per flavor, and prints median and
// max. Each run also passes the safety checks of Verify at the end.
func benchRuns() int {
	if n, err := strconv.Atoi(os.Getenv("SHOAL_BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return 10
}

type faultFn func(c *Cluster, p int) (recover func())

func measureFailover(b *testing.B, name string, fault faultFn) {
	for _, flavor := range harness.Flavors() {
		b.Run(string(flavor), func(b *testing.B) {
			c, p, w, m := StartLoaded(b, shoalBinary, flavor, "--ha.failover_cooldown", "1s") // back-to-back runs
			var published, acked, inDNS []time.Duration
			for range benchRuns() {
				w.WaitAcked(b, w.Acked()+20)
				t0 := time.Now()
				recover := fault(c, p)
				next := c.WaitPrimary(p, 60*time.Second)
				published = append(published, time.Since(t0))
				for c.DNSPrimary(context.Background(), next) != c.Name(next) {
					if time.Since(t0) > 60*time.Second {
						b.Fatalf("DNS never named the new primary %s", c.Name(next))
					}
					time.Sleep(5 * time.Millisecond)
				}
				inDNS = append(inDNS, time.Since(t0))
				first, ok := w.FirstAckAfter(t0, next, 60*time.Second)
				if !ok {
					b.Fatalf("no write acknowledged within 60s of the fault")
				}
				acked = append(acked, first.Sub(t0))
				recover()
				c.WaitReplicating(next)
				p = next
			}
			out := c.Verify(w.Stop(), m.Stop())
			report(b, name+" "+string(flavor)+": new primary published", published)
			report(b, name+" "+string(flavor)+": first write acknowledged", acked)
			report(b, name+" "+string(flavor)+": DNS SRV names the new primary", inDNS)
			b.Logf("%s %s: %s", name, flavor, out)
		})
	}
}

func report(b *testing.B, what string, ds []time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	// Nearest-rank percentiles: with fewer than 100 runs p99 is the maximum.
	pct := func(p int) time.Duration { return s[min(len(s)-1, (len(s)*p+99)/100-1)].Round(time.Millisecond) }
	line := fmt.Sprintf("%s over %d runs: median %s, p90 %s, p99 %s, min %s, max %s", what, len(s),
		pct(50), pct(90), pct(99), s[0].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
	b.Log(line)
	fmt.Println("BENCH", line)
}

func BenchmarkFailoverHostCrash(b *testing.B) {
	measureFailover(b, "host crash (mysqld+agent SIGKILL)", func(c *Cluster, p int) func() {
		c.KillAgent(p)
		c.Servers[p].Kill()
		return func() { c.RestartServer(p); c.StartAgent(p) }
	})
}

func BenchmarkFailoverMySQLCrash(b *testing.B) {
	measureFailover(b, "mysqld crash (agent alive)", func(c *Cluster, p int) func() {
		c.Servers[p].Kill()
		return func() { c.RestartServer(p) }
	})
}

func BenchmarkSwitchover(b *testing.B) {
	for _, flavor := range harness.Flavors() {
		b.Run(string(flavor), func(b *testing.B) {
			c, p, w, m := StartLoaded(b, shoalBinary, flavor, "--ha.failover_cooldown", "1s") // back-to-back runs
			var gaps []time.Duration
			for range benchRuns() {
				w.WaitAcked(b, w.Acked()+50)
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.Admin.Switchover(ctx, c.AdminAddr(p), "")
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				next := c.WaitPrimary(p, 30*time.Second)
				c.WaitReplicating(next)
				w.WaitAcked(b, w.Acked()+50)
				gaps = append(gaps, w.LongestGap(t0, time.Now()))
				p = next
			}
			out := c.Verify(w.Stop(), m.Stop())
			report(b, "switchover "+string(flavor)+": longest write gap", gaps)
			b.Logf("switchover %s: %s", flavor, out)
		})
	}
}

// BenchmarkAgentIdle measures each agent's resident memory and CPU on a healthy 3-member
// cluster with no client load, over 30 s.
func BenchmarkAgentIdle(b *testing.B) {
	for _, flavor := range harness.Flavors() {
		b.Run(string(flavor), func(b *testing.B) {
			c := Start(b, shoalBinary, flavor, 3)
			c.WaitReplicating(c.WaitPrimary(-1, 60*time.Second))
			const window = 30 * time.Second
			before := make([]time.Duration, len(c.agents))
			for i := range c.agents {
				before[i] = cpuTime(b, c.agents[i].Process.Pid)
			}
			time.Sleep(window)
			for i, cmd := range c.agents {
				used := cpuTime(b, cmd.Process.Pid) - before[i]
				line := fmt.Sprintf("agent idle %s %s: RSS %d MB, CPU %.2f%% of a core over %s", flavor, c.Name(i),
					rssMB(b, cmd.Process.Pid), 100*used.Seconds()/window.Seconds(), window)
				b.Log(line)
				fmt.Println("BENCH", line)
			}
		})
	}
}

// cpuTime is a process's user plus system time from /proc/<pid>/stat (clock ticks of 10 ms).
func cpuTime(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are the 12th and 13th.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// rssMB is a process's resident set size from /proc/<pid>/status.
func rssMB(b *testing.B, pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kb / 1024
		}
	}
	b.Fatalf("no VmRSS for pid %d", pid)
	return 0
}
