package schedule

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/consensus/record"
)

// history replays a script of events on a cluster of four members: time passing, gossip and
// health changing, leaders deciding (and crashing halfway through their proposals), deposed
// leaders proposing from an old record, members reporting, pauses and member removals. Every
// command goes through record.Apply as Raft would apply it. After every event the record's jobs
// must hold the schedule's invariants.
type history struct {
	t     *testing.T
	spec  Spec
	obs   Observation
	stale []Observation // what leaders saw earlier: a deposed leader decides on one of these
	log   []string
}

var specs = []string{"0 * * * *", "*/20 * * * *", "@daily", "30 2 * * 1-5", "0 0 29 2 *"}

var members = []string{"db-0", "db-1", "db-2", "db-3"}

func newHistory(t *testing.T, script []byte) *history {
	h := &history{t: t, spec: mustSpec(specs[int(at(script, 0))%len(specs)]), obs: cluster()}
	h.obs.Record.Members["db-3"] = record.Member{ID: "db-3"}
	h.obs.Peers["db-3"] = ha.Peer{State: ha.PeerAlive, Report: replica(30)}
	return h
}

func at(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

func (h *history) run(script []byte) {
	for i := 1; i+1 < len(script); i += 2 {
		op, arg := script[i]%8, script[i+1]
		h.step(op, arg)
		h.check()
	}
}

func (h *history) apply(c record.Command) {
	if next, err := record.Apply(h.obs.Record, c); err == nil {
		h.obs.Record = next
		what := string(c.Op)
		if c.Job != nil {
			what += " " + c.Job.ID() + " " + c.Job.Member
		}
		h.log = append(h.log, what)
	}
}

func (h *history) step(op, arg byte) {
	id := members[int(arg)%len(members)]
	policy := Policy{Spec: h.spec, JobTimeout: 3 * time.Hour}
	switch op {
	case 0: // time passes, up to about 30 hours
		h.obs.Now = h.obs.Now.Add(time.Duration(arg) * 7 * time.Minute)
		h.log = append(h.log, "now "+h.obs.Now.Format(time.RFC3339))
	case 1: // gossip changes its mind about a member
		p := h.obs.Peers[id]
		p.State = []ha.PeerState{ha.PeerAlive, ha.PeerSuspect, ha.PeerDead, ha.PeerLeft}[arg/4%4]
		h.obs.Peers[id] = p
	case 2: // a member's health changes
		p := h.obs.Peers[id]
		if id != h.obs.Record.Primary {
			p.Report = replica(int64(arg/4%5) * 20)
			p.Report.Reseeding = arg/4%7 == 6
			p.Report.SQLRunning = arg/4%11 != 10
		}
		h.obs.Peers[id] = p
	case 3: // the leader decides; it may crash after its first proposal
		h.stale = append(h.stale, h.obs)
		before := h.obs.Record
		d := Decide(h.obs, policy)
		h.checkDecision(before, d)
		for i, a := range d.Actions {
			if arg%4 == 0 && i > 0 {
				break
			}
			h.apply(a.Command(h.obs.Now))
		}
		if arg%4 != 0 {
			// A leader that carried out its decision has nothing more to do.
			if again := Decide(h.obs, policy); len(again.Actions) > 0 {
				h.t.Fatalf("deciding again proposes %s: %s\n%s", act(again.Actions[0]), again.Reason, h.trace())
			}
		}
	case 4: // a deposed leader proposes what it decided on an older record
		if len(h.stale) == 0 {
			return
		}
		old := h.stale[int(arg)%len(h.stale)]
		old.Now = h.obs.Now
		for _, a := range Decide(old, policy).Actions {
			h.apply(a.Command(old.Now))
		}
	case 5: // a member reports its job done or failed
		if j, ok := h.obs.Record.RunningBackupJob(id); ok {
			c := Action{Op: record.OpBackupFailed, Job: j}.Command(h.obs.Now)
			if arg%2 == 0 {
				c.Op, c.Job.BackupID = record.OpBackupDone, "b-"+j.ID()
			}
			h.apply(c)
		}
	case 6:
		h.apply(record.Command{Op: record.OpSetPaused, Paused: arg%2 == 0})
	case 7: // a member is removed or comes back
		if _, ok := h.obs.Record.Members[id]; ok {
			h.apply(record.Command{Op: record.OpRemoveMember, MemberID: id})
		} else {
			h.apply(record.Command{Op: record.OpUpsertMember, Member: &record.Member{ID: id}})
		}
	}
}

// checkDecision: an honest leader's decision starts at most one new slot, the latest due, on a
// member whose agent is alive, and the primary only when no other agent is alive.
func (h *history) checkDecision(before record.Record, d Decision) {
	latest, _ := h.spec.Latest(h.obs.Now)
	firsts := 0
	for _, a := range d.Actions {
		if a.Op != record.OpBackupStart {
			continue
		}
		if !h.obs.Peers[a.Job.Member].Alive() {
			h.t.Fatalf("%s: started on a member whose agent is not alive\n%s", act(a), h.trace())
		}
		if a.Job.Member == before.Primary {
			for _, id := range before.MemberIDs() {
				if id != before.Primary && h.obs.Peers[id].Alive() {
					h.t.Fatalf("%s: the primary took a backup while %s is alive\n%s", act(a), id, h.trace())
				}
			}
		}
		if a.Job.Attempt == 1 {
			firsts++
			if !a.Job.Slot.Equal(latest) {
				h.t.Fatalf("%s: started a slot other than the latest due (%s)\n%s", act(a), latest, h.trace())
			}
		}
	}
	if firsts > 1 {
		h.t.Fatalf("one decision started %d slots\n%s", firsts, h.trace())
	}
}

// check: one first attempt per slot and at most one retry, only after it failed and elsewhere;
// slots only move forward and are slots of the schedule; no member runs two jobs.
func (h *history) check() {
	type key struct {
		slot    int64
		attempt int
	}
	seen := map[key]record.BackupJob{}
	runs := map[string]bool{}
	var last time.Time
	for _, j := range h.obs.Record.BackupJobs {
		k := key{j.Slot.Unix(), j.Attempt}
		if _, dup := seen[k]; dup {
			h.t.Fatalf("two jobs %s\n%s", j.ID(), h.trace())
		}
		seen[k] = j
		switch j.Attempt {
		case 1:
			if !last.IsZero() && !j.Slot.After(last) {
				h.t.Fatalf("slot %s recorded after %s\n%s", j.ID(), last, h.trace())
			}
			last = j.Slot
		case 2:
			first, ok := seen[key{j.Slot.Unix(), 1}]
			if !ok || first.State != record.JobFailed || first.Member == j.Member {
				h.t.Fatalf("retry %s on %s after %+v\n%s", j.ID(), j.Member, first, h.trace())
			}
		default:
			h.t.Fatalf("attempt %d\n%s", j.Attempt, h.trace())
		}
		if !h.spec.Next(j.Slot.Add(-time.Second)).Equal(j.Slot) {
			h.t.Fatalf("%s is no slot of %q\n%s", j.ID(), h.spec, h.trace())
		}
		if j.State == record.JobRunning {
			if runs[j.Member] {
				h.t.Fatalf("%s runs two jobs\n%s", j.Member, h.trace())
			}
			runs[j.Member] = true
		}
	}
}

func (h *history) trace() string { return fmt.Sprintf("spec %q, events:\n%v", h.spec, h.log) }

func FuzzHistory(f *testing.F) {
	f.Add([]byte{0, 3, 1, 0, 40, 3, 1, 1, 10, 3, 1, 5, 3, 3, 2, 4, 0})
	f.Add([]byte{2, 3, 0, 0, 255, 3, 1, 4, 0, 6, 0, 3, 1, 6, 1, 3, 1})
	f.Fuzz(func(t *testing.T, script []byte) {
		newHistory(t, script).run(script)
	})
}

// Random histories, in every test run.
func TestHistories(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 300
	if testing.Short() {
		n = 50
	}
	for range n {
		script := make([]byte, 2+r.IntN(120))
		for i := range script {
			script[i] = byte(r.UintN(256))
		}
		// Leaders decide often, as they do.
		for i := 1; i+1 < len(script); i += 2 {
			if r.IntN(3) == 0 {
				script[i] = 3
			}
		}
		newHistory(t, script).run(script)
	}
}
