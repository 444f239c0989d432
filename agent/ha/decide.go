package ha

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/membership"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

// NodeAction is what an agent does to its own MySQL server.
type NodeAction string

const (
	NodeNone NodeAction = ""
	// NodeFence: super_read_only on, client connections killed.
	NodeFence NodeAction = "fence"
	// NodeOpenWrites: finish promotion (relay log applied, replica config dropped, semi-sync source) and open writes.
	NodeOpenWrites NodeAction = "open_writes"
	// NodeReplicate: replicate from the recorded primary with GTID auto-position.
	NodeReplicate NodeAction = "replicate"
	// NodeStartReplica: restart stopped replication threads towards the recorded primary.
	NodeStartReplica NodeAction = "start_replica"
	// NodeStopReplica: stop replicating (the server has errant GTIDs and must not apply more).
	NodeStopReplica NodeAction = "stop_replica"
	// NodeStopReceiver: stop receiving (the IO thread) and let the applier drain what came: the
	// primary stopped answering this agent, so this replica must acknowledge nothing more of it
	// while the leader may be replacing it.
	NodeStopReceiver NodeAction = "stop_receiver"
	// NodeKill: SIGKILL the local mysqld. It was writable, stopped answering and the primary
	// lease ran out: it cannot be fenced over SQL, and a frozen process that wakes up would
	// take writes while another primary may already be open.
	NodeKill NodeAction = "kill"
)

// Decision is what Decide asks the agent to do in this pass, and why.
type Decision struct {
	// Node is the action on the agent's own server; NodeReason says why.
	Node       NodeAction
	NodeReason Reason
	// RenewLease asks the leader to renew this agent's primary lease; ReleaseLease gives it up.
	RenewLease   bool
	ReleaseLease bool
	// TransferLeadership asks this Raft leader to hand leadership to another voter: its own
	// MySQL has been unreachable too long, and members that cannot reach this host would
	// otherwise depend on it for their leases (an asymmetric partition).
	TransferLeadership bool
	// TransferTo is the voter to hand leadership to: one whose agent is alive and whose MySQL
	// serves. Empty: Raft's pick, the most up-to-date voter, whatever its MySQL.
	TransferTo string
	// RevokeLease tells the leader to stop renewing the primary's lease (leader only): the
	// primary is confirmed down, and a lease it could still renew would hold off the failover.
	RevokeLease bool
	// Errant lists the transactions the local server has that the primary lacks.
	Errant string
	// CommitStall is the local primary's commit path as this pass judged it (gossiped).
	CommitStall health.CommitStall

	// Bootstrap asks this agent to bootstrap Raft with these servers: it has no Raft state and
	// bootstrap_expect members are in sight (Consul's rule).
	Bootstrap []membership.Server
	// Membership lists the Raft configuration changes the leader carries out, each with why.
	Membership []membership.Change

	// ClusterReason says what the leader decided (leader only; zero elsewhere).
	ClusterReason Reason
	// FenceMember asks the leader to fence that member's MySQL directly before anything else.
	FenceMember string
	// Prepare asks the leader to ready the candidate for promotion before proposing: stop its IO
	// thread and wait until it has applied everything it received (and PrepareWaitFor, if set).
	Prepare        string
	PrepareWaitFor *gtid.Set
	// PrepareStartApplier asks the leader to start the candidate's applier (SQL thread) first: it
	// was stopped without an error, and the wait for the relay log to be applied would never end.
	PrepareStartApplier bool
	// PrepareRecover asks the leader to copy transactions only a member that cannot apply them
	// received onto the candidate, from that member's binlog (what it applied) and relay log
	// (the rest), once the candidate applied its own relay log (MHA's recovery of differential
	// relay logs).
	PrepareRecover *Recover
	// Quarantine lists the replicas whose IO threads the leader stops before the candidate's,
	// when the old primary is out of reach: from then on it cannot get a semi-sync ack, and the
	// candidate must hold everything they received.
	Quarantine []string
	// Propose is the command the leader proposes to Raft after the steps above succeeded.
	Propose *record.Command
	// Reseed asks the leader to have a member replace its data with a donor's copy.
	Reseed *Reseed

	// Memory is stored by the agent and handed back in the next Observation.
	Memory Memory
}

// Recover names the member whose logs hold the transactions GTIDs the candidate lacks.
type Recover struct {
	From  string
	GTIDs gtid.Set
}

// Reseed names the member to re-seed and the member it copies, or says it restores the newest
// backup instead (Donor is then empty).
type Reseed struct {
	Member, Donor string
	FromBackup    bool
}

// Reason is the decision in one line for logs and status.
func (d Decision) Reason() string {
	if d.ClusterReason.Text == "" {
		return d.NodeReason.Text
	}
	return d.ClusterReason.Text + "; " + d.NodeReason.Text
}

// Decide is the whole HA decision: a pure function of what the agent observed. Every agent runs
// the node part (be what the record says, bootstrap Raft when the time comes); the Raft leader
// also runs the cluster part (Raft membership, failover, switchover, first election, members of
// the record).
func Decide(obs Observation, p Policy) Decision {
	d := decideNode(obs, p)
	if obs.Local.Up {
		d.Memory.LocalDownSince = time.Time{}
	} else {
		d.Memory.LocalDownSince = localDownSince(obs)
	}
	if !obs.Raft.HasState {
		// Not a member of any Raft cluster yet, so never its leader either.
		d.Bootstrap, _ = membership.ShouldBootstrap(obs.Raft.Seen, p.BootstrapExpect)
	}
	if !obs.Leader {
		return d
	}
	d.Membership = membership.Plan(obs.Raft.Configuration, obs.Raft.Seen, obs.Now, membership.Options{
		Self: obs.Self, ExpectedVoters: p.BootstrapExpect, RemoveAfter: p.RemoveAfter})
	// A leader whose own MySQL stays unreachable hands leadership over, unless that MySQL is the
	// recorded primary's: then it fails over itself first, counting the promotion wait from the
	// lease grants it made (a new leader would count it from its election, seconds later).
	if !d.Memory.LocalDownSince.IsZero() && obs.Now.Sub(d.Memory.LocalDownSince) >= p.DetectionTimeout && obs.Record.Primary != obs.Self {
		d.TransferLeadership, d.TransferTo = true, otherVoter(obs)
		d.ClusterReason = because(CodeHandLeadership, "handing Raft leadership over: this agent's own MySQL has been unreachable for ha.detection_timeout")
		return d
	}
	decideCluster(obs, p, &d)
	if p.LeaderOffPrimary && d.ClusterReason.Code == CodePrimaryHealthy && d.NodeReason.Code == CodePrimaryServing {
		if to := otherVoter(obs); to != "" {
			// With the leader beside the primary, losing that host costs an election before
			// anyone can judge the primary, and the new leader then waits out a lease it cannot
			// know from its election: seconds more than losing either alone.
			d.TransferLeadership, d.TransferTo = true, to
			d.ClusterReason = because(CodeLeaderOffPrimary, "primary %s of epoch %d is healthy; handing Raft leadership away from its agent "+
				"(%s can take it), so that one host lost does not take both", obs.Self, obs.Record.Epoch, to)
		}
	}
	return d
}

