package ha

import (
	"errors"
	"fmt"
	"time"
)

// Policy holds the HA timings and rules. Names follow the config keys (ha.lease etc.) and the
// parameters of the protocol model in test/model; docs/protocol.md explains how they relate.
type Policy struct {
	// Tick is the loop interval (ha.tick).
	Tick time.Duration
	// DetectionTimeout is how long the primary must look down before the leader acts (ha.detection_timeout).
	DetectionTimeout time.Duration
	// Lease is how long a primary may keep writes open after its last confirmed renewal (ha.lease).
	Lease time.Duration
	// MaxClockDrift bounds how much two agents' clocks may disagree about a duration of
	// ha.lease (ha.max_clock_drift).
	MaxClockDrift time.Duration
	// PromotionMargin is extra safety on top of lease and drift (ha.promotion_margin).
	PromotionMargin time.Duration
	// FailoverCooldown is the least time between two automatic failovers (ha.failover_cooldown).
	FailoverCooldown time.Duration
	// SemiSyncAcks is how many replicas must receive a transaction before its commit returns (ha.semi_sync_acks).
	SemiSyncAcks int
	// BootstrapExpect is how many members must be in sight before Raft is bootstrapped, and the
	// configured cluster size below whose majority no voter is removed (raft.bootstrap_expect).
	BootstrapExpect int
	// RemoveAfter is how long a member may be gone before the leader removes it from Raft; zero
	// never removes.
	RemoveAfter time.Duration
	// CommitStallTimeout is how long a heartbeat commit on the primary may wait before its commit
	// path counts as stalled (ha.commit_stall_timeout): with semi-sync acks available, the
	// leader then fails over.
	CommitStallTimeout time.Duration
	// CommitProbeInterval is how often the primary's agent writes a heartbeat
	// (ha.commit_probe_interval), one write at a time.
	CommitProbeInterval time.Duration
	// LeaderOffPrimary has a Raft leader that is the serving primary's agent hand leadership to
	// another voter whose agent is alive and whose MySQL serves (ha.leader_off_primary): with
	// both on one host, losing it costs an election before anyone judges the primary. The
	// target is named: left to Raft, it went to a member whose MySQL was down and bounced back.
	// On by default (it was off while a new primary's agent that handed leadership away lost its
	// reads of the replicas and its DNS left a serving one out; every agent now reads a member
	// whose report does not show it serving).
	LeaderOffPrimary bool
	// RebuildErrant lets the leader re-seed a member holding errant transactions from a donor
	// (ha.rebuild_errant): those transactions are then gone for good.
	RebuildErrant bool
	// RebuildMaxDonorLag is the most replication lag a donor may have (ha.rebuild_max_donor_lag).
	RebuildMaxDonorLag time.Duration
	// ReseedFromBackup says when a member is re-seeded from the newest backup instead of a donor
	// (backup.reseed_from_backup; BackupReseedNever without a backup store).
	ReseedFromBackup BackupReseed
	// KillFrozenPrimary lets the agent SIGKILL its own mysqld when it stopped answering while
	// writable and the primary lease ran out (set when mysql.pid_file names its process).
	KillFrozenPrimary bool
}

// DefaultPolicy is tuned for a LAN: a failed primary is replaced within about the promotion wait
// (2.25 s) after its last renewal, and a Raft leader change (about one raft heartbeat timeout,
// 500 ms, plus an election) stays under ha.lease, so it does not fence a healthy primary.
func DefaultPolicy() Policy {
	return Policy{
		Tick:             250 * time.Millisecond,
		DetectionTimeout: 1500 * time.Millisecond,
		Lease:            1500 * time.Millisecond,
		MaxClockDrift:    250 * time.Millisecond,
		PromotionMargin:  500 * time.Millisecond,
		FailoverCooldown: 30 * time.Second,
		SemiSyncAcks:     1,
		// A stalled commit path fails over only after this long: several times the detection
		// timeout, so a primary that is merely busy (a burst of fsyncs, a large transaction
		// ahead in the group commit) keeps its role, yet writes stop for seconds, not minutes.
		CommitStallTimeout:  5 * time.Second,
		CommitProbeInterval: time.Second,
		RebuildMaxDonorLag:  10 * time.Second,
		LeaderOffPrimary:    true,
	}
}

// PromotionWait is how long after the old primary's last lease grant (leader clock) a new
// primary may be promoted: the old lease, plus the clocks' worst disagreement, plus a margin.
func (p Policy) PromotionWait() time.Duration {
	return p.Lease + p.MaxClockDrift + p.PromotionMargin
}

// Validate reports every problem at once.
func (p Policy) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	positive("ha.tick", p.Tick)
	positive("ha.detection_timeout", p.DetectionTimeout)
	positive("ha.lease", p.Lease)
	positive("ha.promotion_margin", p.PromotionMargin)
	positive("ha.commit_stall_timeout", p.CommitStallTimeout)
	positive("ha.commit_probe_interval", p.CommitProbeInterval)
	// A stall must outlast what counts as a crash, or a slow commit would fail over sooner than
	// a dead server does; and more than one heartbeat must fit in it.
	if p.CommitStallTimeout > 0 && p.CommitStallTimeout < p.DetectionTimeout {
		errs = append(errs, fmt.Errorf("ha.commit_stall_timeout (%s) must be at least ha.detection_timeout (%s)", p.CommitStallTimeout, p.DetectionTimeout))
	}
	if p.CommitProbeInterval > 0 && p.CommitStallTimeout > 0 && p.CommitStallTimeout < 2*p.CommitProbeInterval {
		errs = append(errs, fmt.Errorf("ha.commit_stall_timeout (%s) must be at least 2 x ha.commit_probe_interval (%s)", p.CommitStallTimeout, p.CommitProbeInterval))
	}
	if p.MaxClockDrift < 0 {
		errs = append(errs, fmt.Errorf("ha.max_clock_drift must not be negative, got %s", p.MaxClockDrift))
	}
	if p.FailoverCooldown < 0 {
		errs = append(errs, fmt.Errorf("ha.failover_cooldown must not be negative, got %s", p.FailoverCooldown))
	}
	if p.SemiSyncAcks < 0 {
		errs = append(errs, fmt.Errorf("ha.semi_sync_acks must not be negative, got %d", p.SemiSyncAcks))
	}
	// The primary renews once per tick: a lease shorter than a few ticks lapses between renewals.
	if p.Tick > 0 && p.Lease > 0 && p.Lease < 3*p.Tick {
		errs = append(errs, fmt.Errorf("ha.lease (%s) must be at least 3 x ha.tick (%s)", p.Lease, p.Tick))
	}
	// The old primary's agent notices an expired lease within one tick and fences within about
	// one more; the margin is that time (docs/protocol.md: the model's unit of time).
	if p.Tick > 0 && p.PromotionMargin > 0 && p.PromotionMargin < 2*p.Tick {
		errs = append(errs, fmt.Errorf("ha.promotion_margin (%s) must be at least 2 x ha.tick (%s)", p.PromotionMargin, p.Tick))
	}
	// The primary must have fenced itself before anyone else may open writes: its lease, as its
	// own clock may stretch it, must end before the leader's promotion wait does.
	if p.Lease > 0 && p.Lease+p.MaxClockDrift >= p.PromotionWait() {
		errs = append(errs, fmt.Errorf("ha.lease (%s) + ha.max_clock_drift (%s) must be < ha.lease + ha.max_clock_drift + ha.promotion_margin (%s)",
			p.Lease, p.MaxClockDrift, p.PromotionWait()))
	}
	return errors.Join(errs...)
}
