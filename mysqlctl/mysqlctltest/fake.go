// Package mysqlctltest is an in-memory stand-in for MySQL servers, for fast tests of the code
// that drives them (the agent loop). It models what HA depends on: read-only fencing, GTID sets,
// replication with separate receive and apply steps, and lossless semi-sync (a commit on a
// semi-sync primary needs a connected replica to have received it). It is not a SQL engine.
package mysqlctltest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

// ErrDown: the fake server is crashed or unknown; like a real one, it refuses connections.
var ErrDown = fmt.Errorf("fake mysql: server down: %w", syscall.ECONNREFUSED)

// ErrReadOnly: a write reached a read-only server.
var ErrReadOnly = errors.New("fake mysql: read-only")

// ErrNoAck: a semi-sync primary had no replica to receive the write (a real one would block).
var ErrNoAck = errors.New("fake mysql: no semi-sync replica connected")

// Network holds fake servers by address. One mutex guards every server, so replication between
// them is simply consistent.
type Network struct {
	mu      sync.Mutex
	servers map[string]*Server
}

// NewNetwork returns an empty network.
func NewNetwork() *Network { return &Network{servers: map[string]*Server{}} }

// Add creates a server at addr, up and read-only, as every shoal-managed server starts.
func (n *Network) Add(addr string, serverID uint32) *Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := &Server{net: n, addr: addr, id: serverID, up: true, readOnly: true,
		uuid: fmt.Sprintf("00000000-0000-0000-0000-%012d", serverID)}
	n.servers[addr] = s
	return s
}

// Dial returns the server at addr, or ErrDown.
func (n *Network) Dial(_ context.Context, addr string) (*Server, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.servers[addr]
	if !ok || !s.up {
		return nil, fmt.Errorf("dial %s: %w", addr, ErrDown)
	}
	return s, nil
}

// Server is one fake server. Its methods mirror *mysqlctl.Server.
type Server struct {
	net      *Network
	addr     string
	id       uint32
	uuid     string
	up       bool
	readOnly bool
	seq      uint64
	executed gtid.Set
	received gtid.Set
	source   string // replication source address; "" when not a replica
	io, sql  bool
	// sqlErrno: the applier stopped on an error; it fails again at every start, as a real one
	// does on the same transaction, until the replication config is dropped.
	sqlErrno int
	sqlError string
	semiSync bool // primary side: commits need an ack
	// semiReplica: the replica side acknowledges; off after a restart, as on a real server
	semiReplica bool
	fences      int // Fence calls that found the server up
	// held: the applier runs but applies nothing, as a busy one with a long relay log
	held bool
}

func (s *Server) check() error {
	if !s.up {
		return fmt.Errorf("%s: %w", s.addr, ErrDown)
	}
	return nil
}

// pull moves transactions along the replication chain: received from a live source whose
// receiving thread runs, applied when the applier runs.
func (s *Server) pull() {
	if s.source != "" && s.io {
		if src, ok := s.net.servers[s.source]; ok && src.up {
			s.received, _ = s.received.Union(src.executed)
		}
	}
	if s.sql && !s.held {
		s.executed, _ = s.executed.Union(s.received)
	}
}

// Write commits one transaction as a client would, and returns its GTID.
func (s *Server) Write() (string, error) {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	if err := s.check(); err != nil {
		return "", err
	}
	if s.readOnly {
		return "", fmt.Errorf("%s: %w", s.addr, ErrReadOnly)
	}
	s.seq++
	gtid := gtid.MustParse(gtid.MySQL, s.uuid+":"+strconv.FormatUint(s.seq, 10))
	var ackers []*Server
	for _, r := range s.net.servers {
		if r.up && r.source == s.addr && r.io && r.semiReplica {
			ackers = append(ackers, r)
		}
	}
	if s.semiSync && len(ackers) == 0 {
		s.seq--
		return "", fmt.Errorf("%s: %w", s.addr, ErrNoAck)
	}
	s.executed, _ = s.executed.Union(gtid)
	for _, r := range ackers { // AFTER_SYNC: the replicas have it before the client hears back
		r.received, _ = r.received.Union(gtid)
	}
	return gtid.String(), nil
}

// WriteHeartbeat commits one transaction like Write.
func (s *Server) WriteHeartbeat(context.Context, string, time.Time) error {
	_, err := s.Write()
	return err
}

// Crash stops the server; its data survives.
func (s *Server) Crash() {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	s.up = false
}

// Restart brings a crashed server back, read-only as at every start, replication threads running.
func (s *Server) Restart() {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	s.up, s.readOnly, s.semiReplica = true, true, false
	if s.source != "" {
		s.io, s.sql = true, true
	}
}

// Writable reports whether clients can write.
func (s *Server) Writable() bool {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	return s.up && !s.readOnly
}

// Executed returns the applied set.
func (s *Server) Executed() gtid.Set {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	return s.executed
}

