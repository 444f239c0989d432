package gossip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/shoal-db/shoal/agent/health"
)

func TestJoinAndHealthPropagation(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, 3, nil)

	for _, g := range nodes {
		ms := g.Members()
		if got, want := names(ms), []string{"node-1", "node-2", "node-3"}; !slices.Equal(got, want) {
			t.Fatalf("%s lists %v, want %v", g.cfg.NodeName, got, want)
		}
		for i, p := range ms {
			if p.Addr != nodes[i].AdvertiseAddr() {
				t.Errorf("%s lists %s at %s, want %s", g.cfg.NodeName, p.Name, p.Addr, nodes[i].AdvertiseAddr())
			}
			if p.HealthErr != nil || p.Health.Source != "db-0" || !p.Health.IOConnected {
				t.Errorf("%s lists %s with report %+v, err %v", g.cfg.NodeName, p.Name, p.Health, p.HealthErr)
			}
			if p.ReportedAt.IsZero() || p.StateSince.IsZero() {
				t.Errorf("%s lists %s without times: %+v", g.cfg.NodeName, p.Name, p)
			}
		}
	}

	// Drain, so the signal checked below is the update's.
	for _, g := range nodes[:2] {
		select {
		case <-g.Events():
		default:
		}
	}
	before := time.Now()
	primary := health.Report{MySQLUp: true, Writable: true, Role: health.RolePrimary, Epoch: 7, LagMillis: -1}
	if err := nodes[2].SetHealth(primary); err != nil {
		t.Fatal(err)
	}
	for _, g := range nodes {
		eventually(t, g.cfg.NodeName+" sees node-3's new report", func() string {
			p, _ := peer(g, "node-3")
			if p.Health.Role != health.RolePrimary || p.Health.Epoch != 7 {
				return fmt.Sprintf("%+v", p.Health)
			}
			if p.ReportedAt.Before(before) {
				return fmt.Sprintf("reported at %v, before the update at %v", p.ReportedAt, before)
			}
			return ""
		})
	}
	for _, g := range nodes[:2] {
		select {
		case <-g.Events():
		case <-time.After(patience):
			t.Fatalf("%s got no event for node-3's update", g.cfg.NodeName)
		}
	}

	// The same report again is not news.
	p, _ := peer(nodes[0], "node-3")
	if err := nodes[2].SetHealth(primary); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if q, _ := peer(nodes[0], "node-3"); !q.ReportedAt.Equal(p.ReportedAt) {
		t.Errorf("unchanged report refreshed ReportedAt: %v -> %v", p.ReportedAt, q.ReportedAt)
	}
}

func TestFailureDetection(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, 3, nil)
	survivors := nodes[:2]

	killed := time.Now()
	if err := nodes[2].Shutdown(); err != nil { // no Leave: as if the process were SIGKILLed
		t.Fatal(err)
	}
	type seen struct{ suspect, dead time.Duration }
	results := make([]seen, len(survivors))
	deadline := time.Now().Add(patience)
	for done := 0; done < len(survivors); {
		if time.Now().After(deadline) {
			t.Fatalf("node-3 not detected dead by all survivors within %v: %+v", patience, results)
		}
		done = 0
		for i, g := range survivors {
			p, ok := peer(g, "node-3")
			if !ok {
				t.Fatalf("%s dropped node-3 instead of listing it dead", g.cfg.NodeName)
			}
			switch {
			case results[i].dead != 0:
				done++
			case p.State == StateSuspect && results[i].suspect == 0:
				results[i].suspect = time.Since(killed)
			case p.State == StateDead:
				results[i].dead = time.Since(killed)
				if p.StateSince.Before(killed) {
					t.Errorf("%s: node-3 dead since %v, before it was killed at %v", g.cfg.NodeName, p.StateSince, killed)
				}
				if p.Health.Source != "db-0" {
					t.Errorf("%s: dead node-3 lost its last report: %+v", g.cfg.NodeName, p.Health)
				}
			case p.State != StateAlive && p.State != StateSuspect:
				t.Fatalf("%s: node-3 is %s", g.cfg.NodeName, p.State)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	sawSuspect := false
	for i, r := range results {
		t.Logf("%s: node-3 suspect after %v, dead after %v", survivors[i].cfg.NodeName, r.suspect, r.dead)
		sawSuspect = sawSuspect || r.suspect > 0
	}
	// Suspicion lasts at least 0.8 s with the defaults, far longer than the polling step;
	// one survivor seeing it is enough to prove it is reported.
	if !sawSuspect {
		t.Error("no survivor ever listed node-3 as suspect")
	}
	// Still listed as dead a while later: memberlist keeps it too for now, but the listing
	// must not depend on that (TestTableRetention covers our own record).
	time.Sleep(500 * time.Millisecond)
	for _, g := range survivors {
		if p, _ := peer(g, "node-3"); p.State != StateDead {
			t.Errorf("%s: node-3 %s after death", g.cfg.NodeName, p.State)
		}
	}
}

func TestLeave(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nodes[2].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	for _, g := range nodes {
		waitPeerState(t, g, "node-3", StateLeft)
	}
	// Anything more would announce it alive again.
	if err := nodes[2].SetHealth(report("after")); !errors.Is(err, ErrLeft) {
		t.Errorf("set health after leave: %v", err)
	}
	if _, err := nodes[2].Join(ctx); !errors.Is(err, ErrLeft) {
		t.Errorf("join after leave: %v", err)
	}
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	// A graceful leaver is not later declared dead.
	time.Sleep(time.Second)
	for _, g := range nodes[:2] {
		if p, _ := peer(g, "node-3"); p.State != StateLeft {
			t.Errorf("%s: node-3 %s after leaving", g.cfg.NodeName, p.State)
		}
	}
}

func TestShutdownIsFinal(t *testing.T) {
	t.Parallel()
	g := start(t, testConfig(t, "solo"))
	if n, err := g.Join(context.Background()); n != 0 || err != nil {
		t.Fatalf("join with no seeds: %d, %v", n, err)
	}
	if err := g.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := g.Shutdown(); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	if err := g.Leave(context.Background()); !errors.Is(err, ErrShutdown) {
		t.Errorf("leave after shutdown: %v", err)
	}
	if err := g.SetHealth(report("x")); !errors.Is(err, ErrShutdown) {
		t.Errorf("set health after shutdown: %v", err)
	}
}

func TestJoinGivesUpWithContext(t *testing.T) {
	t.Parallel()
	// Nothing listens on this node's own address at port 1.
	cfg := testConfig(t, "lonely")
	cfg.Seeds = []string{cfg.BindAddr + ":1"}
	g := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := g.Join(ctx)
	if n != 0 || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), cfg.Seeds[0]) {
		t.Fatalf("join to nothing: %d, %v", n, err)
	}
	t.Logf("error: %v", err)
}

