package agent

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

func dnsRecord() record.Record {
	return record.Record{Cluster: "orders", Epoch: 4, Primary: "db1", Members: map[string]record.Member{
		"db1": {ID: "db1", MySQLAddr: "10.0.0.1:3306"},
		"db2": {ID: "db2", MySQLAddr: "10.0.0.2:3306"},
		"db3": {ID: "db3", MySQLAddr: "10.0.0.3:3306"},
		"db4": {ID: "db4", MySQLAddr: "10.0.0.4:3306"},
	}}
}

// Reports as each member's agent would gossip them in epoch 4, db1 primary.
var (
	primaryReport = health.Report{Epoch: 4, MySQLUp: true, Role: health.RolePrimary, Writable: true, LagMillis: 0, XPort: 33060}
	replicaReport = health.Report{Epoch: 4, MySQLUp: true, Role: health.RoleReplica, Source: "db1", IOConnected: true,
		SQLRunning: true, LagMillis: 1500}
)

func alive(r health.Report) ha.Peer { return ha.Peer{State: ha.PeerAlive, Report: r} }

func with(r health.Report, f func(*health.Report)) health.Report {
	f(&r)
	return r
}

// Reads as this agent's probes would return them.
var (
	writableRead = ha.Server{Up: true, Status: state.Status{}}
	readOnlyRead = ha.Server{Up: true, Status: state.Status{ReadOnly: true, SuperReadOnly: true}}
	goneRead     = ha.Server{Err: "connection refused", Gone: true}
	stalledRead  = ha.Server{Err: "i/o timeout", Stalled: true}
)

func replicaRead(source string, io string, sql bool, lag time.Duration) ha.Server {
	return ha.Server{Up: true, Status: state.Status{ReadOnly: true, SuperReadOnly: true, Replica: &state.Replica{
		SourceHost: "10.0.0." + source[len(source)-1:], SourcePort: 3306, IOState: io, SQLRunning: sql, Lag: &lag}}}
}

