package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// A member whose data dir is emptied, while the primary no longer has the binary logs to rebuild
// it, is re-seeded from the newest backup in the store (backup.reseed_from_backup always: no
// member donates), then replicates from the primary with every acknowledged write and no errant
// GTIDs, the writer going on throughout (issue 15).
func TestReseedFromBackup(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		args, catalog := backupStore(t, flavor)
		c, p, w, m := StartLoaded(t, shoalBinary, flavor,
			append(args, "--backup.schedule", "* * * * *", "--backup.reseed_from_backup", "always")...)
		w.WaitAcked(t, 20)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		// Purged before the backup, so the binary logs from its position on are still there: the
		// restored member can catch up, though replication alone could not fill an empty one.
		purgeBinlogs(ctx, t, c.MySQL(ctx, p).DB())
		purged := time.Now()
		taken := waitBackup(t, catalog, purged)
		t.Logf("%s: backup %s taken on %s at GTID %s", flavor, taken.ID, taken.Member, taken.GTIDExecuted)

		r := (p + 1) % len(c.Servers)
		begin := time.Now()
		c.KillAgent(r)
		if err := c.Servers[r].Reinitialize(ctx); err != nil {
			t.Fatal(err)
		}
		c.joinHost(r, c.Servers[r].PID())
		c.StartAgent(r)
		c.waitReseeded(r, begin)
		restored := false
		for _, l := range c.LogLines(begin, time.Time{}) {
			if strings.Contains(l.Text, "node="+c.Name(r)+" ") && strings.Contains(l.Text, "re-seeded from a backup") {
				restored = true
				t.Log(l.Text)
			}
		}
		if !restored {
			t.Errorf("%s re-seeded, but not from a backup", c.Name(r))
		}
		t.Logf("%s: %s re-seeded from a backup and replicating %s after its data dir was emptied", flavor, c.Name(r), time.Since(begin).Round(time.Millisecond))
		w.WaitAcked(t, w.Acked()+20)
		acked := w.Stop()
		out := c.Verify(acked, m.Stop())
		if len(out.Errant) > 0 {
			t.Errorf("errant members after the re-seed: %v", out.Errant)
		}
		t.Logf("%s: %d acknowledged writes, all present; %s", flavor, len(acked), out)
	})
}
