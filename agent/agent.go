// Package agent is the control loop every shoal agent runs beside its MySQL server:
// gather an Observation, let ha.Decide choose, act, publish. All I/O lives here; the decision
// itself is in agent/ha and never touches the network, the disk or the clock.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/mysqlctl"
)

// Options are the agent's settings, already validated by the caller, and what it works with.
type Options struct {
	NodeID  string
	Cluster string
	Policy  ha.Policy
	// LocalMySQLAddr is how the agent reaches its own MySQL; MySQLAddr is how other members
	// reach it; RaftAddr and AdminAddr are this agent's advertised Raft and admin API addresses.
	LocalMySQLAddr                 string
	MySQLAddr, RaftAddr, AdminAddr string
	// MySQLPIDFile names the local mysqld's process for ha.NodeKill; "" when the agent cannot
	// see it (then Policy.KillFrozenPrimary is off).
	MySQLPIDFile string
	// XPort is the local server's X Protocol port, published in DNS; 0 for none.
	XPort uint16
	// Replication account, and the durability contract the primary runs with.
	ReplUser, ReplPassword string
	SemiSync               mysqlctl.SemiSyncConfig
	// ProbeTimeout bounds each MySQL status probe (default: the policy's tick).
	ProbeTimeout time.Duration
	// PrepareTimeout bounds how long a candidate may take to apply its relay log (default 30s).
	PrepareTimeout time.Duration
	// FenceTimeout bounds one fence, of the local server or (by the leader) another member's
	// (default 5s): a server whose commit path is stalled may not let even a fence through,
	// and the loop must go on (the old primary stays unpromoted-over while it is writable).
	// It bounds the agent's other replication actions on its own server too.
	FenceTimeout time.Duration
	// DrainTimeout bounds how long shutdown waits for a switchover away from this primary.
	DrainTimeout time.Duration

	// Log, Registry, Dial, Raft, Gossip and LeaseClient are required.
	Log      *slog.Logger
	Registry prometheus.Registerer
	// Dial opens MySQL servers, its own (LocalMySQLAddr) and the other members'; connections
	// are opened on first use and kept.
	Dial        dialer
	Raft        raftNode
	Gossip      gossipView
	LeaseClient leaseClient
	// Publishers get the cluster view after every pass, each on its own goroutine.
	Publishers []Publisher
	// LeaderTasks run while this agent leads the cluster (leadership.go).
	LeaderTasks []LeaderTask
	// Reseed is how this agent re-seeds its server and donates to others (reseed.go).
	Reseed ReseedOptions
	// BackupRestorer restores the newest backup for a re-seed from the store (backupreseed.go);
	// nil: this agent has no store and refuses such a re-seed.
	BackupRestorer BackupRestorer
	// Backup turns scheduled backups on (backupschedule.go); nil: off.
	Backup *BackupOptions
	// BinlogArchive turns the primary's binlog archive on (binlogarchive.go); nil: off.
	BinlogArchive *BinlogArchiveOptions
	// BinlogDir is the local server's binlog directory as the agent sees it (backup.binlogs.dir);
	// "": log_bin_basename's, seen through MySQLPIDFile's process (commitpath.go).
	BinlogDir string
	// BinlogTool reads the local relay log for a failover's recovery (mysql.binlog_tool);
	// empty: the flavor's tool from the PATH (recover.go).
	BinlogTool []string
	// Readiness are further conditions of /readyz beside MySQL's own (admin.go).
	Readiness []ReadinessCheck
}

func (o Options) withDefaults() Options {
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = max(o.Policy.Tick, 500*time.Millisecond)
	}
	if o.PrepareTimeout <= 0 {
		o.PrepareTimeout = 30 * time.Second
	}
	if o.FenceTimeout <= 0 {
		o.FenceTimeout = 5 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 15 * time.Second
	}
	return o
}

func (o Options) missing() error {
	var errs []error
	for name, set := range map[string]bool{"Log": o.Log != nil, "Registry": o.Registry != nil, "Dial": o.Dial != nil,
		"Raft": o.Raft != nil, "Gossip": o.Gossip != nil, "LeaseClient": o.LeaseClient != nil} {
		if !set {
			errs = append(errs, fmt.Errorf("agent options: %s is required", name))
		}
	}
	return errors.Join(errs...)
}

// Agent runs the loop. Create it with New, start it with Run.
type Agent struct {
	opts    Options
	log     *slog.Logger
	raft    raftNode
	gossip  gossipView
	lease   leaseClient
	metrics *metrics
	now     func() time.Time

	trigger    chan struct{}
	leases     leases
	pool       serverPool
	remote     remoteProbes
	leadership leadership
	publishers []*publisher
	// sightings: when the loop last saw each member replicating from the recorded primary
	// (ClusterView.Sightings); owned by the loop goroutine.
	sightings map[string]Sighting
	commits   *commitProbe
	// binlogErr is the last failure to read the binlog's size on disk, logged when it changes;
	// binlogPending is a read that outlasted its pass (binlogWritten).
	binlogErr     string
	binlogPending chan binlogRead
	// readBinlog replaces newestBinlog in tests that make the file system hang.
	readBinlog func(basename string) (string, error)

	// reseed is the re-seed of the local server under way, nil when none runs; passing is held
	// by each pass, so the re-seed can wait out one that began before it.
	reseed        atomic.Pointer[reseedRun]
	passing       sync.Mutex
	reseedMetrics *reseedMetrics
	recoveries    *prometheus.CounterVec
	// The backup schedule's leader task and this member's job watcher; nil when backups are off.
	backupScheduler *backupScheduler
	backupWatcher   *backupWatcher
	// Work that outlives a request (a re-seed) runs under backgroundCtx, ended at shutdown.
	background     sync.WaitGroup
	backgroundCtx  context.Context
	stopBackground context.CancelFunc

	// Loop state, touched only by the loop goroutine.
	memory     ha.Memory
	leaseUntil time.Time
	lastReason string
	draining   bool

	// preparing is the leader's prepare going on past its pass (preparing.go).
	preparing *preparation

	// view is what the admin API shows, lastObs what the last pass observed (for the leader's
	// rebuild requests), recoveryFailed this leader's failed recoveries from a member's logs
	// (recover.go; a prepare in the background counts them); guarded by mu.
	mu             sync.Mutex
	view           adminapi.View
	lastObs        ha.Observation
	recoveryFailed ha.RecoveryFailures
}

