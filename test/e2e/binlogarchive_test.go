package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/backup/miniotest"
	"github.com/shoal-db/shoal/backup/s3store"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// The primary's agent archives its binlog while the writer writes; the primary's server is
// killed, and the new primary's agent goes on. The archive then replays, from the cluster's
// first transaction, without a gap to everything the new primary has (issue 15).
//
// MariaDB only: each agent finds its binlog at the server's log_bin_basename, which for the MySQL
// servers the harness runs in a chroot is a path inside it; that needs a backup.binlogs.dir per
// member, which the cluster's shared agent flags cannot give. Package backup runs the failover
// case in process for both flavors.
func TestBinlogArchiveFailover(t *testing.T) {
	flavor := gtid.MariaDB
	s3 := miniotest.Start(t)
	bucket := s3.Bucket(t, "backups")
	keys := t.TempDir()
	for name, v := range map[string]string{"ak": miniotest.AccessKey, "sk": miniotest.SecretKey} {
		if err := os.WriteFile(filepath.Join(keys, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, p, w, m := StartLoaded(t, shoalBinary, flavor, "--backup.s3.endpoint", s3.Endpoint, "--backup.s3.bucket", bucket,
		"--backup.s3.tls", "false", "--backup.s3.access_key_id_file", filepath.Join(keys, "ak"),
		"--backup.s3.secret_access_key_file", filepath.Join(keys, "sk"), "--ha.failover_cooldown", "1s",
		"--backup.binlogs.enabled", "true", "--backup.binlogs.interval", "1s", "--backup.binlogs.flush_interval", "2s")
	store, err := s3store.New(s3store.Config{Endpoint: s3.Endpoint, Bucket: bucket, Insecure: true,
		Credentials: "static", AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	catalog := backup.Catalog{Store: store, Cluster: ClusterName}
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
		steps, err := backup.PlanReplay(flavor, gtid.Set{}, files, backup.BinlogTarget{})
		if err != nil {
			t.Fatalf("the archive of %d files does not replay: %v", len(files), err)
		}
		reached := 0
		if len(steps) > 0 {
			reached = int(gtid.MustParse(flavor, steps[len(steps)-1].File.GTIDAfter).Domains()[0])
		}
		if want := int(st.Executed.Domains()[0]); reached >= want {
			t.Logf("the archive replays without a gap through %d files of %d to seqno %d (the new primary %s is at %d)",
				len(steps), len(files), reached, c.Name(next), want)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive reaches seqno %d, the new primary is at %s", reached, st.Executed)
		}
	}
}