// otherVoter names a Raft voter other than this agent whose agent is alive and whose MySQL
// serves, or "". It prefers one beside a replica: leadership beside the primary would be handed
// on again (ha.leader_off_primary), and each move empties the new leader's memory of what it
// did (a pod it replaced, a roll's last step).
func otherVoter(obs Observation) string {
	found := ""
	for _, s := range obs.Raft.Configuration {
		peer := obs.Peers[s.ID]
		if s.Voter && s.ID != obs.Self && peer.Alive() && peer.Report.MySQLUp && !peer.Report.Draining {
			if s.ID != obs.Record.Primary {
				return s.ID
			}
			found = s.ID
		}
	}
	return found
}

func decideNode(obs Observation, p Policy) Decision {
	r := obs.Record
	d := Decision{Memory: obs.Memory}
	leaseHeld := obs.Now.Before(obs.LeaseUntil)
	d.Memory.LocalStalls, d.Memory.PrimaryMisses = 0, 0
	if obs.Reseeding {
		// The copy stops and starts the server and replaces its data: any action would fight it.
		// The server was a fenced replica before, and comes back read-only. Errant transactions
		// stay reported until the copy replaced them, so the leader never promotes it meanwhile.
		d.Errant = obs.Memory.Errant
		d.NodeReason = because(CodeReseeding, "re-seeding this server from a donor")
		return d
	}
	if !obs.Local.Up {
		if obs.Local.Stalled {
			d.Memory.LocalStalls = obs.Memory.LocalStalls + 1
		}
		unreachable := "local MySQL is unreachable (" + obs.Local.Err + ")"
		d.NodeReason = because(CodeLocalUnreachable, "%s", unreachable)
		switch {
		// Only a server that is certainly not running may give its lease up early; a frozen one
		// could wake up writable before its agent fences it.
		case r.Primary == obs.Self && leaseHeld && obs.Local.Gone:
			d.ReleaseLease = true
			d.NodeReason = because(CodeLeaseReleased, "%s: it is not running, so the primary lease is released for the leader to fail over at once", unreachable)
		// A stalled server's lease is renewed only as long as it must run for a pause shorter
		// than detection to cost no failover (when ha.lease is shorter than
		// ha.detection_timeout); after that it is left to run out, so that it ends when the
		// leader may judge the server down, not a whole lease later. Only a held lease is
		// extended.
		case r.Primary == obs.Self && leaseHeld && obs.Memory.LocalWritable && obs.Now.Sub(localDownSince(obs)) < p.DetectionTimeout-p.Lease:
			d.RenewLease = true
			d.NodeReason = because(CodeLeaseKeptStalled, "%s: still the primary, renewing the lease while a stall may still be shorter than detection", unreachable)
		case r.Primary == obs.Self && leaseHeld && obs.Memory.LocalWritable:
			d.NodeReason = because(CodeLeaseWithheld, "%s: still the primary, but no longer renewing the lease, so that it runs out no later than the leader "+
				"may judge the server down and a failover need not wait for it", unreachable)
		case p.KillFrozenPrimary && obs.Memory.LocalWritable && d.Memory.LocalStalls >= 2 && !leaseHeld:
			d.Node = NodeKill
			d.NodeReason = because(CodeKillFrozen, "%s while writable, past its primary lease: killing it, the only fence left for a frozen server", unreachable)
		}
		return d
	}
	writable := obs.Local.Status.Writable()
	d.Memory.LocalWritable = writable
	// Kept through a pass whose probe of the local server failed (above): a busy server that
	// misses one probe in a long commit must not lose the moves seen so far.
	d.Memory.CommitBinlog, d.Memory.CommitReads, d.Memory.CommitMovedAt = "", "", time.Time{}
	switch {
	case r.Cluster == "" || r.Primary == "":
		if writable {
			d.Node, d.NodeReason = NodeFence, because(CodeNoPrimaryFence, "no primary is recorded, so this server must not take writes: fencing")
		} else {
			d.NodeReason = because(CodeAwaitPrimary, "read-only, waiting for the leader to record a primary")
		}
	case r.Primary == obs.Self:
		decidePrimary(obs, p, leaseHeld, writable, &d)
	default:
		decideReplica(obs, p, writable, &d)
	}
	return d
}

// localDownSince is when the local server was first seen unreachable, this pass if not before.
func localDownSince(obs Observation) time.Time {
	if obs.Memory.LocalDownSince.IsZero() {
		return obs.Now
	}
	return obs.Memory.LocalDownSince
}

