package consensus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/shoal-db/shoal/consensus/membership"
	"github.com/shoal-db/shoal/consensus/record"
)

// inmemCluster opens n bootstrapped nodes on one in-memory network. dataDirs, when set, gives
// each node a data dir so it can restart with its state.
func inmemCluster(t *testing.T, n int, dataDirs bool) (*InmemNetwork, []Config, []*Node) {
	t.Helper()
	log, _ := testLogger(t)
	net := NewInmemNetwork()
	var cfgs []Config
	var nodes []*Node
	for _, id := range nodeIDs(n) {
		cfg := Config{NodeID: id, Network: net, Logger: log.With("node", id)}
		if dataDirs {
			cfg.DataDir = t.TempDir()
		}
		cfgs = append(cfgs, cfg)
		nodes = append(nodes, openNode(t, cfg))
	}
	bootstrapAll(t, nodes)
	return net, cfgs, nodes
}

func TestClusterAppliesAndRefusesAlike(t *testing.T) {
	_, _, nodes := inmemCluster(t, 3, false)
	for _, n := range nodes {
		if err := n.Bootstrap([]membership.Server{{ID: n.ID(), Addr: n.Addr(), Voter: true}}); !errors.Is(err, ErrAlreadyBootstrapped) {
			t.Errorf("second bootstrap of %s = %v, want ErrAlreadyBootstrapped", n.ID(), err)
		}
	}
	leader := waitLeader(t, nodes...)
	if leader.LeaderSince().IsZero() {
		t.Error("leader has a zero LeaderSince")
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if err := leader.Barrier(ctx); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	if err := leader.VerifyLeader(ctx); err != nil {
		t.Fatalf("verify leader: %v", err)
	}
	for _, n := range nodes {
		if n == leader {
			continue
		}
		if !n.LeaderSince().IsZero() {
			t.Errorf("follower %s has LeaderSince %v", n.ID(), n.LeaderSince())
		}
		if n.State() != "Follower" {
			t.Errorf("follower %s is in state %s", n.ID(), n.State())
		}
		if n.LastContact().IsZero() {
			t.Errorf("follower %s never heard from the leader", n.ID())
		}
		if _, err := n.Apply(ctx, record.Command{Op: record.OpInit, Cluster: "x"}); !errors.Is(err, ErrNotLeader) {
			t.Errorf("apply on follower %s = %v, want ErrNotLeader", n.ID(), err)
		}
		if err := n.VerifyLeader(ctx); !errors.Is(err, ErrNotLeader) {
			t.Errorf("verify leader on follower %s = %v, want ErrNotLeader", n.ID(), err)
		}
	}
	if got := leader.Stats()["num_peers"]; got != "2" {
		t.Errorf("leader stats num_peers = %q, want 2", got)
	}

	r := seed(t, nodes...)
	waitConverged(t, r, nodes...)
	for _, n := range nodes {
		drain(n.Changes())
	}

	r = mustApply(t, record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: "db-1", Reason: "first primary"}, nodes...)
	if r.Epoch != 1 || r.Primary != "db-1" {
		t.Fatalf("after set_primary: epoch %d primary %q, want 1 db-1", r.Epoch, r.Primary)
	}
	for _, n := range nodes {
		select {
		case <-n.Changes():
		case <-time.After(eventually):
			t.Fatalf("%s: Changes did not fire after a commit", n.ID())
		}
	}
	waitConverged(t, r, nodes...)

	// A deposed leader's decision, made in epoch 0, must not apply anywhere.
	got, err := apply(t, record.Command{Op: record.OpSetPrimary, Epoch: 0, Primary: "db-2"}, nodes...)
	if !errors.Is(err, record.ErrStaleEpoch) {
		t.Fatalf("stale set_primary = %v, want ErrStaleEpoch", err)
	}
	if !equalRecords(got, r) {
		t.Errorf("refused command returned %+v, want the unchanged %+v", got, r)
	}
	// A later command commits after the refused one on every node, so equal records prove
	// every node refused it alike.
	r = mustApply(t, record.Command{Op: record.OpSetPaused, Paused: true}, nodes...)
	if r.Epoch != 1 || r.Primary != "db-1" || !r.Paused {
		t.Fatalf("record after refusal = %+v", r)
	}
	waitConverged(t, r, nodes...)

	// The caller owns what Record returns.
	mine := nodes[0].Record()
	mine.Members["db-0"] = record.Member{ID: "changed"}
	if nodes[0].Record().Members["db-0"].ID != "db-0" {
		t.Error("changing a returned record changed the node's record")
	}
}

