package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/gossip"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/mysqlctltest"
)

// fastPolicy keeps in-process tests quick; the inequalities of Validate still hold.
func fastPolicy() ha.Policy {
	return ha.Policy{Tick: 50 * time.Millisecond, DetectionTimeout: 300 * time.Millisecond, Lease: 600 * time.Millisecond,
		MaxClockDrift: 50 * time.Millisecond, PromotionMargin: 100 * time.Millisecond, FailoverCooldown: time.Second, SemiSyncAcks: 1,
		BootstrapExpect: 3, CommitStallTimeout: time.Second, CommitProbeInterval: 100 * time.Millisecond}
}

// member is one in-process agent with its fake MySQL, Raft node and gossip.
type member struct {
	id     string
	agent  *Agent
	mysql  *mysqlctltest.Server
	raft   *consensus.Node
	gossip *gossip.Gossip
	http   *http.Server
	cancel context.CancelFunc
	done   chan error
	views  viewLog
}

// testCluster runs n agents in one process: Raft over the in-memory transport, memberlist on
// loopback, fake MySQL servers, and the real admin HTTP API between them.
type testCluster struct {
	t       *testing.T
	net     *mysqlctltest.Network
	raftNet *consensus.InmemNetwork
	members []*member
	tasks   taskLog
	// configure changes each member's options before its agent is made.
	configure []func(id string, o *Options)
}

// viewLog is a Publisher that keeps every view it was given, and notes one given after its
// agent's Run returned.
type viewLog struct {
	mu    sync.Mutex
	views []ClusterView
	late  bool
	ended bool
}

func (l *viewLog) Name() string { return "log" }

func (l *viewLog) Publish(_ context.Context, v ClusterView) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.late = l.late || l.ended
	l.views = append(l.views, v)
	return nil
}

func (l *viewLog) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended = true
}

func (l *viewLog) last() (ClusterView, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.views) == 0 {
		return ClusterView{}, l.late
	}
	return l.views[len(l.views)-1], l.late
}

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startCluster(t *testing.T, n int, configure ...func(id string, o *Options)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, net: mysqlctltest.NewNetwork(), raftNet: consensus.NewInmemNetwork(), configure: configure}
	var seed string
	for i := range n {
		m := c.startMember(i, seed)
		if seed == "" {
			seed = m.gossip.AdvertiseAddr().String()
		}
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			m.stop()
		}
	})
	return c
}

