package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// The primary's agent archives its binlog while the writer writes; the primary's server is
// killed, and the new primary's agent goes on. The archive then replays, from the cluster's
// first transaction, without a gap to everything the new primary has (issue 15).
func TestBinlogArchiveFailover(t *testing.T) {
	harness.EachFlavor(t, testBinlogArchiveFailover)
}

func testBinlogArchiveFailover(t *testing.T, flavor gtid.Flavor) {
	args, catalog := backupStore(t, flavor)
	// The agents find their binlogs through /proc/<pid>/root of the server named by
	// mysql.pid_file: the MySQL servers run in a chroot.
	c, p, w, m := StartLoaded(t, shoalBinary, flavor, append(args, "--ha.failover_cooldown", "1s",
		"--backup.binlogs.enabled", "true", "--backup.binlogs.interval", "1s", "--backup.binlogs.flush_interval", "2s")...)
	waitFiles := func(member string, n int) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			files, err := catalog.ListBinlogs(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for _, f := range files {
				if f.Member == member {
					got++
				}
			}
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d files of %s archived in 2 minutes, want %d", got, member, n)
			}
		}
	}
	w.WaitAcked(t, 20)
	waitFiles(c.Name(p), 2)
	if err := c.Servers[p].Kill(); err != nil {
		t.Fatal(err)
	}
	next := c.WaitPrimary(p, 60*time.Second)
	w.WaitAcked(t, w.Acked()+50)
	waitFiles(c.Name(next), 2)
	c.RestartServer(p)
	acked := w.Stop()
	out := c.Verify(acked, m.Stop())
	t.Logf("%d acknowledged writes, all present; %s", len(acked), out)

	// Close the new primary's file and wait for the archive to reach all it has.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := c.MySQL(ctx, next)
	st, err := srv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		files, err := catalog.ListBinlogs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		steps, abandoned, err := backup.PlanReplay(flavor, gtid.Set{}, files, backup.BinlogTarget{})
		if err != nil || len(abandoned) > 0 {
			t.Fatalf("the archive of %d files does not replay: %v; abandoned %d", len(files), err, len(abandoned))
		}
		reached := gtid.MustParse(flavor, "")
		for _, s := range steps {
			if reached, err = reached.Union(gtid.MustParse(flavor, s.File.GTIDAfter)); err != nil {
				t.Fatal(err)
			}
		}
		if reachedAll(flavor, reached, st.Executed) {
			t.Logf("%s: the archive replays without a gap through %d files of %d to %s (the new primary %s was at %s)",
				flavor, len(steps), len(files), reached, c.Name(next), st.Executed)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive reaches %s, the new primary is at %s", reached, st.Executed)
		}
	}
}

// reachedAll reports whether the archive's state holds every transaction of the server's:
// MySQL as sets, MariaDB by the highest seqno of each domain.
func reachedAll(flavor gtid.Flavor, archive, server gtid.Set) bool {
	if flavor == gtid.MariaDB {
		have := archive.Domains()
		for d, seq := range server.Domains() {
			if have[d] < seq {
				return false
			}
		}
		return true
	}
	ok, err := archive.Contains(server)
	return err == nil && ok
}
