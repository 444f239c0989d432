package agent

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/mysqlctltest"
)

// preparingAgent is an agent with just what prepareInPass needs, over fake servers: a primary
// at 10.0.0.1 with 5 transactions and two replicas that received them, their appliers held.
func preparingAgent(t *testing.T) (*Agent, record.Record, map[string]*mysqlctltest.Server) {
	t.Helper()
	net := mysqlctltest.NewNetwork()
	servers := map[string]*mysqlctltest.Server{}
	rec := record.Record{Epoch: 4, Primary: "db-1", Members: map[string]record.Member{}}
	for i, id := range []string{"db-1", "db-2", "db-3"} {
		addr := "10.0.0." + id[3:] + ":3306"
		servers[id] = net.Add(addr, uint32(i+1))
		rec.Members[id] = record.Member{ID: id, MySQLAddr: addr}
	}
	ctx := t.Context()
	if err := servers["db-1"].Promote(ctx, mysqlctl.PromoteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"db-2", "db-3"} {
		if err := servers[id].ConfigureReplica(ctx, mysqlctl.Source{Host: "10.0.0.1", Port: 3306}, mysqlctl.ReplicaOptions{SemiSync: true}); err != nil {
			t.Fatal(err)
		}
		servers[id].HoldApplier(true)
	}
	for range 5 {
		if _, err := servers["db-1"].Write(); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"db-2", "db-3"} {
		if _, err := servers[id].Status(ctx); err != nil { // received, not applied
			t.Fatal(err)
		}
	}
	servers["db-1"].Crash()
	a := &Agent{log: slog.New(slog.DiscardHandler), trigger: make(chan struct{}, 1),
		pool: serverPool{dial: func(ctx context.Context, addr string) (mysqlServer, error) { return net.Dial(ctx, addr) }, open: map[string]mysqlServer{}},
		opts: Options{PrepareTimeout: time.Minute, Policy: ha.Policy{Tick: 20 * time.Millisecond}}}
	a.backgroundCtx, a.stopBackground = context.WithCancel(context.Background())
	t.Cleanup(func() { a.stopBackground(); a.background.Wait() })
	return a, rec, servers
}

// A prepare that waits longer than a pass (a candidate applying a long relay log) goes on in the
// background: the pass returns, not ready; passes that decide the same preparation leave it
// running; once it is done, the next pass prepares again, at once, and is ready.
func TestLongPrepareGoesOnInTheBackground(t *testing.T) {
	a, rec, servers := preparingAgent(t)
	d := ha.Decision{Prepare: "db-2", Quarantine: []string{"db-2", "db-3"}}
	addr, quarantine := rec.Members["db-2"].MySQLAddr, []string{rec.Members["db-3"].MySQLAddr}
	ready, err := a.prepareInPass(t.Context(), rec, addr, d, quarantine)
	if ready || err != nil || a.preparing == nil {
		t.Fatalf("first pass with the applier held: ready %t, err %v, in the background %t; want not ready, going on", ready, err, a.preparing != nil)
	}
	running := a.preparing
	for range 3 {
		if ready, err := a.prepareInPass(t.Context(), rec, addr, d, quarantine); ready || err != nil || a.preparing != running {
			t.Fatalf("a later pass deciding the same: ready %t, err %v, same prepare %t", ready, err, a.preparing == running)
		}
	}
	// The same candidate with a recovery planned, or with none any more (the recovery copied
	// everything): still the same preparation, left to finish.
	for _, r := range []*ha.Recover{{From: "db-3"}, nil} {
		later := d
		later.PrepareRecover = r
		if ready, err := a.prepareInPass(t.Context(), rec, addr, later, quarantine); ready || err != nil || a.preparing != running {
			t.Fatalf("a later pass with recovery %v: ready %t, err %v, same prepare %t", r, ready, err, a.preparing == running)
		}
	}
	servers["db-2"].HoldApplier(false)
	<-running.done
	select {
	case <-a.trigger:
	default:
		t.Fatal("the prepare ended in the background without asking for a pass")
	}
	if running.err != nil {
		t.Fatalf("the prepare in the background: %v", running.err)
	}
	if ready, err := a.prepareInPass(t.Context(), rec, addr, d, quarantine); !ready || err != nil {
		t.Fatalf("the pass after it ended: ready %t, err %v; want ready", ready, err)
	}
	if a.preparing != nil {
		t.Fatal("a prepare that ended within its pass is still kept")
	}
}

