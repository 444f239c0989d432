// Package record is the cluster record that Raft replicates, and the deterministic rules that
// change it. It does no I/O: the same commands applied in the same order give the same record on
// every agent, which is what makes the record the single truth of who is primary in which epoch.
package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Sentinels callers branch on.
var (
	// ErrStaleEpoch: the command was decided in an epoch that has since moved on, e.g. by a
	// deposed leader; applying it could undo a newer failover.
	ErrStaleEpoch = errors.New("stale epoch")
	// ErrInvalidCommand: the command is malformed or names an unknown member.
	ErrInvalidCommand = errors.New("invalid command")
	// ErrAlreadyInitialized: init was proposed for a record that already names a cluster.
	ErrAlreadyInitialized = errors.New("cluster record already initialized")
	// ErrJobConflict: a backup job command expects a state the record's jobs are no longer in
	// (the slot was claimed, the job ended): another leader, or an earlier report, got there
	// first. It is the compare-and-set that keeps one job per slot.
	ErrJobConflict = errors.New("backup job conflict")
)

// Member is one agent and its MySQL server.
type Member struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	MySQLAddr string `json:"mysql_addr"`
	AdminAddr string `json:"admin_addr"`
	Voter     bool   `json:"voter"`
}

// Switchover is an operator's request to move the primary in a planned way.
type Switchover struct {
	// To is the member to move to; empty lets the leader choose the best replica.
	To          string    `json:"to,omitempty"`
	RequestedAt time.Time `json:"requested_at"`
}

// Record is the replicated cluster state.
type Record struct {
	Cluster string `json:"cluster"`
	// Epoch increases with every change of primary; a primary acts only in its own epoch.
	Epoch   uint64            `json:"epoch"`
	Primary string            `json:"primary,omitempty"`
	Members map[string]Member `json:"members,omitempty"`
	// Paused stops the automatic actions: no failover, pod deletion or scheduled backup starts,
	// and no switchover may be requested. A hand-over already under way (a pending switchover, a
	// primary whose agent shuts down) still completes: its primary has fenced itself, and
	// stopping halfway would leave the cluster without one.
	Paused     bool        `json:"paused,omitempty"`
	Switchover *Switchover `json:"switchover,omitempty"`
	// LastPrimaryChange is when the current epoch began, by the deciding leader's clock.
	LastPrimaryChange time.Time `json:"last_primary_change"`
	// LastReason is the one-sentence reason of the last primary change.
	LastReason string `json:"last_reason,omitempty"`
	// LastFailover is when the last automatic failover was decided: the anti-flap cooldown
	// counts from it, so a first election or a planned switchover never holds a failover back.
	LastFailover time.Time `json:"last_failover,omitzero"`
	// BackupJobs are the scheduled backups the leaders recorded, oldest slot first, at most
	// MaxBackupJobs of them (backup.go).
	BackupJobs []BackupJob `json:"backup_jobs,omitempty"`
}

// MemberIDs returns the member ids in sorted order.
func (r Record) MemberIDs() []string { return slices.Sorted(maps.Keys(r.Members)) }

// Clone returns a deep copy, so a caller can never change a record another goroutine reads.
func (r Record) Clone() Record {
	r.Members = maps.Clone(r.Members)
	if r.Switchover != nil {
		s := *r.Switchover
		r.Switchover = &s
	}
	r.BackupJobs = slices.Clone(r.BackupJobs)
	return r
}

// Op names a command.
type Op string

const (
	// OpInit names the cluster once, at bootstrap.
	OpInit Op = "init"
	// OpSetPrimary moves the primary: compare-and-set on Epoch, then Epoch+1.
	OpSetPrimary Op = "set_primary"
	// OpUpsertMember adds or updates a member.
	OpUpsertMember Op = "upsert_member"
	// OpRemoveMember removes a member that is not the primary.
	OpRemoveMember Op = "remove_member"
	// OpSetPaused pauses or resumes automatic actions.
	OpSetPaused Op = "set_paused"
	// OpRequestSwitchover records a planned switchover for the leader to carry out.
	OpRequestSwitchover Op = "request_switchover"
	// OpClearSwitchover drops a pending switchover request (done or impossible).
	OpClearSwitchover Op = "clear_switchover"
	// OpBackupStart records a scheduled backup job: the first attempt at a slot newer than every
	// recorded one, or the one retry of a failed first attempt on another member.
	OpBackupStart Op = "backup_start"
	// OpBackupDone records that a running job's member finished its backup.
	OpBackupDone Op = "backup_done"
	// OpBackupFailed records that a running job failed: its member reported it, died, or ran
	// past the job timeout.
	OpBackupFailed Op = "backup_failed"
)

