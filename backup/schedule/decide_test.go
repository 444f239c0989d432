package schedule

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
)

var (
	now    = time.Date(2026, 11, 30, 10, 20, 0, 0, time.UTC)
	slot10 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	slot09 = slot10.Add(-time.Hour)
	slot06 = slot10.Add(-4 * time.Hour)
	hourly = mustSpec("0 * * * *")
)

func mustSpec(s string) Spec {
	sp, err := ParseSpec(s)
	if err != nil {
		panic(err)
	}
	return sp
}

// cluster is db-0 the primary, db-1 (lag 50ms) and db-2 (lag 10ms) serving replicas.
func cluster() Observation {
	rec := record.Record{Cluster: "c", Epoch: 3, Primary: "db-0", Members: map[string]record.Member{}}
	peers := map[string]ha.Peer{}
	for _, id := range []string{"db-0", "db-1", "db-2"} {
		rec.Members[id] = record.Member{ID: id}
		peers[id] = ha.Peer{State: ha.PeerAlive, Report: replica(0)}
	}
	peers["db-0"] = ha.Peer{State: ha.PeerAlive, Report: health.Report{MySQLUp: true, Role: health.RolePrimary, Writable: true, LagMillis: -1}}
	peers["db-1"] = ha.Peer{State: ha.PeerAlive, Report: replica(50)}
	peers["db-2"] = ha.Peer{State: ha.PeerAlive, Report: replica(10)}
	return Observation{Now: now, Record: rec, Peers: peers}
}

func replica(lag int64) health.Report {
	return health.Report{MySQLUp: true, Role: health.RoleReplica, Source: "db-0", IOConnected: true, SQLRunning: true, LagMillis: lag}
}

func running(slot time.Time, attempt int, member string) record.BackupJob {
	return record.BackupJob{Slot: slot, Attempt: attempt, Member: member, State: record.JobRunning, StartedAt: slot}
}

func ended(j record.BackupJob, state record.JobState) record.BackupJob {
	j.State, j.EndedAt, j.Reason = state, j.StartedAt.Add(time.Minute), "mysqld went away"
	if state == record.JobDone {
		j.BackupID = "b-" + j.ID()
	}
	return j
}

// act is an action in short: "start 10:00/1 db-2" or "fail 09:00/1 db-1".
func act(a Action) string {
	op := "start"
	if a.Op == record.OpBackupFailed {
		op = "fail"
	}
	return fmt.Sprintf("%s %s/%d %s", op, a.Job.Slot.Format("15:04"), a.Job.Attempt, a.Job.Member)
}

