package schedule

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Backup is one backup in the store, as its catalog lists it.
type Backup struct {
	ID     string
	Member string
	// Job is the id of the scheduled job that took it (record.BackupJob.ID); "" for one taken
	// by hand.
	Job        string
	Start, End time.Time
	GTIDSet    string
	// Valid: its manifest, written last, lists every object: the backup is complete. A backup
	// without one is an upload under way or abandoned.
	Valid bool
}

// Retention says which backups to keep. A valid backup is kept while any rule keeps it:
// deleting is the one thing that cannot be undone, so the limits add up rather than cut.
type Retention struct {
	// KeepCount keeps the newest valid backups, this many; 0 keeps none by count.
	KeepCount int
	// KeepAge keeps valid backups that ended less than this ago; 0 keeps none by age.
	KeepAge time.Duration
	// IncompleteGrace is how long an upload without a valid manifest may exist before it is
	// cleaned up, unless the job taking it still runs: longer than any backup takes.
	IncompleteGrace time.Duration
	// RestorableSince is the start of the point-in-time window: every instant from it to now
	// must stay restorable, so the newest valid backup that ended at or before it (the window's
	// base, restored before replaying binary logs) and every later one are kept. Zero: no window.
	RestorableSince time.Time
}

// Enabled reports whether r deletes any valid backup.
func (r Retention) Enabled() bool { return r.KeepCount > 0 || r.KeepAge > 0 }

// Deletion is one backup retention deletes, and why.
type Deletion struct {
	ID     string
	Reason string
}

// Retain returns the backups to delete, in id order. It never deletes the newest valid backup,
// a backup whose job runs (running holds the ids of the record's running jobs), one the
// point-in-time window needs, nor any valid backup while no KeepCount or KeepAge is set.
func Retain(now time.Time, backups []Backup, running map[string]bool, r Retention) []Deletion {
	var out []Deletion
	var valid []Backup
	runs := func(b Backup) bool { return b.Job != "" && running[b.Job] }
	for _, b := range backups {
		switch {
		case b.Valid:
			valid = append(valid, b)
		case runs(b):
		case r.IncompleteGrace > 0 && now.Sub(b.Start) > r.IncompleteGrace:
			out = append(out, Deletion{ID: b.ID, Reason: fmt.Sprintf("incomplete upload started %s, longer ago than the grace of %s, by no running job",
				b.Start.UTC().Format(time.RFC3339), r.IncompleteGrace)})
		}
	}
	// Newest first: by end, when the backup's data is consistent.
	slices.SortFunc(valid, func(a, b Backup) int { return cmp.Or(b.End.Compare(a.End), strings.Compare(b.ID, a.ID)) })
	// The window needs valid[0..base]; when no backup ended before it starts, the oldest is
	// the best base there is.
	base := -1
	if !r.RestorableSince.IsZero() {
		if base = slices.IndexFunc(valid, func(b Backup) bool { return !b.End.After(r.RestorableSince) }); base < 0 {
			base = len(valid) - 1
		}
	}
	for i, b := range valid {
		switch {
		case i == 0, !r.Enabled(), runs(b), i < r.KeepCount, r.KeepAge > 0 && now.Sub(b.End) < r.KeepAge:
		case base >= 0 && i <= base:
		default:
			out = append(out, Deletion{ID: b.ID, Reason: fmt.Sprintf("valid backup that ended %s: %s", b.End.UTC().Format(time.RFC3339), r.beyond())})
		}
	}
	slices.SortFunc(out, func(a, b Deletion) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// beyond says which limits a deleted valid backup is past.
func (r Retention) beyond() string {
	var limits []string
	if r.KeepCount > 0 {
		limits = append(limits, fmt.Sprintf("not among the %d newest", r.KeepCount))
	}
	if r.KeepAge > 0 {
		limits = append(limits, fmt.Sprintf("older than %s", r.KeepAge))
	}
	if !r.RestorableSince.IsZero() {
		limits = append(limits, "older than the point-in-time window's base")
	}
	return strings.Join(limits, ", ")
}
