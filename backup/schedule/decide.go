package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/consensus/record"
)

// Observation is what the leader knows when it decides the schedule.
type Observation struct {
	Now time.Time
	// Record is the committed cluster record, read after the leadership's Barrier: its jobs are
	// every job earlier leaders recorded, which is how a new leader continues the schedule.
	Record record.Record
	// Peers is gossip's view of the members, this agent included, by member id.
	Peers map[string]ha.Peer
}

// Policy is the schedule's configuration.
type Policy struct {
	// Spec is the cron schedule; zero schedules nothing (running jobs are still watched).
	Spec Spec
	// JobTimeout is how long a job may run before it counts as failed; 0 for no bound.
	JobTimeout time.Duration
}

// Action is one change to the record's jobs: record.OpBackupStart (a slot's first attempt, or
// its one retry) or record.OpBackupFailed. Job names the slot, the attempt and the member.
type Action struct {
	Op     record.Op
	Job    record.BackupJob
	Reason string
}

// Command is the record command carrying out a, decided at at.
func (a Action) Command(at time.Time) record.Command {
	j := record.BackupJob{Slot: a.Job.Slot, Attempt: a.Job.Attempt, Member: a.Job.Member}
	return record.Command{Op: a.Op, Job: &j, At: at, Reason: a.Reason}
}

// Decision is what the leader proposes, in order, and where the schedule stands.
type Decision struct {
	Actions []Action
	// Reason is one sentence on the schedule after the actions: the slot started, running or
	// done, or why nothing starts.
	Reason string
	// Next is the first slot after Now; zero when the schedule is off.
	Next time.Time
}

// Decide is the schedule's decision. Exactly one job per slot holds because Decide only starts
// a slot newer than every recorded one (or the single retry of the newest), and the record's
// Apply refuses any other start: a new leader reads the jobs earlier leaders recorded, and a
// deposed leader's stale start is refused. Only the newest due slot is considered, so slots
// missed while no leader ran (or while paused) are run once, not once each.
func Decide(obs Observation, p Policy) Decision {
	var d Decision
	rec := obs.Record
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	// propose adds a and carries it out on rec, so later rules see its effect (a failed job
	// frees its member and may be retried at once). It returns the sentence to report: a's
	// reason, or why the record would refuse a, which is then not proposed.
	propose := func(a Action) string {
		next, err := record.Apply(rec, a.Command(obs.Now))
		if err != nil {
			return fmt.Sprintf("not proposing %s of job %s on %s: %v", a.Op, a.Job.ID(), a.Job.Member, err)
		}
		rec = next
		d.Actions = append(d.Actions, a)
		return a.Reason
	}

	for _, j := range rec.RunningBackupJobs() {
		if why := jobLost(obs, rec, j, p.JobTimeout); why != "" {
			propose(Action{Op: record.OpBackupFailed, Job: j, Reason: fmt.Sprintf("job %s on %s failed: %s", j.ID(), j.Member, why)})
		}
	}

	if p.Spec.IsZero() {
		d.Reason = "no backup schedule is set"
		return d
	}
	d.Next = p.Spec.Next(obs.Now)
	latest, ok := p.Spec.Latest(obs.Now)
	newest := rec.NewestBackupSlot()
	switch {
	case !ok:
		d.Reason = fmt.Sprintf("schedule %q has no slot before %s", p.Spec, at(obs.Now))
	case !newest.IsZero() && latest.Before(newest):
		d.Reason = fmt.Sprintf("the newest recorded slot %s is ahead of this leader's clock (latest slot %s)", at(newest), at(latest))
	case rec.Paused && (newest.IsZero() || latest.After(newest) || retryable(rec, newest)):
		d.Reason = fmt.Sprintf("the cluster is paused: slot %s waits", at(latest))
	case newest.IsZero() || latest.After(newest):
		member, unfit := pickMember(obs, rec, "")
		if member == "" {
			d.Reason = fmt.Sprintf("slot %s is due but no member may take it: %s", at(latest), strings.Join(unfit, ", "))
			break
		}
		why := fmt.Sprintf("slot %s is due", at(latest))
		if !newest.IsZero() && p.Spec.Next(newest).Before(latest) {
			why += fmt.Sprintf(" (slots after %s were missed: no leader, paused, or no member fit; only the newest runs)", at(newest))
		}
		d.Reason = propose(Action{Op: record.OpBackupStart, Job: record.BackupJob{Slot: latest, Attempt: 1, Member: member},
			Reason: fmt.Sprintf("%s: %s", why, chosen(obs, rec, member))})
	default:
		d.Reason = newestSlot(obs, rec, d.Next, propose)
	}
	return d
}

