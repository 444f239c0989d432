package agent

import (
	"maps"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
)

// A silent server's probe is not started again while one is in flight, a pass that gives up on
// it leaves it running, and the next pass takes its result; a failed result makes the next pass
// impatient, a success patient again.
func TestRemoteProbesKeepOneInFlight(t *testing.T) {
	var r remoteProbes
	release := make(chan ha.Server)
	calls := 0
	probe := func() ha.Server { calls++; return <-release }

	run, answeredLast := r.start("db1:3306", probe)
	if !answeredLast {
		t.Fatal("a server never probed counts as answering")
	}
	if _, ok := r.wait("db1:3306", run, time.Now().Add(10*time.Millisecond)); ok {
		t.Fatal("wait returned a result the probe has not given")
	}
	again, _ := r.start("db1:3306", probe)
	if again != run {
		t.Fatal("a second probe started while one is in flight")
	}
	release <- ha.Server{Err: "i/o timeout", Stalled: true}
	s, ok := r.wait("db1:3306", again, time.Now().Add(time.Minute))
	if !ok || s.Up || s.Err != "i/o timeout" {
		t.Fatalf("wait = %+v, %t; want the probe's failure", s, ok)
	}
	if calls != 1 {
		t.Fatalf("%d probes ran, want 1", calls)
	}

	next, answeredLast := r.start("db1:3306", probe)
	if next == run || answeredLast {
		t.Fatalf("after a failure: new run %t, answered last %t; want a new run, not answered", next != run, answeredLast)
	}
	release <- ha.Server{Up: true}
	if s, ok := r.wait("db1:3306", next, time.Now().Add(time.Minute)); !ok || !s.Up {
		t.Fatalf("wait = %+v, %t; want up", s, ok)
	}
	if _, answeredLast := r.start("db2:3306", func() ha.Server { return ha.Server{Up: true} }); !answeredLast {
		t.Fatal("another address inherited db1's history")
	}
	last, answeredLast := r.start("db1:3306", func() ha.Server { return ha.Server{Up: true} })
	if !answeredLast {
		t.Fatal("a success did not make the next pass patient again")
	}
	r.wait("db1:3306", last, time.Now().Add(time.Minute))
}

func TestRecordMoved(t *testing.T) {
	base := record.Record{Cluster: "orders", Epoch: 3, Primary: "db-0", Members: map[string]record.Member{"db-0": {}, "db-1": {}}}
	for name, change := range map[string]func(r *record.Record){
		"epoch":      func(r *record.Record) { r.Epoch++ },
		"primary":    func(r *record.Record) { r.Primary = "db-1" },
		"paused":     func(r *record.Record) { r.Paused = true },
		"switchover": func(r *record.Record) { r.Switchover = &record.Switchover{To: "db-1"} },
		"members":    func(r *record.Record) { r.Members = map[string]record.Member{"db-0": {}} },
	} {
		moved := base.Clone()
		change(&moved)
		if !recordMoved(base, moved) {
			t.Errorf("a change of %s is not seen", name)
		}
	}
	same := base.Clone()
	same.LastReason = "reworded"
	if recordMoved(base, same) {
		t.Error("a change no decision branches on counts as a move")
	}
}

// A non-leader reads, for its publishers, exactly the members alive in gossip whose reports do
// not show them serving in their recorded role: a replica still reporting the old primary as its
// source right after a failover, one whose applier stopped; never itself, the primary (read
// anyway) or a member gossip does not know.
func TestUnsettled(t *testing.T) {
	rec := dnsRecord() // db1 primary
	rec.Primary = "db2"
	oldSource := replicaReport // its source is db1, the old primary
	onNew := with(replicaReport, func(r *health.Report) { r.Source = "db2" })
	stopped := with(onNew, func(r *health.Report) { r.SQLRunning = false })
	peers := map[string]ha.Peer{
		"db1": alive(oldSource), // this agent
		"db2": alive(replicaReport),
		"db3": alive(oldSource),
		"db4": alive(stopped),
	}
	got := unsettled("db1", rec, peers)
	want := map[string]string{"db3": "10.0.0.3:3306", "db4": "10.0.0.4:3306"}
	if !maps.Equal(got, want) {
		t.Fatalf("after a failover: %v, want %v", got, want)
	}

	peers["db3"], peers["db4"] = alive(onNew), ha.Peer{State: ha.PeerDead, Report: onNew}
	if got := unsettled("db1", rec, peers); len(got) != 0 {
		t.Fatalf("settled, or not alive: %v, want nothing", got)
	}
	delete(peers, "db3")
	if got := unsettled("db1", rec, peers); len(got) != 0 {
		t.Fatalf("unknown to gossip: %v, want nothing", got)
	}
}