func TestWrongKeyOrClusterCannotJoin(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, 2, nil)
	seed := nodes[0].AdvertiseAddr().String()

	for _, tc := range []struct {
		name string
		cfg  func(*Config)
	}{
		{"wrong-key", func(c *Config) { c.Keys = [][]byte{keyB} }},
		{"plaintext", func(c *Config) { c.Keys, c.AllowPlaintext = nil, true }},
		// The right key, but another cluster's label: two clusters sharing a network stay apart.
		{"other-cluster", func(c *Config) { c.Cluster = "billing" }},
		{"unlabelled", func(c *Config) { c.Cluster = "" }},
	} {
		cfg := testConfig(t, tc.name, seed)
		tc.cfg(&cfg)
		intruder := start(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, err := intruder.Join(ctx)
		cancel()
		if err == nil || n != 0 {
			t.Fatalf("%s joined: %d, %v", tc.name, n, err)
		}
		if !strings.Contains(err.Error(), "no seed accepted this node") {
			t.Errorf("%s: unclear error: %v", tc.name, err)
		}
		t.Logf("%s: %v", tc.name, err)
		if got := names(intruder.Members()); !slices.Equal(got, []string{tc.name}) {
			t.Errorf("%s lists %v", tc.name, got)
		}
	}
	// Give any leak time to spread before checking that nobody lists the intruders.
	time.Sleep(500 * time.Millisecond)
	for _, g := range nodes {
		if got := names(g.Members()); !slices.Equal(got, []string{"node-1", "node-2"}) {
			t.Errorf("%s lists %v", g.cfg.NodeName, got)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, 3, nil)
	epoch := uint64(0)
	// connected checks that everyone still lists everyone alive and still reads fresh reports,
	// which needs every node to decrypt every other's messages.
	connected := func(step string) {
		t.Helper()
		epoch++
		if err := nodes[0].SetHealth(health.Report{Epoch: epoch, Role: health.RoleReplica, LagMillis: -1}); err != nil {
			t.Fatal(err)
		}
		for _, g := range nodes {
			waitStates(t, g, 3, StateAlive)
			eventually(t, step+": "+g.cfg.NodeName+" reads node-1's report", func() string {
				if p, _ := peer(g, "node-1"); p.Health.Epoch != epoch {
					return fmt.Sprintf("epoch %d", p.Health.Epoch)
				}
				return ""
			})
		}
	}
	each := func(step string, f func(*Gossip) error) {
		t.Helper()
		for _, g := range nodes {
			if err := f(g); err != nil {
				t.Fatalf("%s on %s: %v", step, g.cfg.NodeName, err)
			}
			// Between nodes the cluster runs with mixed keyrings; it must hold.
			time.Sleep(100 * time.Millisecond)
		}
		connected(step)
	}
	each("install", func(g *Gossip) error { return g.InstallKey(keyB) })
	each("use", func(g *Gossip) error { return g.UseKey(keyB) })
	if err := nodes[0].RemoveKey(keyB); err == nil {
		t.Error("removing the key in use succeeded")
	}
	each("remove", func(g *Gossip) error { return g.RemoveKey(keyA) })

	seed := nodes[0].AdvertiseAddr().String()
	old := testConfig(t, "old-key", seed)
	oldNode := start(t, old)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := oldNode.Join(ctx); err == nil {
		t.Error("a node with only the removed key joined")
	}
	newCfg := testConfig(t, "new-key", seed)
	newCfg.Keys = [][]byte{keyB}
	join(t, start(t, newCfg))
	waitPeerState(t, nodes[1], "new-key", StateAlive)

	if err := nodes[0].InstallKey([]byte("short")); err == nil {
		t.Error("installed a 5-byte key")
	}
	if err := nodes[0].UseKey(keyC); err == nil {
		t.Error("used a key that is not installed")
	}
}

func TestKeyringNeedsEncryption(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "plain")
	cfg.Keys, cfg.AllowPlaintext = nil, true
	g := start(t, cfg)
	for _, err := range []error{g.InstallKey(keyA), g.UseKey(keyA), g.RemoveKey(keyA)} {
		if !errors.Is(err, ErrPlaintext) {
			t.Errorf("keyring op on plaintext gossip: %v", err)
		}
	}
}