func decidePrimary(obs Observation, p Policy, leaseHeld, writable bool, d *Decision) {
	r := obs.Record
	lent := strings.Join(borrowers(obs), ", ")
	switch {
	case obs.Draining || r.Switchover != nil:
		why := "a switchover is pending"
		if obs.Draining {
			why = "this agent is shutting down"
		}
		// Released every pass, not only while held: the leader must hear it in every epoch
		// that names this server, or it would re-elect a server that is going away.
		d.ReleaseLease = true
		if writable {
			d.Node, d.NodeReason = NodeFence, because(CodePrimaryStepDown, "primary of epoch %d but %s: fencing and releasing the lease", r.Epoch, why)
		} else {
			d.NodeReason = because(CodePrimaryStepDown, "primary of epoch %d, read-only because %s", r.Epoch, why)
		}
	case !leaseHeld:
		d.RenewLease = true
		if writable {
			d.Node, d.NodeReason = NodeFence, because(CodePrimaryNoLease, "primary of epoch %d without a lease (no Raft majority confirmed within ha.lease): fencing", r.Epoch)
		} else {
			d.NodeReason = because(CodePrimaryNoLease, "primary of epoch %d, waiting for a lease before opening writes", r.Epoch)
		}
	case lent != "" && obs.Local.Status.SemiSync.AcksMissing():
		// No replica can acknowledge, so commits would wait on it, and a copy waits for the
		// commits in flight (MySQL's clone, MariaDB's backup lock): it would never end. Read-only,
		// with the waiting commits let go by the fence (their clients get errors), it lends a
		// copy that brings back the replica its commits need. The lease is kept: nothing changed
		// about who is primary, and writes reopen under it once the copy ended.
		d.RenewLease = true
		if writable {
			d.Node, d.NodeReason = NodeFence, because(CodePrimaryLending, "primary of epoch %d: %s copies this server, and no replica is connected "+
				"to acknowledge a commit: read-only for the copy", r.Epoch, lent)
		} else {
			d.NodeReason = because(CodePrimaryLending, "primary of epoch %d, read-only while %s copies this server (no replica is connected "+
				"to acknowledge a commit); writes reopen once it is done", r.Epoch, lent)
		}
	case !writable || obs.Local.Status.Replica != nil:
		d.RenewLease = true
		d.Node, d.NodeReason = NodeOpenWrites, because(CodePrimaryOpen, "primary of epoch %d with a lease: applying the relay log and opening writes", r.Epoch)
	default:
		d.RenewLease = true
		d.NodeReason = because(CodePrimaryServing, "primary of epoch %d, writable, lease held", r.Epoch)
		judgeCommits(obs, p, d)
	}
}

// borrowers are the members re-seeding from this agent's server, as their agents report it.
func borrowers(obs Observation) []string {
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(obs.Peers)) {
		if peer := obs.Peers[id]; id != obs.Self && peer.Alive() && peer.Report.Reseeding && peer.Report.ReseedFrom == obs.Self {
			ids = append(ids, id)
		}
	}
	return ids
}

// judgeCommits tells a serving primary's stalled commit path from a healthy one: a heartbeat
// commit that waited ha.commit_stall_timeout is a stall, unless the commit path moved meanwhile
// (see commitMoved): a big transaction ahead of the heartbeat commits for as long as writing it
// to the binlog and shipping it to a replica take, and the clock starts again at each move. With
// fewer semi-sync replicas connected than a commit needs, it waits for acks, and another primary
// would wait the same way.
func judgeCommits(obs Observation, p Policy, d *Decision) {
	since := obs.CommitWaitingSince
	if since.IsZero() {
		return
	}
	reads, moved := replicaReads(obs), obs.Memory.CommitMovedAt
	if commitMoved(obs, reads) {
		moved = obs.Now
	}
	d.Memory.CommitBinlog, d.Memory.CommitReads, d.Memory.CommitMovedAt = obs.BinlogWritten, encodeReads(reads), moved
	if obs.Now.Sub(since) < p.CommitStallTimeout {
		return
	}
	waited, epoch := obs.Now.Sub(since).Round(time.Millisecond), obs.Record.Epoch
	if semi := obs.Local.Status.SemiSync; semi.AcksMissing() {
		d.CommitStall = health.StallNoAck
		d.NodeReason = because(CodeCommitStallNoAck, "primary of epoch %d: a heartbeat commit has waited %s for semi-sync acks with %d of the %d "+
			"acknowledging replicas it needs connected: a replica must connect, failing over cannot help", epoch, waited, semi.Clients, semi.AcksRequired)
		return
	}
	if moved.After(since) && obs.Now.Sub(moved) < p.CommitStallTimeout {
		// No times in the sentence: it would change, and be logged, every pass of a long commit
		// (the status shows the wait).
		d.NodeReason = because(CodeCommitMoving, "primary of epoch %d: a heartbeat commit waits past ha.commit_stall_timeout behind commits "+
			"that still move (its binlog grows, or a replica reads more of it): slow, not stalled", epoch)
		return
	}
	idle := waited
	if moved.After(since) {
		idle = obs.Now.Sub(moved).Round(time.Millisecond)
	}
	d.CommitStall = health.StallCommit
	d.NodeReason = because(CodeCommitStalled, "primary of epoch %d: a heartbeat commit has waited %s, and neither its binlog nor a replica's read of it "+
		"moved for %s, past ha.commit_stall_timeout: the commit path is stalled, reported for the leader to fail over", epoch, waited, idle)
}

// replicaReads is how far each replica of the local primary has read its binlog, by member id,
// as their agents report it.
func replicaReads(obs Observation) map[string]string {
	reads := map[string]string{}
	for id, peer := range obs.Peers {
		if r := peer.Report; r.Source == obs.Self && r.SourceRead != "" {
			reads[id] = r.SourceRead
		}
	}
	return reads
}

// encodeReads and decodeReads keep replicaReads in Memory.CommitReads.
func encodeReads(reads map[string]string) string {
	lines := make([]string, 0, len(reads))
	for _, id := range slices.Sorted(maps.Keys(reads)) {
		lines = append(lines, id+"\t"+reads[id])
	}
	return strings.Join(lines, "\n")
}

func decodeReads(s string) map[string]string {
	reads := map[string]string{}
	for line := range strings.Lines(s) {
		if id, at, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "\t"); ok {
			reads[id] = at
		}
	}
	return reads
}

