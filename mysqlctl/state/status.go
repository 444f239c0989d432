// Package state is what shoal reads off a MySQL server, as plain values: the status the HA
// decision works from and the errant-transaction check. It does no I/O, so the pure decision in
// agent/ha can import it without pulling in a driver or the network.
package state

import (
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/hostport"
)

// Status is one consistent-enough look at a server: everything the HA decision needs about it.
type Status struct {
	Addr       string
	Flavor     gtid.Flavor
	Version    Version
	ServerID   uint32
	ServerUUID string // MySQL only
	// ReadOnly and SuperReadOnly are the server's fence. MariaDB has no super_read_only, so there
	// SuperReadOnly always equals ReadOnly.
	ReadOnly      bool
	SuperReadOnly bool
	// Executed is what the server has applied: MySQL gtid_executed, MariaDB gtid_binlog_state.
	Executed gtid.Set
	// Replica is nil when the server has no replication source configured.
	Replica  *Replica
	SemiSync SemiSync
	// BinlogBasename is log_bin_basename, as the server sees it ("" without a binlog).
	BinlogBasename string
}

// Writable reports whether ordinary clients can write.
func (s Status) Writable() bool { return !s.ReadOnly && !s.SuperReadOnly }

// Received is everything the server has, applied or still in its relay log: the set that decides
// which replica is the most advanced candidate.
func (s Status) Received() gtid.Set {
	if s.Replica == nil {
		return s.Executed
	}
	return s.Replica.Received
}

// Replica is the replication side of a server.
type Replica struct {
	SourceHost string
	SourcePort int
	// IOState is "Yes", "No" or "Connecting", as the server reports it.
	IOState    string
	SQLRunning bool
	// AutoPosition is true when the replica positions by GTID (MySQL auto-position, MariaDB slave_pos).
	AutoPosition bool
	LastIOErrno  int
	LastIOError  string
	LastSQLErrno int
	LastSQLError string
	// Received is Executed plus what the IO thread fetched and the SQL thread has not applied yet.
	Received gtid.Set
	// Lag is nil when the server cannot tell (SQL or IO thread stopped).
	Lag *time.Duration
	// ReadPos is how far the receiver has read the source's binlog, "file:position"; it moves
	// while a transaction streams in, long before its GTID counts as received.
	ReadPos string
}

// IORunning reports whether the IO thread is connected to its source.
func (r *Replica) IORunning() bool { return r.IOState == "Yes" }

// SourceAddr is the source's host:port, comparable with a member's recorded MySQL address.
func (r *Replica) SourceAddr() string { return hostport.Join(r.SourceHost, r.SourcePort) }

// SemiSync is the semi-synchronous replication state on both sides.
type SemiSync struct {
	// Available is false when the server has no semi-sync (MySQL without the plugins loaded).
	Available      bool
	SourceEnabled  bool // configured
	SourceActive   bool // the server currently waits for acks (not fallen back to async)
	WaitPoint      string
	Timeout        time.Duration
	AcksRequired   int
	Clients        int // semi-sync replicas connected
	WaitSessions   int // commits waiting for an ack right now
	ReplicaEnabled bool
	ReplicaActive  bool
}

// AcksMissing reports whether a commit on this server, as a source, would wait for semi-sync
// acks from more replicas than are connected: it would wait until enough connect.
func (s SemiSync) AcksMissing() bool { return s.SourceEnabled && s.Clients < s.AcksRequired }
