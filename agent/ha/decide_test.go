package ha

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

const uuidA = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func gtids(s string) gtid.Set { return gtid.MustParse(gtid.MySQL, s) }

func primaryServer(executed string) Server {
	return Server{Up: true, Status: state.Status{Flavor: gtid.MySQL, Executed: gtids(executed)}}
}

func replicaServer(source, executed, received string) Server {
	return Server{Up: true, Status: state.Status{
		Flavor: gtid.MySQL, ReadOnly: true, SuperReadOnly: true, Executed: gtids(executed),
		Replica: &state.Replica{SourceHost: source, SourcePort: 3306, IOState: "Yes", SQLRunning: true,
			AutoPosition: true, Received: gtids(received)},
		SemiSync: state.SemiSync{Available: true, ReplicaEnabled: true, ReplicaActive: true},
	}}
}

func replicaReport(source string) health.Report {
	return health.Report{MySQLUp: true, Role: health.RoleReplica, Source: source, IOConnected: true, SQLRunning: true}
}

// cluster returns a healthy 3-member cluster in epoch 3: db-0 primary, db-1 and db-2 replicas,
// observed by the leader db-1. db-2 has received one transaction more than db-1.
func cluster() Observation {
	members := map[string]record.Member{}
	for i, id := range []string{"db-0", "db-1", "db-2"} {
		host := "10.0.0." + string(rune('1'+i))
		members[id] = record.Member{ID: id, MySQLAddr: host + ":3306", Voter: true}
	}
	primary := primaryServer(uuidA + ":1-100")
	r1 := replicaServer("10.0.0.1", uuidA+":1-98", uuidA+":1-99")
	r2 := replicaServer("10.0.0.1", uuidA+":1-97", uuidA+":1-100")
	return Observation{
		Now:  t0,
		Self: "db-1",
		Record: record.Record{Cluster: "orders", Epoch: 3, Primary: "db-0", Members: members,
			LastPrimaryChange: t0.Add(-time.Hour)},
		Leader:  true,
		Local:   r1,
		Primary: &primary,
		Peers: map[string]Peer{
			"db-0": {State: PeerAlive, Report: health.Report{MySQLUp: true, Role: health.RolePrimary, Writable: true, MySQLAddr: "10.0.0.1:3306"}},
			"db-1": {State: PeerAlive, Report: withAddr(replicaReport("db-0"), "10.0.0.2:3306")},
			"db-2": {State: PeerAlive, Report: withAddr(replicaReport("db-0"), "10.0.0.3:3306")},
		},
		Servers: map[string]Server{"db-0": primary, "db-1": r1, "db-2": r2},
		Grant:   LeaseGrant{Epoch: 3, LastGrant: t0.Add(-100 * time.Millisecond)},
		Raft:    Raft{HasState: true},
	}
}

func withAddr(r health.Report, addr string) health.Report {
	r.MySQLAddr = addr
	return r
}

// primaryCrashed makes db-0's mysqld dead while its agent lives, seen since `since`.
func primaryCrashed(o *Observation, since time.Time) {
	o.Servers["db-0"] = Server{Err: "connection refused"}
	o.Primary = &Server{Err: "connection refused"}
	p := o.Peers["db-0"]
	p.Report = health.Report{MySQLUp: false, Role: health.RoleUnknown, MySQLAddr: "10.0.0.1:3306"}
	o.Peers["db-0"] = p
	for _, id := range []string{"db-1", "db-2"} {
		peer := o.Peers[id]
		peer.Report.IOConnected = false
		o.Peers[id] = peer
	}
	o.Memory = Memory{PrimaryDownSince: since, DownEpoch: o.Record.Epoch}
}

// hostDied makes db-0 (mysqld and agent) vanish.
func hostDied(o *Observation) {
	primaryCrashed(o, time.Time{})
	o.Memory = Memory{}
	p := o.Peers["db-0"]
	p.State = PeerDead
	o.Peers["db-0"] = p
}