// commitMoved reports whether the commit path moved since the previous pass: a replica read
// more of the binlog (its transactions are on their way to an ack), or the binlog grew while no
// commit waits for an ack. With acks stopped every new commit still writes the binlog before it
// waits, and a stream of them would hide the stall; a big transaction's write comes before its
// own ack wait, and the commits queued behind it wait for it, not for acks. A replica whose
// report comes or goes is no move.
func commitMoved(obs Observation, reads map[string]string) bool {
	before := decodeReads(obs.Memory.CommitReads)
	for id, at := range reads {
		if prev, ok := before[id]; ok && prev != at {
			return true
		}
	}
	prev := obs.Memory.CommitBinlog
	return prev != "" && obs.BinlogWritten != "" && prev != obs.BinlogWritten && obs.Local.Status.SemiSync.WaitSessions == 0
}

func decideReplica(obs Observation, p Policy, writable bool, d *Decision) {
	r := obs.Record
	primary := r.Primary
	if writable {
		d.Node, d.NodeReason = NodeFence, because(CodeReplicaWritable, "epoch %d names %s primary but this server is writable: fencing", r.Epoch, primary)
		return
	}
	if obs.Primary == nil || !obs.Primary.Up {
		// A probe still pending after a failure is no new miss: a pass waits only briefly on it,
		// and a busy machine must not stop a receiver that its primary still feeds.
		d.Memory.PrimaryMisses = obs.Memory.PrimaryMisses
		if obs.Primary == nil || !obs.Primary.Pending {
			d.Memory.PrimaryMisses++
		}
		d.NodeReason = because(CodePrimaryUnreachable, "read-only; primary %s is unreachable from here", primary)
		if d.Errant = obs.Memory.Errant; d.Errant != "" {
			d.NodeReason = because(CodeErrant, "read-only; primary %s is unreachable from here; still holding errant transactions %s", primary, d.Errant)
			return
		}
		// A receiver on a silent source notices only after the replica net timeout, and a
		// source that wakes up could have it acknowledge a commit meanwhile. One missed probe
		// proves little (this agent may have been the one paused); two in a row end it here,
		// before the leader's prepare has to, and cost nothing: nothing was coming in.
		if rep := obs.Local.Status.Replica; d.Memory.PrimaryMisses >= 2 && rep != nil && rep.IOState != "No" &&
			rep.SourceAddr() == r.Members[primary].MySQLAddr {
			d.Node, d.NodeReason = NodeStopReceiver, because(CodeStopReceiver, "read-only; primary %s missed %d probes from here in a row: "+
				"stopping the receiver, so nothing more of it is acknowledged while the leader may replace it", primary, d.Memory.PrimaryMisses)
		}
		return
	}
	errant, err := state.Errant(obs.Local.Status, obs.Primary.Status)
	if err != nil {
		d.NodeReason = because(CodeCompareFailed, "cannot compare GTIDs with primary %s: %v", primary, err)
		return
	}
	rep := obs.Local.Status.Replica
	d.Memory.Errant = ""
	if !errant.IsEmpty() {
		d.Errant = errant.String()
		d.Memory.Errant = d.Errant
		d.NodeReason = because(CodeErrant, "has transactions primary %s lacks (%s): fenced until rebuilt", primary, d.Errant)
		if rep != nil && (rep.IOState != "No" || rep.SQLRunning) {
			d.Node = NodeStopReplica
		}
		return
	}
	want := r.Members[primary].MySQLAddr
	switch {
	case rep == nil || rep.SourceAddr() != want:
		d.Node, d.NodeReason = NodeReplicate, because(CodeFollow, "following primary %s of epoch %d at %s", primary, r.Epoch, want)
	case rep.IOState == "No" || !rep.SQLRunning:
		// An applier error may mean diverged data: an operator looks. A receiver error is about
		// the link (a source that restarted mid-event, say) and fetching again by GTID is safe.
		if rep.LastSQLErrno != 0 {
			d.NodeReason = because(CodeApplierError, "replication from %s stopped with an applier error: %s", primary, rep.LastSQLError)
			return
		}
		// A candidate's IO thread is stopped on purpose during a failover; restart only towards
		// a primary that is serving.
		if obs.Primary.Status.Writable() {
			d.Node, d.NodeReason = NodeStartReplica, because(CodeRestartReplica, "replication threads from primary %s are stopped: starting them", primary)
			if rep.LastIOErrno != 0 {
				d.NodeReason.Text += " (the receiver stopped with: " + rep.LastIOError + ")"
			}
		} else {
			d.NodeReason = because(CodeReplicationPaused, "replication from %s paused while it is read-only", primary)
		}
	case p.SemiSyncAcks > 0 && !obs.Local.Status.SemiSync.ReplicaEnabled:
		// A restarted mysqld resumes replication by itself but with semi-sync off: it would
		// never acknowledge, and with too few acknowledging replicas the primary's commits wait.
		d.Node, d.NodeReason = NodeReplicate, because(CodeSemiSyncOff, "replicating from primary %s without acknowledging its commits "+
			"(semi-sync replica side off, as after a restart): configuring replication again", primary)
	default:
		d.NodeReason = because(CodeReplicaServing, "replicating from primary %s of epoch %d", primary, r.Epoch)
	}
}

func decideCluster(obs Observation, p Policy, d *Decision) {
	r := obs.Record
	if r.Cluster == "" {
		d.ClusterReason = because(CodeInitRecord, "initializing the record of cluster %q", obs.Cluster)
		d.Propose = &record.Command{Op: record.OpInit, Cluster: obs.Cluster, At: obs.Now}
		return
	}
	if cmd, why := memberUpdate(obs); cmd != nil {
		d.Propose, d.ClusterReason = cmd, why
		return
	}
	switch {
	case r.Switchover != nil:
		decideSwitchover(obs, p, d)
	case r.Primary == "":
		decideFirstPrimary(obs, p, d)
	default:
		decideFailover(obs, p, d)
		// A primary without acknowledging replicas cannot commit: re-seeding one is the way back.
		if c := d.ClusterReason.Code; c == CodePrimaryHealthy || c == CodePrimaryNoAcks {
			decideReseed(obs, p, d)
		}
	}
}

