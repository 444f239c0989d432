package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/backup/miniotest"
	"github.com/shoal-db/shoal/backup/s3store"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// The Raft leader owns the backup schedule: at a slot it gives the job to a replica, which
// streams a physical backup to S3 (a real MinIO) and reports back. The store then holds one
// valid backup for that slot, taken by a replica while writes ran, and its manifest names the
// job (issue 15).
func TestScheduledBackup(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		args, catalog := backupStore(t, flavor)
		c, p, w, m := StartLoaded(t, shoalBinary, flavor, append(args, "--backup.schedule", "* * * * *")...)
		taken := waitBackup(t, catalog, time.Time{})
		if taken.Member == c.Name(p) {
			t.Errorf("backup %s taken on the primary %s, with replicas serving", taken.ID, taken.Member)
		}
		if taken.Job == "" {
			t.Errorf("backup %s names no job: retention could not tell it belongs to a running one", taken.ID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := catalog.Verify(ctx, taken.ID); err != nil {
			t.Errorf("verify %s: %v", taken.ID, err)
		}
		t.Logf("%s: backup %s of job %s taken on %s, %d bytes raw, GTID %s", flavor, taken.ID, taken.Job, taken.Member,
			taken.RawBytes, taken.GTIDExecuted)
		acked := w.Stop()
		c.Verify(acked, m.Stop())
	})
}

// backupStore starts a real MinIO with a bucket for a cluster's backups and returns the agent
// flags that reach it, and its catalog as the test reads it.
func backupStore(t testing.TB, flavor gtid.Flavor) ([]string, backup.Catalog) {
	t.Helper()
	return backupStoreOn(t, flavor, miniotest.Start(t))
}

// backupStoreOn is backupStore on a MinIO the caller started.
func backupStoreOn(t testing.TB, flavor gtid.Flavor, s3 *miniotest.Server) ([]string, backup.Catalog) {
	t.Helper()
	bucket := s3.Bucket(t, "backups")
	keys := t.TempDir()
	for name, v := range map[string]string{"ak": miniotest.AccessKey, "sk": miniotest.SecretKey} {
		if err := os.WriteFile(filepath.Join(keys, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--backup.s3.endpoint", s3.Endpoint, "--backup.s3.bucket", bucket, "--backup.s3.tls", "false",
		"--backup.s3.access_key_id_file", filepath.Join(keys, "ak"), "--backup.s3.secret_access_key_file", filepath.Join(keys, "sk"),
		"--backup.tmp_dir", t.TempDir()}
	if flavor == gtid.MySQL {
		// mysqld writes its clone under its chroot; every member's agent reads it there.
		local, err := os.MkdirTemp(filepath.Join(harness.MySQLRoot(), "srv", "shoal"), "clones-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(local) })
		if err := os.Chmod(local, 0o777); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--backup.clone_dir", strings.TrimPrefix(local, harness.MySQLRoot()), "--backup.clone_dir_local", local)
	}
	store, err := s3store.New(s3store.Config{Endpoint: s3.Endpoint, Bucket: bucket, Insecure: true,
		Credentials: "static", AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return args, backup.Catalog{Store: store, Cluster: ClusterName}
}

// waitBackup waits for a valid backup started after since and returns the newest, with a slot each minute: the first
// comes within a minute, its backup a little later.
func waitBackup(t *testing.T, catalog backup.Catalog, since time.Time) *backup.Manifest {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no valid backup started after %s within 4 minutes of a schedule with a slot each minute", since.Format(time.RFC3339))
		}
		time.Sleep(2 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		entries, err := catalog.List(ctx)
		cancel()
		if err != nil {
			t.Fatalf("list backups: %v", err)
		}
		var newest *backup.Manifest
		for _, e := range entries {
			if e.Valid && e.Manifest.StartTime.After(since) {
				newest = e.Manifest
			}
		}
		if newest != nil {
			return newest
		}
	}
}