func TestDNSView(t *testing.T) {
	base := map[string]ha.Peer{"db1": alive(primaryReport), "db2": alive(replicaReport), "db3": alive(replicaReport)}
	tests := []struct {
		name    string
		primary string // the record's primary; db1 if empty
		peers   map[string]ha.Peer
		servers map[string]ha.Server
		healthy map[string]bool          // members absent here are unhealthy
		lag     map[string]time.Duration // checked where given
	}{
		{name: "reports only: the primary and its replicas serve; db4 has no agent in gossip",
			healthy: map[string]bool{"db1": true, "db2": true, "db3": true}, lag: map[string]time.Duration{"db1": 0, "db2": 1500 * time.Millisecond}},
		{name: "an errant replica serves nowhere",
			peers:   map[string]ha.Peer{"db3": alive(with(replicaReport, func(r *health.Report) { r.Errant = true }))},
			healthy: map[string]bool{"db1": true, "db2": true}},
		{name: "a replica of another member, or with its applier stopped, serves nowhere",
			peers: map[string]ha.Peer{
				"db2": alive(with(replicaReport, func(r *health.Report) { r.Source = "db3" })),
				"db3": alive(with(replicaReport, func(r *health.Report) { r.SQLRunning = false })),
			},
			healthy: map[string]bool{"db1": true}},

		// After a failover to db2 (epoch 5): the reports still say what the agents saw in epoch 4.
		{name: "new primary read writable is named at once, its report saying replica",
			primary: "db2", servers: map[string]ha.Server{"db2": writableRead},
			healthy: map[string]bool{"db2": true}},
		{name: "new primary read read-only (writes not open yet) is not named",
			primary: "db2", servers: map[string]ha.Server{"db2": readOnlyRead}},
		{name: "new primary's report of the old epoch saying writable is not trusted without a read",
			primary: "db2", peers: map[string]ha.Peer{"db2": alive(with(primaryReport, func(r *health.Report) { r.Epoch = 3 }))}},
		{name: "new primary's report of its epoch saying writable is trusted without a read",
			primary: "db2", peers: map[string]ha.Peer{"db2": alive(with(primaryReport, func(r *health.Report) { r.Epoch = 5 }))},
			healthy: map[string]bool{"db2": true}},
		{name: "a report newer than this agent's record is trusted",
			peers:   map[string]ha.Peer{"db1": alive(with(primaryReport, func(r *health.Report) { r.Epoch = 9 }))},
			healthy: map[string]bool{"db1": true, "db2": true, "db3": true}},
		{name: "replicas re-pointed in the new epoch serve, the one still on the old primary does not",
			primary: "db2",
			peers: map[string]ha.Peer{
				"db1": alive(replicaReport), // the old primary, rejoined
				"db2": alive(with(primaryReport, func(r *health.Report) { r.Epoch = 5 })),
				"db3": alive(with(replicaReport, func(r *health.Report) { r.Epoch = 5; r.Source = "db2" })),
			},
			healthy: map[string]bool{"db2": true, "db3": true}},
		{name: "a replica's report of an older epoch naming the recorded primary is trusted",
			peers:   map[string]ha.Peer{"db2": alive(with(replicaReport, func(r *health.Report) { r.Epoch = 2 }))},
			healthy: map[string]bool{"db1": true, "db2": true, "db3": true}},

		// The read of this pass against the report.
		{name: "primary read read-only is dropped though its report says writable",
			servers: map[string]ha.Server{"db1": readOnlyRead},
			healthy: map[string]bool{"db2": true, "db3": true}},
		{name: "primary whose connection is refused is dropped though its report says writable",
			servers: map[string]ha.Server{"db1": goneRead},
			healthy: map[string]bool{"db2": true, "db3": true}},
		{name: "primary whose read timed out keeps what its report says",
			servers: map[string]ha.Server{"db1": stalledRead},
			healthy: map[string]bool{"db1": true, "db2": true, "db3": true}},
		{name: "a member the record does not name primary is not named, however writable",
			peers:   map[string]ha.Peer{"db2": alive(primaryReport)},
			servers: map[string]ha.Server{"db2": writableRead},
			healthy: map[string]bool{"db1": true, "db3": true}},
		{name: "leader's reads: replica serving though its report says connecting, lag from the read",
			peers:   map[string]ha.Peer{"db2": alive(with(replicaReport, func(r *health.Report) { r.IOConnected = false }))},
			servers: map[string]ha.Server{"db2": replicaRead("db1", "Yes", true, 2*time.Second), "db3": replicaRead("db1", "Connecting", true, 0)},
			healthy: map[string]bool{"db1": true, "db2": true}, lag: map[string]time.Duration{"db2": 2 * time.Second}},

		// What makes a member unfit wins over a read that says it serves.
		{name: "primary read writable but its agent is draining",
			peers:   map[string]ha.Peer{"db1": alive(with(primaryReport, func(r *health.Report) { r.Draining = true }))},
			servers: map[string]ha.Server{"db1": writableRead},
			healthy: map[string]bool{"db2": true, "db3": true}},
		{name: "primary read writable but its agent reports it errant",
			peers:   map[string]ha.Peer{"db1": alive(with(primaryReport, func(r *health.Report) { r.Errant = true }))},
			servers: map[string]ha.Server{"db1": writableRead},
			healthy: map[string]bool{"db2": true, "db3": true}},
		{name: "primary read writable but its agent cannot reach it",
			peers:   map[string]ha.Peer{"db1": alive(with(primaryReport, func(r *health.Report) { r.MySQLUp = false }))},
			servers: map[string]ha.Server{"db1": writableRead},
			healthy: map[string]bool{"db2": true, "db3": true}},
		{name: "primary read writable but its agent is suspect",
			peers:   map[string]ha.Peer{"db1": {State: ha.PeerSuspect, Report: primaryReport}},
			servers: map[string]ha.Server{"db1": writableRead},
			healthy: map[string]bool{"db2": true, "db3": true}},
		{name: "primary read writable but its agent's report is unreadable",
			peers:   map[string]ha.Peer{"db1": {State: ha.PeerAlive, ReportErr: "bad health report"}},
			servers: map[string]ha.Server{"db1": writableRead},
			healthy: map[string]bool{"db2": true, "db3": true}},
		{name: "replica read serving but its agent is dead",
			peers:   map[string]ha.Peer{"db2": {State: ha.PeerDead, Report: replicaReport}},
			servers: map[string]ha.Server{"db2": replicaRead("db1", "Yes", true, 0)},
			healthy: map[string]bool{"db1": true, "db3": true}},
		{name: "db4 read serving but unknown to gossip",
			servers: map[string]ha.Server{"db4": replicaRead("db1", "Yes", true, 0)},
			healthy: map[string]bool{"db1": true, "db2": true, "db3": true}},
		{name: "no primary recorded: nobody serves",
			primary: "-", servers: map[string]ha.Server{"db1": writableRead}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := dnsRecord()
			switch tt.primary {
			case "":
			case "-":
				rec.Primary = ""
			default:
				rec.Primary, rec.Epoch = tt.primary, 5
			}
			peers := maps.Clone(base)
			maps.Copy(peers, tt.peers)
			v := dnsView(ClusterView{Record: rec, Peers: peers, Servers: tt.servers})
			if v.Cluster != "orders" || v.Primary != rec.Primary || v.Epoch != rec.Epoch || len(v.Members) != 4 {
				t.Fatalf("view %+v", v)
			}
			for _, m := range v.Members {
				if m.Healthy != tt.healthy[m.Name] {
					t.Errorf("%s healthy=%v, want %v", m.Name, m.Healthy, tt.healthy[m.Name])
				}
				if want, ok := tt.lag[m.Name]; ok && m.Lag != want {
					t.Errorf("%s lag %s, want %s", m.Name, m.Lag, want)
				}
				if m.Port != 3306 || len(m.Addrs) != 1 {
					t.Errorf("%s: port %d addrs %v", m.Name, m.Port, m.Addrs)
				}
			}
			if tt.primary == "" && tt.peers == nil && (v.Members[0].XPort != 33060 || v.Members[1].XPort != 0) {
				t.Errorf("X ports %d %d, want 33060 and none", v.Members[0].XPort, v.Members[1].XPort)
			}
		})
	}
}

