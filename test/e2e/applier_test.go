package e2e

import (
	"context"
	"fmt"
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
		r := lowerReplica(c, p)
		// Its own agent would restart the applier towards a serving primary: freeze it until the
		// primary is gone, after which it leaves replication threads alone.
		c.PauseAgent(r)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Root(r).ExecContext(ctx, c.ReplicaStatement("STOP REPLICA SQL_THREAD"))
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
		rejoinAndVerify(t, c, p, w, m)
	})
}

// A replica whose applier stopped on an error (a duplicate key: a row written on the replica
// itself, outside the binlog) when the primary's host crashes: the other replica, holding every
// acknowledged write, is promoted, and the broken one is left as it is for an operator. Once the
// operator removes the conflicting row and starts replication, it follows the new primary.
func TestHostCrashWithAFailedApplier(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		c, p, w, m := StartLoaded(t, shoalBinary, flavor)
		w.WaitAcked(t, 20)
		r := lowerReplica(c, p)
		ids := w.AckedIDs()
		conflict := ids[len(ids)-1] + 100 // a write the writer makes within a second or so
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c.WriteLocally(ctx, r, fmt.Sprintf("INSERT INTO app.acks (id) VALUES (%d)", conflict))
		c.WaitApplierError(r, conflict)
		time.Sleep(time.Second) // the leader reads the failed applier before the crash, as in production
		c.KillAgent(p)
		if err := c.Servers[p].Kill(); err != nil {
			t.Fatal(err)
		}
		next := c.WaitPrimary(p, 90*time.Second)
		if next == r {
			t.Fatalf("promoted %s, whose applier failed", c.Name(r))
		}
		w.WaitAcked(t, w.Acked()+20)
		t.Logf("%s: applier of %s failed on a duplicate key, primary %s -> %s", flavor, c.Name(r), c.Name(p), c.Name(next))

		c.RepairApplier(ctx, r, conflict)
		rejoinAndVerify(t, c, p, w, m)
	})
}

// lowerReplica is the lower-indexed replica of a three-member cluster with primary p: the one a
// tie between equal received sets would pick.
func lowerReplica(c *Cluster, p int) int {
	r := (p + 1) % len(c.Servers)
	if o := (p + 2) % len(c.Servers); o < r {
		r = o
	}
	return r
}

// rejoinAndVerify brings crashed primary p back (server and agent), lets writes go on, and
// checks every promise (Verify).
func rejoinAndVerify(t *testing.T, c *Cluster, p int, w *Writer, m *Monitor) {
	t.Helper()
	c.RestartServer(p)
	c.StartAgent(p)
	w.WaitAcked(t, w.Acked()+20)
	acked := w.Stop()
	out := c.Verify(acked, m.Stop())
	t.Logf("%s: %d acknowledged writes, all present; %s", c.Flavor, len(acked), out)
}
