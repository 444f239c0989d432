package gossip

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics"
)

// scaleMembers is the cluster size BenchmarkGossip50 runs.
const scaleMembers = 50

// scaleSeeds is how many already-started members each new member is seeded with.
const scaleSeeds = 3

// scalePatience bounds convergence and failure detection; missing it is a real failure.
const scalePatience = 60 * time.Second

// scaleSteady is how long bandwidth is measured for, once the cluster has converged and settled.
const (
	scaleSettle = 2 * time.Second
	scaleSteady = 10 * time.Second
)

// BenchmarkGossip50 starts one cluster of 50 encrypted members on loopback and measures, once
// per invocation whatever b.N is (the repo runs benchmarks with -benchtime 1x):
//  1. convergence: from the first Start until every member lists all 49 others alive;
//  2. bandwidth: bytes each member sends and receives per second over 10 s of steady state,
//     counted by memberlist's own byte counters (see byteSink);
//  3. failure detection: from a Shutdown without Leave (as after SIGKILL) until every other
//     member lists the stopped one as not alive, and until every one lists it dead.
//
// Results go to stdout on lines starting "BENCH gossip 50 members:" and to b.Log. Nothing is
// asserted about how long things take.
func BenchmarkGossip50(b *testing.B) {
	sink := &byteSink{}
	installByteSink(b, sink)

	logs := &syncBuffer{}
	b.Cleanup(func() {
		if b.Failed() {
			b.Logf("logs (Info and above):\n%s", logs.String())
		}
	})
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))

	emit := func(format string, args ...any) {
		line := fmt.Sprintf("BENCH gossip %d members: ", scaleMembers) + fmt.Sprintf(format, args...)
		fmt.Println(line)
		b.Log(line)
	}

	// One cluster per invocation, whatever b.N: the results are not a per-op cost.
	// 1. Convergence. Every member is started first (so its address and kernel-chosen port are
	// known), seeded with a few random members started before it, then all join at once, as
	// when a whole cluster boots together.
	began := time.Now()
	nodes := make([]*Gossip, 0, scaleMembers)
	b.Cleanup(func() {
		for _, g := range nodes {
			// Shutdown again (the killed member) does nothing.
			if err := g.Shutdown(); err != nil {
				b.Errorf("shutdown %s: %v", g.cfg.NodeName, err)
			}
		}
	})
	for i := range scaleMembers {
		name := fmt.Sprintf("node-%02d", i+1)
		cfg := Config{
			NodeName: name,
			BindAddr: scaleAddr(i),
			Keys:     [][]byte{keyA},
			Logger:   logger.With("node", name),
		}
		for _, j := range pickSeeds(i, scaleSeeds) {
			cfg.Seeds = append(cfg.Seeds, nodes[j].AdvertiseAddr().String())
		}
		g, err := Start(context.Background(), cfg, report("db-0"))
		if err != nil {
			b.Fatalf("start %s: %v", name, err)
		}
		nodes = append(nodes, g)
	}
	started := time.Since(began)

	joinCtx, cancelJoin := context.WithTimeout(context.Background(), scalePatience)
	defer cancelJoin()
	var wg sync.WaitGroup
	joinErrs := make([]error, len(nodes))
	for i, g := range nodes {
		wg.Go(func() {
			_, joinErrs[i] = g.Join(joinCtx)
		})
	}
	wg.Wait()
	joined := time.Since(began)
	for i, err := range joinErrs {
		if err != nil {
			b.Fatalf("join %s: %v", nodes[i].cfg.NodeName, err)
		}
	}

	convergedAt := make([]time.Duration, len(nodes))
	deadline := began.Add(scalePatience)
	for {
		pending := 0
		var example string
		for i, g := range nodes {
			if convergedAt[i] != 0 {
				continue
			}
			if msg := seesAllAlive(g, scaleMembers); msg != "" {
				pending++
				example = g.cfg.NodeName + ": " + msg
				continue
			}
			convergedAt[i] = time.Since(began)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("not converged %v after start: %d members still incomplete, e.g. %s",
				scalePatience, pending, example)
		}
		time.Sleep(10 * time.Millisecond)
	}
	converged := slices.Max(convergedAt)
	emit("converged in %.3fs (all %d started in %.3fs, all joins returned at %.3fs; "+
		"per member: median %.3fs, max %.3fs; each seeded with %d earlier members)",
		converged.Seconds(), scaleMembers, started.Seconds(), joined.Seconds(),
		median(convergedAt).Seconds(), converged.Seconds(), scaleSeeds)
	b.ReportMetric(converged.Seconds(), "converge-s")

	// 2. Bandwidth in steady state: let the join rumours die out, then count for 10 s.
	time.Sleep(scaleSettle)
	before := sink.snapshot()
	loBefore, loErr := loopbackBytes()
	t0 := time.Now()
	time.Sleep(scaleSteady)
	elapsed := time.Since(t0).Seconds()
	after := sink.snapshot()
	loAfter, loErr2 := loopbackBytes()
	d := after.sub(before)
	perSec := func(n int64) float64 { return float64(n) / scaleMembers / elapsed }
	emit("bandwidth per member over %.1fs steady state: sent %.0f B/s (udp %.0f, tcp %.0f), "+
		"received %.0f B/s (udp %.0f, tcp %.0f)",
		elapsed,
		perSec(d.udpSent+d.tcpSent), perSec(d.udpSent), perSec(d.tcpSent),
		perSec(d.udpReceived+d.tcpSent), perSec(d.udpReceived), perSec(d.tcpSent))
	b.ReportMetric(perSec(d.udpSent+d.tcpSent), "sent-B/s/member")
	b.ReportMetric(perSec(d.udpReceived+d.tcpSent), "recv-B/s/member")
	b.Logf("bandwidth is memberlist's own counters (memberlist.udp.sent/received, memberlist.tcp.sent: "+
		"encrypted payload bytes, without IP/UDP/TCP headers), summed over all %d members and divided "+
		"by %d; memberlist counts no TCP bytes received, so TCP received is taken equal to TCP sent, "+
		"exact in a closed cluster. Totals: udp sent %d, udp received %d, tcp sent %d bytes; "+
		"%d tcp connections opened, %d accepted",
		scaleMembers, scaleMembers, d.udpSent, d.udpReceived, d.tcpSent, d.tcpConnects, d.tcpAccepts)
	if loErr == nil && loErr2 == nil {
		emit("loopback interface cross-check: %.0f B/s per member (lo rx bytes from /proc/net/dev "+
			"over the same window / %d: includes IP/UDP/TCP headers and any other process on lo)",
			float64(loAfter-loBefore)/scaleMembers/elapsed, scaleMembers)
	} else {
		b.Logf("no loopback cross-check: %v %v", loErr, loErr2)
	}
	if msg := firstNotAllAlive(nodes); msg != "" {
		b.Logf("note: after the steady-state window %s (a false suspicion on a loaded machine)", msg)
	}

	// 3. Failure detection: stop one member without Leave, as if its process were SIGKILLed.
	victim := nodes[len(nodes)/2]
	name := victim.cfg.NodeName
	survivors := slices.DeleteFunc(slices.Clone(nodes), func(g *Gossip) bool { return g == victim })
	killed := time.Now()
	if err := victim.Shutdown(); err != nil {
		b.Fatalf("shutdown %s: %v", name, err)
	}
	notAlive := make([]time.Duration, len(survivors))
	dead := make([]time.Duration, len(survivors))
	suspected := 0
	deadline = killed.Add(scalePatience)
	for {
		pending := 0
		for i, g := range survivors {
			if dead[i] != 0 {
				continue
			}
			p, ok := peer(g, name)
			if !ok {
				b.Fatalf("%s no longer lists %s", g.cfg.NodeName, name)
			}
			now := time.Since(killed)
			if p.State != StateAlive && notAlive[i] == 0 {
				notAlive[i] = now
				if p.State == StateSuspect {
					suspected++
				}
			}
			switch p.State {
			case StateDead:
				dead[i] = now
			case StateLeft:
				b.Fatalf("%s lists %s as %s after a Shutdown without Leave", g.cfg.NodeName, name, p.State)
			default:
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not seen %s by %d of %d members %v after it stopped",
				name, StateDead, pending, len(survivors), scalePatience)
		}
		time.Sleep(5 * time.Millisecond)
	}
	emit("failure of %s (Shutdown without Leave) seen not %s by all %d others in %.3fs "+
		"(median %.3fs, first %.3fs; %d saw it %s before %s), all list it %s in %.3fs (median %.3fs)",
		name, StateAlive, len(survivors), slices.Max(notAlive).Seconds(),
		median(notAlive).Seconds(), slices.Min(notAlive).Seconds(), suspected, StateSuspect, StateDead,
		StateDead, slices.Max(dead).Seconds(), median(dead).Seconds())
	b.ReportMetric(slices.Max(notAlive).Seconds(), "detect-s")
	b.ReportMetric(slices.Max(dead).Seconds(), "all-dead-s")

	// Every member is shut down by the cleanup above, before goleak looks for stray goroutines.
}