// memberUpdate records members whose gossiped addresses are new or changed, one per pass.
func memberUpdate(obs Observation) (*record.Command, Reason) {
	for _, id := range slices.Sorted(maps.Keys(obs.Peers)) {
		peer := obs.Peers[id]
		if !peer.Alive() || peer.Report.MySQLAddr == "" {
			continue
		}
		cur, known := obs.Record.Members[id]
		want := record.Member{ID: id, MySQLAddr: peer.Report.MySQLAddr, RaftAddr: peer.Report.RaftAddr,
			AdminAddr: peer.Report.AdminAddr, Voter: cur.Voter}
		if known && cur == want {
			continue
		}
		return &record.Command{Op: record.OpUpsertMember, Member: &want, At: obs.Now},
			because(CodeRecordMember, "recording member %s at %s", id, want.MySQLAddr)
	}
	return nil, Reason{}
}

// candidate is a member that could become primary, with what it has received.
type candidate struct {
	id       string
	received gtid.Set
	// stalled says why it cannot apply what it received; empty when it can.
	stalled string
	// startApplier: its applier is stopped without an error and is started before the promotion.
	startApplier bool
}

// applier tells whether a server can apply what it received: at once, after its stopped
// applier is started (start), or not at all (stalled says why). A server that cannot apply its
// relay log must not be promoted: it would open writes without transactions it acknowledged.
func applier(st state.Status) (start bool, stalled string) {
	rep := st.Replica
	switch {
	case rep == nil || rep.SQLRunning:
		return false, ""
	case rep.LastSQLErrno != 0:
		// The same error stops it again: an operator must repair or rebuild it.
		return false, fmt.Sprintf("its applier stopped with error %d (%s)", rep.LastSQLErrno, rep.LastSQLError)
	}
	if applied, err := st.Executed.Contains(rep.Received); err == nil && applied {
		return false, "" // nothing left to apply
	}
	if st.Flavor == gtid.MariaDB && rep.IOState == "No" {
		// MariaDB with GTID purges the relay log when a thread starts while both are stopped
		// (mysqlctl.ErrRelayLogAtRisk): starting the applier would lose what it is meant to apply.
		return false, "its applier and receiver are both stopped, and on MariaDB starting the applier would discard its relay log"
	}
	return true, ""
}

// unappliedError: some transactions were received only by candidates that cannot apply them.
type unappliedError struct {
	lacking string
	members []string
	why     []string
}

func (e *unappliedError) Error() string {
	return fmt.Sprintf("transactions %s were received only by members that cannot apply them (%s): promoting a candidate that lacks "+
		"them would lose acknowledged writes; an operator must repair or rebuild %s", e.lacking, strings.Join(e.why, "; "), strings.Join(e.members, ", "))
}

// unacknowledgedOwn finds the members holding errant transactions that their own agents have not
// found yet: a deposed primary back from a partition while its successor is out of its reach
// never compared itself with it, and still holds the commits that no replica acknowledged. Such
// a member receives nothing, holds transactions it wrote itself that no other member in view
// (exclude aside) received, and lacks transactions others received. Under lossless semi-sync a
// commit is acknowledged only once another member received it, and every promotion since took a
// candidate holding what all others received, so those transactions were never acknowledged;
// what it lacks came after it was deposed. Its agent would find them errant against the
// primary; seen as a candidate, it blocked every failover as diverged. A member whose receiver
// runs is left out: what it receives next could change both sets.
//
// It returns them by member, or nothing when setting those members aside would leave a new
// primary too few replicas to acknowledge its commits (ha.semi_sync_acks): with three members,
// the old primary's return is then the quicker way back to writes, and it keeps the failover
// blocked until then, as before.
func unacknowledgedOwn(obs Observation, p Policy, exclude string) map[string]gtid.Set {
	var inView []string
	for _, id := range obs.Record.MemberIDs() {
		if id != exclude && obs.Servers[id].Up && !obs.Peers[id].Report.Errant {
			inView = append(inView, id)
		}
	}
	stray := map[string]gtid.Set{}
	for _, id := range inView {
		st := obs.Servers[id].Status
		if st.Replica != nil && st.Replica.IOState != "No" {
			continue
		}
		var others gtid.Set
		for _, o := range inView {
			if o != id {
				others, _ = others.Union(obs.Servers[o].Status.Received())
			}
		}
		// A comparison across flavors fails and leaves the sets empty: nobody is flagged.
		lone, _ := st.Received().Originated(st.ServerUUID, st.ServerID).Subtract(others)
		lacks, _ := others.Subtract(st.Received())
		if !lone.IsEmpty() && !lacks.IsEmpty() {
			stray[id] = lone
		}
	}
	fit := 0
	for _, id := range inView {
		peer := obs.Peers[id]
		if _, out := stray[id]; !out && peer.Alive() && !peer.Report.Draining && !peer.Report.Reseeding {
			fit++
		}
	}
	if fit-1 < p.SemiSyncAcks {
		return nil
	}
	return stray
}

// candidates lists the members fit to be promoted (never exclude), and why the others are not;
// stray is unacknowledgedOwn's answer for the same exclude.
func candidates(obs Observation, stray map[string]gtid.Set, exclude string) ([]candidate, []string) {
	var fit []candidate
	var unfit []string
	for _, id := range obs.Record.MemberIDs() {
		if id == exclude {
			continue
		}
		srv, peer := obs.Servers[id], obs.Peers[id]
		switch {
		case !srv.Up:
			unfit = append(unfit, id+": MySQL unreachable")
		case !peer.Alive():
			unfit = append(unfit, id+": agent not alive")
		case peer.Report.Errant:
			unfit = append(unfit, id+": errant GTIDs")
		case !stray[id].IsEmpty():
			unfit = append(unfit, fmt.Sprintf("%s: errant GTIDs %s (its own, received by no other member, while it lacks what the others received)", id, stray[id]))
		case peer.Report.Draining:
			unfit = append(unfit, id+": shutting down")
		case peer.Report.Reseeding:
			// Its data is about to be replaced: promoted, it would lose what it holds.
			unfit = append(unfit, id+": being re-seeded")
		default:
			start, stalled := applier(srv.Status)
			fit = append(fit, candidate{id: id, received: srv.Status.Received(), stalled: stalled, startApplier: start})
		}
	}
	// This leader's own member last, so that of equals another wins: a leader beside the primary
	// goes down with its host, and the failover then waits for an election and a whole lease
	// counted from it.
	if i := slices.IndexFunc(fit, func(c candidate) bool { return c.id == obs.Self }); i >= 0 {
		fit = append(append(fit[:i:i], fit[i+1:]...), fit[i])
	}
	return fit, unfit
}

