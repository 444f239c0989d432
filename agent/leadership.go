package agent

import (
	"context"
	"sync"
	"time"
)

// LeaderTask is long-lived work only the Raft leader does: a backup schedule, the Kubernetes
// writer, pod healing. Run starts once the leadership's Barrier has applied everything earlier
// leaders committed, so the task reads an up-to-date record; its ctx ends when leadership is
// lost or the agent stops, and Run must return soon after. A task that fails is started again
// after a pause while the leadership lasts.
type LeaderTask interface {
	Name() string
	Run(ctx context.Context) error
}

// leadership is one stint as Raft leader, as Consul's establishLeadership/revokeLeadership
// handle it: established after a Barrier, with the leader's tasks running until it is revoked.
// Touched only by the loop goroutine.
type leadership struct {
	since  time.Time // the stint (consensus.Node.LeaderSince) that was established; zero when none
	cancel context.CancelFunc
	tasks  sync.WaitGroup
}

// leaderReady reports whether this agent may take cluster decisions: it leads, and a Barrier
// since winning has applied everything earlier leaders committed. It establishes a new stint
// and revokes an old one as leadership comes and goes.
func (a *Agent) leaderReady(ctx context.Context) bool {
	since := a.raft.LeaderSince()
	if !a.leadership.since.IsZero() && !a.leadership.since.Equal(since) {
		a.revokeLeadership()
	}
	if since.IsZero() {
		return false
	}
	if a.leadership.since.IsZero() {
		if err := a.raft.Barrier(ctx); err != nil {
			a.log.Warn("barrier after winning leadership failed", "err", err)
			return false
		}
		a.establishLeadership(since)
	}
	return true
}

// establishLeadership opens the lease table to requests and starts the leader's tasks.
func (a *Agent) establishLeadership(since time.Time) {
	a.leases.markReady(since)
	ctx, cancel := context.WithCancel(context.Background())
	a.leadership.since, a.leadership.cancel = since, cancel
	for _, t := range a.opts.LeaderTasks {
		a.leadership.tasks.Go(func() { a.runLeaderTask(ctx, t) })
	}
	a.log.Info("leadership established", "tasks", len(a.opts.LeaderTasks))
}

// revokeLeadership stops the leader's tasks and waits for them, so one agent never runs two
// stints' tasks at once. Across agents a deposed leader may not know yet that it lost: tasks
// that must run once (a backup slot) claim their turn through the record's compare-and-set.
func (a *Agent) revokeLeadership() {
	if a.leadership.since.IsZero() {
		return
	}
	a.leadership.cancel()
	a.leadership.tasks.Wait()
	a.leadership.since, a.leadership.cancel = time.Time{}, nil
	a.log.Info("leadership revoked")
}

func (a *Agent) runLeaderTask(ctx context.Context, t LeaderTask) {
	for {
		err := t.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("leader task stopped; starting it again", "task", t.Name(), "err", err)
		a.metrics.leaderTaskRestarts.WithLabelValues(t.Name()).Inc()
		select {
		case <-ctx.Done():
			return
		case <-time.After(4 * a.opts.Policy.Tick):
		}
	}
}
