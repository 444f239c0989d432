package consensus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/shoal-db/shoal/consensus/membership"
	"github.com/shoal-db/shoal/consensus/record"
)

// Sentinels callers branch on.
var (
	// ErrNotLeader: this node is not the leader, or stopped being it while the request was in
	// flight. A command may still have committed in the second case: re-read the record (every
	// primary change is a compare-and-set on the epoch, so proposing again is safe).
	ErrNotLeader = errors.New("not the raft leader")
	// ErrAlreadyBootstrapped: this node already has Raft state; bootstrap-expect callers ignore it.
	ErrAlreadyBootstrapped = errors.New("raft already bootstrapped")
	// ErrClosed: the node has been closed.
	ErrClosed = errors.New("raft node closed")
)

const (
	// retainSnapshots keeps one older snapshot should the newest be unreadable.
	retainSnapshots = 2
	// trailingLogs is what stays in the log after a snapshot, so a follower that was briefly
	// away catches up from the log; one further behind gets the (tiny) snapshot.
	trailingLogs = 1024
	// boltOpenTimeout bounds the wait for the store's file lock when ctx has no deadline, so a
	// second agent on the same data dir fails instead of hanging.
	boltOpenTimeout = 5 * time.Second
)

// Node is the Raft node an agent runs.
type Node struct {
	id      string
	raft    *raft.Raft
	fsm     *fsm
	trans   raft.Transport
	network *InmemNetwork
	store   *raftboltdb.BoltStore // nil when the log is kept in memory

	// follower and leader are the Raft timings this node runs with in each role (tuneHeartbeat).
	follower, leader raft.ReloadableConfig
	log              *slog.Logger

	changes  chan struct{}
	stint    atomic.Pointer[stint]
	observer *raft.Observer
	observed chan raft.Observation
	stop     chan struct{}
	stopped  chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Open starts the node. It does not bootstrap: call Bootstrap once the cluster's first members
// are known (membership.ShouldBootstrap), or let an existing leader add this node.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("raft config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open raft: %w", err)
	}
	cfg = cfg.withDefaults()
	logger := newHclog(cfg.Logger, "raft", nil)

	n := &Node{
		id:       cfg.NodeID,
		network:  cfg.Network,
		changes:  make(chan struct{}, 1),
		observed: make(chan raft.Observation, 16),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	// Undo whatever was opened if a later step fails.
	var undo []func()
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(undo) {
				f()
			}
		}
	}()

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if cfg.DataDir == "" {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create raft data dir: %w", err)
		}
		timeout := boltOpenTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = max(time.Until(dl), time.Millisecond)
		}
		path := filepath.Join(cfg.DataDir, "raft.db")
		n.store, err = raftboltdb.New(raftboltdb.Options{
			Path:        path,
			BoltOptions: &bbolt.Options{Timeout: timeout},
			// Raft sends entries with the new msgpack time format; store them the same way.
			MsgpackUseNewTimeFormat: true,
		})
		if err != nil {
			return nil, fmt.Errorf("open raft store %s: %w", path, err)
		}
		undo = append(undo, func() { n.store.Close() })
		logs, stable = n.store, n.store
		snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, retainSnapshots, logger.Named("snapshot"))
		if err != nil {
			return nil, fmt.Errorf("open raft snapshot store: %w", err)
		}
	}

	n.trans, err = newTransport(cfg, logger.Named("transport"))
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { n.closeTransport() })

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = trailingLogs
	// A removed node keeps running as a follower outside the configuration, so the leader can
	// add it back without the agent restarting Raft.
	rc.ShutdownOnRemove = false
	rc.Logger = logger

	n.fsm = newFSM(n.notify)
	n.raft, err = raft.NewRaft(rc, n.fsm, logs, stable, snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}

	n.follower = n.raft.ReloadableConfig()
	n.leader = n.follower
	n.leader.HeartbeatTimeout = cfg.LeaderHeartbeatTimeout
	// hashicorp/raft wants ElectionTimeout >= HeartbeatTimeout; a leader never stands for
	// election before it stepped down and took the follower's timings back.
	n.leader.ElectionTimeout = max(cfg.ElectionTimeout, cfg.LeaderHeartbeatTimeout)
	n.log = cfg.Logger

	n.observer = raft.NewObserver(n.observed, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.RaftState, raft.LeaderObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(n.observer)
	go n.watch()
	return n, nil
}

// stint is one term of leadership of this node; a node leads at most once per term.
type stint struct {
	term  uint64
	since time.Time
}

// watch stamps leadership promptly and wakes the agent on every leadership event (and once at
// start, for anything before the observer was registered).
func (n *Node) watch() {
	defer close(n.stopped)
	for {
		n.LeaderSince()
		n.tuneHeartbeat()
		n.notify()
		select {
		case <-n.observed:
		case <-n.stop:
			return
		}
	}
}

