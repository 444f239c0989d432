package consensus

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/shoal-db/shoal/consensus/membership"
	"github.com/shoal-db/shoal/consensus/record"
)

// snapshotIndex is the index of the node's newest snapshot.
func snapshotIndex(t *testing.T, n *Node) uint64 {
	t.Helper()
	i, err := strconv.ParseUint(n.Stats()["last_snapshot_index"], 10, 64)
	if err != nil {
		t.Fatalf("stats of %s: %v", n.ID(), err)
	}
	return i
}

// The whole cluster stops and restarts at once over real TCP and boltdb: each node's record comes
// back from its snapshot before any leader exists, and the cluster goes on from there.
func TestSnapshotAndRestart(t *testing.T) {
	log, _ := testLogger(t)
	var cfgs []Config
	for i, addr := range freeAddrs(t, 3) {
		id := nodeIDs(3)[i]
		cfgs = append(cfgs, Config{
			NodeID: id, BindAddr: addr, DataDir: t.TempDir(), Logger: log.With("node", id),
			SnapshotInterval: 20 * time.Millisecond, SnapshotThreshold: 1,
		})
	}
	open := func() []*Node {
		var nodes []*Node
		for _, cfg := range cfgs {
			nodes = append(nodes, openNode(t, cfg))
		}
		return nodes
	}
	nodes := open()
	bootstrapAll(t, nodes)
	r := seed(t, nodes...)
	r = mustApply(t, record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: "db-2", Reason: "before restart"}, nodes...)
	waitConverged(t, r, nodes...)
	for _, n := range nodes {
		applied, err := strconv.ParseUint(n.Stats()["applied_index"], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, n.ID()+" to snapshot everything applied", func() bool { return snapshotIndex(t, n) >= applied })
	}
	for _, n := range nodes {
		if err := n.Close(); err != nil {
			t.Fatalf("close %s: %v", n.ID(), err)
		}
	}

	// A longer heartbeat keeps the restarted nodes leaderless while the restored records are
	// checked, so nothing but the snapshot can explain them.
	for i := range cfgs {
		cfgs[i].HeartbeatTimeout = 2 * time.Second
	}
	nodes = open()
	for _, n := range nodes {
		if n.Leader(); n.IsLeader() {
			t.Fatalf("%s leads already; the check below would prove nothing", n.ID())
		}
		if got := n.Record(); !equalRecords(got, r) {
			t.Errorf("%s restored %+v, want %+v", n.ID(), got, r)
		}
		if !n.HasState() {
			t.Errorf("%s lost its Raft state", n.ID())
		}
		if err := n.Bootstrap([]membership.Server{{ID: n.ID(), Addr: n.Addr(), Voter: true}}); !errors.Is(err, ErrAlreadyBootstrapped) {
			t.Errorf("bootstrap after restart of %s = %v, want ErrAlreadyBootstrapped", n.ID(), err)
		}
	}
	r = mustApply(t, record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: "db-0", Reason: "after restart"}, nodes...)
	if r.Epoch != 2 {
		t.Fatalf("epoch after restart = %d, want 2", r.Epoch)
	}
	waitConverged(t, r, nodes...)
}

func TestOpenRefusesLockedDataDir(t *testing.T) {
	log, _ := testLogger(t)
	cfg := Config{NodeID: "db-0", BindAddr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: log}
	openNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if n, err := Open(ctx, cfg); err == nil {
		n.Close()
		t.Fatal("a second node opened the same data dir")
	} else if !contains(err.Error(), "open raft store") {
		t.Errorf("error = %v, want it to name the store", err)
	}
}