func TestDecide(t *testing.T) {
	p := DefaultPolicy()
	tests := []struct {
		name  string
		setup func(o *Observation)
		// want
		node        NodeAction
		renew       bool
		release     bool
		propose     record.Op
		primary     string // for OpSetPrimary
		prepare     string
		fence       string
		reasonParts []string
	}{
		{name: "healthy cluster, replica in place", node: NodeNone, reasonParts: []string{"healthy", "replicating from primary db-0"}},
		{
			name: "replica restarted with semi-sync off is configured again",
			setup: func(o *Observation) {
				o.Local.Status.SemiSync = state.SemiSync{Available: true}
			},
			node: NodeReplicate, reasonParts: []string{"without acknowledging"},
		},
		{
			name:  "local MySQL unreachable",
			setup: func(o *Observation) { o.Local = Server{Err: "dial tcp: refused"} },
			node:  NodeNone, reasonParts: []string{"unreachable"},
		},
		{
			name: "a leader whose own MySQL stays unreachable hands leadership over",
			setup: func(o *Observation) {
				o.Local = Server{Err: "i/o timeout"}
				o.Memory.LocalDownSince = t0.Add(-p.DetectionTimeout)
			},
			reasonParts: []string{"handing Raft leadership over"},
		},
		{
			name: "primary whose mysqld died releases its lease",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local = Server{Err: "refused", Gone: true}
				o.LeaseUntil = t0.Add(time.Second)
			},
			release: true, reasonParts: []string{"primary lease is released"},
		},
		{
			name: "primary whose writable mysqld does not answer (stalled) keeps renewing its lease",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local = Server{Err: "i/o timeout"}
				o.LeaseUntil = t0.Add(time.Second)
				o.Memory.LocalWritable = true
			},
			renew: true, reasonParts: []string{"unreachable", "until the leader revokes it"},
		},
		{
			name: "no primary recorded and writable: fence",
			setup: func(o *Observation) {
				o.Leader = false
				o.Record.Primary = ""
				o.Local = primaryServer(uuidA + ":1-5")
			},
			node: NodeFence,
		},
		{
			name: "recorded primary with a lease opens writes",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local = replicaServer("10.0.0.9", uuidA+":1-100", uuidA+":1-100")
				o.Primary = nil
				o.LeaseUntil = t0.Add(time.Second)
			},
			node: NodeOpenWrites, renew: true,
		},
		{
			name: "whole cluster restarted: recorded primary waits for a lease before opening",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				s := primaryServer(uuidA + ":1-100")
				s.Status.ReadOnly, s.Status.SuperReadOnly = true, true
				o.Local, o.Primary = s, nil
			},
			node: NodeNone, renew: true, reasonParts: []string{"waiting for a lease"},
		},
		{
			name: "primary without a lease fences itself",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local, o.Primary = primaryServer(uuidA+":1-100"), nil
				o.LeaseUntil = t0.Add(-time.Millisecond)
			},
			node: NodeFence, renew: true, reasonParts: []string{"without a lease"},
		},
		{
			name: "consensus briefly unreachable while the lease runs: the primary keeps serving",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local, o.Primary = primaryServer(uuidA+":1-100"), nil
				o.LeaseUntil = t0.Add(2 * time.Second)
				o.Record.Cluster = "orders"
			},
			node: NodeNone, renew: true, reasonParts: []string{"writable, lease held"},
		},
		{
			name: "primary with a pending switchover fences and releases",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local, o.Primary = primaryServer(uuidA+":1-100"), nil
				o.LeaseUntil = t0.Add(time.Second)
				o.Record.Switchover = &record.Switchover{To: "db-2"}
			},
			node: NodeFence, release: true,
		},
		{
			name: "draining primary fences and releases",
			setup: func(o *Observation) {
				o.Self, o.Leader, o.Draining = "db-0", false, true
				o.Local, o.Primary = primaryServer(uuidA+":1-100"), nil
				o.LeaseUntil = t0.Add(time.Second)
			},
			node: NodeFence, release: true,
		},
		{
			name:  "writable replica is fenced at once",
			setup: func(o *Observation) { o.Local = primaryServer(uuidA + ":1-100") },
			node:  NodeFence,
		},
		{
			name: "errant replica stops replicating and stays fenced",
			setup: func(o *Observation) {
				o.Local = replicaServer("10.0.0.1", uuidA+":1-98,bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb:1", uuidA+":1-98")
			},
			node: NodeStopReplica, reasonParts: []string{"fenced until rebuilt", "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb:1"},
		},
		{
			name: "an errant server stays reported errant while the primary is unreachable",
			setup: func(o *Observation) {
				o.Primary = &Server{Err: "refused"}
				o.Memory.Errant = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb:1"
			},
			reasonParts: []string{"still holding errant transactions bbbbbbbb"},
		},
		{
			name: "rejoining old primary without errant GTIDs becomes a replica",
			setup: func(o *Observation) {
				s := primaryServer(uuidA + ":1-90")
				s.Status.ReadOnly, s.Status.SuperReadOnly = true, true
				o.Local = s
			},
			node: NodeReplicate,
		},
		{
			name: "replica following the wrong source repoints",
			setup: func(o *Observation) {
				o.Local = replicaServer("10.0.0.3", uuidA+":1-90", uuidA+":1-90")
			},
			node: NodeReplicate,
		},
		{
			name: "stopped replication threads restart towards a serving primary",
			setup: func(o *Observation) {
				o.Local.Status.Replica.IOState = "No"
			},
			node: NodeStartReplica,
		},
		{
			name: "stopped replication with an error is reported, not retried",
			setup: func(o *Observation) {
				o.Local.Status.Replica.SQLRunning = false
				o.Local.Status.Replica.LastSQLErrno = 1062
				o.Local.Status.Replica.LastSQLError = "Duplicate entry"
			},
			node: NodeNone, reasonParts: []string{"Duplicate entry"},
		},
		{
			name: "a receiver stopped by a link error fetches again",
			setup: func(o *Observation) {
				o.Local.Status.Replica.IOState = "No"
				o.Local.Status.Replica.LastIOErrno = 1595
				o.Local.Status.Replica.LastIOError = "Relay log write failure: could not queue event from master"
			},
			node: NodeStartReplica, reasonParts: []string{"could not queue event"},
		},
		{
			name: "network blip to the primary from the leader only: no failover",
			setup: func(o *Observation) {
				o.Servers["db-0"] = Server{Err: "i/o timeout"}
			},
			reasonParts: []string{"healthy"},
		},
		{
			name:        "primary mysqld crash: confirm for the detection timeout first",
			setup:       func(o *Observation) { primaryCrashed(o, time.Time{}) },
			reasonParts: []string{"looks down", "ha.detection_timeout"},
		},
		{
			name: "primary down past detection but its lease may still run",
			setup: func(o *Observation) {
				hostDied(o)
				o.Memory = Memory{PrimaryDownSince: t0.Add(-p.DetectionTimeout), DownEpoch: 3}
			},
			reasonParts: []string{"lease may still run"},
		},
		{
			name: "host crash: after detection and the lease, promote the replica that received most",
			setup: func(o *Observation) {
				hostDied(o)
				o.Memory = Memory{PrimaryDownSince: t0.Add(-p.DetectionTimeout), DownEpoch: 3}
				o.Now = o.Grant.LastGrant.Add(p.PromotionWait())
			},
			propose: record.OpSetPrimary, primary: "db-2", prepare: "db-2",
			reasonParts: []string{"promoting db-2", "received the most"},
		},
		{
			name: "mysqld crash with a released lease: promote without waiting for the lease",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
			},
			propose: record.OpSetPrimary, primary: "db-2", prepare: "db-2",
		},
		{
			name: "released lease and a healthy primary again: re-elect it in a new epoch",
			setup: func(o *Observation) {
				o.Grant.Released = true
			},
			propose: record.OpSetPrimary, primary: "db-0", reasonParts: []string{"re-electing db-0"},
		},
		{
			name: "revoked lease and a healthy primary again: re-elect it in a new epoch",
			setup: func(o *Observation) {
				o.Grant.Revoked = true
			},
			propose: record.OpSetPrimary, primary: "db-0", reasonParts: []string{"re-electing db-0", "ended early"},
		},
		{
			name: "host crash with a replica out of view: an acknowledged write may be only there, so wait",
			setup: func(o *Observation) {
				hostDied(o)
				o.Memory = Memory{PrimaryDownSince: t0.Add(-p.DetectionTimeout), DownEpoch: 3}
				o.Now = o.Grant.LastGrant.Add(p.PromotionWait())
				o.Servers["db-1"] = Server{Err: "i/o timeout"}
			},
			reasonParts: []string{"out of view", "acknowledged write may be only there"},
		},
		{
			name: "host crash, the replica that received most has no agent: it must not be left behind",
			setup: func(o *Observation) {
				hostDied(o)
				o.Memory = Memory{PrimaryDownSince: t0.Add(-p.DetectionTimeout), DownEpoch: 3}
				o.Now = o.Grant.LastGrant.Add(p.PromotionWait())
				peer := o.Peers["db-2"]
				peer.State = PeerDead
				o.Peers["db-2"] = peer
			},
			reasonParts: []string{"db-2 received transactions candidate db-1 lacks"},
		},
		{
			name: "draining primary released its lease: switch over at once, cooldown or not",
			setup: func(o *Observation) {
				o.Grant.Released = true
				o.Record.LastFailover = t0.Add(-time.Second)
				peer := o.Peers["db-0"]
				peer.Report.Draining = true
				o.Peers["db-0"] = peer
				s := o.Servers["db-0"]
				s.Status.ReadOnly, s.Status.SuperReadOnly = true, true
				o.Servers["db-0"] = s
			},
			propose: record.OpSetPrimary, primary: "db-2", prepare: "db-2",
		},
		{
			name: "a release for an older epoch does not shortcut the lease",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant = LeaseGrant{Epoch: 2, Released: true, LastGrant: t0}
			},
			reasonParts: []string{"lease may still run"},
		},
		{
			name: "dead primary whose position never advanced: candidates are judged on what they received",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
				o.Servers["db-1"] = replicaServer("10.0.0.1", uuidA+":1-100", uuidA+":1-100")
			},
			propose: record.OpSetPrimary, primary: "db-1", prepare: "db-1",
		},
		{
			name: "replicas unhealthy before the primary: no candidate, no action",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
				o.Servers["db-2"] = Server{Err: "refused"}
				peer := o.Peers["db-1"]
				peer.Report.Errant = true
				o.Peers["db-1"] = peer
			},
			reasonParts: []string{"no replica can take over", "db-1: errant", "db-2: MySQL unreachable"},
		},
		{
			name: "replicas disagree: one still replicates from the primary, so it is not down",
			setup: func(o *Observation) {
				o.Servers["db-0"] = Server{Err: "i/o timeout"}
				p := o.Peers["db-0"]
				p.State = PeerSuspect
				o.Peers["db-0"] = p
				peer := o.Peers["db-1"]
				peer.Report.IOConnected = false
				o.Peers["db-1"] = peer
			},
			reasonParts: []string{"healthy"},
		},
		{
			name: "a blip shorter than detection resets the clock",
			setup: func(o *Observation) {
				o.Memory = Memory{PrimaryDownSince: t0.Add(-time.Hour), DownEpoch: 3}
			},
			reasonParts: []string{"healthy"},
		},
		{
			name: "no Raft majority (two members down): not leader, no cluster decision",
			setup: func(o *Observation) {
				hostDied(o)
				o.Leader = false
				o.Memory = Memory{PrimaryDownSince: t0.Add(-time.Hour), DownEpoch: 3}
				o.Grant.Released = true
			},
		},
		{
			name: "paused: no failover",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
				o.Record.Paused = true
			},
			reasonParts: []string{"paused"},
		},
		{
			name: "anti-flap cooldown holds a second failover",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
				o.Record.LastFailover = t0.Add(-p.FailoverCooldown / 2)
			},
			reasonParts: []string{"ha.failover_cooldown"},
		},
		{
			name: "diverged candidates: refuse to choose",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
				o.Servers["db-1"] = replicaServer("10.0.0.1", uuidA+":1-90", uuidA+":1-90,cccccccc-cccc-cccc-cccc-cccccccccccc:1")
			},
			reasonParts: []string{"diverged"},
		},
		{
			name: "first election picks the most advanced of a healthy majority",
			setup: func(o *Observation) {
				o.Record.Primary = ""
				o.Servers["db-0"] = replicaServer("", uuidA+":1-10", uuidA+":1-10")
				o.Local = o.Servers["db-1"]
			},
			propose: record.OpSetPrimary, primary: "db-2", prepare: "db-2", reasonParts: []string{"first primary"},
		},
		{
			name: "first election waits for a majority",
			setup: func(o *Observation) {
				o.Record.Primary = ""
				o.Servers["db-0"] = Server{Err: "refused"}
				o.Servers["db-2"] = Server{Err: "refused"}
			},
			reasonParts: []string{"waiting for a majority"},
		},
		{
			name: "switchover: fence the old primary first",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{To: "db-1"}
			},
			fence: "db-0", reasonParts: []string{"fencing db-0"},
		},
		{
			name: "switchover: old primary read-only and released, promote the target after it catches up",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{To: "db-1"}
				s := o.Servers["db-0"]
				s.Status.ReadOnly, s.Status.SuperReadOnly = true, true
				o.Servers["db-0"] = s
				o.Grant.Released = true
			},
			propose: record.OpSetPrimary, primary: "db-1", prepare: "db-1",
		},
		{
			name: "paused: a pending switchover still completes",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{To: "db-1"}
				o.Record.Paused = true
				s := o.Servers["db-0"]
				s.Status.ReadOnly, s.Status.SuperReadOnly = true, true
				o.Servers["db-0"] = s
				o.Grant.Released = true
			},
			propose: record.OpSetPrimary, primary: "db-1", prepare: "db-1",
		},
		{
			name: "paused: a primary whose agent shuts down still hands over",
			setup: func(o *Observation) {
				o.Record.Paused = true
				s := o.Servers["db-0"]
				s.Status.ReadOnly, s.Status.SuperReadOnly = true, true
				o.Servers["db-0"] = s
				pp := o.Peers["db-0"]
				pp.Report.Draining, pp.Report.Writable = true, false
				o.Peers["db-0"] = pp
				o.Grant.Released, o.Grant.Draining = true, true
			},
			propose: record.OpSetPrimary, primary: "db-2", prepare: "db-2",
		},
		{
			name: "switchover: read-only old primary whose agent has not released yet",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{To: "db-1"}
				s := o.Servers["db-0"]
				s.Status.ReadOnly, s.Status.SuperReadOnly = true, true
				o.Servers["db-0"] = s
			},
			reasonParts: []string{"release the lease"},
		},
		{
			name: "switchover to an errant member is cancelled",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{To: "db-1"}
				peer := o.Peers["db-1"]
				peer.Report.Errant = true
				o.Peers["db-1"] = peer
			},
			propose: record.OpClearSwitchover, reasonParts: []string{"impossible"},
		},
		{
			name: "a member with a new address is recorded",
			setup: func(o *Observation) {
				peer := o.Peers["db-2"]
				peer.Report.MySQLAddr = "10.0.0.33:3306"
				o.Peers["db-2"] = peer
			},
			propose: record.OpUpsertMember,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := cluster()
			if tt.setup != nil {
				tt.setup(&o)
			}
			d := Decide(o, p)
			if d.Node != tt.node || d.RenewLease != tt.renew || d.ReleaseLease != tt.release || d.FenceMember != tt.fence || d.Prepare != tt.prepare {
				t.Errorf("node=%q renew=%v release=%v fence=%q prepare=%q, want %q %v %v %q %q",
					d.Node, d.RenewLease, d.ReleaseLease, d.FenceMember, d.Prepare, tt.node, tt.renew, tt.release, tt.fence, tt.prepare)
			}
			var op record.Op
			var primary string
			if d.Propose != nil {
				op, primary = d.Propose.Op, d.Propose.Primary
				if op == record.OpSetPrimary && d.Propose.Epoch != o.Record.Epoch {
					t.Errorf("proposal decided in epoch %d, record at %d", d.Propose.Epoch, o.Record.Epoch)
				}
			}
			if op != tt.propose || primary != tt.primary {
				t.Errorf("proposal %q primary %q, want %q %q", op, primary, tt.propose, tt.primary)
			}
			for _, part := range tt.reasonParts {
				if !strings.Contains(d.Reason(), part) {
					t.Errorf("reason %q lacks %q", d.Reason(), part)
				}
			}
			if d.Reason() == "" {
				t.Error("empty reason")
			}
		})
	}
}