// best picks a candidate that received everything any candidate received, or promoting it would
// strand transactions elsewhere; it must be able to apply them. Of several (their received sets
// are then equal) it prefers one whose applier runs, then one other than this leader's own
// member, then the lowest id (stable order). When only
// candidates that cannot apply hold some transactions, it refuses with an *unappliedError.
func best(cs []candidate) (candidate, error) {
	top := cs[0]
	for _, c := range cs[1:] {
		cmp, err := gtid.MoreAdvanced(c.received, top.received)
		if err != nil {
			return candidate{}, err
		}
		if cmp > 0 {
			top = c
		}
	}
	for _, c := range cs {
		ok, err := top.received.Contains(c.received)
		if err != nil {
			return candidate{}, err
		}
		if !ok {
			return candidate{}, fmt.Errorf("%s received transactions %s lacks: the replicas diverged", c.id, top.id)
		}
	}
	// The sets compared above, so these comparisons cannot fail.
	var pick *candidate
	unapplied := &unappliedError{}
	lacking := top.received
	for i, c := range cs {
		if c.stalled == "" {
			lacking, _ = lacking.Subtract(c.received)
		}
		if holds, _ := c.received.Contains(top.received); !holds {
			continue
		}
		switch {
		case c.stalled != "":
			unapplied.members = append(unapplied.members, c.id)
			unapplied.why = append(unapplied.why, c.id+": "+c.stalled)
		case pick == nil || pick.startApplier && !c.startApplier:
			pick = &cs[i]
		}
	}
	if pick == nil {
		unapplied.lacking = lacking.String()
		return candidate{}, unapplied
	}
	return *pick, nil
}

// maxRecoveryAttempts is how many recoveries from one member's logs the leader tries in an
// epoch before it reports the failover blocked: a new leader, or a repaired member, tries again.
const maxRecoveryAttempts = 3

// planRecovery is for when only candidates that cannot apply them received some transactions
// (best's *unappliedError): it picks the candidate that received the most of those that can
// apply, and a stalled one that received everything to copy the rest from (Decision.
// PrepareRecover). Every candidate's agent is alive and its MySQL up, so the holder can serve
// its logs. It returns a nil *Recover when no candidate can apply.
func planRecovery(cs []candidate) (candidate, *Recover) {
	// best compared every set already: the comparisons below cannot fail.
	var all gtid.Set
	for _, c := range cs {
		all, _ = all.Union(c.received)
	}
	var pick, holder *candidate
	for i, c := range cs {
		if c.stalled != "" {
			if has, _ := c.received.Contains(all); has && holder == nil {
				holder = &cs[i]
			}
			continue
		}
		if pick == nil {
			pick = &cs[i]
			continue
		}
		if cmp, _ := gtid.MoreAdvanced(c.received, pick.received); cmp > 0 || cmp == 0 && pick.startApplier && !c.startApplier {
			pick = &cs[i]
		}
	}
	if pick == nil || holder == nil {
		return candidate{}, nil
	}
	lacking, _ := holder.received.Subtract(pick.received)
	return *pick, &Recover{From: holder.id, GTIDs: lacking}
}

// stallOf is why candidate id cannot apply what it received.
func stallOf(cs []candidate, id string) string {
	for _, c := range cs {
		if c.id == id {
			return c.stalled
		}
	}
	return ""
}

// prepare readies c for promotion.
func (d *Decision) prepare(c candidate) {
	d.Prepare = c.id
	d.PrepareStartApplier = c.startApplier
}

func decideFirstPrimary(obs Observation, p Policy, d *Decision) {
	r := obs.Record
	cs, unfit := candidates(obs, unacknowledgedOwn(obs, p, ""), "")
	if len(cs)*2 <= len(r.Members) {
		d.ClusterReason = because(CodeFirstPrimaryWait, "no primary yet; waiting for a majority of members to be healthy (%s)", strings.Join(unfit, ", "))
		return
	}
	top, err := best(cs)
	if err != nil {
		d.ClusterReason = because(CodeFirstPrimaryBlocked, "no primary yet and cannot choose one: %v", err)
		return
	}
	d.ClusterReason = because(CodeFirstPrimary, "electing %s as the first primary: it has the most transactions of %d healthy members", top.id, len(cs))
	d.prepare(top)
	d.Propose = &record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: top.id, At: obs.Now, Reason: d.ClusterReason.Text}
}

// primaryDown tells whether the recorded primary is down, holistically: the leader's own probe
// fails and either the primary's agent says its MySQL is down or most members agree (their
// receivers or their agents' own probes lost it too). One observer's trouble alone never fails
// over a serving primary.
func primaryDown(obs Observation) (bool, string) {
	r := obs.Record
	primary := r.Primary
	probe := obs.Servers[primary]
	if probe.Up {
		return false, ""
	}
	if pp := obs.Peers[primary]; pp.Alive() && !pp.Report.MySQLUp {
		return true, fmt.Sprintf("its agent reports MySQL down and the leader's probe fails (%s)", probe.Err)
	}
	voters, agree := 0, 0
	for _, id := range r.MemberIDs() {
		if id == primary {
			continue
		}
		peer := obs.Peers[id]
		if id == obs.Self {
			// The leader's vote is its probe of this pass, which failed, not its last
			// gossiped report, which may not even have left yet.
			voters++
			agree++
			continue
		}
		if !peer.Alive() {
			continue
		}
		voters++
		if peer.Report.VotesDown(primary, r.Epoch) {
			agree++
		}
	}
	if voters == 0 || agree*2 <= voters {
		return false, ""
	}
	return true, fmt.Sprintf("the leader's probe fails (%s) and %d of %d members lost it too (replication or their own probe)", probe.Err, agree, voters)
}

