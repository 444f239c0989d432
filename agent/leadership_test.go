package agent

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// taskLog records which members run their leader task now, and whether two ever ran at once
// on one member.
type taskLog struct {
	mu      sync.Mutex
	running map[string]int
	starts  int
}

func (l *taskLog) set(id string, delta int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running == nil {
		l.running = map[string]int{}
	}
	l.running[id] += delta
	if delta > 0 {
		l.starts++
	}
	if l.running[id] == 0 {
		delete(l.running, id)
	}
}

func (l *taskLog) now() (running map[string]int, starts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.running), l.starts
}

type recordingTask struct {
	id  string
	log *taskLog
}

func (t recordingTask) Name() string { return "recording" }

func (t recordingTask) Run(ctx context.Context) error {
	t.log.set(t.id, 1)
	defer t.log.set(t.id, -1)
	<-ctx.Done()
	return nil
}

func (c *testCluster) leaderTasks(id string) []LeaderTask {
	return []LeaderTask{recordingTask{id: id, log: &c.tasks}}
}

// waitTaskOn waits until the leader task runs on exactly the member id, once.
func (c *testCluster) waitTaskOn(id string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if running, _ := c.tasks.now(); len(running) == 1 && running[id] == 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	running, _ := c.tasks.now()
	c.t.Fatalf("leader task runs on %v, want only on %s", running, id)
}

// leaderOtherThan waits for a running member other than not to lead Raft (nil: any).
func (c *testCluster) leaderOtherThan(not *member) *member {
	c.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, m := range c.members {
			if m != not && m.cancel != nil && m.raft.IsLeader() {
				return m
			}
		}
	}
	c.t.Fatalf("no leader other than %v within 20s", not)
	return nil
}

// The leader's long-lived work follows Raft leadership: it starts on the leader, stops on the
// old leader when leadership moves, and has stopped when the agent's Run returns.
func TestLeaderTasksFollowLeadership(t *testing.T) {
	c := startCluster(t, 3)
	c.waitPrimary("")
	first := c.leaderOtherThan(nil)
	c.waitTaskOn(first.id)

	// The transfer returns once the old leader stepped down, maybe before another won. On a
	// loaded machine its target may not win within Raft's timeout (CI: "leadership transfer
	// timeout"): what this test needs is that leadership moves, so it asks again.
	for attempt := 1; ; attempt++ {
		err := first.raft.TransferLeadership(t.Context(), "")
		if err == nil || !first.raft.IsLeader() {
			break
		}
		if attempt == 5 {
			t.Fatalf("transfer leadership, %d tries: %v", attempt, err)
		}
	}
	second := c.leaderOtherThan(first)
	c.waitTaskOn(second.id)

	second.stop()
	if running, _ := c.tasks.now(); running[second.id] != 0 {
		t.Fatalf("%s still runs its leader task after its agent stopped: %v", second.id, running)
	}
	third := c.leaderOtherThan(second)
	c.waitTaskOn(third.id)
}

type failingTask struct{ runs chan struct{} }

func (failingTask) Name() string { return "failing" }

func (t failingTask) Run(ctx context.Context) error {
	t.runs <- struct{}{}
	return errors.New("bucket unreachable")
}

// A leader task that fails is started again while the leadership lasts, and counted; revoking
// the leadership stops it and waits.
func TestFailingLeaderTaskRestarts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	task := failingTask{runs: make(chan struct{}, 10)}
	a := &Agent{log: logger(t), metrics: m, opts: Options{Policy: fastPolicy(), LeaderTasks: []LeaderTask{task}}}
	a.establishLeadership(time.Now())
	for range 3 {
		select {
		case <-task.runs:
		case <-time.After(10 * time.Second):
			t.Fatal("the failing task was not started again")
		}
	}
	a.revokeLeadership()
	if got := testutil.ToFloat64(m.leaderTaskRestarts.WithLabelValues("failing")); got < 2 {
		t.Fatalf("restarts counted: %v, want at least 2", got)
	}
	if !a.leadership.since.IsZero() {
		t.Fatal("leadership still established after revoke")
	}
}
