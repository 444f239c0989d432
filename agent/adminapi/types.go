// Package adminapi is the wire contract of the agents' admin API: the JSON types, the errors a
// caller branches on, and the client the CLI and the agents themselves use. The server side is
// agent.Handler.
package adminapi

import (
	"errors"
	"fmt"
	"time"

	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
)

// View is what an agent shows through /v1/status: its decision, its server and its peers, as its
// last pass saw them (UpdatedAt, before that pass's actions). A member serves as the primary only
// while LeaseUntil is ahead: an agent cut off from the cluster keeps answering with the view of a
// pass that still held the lease while its next one waits on the leader and fences.
type View struct {
	Node     string        `json:"node"`
	Leader   string        `json:"raft_leader"`
	IsLeader bool          `json:"is_leader"`
	Record   record.Record `json:"record"`
	Reason   string        `json:"reason"`
	// NodeCode and ClusterCode are the stable codes of the last decision (agent/ha.Code).
	NodeCode    string        `json:"node_code,omitempty"`
	ClusterCode string        `json:"cluster_code,omitempty"`
	Local       LocalView     `json:"local"`
	Peers       []PeerView    `json:"peers"`
	LeaseUntil  time.Time     `json:"lease_until,omitzero"`
	UpdatedAt   time.Time     `json:"updated_at"`
	Report      health.Report `json:"report"`
	Errant      string        `json:"errant_gtids,omitempty"`
}

// LocalView is the agent's own server, as of the last pass.
type LocalView struct {
	Up       bool   `json:"up"`
	Error    string `json:"error,omitempty"`
	Role     string `json:"role"`
	Writable bool   `json:"writable"`
	Executed string `json:"gtid_executed,omitempty"`
	Source   string `json:"source,omitempty"`
	LagMs    int64  `json:"lag_ms"`
	// CommitWaitMs is how long the primary's heartbeat commit in flight has waited (0: none
	// waits); CommitStall is set once that counts as a stall (health.CommitStall).
	CommitWaitMs int64  `json:"commit_wait_ms,omitempty"`
	CommitStall  string `json:"commit_stall,omitempty"`
}

// PeerView is one member as this agent's gossip sees it.
type PeerView struct {
	ID     string        `json:"id"`
	State  string        `json:"state"`
	Report health.Report `json:"report"`
}

// SwitchoverRequest asks for a planned switchover; To empty lets the leader pick the best replica.
type SwitchoverRequest struct {
	To string `json:"to,omitempty"`
}

// LeaseRequest is a primary's agent asking the Raft leader to renew, or to release, its lease.
type LeaseRequest struct {
	Member  string `json:"member"`
	Epoch   uint64 `json:"epoch"`
	Release bool   `json:"release,omitempty"`
	// Draining says why a lease is released: the agent shuts down and wants no role.
	Draining bool `json:"draining,omitempty"`
	// Follow asks, for a replica about to start receiving from the primary of Epoch, whether that
	// epoch is still current and its primary's lease not revoked: a replica the leader stopped
	// for a failover must not reconnect to the old primary while the new one is being committed.
	Follow bool `json:"follow,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
	// LeaderAdmin is set with 409 when the request must go to the Raft leader.
	LeaderAdmin string `json:"leader_admin,omitempty"`
}

// ErrAPI wraps every error an agent answered with.
var ErrAPI = errors.New("admin API error")

// ErrLeaseRefused: the leader will not renew the lease (not the primary of that epoch, a
// switchover is pending, the lease was released or revoked). It travels as 422.
var ErrLeaseRefused = errors.New("lease refused")

// ErrLeaseRevoked is the final kind of ErrLeaseRefused: this lease will never be renewed (the
// member is not the primary of that epoch, or its lease was released or revoked), so the agent
// drops what remains of it at once instead of letting it run out. It travels as 410.
var ErrLeaseRevoked = fmt.Errorf("%w for good", ErrLeaseRefused)

// ErrNotLeader: the request needs the Raft leader and this agent is not it. It travels as 409
// with the leader's admin address.
var ErrNotLeader = errors.New("not the raft leader")