// Command is one change to the record. Fields beyond Op are used as the Op needs them.
type Command struct {
	Op Op `json:"op"`
	// Epoch is the epoch the decision was made in (OpSetPrimary).
	Epoch   uint64 `json:"epoch,omitempty"`
	Cluster string `json:"cluster,omitempty"`
	// Primary is the new primary; empty means none (every server stays fenced).
	Primary    string      `json:"primary,omitempty"`
	Member     *Member     `json:"member,omitempty"`
	MemberID   string      `json:"member_id,omitempty"`
	Paused     bool        `json:"paused,omitempty"`
	Switchover *Switchover `json:"switchover,omitempty"`
	// Failover marks an OpSetPrimary that replaces a failed primary (for the cooldown).
	Failover bool `json:"failover,omitempty"`
	// Job names the backup job of OpBackupStart, OpBackupDone and OpBackupFailed by its Slot,
	// Attempt and Member; OpBackupDone also carries its BackupID.
	Job *BackupJob `json:"job,omitempty"`
	// At is the proposer's clock when it decided; Apply never reads a clock.
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// Encode is the command's wire form in the Raft log.
func (c Command) Encode() ([]byte, error) { return json.Marshal(c) }

// DecodeCommand reads a command from the Raft log, refusing unknown fields so a newer agent's
// command is never half-applied by an older one.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if err := strictUnmarshal(b, &c); err != nil {
		return Command{}, fmt.Errorf("%w: decode: %w", ErrInvalidCommand, err)
	}
	return c, nil
}

// Apply returns the record after c. It is deterministic and leaves r untouched; a refused
// command returns r unchanged and an error saying why.
func Apply(r Record, c Command) (Record, error) {
	next := r.Clone()
	switch c.Op {
	case OpInit:
		if r.Cluster != "" {
			return r, fmt.Errorf("%w: cluster %q", ErrAlreadyInitialized, r.Cluster)
		}
		if c.Cluster == "" {
			return r, fmt.Errorf("%w: init without a cluster name", ErrInvalidCommand)
		}
		next.Cluster = c.Cluster
	case OpSetPrimary:
		if c.Epoch != r.Epoch {
			return r, fmt.Errorf("%w: decided in epoch %d, record is at %d", ErrStaleEpoch, c.Epoch, r.Epoch)
		}
		if r.Epoch == math.MaxUint64 {
			// Wrapping to 0 would let every stale decision match again.
			return r, fmt.Errorf("%w: epoch %d cannot advance", ErrInvalidCommand, r.Epoch)
		}
		if c.Primary != "" {
			if _, ok := r.Members[c.Primary]; !ok {
				return r, fmt.Errorf("%w: primary %q is not a member", ErrInvalidCommand, c.Primary)
			}
		}
		next.Epoch = r.Epoch + 1
		next.Primary = c.Primary
		next.LastPrimaryChange = c.At
		next.LastReason = c.Reason
		if c.Failover {
			next.LastFailover = c.At
		}
		next.Switchover = nil // whatever was requested is superseded by the new epoch
	case OpUpsertMember:
		if c.Member == nil || c.Member.ID == "" {
			return r, fmt.Errorf("%w: upsert without a member id", ErrInvalidCommand)
		}
		if next.Members == nil {
			next.Members = map[string]Member{}
		}
		next.Members[c.Member.ID] = *c.Member
	case OpRemoveMember:
		if _, ok := r.Members[c.MemberID]; !ok {
			return r, fmt.Errorf("%w: remove unknown member %q", ErrInvalidCommand, c.MemberID)
		}
		if c.MemberID == r.Primary {
			return r, fmt.Errorf("%w: cannot remove the primary %q", ErrInvalidCommand, c.MemberID)
		}
		delete(next.Members, c.MemberID)
	case OpSetPaused:
		next.Paused = c.Paused
	case OpRequestSwitchover:
		if c.Switchover == nil {
			return r, fmt.Errorf("%w: switchover request without details", ErrInvalidCommand)
		}
		if r.Paused {
			return r, fmt.Errorf("%w: the cluster is paused; resume it to switch over", ErrInvalidCommand)
		}
		if to := c.Switchover.To; to != "" {
			if _, ok := r.Members[to]; !ok {
				return r, fmt.Errorf("%w: switchover target %q is not a member", ErrInvalidCommand, to)
			}
			if to == r.Primary {
				return r, fmt.Errorf("%w: %q is already the primary", ErrInvalidCommand, to)
			}
		}
		s := *c.Switchover
		next.Switchover = &s
	case OpClearSwitchover:
		next.Switchover = nil
	case OpBackupStart, OpBackupDone, OpBackupFailed:
		jobs, err := applyBackup(r, c)
		if err != nil {
			return r, err
		}
		next.BackupJobs = jobs
	default:
		return r, fmt.Errorf("%w: unknown op %q", ErrInvalidCommand, c.Op)
	}
	return next, nil
}
