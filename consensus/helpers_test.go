package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-db/shoal/consensus/membership"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/test/freeport"
)

// Generous bounds: the suite must pass on a loaded 2-core machine. They cap waits, they are not
// what a test measures.
const (
	eventually = 10 * time.Second
	poll       = 10 * time.Millisecond
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuffer collects a test's log lines; they are printed only if the test fails, and tests
// search them for the errors an operator would see.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger must be called before the nodes it serves are opened, so that its cleanup (which
// prints on failure) runs after theirs.
func testLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	b := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// openNode opens cfg and closes it when the test ends (Close is idempotent, so tests may close
// earlier).
func openNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close %s: %v", cfg.NodeID, err)
		}
	})
	return n
}

// bootstrapAll bootstraps every node with the same list, as bootstrap-expect does.
func bootstrapAll(t *testing.T, nodes []*Node) {
	t.Helper()
	var seen []membership.Candidate
	for _, n := range nodes {
		seen = append(seen, membership.Candidate{ID: n.ID(), Addr: n.Addr(), Alive: true})
	}
	servers, ok := membership.ShouldBootstrap(seen, len(nodes))
	if !ok {
		t.Fatalf("membership.ShouldBootstrap(%v) refused", seen)
	}
	for _, n := range nodes {
		if err := n.Bootstrap(servers); err != nil {
			t.Fatalf("bootstrap %s: %v", n.ID(), err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", eventually, what)
		}
		time.Sleep(poll)
	}
}

// waitLeader waits until exactly one of nodes leads and all of them name it.
func waitLeader(t *testing.T, nodes ...*Node) *Node {
	t.Helper()
	var leader *Node
	waitFor(t, "a leader all nodes agree on", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.IsLeader() {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		for _, n := range nodes {
			if id, _ := n.Leader(); id != leader.ID() {
				return false
			}
		}
		return true
	})
	return leader
}

// apply proposes cmd on whichever node leads, retrying only when leadership moved: a loaded
// machine may see an election at any time.
func apply(t *testing.T, cmd record.Command, nodes ...*Node) (record.Record, error) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for {
		leader := waitLeader(t, nodes...)
		ctx, cancel := context.WithTimeout(context.Background(), eventually)
		r, err := leader.Apply(ctx, cmd)
		cancel()
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			return r, err
		}
	}
}

func mustApply(t *testing.T, cmd record.Command, nodes ...*Node) record.Record {
	t.Helper()
	r, err := apply(t, cmd, nodes...)
	if err != nil {
		t.Fatalf("apply %s: %v", cmd.Op, err)
	}
	return r
}

// waitConverged waits until every node's record equals want.
func waitConverged(t *testing.T, want record.Record, nodes ...*Node) {
	t.Helper()
	waitFor(t, "records to converge", func() bool {
		for _, n := range nodes {
			if got := n.Record(); !equalRecords(got, want) {
				return false
			}
		}
		return true
	})
}

func equalRecords(a, b record.Record) bool {
	x, err1 := a.Encode()
	y, err2 := b.Encode()
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// seed initializes the record with the nodes as members and returns it.
func seed(t *testing.T, nodes ...*Node) record.Record {
	t.Helper()
	r := mustApply(t, record.Command{Op: record.OpInit, Cluster: "c1"}, nodes...)
	for _, n := range nodes {
		r = mustApply(t, record.Command{Op: record.OpUpsertMember, Member: &record.Member{ID: n.ID(), RaftAddr: n.Addr(), Voter: true}}, nodes...)
	}
	return r
}

// freeAddrs reserves n loopback ports for nodes that must restart on the same address.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		addrs = append(addrs, freeport.Addr(t))
	}
	return addrs
}

func nodeIDs(n int) []string {
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("db-%d", i))
	}
	return ids
}

// drain empties a Changes channel so a later receive proves a new change.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func contains(haystack string, needles ...string) bool {
	for _, n := range needles {
		if !strings.Contains(haystack, n) {
			return false
		}
	}
	return true
}