// Status mirrors mysqlctl.Server.Status.
func (s *Server) Status(context.Context) (state.Status, error) {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	if err := s.check(); err != nil {
		return state.Status{}, err
	}
	s.pull()
	st := state.Status{Addr: s.addr, Flavor: gtid.MySQL, Version: state.Version{Major: 9, Minor: 7},
		ServerID: s.id, ServerUUID: s.uuid, ReadOnly: s.readOnly, SuperReadOnly: s.readOnly, Executed: s.executed,
		SemiSync: state.SemiSync{Available: true, SourceEnabled: s.semiSync, SourceActive: s.semiSync, AcksRequired: 1,
			ReplicaEnabled: s.semiReplica, ReplicaActive: s.semiReplica && s.io}}
	if s.source != "" {
		host, port, _ := net.SplitHostPort(s.source)
		p, _ := strconv.Atoi(port)
		io := "No"
		if src, ok := s.net.servers[s.source]; s.io && ok && src.up {
			io = "Yes"
		} else if s.io {
			io = "Connecting"
		}
		received, _ := s.executed.Union(s.received)
		lag := time.Duration(0)
		st.Replica = &state.Replica{SourceHost: host, SourcePort: p, IOState: io, SQLRunning: s.sql,
			AutoPosition: true, Received: received, Lag: &lag, LastSQLErrno: s.sqlErrno, LastSQLError: s.sqlError}
	}
	return st, nil
}

// Fence mirrors mysqlctl.Server.Fence.
func (s *Server) Fence(context.Context, mysqlctl.FenceOptions) error {
	return s.do(func() { s.readOnly = true; s.fences++ })
}

// Fences counts the fences the server took: a read-only moment too short to poll for still shows.
func (s *Server) Fences() int {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	return s.fences
}

// Promote mirrors mysqlctl.Server.Promote: apply what was received, drop replication, open writes.
func (s *Server) Promote(_ context.Context, opts mysqlctl.PromoteOptions) error {
	return s.do(func() {
		s.io = false
		s.executed, _ = s.executed.Union(s.received)
		s.source, s.sql, s.received = "", false, gtid.Set{}
		s.sqlErrno, s.sqlError = 0, ""
		s.semiSync = !opts.SemiSync.Async
		s.readOnly = false
	})
}

// ConfigureReplica mirrors mysqlctl.Server.ConfigureReplica.
func (s *Server) ConfigureReplica(_ context.Context, src mysqlctl.Source, opts mysqlctl.ReplicaOptions) error {
	return s.do(func() {
		s.source = net.JoinHostPort(src.Host, strconv.Itoa(src.Port))
		s.received = s.executed
		// A broken applier breaks again on the same transaction, fetched anew from any source.
		s.io, s.sql, s.semiSync, s.semiReplica = true, s.sqlErrno == 0, false, opts.SemiSync
	})
}

// StartReplica mirrors mysqlctl.Server.StartReplica.
func (s *Server) StartReplica(context.Context) error {
	return s.do(func() { s.io, s.sql = true, s.sqlErrno == 0 })
}

// StopReplica mirrors mysqlctl.Server.StopReplica.
func (s *Server) StopReplica(context.Context) error {
	return s.do(func() { s.io, s.sql = false, false })
}

// StopApplier stops the applier alone, as STOP REPLICA SQL_THREAD does: what the replica
// receives piles up unapplied.
func (s *Server) StopApplier() error { return s.do(func() { s.sql = false }) }

// FailApplier stops the applier on an error (a duplicate key, say): what the replica receives
// piles up unapplied, and starting the applier fails again.
func (s *Server) FailApplier(errno int, msg string) error {
	return s.do(func() { s.sql, s.sqlErrno, s.sqlError = false, errno, msg })
}

// HoldApplier holds the applier (or lets it go): it runs, yet applies nothing, as one working
// through a long relay log; a failover's wait for it lasts until it is let go.
func (s *Server) HoldApplier(hold bool) {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	s.held = hold
}

// StartApplier mirrors mysqlctl.Server.StartApplier (MySQL: the relay log is kept).
func (s *Server) StartApplier(context.Context) error {
	return s.do(func() { s.sql = s.source != "" && s.sqlErrno == 0 })
}

// StopIOThread mirrors mysqlctl.Server.StopIOThread.
func (s *Server) StopIOThread(context.Context) error { return s.do(func() { s.io = false }) }

// WaitApplied mirrors mysqlctl.Server.WaitApplied, polling until ctx ends.
func (s *Server) WaitApplied(ctx context.Context, set gtid.Set) error {
	for {
		s.net.mu.Lock()
		err := s.check()
		var ok bool
		if err == nil {
			s.pull()
			ok, err = s.executed.Contains(set)
		}
		s.net.mu.Unlock()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w: %s", s.addr, mysqlctl.ErrWaitTimeout, set)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ApplyBinlogSQL refuses: the fake is no SQL engine, so a failover's recovery from a relay
// log fails on it as it would on a server the statements do not reach.
func (s *Server) ApplyBinlogSQL(context.Context, io.Reader) error {
	if err := s.do(func() {}); err != nil {
		return err
	}
	return errors.New("fake mysql: no SQL engine to apply binlog SQL")
}

// EnsureReplicationUser mirrors mysqlctl.Server.EnsureReplicationUser (accounts are not modelled).
func (s *Server) EnsureReplicationUser(context.Context, string, string) error { return s.do(func() {}) }

// Close mirrors mysqlctl.Server.Close.
func (s *Server) Close() error { return nil }

func (s *Server) do(f func()) error {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	s.pull()
	f()
	return nil
}
