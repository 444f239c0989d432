package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-db/shoal/test/benchstat"
	"github.com/shoal-db/shoal/test/harness"
)

// Benchmarks measure, they do not assert times: `make bench` runs them with -benchtime 1x and
// SHOAL_BENCH_RUNS faults each (default 10), on one cluster per flavor, and prints median and
// max. Each run also passes the safety checks of Verify at the end.

type faultFn func(c *Cluster, p int) (recover func())

// benchCooldown is ha.failover_cooldown for back-to-back faults.
const benchCooldown = time.Second

func measureFailover(b *testing.B, name string, fault faultFn) {
	for _, flavor := range harness.Flavors() {
		b.Run(string(flavor), func(b *testing.B) {
			c, p, w, m := StartLoaded(b, shoalBinary, flavor, "--ha.failover_cooldown", benchCooldown.String()) // back-to-back runs
			var detected, published, acked, inDNS []time.Duration
			var agentCPU []float64
			var promoted time.Time
			rss := 0
			for range benchstat.Runs() {
				w.WaitAcked(b, w.Acked()+20)
				// A fault within the cooldown of the last failover waits the rest of it out, as
				// it should: that is the cooldown's time, not the failover's. A quick failover
				// and rejoin (a mysqld crash) came back within it in most runs.
				time.Sleep(time.Until(promoted.Add(benchCooldown + 250*time.Millisecond)))
				survivors, cpu0 := c.otherAgents(b, p)
				t0 := time.Now()
				recover := fault(c, p)
				next := c.WaitPrimary(p, 60*time.Second)
				promoted = time.Now()
				published = append(published, promoted.Sub(t0))
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
				// The leader's judgement "primary is down", as its decision log says.
				if at, ok := c.FirstDecision(t0, "is down ("); ok {
					detected = append(detected, at.Sub(t0))
				}
				window := time.Since(t0)
				for k, pid := range survivors {
					agentCPU = append(agentCPU, 100*(cpuTime(b, pid)-cpu0[k]).Seconds()/window.Seconds())
					rss = max(rss, rssMB(b, pid))
				}
				recover()
				c.RepairErrant(next)
				p = next
			}
			out := c.Verify(w.Stop(), m.Stop())
			prefix := name + " " + string(flavor) + ": "
			benchstat.Report(b, prefix+"leader judges the primary down", detected)
			benchstat.Report(b, prefix+"new primary published", published)
			benchstat.Report(b, prefix+"first write acknowledged", acked)
			benchstat.Report(b, prefix+"DNS SRV names the new primary", inDNS)
			slices.Sort(agentCPU)
			line := fmt.Sprintf("%sCPU of each surviving agent from fault to first write: median %.1f%%, max %.1f%% of a core; RSS max %d MB",
				prefix, agentCPU[len(agentCPU)/2], agentCPU[len(agentCPU)-1], rss)
			b.Log(line)
			fmt.Println("BENCH", line)
			b.Logf("%s %s: %s", name, flavor, out)
		})
	}
}

