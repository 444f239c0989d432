package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/test/harness"
)

// A global read lock held on the primary stalls every commit while mysqld answers every probe:
// the primary's agent must notice through its heartbeat, and the leader fail over. The fence of
// the old primary kills the lock's connection with every other client's.
func TestCommitStallReadLock(t *testing.T) {
	fault(t, func(t *testing.T, c *Cluster, p int) func() {
		ctx := context.Background()
		conn, err := c.Servers[p].RootDB(t).Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
			t.Fatal(err)
		}
		c.waitCommitStall(t, p, health.StallCommit)
		return func() { conn.Close() }
	})
}

// A full binlog file system makes MySQL and MariaDB wait for space ("Disk is full writing ...
// Waiting for someone to free space"), commits stalled while reads and probes go on. The
// fence's kill of the waiting sessions frees MariaDB; MySQL (binlog_error_action=ABORT_SERVER)
// aborts instead, and the failover goes on as after a crash.
func TestCommitStallBinlogDiskFull(t *testing.T) {
	full := func(_ int, cfg *harness.ServerConfig) { cfg.BinlogFSBytes = 64 << 20 }
	faultWith(t, full, func(t *testing.T, c *Cluster, p int) func() {
		free, err := c.Servers[p].FillBinlogFS()
		if err != nil {
			t.Fatal(err)
		}
		c.waitCommitStall(t, p, health.StallCommit)
		return func() {
			if err := free(); err != nil {
				t.Fatal(err)
			}
			if c.Servers[p].PID() == 0 {
				t.Logf("%s aborted on the fence; restarting it", c.Name(p))
				c.RestartServer(p)
			}
		}
	})
}

// waitCommitStall waits until member p's status reports its commit path stalled as want, and
// logs how long that took.
func (c *Cluster) waitCommitStall(t *testing.T, p int, want health.CommitStall) {
	t.Helper()
	begin := time.Now()
	for time.Since(begin) < 30*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		v, err := c.Admin.Status(ctx, c.AdminAddr(p))
		cancel()
		if err == nil && v.Local.CommitStall == string(want) {
			t.Logf("%s reports its commit path %s after %s (heartbeat waiting %dms; reason: %s)", c.Name(p), want,
				time.Since(begin).Round(time.Millisecond), v.Local.CommitWaitMs, v.Reason)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s never reported its commit path %s", c.Name(p), want)
}