// scaleAddr gives member i its own loopback address, in 127.0.2.x: apart from the 127.0.0.x
// addresses nextAddr hands the tests, so running tests and benchmarks together cannot run out
// of addresses or collide. The kernel picks each port.
func scaleAddr(i int) string { return fmt.Sprintf("127.0.2.%d", i+1) }

// pickSeeds picks up to n distinct random members among the i started before member i.
func pickSeeds(i, n int) []int {
	perm := rand.Perm(i)
	return perm[:min(n, i)]
}

// seesAllAlive returns "" when g lists n members, all alive, else what is still missing.
func seesAllAlive(g *Gossip, n int) string {
	ms := g.Members()
	if len(ms) != n {
		return fmt.Sprintf("%d of %d members listed", len(ms), n)
	}
	for _, p := range ms {
		if p.State != StateAlive {
			return fmt.Sprintf("%s is %s", p.Name, p.State)
		}
	}
	return ""
}

func firstNotAllAlive(nodes []*Gossip) string {
	for _, g := range nodes {
		if msg := seesAllAlive(g, len(nodes)); msg != "" {
			return g.cfg.NodeName + " sees " + msg
		}
	}
	return ""
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// byteSink is a go-metrics sink that keeps memberlist's byte and connection counters. memberlist
// has no per-node metric labels in gossip's configuration, so the counts are cluster totals.
type byteSink struct {
	udpSent, udpReceived, tcpSent, tcpConnects, tcpAccepts atomic.Int64
}

type byteCounts struct {
	udpSent, udpReceived, tcpSent, tcpConnects, tcpAccepts int64
}

func (s *byteSink) snapshot() byteCounts {
	return byteCounts{
		udpSent:     s.udpSent.Load(),
		udpReceived: s.udpReceived.Load(),
		tcpSent:     s.tcpSent.Load(),
		tcpConnects: s.tcpConnects.Load(),
		tcpAccepts:  s.tcpAccepts.Load(),
	}
}

func (c byteCounts) sub(o byteCounts) byteCounts {
	return byteCounts{
		udpSent:     c.udpSent - o.udpSent,
		udpReceived: c.udpReceived - o.udpReceived,
		tcpSent:     c.tcpSent - o.tcpSent,
		tcpConnects: c.tcpConnects - o.tcpConnects,
		tcpAccepts:  c.tcpAccepts - o.tcpAccepts,
	}
}

func (s *byteSink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }

func (s *byteSink) IncrCounterWithLabels(key []string, val float32, _ []metrics.Label) {
	// Keys are memberlist.<proto>.<what>, perhaps behind a service or type prefix.
	if len(key) < 3 || key[len(key)-3] != "memberlist" {
		return
	}
	var c *atomic.Int64
	switch key[len(key)-2] + "." + key[len(key)-1] {
	case "udp.sent":
		c = &s.udpSent
	case "udp.received":
		c = &s.udpReceived
	case "tcp.sent":
		c = &s.tcpSent
	case "tcp.connect":
		c = &s.tcpConnects
	case "tcp.accept":
		c = &s.tcpAccepts
	default:
		return
	}
	c.Add(int64(val)) // byte counts of single messages: exact in a float32
}

func (*byteSink) SetGauge([]string, float32)                             {}
func (*byteSink) SetGaugeWithLabels([]string, float32, []metrics.Label)  {}
func (*byteSink) EmitKey([]string, float32)                              {}
func (*byteSink) AddSample([]string, float32)                            {}
func (*byteSink) AddSampleWithLabels([]string, float32, []metrics.Label) {}

// installByteSink makes sink go-metrics' global sink, which memberlist reports to, until the
// benchmark ends; then the global goes back to discarding, as go-metrics starts.
func installByteSink(b *testing.B, sink *byteSink) {
	b.Helper()
	cfg := metrics.DefaultConfig("")
	cfg.EnableHostname = false
	cfg.EnableHostnameLabel = false
	cfg.EnableRuntimeMetrics = false // its collector goroutine would never stop
	if _, err := metrics.NewGlobal(cfg, sink); err != nil {
		b.Fatalf("install metrics sink: %v", err)
	}
	b.Cleanup(func() {
		// After the members' shutdown (cleanups run last-registered first).
		if _, err := metrics.NewGlobal(cfg, &metrics.BlackholeSink{}); err != nil {
			b.Errorf("reset metrics sink: %v", err)
		}
	})
}

// loopbackBytes returns the bytes received on the lo interface so far (Linux only).
func loopbackBytes() (int64, error) {
	f, err := os.Open("/proc/net/dev")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) != "lo" {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no lo interface in /proc/net/dev")
}
