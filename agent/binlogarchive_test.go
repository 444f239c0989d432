package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-db/shoal/backup/schedule"
	"github.com/shoal-db/shoal/consensus/record"
)

type countingArchiver struct {
	passes atomic.Int32
	fail   atomic.Bool
}

func (c *countingArchiver) Pass(context.Context) error {
	c.passes.Add(1)
	if c.fail.Load() {
		return errors.New("store down")
	}
	return nil
}

// The loop archives only while the record names this member the primary, and keeps going
// through failing passes.
func TestBinlogArchiveOnlyOnThePrimary(t *testing.T) {
	var mu sync.Mutex
	rec := record.Record{Primary: "db-2"}
	current := func() record.Record { mu.Lock(); defer mu.Unlock(); return rec }
	setPrimary := func(p string) { mu.Lock(); rec.Primary = p; mu.Unlock() }
	arch := &countingArchiver{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runBinlogArchive(ctx, BinlogArchiveOptions{Archiver: arch, Interval: time.Millisecond}, current, "db-1", slog.New(slog.DiscardHandler))
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := arch.passes.Load(); n != 0 {
		t.Fatalf("%d passes on a replica", n)
	}
	setPrimary("db-1")
	arch.fail.Store(true)
	waitFor("failing passes", func() bool { return arch.passes.Load() >= 3 })
	arch.fail.Store(false)
	n := arch.passes.Load()
	waitFor("passes after the failures", func() bool { return arch.passes.Load() >= n+3 })
	setPrimary("db-3")
	time.Sleep(20 * time.Millisecond) // a pass under way may end
	n = arch.passes.Load()
	time.Sleep(50 * time.Millisecond)
	if m := arch.passes.Load(); m != n {
		t.Errorf("%d passes after the member stopped being the primary", m-n)
	}
	cancel()
	<-done
}

// The window reaches retention as the start of what must stay restorable; a backup that ended
// before it is the window's base and kept, older ones go.
func TestRetentionWithWindow(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	backups := []schedule.Backup{
		{ID: "d1", End: now.Add(-6 * day), Valid: true},
		{ID: "d2", End: now.Add(-4 * day), Valid: true},
		{ID: "d3", End: now.Add(-2 * day), Valid: true},
		{ID: "d4", End: now.Add(-day), Valid: true},
	}
	r := schedule.Retention{KeepCount: 1}
	if got := withWindow(r, now, 0); got != r {
		t.Errorf("no window: %+v", got)
	}
	var deleted []string
	for _, d := range schedule.Retain(now, backups, nil, withWindow(r, now, 3*day)) {
		deleted = append(deleted, d.ID)
	}
	if fmt.Sprint(deleted) != "[d1]" {
		t.Errorf("deleted %v with a 3-day window, want [d1] (d2 is its base)", deleted)
	}
}