func TestDecide(t *testing.T) {
	type change func(o *Observation, p *Policy)
	jobs := func(js ...record.BackupJob) change {
		return func(o *Observation, _ *Policy) { o.Record.BackupJobs = js }
	}
	peer := func(id string, f func(*ha.Peer)) change {
		return func(o *Observation, _ *Policy) { p := o.Peers[id]; f(&p); o.Peers[id] = p }
	}
	report := func(id string, f func(*health.Report)) change {
		return peer(id, func(p *ha.Peer) { f(&p.Report) })
	}
	state := func(id string, s ha.PeerState) change { return peer(id, func(p *ha.Peer) { p.State = s }) }
	only := func(ids ...string) change {
		return func(o *Observation, _ *Policy) {
			keep := map[string]bool{}
			for _, id := range ids {
				keep[id] = true
			}
			maps.DeleteFunc(o.Record.Members, func(id string, _ record.Member) bool { return !keep[id] })
			maps.DeleteFunc(o.Peers, func(id string, _ ha.Peer) bool { return !keep[id] })
		}
	}
	tests := []struct {
		name    string
		changes []change
		want    []string
		reason  string // a part of the decision's reason
	}{
		{"the first slot goes to the replica with the lowest lag", nil, []string{"start 10:00/1 db-2"}, "lowest lag (10ms)"},
		{"equal lags go to the lowest id", []change{report("db-1", func(r *health.Report) { r.LagMillis = 10 })},
			[]string{"start 10:00/1 db-1"}, "slot 2026-11-30T10:00:00Z is due"},
		{"a slot already recorded is not started again", []change{jobs(running(slot10, 1, "db-1"))}, nil, "runs on db-1"},
		{"a slot done is not started again", []change{jobs(ended(running(slot10, 1, "db-1"), record.JobDone))}, nil, "done by db-1"},
		{"the next slot", []change{jobs(ended(running(slot09, 1, "db-1"), record.JobDone))}, []string{"start 10:00/1 db-2"}, "is due"},
		{"missed slots run once, the newest", []change{jobs(ended(running(slot06, 1, "db-1"), record.JobDone))},
			[]string{"start 10:00/1 db-2"}, "only the newest runs"},
		{"a member running a job is given no other", []change{jobs(running(slot09, 1, "db-2"))}, []string{"start 10:00/1 db-1"}, "lowest lag (50ms)"},
		{"a dead member's job fails and is retried at once on another",
			[]change{jobs(running(slot10, 1, "db-2")), state("db-2", ha.PeerDead)},
			[]string{"fail 10:00/1 db-2", "start 10:00/2 db-1"}, "retrying it once"},
		{"a job of a member that left fails", []change{jobs(running(slot10, 1, "db-2")), state("db-2", ha.PeerLeft)},
			[]string{"fail 10:00/1 db-2", "start 10:00/2 db-1"}, "left the cluster"},
		{"a job of a member gossip no longer lists fails",
			[]change{jobs(running(slot10, 1, "db-2")), func(o *Observation, _ *Policy) { delete(o.Peers, "db-2") }},
			[]string{"fail 10:00/1 db-2", "start 10:00/2 db-1"}, "is dead"},
		{"a job of a member removed from the record fails",
			[]change{jobs(running(slot10, 1, "db-2")), func(o *Observation, _ *Policy) { delete(o.Record.Members, "db-2") }},
			[]string{"fail 10:00/1 db-2", "start 10:00/2 db-1"}, "no longer a member"},
		{"a suspect member's job goes on", []change{jobs(running(slot10, 1, "db-2")), state("db-2", ha.PeerSuspect)}, nil, "runs on db-2"},
		{"a job past the timeout fails",
			[]change{jobs(running(slot10, 1, "db-2")), func(_ *Observation, p *Policy) { p.JobTimeout = 10 * time.Minute }},
			[]string{"fail 10:00/1 db-2", "start 10:00/2 db-1"}, "retrying it once"},
		{"a job within the timeout goes on",
			[]change{jobs(running(slot10, 1, "db-2")), func(_ *Observation, p *Policy) { p.JobTimeout = 30 * time.Minute }}, nil, "runs on db-2"},
		{"a reported failure is retried on another member", []change{jobs(ended(running(slot10, 1, "db-2"), record.JobFailed))},
			[]string{"start 10:00/2 db-1"}, "mysqld went away"},
		{"a running retry", []change{jobs(ended(running(slot10, 1, "db-2"), record.JobFailed), running(slot10, 2, "db-1"))}, nil, "retry runs on db-1"},
		{"a done retry", []change{jobs(ended(running(slot10, 1, "db-2"), record.JobFailed), ended(running(slot10, 2, "db-1"), record.JobDone))},
			nil, "on the retry"},
		{"a failed retry is the end of the slot",
			[]change{jobs(ended(running(slot10, 1, "db-2"), record.JobFailed), ended(running(slot10, 2, "db-1"), record.JobFailed))},
			nil, "failed twice (on db-2, then db-1); the next slot is 2026-11-30T11:00:00Z"},
		{"a failed retry dying is recorded but not retried",
			[]change{jobs(ended(running(slot10, 1, "db-2"), record.JobFailed), running(slot10, 2, "db-1")), state("db-1", ha.PeerDead)},
			[]string{"fail 10:00/2 db-1"}, "failed twice"},
		{"no other member may retry",
			[]change{jobs(ended(running(slot10, 1, "db-2"), record.JobFailed)), report("db-1", func(r *health.Report) { r.Errant = true })},
			nil, "no other member may retry it: db-1: not serving as a replica of db-0, db-2: its attempt failed"},
		{"no other live member may retry",
			[]change{jobs(ended(running(slot10, 1, "db-2"), record.JobFailed)), state("db-1", ha.PeerDead)},
			nil, "no other member may retry it: db-1: agent not alive, db-2: its attempt failed, db-0: the primary"},
		{"no other idle member may retry",
			[]change{jobs(running(slot09, 1, "db-1"), ended(running(slot10, 1, "db-2"), record.JobFailed))},
			nil, "no other member may retry it: db-1: runs job 20261130T090000Z-1, db-2: its attempt failed, db-0: the primary"},
		{"a failed slot superseded by a newer one is not retried", []change{jobs(ended(running(slot09, 1, "db-2"), record.JobFailed))},
			[]string{"start 10:00/1 db-2"}, "is due"},
		{"never the primary while other agents are alive",
			[]change{report("db-1", func(r *health.Report) { r.LagMillis = -1 }), report("db-2", func(r *health.Report) { r.Reseeding = true })},
			nil, "db-1: lag unknown, db-2: being re-seeded, db-0: the primary takes a backup only when no other member's agent is alive"},
		{"the primary alone in the cluster", []change{only("db-0")}, []string{"start 10:00/1 db-0"}, "the only member whose agent is alive"},
		{"the primary alone among live agents", []change{state("db-1", ha.PeerDead), state("db-2", ha.PeerLeft)},
			[]string{"start 10:00/1 db-0"}, "db-0, the primary"},
		{"a lone primary that failed the slot does not retry it",
			[]change{only("db-0"), jobs(ended(running(slot10, 1, "db-0"), record.JobFailed))}, nil, "db-0: its attempt failed"},
		{"a lone primary running a job", []change{only("db-0"), jobs(running(slot09, 1, "db-0"))}, nil, "db-0: runs a job already"},
		{"a lone primary whose agent is not alive", []change{only("db-0"), state("db-0", ha.PeerSuspect)}, nil, "db-0: agent not alive"},
		// Records come from snapshots too: a malformed job gets no proposal the record refuses.
		{"a running job without a member", []change{jobs(record.BackupJob{Slot: slot10, Attempt: 1, State: record.JobRunning})},
			nil, "runs on"},
		{"a lone primary that does not serve", []change{only("db-0"), report("db-0", func(r *health.Report) { r.Writable = false })},
			nil, "not serving as the primary"},
		{"unfit replicas",
			[]change{
				report("db-1", func(r *health.Report) { r.Draining = true }),
				report("db-2", func(r *health.Report) { r.IOConnected = false }),
			}, nil, "db-1: not serving as a replica of db-0, db-2: not serving as a replica of db-0"},
		{"a replica whose report is unreadable", []change{peer("db-2", func(p *ha.Peer) { p.ReportErr = "bad"; p.Report = health.Report{} })},
			[]string{"start 10:00/1 db-1"}, "lowest lag (50ms)"},
		{"no primary recorded", []change{func(o *Observation, _ *Policy) { o.Record.Primary = "" }}, nil, "no primary is recorded"},
		{"paused: no start", []change{func(o *Observation, _ *Policy) { o.Record.Paused = true }}, nil, "paused: slot 2026-11-30T10:00:00Z waits"},
		{"paused: no retry, but a dead member's job still fails",
			[]change{func(o *Observation, _ *Policy) { o.Record.Paused = true }, jobs(running(slot10, 1, "db-2")), state("db-2", ha.PeerDead)},
			[]string{"fail 10:00/1 db-2"}, "paused"},
		{"no schedule: running jobs are still watched",
			[]change{func(_ *Observation, p *Policy) { p.Spec = Spec{} }, jobs(running(slot10, 1, "db-2")), state("db-2", ha.PeerDead)},
			[]string{"fail 10:00/1 db-2"}, "no backup schedule"},
		{"a leader whose clock is behind the record starts nothing",
			[]change{jobs(running(slot10.Add(time.Hour), 1, "db-1"))}, nil, "ahead of this leader's clock"},
		// 2100 is no leap year: the last 29 February before 2103 is seven years back, beyond
		// the five years searched.
		{"no slot within the years searched", []change{func(_ *Observation, p *Policy) { p.Spec = mustSpec("0 0 29 2 *") }, func(o *Observation, _ *Policy) {
			o.Now = time.Date(2103, 6, 1, 0, 0, 0, 0, time.UTC)
		}}, nil, "has no slot before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs, p := cluster(), Policy{Spec: hourly}
			for _, c := range tt.changes {
				c(&obs, &p)
			}
			before := fmt.Sprint(obs.Record)
			d := Decide(obs, p)
			var got []string
			for _, a := range d.Actions {
				got = append(got, act(a))
				if a.Reason == "" {
					t.Errorf("%s has no reason", act(a))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("actions %q, want %q (reason: %s)", got, tt.want, d.Reason)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("reason %q, want it to say %q", d.Reason, tt.reason)
			}
			if fmt.Sprint(obs.Record) != before {
				t.Error("Decide changed the observed record")
			}
		})
	}
}

// Actions carry the decision's clock and reason into the record, and the record accepts them in
// order.
func TestActionsApply(t *testing.T) {
	obs := cluster()
	obs.Record.BackupJobs = []record.BackupJob{running(slot10, 1, "db-2")}
	obs.Peers["db-2"] = ha.Peer{State: ha.PeerDead}
	d := Decide(obs, Policy{Spec: hourly})
	rec := obs.Record
	for _, a := range d.Actions {
		var err error
		if rec, err = record.Apply(rec, a.Command(obs.Now)); err != nil {
			t.Fatalf("%s refused: %v", act(a), err)
		}
	}
	retry, ok := rec.BackupJob(slot10, 2)
	if !ok || !retry.StartedAt.Equal(now) || retry.Reason != d.Actions[1].Reason {
		t.Errorf("retry recorded as %+v", retry)
	}
	if first, _ := rec.BackupJob(slot10, 1); first.State != record.JobFailed || !first.EndedAt.Equal(now) {
		t.Errorf("first attempt recorded as %+v", first)
	}
}