// A replica that was replicating from the recorded primary and still applies stays in rotation
// while its receiver is adrift (its source died; a failover has not re-pointed it yet), with its
// lag bounded by the lag it had plus the time since; nothing else keeps a member listed.
func TestAdriftReplica(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	rec := dnsRecord()
	rec.Primary, rec.Epoch = "db2", 5 // a failover from db1; db3's report is still of epoch 4
	adrift := with(replicaReport, func(r *health.Report) { r.IOConnected = false })
	seen := map[string]Sighting{"db3": {At: now.Add(-2 * time.Second), Lag: time.Second}}
	tests := []struct {
		name      string
		peer      ha.Peer
		sightings map[string]Sighting
		serving   bool
		lag       time.Duration
	}{
		{name: "seen replicating 2 s ago with 1 s of lag", peer: alive(adrift), sightings: seen, serving: true, lag: 3 * time.Second},
		{name: "never seen replicating", peer: alive(adrift)},
		{name: "its applier stopped", peer: alive(with(adrift, func(r *health.Report) { r.SQLRunning = false })), sightings: seen},
		{name: "errant", peer: alive(with(adrift, func(r *health.Report) { r.Errant = true })), sightings: seen},
		{name: "draining", peer: alive(with(adrift, func(r *health.Report) { r.Draining = true })), sightings: seen},
		{name: "its MySQL unreachable", peer: alive(with(adrift, func(r *health.Report) { r.MySQLUp = false })), sightings: seen},
		{name: "its agent suspect", peer: ha.Peer{State: ha.PeerSuspect, Report: adrift}, sightings: seen},
		{name: "writable: not a replica", peer: alive(primaryReport), sightings: seen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peers := map[string]ha.Peer{"db1": alive(primaryReport), "db2": alive(with(primaryReport, func(r *health.Report) { r.Epoch = 5 })), "db3": tt.peer}
			v := ClusterView{At: now, Record: rec, Peers: peers, Sightings: tt.sightings}
			for _, m := range v.Members() {
				if m.ID != "db3" {
					continue
				}
				if m.Serving != tt.serving || m.Adrift != tt.serving || m.Serving && m.Lag() != tt.lag {
					t.Fatalf("serving %v adrift %v lag %s, want serving %v lag %s", m.Serving, m.Adrift, m.Lag(), tt.serving, tt.lag)
				}
				if got := m.InRotation(rec.Primary, 10*time.Second); got != tt.serving {
					t.Errorf("in rotation under a 10 s max lag: %v", got)
				}
				if m.InRotation(rec.Primary, 2*time.Second) {
					t.Error("in rotation under a 2 s max lag, with 3 s of bounded lag")
				}
			}
		})
	}

	// The recorded primary is never adrift, even seen replicating before it was promoted.
	v := ClusterView{At: now, Record: rec, Peers: map[string]ha.Peer{"db2": alive(adrift)},
		Sightings: map[string]Sighting{"db2": seen["db3"]}}
	for _, m := range v.Members() {
		if m.Serving {
			t.Errorf("%s serves: %+v", m.ID, m)
		}
	}
}