// A failover away from a primary out of reach stops every replica in view from receiving first.
func TestFailoverQuarantinesReplicasInView(t *testing.T) {
	p := DefaultPolicy()
	o := cluster()
	hostDied(&o)
	o.Memory = Memory{PrimaryDownSince: t0.Add(-p.DetectionTimeout), DownEpoch: 3}
	o.Now = o.Grant.LastGrant.Add(p.PromotionWait())
	d := Decide(o, p)
	if d.Prepare != "db-2" || !slices.Equal(d.Quarantine, []string{"db-1", "db-2"}) {
		t.Fatalf("prepare %q quarantine %v, want db-2 and [db-1 db-2]", d.Prepare, d.Quarantine)
	}
	// A reachable old primary (released, read-only) needs none: the candidate waits for its set.
	o = cluster()
	primaryCrashed(&o, t0.Add(-p.DetectionTimeout))
	o.Grant.Released = true
	o.Servers["db-0"] = replicaServer("", uuidA+":1-100", "")
	if d := Decide(o, p); d.Quarantine != nil {
		t.Fatalf("quarantine %v with the old primary in reach", d.Quarantine)
	}
}

// TestDecideProperties checks the safety rules over many random observations: writes open only on
// the recorded primary holding a lease with no switchover pending; only a leader proposes; a new
// primary is proposed only in the record's epoch, never while the old lease may run, and never
// an errant or unreachable member.
func TestDecideProperties(t *testing.T) {
	p := DefaultPolicy()
	rng := rand.New(rand.NewPCG(1, 2))
	ids := []string{"db-0", "db-1", "db-2"}
	for i := range 20000 {
		o := cluster()
		o.Self = ids[rng.IntN(3)]
		o.Leader = rng.IntN(2) == 0
		o.Record.Primary = []string{"", "db-0", "db-1", "db-2"}[rng.IntN(4)]
		o.Record.Paused = rng.IntN(5) == 0
		if rng.IntN(4) == 0 {
			o.Record.Switchover = &record.Switchover{To: []string{"", "db-0", "db-1", "db-2"}[rng.IntN(4)]}
		}
		o.Record.LastFailover = t0.Add(-time.Duration(rng.IntN(120)) * time.Second)
		o.Now = t0.Add(time.Duration(rng.IntN(20000)) * time.Millisecond)
		o.LeaseUntil = t0.Add(time.Duration(rng.IntN(20000)) * time.Millisecond)
		o.Grant = LeaseGrant{Epoch: uint64(2 + rng.IntN(2)), LastGrant: t0.Add(time.Duration(rng.IntN(10000)) * time.Millisecond), Released: rng.IntN(2) == 0}
		o.Draining = rng.IntN(10) == 0
		o.Memory = Memory{PrimaryDownSince: t0.Add(-time.Duration(rng.IntN(5000)) * time.Millisecond), DownEpoch: uint64(2 + rng.IntN(2))}
		for _, id := range ids {
			srv := o.Servers[id]
			srv.Up = rng.IntN(4) != 0
			srv.Status.ReadOnly = rng.IntN(2) == 0
			srv.Status.SuperReadOnly = srv.Status.ReadOnly
			o.Servers[id] = srv
			peer := o.Peers[id]
			peer.State = []PeerState{PeerAlive, PeerAlive, PeerSuspect, PeerDead}[rng.IntN(4)]
			peer.Report.MySQLUp = rng.IntN(4) != 0
			peer.Report.IOConnected = rng.IntN(2) == 0
			peer.Report.Errant = rng.IntN(6) == 0
			o.Peers[id] = peer
		}
		o.Local = o.Servers[o.Self]
		if pr, ok := o.Servers[o.Record.Primary]; ok && o.Record.Primary != o.Self {
			o.Primary = &pr
		} else {
			o.Primary = nil
		}

		d := Decide(o, p)
		if d.Node == NodeOpenWrites {
			if o.Record.Primary != o.Self || !o.Now.Before(o.LeaseUntil) || o.Record.Switchover != nil || o.Draining {
				t.Fatalf("case %d: opened writes on %s (record primary %q, lease until %s, now %s, switchover %v, draining %v)",
					i, o.Self, o.Record.Primary, o.LeaseUntil, o.Now, o.Record.Switchover, o.Draining)
			}
		}
		if d.Propose == nil {
			continue
		}
		if !o.Leader {
			t.Fatalf("case %d: a follower proposed %+v", i, d.Propose)
		}
		if d.Propose.Op != record.OpSetPrimary {
			continue
		}
		c := d.Propose
		if c.Epoch != o.Record.Epoch {
			t.Fatalf("case %d: proposal for epoch %d in epoch %d", i, c.Epoch, o.Record.Epoch)
		}
		if c.Primary == o.Record.Primary && !(o.Grant.Epoch == o.Record.Epoch && o.Grant.Released) {
			t.Fatalf("case %d: re-proposed the current primary without a released lease", i)
		}
		if !o.Servers[c.Primary].Up || o.Peers[c.Primary].Report.Errant || !o.Peers[c.Primary].Alive() {
			t.Fatalf("case %d: proposed unfit member %s: %s", i, c.Primary, d.Reason())
		}
		if o.Record.Primary != "" && leaseWait(o, p) > 0 {
			t.Fatalf("case %d: proposed %s while the old lease may run %s more", i, c.Primary, leaseWait(o, p))
		}
		draining := o.Peers[o.Record.Primary].Report.Draining || o.Grant.Draining
		if o.Record.Primary != "" && o.Record.Switchover == nil && o.Record.Paused && !draining && c.Primary != o.Record.Primary {
			t.Fatalf("case %d: failover while paused: %s (%+v)", i, d.Reason(), c)
		}
	}
}

