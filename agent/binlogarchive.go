package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/shoal-db/shoal/backup/schedule"
	"github.com/shoal-db/shoal/consensus/record"
)

// BinlogArchiver archives the local server's closed binlog files; *backup.BinlogArchiver
// implements it.
type BinlogArchiver interface {
	Pass(ctx context.Context) error
}

// BinlogArchiveOptions turn the binlog archive on: Archiver runs every Interval while the
// record names this member the primary.
type BinlogArchiveOptions struct {
	Archiver BinlogArchiver
	Interval time.Duration
}

// BinlogPruner deletes the archived binlog files no kept backup needs, returning how many.
type BinlogPruner interface {
	PruneBinlogs(ctx context.Context) (int, error)
}

// withWindow is r with the point-in-time window of the given length ending at now: retention
// keeps the backup every instant of it replays from. 0: r as it is.
func withWindow(r schedule.Retention, now time.Time, window time.Duration) schedule.Retention {
	if window > 0 {
		r.RestorableSince = now.Add(-window)
	}
	return r
}

// archivesBinlogs decides whether this member archives its binlog now. Only the primary the
// record names does: it alone writes new transactions, and a demoted primary's files may hold
// transactions the new primary never got, which must not enter the archive as history. A
// replica's files hold nothing the primary's do not.
func archivesBinlogs(rec record.Record, self string) (bool, string) {
	if rec.Primary != self {
		return false, "this member is not the primary"
	}
	return true, "this member is the primary"
}

// startBinlogArchive runs the archive loop until the agent stops.
func (a *Agent) startBinlogArchive() {
	if o := a.opts.BinlogArchive; o != nil {
		a.background.Go(func() { runBinlogArchive(a.backgroundCtx, *o, a.raft.Record, a.opts.NodeID, a.log) })
	}
}

func runBinlogArchive(ctx context.Context, o BinlogArchiveOptions, current func() record.Record, self string, log *slog.Logger) {
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if ok, _ := archivesBinlogs(current(), self); !ok {
			continue
		}
		err := o.Archiver.Pass(ctx)
		switch {
		case err != nil && ctx.Err() == nil && err.Error() != lastErr:
			// Logged when it changes: a store that is down fails every pass the same way.
			log.Warn("binlog archive pass failed", "err", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			log.Info("binlog archive passes again")
			lastErr = ""
		}
	}
}
