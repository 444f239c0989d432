package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shoal-db/shoal/test/e2e"
)

// A fault breaks the cluster and heals it again before it returns; it says what it did.
type fault struct {
	name string
	run  func(r *run) string
}

// faults are the failures a cluster must survive without losing an acknowledged write. Process
// faults hit the primary half of the time and a random replica otherwise.
var faults = []fault{
	{"kill-mysqld", func(r *run) string {
		i := r.target()
		r.must(r.c.Servers[i].Kill())
		time.Sleep(r.between(time.Second, 5*time.Second))
		r.c.RestartServer(i)
		return "SIGKILL mysqld of " + r.role(i)
	}},
	{"kill-agent", func(r *run) string {
		i := r.target()
		r.c.KillAgent(i)
		time.Sleep(r.between(time.Second, 5*time.Second))
		r.c.StartAgent(i)
		return "SIGKILL agent of " + r.role(i)
	}},
	{"kill-host", func(r *run) string {
		i := r.target()
		r.c.KillAgent(i)
		r.must(r.c.Servers[i].Kill())
		time.Sleep(r.between(time.Second, 5*time.Second))
		r.c.RestartServer(i)
		r.c.StartAgent(i)
		return "SIGKILL mysqld and agent of " + r.role(i)
	}},
	{"kill-host-mid-transaction", func(r *run) string {
		// The primary's host dies while a big transaction is being sent: the replicas' relay
		// logs may end inside it, which must hold no failover and never be applied.
		p := r.primary
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		done := r.c.BigTransaction(ctx, p)
		// Anywhere from its first MB in the binlog to most of it sent.
		sent := r.c.WaitBinlogGrowth(p, int64(1+r.rng.IntN(40))<<20, done)
		r.c.KillAgent(p)
		r.must(r.c.Servers[p].Kill())
		time.Sleep(r.between(time.Second, 5*time.Second))
		r.c.RestartServer(p)
		r.c.StartAgent(p)
		if !sent {
			return fmt.Sprintf("SIGKILL mysqld and agent of primary %s (its %d MB transaction ended first)", r.c.Name(p), e2e.BigTransactionBytes>>20)
		}
		return fmt.Sprintf("SIGKILL mysqld and agent of primary %s while its %d MB transaction was in the binlog", r.c.Name(p), e2e.BigTransactionBytes>>20)
	}},
	{"stop-mysqld", func(r *run) string {
		i, d := r.target(), r.pause()
		r.must(r.c.Servers[i].Pause())
		time.Sleep(d)
		if r.c.ThawServer(i) {
			return fmt.Sprintf("SIGSTOP mysqld of %s for %s: killed by its agent, restarted", r.role(i), d)
		}
		return fmt.Sprintf("SIGSTOP mysqld of %s for %s", r.role(i), d)
	}},
	{"stop-host", func(r *run) string {
		i, d := r.target(), r.pause()
		thaw := r.c.FreezeHost(i)
		time.Sleep(d)
		thaw()
		return fmt.Sprintf("SIGSTOP mysqld and agent of %s for %s", r.role(i), d)
	}},
	{"stopped-applier-kill-host", func(r *run) string {
		// A replica's applier stopped without an error (an operator's STOP REPLICA SQL_THREAD,
		// a delayed replica) when the primary's host dies: it must not hold the failover.
		p, i := r.primary, r.replica()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		r.c.PauseAgent(i) // its agent would start the applier again towards the serving primary
		r.c.ExecRoot(ctx, i, r.c.ReplicaStatement("STOP REPLICA SQL_THREAD"))
		r.w.WaitAcked(r.t, r.w.Acked()+10) // received there, not applied
		r.c.KillAgent(p)
		r.must(r.c.Servers[p].Kill())
		r.c.ResumeAgent(i)
		next := r.c.WaitPrimary(p, 90*time.Second)
		time.Sleep(r.between(0, 4*time.Second))
		r.c.RestartServer(p)
		r.c.StartAgent(p)
		return fmt.Sprintf("SIGKILL mysqld and agent of primary %s with the applier of replica %s stopped; %s promoted",
			r.c.Name(p), r.c.Name(i), r.c.Name(next))
	}},
	{"failed-applier-kill-host", failedApplierKillHost},
	{"stop-agent", func(r *run) string {
		i, d := r.target(), r.pause()
		r.c.PauseAgent(i)
		time.Sleep(d)
		r.c.ResumeAgent(i)
		return fmt.Sprintf("SIGSTOP agent of %s for %s", r.role(i), d)
	}},
	{"isolate-primary", func(r *run) string {
		d := r.outage()
		if r.smoke {
			d = 10 * time.Second // a failover even when the primary also led Raft
		}
		heal := r.isolate(r.primary)
		time.Sleep(d)
		reads := heal()
		r.observed(r.c.Name(r.primary), reads)
		return fmt.Sprintf("primary %s cut off for %s; the monitor read it %d times meanwhile", r.c.Name(r.primary), d, reads)
	}},
	{"isolate-replica", func(r *run) string {
		i, d := r.replica(), r.outage()
		heal := r.isolate(i)
		time.Sleep(d)
		reads := heal()
		r.observed(r.c.Name(i), reads)
		return fmt.Sprintf("replica %s cut off for %s; the monitor read it %d times meanwhile", r.c.Name(i), d, reads)
	}},
	{"flapping-partition", func(r *run) string {
		end := time.Now().Add(r.outage())
		flaps, reads := 0, 0
		for time.Now().Before(end) {
			heal := r.isolate(r.rng.IntN(len(r.c.Servers)))
			time.Sleep(r.between(500*time.Millisecond, 2*time.Second))
			reads += heal()
			time.Sleep(r.between(500*time.Millisecond, 2*time.Second))
			flaps++
		}
		// Summed: a single cut of 0.5 s on a busy machine may fall between two reads.
		r.observed("the members cut off", reads)
		return fmt.Sprintf("%d partitions of a random member, 0.5-2s each; the monitor read them %d times meanwhile", flaps, reads)
	}},
	{"packet-loss", func(r *run) string {
		share, d := 0.1+0.2*r.rng.Float64(), r.outage()
		var heals []func()
		for i := range r.c.Servers {
			heals = append(heals, r.c.Lossy(i, share))
		}
		time.Sleep(d)
		for _, heal := range heals {
			heal()
		}
		return fmt.Sprintf("%.0f%% of packets dropped at every host for %s", 100*share, d)
	}},
	{"cluster-restart", func(r *run) string {
		for i := range r.c.Servers {
			r.c.KillAgent(i)
			r.must(r.c.Servers[i].Kill())
		}
		for i := range r.c.Servers {
			r.c.RestartServer(i)
		}
		for i := range r.c.Servers {
			r.c.StartAgent(i)
		}
		return "every mysqld and agent SIGKILLed and restarted"
	}},
	{"switchover", func(r *run) string {
		to := r.replica()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := r.c.Admin.Switchover(ctx, r.c.AdminAddr(r.primary), r.c.Name(to))
		r.must(err)
		// The call returns once the switchover is recorded; it is done when the target serves, or
		// when the leader cancelled it (a target just back from a fault may not be fit yet) and
		// the old primary serves again.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			p := r.c.Primary(ctx)
			v, err := r.c.Admin.Status(ctx, r.c.AdminAddr(r.primary))
			cancel()
			switch {
			case p == to:
				return fmt.Sprintf("switchover %s -> %s under load", r.c.Name(r.primary), r.c.Name(to))
			case p == r.primary && err == nil && v.Record.Switchover == nil && strings.Contains(v.Record.LastReason, "re-electing"):
				return fmt.Sprintf("switchover %s -> %s cancelled by the leader (%s is not fit); %s serves again",
					r.c.Name(r.primary), r.c.Name(to), r.c.Name(to), r.c.Name(r.primary))
			}
			time.Sleep(20 * time.Millisecond)
		}
		r.t.Fatalf("switchover to %s neither happened nor was cancelled within 30s", r.c.Name(to))
		return ""
	}},
}