func decideFailover(obs Observation, p Policy, d *Decision) {
	r := obs.Record
	primary := r.Primary
	released := obs.Grant.Epoch == r.Epoch && obs.Grant.Released
	revoked := obs.Grant.Epoch == r.Epoch && obs.Grant.Revoked
	pp := obs.Peers[primary]
	reports := pp.Alive() && pp.Report.Epoch == r.Epoch
	// Once the leader acted on a stall it goes on: the fence kills the stalled sessions, and the
	// server then looks healthy without having shown that it can commit.
	stalled := d.Memory.StallEpoch == r.Epoch || reports && pp.Report.CommitStall == health.StallCommit
	if ((released && !obs.Grant.Draining) || revoked) && !stalled && obs.Servers[primary].Up && pp.Alive() && pp.Report.MySQLUp && !pp.Report.Draining && !pp.Report.Errant {
		// Its agent gave the lease up (its MySQL went away), or the leader revoked it (judged it
		// down), and the server is back: such a lease is never renewed, so the way back to
		// serving is a new epoch naming it again.
		d.ClusterReason = because(CodeReelect, "re-electing %s in a new epoch: its lease of epoch %d ended early and it is healthy again", primary, r.Epoch)
		d.Propose = &record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: primary, At: obs.Now, Reason: d.ClusterReason.Text}
		return
	}
	down, why := primaryDown(obs)
	if released {
		// The primary's own agent said it stopped serving: no need to confirm for the detection timeout.
		down, why = true, "its agent released the primary lease"
		d.Memory.PrimaryDownSince, d.Memory.DownEpoch = obs.Now.Add(-p.DetectionTimeout), r.Epoch
	}
	if stalled && !down {
		// Nothing is revoked while no one could serve instead: the stall may end by itself.
		if cs, unfit := candidates(obs, unacknowledgedOwn(obs, p, primary), primary); d.Memory.StallEpoch != r.Epoch && len(cs) == 0 {
			d.Memory.PrimaryDownSince, d.Memory.DownEpoch = time.Time{}, 0
			d.ClusterReason = because(CodeStallNoCandidate, "primary %s reports its commit path stalled but no replica can take over: %s", primary, strings.Join(unfit, ", "))
			return
		}
		// Its own agent timed the stall for ha.commit_stall_timeout: no detection wait on top.
		down, why = true, "its agent reports a heartbeat commit waiting past ha.commit_stall_timeout"
		d.Memory.PrimaryDownSince, d.Memory.DownEpoch = obs.Now.Add(-p.DetectionTimeout), r.Epoch
	}
	if !down {
		d.Memory.PrimaryDownSince, d.Memory.DownEpoch = time.Time{}, 0
		if reports && pp.Report.CommitStall == health.StallNoAck {
			d.ClusterReason = because(CodePrimaryNoAcks, "primary %s of epoch %d waits for semi-sync acks too few replicas are connected to give: "+
				"no failover, a new primary would wait the same way", primary, r.Epoch)
			return
		}
		d.ClusterReason = because(CodePrimaryHealthy, "primary %s of epoch %d is healthy", primary, r.Epoch)
		return
	}
	if d.Memory.DownEpoch != r.Epoch || d.Memory.PrimaryDownSince.IsZero() {
		d.Memory.PrimaryDownSince, d.Memory.DownEpoch = obs.Now, r.Epoch
	}
	downFor := obs.Now.Sub(d.Memory.PrimaryDownSince)
	draining := (released && obs.Grant.Draining) || (pp.Alive() && pp.Report.Draining)
	switch {
	case downFor < p.DetectionTimeout:
		d.ClusterReason = because(CodePrimarySuspect, "primary %s looks down for %s (%s); confirming for ha.detection_timeout", primary, downFor.Round(time.Millisecond), why)
		return
	// A draining primary hands over even while paused: it has fenced itself already.
	case r.Paused && !draining:
		d.ClusterReason = because(CodeFailoverPaused, "primary %s is down (%s) but automatic failover is paused", primary, why)
		return
	case !draining && !r.LastFailover.IsZero() && obs.Now.Sub(r.LastFailover) < p.FailoverCooldown:
		d.ClusterReason = because(CodeFailoverCooldown, "primary %s is down but the last failover was %s ago, within ha.failover_cooldown", primary,
			obs.Now.Sub(r.LastFailover).Round(time.Second))
		return
	}
	d.RevokeLease = true
	if stalled {
		d.Memory.StallEpoch = r.Epoch
	}
	if wait := leaseWait(obs, p); wait > 0 {
		d.ClusterReason = because(CodeFailoverLeaseWait, "primary %s is down (%s); its lease may still run for %s", primary, why, wait.Round(time.Millisecond))
		return
	}
	// A failover that cannot go on forgets the stall: the old primary may then be re-elected
	// rather than leave the cluster without one (spin found that cut-off; a stall that goes on
	// is seen again once it serves).
	blocked := func(code Code, format string, args ...any) {
		if d.Memory.StallEpoch == r.Epoch {
			d.Memory.StallEpoch = 0
		}
		d.ClusterReason = because(code, format, args...)
	}
	stray := unacknowledgedOwn(obs, p, primary)
	cs, unfit := candidates(obs, stray, primary)
	if len(cs) == 0 {
		blocked(CodeFailoverNoCandidate, "primary %s is down (%s) but no replica can take over: %s", primary, why, strings.Join(unfit, ", "))
		return
	}
	top, err := best(cs)
	var recovery *Recover
	if unapplied := (*unappliedError)(nil); errors.As(err, &unapplied) {
		top, recovery = planRecovery(cs)
		f := obs.RecoveryFailed
		switch {
		case recovery == nil:
			blocked(CodeFailoverBlockedUnapplied, "primary %s is down but %s", primary, err)
			return
		case f.Epoch == r.Epoch && f.From == recovery.From && f.Count >= maxRecoveryAttempts:
			// Each attempt holds the leader's loop for up to a prepare: say it cannot be done.
			blocked(CodeFailoverBlockedUnapplied, "primary %s is down but %s; recovering them from the logs of %s failed %d times (last: %s)",
				primary, err, f.From, f.Count, f.Err)
			return
		}
		err = nil
	}
	if err != nil {
		blocked(CodeFailoverBlocked, "primary %s is down but no safe candidate: %s", primary, err)
		return
	}
	srv := obs.Servers[primary]
	if srv.Up && srv.Status.Writable() {
		// Still reachable and writable (a released lease, a shutdown, a stall): fence it first.
		d.FenceMember = primary
		d.ClusterReason = because(CodeFailoverFence, "fencing %s before promoting %s (%s)", primary, top.id, why)
		return
	}
	if !srv.Up || stalled {
		// Out of reach, it may still be writable; stalled, what it executed may never have reached
		// a replica (MariaDB counts a commit that failed to write to a full binlog disk in its
		// GTID state), and waiting for it would never end. Either way an acknowledged write is on
		// SemiSyncAcks of the replicas, so enough of them must be in view for one to hold it, and
		// the candidate must contain what every one in view received.
		inView, missing := replicasInView(obs, stray, primary)
		if p.SemiSyncAcks > 0 && missing > p.SemiSyncAcks-1 {
			blocked(CodeFailoverBlocked, "primary %s is down but %d replicas are out of view: an acknowledged write may be only there", primary, missing)
			return
		}
		has := top.received
		if recovery != nil {
			has, _ = has.Union(recovery.GTIDs) // one flavor: the sets compared in best
		}
		for _, id := range inView {
			ok, err := has.Contains(obs.Servers[id].Status.Received())
			if err != nil || !ok {
				blocked(CodeFailoverBlocked, "primary %s is down but %s received transactions candidate %s lacks", primary, id, top.id)
				return
			}
		}
		d.Quarantine = inView
	} else {
		// Reachable and fenced (a released lease, a shutdown): the candidate applies everything
		// it executed, so nothing it acknowledged is left behind.
		executed := srv.Status.Executed
		d.PrepareWaitFor = &executed
	}
	d.ClusterReason = because(CodeFailover, "promoting %s: primary %s is down (%s) and %s received the most transactions", top.id, primary, why, top.id)
	if recovery != nil {
		d.ClusterReason = because(CodeFailoverRecover, "primary %s is down (%s) and transactions %s were received only by %s, which cannot apply them (%s): "+
			"recovering them from its binlog and relay log onto %s, the candidate that received the most of the rest, then promoting it",
			primary, why, recovery.GTIDs, recovery.From, stallOf(cs, recovery.From), top.id)
	}
	if top.startApplier {
		d.ClusterReason.Text += "; its stopped applier is started first"
	}
	d.prepare(top)
	d.PrepareRecover = recovery
	d.Propose = &record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: top.id, At: obs.Now, Reason: d.ClusterReason.Text,
		Failover: !draining}
}