// tuneHeartbeat gives Raft the timings of this node's role: a leader's heartbeat timeout sets
// how often it sends heartbeats, a follower's how long it waits for one. A follower's shorter
// timeout takes effect on its running timer at once (hashicorp/raft resets it on a reload), so
// the moments between a step-down and this call cost nothing in detecting a dead leader.
func (n *Node) tuneHeartbeat() {
	want := n.follower
	if n.raft.State() == raft.Leader {
		want = n.leader
	}
	current := n.raft.ReloadableConfig()
	if current.HeartbeatTimeout == want.HeartbeatTimeout && current.ElectionTimeout == want.ElectionTimeout {
		return
	}
	current.HeartbeatTimeout, current.ElectionTimeout = want.HeartbeatTimeout, want.ElectionTimeout
	if err := n.raft.ReloadConfig(current); err != nil {
		n.log.Warn("raft heartbeat timings not changed for the role", "heartbeat_timeout", want.HeartbeatTimeout, "err", err)
	}
}

// notify wakes the agent loop without ever blocking Raft.
func (n *Node) notify() {
	select {
	case n.changes <- struct{}{}:
	default:
	}
}

// Changes fires (coalesced) when the committed record or the leadership changed.
func (n *Node) Changes() <-chan struct{} { return n.changes }

// ID is this node's id.
func (n *Node) ID() string { return n.id }

// Addr is the address other nodes reach this one at (its NodeID on an in-memory network).
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// Record is the committed record as this node has applied it; the caller owns the copy.
func (n *Node) Record() record.Record { return n.fsm.record() }

// IsLeader reports whether this node is the leader now. Before acting on it, a new leader runs
// Barrier, and lease decisions use VerifyLeader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader is the current leader as this node knows it; empty when there is none.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// State is the Raft state: Follower, Candidate, Leader or Shutdown.
func (n *Node) State() string { return n.raft.State().String() }

// LastContact is when this follower last heard from a leader. A leader does not update it: it
// proves its standing with VerifyLeader.
func (n *Node) LastContact() time.Time { return n.raft.LastContact() }

// LeaderSince is when this node became leader, zero when it is not. The time is taken when this
// node first sees itself leading in the current term (watch does so at once), so it is never
// earlier than the transition and waits counted from it are never short; it then stays fixed
// for the term.
func (n *Node) LeaderSince() time.Time {
	term := n.raft.CurrentTerm()
	if n.raft.State() != raft.Leader || n.raft.CurrentTerm() != term {
		return time.Time{}
	}
	for {
		old := n.stint.Load()
		if old != nil && old.term == term {
			return old.since
		}
		s := &stint{term: term, since: time.Now()}
		if n.stint.CompareAndSwap(old, s) {
			return s.since
		}
	}
}

// HasState reports whether this node has Raft state: bootstrapped, or added to a cluster. A
// node with state must not take part in bootstrapping another cluster.
func (n *Node) HasState() bool { return n.raft.LastIndex() > 0 }

// Apply proposes cmd and waits until it is applied here. It returns the record after cmd; when
// the FSM refused cmd (e.g. record.ErrStaleEpoch), it returns the unchanged record and that
// refusal, which every node reached alike.
func (n *Node) Apply(ctx context.Context, cmd record.Command) (record.Record, error) {
	b, err := cmd.Encode()
	if err != nil {
		return record.Record{}, fmt.Errorf("encode %s command: %w", cmd.Op, err)
	}
	f := n.raft.Apply(b, enqueueTimeout(ctx))
	if err := wait(ctx, f); err != nil {
		return record.Record{}, raftError("apply "+string(cmd.Op), err)
	}
	// Followers learn that cmd committed only from the leader's next append, which an idle
	// leader sends once per CommitTimeout; a barrier entry is such an append, sent now. Nobody
	// waits for it: a lost one costs one CommitTimeout.
	n.raft.Barrier(enqueueTimeout(ctx))
	res := f.Response().(applyResult)
	if res.Err != nil {
		return res.Record.Clone(), fmt.Errorf("%s refused: %w", cmd.Op, res.Err)
	}
	return res.Record.Clone(), nil
}

// Barrier waits until everything committed before it is applied here (leader only): a new
// leader calls it before trusting its record.
func (n *Node) Barrier(ctx context.Context) error {
	if err := wait(ctx, n.raft.Barrier(enqueueTimeout(ctx))); err != nil {
		return raftError("barrier", err)
	}
	return nil
}

// VerifyLeader confirms that a majority still follows this leader.
func (n *Node) VerifyLeader(ctx context.Context) error {
	if err := wait(ctx, n.raft.VerifyLeader()); err != nil {
		return raftError("verify leader", err)
	}
	return nil
}

