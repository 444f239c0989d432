package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// A replica whose applier is stopped (STOP REPLICA SQL_THREAD, no error) when the primary's host
// crashes must not leave the cluster without a primary: either the other replica, holding
// everything, is promoted, or the stopped one has its applier started and is promoted; every
// acknowledged write survives (issue 12 item 2).
func TestHostCrashWithAStoppedApplier(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		c, p, w, m := StartLoaded(t, shoalBinary, flavor)
		w.WaitAcked(t, 20)
		// The lower-indexed replica: the one a tie between equal received sets would pick.
		r := (p + 1) % len(c.Servers)
		if o := (p + 2) % len(c.Servers); o < r {
			r = o
		}
		// Its own agent would restart the applier towards a serving primary: freeze it until the
		// primary is gone, after which it leaves replication threads alone.
		c.PauseAgent(r)
		stop := "STOP REPLICA SQL_THREAD"
		if flavor == gtid.MariaDB {
			stop = "STOP SLAVE SQL_THREAD"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Servers[r].RootDB(t).ExecContext(ctx, stop)
		cancel()
		if err != nil {
			c.ResumeAgent(r)
			t.Fatalf("stop the applier of %s: %v", c.Name(r), err)
		}
		w.WaitAcked(t, w.Acked()+10) // received by r, not applied there
		c.KillAgent(p)
		if err := c.Servers[p].Kill(); err != nil {
			c.ResumeAgent(r)
			t.Fatal(err)
		}
		c.ResumeAgent(r)
		next := c.WaitPrimary(p, 90*time.Second)
		w.WaitAcked(t, w.Acked()+20)
		t.Logf("%s: applier of %s stopped, primary %s -> %s", flavor, c.Name(r), c.Name(p), c.Name(next))
		c.RestartServer(p)
		c.StartAgent(p)
		w.WaitAcked(t, w.Acked()+20)
		acked := w.Stop()
		out := c.Verify(acked, m.Stop())
		t.Logf("%s: %d acknowledged writes, all present; %s", flavor, len(acked), out)
	})
}