func TestTransferLeadership(t *testing.T) {
	_, _, nodes := inmemCluster(t, 3, false)
	old := waitLeader(t, nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	for _, n := range nodes {
		if n != old {
			if err := n.TransferLeadership(ctx, ""); !errors.Is(err, ErrNotLeader) {
				t.Errorf("transfer on follower %s = %v, want ErrNotLeader", n.ID(), err)
			}
		}
	}
	if err := old.TransferLeadership(ctx, ""); err != nil {
		t.Fatalf("transfer leadership: %v", err)
	}
	// The handover is done when the future returns: the old leader has stepped down.
	if old.IsLeader() {
		t.Fatal("the old leader still leads after the transfer")
	}
	waitLeader(t, nodes...)

	// A named target takes it. Raft refuses a transfer while its leader loop is busy (a new
	// leader's first moments) and a leader can lose its term meanwhile: the agent's next pass
	// asks again, and so does this test.
	if err := waitLeader(t, nodes...).TransferLeadership(ctx, "nobody"); err == nil || errors.Is(err, ErrNotLeader) {
		t.Fatalf("a transfer to a member that is no voter: %v", err)
	}
	var cur, to *Node
	for {
		cur = waitLeader(t, nodes...)
		to = nodes[0]
		if to == cur {
			to = nodes[1]
		}
		err := cur.TransferLeadership(ctx, to.ID())
		if err == nil {
			break
		}
		if !errors.Is(err, raft.ErrEnqueueTimeout) && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("transfer leadership from %s to %s: %v", cur.ID(), to.ID(), err)
		}
		if ctx.Err() != nil {
			t.Fatalf("no transfer to %s was accepted", to.ID())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := waitLeader(t, nodes...); got != to {
		t.Fatalf("leadership went to %s, asked for %s", got.ID(), to.ID())
	}
	// The heartbeat timings moved with the role: the old leader waits for heartbeats as
	// patiently as any follower again, the new one sends them at the leader's pace.
	waitFor(t, "each node's heartbeat timeout to follow its role", func() bool {
		for _, n := range nodes {
			want := DefaultHeartbeatTimeout
			if n.IsLeader() {
				want = 2 * DefaultHeartbeatTimeout
			}
			if n.raft.ReloadableConfig().HeartbeatTimeout != want {
				return false
			}
		}
		return true
	})
}

func TestLeaderFailover(t *testing.T) {
	_, cfgs, nodes := inmemCluster(t, 3, true)
	r := seed(t, nodes...)
	r = mustApply(t, record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: "db-0"}, nodes...)
	waitConverged(t, r, nodes...)

	old := waitLeader(t, nodes...)
	var rest []*Node
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	for _, n := range rest {
		drain(n.Changes())
	}
	killed := time.Now()
	if err := old.Close(); err != nil {
		t.Fatalf("close leader: %v", err)
	}
	if err := old.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := old.Apply(context.Background(), record.Command{Op: record.OpClearSwitchover}); !errors.Is(err, ErrClosed) {
		t.Errorf("apply on a closed node = %v, want ErrClosed", err)
	}
	leader := waitLeader(t, rest...)
	t.Logf("new leader %s elected %s after the old one stopped", leader.ID(), time.Since(killed).Round(time.Millisecond))
	select {
	case <-leader.Changes():
	case <-time.After(eventually):
		t.Error("Changes did not fire on the new leader")
	}
	if !equalRecords(leader.Record(), r) {
		t.Fatalf("record after failover = %+v, want %+v", leader.Record(), r)
	}
	r = mustApply(t, record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: "db-1"}, rest...)

	// The old leader comes back with its data dir and catches up.
	back := openNode(t, cfgs[nodeIndex(nodes, old)])
	waitConverged(t, r, append(rest, back)...)
}