// A frozen mysqld that was writable is killed once the primary lease ran out, and only then.
func TestFrozenPrimaryIsKilledPastItsLease(t *testing.T) {
	frozen := func(leaseLeft time.Duration, wasWritable bool) Observation {
		o := cluster()
		o.Self, o.Leader = "db-0", false
		o.Local = Server{Err: "i/o timeout", Stalled: true}
		o.LeaseUntil = t0.Add(leaseLeft)
		o.Memory.LocalWritable = wasWritable
		o.Memory.LocalStalls = 1 // the pass before did not get an answer either
		return o
	}
	kill := DefaultPolicy()
	kill.KillFrozenPrimary = true
	tests := []struct {
		name string
		obs  Observation
		p    Policy
		want NodeAction
	}{
		{"past the lease", frozen(-time.Millisecond, true), kill, NodeKill},
		{"lease still held", frozen(time.Second, true), kill, NodeNone},
		{"was read-only", frozen(-time.Millisecond, false), kill, NodeNone},
		{"no process to kill configured", frozen(-time.Millisecond, true), DefaultPolicy(), NodeNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := Decide(tt.obs, tt.p); d.Node != tt.want {
				t.Fatalf("node action %q (%s), want %q", d.Node, d.NodeReason, tt.want)
			}
		})
	}
	// A server that is not running at all is already fenced; one whose connection broke at once
	// (a fence kills the agent's connections too) is probed again, not killed.
	gone := frozen(-time.Millisecond, true)
	gone.Local = Server{Err: "connection refused", Gone: true}
	broken := frozen(-time.Millisecond, true)
	broken.Local = Server{Err: "invalid connection"}
	// A single probe that ran out of time proves nothing: the agent may have been the one frozen.
	once := frozen(-time.Millisecond, true)
	once.Memory.LocalStalls = 0
	for _, o := range []Observation{gone, broken, once} {
		if d := Decide(o, kill); d.Node != NodeNone {
			t.Fatalf("%s: node action %q", o.Local.Err, d.Node)
		}
	}
	if d := Decide(frozen(time.Second, true), kill); d.Memory.LocalStalls != 2 {
		t.Fatalf("stalled passes in a row: %d, want 2", d.Memory.LocalStalls)
	}
	// The memory of being writable comes from the last answer.
	o := cluster()
	o.Local = primaryServer(uuidA + ":1-100")
	if d := Decide(o, kill); !d.Memory.LocalWritable {
		t.Fatal("a writable local server is not remembered as writable")
	}
}