// sight keeps a sighting per recorded member: renewed while it replicates from the recorded
// primary, kept while it does not, dropped once the member leaves the record.
func TestSight(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	rec := dnsRecord()
	old := Sighting{At: now.Add(-time.Second), Lag: 200 * time.Millisecond}
	v := ClusterView{At: now, Record: rec, Peers: map[string]ha.Peer{
		"db1": alive(primaryReport),
		"db2": alive(replicaReport),
		"db3": alive(with(replicaReport, func(r *health.Report) { r.IOConnected = false })),
	}, Sightings: map[string]Sighting{"db3": old, "db9": old, "db1": old}}
	got := sight(v)
	want := map[string]Sighting{"db2": {At: now, Lag: 1500 * time.Millisecond}, "db3": old, "db1": old}
	if !maps.Equal(got, want) {
		t.Fatalf("sightings %v, want %v", got, want)
	}
	if v.Sightings["db2"] != (Sighting{}) || len(v.Sightings) != 3 {
		t.Fatalf("sight changed the view's sightings: %v", v.Sightings)
	}
}

// firstHand gives DNS this pass's reads by member id, and shows a server this pass fenced as
// read-only, since the read came before the fence.
func TestFirstHand(t *testing.T) {
	primary := writableRead
	obs := ha.Observation{Self: "db2", Record: dnsRecord(), Local: replicaRead("db1", "Yes", true, 0), Primary: &primary}
	got := firstHand(obs, ha.Decision{}, nil)
	if len(got) != 2 || !got["db1"].Status.Writable() || got["db2"].Status.Replica == nil {
		t.Fatalf("non-leader: %+v", got)
	}

	obs.Servers = map[string]ha.Server{"db1": primary, "db2": obs.Local, "db3": goneRead}
	got = firstHand(obs, ha.Decision{FenceMember: "db1"}, nil)
	if len(got) != 3 || got["db1"].Status.Writable() || !got["db3"].Gone {
		t.Fatalf("leader fencing the primary: %+v", got)
	}
	if !primary.Status.Writable() || !obs.Servers["db1"].Status.Writable() {
		t.Fatal("firstHand changed the observation")
	}

	// A non-leader's reads for publishing come in; the observation's own reads win.
	obs.Servers = nil
	got = firstHand(obs, ha.Decision{}, map[string]ha.Server{"db3": replicaRead("db1", "Yes", true, 0), "db2": goneRead})
	if len(got) != 3 || got["db3"].Status.Replica == nil || got["db2"].Gone {
		t.Fatalf("non-leader with reads for publishing: %+v", got)
	}

	self := ha.Observation{Self: "db1", Record: dnsRecord(), Local: writableRead}
	for _, node := range []ha.NodeAction{ha.NodeFence, ha.NodeKill} {
		if got := firstHand(self, ha.Decision{Node: node}, nil); got["db1"].Status.Writable() {
			t.Errorf("%s of the local server: still writable in %+v", node, got)
		}
	}
	if got := firstHand(self, ha.Decision{Node: ha.NodeOpenWrites}, nil); !got["db1"].Status.Writable() {
		t.Errorf("open_writes: %+v", got)
	}
}

