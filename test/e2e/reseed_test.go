package e2e

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// reseeded runs one re-seed scenario per flavor on a 3-member cluster under a writer and a
// split-brain monitor: break a replica (break returns once it is broken), then the product's own
// repair must bring it back replicating from the primary with every acknowledged write and no
// errant GTIDs, the writer going on throughout (Verify).
func reseeded(t *testing.T, breakReplica func(t *testing.T, c *Cluster, primary, replica int)) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		c, p, w, m := StartLoaded(t, shoalBinary, flavor)
		w.WaitAcked(t, 20)
		r := (p + 1) % len(c.Servers)
		begin := time.Now()
		breakReplica(t, c, p, r)
		c.waitReseeded(r, begin)
		t.Logf("%s: %s re-seeded and replicating %s after the fault", flavor, c.Name(r), time.Since(begin).Round(time.Millisecond))
		keptEveryWrite(t, c, w, m)
	})
}

// keptEveryWrite checks, after a re-seed, that the writer goes on and every member holds every
// acknowledged write, none errant (Verify); it stops the writer and the monitor.
func keptEveryWrite(t *testing.T, c *Cluster, w *Writer, m *Monitor) {
	t.Helper()
	w.WaitAcked(t, w.Acked()+20)
	acked := w.Stop()
	out := c.Verify(acked, m.Stop())
	if len(out.Errant) > 0 {
		t.Errorf("errant members after the re-seed: %v", out.Errant)
	}
	t.Logf("%s: %d acknowledged writes, all present; %s", c.Flavor, len(acked), out)
}

// A replica whose data dir is emptied (a replaced disk, a new pod: it restarts initialized but
// without data) is re-seeded by the leader's own decision. The primary's binary logs are purged
// first, as on a long-running cluster, so replication alone could not rebuild it.
func TestReseedEmptiedMember(t *testing.T) {
	reseeded(t, func(t *testing.T, c *Cluster, p, r int) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		purgeBinlogs(ctx, t, c.MySQL(ctx, p).DB())
		c.KillAgent(r)
		if err := c.Servers[r].Reinitialize(ctx); err != nil {
			t.Fatal(err)
		}
		c.joinHost(r, c.Servers[r].PID())
		c.StartAgent(r)
	})
}

// A replica holding an errant transaction is fenced by its agent and, on `shoal rebuild`,
// re-seeded from the other replica (never the primary while a replica can donate). The rebuild
// is RepairErrant's, the repair the chaos suite and the benchmarks make.
func TestRebuildErrantMember(t *testing.T) {
	reseeded(t, func(t *testing.T, c *Cluster, p, r int) {
		c.makeErrant(t, r)
		repairs := c.RepairErrant(p)
		if len(repairs) != 1 || repairs[0].Member != c.Name(r) || repairs[0].Donor == c.Name(p) || repairs[0].Donor == c.Name(r) {
			t.Fatalf("repairs %+v: want %s re-seeded from the other replica", repairs, c.Name(r))
		}
	})
}

// With both replicas errant no replica may donate, and none acknowledges the primary's commits:
// writes wait. `shoal rebuild` of one has the primary lend its data read-only (the commits
// waiting for acks would hold a copy up), and writes reopen once that member is back as an
// acknowledging replica; the other is then re-seeded from it.
func TestRebuildWhenOnlyThePrimaryCanDonate(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		c, p, w, m := StartLoaded(t, shoalBinary, flavor)
		w.WaitAcked(t, 20)
		first, second := (p+1)%len(c.Servers), (p+2)%len(c.Servers)
		c.makeErrant(t, first)
		c.makeErrant(t, second)
		stalled := w.Acked()
		begin := time.Now()
		repairs := c.RepairErrant(p)
		// The second copies the first once the leader sees it receive, or the primary again when
		// asked a moment before that (it then lends again while no replica acknowledges).
		if len(repairs) != 2 || repairs[0].Donor != c.Name(p) || repairs[1].Donor != repairs[0].Member && repairs[1].Donor != c.Name(p) {
			t.Fatalf("repairs %+v: want one errant member re-seeded from the primary %s, then the other from it or the primary", repairs, c.Name(p))
		}
		t.Logf("%s: %s lent by the primary, %s from %s, %s after the writes stalled at %d acknowledged",
			flavor, repairs[0].Member, repairs[1].Member, repairs[1].Donor, time.Since(begin).Round(time.Millisecond), stalled)
		if !c.Logged(begin, "read-only for the copy") {
			t.Error("the primary never logged lending its data read-only")
		}
		keptEveryWrite(t, c, w, m)
	})
}

// makeErrant writes a transaction on replica r behind its agent's back and waits until its agent
// reports it errant (and so fenced: its replication stopped). With the agent stopped, nothing
// fences the server back while the transaction is written. read_only stays on (the monitor
// would see two writable servers otherwise): it does not bind root, while MySQL's
// super_read_only does.
func (c *Cluster) makeErrant(t *testing.T, r int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.KillAgent(r)
	stmts := []string{"CREATE TABLE app.errant_" + c.Name(r) + " (id INT PRIMARY KEY)"}
	if c.Flavor == gtid.MySQL {
		stmts = []string{"SET GLOBAL super_read_only = OFF", stmts[0], "SET GLOBAL super_read_only = ON"}
	}
	db := c.MySQL(ctx, r).DB()
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s on %s: %v", q, c.Name(r), err)
		}
	}
	c.StartAgent(r)
	for {
		one, cancel := context.WithTimeout(ctx, time.Second)
		v, err := c.Admin.Status(one, c.AdminAddr(r))
		cancel()
		if err == nil && v.Errant != "" {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never reported errant: %+v %v", c.Name(r), v.Local, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// purgeBinlogs leaves db's server with its current binary log only. A log a replica still reads
// is not purged, so it tries until the replicas moved on to the new one.
func purgeBinlogs(ctx context.Context, t *testing.T, db *sql.DB) {
	t.Helper()
	if _, err := db.ExecContext(ctx, "FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	for {
		logs := binlogs(ctx, t, db)
		if len(logs) == 1 {
			return
		}
		if _, err := db.ExecContext(ctx, "PURGE BINARY LOGS TO ?", logs[len(logs)-1]); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("binary logs %v still there", logs)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// binlogs lists the server's binary logs, oldest first.
func binlogs(ctx context.Context, t *testing.T, db *sql.DB) []string {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		// Log_name first; MySQL has a column more than MariaDB.
		vals := make([]any, len(cols))
		var name string
		vals[0] = &name
		for i := 1; i < len(vals); i++ {
			vals[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(vals...); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}
