package record

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// MaxBackupJobs bounds the job history the record keeps: the oldest ended jobs go first. Apply
// reads it, so every agent applying the same log must have the same value: change it only
// together with a new op.
const MaxBackupJobs = 32

// JobState is where a backup job stands.
type JobState string

const (
	JobRunning JobState = "running"
	JobDone    JobState = "done"
	JobFailed  JobState = "failed"
)

// BackupJob is one attempt at one slot of the backup schedule, given to one member. A slot has
// at most two attempts: the first, and one retry on another member after it failed.
type BackupJob struct {
	// Slot is the schedule's time the job is for; it names the job with Attempt.
	Slot    time.Time `json:"slot"`
	Attempt int       `json:"attempt"`
	Member  string    `json:"member"`
	State   JobState  `json:"state,omitempty"`
	// StartedAt and EndedAt are the deciding leader's clock.
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// BackupID is the backup a done job produced.
	BackupID string `json:"backup_id,omitempty"`
	// Reason is the one sentence of why the job was started, or why it failed.
	Reason string `json:"reason,omitempty"`
}

// ID names the job wherever it goes (the runner, the backup it produces, the logs): the slot
// in UTC and the attempt, e.g. 20261130T020000Z-1.
func (j BackupJob) ID() string {
	return j.Slot.UTC().Format("20060102T150405Z") + "-" + strconv.Itoa(j.Attempt)
}

// Is reports whether j is the attempt o names.
func (j BackupJob) Is(o BackupJob) bool { return j.Slot.Equal(o.Slot) && j.Attempt == o.Attempt }

// NewestBackupSlot is the newest slot a job was recorded for; zero when none.
func (r Record) NewestBackupSlot() time.Time {
	if len(r.BackupJobs) == 0 {
		return time.Time{}
	}
	return r.BackupJobs[len(r.BackupJobs)-1].Slot
}

// BackupJob returns the job slot and attempt name.
func (r Record) BackupJob(slot time.Time, attempt int) (BackupJob, bool) {
	i := slices.IndexFunc(r.BackupJobs, func(j BackupJob) bool { return j.Is(BackupJob{Slot: slot, Attempt: attempt}) })
	if i < 0 {
		return BackupJob{}, false
	}
	return r.BackupJobs[i], true
}

// RunningBackupJobs returns the jobs that run, oldest slot first.
func (r Record) RunningBackupJobs() []BackupJob {
	var out []BackupJob
	for _, j := range r.BackupJobs {
		if j.State == JobRunning {
			out = append(out, j)
		}
	}
	return out
}

// RunningBackupJob returns the job member runs, if any.
func (r Record) RunningBackupJob(member string) (BackupJob, bool) {
	jobs := r.RunningBackupJobs()
	i := slices.IndexFunc(jobs, func(j BackupJob) bool { return j.Member == member })
	if i < 0 {
		return BackupJob{}, false
	}
	return jobs[i], true
}

// applyBackup returns the job list after a backup command. Each command is a compare-and-set
// on the jobs: a start claims a slot no job has claimed (or the one retry of it), and an end
// ends a job that runs on the member it names. A deposed leader's stale command, or a report
// that arrives twice, finds the jobs moved on and is refused with ErrJobConflict.
func applyBackup(r Record, c Command) ([]BackupJob, error) {
	j := c.Job
	if j == nil || j.Slot.IsZero() || j.Member == "" {
		return nil, fmt.Errorf("%w: %s without a job slot and member", ErrInvalidCommand, c.Op)
	}
	if c.Op != OpBackupStart {
		return endJob(r, c)
	}
	if r.Paused {
		return nil, fmt.Errorf("%w: the cluster is paused: no scheduled backup starts", ErrInvalidCommand)
	}
	if _, ok := r.Members[j.Member]; !ok {
		return nil, fmt.Errorf("%w: backup member %q is not a member", ErrInvalidCommand, j.Member)
	}
	if busy, ok := r.RunningBackupJob(j.Member); ok {
		return nil, fmt.Errorf("%w: %s still runs job %s", ErrJobConflict, j.Member, busy.ID())
	}
	newest := r.NewestBackupSlot()
	switch j.Attempt {
	case 1:
		if !newest.IsZero() && !j.Slot.After(newest) {
			return nil, fmt.Errorf("%w: slot %s is not after the newest recorded slot %s", ErrJobConflict,
				j.Slot.UTC().Format(time.RFC3339), newest.UTC().Format(time.RFC3339))
		}
	case 2:
		first, ok := r.BackupJob(j.Slot, 1)
		switch {
		case !ok || !j.Slot.Equal(newest):
			return nil, fmt.Errorf("%w: retry of slot %s, which is not the newest recorded slot", ErrJobConflict, j.Slot.UTC().Format(time.RFC3339))
		case first.State != JobFailed:
			return nil, fmt.Errorf("%w: retry of job %s, which is %s", ErrJobConflict, first.ID(), first.State)
		case first.Member == j.Member:
			return nil, fmt.Errorf("%w: retry of job %s on the member that failed it (%s)", ErrInvalidCommand, first.ID(), j.Member)
		}
		if _, ok := r.BackupJob(j.Slot, 2); ok {
			return nil, fmt.Errorf("%w: slot %s was retried already", ErrJobConflict, j.Slot.UTC().Format(time.RFC3339))
		}
	default:
		return nil, fmt.Errorf("%w: backup attempt %d (want 1 or 2)", ErrInvalidCommand, j.Attempt)
	}
	jobs := append(slices.Clone(r.BackupJobs), BackupJob{Slot: j.Slot, Attempt: j.Attempt, Member: j.Member,
		State: JobRunning, StartedAt: c.At, Reason: c.Reason})
	return pruneJobs(jobs), nil
}

// endJob marks the running job c names done or failed.
func endJob(r Record, c Command) ([]BackupJob, error) {
	j := c.Job
	if c.Op == OpBackupDone && j.BackupID == "" {
		return nil, fmt.Errorf("%w: backup done without a backup id", ErrInvalidCommand)
	}
	i := slices.IndexFunc(r.BackupJobs, j.Is)
	if i < 0 {
		return nil, fmt.Errorf("%w: no job %s in the record", ErrJobConflict, j.ID())
	}
	cur := r.BackupJobs[i]
	if cur.State != JobRunning || cur.Member != j.Member {
		return nil, fmt.Errorf("%w: job %s is %s on %s, not running on %s", ErrJobConflict, cur.ID(), cur.State, cur.Member, j.Member)
	}
	cur.EndedAt, cur.Reason = c.At, c.Reason
	if c.Op == OpBackupDone {
		cur.State, cur.BackupID = JobDone, j.BackupID
	} else {
		cur.State = JobFailed
	}
	jobs := slices.Clone(r.BackupJobs)
	jobs[i] = cur
	return jobs, nil
}

// pruneJobs drops the oldest ended jobs beyond MaxBackupJobs. The newest slot's jobs are kept
// whatever their state: they are what the next start compares against. Running jobs are kept
// too; there are at most as many as members.
func pruneJobs(jobs []BackupJob) []BackupJob {
	newest := jobs[len(jobs)-1].Slot
	for i := 0; len(jobs) > MaxBackupJobs && i < len(jobs); {
		if jobs[i].State == JobRunning || jobs[i].Slot.Equal(newest) {
			i++
			continue
		}
		jobs = slices.Delete(jobs, i, i+1)
	}
	return jobs
}
