package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// bigCommitStallTimeout is the lowest ha.commit_stall_timeout the policy accepts with the
// default detection timeout and probe interval, so that a big commit clearly outlasts it.
const bigCommitStallTimeout = 2 * time.Second

// A user's big transaction (128 MB) commits for longer than ha.commit_stall_timeout: the
// heartbeat queues behind its binlog write and its semi-sync ack, but the commit path moves all
// along. That is no stall: no failover, and the transaction commits (issue 12 item 3).
func TestBigCommitIsNoStall(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		// The binlogs in memory: a shared disk busy with them starved the agents' Raft here (a
		// lease lost, the primary fenced), which is another test.
		binlogFS := func(_ int, cfg *harness.ServerConfig) { cfg.BinlogFSBytes = 1 << 30 }
		// A heartbeat every 250 ms, so that one waits behind nearly all of the commit.
		c, p, w, m := StartLoadedWith(t, shoalBinary, flavor, binlogFS, "--ha.commit_stall_timeout", bigCommitStallTimeout.String(),
			"--ha.commit_probe_interval", "250ms")
		w.WaitAcked(t, 20)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// A commit that happens to be quick shows nothing: the second try is twice as big (both
		// fit in the binlogs' 1 GiB).
		for try, size := range []int{2, 4} {
			if bigCommit(ctx, t, c, p, size) {
				break
			}
			if try == 1 {
				t.Fatalf("no heartbeat waited past ha.commit_stall_timeout (%s) in two tries: the commits were too quick to show anything",
					bigCommitStallTimeout)
			}
		}
		w.WaitAcked(t, w.Acked()+20)
		out := c.Verify(w.Stop(), m.Stop())
		t.Logf("%s: %s", flavor, out)
	})
}

// bigCommit commits a big transaction of size (BigTransactionTimes) on member p while the other
// servers are throttled, and fails the test if the primary moved or an agent judged the commit
// path stalled. It reports whether a heartbeat waited past the stall timeout behind it, and the
// primary's agent said why that was no stall: what makes the test worth anything.
func bigCommit(ctx context.Context, t *testing.T, c *Cluster, p, size int) bool {
	t.Helper()
	begin := time.Now()
	// The replicas receive it slowly, as over a slow link: their servers run a fifth of the
	// time (a third let MariaDB's commits through within the stall timeout on a quiet machine). Alone, MySQL committed 64 MB within 2 s on a quiet machine here, and 256 MB on
	// the disk starved the agents' Raft on a busy one (a leader lost, the primary fenced for
	// want of a lease).
	stopThrottle := c.throttle(t, p)
	defer stopThrottle()
	done := c.BigTransactionTimes(ctx, p, size)
	var longest time.Duration
wait:
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the big transaction failed: %v", err)
			}
			break wait
		case <-time.After(100 * time.Millisecond):
		}
		qctx, qcancel := context.WithTimeout(ctx, time.Second)
		v, err := c.Admin.Status(qctx, c.AdminAddr(p))
		qcancel()
		if err == nil {
			longest = max(longest, time.Duration(v.Local.CommitWaitMs)*time.Millisecond)
		}
	}
	stopThrottle()
	t.Logf("%s: the big transaction (x%d) committed on %s after %s; the longest heartbeat wait seen: %s", c.Flavor, size, c.Name(p),
		time.Since(begin).Round(time.Millisecond), longest)
	if now := c.Primary(ctx); now != p {
		t.Fatalf("the primary moved from %s to member %d during the big commit", c.Name(p), now)
	}
	if at, ok := c.FirstDecision(begin, string(ha.CodeCommitStalled)); ok {
		t.Fatalf("an agent judged the commit path stalled at %s", at.Format(time.RFC3339Nano))
	}
	// Both signals were there: the primary's agent found its binlog on disk (through the
	// pid file, into MySQL's chroot).
	for _, l := range c.LogLines(begin, time.Time{}) {
		if strings.Contains(l.Text, "cannot read the binlog's size") {
			t.Errorf("an agent could not read its binlog's size: %s", l.Text)
		}
	}
	_, moving := c.FirstDecision(begin, string(ha.CodeCommitMoving))
	if !moving || longest < bigCommitStallTimeout {
		t.Logf("no heartbeat waited past ha.commit_stall_timeout (%s; longest seen %s, %s logged: %t): too quick to show anything",
			bigCommitStallTimeout, longest, ha.CodeCommitMoving, moving)
		return false
	}
	return true
}

// throttle has every server but member p's run a third of the time (stopped for 200 ms, less
// than a probe's timeout, then running for 100 ms) until the returned function is called.
func (c *Cluster) throttle(t *testing.T, p int) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			for i, s := range c.Servers {
				if i != p {
					if err := s.Pause(); err != nil {
						t.Error(err)
					}
				}
			}
			time.Sleep(400 * time.Millisecond)
			for i, s := range c.Servers {
				if i != p {
					if err := s.Resume(); err != nil {
						t.Error(err)
					}
				}
			}
			select {
			case <-quit:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }
}
