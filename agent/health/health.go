// Package health is the small report each agent gossips about itself and its MySQL server. It is
// carried in memberlist node metadata, which is limited to 512 bytes, so it holds flags and
// numbers only; GTID sets are read directly from the servers by the leader when it decides.
package health

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxEncodedSize is memberlist's limit on node metadata.
const MaxEncodedSize = 512

// Version is the report format this agent writes. Readers accept it and older ones.
const Version = 1

// ErrBadReport: a peer's report could not be read (too large, malformed, or from a newer agent).
var ErrBadReport = errors.New("bad health report")

// Role is what the agent believes its server is.
type Role string

const (
	RolePrimary Role = "primary"
	RoleReplica Role = "replica"
	// RoleFenced: read-only and not replicating, e.g. waiting to rejoin or errant.
	RoleFenced Role = "fenced"
	// RoleUnknown: the agent cannot reach its server.
	RoleUnknown Role = "unknown"
)

// CommitStall says whether a primary's heartbeat commit has waited ha.commit_stall_timeout.
type CommitStall string

const (
	// StallCommit: the commit path is stalled with enough semi-sync replicas connected (a global
	// read lock, a full binlog disk): another primary would serve.
	StallCommit CommitStall = "stalled"
	// StallNoAck: commits wait for semi-sync acks and too few replicas are connected to give
	// them: another primary would wait the same way.
	StallNoAck CommitStall = "no_ack"
)

// Report is one agent's view of itself. Keys are short because they travel in every gossip message.
type Report struct {
	V int `json:"v"`
	// Epoch is the committed record epoch the agent acts in.
	Epoch uint64 `json:"e"`
	// MySQLUp: the agent's last probe of its server succeeded.
	MySQLUp  bool `json:"up"`
	Writable bool `json:"w,omitempty"`
	Role     Role `json:"r"`
	// Source is the member id the server replicates from.
	Source string `json:"src,omitempty"`
	// IOConnected: the replica's IO thread is connected to Source: a vote that Source is alive.
	IOConnected bool `json:"io,omitempty"`
	// PrimaryUnreachable: the agent's own probe of the primary of Epoch failed in its last pass.
	// A receiver notices a silent source only after its network timeout; the probe, seconds
	// earlier.
	PrimaryUnreachable bool `json:"pu,omitempty"`
	SQLRunning         bool `json:"sql,omitempty"`
	// LagMillis is the replica's lag; -1 when unknown.
	LagMillis int64 `json:"lag"`
	// SourceRead is how far the replica's receiver has read Source's binlog ("file:position"):
	// while it moves, the primary's commits are on their way to an ack, however long one takes.
	SourceRead string `json:"sr,omitempty"`
	// CommitStall: the agent's heartbeat commit has waited ha.commit_stall_timeout (primary only).
	CommitStall CommitStall `json:"cs,omitempty"`
	// Errant: the server has transactions the primary lacks and is fenced until rebuilt.
	Errant bool `json:"err,omitempty"`
	// Draining: the agent is shutting down and wants no role.
	Draining bool `json:"drain,omitempty"`
	// Reseeding: the agent is replacing its server's data with a donor's copy; it can be no
	// candidate and no donor until done. ReseedFrom names the donor ("" for a backup): a
	// primary lending its data stays read-only while it copies (ha: lending).
	Reseeding  bool   `json:"rs,omitempty"`
	ReseedFrom string `json:"rf,omitempty"`
	// Bootstrapped: the agent has Raft state, so a cluster exists and nobody bootstraps another.
	Bootstrapped bool `json:"bs,omitempty"`
	// Where the member can be reached, so the leader can record and probe it.
	MySQLAddr string `json:"my,omitempty"`
	RaftAddr  string `json:"ra,omitempty"`
	AdminAddr string `json:"ad,omitempty"`
	// XPort is the server's X Protocol port; 0 when it has none (MariaDB) or it is off.
	XPort uint16 `json:"xp,omitempty"`
}

// Encode returns the report's wire form, refusing reports over memberlist's limit.
func (r Report) Encode() ([]byte, error) {
	r.V = Version
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode health report: %w", err)
	}
	if len(b) > MaxEncodedSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, limit %d", ErrBadReport, len(b), MaxEncodedSize)
	}
	return b, nil
}

// Decode reads a peer's report. Unknown fields are tolerated (a newer agent may add some) but a
// newer major format is refused rather than misread.
func Decode(b []byte) (Report, error) {
	if len(b) == 0 {
		return Report{}, fmt.Errorf("%w: empty", ErrBadReport)
	}
	if len(b) > MaxEncodedSize {
		return Report{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadReport, len(b), MaxEncodedSize)
	}
	var r Report
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&r); err != nil {
		return Report{}, fmt.Errorf("%w: %w", ErrBadReport, err)
	}
	if r.V < 1 || r.V > Version {
		return Report{}, fmt.Errorf("%w: format version %d, this agent reads 1..%d", ErrBadReport, r.V, Version)
	}
	return r, nil
}

// Standing is the report without what moves with replication alone: how far the receiver has
// read and how far behind the applier is (only whether that is known stays). Reports of the
// same standing call for the same decisions, so a change of progress alone can wait for the
// reader's next regular look instead of waking it: on an idle cluster the primary's heartbeat
// commit moves every replica's SourceRead once a second.
func (r Report) Standing() Report {
	r.SourceRead = ""
	r.LagMillis = min(r.LagMillis, 0)
	return r
}

// Serving reports whether the member with this report serves in the role a record naming
// primary gives member id: the primary writable, a replica receiving from the primary and
// applying. An errant, draining or unreachable server serves in no role.
func (r Report) Serving(id, primary string) bool {
	switch {
	case !r.MySQLUp || r.Errant || r.Draining || primary == "":
		return false
	case id == primary:
		return r.Role == RolePrimary && r.Writable
	default:
		return r.Role == RoleReplica && r.ReceivingFrom(primary) && r.SQLRunning
	}
}

// ReceivingFrom reports whether the server's receiver is connected to member id: a vote that
// id is alive, whatever the applier does.
func (r Report) ReceivingFrom(id string) bool { return r.IOConnected && r.Source == id }

// VotesDown reports whether this member counts primary, recorded in epoch, as down: its
// receiver is not connected to it, or its agent's own probe of it failed in that epoch.
func (r Report) VotesDown(primary string, epoch uint64) bool {
	return !r.ReceivingFrom(primary) || r.Epoch == epoch && r.PrimaryUnreachable
}