// jobLost says why a running job can no longer finish, or "" while it may.
func jobLost(obs Observation, rec record.Record, j record.BackupJob, timeout time.Duration) string {
	peer, seen := obs.Peers[j.Member]
	switch {
	case rec.Members[j.Member].ID == "":
		return j.Member + " is no longer a member"
	// A member gossip no longer lists was dead past gossip's retention.
	case !seen || peer.State == ha.PeerDead:
		return "the agent of " + j.Member + " is dead"
	case peer.State == ha.PeerLeft:
		return "the agent of " + j.Member + " left the cluster"
	case timeout > 0 && obs.Now.Sub(j.StartedAt) > timeout:
		return fmt.Sprintf("it ran past the job timeout (%s)", timeout)
	}
	return ""
}

// retryable reports whether slot's first attempt failed and it was not retried yet.
func retryable(rec record.Record, slot time.Time) bool {
	first, _ := rec.BackupJob(slot, 1)
	_, retried := rec.BackupJob(slot, 2)
	return first.State == record.JobFailed && !retried
}

// newestSlot handles the newest recorded slot when it is still the latest due: the one retry
// of a failed first attempt on another member, or where the slot stands.
func newestSlot(obs Observation, rec record.Record, next time.Time, propose func(Action) string) string {
	slot := rec.NewestBackupSlot()
	name := slot.UTC().Format(time.RFC3339)
	first, _ := rec.BackupJob(slot, 1)
	if retry, ok := rec.BackupJob(slot, 2); ok {
		switch retry.State {
		case record.JobRunning:
			return fmt.Sprintf("slot %s: the retry runs on %s", name, retry.Member)
		case record.JobDone:
			return fmt.Sprintf("slot %s: done by %s on the retry (backup %s)", name, retry.Member, retry.BackupID)
		}
		return fmt.Sprintf("slot %s failed twice (on %s, then %s); the next slot is %s", name, first.Member, retry.Member,
			next.Format(time.RFC3339))
	}
	switch first.State {
	case record.JobRunning:
		return fmt.Sprintf("slot %s: the job runs on %s", name, first.Member)
	case record.JobDone:
		return fmt.Sprintf("slot %s: done by %s (backup %s)", name, first.Member, first.BackupID)
	}
	member, unfit := pickMember(obs, rec, first.Member)
	if member == "" {
		return fmt.Sprintf("slot %s failed on %s and no other member may retry it: %s", name, first.Member, strings.Join(unfit, ", "))
	}
	return propose(Action{Op: record.OpBackupStart, Job: record.BackupJob{Slot: slot, Attempt: 2, Member: member},
		Reason: fmt.Sprintf("slot %s failed on %s (%s): retrying it once: %s", name, first.Member, first.Reason, chosen(obs, rec, member))})
}

// chosen says why member was picked.
func chosen(obs Observation, rec record.Record, member string) string {
	if member == rec.Primary {
		return member + ", the primary, is the only member whose agent is alive"
	}
	return fmt.Sprintf("%s is the serving replica with the lowest lag (%dms)", member, obs.Peers[member].Report.LagMillis)
}

// pickMember chooses who takes a backup: among the record's members whose agent is alive, the
// replica serving the primary (receiving and applying from it, neither errant, draining nor
// being re-seeded) with the lowest known lag, ties to the lowest id, running no other job and
// not exclude. A backup loads its server, so the primary takes one only when it is alone: no
// other member's agent is alive. It returns "" and why each member is unfit when none is.
func pickMember(obs Observation, rec record.Record, exclude string) (string, []string) {
	if rec.Primary == "" {
		return "", []string{"no primary is recorded"}
	}
	best, lag, others := "", int64(0), 0
	var unfit []string
	for _, id := range rec.MemberIDs() {
		if id == rec.Primary {
			continue
		}
		peer := obs.Peers[id]
		if peer.Alive() {
			others++
		}
		reason := ""
		switch job, busy := rec.RunningBackupJob(id); {
		case id == exclude:
			reason = "its attempt failed"
		case !peer.Alive():
			reason = "agent not alive"
		case busy:
			reason = "runs job " + job.ID()
		case peer.Report.Reseeding:
			reason = "being re-seeded"
		case !peer.Report.Serving(id, rec.Primary):
			reason = "not serving as a replica of " + rec.Primary
		case peer.Report.LagMillis < 0:
			reason = "lag unknown"
		case best == "" || peer.Report.LagMillis < lag:
			best, lag = id, peer.Report.LagMillis
		}
		if reason != "" {
			unfit = append(unfit, id+": "+reason)
		}
	}
	if best != "" {
		return best, nil
	}
	if others > 0 {
		return "", append(unfit, rec.Primary+": the primary takes a backup only when no other member's agent is alive")
	}
	peer := obs.Peers[rec.Primary]
	_, busy := rec.RunningBackupJob(rec.Primary)
	switch {
	case rec.Primary == exclude:
		return "", append(unfit, rec.Primary+": its attempt failed")
	case !peer.Alive():
		return "", append(unfit, rec.Primary+": agent not alive")
	case busy:
		return "", append(unfit, rec.Primary+": runs a job already")
	case !peer.Report.Serving(rec.Primary, rec.Primary):
		return "", append(unfit, rec.Primary+": not serving as the primary")
	}
	return rec.Primary, nil
}