// failedApplierKillHost kills the primary's host while the replica that received its last
// acknowledged writes cannot apply them: its applier stopped on a duplicate key (a row written on
// it outside the binlog). As many other replicas as can pause without costing Raft its majority
// stop receiving before those writes (all of them in a three-member cluster), so the failover
// must copy the writes from the broken replica's logs onto a healthy one (MHA's recovery) or
// promote a healthy replica that received them. The operator's repair follows: the conflicting
// row removed, replication started.
func failedApplierKillHost(r *run) string {
	p, broken := r.primary, r.replica()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var lacking []int
	for _, i := range r.others() {
		if i != broken && len(lacking) < (len(r.c.Servers)-1)/2 {
			lacking = append(lacking, i)
		}
	}
	for _, i := range lacking {
		r.c.PauseAgent(i) // frozen until the primary is gone: its agent would start the receiver again
		r.c.ExecRoot(ctx, i, r.c.ReplicaStatement("STOP REPLICA IO_THREAD"))
	}
	conflict := slices.Max(r.w.AckedIDs()) + 100 // a write the writer makes within a second or so
	r.c.WriteLocally(ctx, broken, fmt.Sprintf("INSERT INTO app.acks (id) VALUES (%d)", conflict))
	r.c.WaitApplierError(broken, conflict)
	r.w.WaitAcked(r.t, r.w.Acked()+10)
	time.Sleep(time.Second) // the leader reads the failed applier before the crash, as in production
	crashed := time.Now()
	r.c.KillAgent(p)
	r.must(r.c.Servers[p].Kill())
	for _, i := range lacking {
		r.c.ResumeAgent(i)
	}
	next := r.c.WaitPrimary(p, 90*time.Second)
	took := time.Since(crashed)
	if next == broken {
		r.t.Errorf("promoted %s, whose applier failed", r.c.Name(broken))
	}
	how := "a healthy replica held the writes"
	if r.c.Logged(crashed, "recovered transactions from a member's logs") {
		how = "its writes recovered from its logs"
	}
	r.c.RepairApplier(ctx, broken, conflict)
	r.c.RestartServer(p)
	r.c.StartAgent(p)
	return fmt.Sprintf("SIGKILL mysqld and agent of primary %s with the applier of replica %s failed; %s promoted in %s, %s; %s repaired",
		r.c.Name(p), r.c.Name(broken), r.c.Name(next), took.Round(time.Millisecond), how, r.c.Name(broken))
}

