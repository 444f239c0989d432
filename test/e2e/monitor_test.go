package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// TestMonitorSeesIsolatedServer checks that the split-brain monitor observes a server an
// isolation fault cut off, which is when it matters most: two writable servers, one of them
// isolated, must be reported. A monitor reading over TCP, which the isolation cuts, fails it. It
// also checks that a server the monitor cannot read counts as a failed sample, never as writable.
func TestMonitorSeesIsolatedServer(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		// Two writable servers and no agents: a split brain on purpose, that nothing repairs.
		c := &Cluster{t: t, Flavor: flavor, dir: t.TempDir()}
		c.Servers = harness.StartN(t, flavor, 2, nil)
		for i, s := range c.Servers {
			c.joinHost(i, s.PID())
		}
		c.Isolate(0)
		// The isolation must cut TCP, or this test would prove nothing.
		tcp := c.open(0, harness.RootUser, harness.RootPassword)
		defer tcp.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := tcp.PingContext(ctx)
		cancel()
		if err == nil {
			t.Fatalf("%s answers over TCP although isolated", c.Name(0))
		}

		m := c.StartMonitor()
		defer m.Stop()
		waitSamples(t, m, "10 reads of each server", func(s []Samples) bool { return s[0].OK >= 10 && s[1].OK >= 10 })
		if len(m.Seen()) == 0 {
			t.Fatalf("%s (isolated) and %s both writable, and no split brain recorded", c.Name(0), c.Name(1))
		}
		t.Logf("isolated %s read %+v; e.g. %s", c.Name(0), m.Observed()[0], m.Seen()[0])

		// A server that cannot be read is unknown: a failed sample, not one more writable server.
		if err := c.Servers[1].Kill(); err != nil {
			t.Fatal(err)
		}
		// Every read of db2 from here on fails; samples are taken one after another, so once
		// three failed, every violation of the samples before the kill is recorded.
		base := m.Observed()[1].Failed
		waitSamples(t, m, "3 failed reads of the killed server", func(s []Samples) bool { return s[1].Failed >= base+3 })
		seen := len(m.Seen())
		waitSamples(t, m, "6 failed reads of the killed server", func(s []Samples) bool { return s[1].Failed >= base+6 })
		if got := m.Seen(); len(got) != seen {
			t.Errorf("split brain recorded with %s killed: %v", c.Name(1), got[seen:])
		}
		if s := m.Observed()[1]; s.LastErr == nil {
			t.Errorf("failed reads of %s without an error: %+v", c.Name(1), s)
		}
	})
}

// TestMonitorIgnoresServerBeingRebuilt: Rebuild loads a copy into a server running writable
// with networking off, which only the monitor's socket reaches. No client can write there and
// the server is no member yet, so it is no split brain (the chaos suite's errant repairs).
func TestMonitorIgnoresServerBeingRebuilt(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		c := &Cluster{t: t, Flavor: flavor, dir: t.TempDir()}
		c.Servers = harness.StartN(t, flavor, 2, func(i int, sc *harness.ServerConfig) { sc.SuperReadOnly = i == 1 })
		m := c.StartMonitor()
		defer m.Stop()
		waitSamples(t, m, "a read of each server", func(s []Samples) bool { return s[0].OK > 0 && s[1].OK > 0 })
		c.RebuildServer(1, 0)
		base := m.Observed()[1].OK
		waitSamples(t, m, "a read of the rebuilt server", func(s []Samples) bool { return s[1].OK > base })
		if got := m.Seen(); len(got) > 0 {
			t.Fatalf("split brain recorded while %s was rebuilt: %v", c.Name(1), got)
		}
	})
}

// waitSamples waits until the monitor's counts satisfy ok, failing the test after 30s.
func waitSamples(t *testing.T, m *Monitor, what string, ok func([]Samples) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok(m.Observed()) {
		if time.Now().After(deadline) {
			t.Fatalf("monitor: no %s within 30s; reads so far: %+v", what, m.Observed())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
