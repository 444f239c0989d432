package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// The primary's host crashes while the only replica holding some acknowledged writes cannot
// apply them (its applier stopped on a duplicate key): the other replica, which stopped
// receiving before those writes, gets them copied from the broken one's binlog and relay log
// and is promoted, and every acknowledged write survives (MHA's recovery, issue 12 item 2). The
// broken replica is left as it is for an operator; once its conflicting row is removed and
// replication started, it follows the new primary.
func TestHostCrashWithOnlyAFailedApplierHolding(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		c, p, w, m := StartLoaded(t, shoalBinary, flavor)
		w.WaitAcked(t, 20)
		r := lowerReplica(c, p) // the broken holder
		h := 3 - p - r          // the healthy replica that lacks the writes
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		// h stops receiving; its agent, frozen until the primary is gone, cannot start it again.
		c.PauseAgent(h)
		paused := true
		defer func() {
			if paused {
				c.ResumeAgent(h)
			}
		}()
		c.ExecRoot(ctx, h, c.ReplicaStatement("STOP REPLICA IO_THREAD"))
		lacked := w.Acked()
		ids := w.AckedIDs()
		conflict := ids[len(ids)-1] + 100 // a write the writer makes within a second or so
		c.WriteLocally(ctx, r, fmt.Sprintf("INSERT INTO app.acks (id) VALUES (%d)", conflict))
		c.WaitApplierError(r, conflict)
		w.WaitAcked(t, w.Acked()+10) // received by r alone, past its failed applier
		t.Logf("%s: %d writes acknowledged by %s alone, its applier failed", flavor, w.Acked()-lacked, c.Name(r))
		time.Sleep(time.Second) // the leader reads the failed applier before the crash, as in production

		c.KillAgent(p)
		if err := c.Servers[p].Kill(); err != nil {
			t.Fatal(err)
		}
		crashed := time.Now()
		c.ResumeAgent(h)
		paused = false
		next := c.WaitPrimary(p, 90*time.Second)
		took := time.Since(crashed)
		if next != h {
			t.Fatalf("promoted %s, not %s", c.Name(next), c.Name(h))
		}
		w.WaitAcked(t, w.Acked()+20)
		t.Logf("%s: primary %s -> %s %s after the crash, with %s's writes recovered from its logs", flavor, c.Name(p), c.Name(next),
			took.Round(time.Millisecond), c.Name(r))
		if !c.Logged(time.Time{}, "recovered transactions from a member's logs") {
			t.Fatal("no agent logged a recovery: the writes reached the new primary some other way, so the test proves nothing")
		}
		if errno := c.ReplicaColumn(r, "Last_SQL_Errno"); errno == "" || errno == "0" {
			t.Fatalf("the applier of %s runs again (errno %q): it was the operator's to repair", c.Name(r), errno)
		}

		c.RepairApplier(ctx, r, conflict)
		rejoinAndVerify(t, c, p, w, m)
	})
}