func (c *testCluster) startMember(i int, seed string) *member {
	t := c.t
	id := fmt.Sprintf("db-%d", i)
	mysqlAddr := fmt.Sprintf("10.9.0.%d:3306", i+1)
	m := &member{id: id, mysql: c.net.Add(mysqlAddr, uint32(i+1)), done: make(chan error, 1)}
	log := logger(t).With("node", id)

	node, err := consensus.Open(t.Context(), consensus.Config{NodeID: id, DataDir: t.TempDir(),
		Network: c.raftNet, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	m.raft = node
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g, err := gossip.Start(t.Context(), gossip.Config{NodeName: id, BindAddr: "127.0.0.1", BindPort: 0,
		AllowPlaintext: true, Logger: log, Seeds: nonEmpty(seed)}, health.Report{Role: health.RoleUnknown})
	if err != nil {
		t.Fatal(err)
	}
	m.gossip = g
	if seed != "" {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		if _, err := g.Join(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	dial := func(ctx context.Context, addr string) (mysqlServer, error) { return c.net.Dial(ctx, addr) }
	reg := prometheus.NewRegistry()
	opts := Options{NodeID: id, Cluster: "orders", Policy: fastPolicy(),
		LocalMySQLAddr: mysqlAddr, MySQLAddr: mysqlAddr, RaftAddr: id, AdminAddr: ln.Addr().String(),
		ReplUser: "repl", ReplPassword: "pw", DrainTimeout: 5 * time.Second,
		Log: log, Registry: reg, Dial: dial, Raft: node, Gossip: g, LeaseClient: adminapi.Client{},
		LeaderTasks: c.leaderTasks(id), Publishers: []Publisher{&m.views}}
	for _, f := range c.configure {
		f(id, &opts)
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	m.agent = a
	m.http = &http.Server{Handler: a.Handler(AdminAuth{Token: "secret"}, reg)}
	go m.http.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() { m.done <- a.Run(ctx) }()
	c.members = append(c.members, m)
	return m
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// stop shuts the member down gracefully (a drain first); stopping twice is harmless.
func (m *member) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	<-m.done
	m.views.end()
	m.cancel = nil
	m.http.Close()
	m.gossip.Shutdown()
	m.raft.Close()
}

// crash kills the member's whole host at once: no drain, no leave.
func (m *member) crash() {
	m.mysql.Crash()
	m.gossip.Shutdown()
	m.raft.Close()
	m.http.Close()
	m.agent.opts.DrainTimeout = time.Millisecond
	m.cancel()
	<-m.done
	m.cancel = nil
}

// writers returns the members whose MySQL accepts writes.
func (c *testCluster) writers() []*member {
	var out []*member
	for _, m := range c.members {
		if m.mysql.Writable() {
			out = append(out, m)
		}
	}
	return out
}

// waitPrimary waits until exactly one member is writable and the record names it, other than not.
func (c *testCluster) waitPrimary(not string) *member {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if w := c.writers(); len(w) == 1 && w[0].id != not {
			for _, m := range c.members {
				if m.cancel != nil && m.raft.Record().Primary == w[0].id {
					return w[0]
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range c.members {
		c.t.Logf("%s: writable=%v record=%+v reason=%q", m.id, m.mysql.Writable(), m.raft.Record(), m.agent.snapshot().Reason)
	}
	c.t.Fatalf("no single writable primary (other than %q) within 30s", not)
	return nil
}

// watchSplitBrain fails the test if two members are ever writable at once.
func (c *testCluster) watchSplitBrain() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if w := c.writers(); len(w) > 1 {
				c.t.Errorf("split brain: %s and %s writable at once", w[0].id, w[1].id)
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func writeSome(t *testing.T, m *member, n int) []string {
	t.Helper()
	var acked []string
	deadline := time.Now().Add(10 * time.Second)
	for len(acked) < n {
		gtid, err := m.mysql.Write()
		switch {
		case errors.Is(err, mysqlctltest.ErrNoAck) && time.Now().Before(deadline):
			// A real lossless primary blocks the commit until a replica is connected.
			time.Sleep(10 * time.Millisecond)
		case err != nil:
			t.Fatalf("write on primary %s: %v", m.id, err)
		default:
			acked = append(acked, gtid)
		}
	}
	return acked
}

// waitReceived waits until m's server has received every write in acked.
func waitReceived(t *testing.T, m *member, acked []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := m.mysql.Status(t.Context())
		if err == nil && st.Replica != nil {
			all := true
			for _, g := range acked {
				if ok, _ := st.Replica.Received.Contains(gtid.MustParse(gtid.MySQL, g)); !ok {
					all = false
				}
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not receive every acknowledged write", m.id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func requireContains(t *testing.T, m *member, acked []string) {
	t.Helper()
	have := m.mysql.Executed()
	for _, g := range acked {
		ok, err := have.Contains(gtid.MustParse(gtid.MySQL, g))
		if err != nil || !ok {
			t.Fatalf("acknowledged write %s missing on %s (has %s)", g, m.id, have)
		}
	}
}

func TestAgentsElectFailOverAndRejoin(t *testing.T) {
	c := startCluster(t, 3)
	stop := c.watchSplitBrain()
	defer stop()

	first := c.waitPrimary("")
	epoch := first.raft.Record().Epoch
	acked := writeSome(t, first, 20)

	first.mysql.Crash() // mysqld dies, its agent lives
	second := c.waitPrimary(first.id)
	if e := second.raft.Record().Epoch; e <= epoch {
		t.Fatalf("epoch %d after failover, was %d", e, epoch)
	}
	requireContains(t, second, acked)
	acked = append(acked, writeSome(t, second, 10)...)

	first.mysql.Restart() // comes back read-only and must rejoin as a replica of the new primary
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := first.mysql.Status(t.Context())
		if err == nil && st.Replica != nil && st.Replica.IORunning() && !st.Writable() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old primary did not rejoin as a replica: %+v %v (reason %q)", st.Replica, err, first.agent.snapshot().Reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
	requireContains(t, first, acked)
}

func TestAgentsSurviveHostCrash(t *testing.T) {
	c := startCluster(t, 3)
	stop := c.watchSplitBrain()
	defer stop()

	first := c.waitPrimary("")
	acked := writeSome(t, first, 20)
	first.crash()
	second := c.waitPrimary(first.id)
	requireContains(t, second, acked)
}

// A replica whose applier failed holds no say over the failover when the other replica received
// everything too: the other is promoted with every acknowledged write, and the broken one is left
// for an operator.
func TestHostCrashWithABrokenApplier(t *testing.T) {
	c := startCluster(t, 3)
	stop := c.watchSplitBrain()
	defer stop()

	first := c.waitPrimary("")
	var replicas []*member
	for _, m := range c.members {
		if m != first {
			replicas = append(replicas, m)
		}
	}
	// The lowest id, which a tie between equal received sets would pick.
	broken := replicas[0]
	if err := broken.mysql.FailApplier(1062, "Duplicate entry '7' for key 'PRIMARY'"); err != nil {
		t.Fatal(err)
	}
	// The applier broke a while before the crash, as in production: a crash in the very pass
	// that reads the members may find the break not yet read.
	time.Sleep(4 * fastPolicy().Tick)
	acked := writeSome(t, first, 20)
	// The healthy replica holds every write too: the case this test is about. (A write that
	// only the broken replica acknowledged would make it the only holder, another case.)
	waitReceived(t, replicas[1], acked)
	first.crash()
	second := c.waitPrimary(first.id)
	if second != replicas[1] {
		t.Fatalf("promoted %s, whose applier is broken", second.id)
	}
	requireContains(t, second, acked)
}

func TestSwitchoverAndDrain(t *testing.T) {
	c := startCluster(t, 3)
	stop := c.watchSplitBrain()
	defer stop()

	first := c.waitPrimary("")
	acked := writeSome(t, first, 5)
	var target *member
	for _, m := range c.members {
		if m != first {
			target = m
			break
		}
	}
	client := adminapi.Client{Token: "secret"}
	if _, err := client.Switchover(t.Context(), first.agent.opts.AdminAddr, target.id); err != nil {
		t.Fatal(err)
	}
	if got := c.waitPrimary(first.id); got != target {
		t.Fatalf("switchover went to %s, asked for %s", got.id, target.id)
	}
	requireContains(t, target, acked)

	// SIGTERM of the primary's agent: it hands the role over before it exits, publishing until
	// the successor is recorded, and nothing after.
	target.stop()
	third := c.waitPrimary(target.id)
	requireContains(t, third, acked)
	last, late := target.views.last()
	if last.Record.Primary == target.id || late {
		t.Fatalf("the stopped agent last published primary %q (epoch %d), published after Run returned: %t",
			last.Record.Primary, last.Record.Epoch, late)
	}
}

// A switchover the leader must cancel (its target died) leaves the primary without a lease; when
// that primary's agent also leads Raft, its refused renewals must not hold up its own re-election.
func TestCancelledSwitchoverReelectsLeadingPrimary(t *testing.T) {
	c := startCluster(t, 3)
	stop := c.watchSplitBrain()
	defer stop()

	first := c.waitPrimary("")
	// Named, not "the most up-to-date voter": that choice can bounce between the two others.
	for deadline := time.Now().Add(20 * time.Second); !first.raft.IsLeader(); {
		if time.Now().After(deadline) {
			t.Fatal("leadership never came to the primary's agent")
		}
		for _, m := range c.members {
			if m != first && m.raft.IsLeader() {
				m.raft.TransferLeadership(t.Context(), first.id)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	epoch := first.raft.Record().Epoch
	var target *member
	for _, m := range c.members {
		if m != first {
			target = m
			break
		}
	}
	target.crash()
	time.Sleep(time.Second) // gossip marks it dead
	client := adminapi.Client{Token: "secret"}
	fences := first.mysql.Fences()
	if _, err := client.Switchover(t.Context(), first.agent.opts.AdminAddr, target.id); err != nil {
		t.Fatal(err)
	}
	// The hand-over and the re-election can both fall between two polls of Writable.
	deadline := time.Now().Add(10 * time.Second)
	for first.mysql.Fences() == fences {
		if time.Now().After(deadline) {
			t.Fatal("the primary never handed over for the switchover")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := c.waitPrimary(target.id); got != first {
		t.Fatalf("primary moved to %s, want %s serving again", got.id, first.id)
	}
	if e := first.raft.Record().Epoch; e <= epoch {
		t.Fatalf("serving again in epoch %d, want a new epoch after %d", e, epoch)
	}
	writeSome(t, first, 5)
}

// Pause stops automatic actions and new switchover requests, never a hand-over under way: a
// primary whose agent is stopped while paused still hands its role to a replica.
func TestPausedClusterRefusesSwitchoverYetDrains(t *testing.T) {
	c := startCluster(t, 3)
	stop := c.watchSplitBrain()
	defer stop()

	first := c.waitPrimary("")
	acked := writeSome(t, first, 5)
	client := adminapi.Client{Token: "secret"}
	if _, err := client.SetPaused(t.Context(), first.agent.opts.AdminAddr, true); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Switchover(t.Context(), first.agent.opts.AdminAddr, ""); !errors.Is(err, adminapi.ErrAPI) || !strings.Contains(err.Error(), "paused") {
		t.Fatalf("switchover while paused: %v, want a refusal that says the cluster is paused", err)
	}
	first.stop()
	second := c.waitPrimary(first.id)
	requireContains(t, second, acked)
	if !second.raft.Record().Paused {
		t.Fatal("the hand-over resumed the cluster")
	}
}