// replicasInView lists the members other than primary whose MySQL the leader reaches and that
// are not errant (by their agents or by unacknowledgedOwn), and counts the replicas it does not
// reach; stray is unacknowledgedOwn's answer for primary.
func replicasInView(obs Observation, stray map[string]gtid.Set, primary string) (inView []string, missing int) {
	for _, id := range obs.Record.MemberIDs() {
		switch {
		case id == primary:
		case !obs.Servers[id].Up:
			missing++
		case !obs.Peers[id].Report.Errant && stray[id].IsEmpty():
			inView = append(inView, id)
		}
	}
	return inView, missing
}

// leaseWait is how long the old primary's lease may still be valid. A lease its agent released
// for this epoch is over at once.
func leaseWait(obs Observation, p Policy) time.Duration {
	g := obs.Grant
	if g.Epoch == obs.Record.Epoch && g.Released {
		return 0
	}
	return g.LastGrant.Add(p.PromotionWait()).Sub(obs.Now)
}

func decideSwitchover(obs Observation, p Policy, d *Decision) {
	r := obs.Record
	old := r.Primary
	cs, unfit := candidates(obs, unacknowledgedOwn(obs, p, old), old)
	var target *candidate
	for i := range cs {
		if r.Switchover.To == "" || cs[i].id == r.Switchover.To {
			target = &cs[i]
			break
		}
	}
	cancel := func(why Reason) {
		d.ClusterReason = why
		d.Propose = &record.Command{Op: record.OpClearSwitchover, At: obs.Now, Reason: why.Text}
	}
	switch {
	case target == nil:
		cancel(because(CodeSwitchoverCancel, "switchover impossible, no fit target (%s): cancelling it", strings.Join(unfit, ", ")))
		return
	case target.stalled != "":
		cancel(because(CodeSwitchoverCancel, "switchover to %s impossible, %s: cancelling it", target.id, target.stalled))
		return
	case r.Switchover.To == "":
		top, err := best(cs)
		if err != nil {
			cancel(because(CodeSwitchoverCancel, "switchover impossible: %v", err))
			return
		}
		target = &top
	}
	if old == "" {
		d.prepare(*target)
		d.ClusterReason = because(CodeSwitchover, "switchover to %s: no current primary, promoting it", target.id)
		d.Propose = &record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: target.id, At: obs.Now, Reason: d.ClusterReason.Text}
		return
	}
	oldSrv := obs.Servers[old]
	if oldSrv.Up && oldSrv.Status.Writable() {
		d.FenceMember = old
		d.ClusterReason = because(CodeSwitchoverFence, "switchover to %s: fencing %s", target.id, old)
		return
	}
	if wait := leaseWait(obs, p); wait > 0 {
		d.ClusterReason = because(CodeSwitchoverLeaseWait, "switchover to %s: %s is read-only, waiting for its agent to release the lease (at most %s)",
			target.id, old, wait.Round(time.Millisecond))
		return
	}
	d.ClusterReason = because(CodeSwitchover, "switchover from %s to %s", old, target.id)
	d.prepare(*target)
	if oldSrv.Up {
		executed := oldSrv.Status.Executed
		d.PrepareWaitFor = &executed
	}
	d.Propose = &record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: target.id, At: obs.Now, Reason: d.ClusterReason.Text}
}
