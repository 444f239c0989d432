package gossip

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-db/shoal/agent/health"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	keyA = bytes.Repeat([]byte{0xA1}, 32)
	keyB = bytes.Repeat([]byte{0xB2}, 16)
	keyC = bytes.Repeat([]byte{0xC3}, 24)
)

// lastOctet hands every test node its own loopback address, so tests can run in parallel.
var lastOctet atomic.Int32

func init() { lastOctet.Store(100) }

func nextAddr(t *testing.T) string {
	n := lastOctet.Add(1)
	if n > 254 {
		t.Fatal("out of 127.0.0.x test addresses")
	}
	return fmt.Sprintf("127.0.0.%d", n)
}

// syncBuffer collects a test's logs; they are printed only if the test fails, and writes
// that arrive after the test ended (memberlist winding down) are harmless.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(t *testing.T) *slog.Logger {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testConfig(t *testing.T, name string, seeds ...string) Config {
	return Config{
		NodeName: name,
		Cluster:  "orders",
		BindAddr: nextAddr(t),
		Seeds:    seeds,
		Keys:     [][]byte{keyA},
		Logger:   testLogger(t).With("node", name),
	}
}

func report(src string) health.Report {
	return health.Report{MySQLUp: true, Role: health.RoleReplica, Source: src, IOConnected: true, LagMillis: 0}
}

func start(t *testing.T, cfg Config) *Gossip {
	t.Helper()
	g, err := Start(context.Background(), cfg, report("db-0"))
	if err != nil {
		t.Fatalf("start %s: %v", cfg.NodeName, err)
	}
	t.Cleanup(func() {
		if err := g.Shutdown(); err != nil {
			t.Errorf("shutdown %s: %v", cfg.NodeName, err)
		}
	})
	return g
}

func join(t *testing.T, g *Gossip) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := g.Join(ctx); err != nil {
		t.Fatalf("join %s: %v", g.cfg.NodeName, err)
	}
}

// cluster starts n nodes named node-1.. and joins them through node-1.
func cluster(t *testing.T, n int, tweak func(*Config)) []*Gossip {
	t.Helper()
	var nodes []*Gossip
	for i := 1; i <= n; i++ {
		cfg := testConfig(t, fmt.Sprintf("node-%d", i))
		if i > 1 {
			cfg.Seeds = []string{nodes[0].AdvertiseAddr().String()}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		g := start(t, cfg)
		if i > 1 {
			join(t, g)
		}
		nodes = append(nodes, g)
	}
	for _, g := range nodes {
		waitStates(t, g, n, StateAlive)
	}
	return nodes
}

// patience bounds every wait: far beyond the expected second or two, so a loaded machine does
// not fail the tests, while a real hang still ends.
const patience = 30 * time.Second

// eventually polls cond until it returns "" or patience runs out.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after %v", what, msg, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func peer(g *Gossip, name string) (Peer, bool) {
	for _, p := range g.Members() {
		if p.Name == name {
			return p, true
		}
	}
	return Peer{}, false
}

// waitStates waits until g lists n members, all in state s.
func waitStates(t *testing.T, g *Gossip, n int, s State) {
	t.Helper()
	eventually(t, g.cfg.NodeName+" sees all "+s.String(), func() string {
		ms := g.Members()
		if len(ms) != n {
			return fmt.Sprintf("%d members %v", len(ms), names(ms))
		}
		for _, p := range ms {
			if p.State != s {
				return fmt.Sprintf("%s %s", p.Name, p.State)
			}
		}
		return ""
	})
}

func waitPeerState(t *testing.T, g *Gossip, name string, s State) Peer {
	t.Helper()
	var got Peer
	eventually(t, g.cfg.NodeName+" sees "+name+" "+s.String(), func() string {
		p, ok := peer(g, name)
		if !ok {
			return "not listed"
		}
		got = p
		if p.State != s {
			return p.State.String()
		}
		return ""
	})
	return got
}

func names(ps []Peer) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}