// otherAgents returns the pids of every agent but member p's, with their CPU time so far.
func (c *Cluster) otherAgents(b *testing.B, p int) (pids []int, cpu []time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, cmd := range c.agents {
		if i != p {
			pids = append(pids, cmd.Process.Pid)
			cpu = append(cpu, cpuTime(b, cmd.Process.Pid))
		}
	}
	return pids, cpu
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

func BenchmarkFailoverMySQLFrozen(b *testing.B) {
	measureFailover(b, "mysqld frozen (SIGSTOP, agent alive)", (*Cluster).FreezeMySQL)
}

func BenchmarkFailoverHostFrozen(b *testing.B) {
	measureFailover(b, "host frozen (mysqld+agent SIGSTOP)", (*Cluster).FreezeHost)
}

func BenchmarkFailoverPrimaryIsolated(b *testing.B) {
	measureFailover(b, "primary cut off (iptables)", (*Cluster).Isolate)
}

// BenchmarkRaftElection measures how long the cluster is without a Raft leader after the
// leader's agent is killed: until another agent says it leads.
func BenchmarkRaftElection(b *testing.B) {
	for _, flavor := range harness.Flavors() {
		b.Run(string(flavor), func(b *testing.B) {
			c := Start(b, shoalBinary, flavor, 3, "--ha.failover_cooldown", "1s")
			c.WaitReplicating(c.WaitPrimary(-1, 60*time.Second))
			var elections []time.Duration
			for range benchstat.Runs() {
				leader := c.RaftLeader(context.Background())
				if leader < 0 {
					b.Fatal("no Raft leader before the fault")
				}
				t0 := time.Now()
				c.KillAgent(leader)
				for {
					if l := c.RaftLeader(context.Background()); l >= 0 && l != leader {
						break
					}
					if time.Since(t0) > 60*time.Second {
						b.Fatal("no new Raft leader within 60s")
					}
					time.Sleep(5 * time.Millisecond)
				}
				elections = append(elections, time.Since(t0))
				c.StartAgent(leader)
				c.RepairErrant(c.WaitPrimary(-1, 60*time.Second))
			}
			benchstat.Report(b, "raft election after the leader's agent is killed "+string(flavor)+": new leader", elections)
		})
	}
}

// slowSwitchover is the target median write gap of a switchover; a run slower than that logs
// the agents' decisions and failures during it, to say where the time went.
const slowSwitchover = 500 * time.Millisecond

func BenchmarkSwitchover(b *testing.B) {
	for _, flavor := range harness.Flavors() {
		b.Run(string(flavor), func(b *testing.B) {
			c, p, w, m := StartLoaded(b, shoalBinary, flavor, "--ha.failover_cooldown", "1s") // back-to-back runs
			var gaps []time.Duration
			for run := range benchstat.Runs() {
				w.WaitAcked(b, w.Acked()+50)
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.Admin.Switchover(ctx, c.AdminAddr(p), "")
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				next := c.WaitPrimary(p, 30*time.Second)
				c.RepairErrant(next)
				w.WaitAcked(b, w.Acked()+50)
				gaps = append(gaps, w.LongestGap(t0, time.Now()))
				// The start time finds a slow run in the agents' logs (SHOAL_E2E_LOGS keeps them).
				b.Logf("switchover %s run %d: %s -> %s at %s, longest write gap %s", flavor, run+1, c.Name(p), c.Name(next),
					t0.Format("15:04:05.000"), gaps[len(gaps)-1].Round(time.Millisecond))
				if gap := gaps[len(gaps)-1]; gap > slowSwitchover {
					for _, l := range c.LogLines(t0, t0.Add(gap+slowSwitchover)) {
						if ExplainsAction(l.Text) {
							b.Log(l.Text)
						}
					}
				}
				p = next
			}
			out := c.Verify(w.Stop(), m.Stop())
			benchstat.Report(b, "switchover "+string(flavor)+": longest write gap", gaps)
			b.Logf("switchover %s: %s", flavor, out)
		})
	}
}

// BenchmarkAgentIdle measures each agent's resident memory and CPU on a healthy 3-member
// cluster with no client load, over 60 s. SHOAL_BENCH_PROFILE=<dir> also saves each agent's CPU
// profile of the window there (the profiler's own sampling adds a little CPU to the numbers), and
// SHOAL_BENCH_AGENT_ARGS adds agent flags, to compare settings.
func BenchmarkAgentIdle(b *testing.B) {
	for _, flavor := range harness.Flavors() {
		b.Run(string(flavor), func(b *testing.B) {
			c := Start(b, shoalBinary, flavor, 3, strings.Fields(os.Getenv("SHOAL_BENCH_AGENT_ARGS"))...)
			c.WaitReplicating(c.WaitPrimary(-1, 60*time.Second))
			time.Sleep(10 * time.Second) // past the start-up: joins, elections, first replication
			const window = 60 * time.Second
			before := make([]time.Duration, len(c.agents))
			for i := range c.agents {
				before[i] = cpuTime(b, c.agents[i].Process.Pid)
			}
			profiles := c.profileAgents(os.Getenv("SHOAL_BENCH_PROFILE"), window-5*time.Second)
			time.Sleep(window)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			leader, primary := c.RaftLeader(ctx), c.Primary(ctx)
			cancel()
			profiles(fmt.Sprintf("%s-leader-%s-primary-%s", flavor, c.Name(max(leader, 0)), c.Name(max(primary, 0))))
			for i, cmd := range c.agents {
				used := cpuTime(b, cmd.Process.Pid) - before[i]
				var roles []string
				if i == leader {
					roles = append(roles, "Raft leader")
				}
				if i == primary {
					roles = append(roles, "primary")
				}
				line := fmt.Sprintf("agent idle %s %s (%s): RSS %d MB, CPU %.2f%% of a core over %s", flavor, c.Name(i), strings.Join(roles, ", "),
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

// profileAgents starts a CPU profile of every agent over d through its admin API and returns
// the function that waits for them and saves them in dir as <label>-<member>.pprof. With no dir
// it profiles nothing.
func (c *Cluster) profileAgents(dir string, d time.Duration) func(label string) {
	if dir == "" {
		return func(string) {}
	}
	client := *c.Admin.HTTP
	client.Timeout = d + 30*time.Second
	got := make([][]byte, len(c.Servers))
	errs := make([]error, len(c.Servers))
	var wg sync.WaitGroup
	for i := range c.Servers {
		wg.Go(func() {
			url := fmt.Sprintf("https://%s/debug/pprof/profile?seconds=%d", c.AdminAddr(i), int(d.Seconds()))
			req, err := http.NewRequest(http.MethodGet, url, nil)
			if err != nil {
				errs[i] = err
				return
			}
			req.Header.Set("Authorization", "Bearer "+c.Admin.Token)
			resp, err := client.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			got[i], errs[i] = io.ReadAll(resp.Body)
			if errs[i] == nil && resp.StatusCode != http.StatusOK {
				errs[i] = fmt.Errorf("%s: %s", resp.Status, got[i])
			}
		})
	}
	return func(label string) {
		wg.Wait()
		for i := range c.Servers {
			if errs[i] != nil {
				c.t.Errorf("profile of %s: %v", c.Name(i), errs[i])
				continue
			}
			path := filepath.Join(dir, label+"-"+c.Name(i)+".pprof")
			if err := os.WriteFile(path, got[i], 0o644); err != nil {
				c.t.Error(err)
			}
		}
	}
}
