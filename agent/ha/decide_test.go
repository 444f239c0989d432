package ha

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/membership"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

const (
	uuidA = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
	uuidC = "cccccccc-cccc-cccc-cccc-cccccccccccc"
	uuidD = "dddddddd-dddd-dddd-dddd-dddddddddddd"
)

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

// noAcks is s as a semi-sync source with no acknowledging replica connected.
func noAcks(s Server) Server {
	s.Status.SemiSync = state.SemiSync{Available: true, SourceEnabled: true, SourceActive: true, AcksRequired: 1}
	return s
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

// stalledPrimary makes the observer db-0, the serving primary, with clients acknowledging
// semi-sync replicas connected (one ack needed).
func stalledPrimary(o *Observation, clients int) {
	o.Self, o.Leader = "db-0", false
	o.Local, o.Primary = primaryServer(uuidA+":1-100"), nil
	o.Local.Status.SemiSync = state.SemiSync{Available: true, SourceEnabled: true, SourceActive: true, AcksRequired: 1, Clients: clients}
	o.LeaseUntil = t0.Add(time.Second)
}

// movingWhy is why a primary's agent reports a long heartbeat wait as no stall.
var movingWhy = why(CodeCommitMoving, "primary of epoch 3: a heartbeat commit waits past ha.commit_stall_timeout behind commits "+
	"that still move (its binlog grows, or a replica reads more of it): slow, not stalled")

// opensWrites is a recorded primary's agent opening writes under its lease.
var opensWrites = Decision{Node: NodeOpenWrites, RenewLease: true,
	NodeReason: why(CodePrimaryOpen, "primary of epoch 3 with a lease: applying the relay log and opening writes")}

// copiesDB0 makes a member re-seed from db-0.
func copiesDB0(p *Peer) { p.Report.Reseeding, p.Report.ReseedFrom = true, "db-0" }

// stalledWhy is why a primary's agent reports its commit path stalled.
func stalledWhy(waited, idle string) Reason {
	return why(CodeCommitStalled, "primary of epoch 3: a heartbeat commit has waited "+waited+", and neither its binlog nor a replica's read of it moved for "+
		idle+", past ha.commit_stall_timeout: the commit path is stalled, reported for the leader to fail over")
}

// stallWhy is why the leader judges a primary down whose agent reports a commit stall.
const stallWhy = "its agent reports a heartbeat commit waiting past ha.commit_stall_timeout"

// why is a reason as a case expects it: the code and the whole sentence, so rewording a line
// people read in logs is a deliberate change to this table.
func why(code Code, text string) Reason { return Reason{Code: code, Text: text} }

// The node and cluster reasons most cases share: the leader db-1 of cluster() is a replica.
var (
	replicaServing = why(CodeReplicaServing, "replicating from primary db-0 of epoch 3")
	primaryLost    = why(CodePrimaryUnreachable, "read-only; primary db-0 is unreachable from here")
	awaitPrimary   = why(CodeAwaitPrimary, "read-only, waiting for the leader to record a primary")
	db0Healthy     = why(CodePrimaryHealthy, "primary db-0 of epoch 3 is healthy")
)

const errantB = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb:1"

// proposing completes want with the leader's proposal c, decided because of r: the command
// carries the decision's sentence.
func proposing(want Decision, r Reason, c record.Command) Decision {
	want.ClusterReason = r
	c.Reason = r.Text
	want.Propose = &c
	return want
}

func mem(m Memory) *Memory { return &m }

// addReplica adds a healthy replica of db-0 lagging lagMs to cluster().
func addReplica(o *Observation, id string, lagMs int64) {
	o.Record.Members[id] = record.Member{ID: id, MySQLAddr: id + ":3306", Voter: true}
	o.Servers[id] = replicaServer("10.0.0.1", uuidA+":1-99", uuidA+":1-99")
	r := withAddr(replicaReport("db-0"), id+":3306")
	r.LagMillis = lagMs
	o.Peers[id] = Peer{State: PeerAlive, Report: r}
}

// laterEpoch crashes db-0 (its lease released), adds the members extra, and has db-1 and them
// replicas of db-0 that received and applied the given GTIDs.
func laterEpoch(o *Observation, received string, extra ...string) {
	primaryCrashed(o, t0.Add(-DefaultPolicy().DetectionTimeout))
	o.Grant.Released = true
	for _, id := range extra {
		addReplica(o, id, 0)
		o.Servers[id] = replicaServer("10.0.0.1", received, received)
	}
	o.Servers["db-1"] = replicaServer("10.0.0.1", received, received)
	o.Local = o.Servers["db-1"]
}

// deposedPrimary makes member id a primary of an earlier epoch, server UUID uuid: fenced, no
// replica configuration, its agent not knowing of anything errant.
func deposedPrimary(o *Observation, id, uuid, executed string) {
	s := primaryServer(executed)
	s.Status.ReadOnly, s.Status.SuperReadOnly, s.Status.ServerUUID = true, true, uuid
	o.Servers[id] = s
}

// emptyServer is a replica with an empty data dir whose receiver fails: the primary purged the
// binary logs it would need.
func emptyServer() Server {
	s := replicaServer("10.0.0.1", "", "")
	s.Status.Replica.IOState, s.Status.Replica.LastIOErrno = "No", 13114
	s.Status.Replica.LastIOError = "the source purged required binary logs"
	return s
}

// emptyWhy is why emptyServer is re-seeded.
const emptyWhy = "it holds no transactions (an empty data dir) and replication cannot give them (receiver error 13114)"

// mariadbServer is a MariaDB server in a MySQL cluster: nonsense, but it makes GTID comparisons fail.
func mariadbServer(pos string) Server {
	return Server{Up: true, Status: state.Status{Flavor: gtid.MariaDB, ReadOnly: true, SuperReadOnly: true,
		Executed: gtid.MustParse(gtid.MariaDB, pos)}}
}

type decideCase struct {
	name   string
	policy func(p *Policy) // changes to DefaultPolicy
	setup  func(o *Observation)
	// want is the whole decision except Memory.
	want Decision
	// memory is the Memory expected; nil expects the observation's Memory back unchanged.
	memory *Memory
}

// decideCases are the cases of TestDecide; TestEveryReasonCodeIsTested reads their codes.
func decideCases(p Policy) []decideCase {
	// A down clock that has run for the detection timeout.
	detected := t0.Add(-p.DetectionTimeout)
	downMemory := mem(Memory{PrimaryDownSince: detected, DownEpoch: 3})
	// When cluster()'s lease, last granted 100 ms before t0, can no longer run.
	promotable := t0.Add(-100 * time.Millisecond).Add(p.PromotionWait())
	readOnly := func(o *Observation, id string) {
		s := o.Servers[id]
		s.Status.ReadOnly, s.Status.SuperReadOnly = true, true
		o.Servers[id] = s
	}
	setPeer := func(o *Observation, id string, change func(p *Peer)) {
		peer := o.Peers[id]
		change(&peer)
		o.Peers[id] = peer
	}
	// hostCrash: db-0's host died, past detection and the lease.
	hostCrash := func(o *Observation) {
		hostDied(o)
		o.Memory = Memory{PrimaryDownSince: t0.Add(-p.DetectionTimeout), DownEpoch: 3}
		o.Now = o.Grant.LastGrant.Add(p.PromotionWait())
	}
	crashed := "primary db-0 is down (the leader's probe fails (connection refused) and 2 of 2 members lost it too (replication or their own probe))"
	// stopApplier stops a replica's applier as the leader probes it, with an error when errno is set.
	stopApplier := func(o *Observation, id string, errno int, msg string) {
		srv := o.Servers[id]
		rep := *srv.Status.Replica // a copy: db-1's is shared with Local
		rep.SQLRunning, rep.LastSQLErrno, rep.LastSQLError = false, errno, msg
		srv.Status.Replica = &rep
		o.Servers[id] = srv
	}
	duplicate := "Could not execute Write_rows event on table app.t; Duplicate entry '7' for key 'PRIMARY'"
	// recoverFromDB2: after a host crash, db-1 gets what only db-2, whose applier failed, received.
	recoverFromDB2 := proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-1", Quarantine: []string{"db-1", "db-2"},
		PrepareRecover: &Recover{From: "db-2", GTIDs: gtids(uuidA + ":100")}},
		why(CodeFailoverRecover, crashed+" and transactions "+uuidA+":100 were received only by db-2, which cannot apply them "+
			"(its applier stopped with error 1062 ("+duplicate+")): recovering them from its binlog and relay log onto db-1, "+
			"the candidate that received the most of the rest, then promoting it"),
		record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-1", At: promotable, Failover: true})
	mariadbReplica := func(executed, received, io string, applying bool) Server {
		return Server{Up: true, Status: state.Status{Flavor: gtid.MariaDB, ReadOnly: true, Executed: gtid.MustParse(gtid.MariaDB, executed),
			Replica: &state.Replica{SourceHost: "10.0.0.1", SourcePort: 3306, IOState: io, SQLRunning: applying, AutoPosition: true,
				Received: gtid.MustParse(gtid.MariaDB, received)}}}
	}
	minus := func(a, b gtid.Set) gtid.Set {
		d, err := a.Subtract(b)
		if err != nil {
			panic(err)
		}
		return d
	}
	return []decideCase{
		{
			name: "healthy cluster, replica in place",
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
		{
			name: "replica restarted with semi-sync off is configured again",
			setup: func(o *Observation) {
				o.Local.Status.SemiSync = state.SemiSync{Available: true}
			},
			want: Decision{Node: NodeReplicate, ClusterReason: db0Healthy, NodeReason: why(CodeSemiSyncOff,
				"replicating from primary db-0 without acknowledging its commits (semi-sync replica side off, as after a restart): configuring replication again")},
		},
		{
			name:   "local MySQL unreachable",
			setup:  func(o *Observation) { o.Local = Server{Err: "dial tcp: refused"} },
			want:   Decision{NodeReason: why(CodeLocalUnreachable, "local MySQL is unreachable (dial tcp: refused)"), ClusterReason: db0Healthy},
			memory: mem(Memory{LocalDownSince: t0}),
		},
		{
			name: "a local server that answers again clears its down clock and its stalls",
			setup: func(o *Observation) {
				o.Memory = Memory{LocalDownSince: t0.Add(-time.Second), LocalStalls: 1}
			},
			want:   Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
			memory: mem(Memory{}),
		},
		{
			name: "a leader whose own MySQL stays unreachable hands leadership over",
			setup: func(o *Observation) {
				o.Local = Server{Err: "i/o timeout"}
				o.Memory.LocalDownSince = t0.Add(-p.DetectionTimeout)
			},
			want: Decision{NodeReason: why(CodeLocalUnreachable, "local MySQL is unreachable (i/o timeout)"), TransferLeadership: true,
				ClusterReason: why(CodeHandLeadership, "handing Raft leadership over: this agent's own MySQL has been unreachable for ha.detection_timeout")},
		},
		{
			name: "a leader beside the frozen primary keeps leading to fail over on its own lease grants",
			setup: func(o *Observation) {
				o.Self, o.Local = "db-0", Server{Err: "i/o timeout", Stalled: true}
				o.Primary = &Server{Err: "i/o timeout", Stalled: true}
				o.Servers["db-0"] = *o.Primary
				o.Memory = Memory{LocalDownSince: t0.Add(-p.DetectionTimeout), LocalWritable: true, LocalStalls: 5,
					PrimaryDownSince: t0.Add(-p.DetectionTimeout), DownEpoch: 3}
				o.Grant.LastGrant = t0.Add(-p.PromotionWait())
				setPeer(o, "db-0", func(p *Peer) { p.Report.MySQLUp = false })
			},
			want: proposing(Decision{NodeReason: why(CodeLocalUnreachable, "local MySQL is unreachable (i/o timeout)"), RevokeLease: true, Prepare: "db-2",
				Quarantine: []string{"db-1", "db-2"}},
				why(CodeFailover, "promoting db-2: primary db-0 is down (its agent reports MySQL down and the leader's probe fails (i/o timeout)) "+
					"and db-2 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: t0, Failover: true}),
			memory: mem(Memory{LocalDownSince: t0.Add(-p.DetectionTimeout), LocalWritable: true, LocalStalls: 6,
				PrimaryDownSince: t0.Add(-p.DetectionTimeout), DownEpoch: 3}),
		},
		{
			name: "a leader whose own MySQL stays unreachable hands leadership to a voter whose MySQL serves",
			setup: func(o *Observation) {
				o.Local = Server{Err: "i/o timeout"}
				o.Memory.LocalDownSince = t0.Add(-p.DetectionTimeout)
				o.Raft.Configuration = []membership.Server{{ID: "db-0", Voter: true}, {ID: "db-1", Voter: true}, {ID: "db-2", Voter: true}}
				o.Self = "db-1"
				setPeer(o, "db-0", func(p *Peer) { p.Report.MySQLUp = false })
			},
			want: Decision{NodeReason: why(CodeLocalUnreachable, "local MySQL is unreachable (i/o timeout)"), TransferLeadership: true, TransferTo: "db-2",
				ClusterReason: why(CodeHandLeadership, "handing Raft leadership over: this agent's own MySQL has been unreachable for ha.detection_timeout")},
		},
		{
			name: "a leader handing leadership over prefers a replica's agent to the primary's, listed first",
			setup: func(o *Observation) {
				o.Local = Server{Err: "i/o timeout"}
				o.Memory.LocalDownSince = t0.Add(-p.DetectionTimeout)
				o.Raft.Configuration = []membership.Server{{ID: "db-0", Voter: true}, {ID: "db-1", Voter: true}, {ID: "db-2", Voter: true}}
				o.Self = "db-1"
			},
			want: Decision{NodeReason: why(CodeLocalUnreachable, "local MySQL is unreachable (i/o timeout)"), TransferLeadership: true, TransferTo: "db-2",
				ClusterReason: why(CodeHandLeadership, "handing Raft leadership over: this agent's own MySQL has been unreachable for ha.detection_timeout")},
		},
		{
			name: "a leader handing leadership over gives it to the primary's agent when no other voter serves",
			setup: func(o *Observation) {
				o.Local = Server{Err: "i/o timeout"}
				o.Memory.LocalDownSince = t0.Add(-p.DetectionTimeout)
				o.Raft.Configuration = []membership.Server{{ID: "db-0", Voter: true}, {ID: "db-1", Voter: true}, {ID: "db-2", Voter: true}}
				o.Self = "db-1"
				setPeer(o, "db-2", func(p *Peer) { p.Report.MySQLUp = false })
			},
			want: Decision{NodeReason: why(CodeLocalUnreachable, "local MySQL is unreachable (i/o timeout)"), TransferLeadership: true, TransferTo: "db-0",
				ClusterReason: why(CodeHandLeadership, "handing Raft leadership over: this agent's own MySQL has been unreachable for ha.detection_timeout")},
		},
		{
			name: "primary whose mysqld died releases its lease",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local = Server{Err: "refused", Gone: true}
				o.LeaseUntil = t0.Add(time.Second)
			},
			want: Decision{ReleaseLease: true, NodeReason: why(CodeLeaseReleased,
				"local MySQL is unreachable (refused): it is not running, so the primary lease is released for the leader to fail over at once")},
			memory: mem(Memory{LocalDownSince: t0}),
		},
		{
			name: "primary whose writable mysqld does not answer (stalled) lets its lease run out: ha.lease outlasts detection",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local = Server{Err: "i/o timeout"}
				o.LeaseUntil = t0.Add(time.Second)
				o.Memory.LocalWritable = true
			},
			want:   Decision{NodeReason: why(CodeLeaseWithheld, "local MySQL is unreachable (i/o timeout): still the primary, but no longer renewing the lease, so that it runs out no later than the leader may judge the server down and a failover need not wait for it")},
			memory: mem(Memory{LocalWritable: true, LocalDownSince: t0}),
		},
		{
			name:   "with ha.lease shorter than detection, a stalled primary renews while the stall may be shorter than detection",
			policy: func(p *Policy) { p.Lease, p.DetectionTimeout = time.Second, 3*time.Second },
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local = Server{Err: "i/o timeout"}
				o.LeaseUntil = t0.Add(time.Second)
				o.Memory.LocalWritable, o.Memory.LocalDownSince = true, t0.Add(-1999*time.Millisecond)
			},
			want: Decision{RenewLease: true, NodeReason: why(CodeLeaseKeptStalled,
				"local MySQL is unreachable (i/o timeout): still the primary, renewing the lease while a stall may still be shorter than detection")},
			memory: mem(Memory{LocalWritable: true, LocalDownSince: t0.Add(-1999 * time.Millisecond)}),
		},
		{
			name:   "with ha.lease shorter than detection, a stalled primary stops renewing once its lease would end with detection",
			policy: func(p *Policy) { p.Lease, p.DetectionTimeout = time.Second, 3*time.Second },
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local = Server{Err: "i/o timeout"}
				o.LeaseUntil = t0.Add(time.Second)
				o.Memory.LocalWritable, o.Memory.LocalDownSince = true, t0.Add(-2*time.Second)
			},
			want:   Decision{NodeReason: why(CodeLeaseWithheld, "local MySQL is unreachable (i/o timeout): still the primary, but no longer renewing the lease, so that it runs out no later than the leader may judge the server down and a failover need not wait for it")},
			memory: mem(Memory{LocalWritable: true, LocalDownSince: t0.Add(-2 * time.Second)}),
		},
		{
			name:   "a frozen primary past its lease is killed when a process to kill is configured",
			policy: func(p *Policy) { p.KillFrozenPrimary = true },
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local = Server{Err: "i/o timeout", Stalled: true}
				o.LeaseUntil = t0.Add(-time.Millisecond)
				o.Memory = Memory{LocalWritable: true, LocalStalls: 1}
			},
			want: Decision{Node: NodeKill, NodeReason: why(CodeKillFrozen,
				"local MySQL is unreachable (i/o timeout) while writable, past its primary lease: killing it, the only fence left for a frozen server")},
			memory: mem(Memory{LocalWritable: true, LocalStalls: 2, LocalDownSince: t0}),
		},
		{
			name: "no primary recorded and writable: fence",
			setup: func(o *Observation) {
				o.Leader = false
				o.Record.Primary = ""
				o.Local = primaryServer(uuidA + ":1-5")
			},
			want:   Decision{Node: NodeFence, NodeReason: why(CodeNoPrimaryFence, "no primary is recorded, so this server must not take writes: fencing")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "recorded primary with a lease opens writes",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local = replicaServer("10.0.0.9", uuidA+":1-100", uuidA+":1-100")
				o.Primary = nil
				o.LeaseUntil = t0.Add(time.Second)
			},
			want: opensWrites,
		},
		{
			name: "a primary no replica acknowledges fences itself while a member copies it, keeping its lease",
			setup: func(o *Observation) {
				stalledPrimary(o, 0)
				setPeer(o, "db-2", copiesDB0)
				setPeer(o, "db-1", func(p *Peer) { p.Report.Reseeding, p.Report.ReseedFrom = true, "db-2" })
			},
			want: Decision{Node: NodeFence, RenewLease: true, NodeReason: why(CodePrimaryLending, "primary of epoch 3: db-2 copies this server, "+
				"and no replica is connected to acknowledge a commit: read-only for the copy")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "a lending primary stays read-only until the copy ends",
			setup: func(o *Observation) {
				stalledPrimary(o, 0)
				o.Local.Status.ReadOnly, o.Local.Status.SuperReadOnly = true, true
				setPeer(o, "db-2", copiesDB0)
			},
			want: Decision{RenewLease: true, NodeReason: why(CodePrimaryLending, "primary of epoch 3, read-only while db-2 copies this server "+
				"(no replica is connected to acknowledge a commit); writes reopen once it is done")},
		},
		{
			name: "a lending primary reopens once the copy ended",
			setup: func(o *Observation) {
				stalledPrimary(o, 0)
				o.Local.Status.ReadOnly, o.Local.Status.SuperReadOnly = true, true
			},
			want: opensWrites,
		},
		{
			name: "a primary with an acknowledging replica connected serves on while a member copies it",
			setup: func(o *Observation) {
				stalledPrimary(o, 1)
				setPeer(o, "db-2", copiesDB0)
			},
			want:   Decision{RenewLease: true, NodeReason: why(CodePrimaryServing, "primary of epoch 3, writable, lease held")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "a copy by a member whose agent is gone lends nothing",
			setup: func(o *Observation) {
				stalledPrimary(o, 0)
				o.Local.Status.ReadOnly, o.Local.Status.SuperReadOnly = true, true
				setPeer(o, "db-2", func(p *Peer) { p.State, p.Report.Reseeding, p.Report.ReseedFrom = PeerDead, true, "db-0" })
			},
			want: opensWrites,
		},
		{
			name: "a writable primary still configured as a replica finishes its promotion",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local = replicaServer("10.0.0.9", uuidA+":1-100", uuidA+":1-100")
				o.Local.Status.ReadOnly, o.Local.Status.SuperReadOnly = false, false
				o.Primary = nil
				o.LeaseUntil = t0.Add(time.Second)
			},
			want:   opensWrites,
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "whole cluster restarted: recorded primary waits for a lease before opening",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				s := primaryServer(uuidA + ":1-100")
				s.Status.ReadOnly, s.Status.SuperReadOnly = true, true
				o.Local, o.Primary = s, nil
			},
			want: Decision{RenewLease: true, NodeReason: why(CodePrimaryNoLease, "primary of epoch 3, waiting for a lease before opening writes")},
		},
		{
			name: "primary without a lease fences itself",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local, o.Primary = primaryServer(uuidA+":1-100"), nil
				o.LeaseUntil = t0.Add(-time.Millisecond)
			},
			want: Decision{Node: NodeFence, RenewLease: true,
				NodeReason: why(CodePrimaryNoLease, "primary of epoch 3 without a lease (no Raft majority confirmed within ha.lease): fencing")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "consensus briefly unreachable while the lease runs: the primary keeps serving",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local, o.Primary = primaryServer(uuidA+":1-100"), nil
				o.LeaseUntil = t0.Add(2 * time.Second)
				o.Record.Cluster = "orders"
			},
			want:   Decision{RenewLease: true, NodeReason: why(CodePrimaryServing, "primary of epoch 3, writable, lease held")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name:   "the leader beside a serving primary hands leadership to another voter",
			policy: func(p *Policy) { p.LeaderOffPrimary = true },
			setup: func(o *Observation) {
				o.Self = "db-0"
				o.Local, o.Primary = primaryServer(uuidA+":1-100"), nil
				o.Servers["db-0"] = o.Local
				o.LeaseUntil = t0.Add(time.Second)
				o.Raft.Configuration = []membership.Server{{ID: "db-0", Voter: true}, {ID: "db-1", Voter: true}, {ID: "db-2", Voter: true}}
			},
			want: Decision{RenewLease: true, TransferLeadership: true, TransferTo: "db-1", NodeReason: why(CodePrimaryServing, "primary of epoch 3, writable, lease held"),
				ClusterReason: why(CodeLeaderOffPrimary, "primary db-0 of epoch 3 is healthy; handing Raft leadership away from its agent "+
					"(db-1 can take it), so that one host lost does not take both")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name:   "the leader beside a serving primary keeps leadership when ha.leader_off_primary is off",
			policy: func(p *Policy) { p.LeaderOffPrimary = false },
			setup: func(o *Observation) {
				o.Self = "db-0"
				o.Local, o.Primary = primaryServer(uuidA+":1-100"), nil
				o.Servers["db-0"] = o.Local
				o.LeaseUntil = t0.Add(time.Second)
				o.Raft.Configuration = []membership.Server{{ID: "db-0", Voter: true}, {ID: "db-1", Voter: true}, {ID: "db-2", Voter: true}}
			},
			want:   Decision{RenewLease: true, NodeReason: why(CodePrimaryServing, "primary of epoch 3, writable, lease held"), ClusterReason: db0Healthy},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name:   "the leader beside a serving primary keeps leadership while no other voter serves",
			policy: func(p *Policy) { p.LeaderOffPrimary = true },
			setup: func(o *Observation) {
				o.Self = "db-0"
				o.Local, o.Primary = primaryServer(uuidA+":1-100"), nil
				o.Servers["db-0"] = o.Local
				o.LeaseUntil = t0.Add(time.Second)
				o.Raft.Configuration = []membership.Server{{ID: "db-0", Voter: true}, {ID: "db-1", Voter: false}, {ID: "db-2", Voter: true}}
				setPeer(o, "db-2", func(p *Peer) { p.Report.MySQLUp = false })
			},
			want:   Decision{RenewLease: true, NodeReason: why(CodePrimaryServing, "primary of epoch 3, writable, lease held"), ClusterReason: db0Healthy},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "primary with a pending switchover fences and releases",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				o.Local, o.Primary = primaryServer(uuidA+":1-100"), nil
				o.LeaseUntil = t0.Add(time.Second)
				o.Record.Switchover = &record.Switchover{To: "db-2"}
			},
			want: Decision{Node: NodeFence, ReleaseLease: true,
				NodeReason: why(CodePrimaryStepDown, "primary of epoch 3 but a switchover is pending: fencing and releasing the lease")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "read-only primary with a pending switchover releases its lease again",
			setup: func(o *Observation) {
				o.Self, o.Leader = "db-0", false
				s := primaryServer(uuidA + ":1-100")
				s.Status.ReadOnly, s.Status.SuperReadOnly = true, true
				o.Local, o.Primary = s, nil
				o.Record.Switchover = &record.Switchover{To: "db-2"}
			},
			want: Decision{ReleaseLease: true, NodeReason: why(CodePrimaryStepDown, "primary of epoch 3, read-only because a switchover is pending")},
		},
		{
			name: "draining primary fences and releases",
			setup: func(o *Observation) {
				o.Self, o.Leader, o.Draining = "db-0", false, true
				o.Local, o.Primary = primaryServer(uuidA+":1-100"), nil
				o.LeaseUntil = t0.Add(time.Second)
			},
			want: Decision{Node: NodeFence, ReleaseLease: true,
				NodeReason: why(CodePrimaryStepDown, "primary of epoch 3 but this agent is shutting down: fencing and releasing the lease")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name:  "writable replica is fenced at once",
			setup: func(o *Observation) { o.Local = primaryServer(uuidA + ":1-100") },
			want: Decision{Node: NodeFence, ClusterReason: db0Healthy,
				NodeReason: why(CodeReplicaWritable, "epoch 3 names db-0 primary but this server is writable: fencing")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "errant replica stops replicating and stays fenced",
			setup: func(o *Observation) {
				o.Local = replicaServer("10.0.0.1", uuidA+":1-98,"+errantB, uuidA+":1-98")
			},
			want: Decision{Node: NodeStopReplica, Errant: errantB, ClusterReason: db0Healthy,
				NodeReason: why(CodeErrant, "has transactions primary db-0 lacks ("+errantB+"): fenced until rebuilt")},
			memory: mem(Memory{Errant: errantB}),
		},
		{
			name: "an errant server stays reported errant while the primary is unreachable",
			setup: func(o *Observation) {
				o.Primary = &Server{Err: "refused"}
				o.Memory.Errant = errantB
			},
			want: Decision{Errant: errantB, ClusterReason: db0Healthy,
				NodeReason: why(CodeErrant, "read-only; primary db-0 is unreachable from here; still holding errant transactions "+errantB)},
		},
		{
			name: "a primary silent for two probes in a row: the replica stops receiving from it",
			setup: func(o *Observation) {
				o.Primary = &Server{Err: "i/o timeout", Stalled: true}
				o.Memory.PrimaryMisses = 1
			},
			want: Decision{Node: NodeStopReceiver, ClusterReason: db0Healthy,
				NodeReason: why(CodeStopReceiver, "read-only; primary db-0 missed 2 probes from here in a row: stopping the receiver, "+
					"so nothing more of it is acknowledged while the leader may replace it")},
			memory: mem(Memory{PrimaryMisses: 2}),
		},
		{
			name: "a probe still pending after a failure is no new miss: the receiver runs on",
			setup: func(o *Observation) {
				o.Primary = &Server{Err: "a probe unanswered after 70ms, the one before it failed too", Stalled: true, Pending: true}
				o.Memory.PrimaryMisses = 1
			},
			want:   Decision{NodeReason: primaryLost, ClusterReason: db0Healthy},
			memory: mem(Memory{PrimaryMisses: 1}),
		},
		{
			name:   "one missed probe of the primary stops nothing: this agent may have been the one paused",
			setup:  func(o *Observation) { o.Primary = &Server{Err: "i/o timeout", Stalled: true} },
			want:   Decision{NodeReason: primaryLost, ClusterReason: db0Healthy},
			memory: mem(Memory{PrimaryMisses: 1}),
		},
		{
			name: "a stopped receiver is not stopped again while the primary stays silent",
			setup: func(o *Observation) {
				o.Primary = &Server{Err: "i/o timeout", Stalled: true}
				o.Memory.PrimaryMisses = 4
				o.Local.Status.Replica.IOState = "No"
			},
			want:   Decision{NodeReason: primaryLost, ClusterReason: db0Healthy},
			memory: mem(Memory{PrimaryMisses: 5}),
		},
		{
			name: "a replica of another source is not this primary's receiver to stop",
			setup: func(o *Observation) {
				o.Primary = &Server{Err: "i/o timeout", Stalled: true}
				o.Memory.PrimaryMisses = 1
				o.Local.Status.Replica.SourceHost = "10.0.0.9"
			},
			want:   Decision{NodeReason: primaryLost, ClusterReason: db0Healthy},
			memory: mem(Memory{PrimaryMisses: 2}),
		},
		{
			name:   "the count of missed probes starts again when the primary answers",
			setup:  func(o *Observation) { o.Memory.PrimaryMisses = 3 },
			want:   Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
			memory: mem(Memory{}),
		},
		{
			name:   "a rebuilt server is no longer remembered errant once compared again",
			setup:  func(o *Observation) { o.Memory.Errant = errantB },
			want:   Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
			memory: mem(Memory{}),
		},
		{
			name: "GTID sets that cannot be compared: the replica is left as it is",
			setup: func(o *Observation) {
				o.Local.Status.Addr = "10.0.0.2:3306"
				pr := mariadbServer("0-1-100")
				pr.Status.Addr = "10.0.0.1:3306"
				o.Primary = &pr
			},
			want: Decision{ClusterReason: db0Healthy, NodeReason: why(CodeCompareFailed, "cannot compare GTIDs with primary db-0: "+
				"compare GTIDs of 10.0.0.2:3306 with primary 10.0.0.1:3306: subtract GTID sets: "+gtid.ErrFlavorMismatch.Error()+": mysql and mariadb")},
		},
		{
			name: "rejoining old primary without errant GTIDs becomes a replica",
			setup: func(o *Observation) {
				s := primaryServer(uuidA + ":1-90")
				s.Status.ReadOnly, s.Status.SuperReadOnly = true, true
				o.Local = s
			},
			want: Decision{Node: NodeReplicate, NodeReason: why(CodeFollow, "following primary db-0 of epoch 3 at 10.0.0.1:3306"), ClusterReason: db0Healthy},
		},
		{
			name: "replica following the wrong source repoints",
			setup: func(o *Observation) {
				o.Local = replicaServer("10.0.0.3", uuidA+":1-90", uuidA+":1-90")
			},
			want: Decision{Node: NodeReplicate, NodeReason: why(CodeFollow, "following primary db-0 of epoch 3 at 10.0.0.1:3306"), ClusterReason: db0Healthy},
		},
		{
			name: "stopped replication threads restart towards a serving primary",
			setup: func(o *Observation) {
				o.Local.Status.Replica.IOState = "No"
			},
			want: Decision{Node: NodeStartReplica, ClusterReason: db0Healthy,
				NodeReason: why(CodeRestartReplica, "replication threads from primary db-0 are stopped: starting them")},
		},
		{
			name: "stopped replication towards a read-only primary waits (a candidate being prepared)",
			setup: func(o *Observation) {
				o.Local.Status.Replica.IOState = "No"
				pr := *o.Primary
				pr.Status.ReadOnly, pr.Status.SuperReadOnly = true, true
				o.Primary = &pr
			},
			want: Decision{ClusterReason: db0Healthy, NodeReason: why(CodeReplicationPaused, "replication from db-0 paused while it is read-only")},
		},
		{
			name: "stopped replication with an error is reported, not retried",
			setup: func(o *Observation) {
				o.Local.Status.Replica.SQLRunning = false
				o.Local.Status.Replica.LastSQLErrno = 1062
				o.Local.Status.Replica.LastSQLError = "Duplicate entry"
			},
			want: Decision{ClusterReason: db0Healthy,
				NodeReason: why(CodeApplierError, "replication from db-0 stopped with an applier error: Duplicate entry")},
		},
		{
			name: "a receiver stopped by a link error fetches again",
			setup: func(o *Observation) {
				o.Local.Status.Replica.IOState = "No"
				o.Local.Status.Replica.LastIOErrno = 1595
				o.Local.Status.Replica.LastIOError = "Relay log write failure: could not queue event from master"
			},
			want: Decision{Node: NodeStartReplica, ClusterReason: db0Healthy, NodeReason: why(CodeRestartReplica,
				"replication threads from primary db-0 are stopped: starting them (the receiver stopped with: Relay log write failure: could not queue event from master)")},
		},
		{
			name: "network blip to the primary from the leader only: no failover",
			setup: func(o *Observation) {
				o.Servers["db-0"] = Server{Err: "i/o timeout"}
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
		{
			name: "the primary's agent reports its MySQL down but the leader reaches it: no failover",
			setup: func(o *Observation) {
				setPeer(o, "db-0", func(p *Peer) { p.Report.MySQLUp = false })
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
		{
			name: "the leader and every replica lose the primary while its agent still reports it up: it looks down",
			setup: func(o *Observation) {
				o.Servers["db-0"] = Server{Err: "i/o timeout"}
				o.Primary = &Server{Err: "i/o timeout"}
				for _, id := range []string{"db-1", "db-2"} {
					setPeer(o, id, func(p *Peer) { p.Report.IOConnected = false })
				}
			},
			want: Decision{NodeReason: primaryLost, ClusterReason: why(CodePrimarySuspect, "primary db-0 looks down for 0s "+
				"(the leader's probe fails (i/o timeout) and 2 of 2 members lost it too (replication or their own probe)); confirming for ha.detection_timeout")},
			memory: mem(Memory{PrimaryDownSince: t0, DownEpoch: 3}),
		},
		{
			name: "replicas whose receivers have not noticed yet but whose own probes fail: it looks down",
			setup: func(o *Observation) {
				o.Servers["db-0"] = Server{Err: "i/o timeout"}
				o.Primary = &Server{Err: "i/o timeout"}
				for _, id := range []string{"db-1", "db-2"} {
					setPeer(o, id, func(p *Peer) { p.Report.Epoch, p.Report.PrimaryUnreachable = 3, true })
				}
			},
			want: Decision{NodeReason: primaryLost, ClusterReason: why(CodePrimarySuspect, "primary db-0 looks down for 0s "+
				"(the leader's probe fails (i/o timeout) and 2 of 2 members lost it too (replication or their own probe)); confirming for ha.detection_timeout")},
			memory: mem(Memory{PrimaryDownSince: t0, DownEpoch: 3}),
		},
		{
			name: "the leader votes with this pass's failed probe, not its own stale report that still says connected",
			setup: func(o *Observation) {
				o.Servers["db-0"] = Server{Err: "i/o timeout"}
				o.Primary = &Server{Err: "i/o timeout"}
				setPeer(o, "db-2", func(p *Peer) { p.Report.IOConnected = false })
			},
			want: Decision{NodeReason: primaryLost, ClusterReason: why(CodePrimarySuspect, "primary db-0 looks down for 0s "+
				"(the leader's probe fails (i/o timeout) and 2 of 2 members lost it too (replication or their own probe)); confirming for ha.detection_timeout")},
			memory: mem(Memory{PrimaryDownSince: t0, DownEpoch: 3}),
		},
		{
			name: "a failed probe of an older epoch's primary is no vote against this one",
			setup: func(o *Observation) {
				o.Servers["db-0"] = Server{Err: "i/o timeout"}
				o.Primary = &Server{Err: "i/o timeout"}
				for _, id := range []string{"db-1", "db-2"} {
					setPeer(o, id, func(p *Peer) { p.Report.Epoch, p.Report.PrimaryUnreachable = 2, true })
				}
			},
			want: Decision{NodeReason: primaryLost, ClusterReason: db0Healthy},
		},
		{
			name: "a replica whose agent is gone has no say: its stale report does not hold off detection",
			setup: func(o *Observation) {
				o.Servers["db-0"] = Server{Err: "i/o timeout"}
				o.Primary = &Server{Err: "i/o timeout"}
				setPeer(o, "db-0", func(p *Peer) { p.State = PeerSuspect })
				setPeer(o, "db-1", func(p *Peer) { p.Report.IOConnected = false })
				setPeer(o, "db-2", func(p *Peer) { p.State = PeerDead }) // its last report says connected
			},
			want: Decision{NodeReason: primaryLost, ClusterReason: why(CodePrimarySuspect, "primary db-0 looks down for 0s "+
				"(the leader's probe fails (i/o timeout) and 1 of 1 members lost it too (replication or their own probe)); confirming for ha.detection_timeout")},
			memory: mem(Memory{PrimaryDownSince: t0, DownEpoch: 3}),
		},
		{
			name:  "primary mysqld crash: confirm for the detection timeout first",
			setup: func(o *Observation) { primaryCrashed(o, time.Time{}) },
			want: Decision{NodeReason: primaryLost, ClusterReason: why(CodePrimarySuspect, "primary db-0 looks down for 0s "+
				"(its agent reports MySQL down and the leader's probe fails (connection refused)); confirming for ha.detection_timeout")},
			memory: mem(Memory{PrimaryDownSince: t0, DownEpoch: 3}),
		},
		{
			name:  "a down clock of an older epoch starts again",
			setup: func(o *Observation) { primaryCrashed(o, t0.Add(-time.Hour)); o.Memory.DownEpoch = 2 },
			want: Decision{NodeReason: primaryLost, ClusterReason: why(CodePrimarySuspect, "primary db-0 looks down for 0s "+
				"(its agent reports MySQL down and the leader's probe fails (connection refused)); confirming for ha.detection_timeout")},
			memory: mem(Memory{PrimaryDownSince: t0, DownEpoch: 3}),
		},
		{
			name: "primary down past detection but its lease may still run",
			setup: func(o *Observation) {
				hostDied(o)
				o.Memory = Memory{PrimaryDownSince: t0.Add(-p.DetectionTimeout), DownEpoch: 3}
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverLeaseWait, "primary db-0 is down "+
				"(the leader's probe fails (connection refused) and 2 of 2 members lost it too (replication or their own probe)); its lease may still run for 2.15s")},
		},
		{
			name: "host crash: after detection and the lease, promote the replica that received most",
			setup: func(o *Observation) {
				hostDied(o)
				o.Memory = Memory{PrimaryDownSince: t0.Add(-p.DetectionTimeout), DownEpoch: 3}
				o.Now = o.Grant.LastGrant.Add(p.PromotionWait())
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-2", Quarantine: []string{"db-1", "db-2"}},
				why(CodeFailover, "promoting db-2: primary db-0 is down (the leader's probe fails (connection refused) and 2 of 2 members "+
					"lost it too (replication or their own probe)) and db-2 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: promotable, Failover: true}),
		},
		{
			name: "mysqld crash with a released lease: promote without waiting for the lease",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-2", Quarantine: []string{"db-1", "db-2"}},
				why(CodeFailover, "promoting db-2: primary db-0 is down (its agent released the primary lease) and db-2 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: t0, Failover: true}),
		},
		{
			name: "a released lease needs no detection wait: the down clock is set back by it",
			setup: func(o *Observation) {
				primaryCrashed(o, time.Time{})
				o.Grant.Released = true
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-2", Quarantine: []string{"db-1", "db-2"}},
				why(CodeFailover, "promoting db-2: primary db-0 is down (its agent released the primary lease) and db-2 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: t0, Failover: true}),
			memory: downMemory,
		},
		{
			name: "released lease and a healthy primary again: re-elect it in a new epoch",
			setup: func(o *Observation) {
				o.Grant.Released = true
			},
			want: proposing(Decision{NodeReason: replicaServing},
				why(CodeReelect, "re-electing db-0 in a new epoch: its lease of epoch 3 ended early and it is healthy again"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-0", At: t0}),
		},
		{
			name: "revoked lease and a healthy primary again: re-elect it in a new epoch",
			setup: func(o *Observation) {
				o.Grant.Revoked = true
			},
			want: proposing(Decision{NodeReason: replicaServing},
				why(CodeReelect, "re-electing db-0 in a new epoch: its lease of epoch 3 ended early and it is healthy again"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-0", At: t0}),
		},
		{
			name: "a primary's heartbeat commit waiting past ha.commit_stall_timeout with acks available is a stall",
			setup: func(o *Observation) {
				stalledPrimary(o, 2)
				o.CommitWaitingSince = t0.Add(-p.CommitStallTimeout)
			},
			want:   Decision{RenewLease: true, CommitStall: health.StallCommit, NodeReason: stalledWhy("5s", "5s")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "a heartbeat commit waiting less than ha.commit_stall_timeout is no stall",
			setup: func(o *Observation) {
				stalledPrimary(o, 2)
				o.CommitWaitingSince = t0.Add(-p.CommitStallTimeout + time.Millisecond)
			},
			want:   Decision{RenewLease: true, NodeReason: why(CodePrimaryServing, "primary of epoch 3, writable, lease held")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "a heartbeat commit waiting past ha.commit_stall_timeout behind a binlog that grows, no commit waiting for an ack, is slow, not stalled",
			setup: func(o *Observation) {
				stalledPrimary(o, 2)
				o.CommitWaitingSince = t0.Add(-10 * time.Second)
				o.BinlogWritten = "binlog.000001:2000"
				o.Memory.CommitBinlog = "binlog.000001:1000"
			},
			want:   Decision{RenewLease: true, NodeReason: movingWhy},
			memory: mem(Memory{LocalWritable: true, CommitBinlog: "binlog.000001:2000", CommitMovedAt: t0}),
		},
		{
			// With acks stopped each new commit still writes the binlog before it waits.
			name: "a binlog that grows while commits wait for acks is no move",
			setup: func(o *Observation) {
				stalledPrimary(o, 2)
				o.Local.Status.SemiSync.WaitSessions = 3
				o.CommitWaitingSince = t0.Add(-10 * time.Second)
				o.BinlogWritten = "binlog.000001:2000"
				o.Memory.CommitBinlog = "binlog.000001:1000"
			},
			want:   Decision{RenewLease: true, CommitStall: health.StallCommit, NodeReason: stalledWhy("10s", "10s")},
			memory: mem(Memory{LocalWritable: true, CommitBinlog: "binlog.000001:2000"}),
		},
		{
			name: "a replica reading more of the binlog while the heartbeat waits for its ack is a move",
			setup: func(o *Observation) {
				stalledPrimary(o, 2)
				o.Local.Status.SemiSync.WaitSessions = 2
				o.CommitWaitingSince = t0.Add(-10 * time.Second)
				o.BinlogWritten = "binlog.000001:9000"
				setPeer(o, "db-1", func(p *Peer) { p.Report.SourceRead = "binlog.000001:5000" })
				setPeer(o, "db-2", func(p *Peer) { p.Report.SourceRead = "binlog.000001:3000" })
				o.Memory.CommitBinlog, o.Memory.CommitReads = "binlog.000001:9000", "db-1\tbinlog.000001:4000\ndb-2\tbinlog.000001:3000"
			},
			want: Decision{RenewLease: true, NodeReason: movingWhy},
			memory: mem(Memory{LocalWritable: true, CommitBinlog: "binlog.000001:9000",
				CommitReads: "db-1\tbinlog.000001:5000\ndb-2\tbinlog.000001:3000", CommitMovedAt: t0}),
		},
		{
			name: "the stall clock starts again at the last move: still moving just under ha.commit_stall_timeout after it",
			setup: func(o *Observation) {
				stalledPrimary(o, 2)
				o.CommitWaitingSince = t0.Add(-time.Minute)
				o.BinlogWritten = "binlog.000002:400"
				o.Memory.CommitBinlog, o.Memory.CommitMovedAt = "binlog.000002:400", t0.Add(-p.CommitStallTimeout+time.Millisecond)
			},
			want:   Decision{RenewLease: true, NodeReason: movingWhy},
			memory: mem(Memory{LocalWritable: true, CommitBinlog: "binlog.000002:400", CommitMovedAt: t0.Add(-p.CommitStallTimeout + time.Millisecond)}),
		},
		{
			name: "a stop after moves is a stall ha.commit_stall_timeout after the last move",
			setup: func(o *Observation) {
				stalledPrimary(o, 2)
				o.CommitWaitingSince = t0.Add(-time.Minute)
				o.BinlogWritten = "binlog.000002:400"
				o.Memory.CommitBinlog, o.Memory.CommitMovedAt = "binlog.000002:400", t0.Add(-p.CommitStallTimeout)
			},
			want:   Decision{RenewLease: true, CommitStall: health.StallCommit, NodeReason: stalledWhy("1m0s", "5s")},
			memory: mem(Memory{LocalWritable: true, CommitBinlog: "binlog.000002:400", CommitMovedAt: t0.Add(-p.CommitStallTimeout)}),
		},
		{
			name: "a move before the heartbeat began does not count for it",
			setup: func(o *Observation) {
				stalledPrimary(o, 2)
				o.CommitWaitingSince = t0.Add(-p.CommitStallTimeout)
				o.BinlogWritten = "binlog.000002:400"
				o.Memory.CommitBinlog, o.Memory.CommitMovedAt = "binlog.000002:400", t0.Add(-p.CommitStallTimeout-time.Millisecond)
			},
			want:   Decision{RenewLease: true, CommitStall: health.StallCommit, NodeReason: stalledWhy("5s", "5s")},
			memory: mem(Memory{LocalWritable: true, CommitBinlog: "binlog.000002:400", CommitMovedAt: t0.Add(-p.CommitStallTimeout - time.Millisecond)}),
		},
		{
			// A first read is no move, nor a replica whose report appears, nor the binlog read
			// again after a pass that could not read it.
			name: "what was not seen in the previous pass is no move",
			setup: func(o *Observation) {
				stalledPrimary(o, 2)
				o.CommitWaitingSince = t0.Add(-p.CommitStallTimeout)
				o.BinlogWritten = "binlog.000002:400"
				setPeer(o, "db-1", func(p *Peer) { p.Report.SourceRead = "binlog.000002:400" })
				setPeer(o, "db-2", func(p *Peer) { p.Report.SourceRead = "binlog.000002:300" })
				o.Memory.CommitReads = "db-2\tbinlog.000002:300"
			},
			want: Decision{RenewLease: true, CommitStall: health.StallCommit, NodeReason: stalledWhy("5s", "5s")},
			memory: mem(Memory{LocalWritable: true, CommitBinlog: "binlog.000002:400",
				CommitReads: "db-1\tbinlog.000002:400\ndb-2\tbinlog.000002:300"}),
		},
		{
			name: "a replica of another source is no move of this primary's commit path",
			setup: func(o *Observation) {
				stalledPrimary(o, 2)
				o.CommitWaitingSince = t0.Add(-p.CommitStallTimeout)
				setPeer(o, "db-1", func(p *Peer) { p.Report.Source, p.Report.SourceRead = "db-2", "binlog.000009:500" })
				o.Memory.CommitReads = "db-1\tbinlog.000009:100"
			},
			want:   Decision{RenewLease: true, CommitStall: health.StallCommit, NodeReason: stalledWhy("5s", "5s")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "with too few semi-sync replicas connected the wait is for acks, whatever moves",
			setup: func(o *Observation) {
				stalledPrimary(o, 0)
				o.CommitWaitingSince = t0.Add(-time.Minute)
				o.BinlogWritten = "binlog.000001:2000"
				o.Memory.CommitBinlog = "binlog.000001:1000"
			},
			want: Decision{RenewLease: true, CommitStall: health.StallNoAck, NodeReason: why(CodeCommitStallNoAck, "primary of epoch 3: a heartbeat commit has waited 1m0s "+
				"for semi-sync acks with 0 of the 1 acknowledging replicas it needs connected: a replica must connect, failing over cannot help")},
			memory: mem(Memory{LocalWritable: true, CommitBinlog: "binlog.000001:2000", CommitMovedAt: t0}),
		},
		{
			name: "a pass whose probe of the local server failed keeps what was seen of the commit path",
			setup: func(o *Observation) {
				stalledPrimary(o, 2)
				o.Local = Server{Err: "read semi-sync status: context deadline exceeded", Stalled: true}
				o.CommitWaitingSince = t0.Add(-time.Minute)
				o.Memory = Memory{LocalWritable: true, CommitBinlog: "binlog.000001:1000", CommitReads: "db-1\tbinlog.000001:900", CommitMovedAt: t0.Add(-time.Second)}
			},
			want: Decision{NodeReason: why(CodeLeaseWithheld, "local MySQL is unreachable (read semi-sync status: context deadline exceeded): "+
				"still the primary, but no longer renewing the lease, so that it runs out no later than the leader may judge the server down and a failover need not wait for it")},
			memory: mem(Memory{LocalWritable: true, LocalStalls: 1, LocalDownSince: t0, CommitBinlog: "binlog.000001:1000", CommitReads: "db-1\tbinlog.000001:900", CommitMovedAt: t0.Add(-time.Second)}),
		},
		{
			name: "no heartbeat waiting: nothing of the commit path is remembered",
			setup: func(o *Observation) {
				stalledPrimary(o, 2)
				o.Memory.CommitBinlog, o.Memory.CommitReads, o.Memory.CommitMovedAt = "binlog.000001:1000", "db-1\tbinlog.000001:1000", t0.Add(-time.Second)
			},
			want:   Decision{RenewLease: true, NodeReason: why(CodePrimaryServing, "primary of epoch 3, writable, lease held")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "a heartbeat commit waiting for acks with no acknowledging replica connected is no failover matter",
			setup: func(o *Observation) {
				stalledPrimary(o, 0)
				o.CommitWaitingSince = t0.Add(-time.Minute)
			},
			want: Decision{RenewLease: true, CommitStall: health.StallNoAck, NodeReason: why(CodeCommitStallNoAck, "primary of epoch 3: a heartbeat commit has waited 1m0s "+
				"for semi-sync acks with 0 of the 1 acknowledging replicas it needs connected: a replica must connect, failing over cannot help")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "primary reporting a stalled commit path: down at once, revoke and wait out its lease",
			setup: func(o *Observation) {
				setPeer(o, "db-0", func(p *Peer) { p.Report.Epoch, p.Report.CommitStall = 3, health.StallCommit })
			},
			want: Decision{NodeReason: replicaServing, RevokeLease: true, ClusterReason: why(CodeFailoverLeaseWait,
				"primary db-0 is down ("+stallWhy+"); its lease may still run for 2.15s")},
			memory: mem(Memory{PrimaryDownSince: detected, DownEpoch: 3, StallEpoch: 3}),
		},
		{
			name: "a stall reported in an older epoch does not count",
			setup: func(o *Observation) {
				setPeer(o, "db-0", func(p *Peer) { p.Report.Epoch, p.Report.CommitStall = 2, health.StallCommit })
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
		{
			name: "past its lease, the stalled primary, still writable, is fenced before the promotion",
			setup: func(o *Observation) {
				setPeer(o, "db-0", func(p *Peer) { p.Report.Epoch, p.Report.CommitStall = 3, health.StallCommit })
				o.Grant.Revoked = true
				o.Now = promotable
			},
			want: Decision{NodeReason: replicaServing, RevokeLease: true, FenceMember: "db-0",
				ClusterReason: why(CodeFailoverFence, "fencing db-0 before promoting db-2 ("+stallWhy+")")},
			memory: mem(Memory{PrimaryDownSince: promotable.Add(-p.DetectionTimeout), DownEpoch: 3, StallEpoch: 3}),
		},
		{
			// Not by its executed set: a commit that failed to reach the binlog may count in it.
			name: "fenced, the stalled primary looks healthy, yet it is replaced (replicas quarantined), not re-elected",
			setup: func(o *Observation) {
				setPeer(o, "db-0", func(p *Peer) {
					p.Report = health.Report{Epoch: 3, MySQLUp: true, Role: health.RoleFenced, MySQLAddr: "10.0.0.1:3306"}
				})
				readOnly(o, "db-0")
				o.Grant.Revoked = true
				o.Memory = Memory{StallEpoch: 3}
				o.Now = promotable
			},
			want: proposing(Decision{NodeReason: replicaServing, RevokeLease: true, Prepare: "db-2", Quarantine: []string{"db-1", "db-2"}},
				why(CodeFailover, "promoting db-2: primary db-0 is down ("+stallWhy+") and db-2 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: promotable, Failover: true}),
			memory: mem(Memory{PrimaryDownSince: promotable.Add(-p.DetectionTimeout), DownEpoch: 3, StallEpoch: 3}),
		},
		{
			name: "a stalled primary with no replica fit to take over keeps its lease",
			setup: func(o *Observation) {
				setPeer(o, "db-0", func(p *Peer) { p.Report.Epoch, p.Report.CommitStall = 3, health.StallCommit })
				setPeer(o, "db-1", func(p *Peer) { p.Report.Errant = true })
				o.Servers["db-2"] = Server{Err: "refused"}
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: why(CodeStallNoCandidate,
				"primary db-0 reports its commit path stalled but no replica can take over: db-1: errant GTIDs, db-2: MySQL unreachable")},
		},
		{
			name: "without semi-sync (async) a stall is never the lack of acks",
			setup: func(o *Observation) {
				stalledPrimary(o, 0)
				o.Local.Status.SemiSync.SourceEnabled = false
				o.CommitWaitingSince = t0.Add(-p.CommitStallTimeout)
			},
			want:   Decision{RenewLease: true, CommitStall: health.StallCommit, NodeReason: stalledWhy("5s", "5s")},
			memory: mem(Memory{LocalWritable: true}),
		},
		{
			name: "a failover begun on a stall that loses its candidates forgets the stall, so the old primary can be re-elected; the lease stays revoked",
			setup: func(o *Observation) {
				o.Memory = Memory{StallEpoch: 3}
				setPeer(o, "db-1", func(p *Peer) { p.Report.Errant = true })
				o.Servers["db-2"] = Server{Err: "refused"}
				o.Now = promotable
			},
			want: Decision{NodeReason: replicaServing, RevokeLease: true, ClusterReason: why(CodeFailoverNoCandidate,
				"primary db-0 is down ("+stallWhy+") but no replica can take over: db-1: errant GTIDs, db-2: MySQL unreachable")},
			memory: mem(Memory{PrimaryDownSince: promotable.Add(-p.DetectionTimeout), DownEpoch: 3}),
		},
		{
			name: "a primary waiting for semi-sync acks is not failed over: a new one would wait the same way",
			setup: func(o *Observation) {
				setPeer(o, "db-0", func(p *Peer) { p.Report.Epoch, p.Report.CommitStall = 3, health.StallNoAck })
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: why(CodePrimaryNoAcks,
				"primary db-0 of epoch 3 waits for semi-sync acks too few replicas are connected to give: no failover, a new primary would wait the same way")},
		},
		{
			name: "host crash with a replica out of view: an acknowledged write may be only there, so wait",
			setup: func(o *Observation) {
				hostDied(o)
				o.Memory = Memory{PrimaryDownSince: t0.Add(-p.DetectionTimeout), DownEpoch: 3}
				o.Now = o.Grant.LastGrant.Add(p.PromotionWait())
				o.Servers["db-1"] = Server{Err: "i/o timeout"}
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverBlocked,
				"primary db-0 is down but 1 replicas are out of view: an acknowledged write may be only there")},
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
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverBlocked,
				"primary db-0 is down but db-2 received transactions candidate db-1 lacks")},
		},
		{
			name: "host crash, an applier stopped without an error where the other replica holds everything too: promote the one that applies",
			setup: func(o *Observation) {
				hostCrash(o)
				o.Servers["db-1"] = replicaServer("10.0.0.1", uuidA+":1-90", uuidA+":1-100")
				stopApplier(o, "db-1", 0, "")
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-2", Quarantine: []string{"db-1", "db-2"}},
				why(CodeFailover, "promoting db-2: "+crashed+" and db-2 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: promotable, Failover: true}),
		},
		{
			name: "host crash, an applier stopped without an error on the only holder of some transactions: start it and promote it",
			setup: func(o *Observation) {
				hostCrash(o)
				stopApplier(o, "db-2", 0, "")
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-2", PrepareStartApplier: true, Quarantine: []string{"db-1", "db-2"}},
				why(CodeFailover, "promoting db-2: "+crashed+" and db-2 received the most transactions; its stopped applier is started first"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: promotable, Failover: true}),
		},
		{
			name: "host crash, the applier failed on the only holder of some transactions: recover them from its logs onto the other, then promote it",
			setup: func(o *Observation) {
				hostCrash(o)
				stopApplier(o, "db-2", 1062, duplicate)
			},
			want: recoverFromDB2,
		},
		{
			name: "host crash, the applier failed on the only holder and the other replica's stopped applier can start: recover onto it, started first",
			setup: func(o *Observation) {
				hostCrash(o)
				stopApplier(o, "db-1", 0, "")
				stopApplier(o, "db-2", 1062, duplicate)
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-1", PrepareStartApplier: true, Quarantine: []string{"db-1", "db-2"},
				PrepareRecover: &Recover{From: "db-2", GTIDs: gtids(uuidA + ":100")}},
				why(CodeFailoverRecover, crashed+" and transactions "+uuidA+":100 were received only by db-2, which cannot apply them "+
					"(its applier stopped with error 1062 ("+duplicate+")): recovering them from its binlog and relay log onto db-1, "+
					"the candidate that received the most of the rest, then promoting it; its stopped applier is started first"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-1", At: promotable, Failover: true}),
		},
		{
			name: "host crash, the applier failed on the only holder and recovering from its logs failed twice: try again",
			setup: func(o *Observation) {
				hostCrash(o)
				stopApplier(o, "db-2", 1062, duplicate)
				o.RecoveryFailed = RecoveryFailures{Epoch: 3, From: "db-2", Count: 2, Err: "mysqlbinlog: not found"}
			},
			want: recoverFromDB2,
		},
		{
			name: "host crash, the applier failed on the only holder and recovering from its logs failed three times this epoch: blocked, saying why",
			setup: func(o *Observation) {
				hostCrash(o)
				stopApplier(o, "db-2", 1062, duplicate)
				o.RecoveryFailed = RecoveryFailures{Epoch: 3, From: "db-2", Count: 3, Err: "mysqlbinlog: not found"}
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverBlockedUnapplied,
				"primary db-0 is down but transactions "+uuidA+":100 were received only by members that cannot apply them "+
					"(db-2: its applier stopped with error 1062 ("+duplicate+")): "+
					"promoting a candidate that lacks them would lose acknowledged writes; an operator must repair or rebuild db-2; "+
					"recovering them from the logs of db-2 failed 3 times (last: mysqlbinlog: not found)")},
		},
		{
			name: "host crash, the applier failed on the only holder; recoveries failed in an earlier epoch do not count",
			setup: func(o *Observation) {
				hostCrash(o)
				stopApplier(o, "db-2", 1062, duplicate)
				o.RecoveryFailed = RecoveryFailures{Epoch: 2, From: "db-2", Count: 5, Err: "mysqlbinlog: not found"}
			},
			want: recoverFromDB2,
		},
		{
			name: "host crash, the applier failed on the only holder and no other replica can apply: no promotion, an operator must repair it",
			setup: func(o *Observation) {
				hostCrash(o)
				stopApplier(o, "db-1", 1062, duplicate)
				stopApplier(o, "db-2", 1062, duplicate)
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverBlockedUnapplied,
				"primary db-0 is down but transactions "+uuidA+":1-100 were received only by members that cannot apply them "+
					"(db-2: its applier stopped with error 1062 ("+duplicate+")): "+
					"promoting a candidate that lacks them would lose acknowledged writes; an operator must repair or rebuild db-2")},
		},
		{
			name: "host crash, the applier failed on the only holder and the other replica is errant: no candidate to recover onto",
			setup: func(o *Observation) {
				hostCrash(o)
				stopApplier(o, "db-2", 1062, duplicate)
				setPeer(o, "db-1", func(p *Peer) { p.Report.Errant = true })
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverBlockedUnapplied,
				"primary db-0 is down but transactions "+uuidA+":1-100 were received only by members that cannot apply them "+
					"(db-2: its applier stopped with error 1062 ("+duplicate+")): "+
					"promoting a candidate that lacks them would lose acknowledged writes; an operator must repair or rebuild db-2")},
		},
		{
			name: "host crash, the applier failed on the only holder, whose agent is dead: it cannot serve its logs, no promotion",
			setup: func(o *Observation) {
				hostCrash(o)
				stopApplier(o, "db-2", 1062, duplicate)
				setPeer(o, "db-2", func(p *Peer) { p.State = PeerDead })
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverBlocked,
				"primary db-0 is down but db-2 received transactions candidate db-1 lacks")},
		},
		{
			name: "host crash, the applier failed on a replica whose transactions the other holds: promote the other",
			setup: func(o *Observation) {
				hostCrash(o)
				o.Servers["db-1"] = replicaServer("10.0.0.1", uuidA+":1-90", uuidA+":1-100")
				stopApplier(o, "db-1", 1062, duplicate)
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-2", Quarantine: []string{"db-1", "db-2"}},
				why(CodeFailover, "promoting db-2: "+crashed+" and db-2 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: promotable, Failover: true}),
		},
		{
			name: "host crash on MariaDB, both threads stopped on the only holder: starting its applier would purge its relay log, so recover from it",
			setup: func(o *Observation) {
				hostCrash(o)
				o.Servers["db-1"] = mariadbReplica("0-1-97", "0-1-99", "Connecting", true)
				o.Servers["db-2"] = mariadbReplica("0-1-97", "0-1-100", "No", false)
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-1", Quarantine: []string{"db-1", "db-2"},
				PrepareRecover: &Recover{From: "db-2", GTIDs: minus(gtid.MustParse(gtid.MariaDB, "0-1-100"), gtid.MustParse(gtid.MariaDB, "0-1-99"))}},
				why(CodeFailoverRecover, crashed+" and transactions 0-1-[100] were received only by db-2, which cannot apply them "+
					"(its applier and receiver are both stopped, and on MariaDB starting the applier would discard its relay log): "+
					"recovering them from its binlog and relay log onto db-1, the candidate that received the most of the rest, then promoting it"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-1", At: promotable, Failover: true}),
		},
		{
			name: "host crash on MariaDB, both threads stopped on a holder with nothing left to apply: promote it, nothing to start",
			setup: func(o *Observation) {
				hostCrash(o)
				o.Servers["db-1"] = mariadbReplica("0-1-97", "0-1-99", "Connecting", true)
				o.Servers["db-2"] = mariadbReplica("0-1-100", "0-1-100", "No", false)
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-2", Quarantine: []string{"db-1", "db-2"}},
				why(CodeFailover, "promoting db-2: "+crashed+" and db-2 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: promotable, Failover: true}),
		},
		{
			name: "draining primary released its lease: switch over at once, cooldown or not",
			setup: func(o *Observation) {
				o.Grant.Released = true
				o.Record.LastFailover = t0.Add(-time.Second)
				peer := o.Peers["db-0"]
				peer.Report.Draining = true
				o.Peers["db-0"] = peer
				readOnly(o, "db-0")
			},
			want: proposing(Decision{NodeReason: replicaServing, RevokeLease: true, Prepare: "db-2", PrepareWaitFor: new(gtids(uuidA + ":1-100"))},
				why(CodeFailover, "promoting db-2: primary db-0 is down (its agent released the primary lease) and db-2 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: t0}),
			memory: downMemory,
		},
		{
			name: "a draining primary still writable is fenced by the leader before the promotion",
			setup: func(o *Observation) {
				o.Grant.Released, o.Grant.Draining = true, true
				setPeer(o, "db-0", func(p *Peer) { p.Report.Draining = true })
			},
			want: Decision{NodeReason: replicaServing, RevokeLease: true, FenceMember: "db-0",
				ClusterReason: why(CodeFailoverFence, "fencing db-0 before promoting db-2 (its agent released the primary lease)")},
			memory: downMemory,
		},
		{
			name: "a release for an older epoch does not shortcut the lease",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant = LeaseGrant{Epoch: 2, Released: true, LastGrant: t0}
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverLeaseWait, "primary db-0 is down "+
				"(its agent reports MySQL down and the leader's probe fails (connection refused)); its lease may still run for 2.25s")},
		},
		{
			name: "dead primary whose position never advanced: candidates are judged on what they received",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
				o.Servers["db-1"] = replicaServer("10.0.0.1", uuidA+":1-100", uuidA+":1-100")
			},
			// Judged on what they executed, db-1 would win; on what they received they are equal,
			// and the member other than the leader's own (db-1) wins.
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-2", Quarantine: []string{"db-1", "db-2"}},
				why(CodeFailover, "promoting db-2: primary db-0 is down (its agent released the primary lease) and db-2 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: t0, Failover: true}),
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
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverNoCandidate,
				"primary db-0 is down (its agent released the primary lease) but no replica can take over: db-1: errant GTIDs, db-2: MySQL unreachable")},
		},
		{
			name: "replicas whose agents are gone or shutting down are no candidates",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
				setPeer(o, "db-1", func(p *Peer) { p.State = PeerDead })
				setPeer(o, "db-2", func(p *Peer) { p.Report.Draining = true })
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverNoCandidate,
				"primary db-0 is down (its agent released the primary lease) but no replica can take over: db-1: agent not alive, db-2: shutting down")},
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
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
		{
			name: "a blip shorter than detection resets the clock",
			setup: func(o *Observation) {
				o.Memory = Memory{PrimaryDownSince: t0.Add(-time.Hour), DownEpoch: 3}
			},
			want:   Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
			memory: mem(Memory{}),
		},
		{
			name: "no Raft majority (two members down): not leader, no cluster decision",
			setup: func(o *Observation) {
				hostDied(o)
				o.Leader = false
				o.Memory = Memory{PrimaryDownSince: t0.Add(-time.Hour), DownEpoch: 3}
				o.Grant.Released = true
			},
			want: Decision{NodeReason: primaryLost},
		},
		{
			name: "paused: no failover",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
				o.Record.Paused = true
			},
			want: Decision{NodeReason: primaryLost, ClusterReason: why(CodeFailoverPaused,
				"primary db-0 is down (its agent released the primary lease) but automatic failover is paused")},
		},
		{
			name: "anti-flap cooldown holds a second failover",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
				o.Record.LastFailover = t0.Add(-p.FailoverCooldown / 2)
			},
			want: Decision{NodeReason: primaryLost, ClusterReason: why(CodeFailoverCooldown,
				"primary db-0 is down but the last failover was 15s ago, within ha.failover_cooldown")},
		},
		{
			name: "diverged candidates: refuse to choose",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
				o.Servers["db-1"] = replicaServer("10.0.0.1", uuidA+":1-90", uuidA+":1-90,cccccccc-cccc-cccc-cccc-cccccccccccc:1")
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverBlocked,
				"primary db-0 is down but no safe candidate: db-1 received transactions db-2 lacks: the replicas diverged")},
		},
		{
			// db-2, the primary of an earlier epoch, came back from a partition holding commits
			// no replica acknowledged (uuidC:41-50), and db-0 failed before db-2's agent could
			// compare itself with it: db-1, db-3 and db-4 hold db-0's epoch.
			name: "five members: a deposed primary back with commits nobody received is errant; promote past it",
			setup: func(o *Observation) {
				laterEpoch(o, uuidC+":1-40,"+uuidA+":1-99", "db-3", "db-4")
				deposedPrimary(o, "db-2", uuidC, uuidC+":1-50")
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-3", Quarantine: []string{"db-1", "db-3", "db-4"}},
				why(CodeFailover, "promoting db-3: primary db-0 is down (its agent released the primary lease) and db-3 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-3", At: t0, Failover: true}),
		},
		{
			name: "the same on MariaDB: a member's own transactions are those of its server_id",
			setup: func(o *Observation) {
				laterEpoch(o, "", "db-3", "db-4")
				for id, srv := range o.Servers {
					if srv.Up {
						srv.Status.Flavor, srv.Status.Executed = gtid.MariaDB, gtid.MustParse(gtid.MariaDB, "0-3-40,0-1-97")
						srv.Status.Replica.IOState = "No"
						srv.Status.Replica.Received = gtid.MustParse(gtid.MariaDB, "0-3-40,0-1-99")
						o.Servers[id] = srv
					}
				}
				old := mariadbServer("0-3-50")
				old.Status.ServerID = 3
				o.Servers["db-2"] = old
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-3", Quarantine: []string{"db-1", "db-3", "db-4"}},
				why(CodeFailover, "promoting db-3: primary db-0 is down (its agent released the primary lease) and db-3 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-3", At: t0, Failover: true}),
		},
		{
			name: "two deposed primaries holding commits nobody else received: promote past both",
			setup: func(o *Observation) {
				laterEpoch(o, uuidC+":1-40,"+uuidA+":1-99", "db-3", "db-4")
				deposedPrimary(o, "db-2", uuidC, uuidC+":1-50")
				deposedPrimary(o, "db-1", uuidD, uuidC+":1-40,"+uuidD+":1-3")
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-3", Quarantine: []string{"db-3", "db-4"}},
				why(CodeFailover, "promoting db-3: primary db-0 is down (its agent released the primary lease) and db-3 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-3", At: t0, Failover: true}),
		},
		{
			// Set aside, db-2 would leave db-1 promoted without a replica to acknowledge its
			// commits: db-0's return is then the quicker way back to writes.
			name: "three members: a deposed primary back with commits nobody received keeps the failover blocked",
			setup: func(o *Observation) {
				laterEpoch(o, uuidC+":1-40,"+uuidA+":1-99")
				deposedPrimary(o, "db-2", uuidC, uuidC+":1-50")
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverBlocked,
				"primary db-0 is down but no safe candidate: db-2 received transactions db-1 lacks: the replicas diverged")},
		},
		{
			// db-3 is being re-seeded and db-4 shuts down: db-1 would be left without a replica.
			name: "five members, but none left to acknowledge a new primary's commits: the failover stays blocked",
			setup: func(o *Observation) {
				laterEpoch(o, uuidC+":1-40,"+uuidA+":1-99", "db-3", "db-4")
				deposedPrimary(o, "db-2", uuidC, uuidC+":1-50")
				setPeer(o, "db-3", func(p *Peer) { p.Report.Reseeding = true })
				setPeer(o, "db-4", func(p *Peer) { p.Report.Draining = true })
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverBlocked,
				"primary db-0 is down but no safe candidate: db-2 received transactions db-1 lacks: the replicas diverged")},
		},
		{
			// Nobody received uuidC:41-50, but db-2 lacks nothing: promoting it loses nothing.
			name: "a deposed primary holding everything the others received is still the best candidate",
			setup: func(o *Observation) {
				laterEpoch(o, uuidC+":1-40", "db-3", "db-4")
				deposedPrimary(o, "db-2", uuidC, uuidC+":1-50")
			},
			want: proposing(Decision{NodeReason: primaryLost, RevokeLease: true, Prepare: "db-2", Quarantine: []string{"db-1", "db-2", "db-3", "db-4"}},
				why(CodeFailover, "promoting db-2: primary db-0 is down (its agent released the primary lease) and db-2 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: t0, Failover: true}),
		},
		{
			// Its receiver runs: what it receives next may change both sets, so it is not judged.
			name: "a member whose receiver runs is not judged by its own transactions: diverged, refuse to choose",
			setup: func(o *Observation) {
				laterEpoch(o, uuidC+":1-40,"+uuidA+":1-99", "db-3", "db-4")
				r2 := replicaServer("10.0.0.1", uuidC+":1-50", uuidC+":1-50")
				r2.Status.ServerUUID = uuidC
				o.Servers["db-2"] = r2
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverBlocked,
				"primary db-0 is down but no safe candidate: db-2 received transactions db-3 lacks: the replicas diverged")},
		},
		{
			name: "candidates whose GTID sets cannot be ranked: refuse to choose, saying why",
			setup: func(o *Observation) {
				primaryCrashed(o, t0.Add(-p.DetectionTimeout))
				o.Grant.Released = true
				o.Servers["db-2"] = mariadbServer("0-1-100")
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverBlocked,
				"primary db-0 is down but no safe candidate: compare GTID sets: "+gtid.ErrFlavorMismatch.Error()+": mysql and mariadb")},
		},
		{
			name: "first election picks the most advanced of a healthy majority",
			setup: func(o *Observation) {
				o.Record.Primary = ""
				o.Servers["db-0"] = replicaServer("", uuidA+":1-10", uuidA+":1-10")
				o.Local = o.Servers["db-1"]
			},
			want: proposing(Decision{NodeReason: awaitPrimary, Prepare: "db-2"},
				why(CodeFirstPrimary, "electing db-2 as the first primary: it has the most transactions of 3 healthy members"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: t0}),
		},
		{
			name: "first election waits for a majority",
			setup: func(o *Observation) {
				o.Record.Primary = ""
				o.Servers["db-0"] = Server{Err: "refused"}
				o.Servers["db-2"] = Server{Err: "refused"}
			},
			want: Decision{NodeReason: awaitPrimary, ClusterReason: why(CodeFirstPrimaryWait,
				"no primary yet; waiting for a majority of members to be healthy (db-0: MySQL unreachable, db-2: MySQL unreachable)")},
		},
		{
			name: "first election between diverged members: refuse to choose",
			setup: func(o *Observation) {
				o.Record.Primary = ""
				o.Servers["db-0"] = replicaServer("", uuidA+":1-90", uuidA+":1-90,cccccccc-cccc-cccc-cccc-cccccccccccc:1")
			},
			want: Decision{NodeReason: awaitPrimary, ClusterReason: why(CodeFirstPrimaryBlocked,
				"no primary yet and cannot choose one: db-0 received transactions db-2 lacks: the replicas diverged")},
		},
		{
			// The ranking passes (an unknown, empty set ranks below anything; the leader's own
			// db-1 comes last) and only the containment check meets the mismatch.
			name: "first election among GTID sets of different flavors: refuse, saying why",
			setup: func(o *Observation) {
				o.Record.Primary = ""
				o.Servers["db-0"] = Server{Up: true}
				o.Servers["db-2"] = replicaServer("", "", "")
				o.Servers["db-1"] = mariadbServer("0-1-100")
			},
			want: Decision{NodeReason: awaitPrimary, ClusterReason: why(CodeFirstPrimaryBlocked,
				"no primary yet and cannot choose one: check GTID set containment: "+gtid.ErrFlavorMismatch.Error()+": mariadb and mysql")},
		},
		{
			name: "switchover: fence the old primary first",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{To: "db-1"}
			},
			want: Decision{NodeReason: replicaServing, FenceMember: "db-0", ClusterReason: why(CodeSwitchoverFence, "switchover to db-1: fencing db-0")},
		},
		{
			name: "switchover: old primary read-only and released, promote the target after it catches up",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{To: "db-1"}
				readOnly(o, "db-0")
				o.Grant.Released = true
			},
			want: proposing(Decision{NodeReason: replicaServing, Prepare: "db-1", PrepareWaitFor: new(gtids(uuidA + ":1-100"))},
				why(CodeSwitchover, "switchover from db-0 to db-1"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-1", At: t0}),
		},
		{
			name: "switchover to whoever is best: the replica that received most",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{}
				readOnly(o, "db-0")
				o.Grant.Released = true
			},
			want: proposing(Decision{NodeReason: replicaServing, Prepare: "db-2", PrepareWaitFor: new(gtids(uuidA + ":1-100"))},
				why(CodeSwitchover, "switchover from db-0 to db-2"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: t0}),
		},
		{
			name: "switchover whose old primary's MySQL is gone: nothing to wait for",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{To: "db-1"}
				o.Servers["db-0"] = Server{Err: "refused"}
				o.Grant.Released = true
			},
			want: proposing(Decision{NodeReason: replicaServing, Prepare: "db-1"},
				why(CodeSwitchover, "switchover from db-0 to db-1"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-1", At: t0}),
		},
		{
			name: "switchover with no primary recorded promotes the target",
			setup: func(o *Observation) {
				o.Record.Primary = ""
				o.Record.Switchover = &record.Switchover{To: "db-1"}
			},
			want: proposing(Decision{NodeReason: awaitPrimary, Prepare: "db-1"},
				why(CodeSwitchover, "switchover to db-1: no current primary, promoting it"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-1", At: t0}),
		},
		{
			name: "paused: a pending switchover still completes",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{To: "db-1"}
				o.Record.Paused = true
				readOnly(o, "db-0")
				o.Grant.Released = true
			},
			want: proposing(Decision{NodeReason: replicaServing, Prepare: "db-1", PrepareWaitFor: new(gtids(uuidA + ":1-100"))},
				why(CodeSwitchover, "switchover from db-0 to db-1"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-1", At: t0}),
		},
		{
			name: "paused: a primary whose agent shuts down still hands over",
			setup: func(o *Observation) {
				o.Record.Paused = true
				readOnly(o, "db-0")
				pp := o.Peers["db-0"]
				pp.Report.Draining, pp.Report.Writable = true, false
				o.Peers["db-0"] = pp
				o.Grant.Released, o.Grant.Draining = true, true
			},
			want: proposing(Decision{NodeReason: replicaServing, RevokeLease: true, Prepare: "db-2", PrepareWaitFor: new(gtids(uuidA + ":1-100"))},
				why(CodeFailover, "promoting db-2: primary db-0 is down (its agent released the primary lease) and db-2 received the most transactions"),
				record.Command{Op: record.OpSetPrimary, Epoch: 3, Primary: "db-2", At: t0}),
			memory: downMemory,
		},
		{
			name: "switchover: read-only old primary whose agent has not released yet",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{To: "db-1"}
				readOnly(o, "db-0")
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: why(CodeSwitchoverLeaseWait,
				"switchover to db-1: db-0 is read-only, waiting for its agent to release the lease (at most 2.15s)")},
		},
		{
			name: "switchover to an errant member is cancelled",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{To: "db-1"}
				peer := o.Peers["db-1"]
				peer.Report.Errant = true
				o.Peers["db-1"] = peer
			},
			want: proposing(Decision{NodeReason: replicaServing},
				why(CodeSwitchoverCancel, "switchover impossible, no fit target (db-1: errant GTIDs): cancelling it"),
				record.Command{Op: record.OpClearSwitchover, At: t0}),
		},
		{
			name: "switchover to a member whose applier failed is cancelled",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{To: "db-1"}
				stopApplier(o, "db-1", 1062, duplicate)
			},
			want: proposing(Decision{NodeReason: replicaServing},
				why(CodeSwitchoverCancel, "switchover to db-1 impossible, its applier stopped with error 1062 ("+duplicate+"): cancelling it"),
				record.Command{Op: record.OpClearSwitchover, At: t0}),
		},
		{
			name: "switchover to whoever is best between diverged replicas is cancelled",
			setup: func(o *Observation) {
				o.Record.Switchover = &record.Switchover{}
				o.Servers["db-1"] = replicaServer("10.0.0.1", uuidA+":1-90", uuidA+":1-90,cccccccc-cccc-cccc-cccc-cccccccccccc:1")
			},
			want: proposing(Decision{NodeReason: replicaServing},
				why(CodeSwitchoverCancel, "switchover impossible: db-1 received transactions db-2 lacks: the replicas diverged"),
				record.Command{Op: record.OpClearSwitchover, At: t0}),
		},
		{
			name: "a member with a new address is recorded",
			setup: func(o *Observation) {
				peer := o.Peers["db-2"]
				peer.Report.MySQLAddr = "10.0.0.33:3306"
				o.Peers["db-2"] = peer
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: why(CodeRecordMember, "recording member db-2 at 10.0.0.33:3306"),
				Propose: &record.Command{Op: record.OpUpsertMember, Member: &record.Member{ID: "db-2", MySQLAddr: "10.0.0.33:3306", Voter: true}, At: t0}},
		},
		{
			// A Kubernetes pod recreated with a new IP: it rejoined gossip under its name (memberlist
			// reclaims it), and the leader moves it in Raft and in the record in one pass.
			name:   "a member back at a new IP: its Raft address is updated and its addresses recorded",
			policy: func(p *Policy) { p.BootstrapExpect = 3 },
			setup: func(o *Observation) {
				peer := o.Peers["db-2"]
				peer.Report.MySQLAddr, peer.Report.RaftAddr = "10.0.0.33:3306", "10.0.0.33:7000"
				o.Peers["db-2"] = peer
				o.Raft.Configuration = []membership.Server{
					{ID: "db-0", Addr: "10.0.0.1:7000", Voter: true},
					{ID: "db-1", Addr: "10.0.0.2:7000", Voter: true},
					{ID: "db-2", Addr: "10.0.0.3:7000", Voter: true},
				}
				o.Raft.Seen = []membership.Candidate{
					{ID: "db-0", Addr: "10.0.0.1:7000", Alive: true},
					{ID: "db-1", Addr: "10.0.0.2:7000", Alive: true},
					{ID: "db-2", Addr: "10.0.0.33:7000", Alive: true},
				}
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: why(CodeRecordMember, "recording member db-2 at 10.0.0.33:3306"),
				Membership: []membership.Change{{Action: membership.ActionAddVoter, ID: "db-2", Addr: "10.0.0.33:7000",
					Reason: "updating the address of db-2 from 10.0.0.3:7000 to 10.0.0.33:7000"}},
				Propose: &record.Command{Op: record.OpUpsertMember, Member: &record.Member{ID: "db-2", MySQLAddr: "10.0.0.33:3306",
					RaftAddr: "10.0.0.33:7000", Voter: true}, At: t0}},
		},
		{
			name: "members whose agents are not alive or report no address are not recorded",
			setup: func(o *Observation) {
				setPeer(o, "db-0", func(p *Peer) { p.Report.MySQLAddr = "" })
				setPeer(o, "db-2", func(p *Peer) { p.Report.MySQLAddr, p.State = "10.0.0.33:3306", PeerSuspect })
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
		{
			name: "a leader with an empty record names the cluster first",
			setup: func(o *Observation) {
				o.Cluster = "orders"
				o.Record = record.Record{}
			},
			want: Decision{NodeReason: awaitPrimary, ClusterReason: why(CodeInitRecord, `initializing the record of cluster "orders"`),
				Propose: &record.Command{Op: record.OpInit, Cluster: "orders", At: t0}},
		},
		{
			name:   "no Raft state and bootstrap_expect members in sight: bootstrap them all",
			policy: func(p *Policy) { p.BootstrapExpect = 3 },
			setup: func(o *Observation) {
				o.Leader = false
				o.Raft = Raft{Seen: []membership.Candidate{
					{ID: "db-1", Addr: "10.0.0.2:7000", Alive: true},
					{ID: "db-0", Addr: "10.0.0.1:7000", Alive: true},
					{ID: "db-2", Addr: "10.0.0.3:7000", Alive: true},
				}}
			},
			want: Decision{NodeReason: replicaServing, Bootstrap: []membership.Server{
				{ID: "db-0", Addr: "10.0.0.1:7000", Voter: true},
				{ID: "db-1", Addr: "10.0.0.2:7000", Voter: true},
				{ID: "db-2", Addr: "10.0.0.3:7000", Voter: true},
			}},
		},
		{
			name:   "the leader brings the Raft configuration in line with gossip",
			policy: func(p *Policy) { p.BootstrapExpect, p.RemoveAfter = 3, 10*time.Minute },
			setup: func(o *Observation) {
				o.Raft.Configuration = []membership.Server{
					{ID: "db-0", Addr: "10.0.0.1:7000", Voter: true},
					{ID: "db-1", Addr: "10.0.0.2:7000", Voter: true},
					{ID: "db-3", Addr: "10.0.0.4:7000", Voter: true},
				}
				o.Raft.Seen = []membership.Candidate{
					{ID: "db-0", Addr: "10.0.0.1:7000", Alive: true},
					{ID: "db-1", Addr: "10.0.0.2:7000", Alive: true},
					{ID: "db-2", Addr: "10.0.0.3:7000", Alive: true},
					{ID: "db-3", Addr: "10.0.0.4:7000", GoneSince: t0.Add(-11 * time.Minute)},
				}
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy, Membership: []membership.Change{
				{Action: membership.ActionRemoveServer, ID: "db-3", Addr: "10.0.0.4:7000", Reason: "removing db-3: gone for 11m0s, longer than 10m0s"},
				{Action: membership.ActionAddNonvoter, ID: "db-2", Addr: "10.0.0.3:7000", Reason: "adding db-2 as a non-voter: alive in gossip, not yet in Raft"},
			}},
		},
		{
			name: "an agent re-seeding its server leaves it to the copy, still reporting what was errant",
			setup: func(o *Observation) {
				o.Reseeding, o.Leader = true, false
				o.Memory.Errant = errantB
			},
			want: Decision{Errant: errantB, NodeReason: why(CodeReseeding, "re-seeding this server from a donor")},
		},
		{
			name:  "a member without transactions (an empty data dir) that replication cannot fill is re-seeded from the replica",
			setup: func(o *Observation) { o.Servers["db-2"] = emptyServer() },
			want: Decision{NodeReason: replicaServing, Reseed: &Reseed{Member: "db-2", Donor: "db-1"},
				ClusterReason: why(CodeReseedBlank, "re-seeding db-2 from db-1: "+emptyWhy)},
			memory: mem(Memory{ReseedAt: t0}),
		},
		{
			name: "an empty member whose agent is not alive is not re-seeded: its agent runs the copy",
			setup: func(o *Observation) {
				o.Servers["db-2"] = emptyServer()
				setPeer(o, "db-2", func(p *Peer) { p.State = PeerDead })
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
		{
			name: "of the healthy replicas the least lagging donates",
			setup: func(o *Observation) {
				o.Servers["db-2"] = emptyServer()
				setPeer(o, "db-1", func(p *Peer) { p.Report.LagMillis = 900 })
				addReplica(o, "db-3", 50)
				addReplica(o, "db-4", 400)
			},
			want: Decision{NodeReason: replicaServing, Reseed: &Reseed{Member: "db-2", Donor: "db-3"},
				ClusterReason: why(CodeReseedBlank, "re-seeding db-2 from db-3: "+emptyWhy)},
			memory: mem(Memory{ReseedAt: t0}),
		},
		{
			name:   "one re-seed at a time: the first member in order",
			policy: func(p *Policy) { p.RebuildErrant = true },
			setup: func(o *Observation) {
				setPeer(o, "db-1", func(p *Peer) { p.Report.Errant = true })
				o.Servers["db-2"] = emptyServer()
				addReplica(o, "db-3", 0)
			},
			want: Decision{NodeReason: replicaServing, Reseed: &Reseed{Member: "db-1", Donor: "db-3"},
				ClusterReason: why(CodeReseedErrant, "re-seeding db-1 from db-3: it holds errant transactions and ha.rebuild_errant is on")},
			memory: mem(Memory{ReseedAt: t0}),
		},
		{
			name: "a member being re-seeded is no failover candidate, though what it received still counts",
			setup: func(o *Observation) {
				hostCrash(o)
				setPeer(o, "db-2", func(p *Peer) { p.Report.Reseeding = true })
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true,
				ClusterReason: why(CodeFailoverBlocked, "primary db-0 is down but db-2 received transactions candidate db-1 lacks")},
			memory: downMemory,
		},
		{
			name: "a member being re-seeded is no failover candidate: with the other one errant, there is none",
			setup: func(o *Observation) {
				hostCrash(o)
				setPeer(o, "db-1", func(p *Peer) { p.Report.Errant = true })
				setPeer(o, "db-2", func(p *Peer) { p.Report.Reseeding = true })
			},
			want: Decision{NodeReason: primaryLost, RevokeLease: true, ClusterReason: why(CodeFailoverNoCandidate,
				crashed+" but no replica can take over: db-1: errant GTIDs, db-2: being re-seeded")},
			memory: downMemory,
		},
		{
			name: "unreachable, dead, draining or re-seeding replicas never donate",
			setup: func(o *Observation) {
				o.Servers["db-2"] = emptyServer()
				setPeer(o, "db-1", func(p *Peer) { p.Report.Draining = true })
				addReplica(o, "db-5", 0)
				setPeer(o, "db-5", func(p *Peer) { p.Report.Reseeding = true })
				addReplica(o, "db-3", 0)
				o.Servers["db-3"] = Server{Err: "refused"}
				addReplica(o, "db-4", 0)
				setPeer(o, "db-4", func(p *Peer) { p.State = PeerDead })
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: why(CodeReseedNoDonor, "db-2 needs a re-seed ("+emptyWhy+
				") but no member may donate: db-1: shutting down, db-3: MySQL unreachable, db-4: agent not alive, db-5: being re-seeded")},
		},
		{
			name: "a member without transactions whose receiver fails otherwise is left to replication",
			setup: func(o *Observation) {
				s := emptyServer()
				s.Status.Replica.LastIOErrno, s.Status.Replica.LastIOError = 1045, "access denied" // no replication account yet
				o.Servers["db-2"] = s
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
		{
			name:  "a member without transactions that replicates is left to catch up, as at a cluster's start",
			setup: func(o *Observation) { o.Servers["db-2"] = replicaServer("10.0.0.1", "", "") },
			want:  Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
		{
			name: "an errant member stays fenced without ha.rebuild_errant",
			setup: func(o *Observation) {
				setPeer(o, "db-2", func(p *Peer) { p.Report.Errant = true })
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
		{
			name:   "with ha.rebuild_errant an errant member is re-seeded from the replica with the least lag",
			policy: func(p *Policy) { p.RebuildErrant = true },
			setup: func(o *Observation) {
				setPeer(o, "db-2", func(p *Peer) { p.Report.Errant = true })
				setPeer(o, "db-1", func(p *Peer) { p.Report.LagMillis = 900 })
			},
			want: Decision{NodeReason: replicaServing, Reseed: &Reseed{Member: "db-2", Donor: "db-1"},
				ClusterReason: why(CodeReseedErrant, "re-seeding db-2 from db-1: it holds errant transactions and ha.rebuild_errant is on")},
			memory: mem(Memory{ReseedAt: t0}),
		},
		{
			name:   "a lagging replica never donates, nor the primary while a replica exists",
			policy: func(p *Policy) { p.RebuildErrant = true },
			setup: func(o *Observation) {
				setPeer(o, "db-2", func(p *Peer) { p.Report.Errant = true })
				setPeer(o, "db-1", func(p *Peer) { p.Report.LagMillis = 20000 })
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: why(CodeReseedNoDonor,
				"db-2 needs a re-seed (it holds errant transactions and ha.rebuild_errant is on) but no member may donate: db-1: lagging 20000ms")},
		},
		{
			name: "an errant replica never donates",
			setup: func(o *Observation) {
				o.Servers["db-2"] = emptyServer()
				setPeer(o, "db-1", func(p *Peer) { p.Report.Errant = true })
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: why(CodeReseedNoDonor,
				"db-2 needs a re-seed ("+emptyWhy+") but no member may donate: db-1: errant GTIDs")},
		},
		{
			name:   "a member without transactions never donates, though it replicates",
			policy: func(p *Policy) { p.RebuildErrant = true },
			setup: func(o *Observation) {
				o.Servers["db-2"] = replicaServer("10.0.0.1", "", "")
				setPeer(o, "db-1", func(p *Peer) { p.Report.Errant = true })
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: why(CodeReseedNoDonor,
				"db-1 needs a re-seed (it holds errant transactions and ha.rebuild_errant is on) but no member may donate: db-2: holds no transactions")},
		},
		{
			name:   "the primary donates when no replica may and none acknowledges its commits",
			policy: func(p *Policy) { p.RebuildErrant = true },
			setup: func(o *Observation) {
				setPeer(o, "db-1", func(p *Peer) { p.Report.Errant = true })
				setPeer(o, "db-2", func(p *Peer) { p.Report.Errant = true })
				o.Servers["db-0"] = noAcks(o.Servers["db-0"])
				setPeer(o, "db-0", func(p *Peer) { p.Report.CommitStall, p.Report.Epoch = health.StallNoAck, 3 })
			},
			want: Decision{NodeReason: replicaServing, Reseed: &Reseed{Member: "db-1", Donor: "db-0"},
				ClusterReason: why(CodeReseedErrant, "re-seeding db-1 from db-0: it holds errant transactions and ha.rebuild_errant is on")},
			memory: mem(Memory{ReseedAt: t0}),
		},
		{
			name:   "the primary does not donate while a replica receives from it, fit or not",
			policy: func(p *Policy) { p.RebuildErrant = true },
			setup: func(o *Observation) {
				setPeer(o, "db-2", func(p *Peer) { p.Report.Errant = true })
				setPeer(o, "db-1", func(p *Peer) { p.Report.LagMillis = -1 })
				o.Servers["db-0"] = noAcks(o.Servers["db-0"])
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: why(CodeReseedNoDonor,
				"db-2 needs a re-seed (it holds errant transactions and ha.rebuild_errant is on) but no member may donate: db-1: not replicating from the primary")},
		},
		{
			name: "the primary donates when it is the only other member",
			setup: func(o *Observation) {
				delete(o.Record.Members, "db-1")
				setPeer(o, "db-1", func(p *Peer) { p.Report.MySQLAddr = "" })
				o.Servers["db-2"] = emptyServer()
			},
			want: Decision{NodeReason: replicaServing, Reseed: &Reseed{Member: "db-2", Donor: "db-0"},
				ClusterReason: why(CodeReseedBlank, "re-seeding db-2 from db-0: "+emptyWhy)},
			memory: mem(Memory{ReseedAt: t0}),
		},
		{
			name: "a re-seed is not asked for again right away",
			setup: func(o *Observation) {
				o.Servers["db-2"] = emptyServer()
				o.Memory.ReseedAt = t0.Add(-reseedRetry + time.Millisecond)
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
		{
			name:   "with backup.reseed_from_backup no_donor, a member no one may donate to restores the newest backup",
			policy: func(p *Policy) { p.ReseedFromBackup = BackupReseedNoDonor },
			setup: func(o *Observation) {
				o.Servers["db-2"] = emptyServer()
				setPeer(o, "db-1", func(p *Peer) { p.Report.Errant = true })
			},
			want: Decision{NodeReason: replicaServing, Reseed: &Reseed{Member: "db-2", FromBackup: true}, ClusterReason: why(CodeReseedBackup,
				"re-seeding db-2 from the newest backup: "+emptyWhy+", and no member may donate: db-1: errant GTIDs")},
			memory: mem(Memory{ReseedAt: t0}),
		},
		{
			name:   "with backup.reseed_from_backup no_donor, a donor still comes first",
			policy: func(p *Policy) { p.ReseedFromBackup = BackupReseedNoDonor },
			setup:  func(o *Observation) { o.Servers["db-2"] = emptyServer() },
			want: Decision{NodeReason: replicaServing, Reseed: &Reseed{Member: "db-2", Donor: "db-1"},
				ClusterReason: why(CodeReseedBlank, "re-seeding db-2 from db-1: "+emptyWhy)},
			memory: mem(Memory{ReseedAt: t0}),
		},
		{
			name:   "with backup.reseed_from_backup always, no member donates",
			policy: func(p *Policy) { p.ReseedFromBackup = BackupReseedAlways },
			setup:  func(o *Observation) { o.Servers["db-2"] = emptyServer() },
			want: Decision{NodeReason: replicaServing, Reseed: &Reseed{Member: "db-2", FromBackup: true}, ClusterReason: why(CodeReseedBackup,
				"re-seeding db-2 from the newest backup (backup.reseed_from_backup is always): "+emptyWhy)},
			memory: mem(Memory{ReseedAt: t0}),
		},
		{
			name:   "a restore from a backup is not asked for again right away either",
			policy: func(p *Policy) { p.ReseedFromBackup = BackupReseedAlways },
			setup: func(o *Observation) {
				o.Servers["db-2"] = emptyServer()
				o.Memory.ReseedAt = t0.Add(-reseedRetry + time.Millisecond)
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
		{
			name:   "a backup restores only a member whose agent is alive",
			policy: func(p *Policy) { p.ReseedFromBackup = BackupReseedAlways },
			setup: func(o *Observation) {
				o.Servers["db-2"] = emptyServer()
				setPeer(o, "db-2", func(p *Peer) { p.State = PeerDead })
			},
			want: Decision{NodeReason: replicaServing, ClusterReason: db0Healthy},
		},
	}
}

// TestDecide compares whole decisions: every field, reasons by code and sentence.
func TestDecide(t *testing.T) {
	for _, tt := range decideCases(DefaultPolicy()) {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			if tt.policy != nil {
				tt.policy(&p)
			}
			o := cluster()
			if tt.setup != nil {
				tt.setup(&o)
			}
			if tt.want.Memory != (Memory{}) {
				t.Fatal("the case sets want.Memory; expected memory goes in memory")
			}
			want := tt.want
			want.Memory = o.Memory
			if tt.memory != nil {
				want.Memory = *tt.memory
			}
			if o.Local.Up && o.Primary != nil && !o.Primary.Up && (tt.memory == nil || tt.memory.PrimaryMisses == 0) {
				// A replica counts the passes its probe of the primary failed (decideReplica);
				// the cases that test the count set it themselves.
				want.Memory.PrimaryMisses = o.Memory.PrimaryMisses + 1
			}
			checkDecision(t, decideGuarded(t, o, p), want)
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
// an errant or unreachable member. Decide must leave every observation as it found it. The
// outcomes are counted, so a generator that stops reaching failovers, switchovers or fences
// (and would check the rules on nothing) fails.
func TestDecideProperties(t *testing.T) {
	p := DefaultPolicy()
	rng := rand.New(rand.NewPCG(1, 2))
	ids := []string{"db-0", "db-1", "db-2"}
	reached := map[string]int{}
	codes := map[Code]int{}
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
		o.Grant.Draining = o.Grant.Released && rng.IntN(4) == 0 // a primary's agent that shuts down
		o.Draining = rng.IntN(10) == 0
		o.Memory = Memory{PrimaryDownSince: t0.Add(-time.Duration(rng.IntN(5000)) * time.Millisecond), DownEpoch: uint64(2 + rng.IntN(2)),
			StallEpoch: uint64(rng.IntN(4))}
		if rng.IntN(3) == 0 {
			o.CommitWaitingSince = o.Now.Add(-time.Duration(rng.IntN(10000)) * time.Millisecond)
		}
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
			peer.Report.Draining = rng.IntN(10) == 0
			peer.Report.Epoch = uint64(2 + rng.IntN(2))
			peer.Report.CommitStall = []health.CommitStall{"", "", health.StallCommit, health.StallNoAck}[rng.IntN(4)]
			o.Peers[id] = peer
		}
		o.Local = o.Servers[o.Self]
		if pr, ok := o.Servers[o.Record.Primary]; ok && o.Record.Primary != o.Self {
			o.Primary = &pr
		} else {
			o.Primary = nil
		}

		before := deepCopy(o)
		d := Decide(o, p)
		if lines := changed(before, o); len(lines) > 0 {
			t.Fatalf("case %d: Decide changed its input: %v", i, lines)
		}
		count(reached, codes, o, d)
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
	t.Logf("outcomes: %v", reached)
	t.Logf("reason codes: %v", codes)
	for _, must := range []string{"failover", "switchover", "fence"} {
		if reached[must] == 0 {
			t.Errorf("no random observation led to a %s: the generator no longer exercises it", must)
		}
	}
}

// count tallies what a random observation led to.
func count(reached map[string]int, codes map[Code]int, o Observation, d Decision) {
	codes[d.NodeReason.Code]++
	if d.ClusterReason.Code != "" {
		codes[d.ClusterReason.Code]++
	}
	add := func(name string, ok bool) {
		if ok {
			reached[name]++
		}
	}
	setPrimary := d.Propose != nil && d.Propose.Op == record.OpSetPrimary
	add("failover", setPrimary && d.Propose.Failover)
	add("switchover", setPrimary && o.Record.Switchover != nil)
	add("handover", setPrimary && !d.Propose.Failover && o.Record.Switchover == nil && o.Record.Primary != "" && d.Propose.Primary != o.Record.Primary)
	add("reelect", setPrimary && d.Propose.Primary == o.Record.Primary)
	add("first_primary", setPrimary && o.Record.Primary == "")
	add("cancel", d.Propose != nil && d.Propose.Op == record.OpClearSwitchover)
	add("fence", d.Node == NodeFence || d.FenceMember != "")
	add("fence_member", d.FenceMember != "")
	add("open_writes", d.Node == NodeOpenWrites)
	add("revoke", d.RevokeLease)
	add("prepare_wait", d.PrepareWaitFor != nil)
	add("quarantine", len(d.Quarantine) > 0)
	add("release", d.ReleaseLease)
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
	// A server that is not running at all is already fenced; one whose connection broke at once
	// (a fence kills the agent's connections too) is probed again, not killed.
	gone := frozen(-time.Millisecond, true)
	gone.Local = Server{Err: "connection refused", Gone: true}
	broken := frozen(-time.Millisecond, true)
	broken.Local = Server{Err: "invalid connection"}
	// A single probe that ran out of time proves nothing: the agent may have been the one frozen.
	once := frozen(-time.Millisecond, true)
	once.Memory.LocalStalls = 0
	unreachable := why(CodeLocalUnreachable, "local MySQL is unreachable (i/o timeout)")
	tests := []struct {
		name string
		obs  Observation
		p    Policy
		want Decision
	}{
		{"past the lease", frozen(-time.Millisecond, true), kill, Decision{Node: NodeKill,
			NodeReason: why(CodeKillFrozen, "local MySQL is unreachable (i/o timeout) while writable, past its primary lease: killing it, the only fence left for a frozen server"),
			Memory:     Memory{LocalWritable: true, LocalStalls: 2, LocalDownSince: t0}}},
		{"lease still held", frozen(time.Second, true), kill, Decision{
			NodeReason: why(CodeLeaseWithheld, "local MySQL is unreachable (i/o timeout): still the primary, but no longer renewing the lease, so that it runs out no later than the leader may judge the server down and a failover need not wait for it"),
			Memory:     Memory{LocalWritable: true, LocalStalls: 2, LocalDownSince: t0}}},
		{"was read-only", frozen(-time.Millisecond, false), kill, Decision{NodeReason: unreachable,
			Memory: Memory{LocalStalls: 2, LocalDownSince: t0}}},
		{"no process to kill configured", frozen(-time.Millisecond, true), DefaultPolicy(), Decision{NodeReason: unreachable,
			Memory: Memory{LocalWritable: true, LocalStalls: 2, LocalDownSince: t0}}},
		{"not running", gone, kill, Decision{NodeReason: why(CodeLocalUnreachable, "local MySQL is unreachable (connection refused)"),
			Memory: Memory{LocalWritable: true, LocalDownSince: t0}}},
		{"connection broke at once", broken, kill, Decision{NodeReason: why(CodeLocalUnreachable, "local MySQL is unreachable (invalid connection)"),
			Memory: Memory{LocalWritable: true, LocalDownSince: t0}}},
		{"a single stalled probe", once, kill, Decision{NodeReason: unreachable,
			Memory: Memory{LocalWritable: true, LocalStalls: 1, LocalDownSince: t0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecision(t, decideGuarded(t, tt.obs, tt.p), tt.want)
		})
	}
	// The memory of being writable comes from the last answer.
	o := cluster()
	o.Local = primaryServer(uuidA + ":1-100")
	if d := Decide(o, kill); !d.Memory.LocalWritable {
		t.Fatal("a writable local server is not remembered as writable")
	}
}
