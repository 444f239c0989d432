package ha

import "fmt"

// Code names a decision's reason for machines: metrics labels, Kubernetes Events, alerts and
// tests. It stays stable when the sentence beside it is reworded.
type Code string

// Node codes: what an agent decided about its own server.
const (
	// The local MySQL does not answer.
	CodeLocalUnreachable Code = "local_unreachable"
	CodeLeaseReleased    Code = "lease_released"     // it is certainly not running: the lease goes
	CodeLeaseKeptStalled Code = "lease_kept_stalled" // it may be frozen: the lease is renewed while a stall may be shorter than detection
	CodeLeaseWithheld    Code = "lease_withheld"     // it may be frozen: the lease is left to run out by the time it can be judged down
	CodeKillFrozen       Code = "kill_frozen"        // frozen while writable past the lease

	CodeNoPrimaryFence Code = "no_primary_fence" // no primary recorded but writable
	CodeAwaitPrimary   Code = "await_primary"    // read-only, no primary recorded yet

	CodePrimaryStepDown Code = "primary_step_down" // draining or a switchover is pending
	CodePrimaryNoLease  Code = "primary_no_lease"  // fenced, or waiting, until a lease is granted
	CodePrimaryOpen     Code = "primary_open"      // opening writes under a lease
	CodePrimaryServing  Code = "primary_serving"
	CodePrimaryLending  Code = "primary_lending" // read-only while a member copies it, with no replica to acknowledge
	// A heartbeat commit waited ha.commit_stall_timeout: the commit path is stalled (a global
	// read lock, a full binlog disk), or, with too few semi-sync replicas connected, waits for
	// acks that failing over cannot bring.
	CodeCommitStalled    Code = "commit_stalled"
	CodeCommitStallNoAck Code = "commit_stall_no_ack"
	// A heartbeat commit waited ha.commit_stall_timeout behind a commit path that still moves (a
	// big transaction written to the binlog, streaming to the replicas): slow, not stalled.
	CodeCommitMoving Code = "commit_moving"

	CodeReplicaWritable    Code = "replica_writable" // writable but not the primary: fenced
	CodePrimaryUnreachable Code = "primary_unreachable"
	CodeStopReceiver       Code = "stop_receiver"  // the primary stopped answering: receive no more of it
	CodeCompareFailed      Code = "compare_failed" // GTID sets could not be compared
	CodeErrant             Code = "errant"
	CodeFollow             Code = "follow"          // (re)pointing replication at the primary
	CodeApplierError       Code = "applier_error"   // the applier stopped on an error: an operator looks
	CodeRestartReplica     Code = "restart_replica" // stopped threads towards a serving primary
	CodeReplicationPaused  Code = "replication_paused"
	CodeSemiSyncOff        Code = "semi_sync_off" // replicating without acknowledging
	CodeReplicaServing     Code = "replica_serving"
	// The agent is re-seeding its server from a donor: the server is left to the copy.
	CodeReseeding Code = "reseeding"
)

// Cluster codes: what the Raft leader decided for the cluster.
const (
	CodeHandLeadership   Code = "hand_leadership"    // the leader's own MySQL is gone
	CodeLeaderOffPrimary Code = "leader_off_primary" // the leader is the primary's agent: it hands leadership away
	CodeInitRecord       Code = "init_record"
	CodeRecordMember     Code = "record_member"

	CodeFirstPrimaryWait    Code = "first_primary_wait" // too few healthy members
	CodeFirstPrimaryBlocked Code = "first_primary_blocked"
	CodeFirstPrimary        Code = "first_primary"

	CodePrimaryHealthy Code = "primary_healthy"
	// The primary's agent reports its commits waiting for semi-sync acks no replica gives: no
	// failover, since a new primary would wait the same way and lose the lossless promise.
	CodePrimaryNoAcks Code = "primary_no_acks"
	// The primary's commit path is stalled but no member could take over: nothing is revoked.
	CodeStallNoCandidate    Code = "stall_no_candidate"
	CodeReelect             Code = "reelect" // a healthy primary whose lease ended early, in a new epoch
	CodePrimarySuspect      Code = "primary_suspect"
	CodeFailoverPaused      Code = "failover_paused"
	CodeFailoverCooldown    Code = "failover_cooldown"
	CodeFailoverLeaseWait   Code = "failover_lease_wait"
	CodeFailoverNoCandidate Code = "failover_no_candidate"
	CodeFailoverBlocked     Code = "failover_blocked" // candidates exist but promoting one could lose writes
	// Some transactions are held only by members that cannot apply them (an applier error): an
	// operator must repair or rebuild those members.
	CodeFailoverBlockedUnapplied Code = "failover_blocked_unapplied"
	// Those transactions are copied from such a member's logs onto the candidate before it is
	// promoted (Decision.PrepareRecover).
	CodeFailoverRecover Code = "failover_recover"
	CodeFailoverFence   Code = "failover_fence" // fencing the reachable old primary first
	CodeFailover        Code = "failover"

	CodeSwitchoverCancel    Code = "switchover_cancel"
	CodeSwitchoverFence     Code = "switchover_fence"
	CodeSwitchoverLeaseWait Code = "switchover_lease_wait"
	CodeSwitchover          Code = "switchover"

	// Re-seeding a member from a donor: one holding no transactions (an empty data dir), or with
	// ha.rebuild_errant one holding errant transactions; none when no member may donate.
	CodeReseedBlank   Code = "reseed_blank"
	CodeReseedErrant  Code = "reseed_errant"
	CodeReseedNoDonor Code = "reseed_no_donor"
	// CodeReseedBackup: re-seeding a member from the newest backup (backup.reseed_from_backup).
	CodeReseedBackup Code = "reseed_backup"
)

// Reason is why a decision was taken: a stable code and one sentence for people.
type Reason struct {
	Code Code
	Text string
}

func because(code Code, format string, args ...any) Reason {
	return Reason{Code: code, Text: fmt.Sprintf(format, args...)}
}

// String is the sentence.
func (r Reason) String() string { return r.Text }