func TestSeedByDNSName(t *testing.T) {
	t.Parallel()
	// localhost resolves through /etc/hosts to 127.0.0.1, so the seed node must listen there.
	cfg := testConfig(t, "dns-seed")
	cfg.BindAddr = "127.0.0.1"
	seedNode := start(t, cfg)
	port := seedNode.AdvertiseAddr().Port()

	joiner := start(t, testConfig(t, "dns-joiner", fmt.Sprintf("localhost:%d", port)))
	join(t, joiner)
	waitPeerState(t, seedNode, "dns-joiner", StateAlive)
	waitPeerState(t, joiner, "dns-seed", StateAlive)
}

func TestGarbageMetaIsReported(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, 2, nil)

	mc := memberlist.DefaultLocalConfig()
	mc.Name = "garbage"
	mc.Label = labelPrefix + "orders" // the cluster testConfig names
	mc.BindAddr = nextAddr(t)
	mc.BindPort = 0
	mc.Logger = newStdLogger(testLogger(t), nil)
	kr, err := memberlist.NewKeyring(nil, keyA)
	if err != nil {
		t.Fatal(err)
	}
	mc.Keyring = kr
	mc.Delegate = &delegate{meta: []byte("\x00{not json")} // a report nobody can read
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	if _, err := ml.Join([]string{nodes[0].AdvertiseAddr().String()}); err != nil {
		t.Fatal(err)
	}
	for _, g := range nodes {
		p := waitPeerState(t, g, "garbage", StateAlive)
		if !errors.Is(p.HealthErr, health.ErrBadReport) || p.Health != (health.Report{}) {
			t.Errorf("%s: garbage report read as %+v, err %v", g.cfg.NodeName, p.Health, p.HealthErr)
		}
	}
}

// A member killed and started again under its name at a new address (a Kubernetes pod
// recreated with a new IP) is alive again at the new address for everyone, whether it comes
// back before or after the others found the old one dead: memberlist hands the name over once
// the old incarnation is dead (deadNodeReclaim).
func TestRejoinAtNewAddress(t *testing.T) {
	for _, waitDead := range []bool{true, false} {
		t.Run(fmt.Sprintf("old one found dead first: %v", waitDead), func(t *testing.T) {
			t.Parallel()
			nodes := cluster(t, 3, nil)
			if err := nodes[2].Shutdown(); err != nil { // no Leave: as if the pod were SIGKILLed
				t.Fatal(err)
			}
			if waitDead {
				for _, g := range nodes[:2] {
					waitPeerState(t, g, "node-3", StateDead)
				}
			}
			cfg := testConfig(t, "node-3", nodes[0].AdvertiseAddr().String())
			back := start(t, cfg)
			if err := back.SetHealth(report("db-9")); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			if _, err := back.Join(ctx); err != nil {
				t.Fatal(err)
			}
			for _, g := range nodes[:2] {
				eventually(t, g.cfg.NodeName+" sees node-3 alive at "+cfg.BindAddr, func() string {
					p, _ := peer(g, "node-3")
					if p.State != StateAlive || p.Addr.Addr().String() != cfg.BindAddr || p.Health.Source != "db-9" {
						return fmt.Sprintf("%s at %s reporting source %q", p.State, p.Addr, p.Health.Source)
					}
					return ""
				})
			}
		})
	}
}
