package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// The primary's host crashes while a 64 MB transaction is on its way to the replicas, so both
// relay logs end inside it: the replicas are frozen while the primary commits it, and thawed
// after the crash with only what their sockets held. The transaction was never acknowledged. It
// must not hold the failover (MySQL's multi-threaded applier defers STOP REPLICA for 60 s in the
// middle of a group), and no member but the crashed one may have it (issue 12 item 2).
func TestHostCrashDuringBigTransaction(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		c, p, w, m := StartLoaded(t, shoalBinary, flavor)
		w.WaitAcked(t, 20)
		root := c.Servers[p].RootDB(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var replicas []int
		for i := range c.Servers {
			if i != p {
				replicas = append(replicas, i)
			}
		}
		insertErr := c.BigTransaction(ctx, p)
		// Once its commit writes it to the binlog (the writer's events are tiny), freeze the
		// replicas: the primary's senders fill their sockets and block, and the commit waits for
		// an ack. Freezing them earlier would hold the commit behind the writer's, waiting for
		// acks the frozen replicas cannot give.
		if !c.WaitBinlogGrowth(p, 4<<20, insertErr) {
			t.Fatal("the big transaction never reached the binlog")
		}
		for _, r := range replicas {
			if err := c.Servers[r].Pause(); err != nil {
				t.Fatal(err)
			}
		}
		thaw := func() {
			for _, r := range replicas {
				c.Servers[r].Resume()
			}
		}
		defer thaw()
		for {
			var n int
			err := root.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST "+
				"WHERE INFO LIKE 'INSERT INTO bulk.big%' AND STATE LIKE 'Waiting for semi-sync ACK%'").Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				break
			}
			select {
			case err := <-insertErr:
				t.Fatalf("the big transaction ended before the crash (the replicas received it whole before they froze): %v", err)
			default:
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.KillAgent(p)
		if err := c.Servers[p].Kill(); err != nil {
			t.Fatal(err)
		}
		crashed := time.Now()
		thaw()
		// A liveness bound, far above a failover's few seconds and below the 60 s a deferred
		// stop of the applier would take.
		next := c.WaitPrimary(p, 45*time.Second)
		w.WaitAcked(t, w.Acked()+20)
		t.Logf("%s: primary %s crashed while sending a %d MB transaction; %s promoted and acknowledging writes %s later",
			flavor, c.Name(p), BigTransactionBytes>>20, c.Name(next), time.Since(crashed).Round(time.Millisecond))
		for _, r := range replicas {
			var rows int
			if err := c.Servers[r].RootDB(t).QueryRowContext(ctx, "SELECT COUNT(*) FROM bulk.big").Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if rows != 0 {
				t.Errorf("%s applied %d rows of the transaction it never fully received", c.Name(r), rows)
			}
		}
		rejoinAndVerify(t, c, p, w, m)
	})
}