// A pass that decides another candidate (or no prepare) cancels the one in the background and
// waits for it to return, so two prepares never work on the servers at once; the failure of one
// that ended in the background is reported by the next pass deciding the same preparation.
func TestPrepareInTheBackgroundCancelledOrFailed(t *testing.T) {
	a, rec, servers := preparingAgent(t)
	addr2, addr3 := rec.Members["db-2"].MySQLAddr, rec.Members["db-3"].MySQLAddr
	to2 := ha.Decision{Prepare: "db-2"}
	if ready, err := a.prepareInPass(t.Context(), rec, addr2, to2, []string{addr3}); ready || err != nil {
		t.Fatalf("ready %t, err %v", ready, err)
	}
	first := a.preparing
	to3 := ha.Decision{Prepare: "db-3"}
	if ready, err := a.prepareInPass(t.Context(), rec, addr3, to3, []string{addr2}); ready || err != nil {
		t.Fatalf("another candidate: ready %t, err %v", ready, err)
	}
	select {
	case <-first.done:
	default:
		t.Fatal("the prepare of the first candidate still runs beside the second's")
	}
	if first.err == nil {
		t.Fatal("the cancelled prepare ended without an error, as if its candidate were ready")
	}
	second := a.preparing
	servers["db-3"].Crash() // the candidate dies while it applies
	<-second.done
	_, err := a.prepareInPass(t.Context(), rec, addr3, to3, []string{addr2})
	if err == nil || !strings.Contains(err.Error(), "in the background") {
		t.Fatalf("the pass after the prepare failed in the background: %v, want its failure", err)
	}
	if a.preparing != nil {
		t.Fatal("a failed prepare is kept")
	}
	if !a.endPreparation() {
		t.Fatal("nothing in the background, yet something to end")
	}

	// One that does not return on the cancel (its bookkeeping against a frozen server) holds up
	// no pass: each waits a tick for it, the next prepare starts only once it returned, and a
	// pass deciding its candidate again does not take it for a running prepare.
	stuck := &preparation{key: keyOf(rec, to2), cancel: func() {}, done: make(chan struct{})}
	a.preparing = stuck
	if a.endPreparation() || a.preparing != stuck || !stuck.cancelled {
		t.Fatalf("ending a prepare that does not return: kept %t, cancelled %t", a.preparing == stuck, stuck.cancelled)
	}
	for _, d := range []ha.Decision{to2, to3} {
		if ready, err := a.prepareInPass(t.Context(), rec, addr2, d, nil); ready || err != nil || a.preparing != stuck {
			t.Fatalf("a pass deciding %s while the cancelled one finishes: ready %t, err %v, still waiting for it %t", d.Prepare, ready, err, a.preparing == stuck)
		}
	}
	stuck.err = context.Canceled
	close(stuck.done)
	if ready, err := a.prepareInPass(t.Context(), rec, addr2, to2, nil); ready || err != nil || a.preparing == stuck || a.preparing == nil {
		t.Fatalf("once it returned: ready %t, err %v, a new prepare in the background %t", ready, err, a.preparing != stuck && a.preparing != nil)
	}
}

// In process: both replicas' appliers are busy (held) when the primary's host crashes. The
// leader keeps passing while the candidate cannot finish its prepare (its status is refreshed
// pass after pass), and the failover completes once the applier catches up, with every
// acknowledged write. Before, the pass waited in the prepare, up to PrepareTimeout.
func TestLongPrepareLeavesTheLoopFree(t *testing.T) {
	c := startCluster(t, 3)
	first := c.waitPrimary("")
	var survivors []*member
	for _, m := range c.members {
		if m != first {
			survivors = append(survivors, m)
		}
	}
	acked := writeSome(t, first, 10)
	for _, m := range survivors {
		waitReceived(t, m, acked)
		m.mysql.HoldApplier(true)
	}
	acked = append(acked, writeSome(t, first, 10)...)
	for _, m := range survivors {
		waitReceived(t, m, acked)
	}
	first.crash()
	passes := map[time.Time]bool{}
	for deadline := time.Now().Add(20 * time.Second); len(passes) < 5; time.Sleep(10 * time.Millisecond) {
		for _, m := range survivors {
			if v := m.agent.snapshot(); v.IsLeader && v.ClusterCode == string(ha.CodeFailover) && v.Record.Primary == first.id {
				passes[v.UpdatedAt] = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader passed %d times while its candidate applied, want 5", len(passes))
		}
	}
	for _, m := range survivors {
		m.mysql.HoldApplier(false)
	}
	second := c.waitPrimary(first.id)
	requireContains(t, second, acked)
}
