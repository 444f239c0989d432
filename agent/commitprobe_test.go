package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
)

// The probe writes only while the loop says the server is the writable primary, one write at a
// time; the loop sees since when the write in flight waits, and a write the loop no longer
// counts (probe stopped, new epoch) does not clear the clock of a later one.
func TestCommitProbe(t *testing.T) {
	started := make(chan time.Time)
	finish := make(chan error)
	p := &commitProbe{interval: 5 * time.Millisecond, now: time.Now, log: slog.New(slog.DiscardHandler),
		write: func(ctx context.Context, at time.Time) error {
			started <- at
			return <-finish
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.run(ctx)
	}()
	defer func() { cancel(); <-done }()

	if since := p.observe(false, 3); !since.IsZero() {
		t.Fatalf("inactive probe waits since %s", since)
	}
	select {
	case <-started:
		t.Fatal("an inactive probe wrote")
	case <-time.After(50 * time.Millisecond):
	}
	p.observe(true, 3)
	at := <-started
	if since := p.observe(true, 3); !since.Equal(at) {
		t.Fatalf("waiting since %s, want the write's start %s", since, at)
	}
	// No second write while one is in flight: the writer goroutine is busy with it.
	finish <- nil
	waitFor(t, func() bool { return p.observe(true, 3).IsZero() }, "a committed write clears the clock")

	// A new epoch starts its clock afresh, even with a write of the old one in flight.
	<-started
	if since := p.observe(true, 4); !since.IsZero() {
		t.Fatalf("a new epoch starts with the old epoch's clock %s", since)
	}
	finish <- nil
	at = <-started
	if since := p.observe(true, 4); !since.Equal(at) {
		t.Fatalf("waiting since %s, want %s", since, at)
	}
	// A failed write ends the wait as well: the commit path answered.
	finish <- context.DeadlineExceeded
	waitFor(t, func() bool { return p.observe(true, 4).IsZero() }, "a failed write clears the clock")
	p.observe(false, 4)
	select {
	case <-started: // begun before the probe stopped
		finish <- nil
	case <-time.After(50 * time.Millisecond):
	}
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A primary whose commit path is stalled is not ready, whatever else it shows.
func TestNotReadyWhileCommitsStall(t *testing.T) {
	v := adminapi.View{Node: "db1", Record: record.Record{Primary: "db1"}, UpdatedAt: time.Now(),
		Local:  adminapi.LocalView{Up: true, Writable: true, CommitStall: string(health.StallCommit), CommitWaitMs: 6000},
		Report: health.Report{MySQLUp: true, Role: health.RolePrimary, Writable: true}}
	if got, want := notReady(v), "commit path stalled (stalled): a heartbeat commit has waited 6s"; got != want {
		t.Fatalf("notReady = %q, want %q", got, want)
	}
	v.Local.CommitStall, v.Local.CommitWaitMs = "", 0
	if got := notReady(v); got != "" {
		t.Fatalf("a serving primary is not ready: %q", got)
	}
}