func TestPartitionedLeaderStepsDown(t *testing.T) {
	net, _, nodes := inmemCluster(t, 3, false)
	r := seed(t, nodes...)
	waitConverged(t, r, nodes...)
	before := r
	old := waitLeader(t, nodes...)
	var rest []*Node
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	net.Disconnect(old.ID())
	waitFor(t, "the cut-off leader to step down", func() bool { return !old.IsLeader() })
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if err := old.VerifyLeader(ctx); !errors.Is(err, ErrNotLeader) {
		t.Errorf("verify leader on the cut-off node = %v, want ErrNotLeader", err)
	}
	if _, err := old.Apply(ctx, record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: old.ID()}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("apply on the cut-off node = %v, want ErrNotLeader", err)
	}
	leader := waitLeader(t, rest...)
	r = mustApply(t, record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: leader.ID()}, rest...)
	if !equalRecords(old.Record(), before) {
		t.Errorf("the cut-off node's record changed: %+v", old.Record())
	}

	net.Reconnect(old.ID())
	waitConverged(t, r, nodes...)
	waitLeader(t, nodes...)
}

func TestMembershipPlanOnCluster(t *testing.T) {
	log, _ := testLogger(t)
	net, _, nodes := inmemCluster(t, 3, false)
	leader := waitLeader(t, nodes...)
	extra := openNode(t, Config{NodeID: "db-3", Network: net, Logger: log.With("node", "db-3")})
	if extra.HasState() {
		t.Fatal("a fresh node claims Raft state")
	}
	var want []membership.Candidate
	for _, n := range append(nodes, extra) {
		want = append(want, membership.Candidate{ID: n.ID(), Addr: n.Addr(), Alive: true})
	}
	opts := membership.Options{Self: leader.ID(), MaxVoters: 5, ExpectedVoters: 3, RemoveAfter: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	// Two passes: the newcomer joins as a non-voter, then is promoted.
	for pass := range 2 {
		current, err := leader.Configuration()
		if err != nil {
			t.Fatal(err)
		}
		plan := membership.Plan(current, want, time.Now(), opts)
		if len(plan) != 1 {
			t.Fatalf("pass %d: plan %+v, want one change", pass, plan)
		}
		if err := leader.ApplyChange(ctx, plan[0]); err != nil {
			t.Fatalf("pass %d: %s: %v", pass, plan[0].Reason, err)
		}
	}
	current, err := leader.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	if !current[3].Voter || current[3].ID != "db-3" {
		t.Fatalf("configuration = %+v, want db-3 a voter", current)
	}
	if plan := membership.Plan(current, want, time.Now(), opts); len(plan) != 0 {
		t.Fatalf("plan after reconciling = %+v, want none", plan)
	}
	waitFor(t, "the newcomer to get state", extra.HasState)
	r := seed(t, nodes...)
	waitConverged(t, r, append(nodes, extra)...)
}

func nodeIndex(nodes []*Node, n *Node) int {
	for i, m := range nodes {
		if m == n {
			return i
		}
	}
	return -1
}

// TestFollowersLearnAppliedRecordAtOnce: with the idle append an hour away, followers still see
// an applied record, because Apply announces its commit itself. A new primary learns its role
// from its own copy of the record, so this is on the failover path.
func TestFollowersLearnAppliedRecordAtOnce(t *testing.T) {
	log, _ := testLogger(t)
	net := NewInmemNetwork()
	var nodes []*Node
	for _, id := range nodeIDs(3) {
		nodes = append(nodes, openNode(t, Config{NodeID: id, Network: net, Logger: log.With("node", id), CommitTimeout: time.Hour}))
	}
	bootstrapAll(t, nodes)
	waitConverged(t, seed(t, nodes...), nodes...)
	for i := range 3 {
		m := &record.Member{ID: nodes[i].ID(), RaftAddr: nodes[i].Addr(), MySQLAddr: fmt.Sprintf("10.0.0.%d:3306", i), Voter: true}
		waitConverged(t, mustApply(t, record.Command{Op: record.OpUpsertMember, Member: m}, nodes...), nodes...)
	}
}