// In process: after the primary's host crashes, every surviving agent's DNS view names the new
// primary and lists the other survivor as its replica.
func TestDNSViewFollowsFailover(t *testing.T) {
	c := startCluster(t, 3)
	first := c.waitPrimary("")
	for _, m := range c.members {
		waitListed(t, m, first.id)
	}
	crashed := time.Now()
	first.crash()
	second := c.waitPrimary(first.id)
	deadline := time.Now().Add(20 * time.Second)
	for _, m := range c.members {
		if m == first {
			continue
		}
		for {
			v, _ := m.views.last()
			dv := dnsView(v)
			healthy := map[string]bool{}
			for _, mem := range dv.Members {
				healthy[mem.Name] = mem.Healthy
			}
			if dv.Primary == second.id && len(healthy) == 3 && healthy[second.id] && !healthy[first.id] &&
				healthy[c.other(first, second).id] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: DNS view %+v, want %s primary and the other survivor its replica", m.id, dv, second.id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The replica that stayed one was listed by every survivor all along: adrift while its
	// source was dead, then replicating from the new primary.
	third := c.other(first, second)
	for _, m := range []*member{second, third} {
		m.views.mu.Lock()
		views := slices.Clone(m.views.views)
		m.views.mu.Unlock()
		for _, v := range views {
			if v.At.Before(crashed) {
				continue
			}
			for _, mv := range v.Members() {
				if mv.ID == third.id && !mv.InRotation(v.Record.Primary, 10*time.Second) {
					t.Fatalf("%s's view at %s (epoch %d) left out replica %s: %+v", m.id, v.At.Format("15:04:05.000"), v.Record.Epoch, third.id, mv)
				}
			}
		}
	}
}

// waitListed waits until m's views list every other member in rotation, primary the primary.
func waitListed(t *testing.T, m *member, primary string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, _ := m.views.last()
		listed := 0
		for _, mv := range v.Members() {
			if v.Record.Primary == primary && mv.InRotation(primary, 10*time.Second) {
				listed++
			}
		}
		if listed == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listed all three members with %s primary", m.id, primary)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// other is the member that is neither a nor b.
func (c *testCluster) other(a, b *member) *member {
	for _, m := range c.members {
		if m != a && m != b {
			return m
		}
	}
	return nil
}

// The leader publishes the failover it commits in the pass that commits it: a view of the new
// epoch taken at the moment the record says the epoch began (the deciding pass's clock).
func TestFailoverPublishedInItsPass(t *testing.T) {
	c := startCluster(t, 3)
	first := c.waitPrimary("")
	first.crash()
	second := c.waitPrimary(first.id)
	rec := second.raft.Record()
	for _, m := range c.members {
		m.views.mu.Lock()
		for _, v := range m.views.views {
			if v.Leader && v.Record.Epoch == rec.Epoch && v.At.Equal(rec.LastPrimaryChange) {
				m.views.mu.Unlock()
				for _, mv := range v.Members() {
					if mv.ID == first.id && mv.Serving {
						t.Errorf("the old primary still serves in the committing pass's view: %+v", mv)
					}
				}
				return
			}
		}
		m.views.mu.Unlock()
	}
	t.Errorf("no leader published epoch %d in the pass that committed it (at %s)", rec.Epoch, rec.LastPrimaryChange)
}
