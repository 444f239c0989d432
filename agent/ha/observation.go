package ha

import (
	"time"

	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/membership"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

// Observation is everything one agent knows at one instant. The agent gathers it (all the I/O);
// Decide only reads it.
type Observation struct {
	Now  time.Time
	Self string
	// Cluster is the configured cluster name, for the record's first command.
	Cluster string
	// Record is the committed cluster record as this agent has applied it.
	Record record.Record
	// Leader is true when this agent is the Raft leader and has passed a Barrier since winning,
	// so its Record is up to date and its proposals can commit.
	Leader bool
	// Local is this agent's own MySQL server.
	Local Server
	// Primary is the recorded primary's server as this agent sees it (nil when there is none or it
	// is this agent's own): replicas compare GTIDs against it before following it.
	Primary *Server
	// Peers is the gossip view of the other members, by member id.
	Peers map[string]Peer
	// Servers are the leader's own probes of the members' MySQL, by member id (leader only).
	Servers map[string]Server
	// CommitWaitingSince is when the oldest heartbeat write on the local server that has not
	// returned began (the primary's agent writes one at a time); zero when none waits.
	CommitWaitingSince time.Time
	// BinlogWritten is how far the local server's binlog is written on disk ("file:size" of the
	// newest file), read while a heartbeat waits; "" when unknown. With the replicas' reads of it
	// (Peer.Report.SourceRead) it shows a commit path that moves while one commit takes long.
	BinlogWritten string
	// LeaseUntil is when this agent's primary lease ends (its own clock); zero when it holds none.
	LeaseUntil time.Time
	// Grant is the leader's record of the lease it granted the current primary (leader only).
	Grant LeaseGrant
	// RecoveryFailed counts the leader's failed recoveries from a member's logs
	// (Decision.PrepareRecover) in one epoch (leader only).
	RecoveryFailed RecoveryFailures
	// Draining is set while the agent shuts down: it gives its role away and takes none.
	Draining bool
	// Reseeding is set while this agent replaces its server's data with a donor's copy;
	// ReseedFrom names that donor ("" for a backup).
	Reseeding  bool
	ReseedFrom string
	// Memory is what the previous Decision asked to remember.
	Memory Memory
	// Raft is this node's view of the Raft configuration.
	Raft Raft
}

// RecoveryFailures counts the failed attempts, in one epoch, to recover transactions from the
// logs of member From, with the last one's error.
type RecoveryFailures struct {
	Epoch uint64
	From  string
	Count int
	Err   string
}

// Raft is what the membership decisions read: whether this node has Raft state, the members
// gossip shows as Raft candidates (this agent included), and the leader's configuration.
type Raft struct {
	HasState bool
	Seen     []membership.Candidate
	// Configuration is the Raft configuration as the leader has it (leader only).
	Configuration []membership.Server
}

// Server is what a probe of one MySQL server found.
type Server struct {
	Up  bool
	Err string
	// Gone is set when the server is certainly not running (connection refused, no socket), as
	// opposed to not answering: a frozen or overloaded server may still take writes later.
	Gone bool
	// Stalled is set when the server did not answer within the probe's time: frozen or hung,
	// as opposed to a connection that failed at once (a fence kills the agent's own
	// connections too, and the next probe reconnects).
	Stalled bool
	// Pending is set when the probe had not answered when the pass went on, after an earlier
	// probe of the same server failed: it still looks down, but that is no new evidence.
	Pending bool
	Status  state.Status
}

// PeerState is a member's gossip state.
type PeerState string

const (
	PeerAlive   PeerState = "alive"
	PeerSuspect PeerState = "suspect"
	PeerDead    PeerState = "dead"
	PeerLeft    PeerState = "left"
)

// Peer is one other member as gossip shows it.
type Peer struct {
	State  PeerState
	Report health.Report
	// ReportErr is set when the peer's report could not be read; its Report is then zero.
	ReportErr string
}

// Alive reports whether the peer's agent is reachable by gossip with a readable report.
func (p Peer) Alive() bool { return p.State == PeerAlive && p.ReportErr == "" }

// LeaseGrant is the leader's side of the primary lease: the lease it last granted, per epoch.
type LeaseGrant struct {
	Epoch uint64
	// LastGrant is when the leader last confirmed its majority for the primary's renewal (leader
	// clock). A new leader sets it to the moment it took over, since an older leader may have
	// granted just before.
	LastGrant time.Time
	// Released is set when the primary's agent gave up its lease for Epoch (it fenced itself);
	// the leader refuses to renew a released lease, so it need not wait for it to run out.
	Released bool
	// Draining is set with Released when the primary's agent gave the lease up to shut down:
	// the primary must be replaced, not re-elected.
	Draining bool
	// Revoked is set once the leader judged the primary of Epoch down: it renews the lease no
	// more, so a primary that comes back can serve again only in a new epoch.
	Revoked bool
}

// Memory carries state between passes that only the decision itself needs.
type Memory struct {
	// PrimaryDownSince is when the leader first judged the primary of DownEpoch down.
	PrimaryDownSince time.Time
	DownEpoch        uint64
	// LocalDownSince is when this agent's own MySQL became unreachable; zero while it answers.
	LocalDownSince time.Time
	// Errant is the errant set last found on the local server. It stays reported while the
	// primary cannot be reached to compare again: being errant is a property of the data, and
	// an errant server offered as a candidate would block every failover.
	Errant string
	// LocalWritable is whether the local server was writable when it last answered.
	LocalWritable bool
	// LocalStalls counts the passes in a row in which the local server did not answer in time.
	// One alone proves nothing: the agent itself may have been frozen while the probe's
	// deadline passed.
	LocalStalls int
	// StallEpoch is the epoch whose primary the leader judged stalled (its commit path, with
	// acks available): the failover it began goes on although the fence, which kills the stalled
	// sessions, makes the primary look healthy again.
	StallEpoch uint64
	// CommitBinlog and CommitReads are what the previous pass saw of the local primary's commit
	// path while a heartbeat waited: its binlog on disk (Observation.BinlogWritten) and each
	// replica's read of it (one "member\tfile:position" line each, sorted: Memory stays
	// comparable); CommitMovedAt is when either last moved during that wait: the stall clock
	// starts again there.
	CommitBinlog  string
	CommitReads   string
	CommitMovedAt time.Time
	// PrimaryMisses counts the passes in a row in which this replica's probe of the recorded
	// primary failed.
	PrimaryMisses int
	// ReseedAt is when the leader last asked a member to re-seed; it asks again (another member,
	// or the same after a failure) only reseedRetry (15s) later.
	ReseedAt time.Time
}