// New wires an agent.
func New(opts Options) (*Agent, error) {
	if err := opts.missing(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	rm, err := newReseedMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	recoveries, err := newRecoveries(opts.Registry)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	a := &Agent{
		opts:    opts,
		log:     opts.Log,
		raft:    opts.Raft,
		gossip:  opts.Gossip,
		lease:   opts.LeaseClient,
		metrics: m,
		now:     time.Now,
		trigger: make(chan struct{}, 1),
		pool:    serverPool{dial: opts.Dial, open: map[string]mysqlServer{}},

		reseedMetrics: rm,
		recoveries:    recoveries,
	}
	a.backgroundCtx, a.stopBackground = context.WithCancel(context.Background())
	if err := a.setUpBackups(); err != nil {
		return nil, err
	}
	a.commits = &commitProbe{interval: opts.Policy.CommitProbeInterval, now: func() time.Time { return a.now() }, log: opts.Log,
		write: func(ctx context.Context, at time.Time) error {
			srv, err := a.pool.get(ctx, opts.LocalMySQLAddr)
			if err != nil {
				return err
			}
			return srv.WriteHeartbeat(ctx, opts.NodeID, at)
		}}
	return a, nil
}

// Trigger asks for a pass as soon as the current one ends.
func (a *Agent) Trigger() {
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// Run loops until ctx ends, then shuts down in order: a primary hands its role over (the
// publishers still publishing, so DNS answers until the hand-over is done), the leader's work
// stops, the publishers flush their last view, and the MySQL connections close.
func (a *Agent) Run(ctx context.Context) error {
	a.startPublishers()
	a.startBackupWatcher()
	a.startBinlogArchive()
	// The heartbeat goes on while a draining primary hands over, and ends before the
	// connections close.
	probeCtx, stopProbe := context.WithCancel(context.WithoutCancel(ctx))
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		a.commits.run(probeCtx)
	}()
	ticker := time.NewTicker(a.opts.Policy.Tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			err := a.drain()
			stopProbe()
			<-probeDone
			// A re-seed cut short leaves the server to be re-seeded again.
			a.stopBackground()
			a.background.Wait()
			a.revokeLeadership()
			a.stopPublishers()
			a.pool.closeAll()
			return err
		case <-ticker.C:
		case <-a.trigger:
		case <-a.raft.Changes():
		case <-a.gossip.Events():
		}
		a.pass(ctx)
	}
}

// drain gives the primary role away before shutdown: the node decision fences this server and
// releases the lease, the leader then switches over, and drain waits until the record names
// another primary or DrainTimeout passes.
func (a *Agent) drain() error {
	a.draining = true
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.DrainTimeout)
	defer cancel()
	tick := time.NewTicker(a.opts.Policy.Tick)
	defer tick.Stop()
	for {
		a.pass(ctx)
		rec := a.raft.Record()
		if rec.Primary != a.opts.NodeID {
			if rec.Epoch != a.snapshot().Record.Epoch {
				// The pass read an older record: one more, so the publishers (DNS) end on the
				// successor rather than on this node.
				a.pass(ctx)
			}
			if a.raft.IsLeader() {
				if err := a.raft.TransferLeadership(ctx, ""); err != nil {
					a.log.Warn("leadership transfer before shutdown failed", "err", err)
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("shutdown: record still names this node primary after %s: %w", a.opts.DrainTimeout, ctx.Err())
		case <-tick.C:
		case <-a.raft.Changes():
		}
	}
}

// pass is one gather -> decide -> act round. A failed action ends the pass; the next re-gathers.
func (a *Agent) pass(ctx context.Context) {
	a.passing.Lock()
	defer a.passing.Unlock()
	start := a.now()
	obs, reads := a.gather(ctx)
	a.mu.Lock()
	a.lastObs = obs
	a.mu.Unlock()
	d := ha.Decide(obs, a.opts.Policy)
	a.memory = d.Memory
	if reason := d.Reason(); reason != a.lastReason {
		a.log.Info("decision", "reason", reason, "node_code", d.NodeReason.Code, "cluster_code", d.ClusterReason.Code,
			"epoch", obs.Record.Epoch, "primary", obs.Record.Primary, "leader", obs.Leader)
		a.lastReason = reason
	}
	changed, err := a.act(ctx, obs, d)
	if err != nil && !errors.Is(err, context.Canceled) {
		a.log.Warn("action failed", "reason", d.Reason(), "err", err)
	}
	a.publish(obs, d, reads)
	a.metrics.observe(obs, d, a.now().Sub(start))
	// Only a successful change earns an immediate pass: a failing action waits for the next tick
	// instead of spinning.
	if changed && err == nil {
		a.Trigger()
	}
}

// lastObservation is what the last pass observed; zero before the first.
func (a *Agent) lastObservation() ha.Observation {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastObs
}
