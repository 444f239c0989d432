package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
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
	med, hi := s[len(s)/2], s[len(s)-1]
	line := fmt.Sprintf("%s over %d runs: median %s, min %s, max %s", what, len(s),
		med.Round(time.Millisecond), s[0].Round(time.Millisecond), hi.Round(time.Millisecond))
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
