package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// A member whose data dir is emptied, while the primary no longer has the binary logs to rebuild
// it, is re-seeded from a backup in the store (backup.reseed_from_backup always: no member
// donates), then replicates from the primary with every acknowledged write and no errant GTIDs,
// the writer going on throughout (issue 15). The newest backup when it empties is older than the
// primary's oldest binary log: it is refused before it is downloaded (the member could not catch
// up from it), and the next backup, taken after the purge, is the one restored. (One test for
// both: a backup usable at once was a second run of the same steps, 200 s of e2e time.)
func TestReseedFromBackup(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		args, catalog := backupStore(t, flavor)
		args = append(args, verifyArgs(t, flavor)...)
		c, p, w, m := StartLoaded(t, shoalBinary, flavor, append(args, "--backup.schedule", "* * * * *",
			"--backup.verify_after_backup", "--backup.reseed_from_backup", "always")...)
		w.WaitAcked(t, 20)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		begun := time.Now()
		taken := waitBackup(t, catalog, begun)
		t.Logf("%s: backup %s taken on %s at GTID %s", flavor, taken.ID, taken.Member, taken.GTIDExecuted)
		verified := waitVerified(t, catalog, taken.ID)
		if !verified.OK {
			t.Errorf("restore test of backup %s failed: %s", taken.ID, verified.Reason)
		}
		t.Logf("%s: backup %s verified by %s: %s", flavor, taken.ID, verified.Member, verified.Reason)
		purgeBinlogs(ctx, t, c.MySQL(ctx, p).DB())

		// Another member's backup: the copy must become a member of its own (MySQL: its own
		// server_uuid), not a twin of the one that took it.
		r := slices.IndexFunc(c.Servers, func(s *harness.Server) bool { return s.Config.Name != taken.Member && s != c.Servers[p] })
		begin := time.Now()
		c.KillAgent(r)
		if err := c.Servers[r].Reinitialize(ctx); err != nil {
			t.Fatal(err)
		}
		c.joinHost(r, c.Servers[r].PID())
		c.StartAgent(r)
		c.waitLog(r, begin, "could not catch up")
		c.waitReseeded(r, begin)
		restored := ""
		for _, l := range c.LogLines(begin, time.Time{}) {
			if strings.Contains(l.Text, "node="+c.Name(r)+" ") && strings.Contains(l.Text, "re-seeded from a backup") {
				restored = regexp.MustCompile(`backup=(\S+)`).FindStringSubmatch(l.Text)[1]
				t.Log(l.Text)
			}
		}
		if restored == "" {
			t.Fatalf("%s re-seeded, but not from a backup", c.Name(r))
		}
		// Newer backups may exist by now, not yet tested: a verified one comes first.
		if v := waitVerified(t, catalog, restored); !v.OK {
			t.Errorf("%s restored backup %s, whose restore test failed: %s", c.Name(r), restored, v.Reason)
		}
		if restored == taken.ID {
			t.Errorf("%s restored backup %s, older than the primary's binary logs", c.Name(r), restored)
		}
		t.Logf("%s: %s re-seeded from a backup and replicating %s after its data dir was emptied", flavor, c.Name(r), time.Since(begin).Round(time.Millisecond))
		keptEveryWrite(t, c, w, m)
	})
}

// waitLog waits until member i's agent logged text after begin.
func (c *Cluster) waitLog(i int, begin time.Time, text string) {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, l := range c.LogLines(begin, time.Time{}) {
			if strings.Contains(l.Text, "node="+c.Name(i)+" ") && strings.Contains(l.Text, text) {
				c.t.Log(l.Text)
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s logged no %q within 2 minutes", c.Name(i), text)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// verifyArgs are the agent flags for restore tests: MySQL's throwaway server runs in the
// harness's chroot, so its scratch dir lies there.
func verifyArgs(t *testing.T, flavor gtid.Flavor) []string {
	t.Helper()
	if flavor == gtid.MariaDB {
		return []string{"--backup.verify_command", "/usr/sbin/mariadbd", "--backup.verify_dir", t.TempDir()}
	}
	root := harness.MySQLRoot()
	dir, err := os.MkdirTemp(filepath.Join(root, "srv", "shoal"), "verify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return []string{"--backup.verify_command", "chroot," + root + ",/usr/sbin/mysqld",
		"--backup.verify_dir", dir, "--backup.verify_dir_server", strings.TrimPrefix(dir, root)}
}

// waitVerified waits for backup id's restore test to be recorded and returns it.
func waitVerified(t *testing.T, catalog backup.Catalog, id string) *backup.Verification {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		entries, err := catalog.List(ctx)
		cancel()
		if err != nil {
			t.Fatalf("list backups: %v", err)
		}
		for _, e := range entries {
			if e.ID == id && e.Verification != nil {
				return e.Verification
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("backup %s: no restore test recorded within 3 minutes", id)
		}
		time.Sleep(2 * time.Second)
	}
}