// Bootstrap creates the cluster with servers, which must include this node. It returns
// ErrAlreadyBootstrapped if this node already has state.
func (n *Node) Bootstrap(servers []membership.Server) error {
	if !slices.ContainsFunc(servers, func(s membership.Server) bool { return s.ID == n.id }) {
		return fmt.Errorf("bootstrap: this node %q is not among the servers", n.id)
	}
	cfg := raft.Configuration{}
	for _, s := range servers {
		suffrage := raft.Nonvoter
		if s.Voter {
			suffrage = raft.Voter
		}
		cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: suffrage, ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Addr)})
	}
	err := n.raft.BootstrapCluster(cfg).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", ErrAlreadyBootstrapped)
	}
	if err != nil {
		return raftError("bootstrap", err)
	}
	return nil
}

// Configuration is the latest Raft configuration (possibly not yet committed), sorted by id.
func (n *Node) Configuration() ([]membership.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, raftError("get configuration", err)
	}
	var out []membership.Server
	for _, s := range f.Configuration().Servers {
		out = append(out, membership.Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	slices.SortFunc(out, func(a, b membership.Server) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// AddVoter adds a voter, promotes a non-voter, or updates a member's address (leader only).
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	f := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, enqueueTimeout(ctx))
	return n.changeMembership(ctx, "add voter "+id, f)
}

// AddNonvoter adds a non-voter or updates its address; it does not demote a voter (leader only).
func (n *Node) AddNonvoter(ctx context.Context, id, addr string) error {
	f := n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, enqueueTimeout(ctx))
	return n.changeMembership(ctx, "add non-voter "+id, f)
}

// DemoteVoter makes a voter a non-voter (leader only).
func (n *Node) DemoteVoter(ctx context.Context, id string) error {
	f := n.raft.DemoteVoter(raft.ServerID(id), 0, enqueueTimeout(ctx))
	return n.changeMembership(ctx, "demote voter "+id, f)
}

// RemoveServer removes a member (leader only).
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	f := n.raft.RemoveServer(raft.ServerID(id), 0, enqueueTimeout(ctx))
	return n.changeMembership(ctx, "remove server "+id, f)
}

// ApplyChange carries out one step of a membership.Plan (leader only).
func (n *Node) ApplyChange(ctx context.Context, c membership.Change) error {
	switch c.Action {
	case membership.ActionAddVoter:
		return n.AddVoter(ctx, c.ID, c.Addr)
	case membership.ActionAddNonvoter:
		return n.AddNonvoter(ctx, c.ID, c.Addr)
	case membership.ActionDemoteVoter:
		return n.DemoteVoter(ctx, c.ID)
	case membership.ActionRemoveServer:
		return n.RemoveServer(ctx, c.ID)
	}
	return fmt.Errorf("membership change %q: unknown action", c.Action)
}

func (n *Node) changeMembership(ctx context.Context, what string, f raft.IndexFuture) error {
	if err := wait(ctx, f); err != nil {
		return raftError(what, err)
	}
	return nil
}

// TransferLeadership hands leadership to voter to, or with to empty to the most up-to-date
// voter, and waits for the handover.
func (n *Node) TransferLeadership(ctx context.Context, to string) error {
	var f raft.Future
	if to == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		servers, err := n.Configuration()
		if err != nil {
			return err
		}
		i := slices.IndexFunc(servers, func(s membership.Server) bool { return s.ID == to && s.Voter })
		if i < 0 {
			return fmt.Errorf("transfer leadership: %q is no voter", to)
		}
		f = n.raft.LeadershipTransferToServer(raft.ServerID(to), raft.ServerAddress(servers[i].Addr))
	}
	if err := wait(ctx, f); err != nil {
		return raftError("transfer leadership", err)
	}
	return nil
}

// Stats is Raft's own status map (state, term, indexes, configuration...).
func (n *Node) Stats() map[string]string { return n.raft.Stats() }

// Close stops Raft and releases the stores and the transport. It is idempotent and does not
// hand leadership over: call TransferLeadership first for a graceful exit.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("shut down raft: %w", err))
		}
		n.raft.DeregisterObserver(n.observer)
		close(n.stop)
		<-n.stopped
		n.closeTransport()
		if n.store != nil {
			if err := n.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close raft store: %w", err))
			}
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// closeTransport releases what Raft's shutdown leaves open: pooled outgoing connections (whose
// peers would otherwise keep reading them) and the in-memory network's routes.
func (n *Node) closeTransport() {
	switch t := n.trans.(type) {
	case *raft.NetworkTransport:
		t.Close()
		t.CloseStreams()
	case *raft.InmemTransport:
		t.Close()
		n.network.leave(n.id, t)
	}
}

// enqueueTimeout is how long Raft may take to accept a request: until ctx's deadline, or
// forever (0) without one, since wait still honours cancellation.
func enqueueTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 0
}

// wait waits for f or ctx. Raft answers every future by shutdown at the latest, so the helper
// goroutine never outlives the node.
func wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// raftError says what failed and maps Raft's errors onto this package's sentinels, keeping
// Raft's error in the chain.
func raftError(what string, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%s: %w: %w", what, ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%s: %w: %w", what, ErrClosed, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