// isolate cuts member i off like Cluster.Isolate; heal restores it and returns how many times
// the split-brain monitor read member i's state while it was cut off.
func (r *run) isolate(i int) (heal func() (reads int)) {
	cut := r.c.Isolate(i)
	before := r.m.Observed()[i].OK // after the cut: no read from before it counts
	return func() int {
		reads := r.m.Observed()[i].OK - before
		cut()
		return reads
	}
}

// observed fails the run when the monitor did not read an isolated member: the split-brain
// check would have been blind to it, above all to an isolated primary still taking writes.
func (r *run) observed(what string, reads int) {
	r.t.Helper()
	if reads == 0 {
		r.t.Errorf("the split-brain monitor never read %s while cut off (reads so far: %+v)", what, r.m.Observed())
	}
}

// target picks the member a process fault hits.
func (r *run) target() int {
	if r.rng.IntN(2) == 0 {
		return r.primary
	}
	return r.replica()
}

// replica picks a member other than the primary.
func (r *run) replica() int {
	return (r.primary + 1 + r.rng.IntN(len(r.c.Servers)-1)) % len(r.c.Servers)
}

func (r *run) role(i int) string {
	if i == r.primary {
		return "primary " + r.c.Name(i)
	}
	return "replica " + r.c.Name(i)
}

// pause is how long a SIGSTOP lasts: 1-20 s, or 3 s in a smoke run (long enough to fail over).
func (r *run) pause() time.Duration {
	if r.smoke {
		return 3 * time.Second
	}
	return r.between(time.Second, 20*time.Second)
}

// outage is how long a network fault lasts: 2-15 s, or 5 s in a smoke run.
func (r *run) outage() time.Duration {
	if r.smoke {
		return 5 * time.Second
	}
	return r.between(2*time.Second, 15*time.Second)
}

func (r *run) between(lo, hi time.Duration) time.Duration {
	return (lo + time.Duration(r.rng.Int64N(int64(hi-lo+1)))).Round(100 * time.Millisecond)
}
