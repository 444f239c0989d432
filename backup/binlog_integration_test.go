package backup_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

func mustExec(t testing.TB, ctx context.Context, s *mysqlctl.Server, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := s.DB().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// rows lists app.p's ids.
func rows(t testing.TB, ctx context.Context, s *mysqlctl.Server) []int {
	t.Helper()
	rs, err := s.DB().QueryContext(ctx, "SELECT id FROM app.p ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var ids []int
	for rs.Next() {
		var id int
		if err := rs.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// lastGTID is the GTID of the server's newest transaction, from its (single-source) state.
func lastGTID(t testing.TB, ctx context.Context, s *mysqlctl.Server) string {
	t.Helper()
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := st.Executed.String()
	if s.Flavor() == gtid.MariaDB {
		return e
	}
	uuid, ivs, _ := strings.Cut(e, ":")
	last := ivs[strings.LastIndexAny(ivs, ":-")+1:]
	return uuid + ":" + last
}

// replayTools are the flavor's binlog tool and client as the harness installs them, and the
// stage dir (in the server's directory, so MySQL's tools in its chroot see it).
func replayTools(t testing.TB, srv *harness.Server) (backup.ReplayTools, string) {
	stage, err := os.MkdirTemp(srv.Dir(), "stage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stage) })
	if srv.Config.Flavor == gtid.MariaDB {
		return backup.ReplayTools{Binlog: []string{"mariadb-binlog"}, Client: []string{"mariadb"}}, stage
	}
	root := chrootOf(t, srv)
	return backup.ReplayTools{Binlog: []string{"chroot", root, "/usr/bin/mysqlbinlog"}, Client: []string{"chroot", root, "/usr/bin/mysql"},
		StageDir: strings.TrimPrefix(stage, root)}, stage
}

func (r *rig) archiver() *backup.BinlogArchiver {
	// The binlog is found through the server's /proc/<pid>/root: the MySQL server runs in a chroot.
	return &backup.BinlogArchiver{Store: r.store, Cluster: "c1", Member: r.srv.Config.Name, Local: r.local,
		PIDFile: filepath.Join(r.srv.Dir(), "mysqld.pid"), Metrics: backup.NewBinlogMetrics(r.reg)}
}

// restoreTo restores backup m into the rig's server (stopped, its data dir emptied), restarts it
// and replays the archive to target. The replay is prepared first: a failure there leaves the
// server as it was.
func (r *rig) restoreTo(t *testing.T, ctx context.Context, m *backup.Manifest, target backup.BinlogTarget) (*backup.Replay, *mysqlctl.Server, error) {
	t.Helper()
	tools, stage := replayTools(t, r.srv)
	defer os.RemoveAll(stage)
	replay, err := backup.PrepareReplay(ctx, r.catalog, m, target, stage)
	if err != nil {
		return nil, nil, err
	}
	if err := r.srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(r.srv.Dir(), "data")
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	if _, err := r.restore.Restore(ctx, m.ID, dataDir); err != nil {
		t.Fatal(err)
	}
	if err := r.srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := replay.Apply(ctx, tools, stage, r.local, nil); err != nil {
		t.Fatal(err)
	}
	s, err := mysqlctl.Open(ctx, r.local)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return replay, s, nil
}

// Writes archived as they happen, then a backup taken before them restored to a time between
// two writes and to a GTID: the rows are exactly those written up to that point. A corrupted and
// a missing archived file are each found before anything is applied.
func TestBinlogArchivePointInTime(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		r := newRig(t, flavor)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		s := r.db(t, ctx)
		mustExec(t, ctx, s, "CREATE TABLE app.p (id INT PRIMARY KEY)", "INSERT INTO app.p VALUES (1)")
		m, err := r.taker.Take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		arch := r.archiver()
		mustExec(t, ctx, s, "INSERT INTO app.p VALUES (2)", "FLUSH BINARY LOGS", "INSERT INTO app.p VALUES (3)")
		if err := arch.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		// Binlogs stamp whole seconds: leave one whole second on each side of the target.
		time.Sleep(1100 * time.Millisecond)
		mid := time.Now()
		time.Sleep(1100 * time.Millisecond)
		mustExec(t, ctx, s, "INSERT INTO app.p VALUES (4)")
		g4 := lastGTID(t, ctx, s)
		mustExec(t, ctx, s, "INSERT INTO app.p VALUES (5)", "FLUSH BINARY LOGS")
		if err := arch.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		if err := arch.Pass(ctx); err != nil { // nothing new: nothing uploaded twice
			t.Fatal(err)
		}
		files, err := r.catalog.ListBinlogs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := metric(t, r.reg, "shoal_backup_binlog_files_total", "archived"); got != float64(len(files)) || len(files) < 2 {
			t.Errorf("%d files archived, %d listed; want the same, at least 2", int(got), len(files))
		}
		if rp := metric(t, r.reg, "shoal_backup_binlog_newest_archived_timestamp_seconds", ""); rp < float64(mid.Unix()) {
			t.Errorf("recovery point %v, before the last writes (%v)", rp, mid.Unix())
		}
		t.Logf("%s: %d files archived; backup at %s; target time %s, GTID %s", flavor, len(files), m.GTIDExecuted, mid.Format(time.RFC3339Nano), g4)

		damageBinlogs(t, ctx, r, m, files)

		_, s2, err := r.restoreTo(t, ctx, m, backup.BinlogTarget{Time: mid})
		if err != nil {
			t.Fatal(err)
		}
		if got := rows(t, ctx, s2); !slices.Equal(got, []int{1, 2, 3}) {
			t.Errorf("restored to %s: rows %v, want [1 2 3]", mid, got)
		}
		rep, s3, err := r.restoreTo(t, ctx, m, backup.BinlogTarget{GTID: g4})
		if err != nil {
			t.Fatal(err)
		}
		if got := rows(t, ctx, s3); !slices.Equal(got, []int{1, 2, 3, 4}) {
			t.Errorf("restored to GTID %s: rows %v, want [1 2 3 4]", g4, got)
		}
		if rep.Last.GTID != g4 {
			t.Errorf("replay ended at %s, want %s", rep.Last.GTID, g4)
		}

		// Pruning: nothing while the first backup is kept; once a backup at g4 is the oldest, the
		// first file (all before g4) goes and the second (which has a later transaction) stays.
		if pruned, err := r.catalog.PruneBinlogs(ctx); err != nil || len(pruned) != 0 {
			t.Errorf("pruned %v (%v) while the first backup is kept", pruned, err)
		}
		time.Sleep(time.Second) // backup ids have a second's resolution
		if _, err := r.taker.Take(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.catalog.Delete(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		pruned, err := r.catalog.PruneBinlogs(ctx)
		if err != nil || len(pruned) != 1 || pruned[0].File != files[0].File {
			t.Errorf("pruned %v (%v), want the first file only", pruned, err)
		}
		if left, err := r.catalog.ListBinlogs(ctx); err != nil || len(left) != len(files)-1 {
			t.Errorf("left %v (%v)", left, err)
		}
	})
}

// damageBinlogs flips a byte of one archived file, then removes one, checking each stops a
// replay before anything is applied; the files are put back after.
func damageBinlogs(t *testing.T, ctx context.Context, r *rig, m *backup.Manifest, files []*backup.BinlogManifest) {
	t.Helper()
	client := r.minio.Client(t)
	key := "shoal/" + files[0].ObjectKey()
	obj, err := client.GetObject(ctx, r.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	orig := readAll(t, obj)
	put := func(b string) {
		if _, err := client.PutObject(ctx, r.bucket, key, strings.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bad := []byte(orig)
	bad[len(bad)/2] ^= 0xff
	put(string(bad))
	stage := t.TempDir()
	if _, err := backup.PrepareReplay(ctx, r.catalog, m, backup.BinlogTarget{}, stage); !errors.Is(err, backup.ErrCorrupt) || !strings.Contains(err.Error(), files[0].File) {
		t.Errorf("replay over a corrupted binlog: got %v, want ErrCorrupt naming %s", err, files[0].File)
	}
	if err := client.RemoveObject(ctx, r.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.PrepareReplay(ctx, r.catalog, m, backup.BinlogTarget{}, t.TempDir()); !errors.Is(err, backup.ErrMissing) {
		t.Errorf("replay over a missing binlog: got %v, want ErrMissing", err)
	}
	// A file gone with its manifest is a gap in the archive.
	mkey := key + ".json"
	mobj, err := client.GetObject(ctx, r.bucket, mkey, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	manifest := readAll(t, mobj)
	if err := client.RemoveObject(ctx, r.bucket, mkey, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.PrepareReplay(ctx, r.catalog, m, backup.BinlogTarget{}, t.TempDir()); !errors.Is(err, backup.ErrGap) {
		t.Errorf("replay over a removed binlog and manifest: got %v, want ErrGap", err)
	}
	put(orig)
	if _, err := client.PutObject(ctx, r.bucket, mkey, strings.NewReader(manifest), int64(len(manifest)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, obj *minio.Object) string {
	t.Helper()
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A failover while the archive runs: the old primary archived a file, the replica that takes
// over holds a file the archive already has (skipped) and one that overlaps it (uploaded). The
// archive has no gap, and a restore to the latest point replays each transaction once.
func TestBinlogArchiveAcrossFailover(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		r := newRig(t, flavor)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		srvB := harness.StartN(t, flavor, 1, func(_ int, c *harness.ServerConfig) { c.Name, c.ServerID = "db2", 2 })[0]
		a := r.db(t, ctx)
		b, err := mysqlctl.Open(ctx, mysqlctl.Config{Addr: srvB.Addr(), User: harness.RootUser, Password: harness.RootPassword})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.ConfigureReplica(ctx, mysqlctl.Source{Host: r.srv.Host(), Port: r.srv.Port(), User: harness.RootUser,
			Password: harness.RootPassword}, mysqlctl.ReplicaOptions{}); err != nil {
			t.Fatal(err)
		}
		caughtUp := func() {
			t.Helper()
			wctx, wcancel := context.WithTimeout(ctx, time.Minute)
			defer wcancel()
			if err := b.WaitApplied(wctx, executed(t, ctx, a)); err != nil {
				t.Fatal(err)
			}
		}
		mustExec(t, ctx, a, "CREATE TABLE app.p (id INT PRIMARY KEY)", "INSERT INTO app.p VALUES (1)")
		m, err := r.taker.Take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		archA := r.archiver()
		archB := &backup.BinlogArchiver{Store: r.store, Cluster: "c1", Member: "db2", Local: mysqlctl.Config{Addr: srvB.Addr(),
			User: harness.RootUser, Password: harness.RootPassword}, Dir: filepath.Join(srvB.Dir(), "data"), Metrics: archA.Metrics,
			Epoch: func() uint64 { return 2 }}
		archA.Epoch = func() uint64 { return 1 }

		mustExec(t, ctx, a, "INSERT INTO app.p VALUES (2)")
		caughtUp()
		mustExec(t, ctx, b, "FLUSH BINARY LOGS") // db2's file: all of it the old primary archives next
		mustExec(t, ctx, a, "INSERT INTO app.p VALUES (3)", "FLUSH BINARY LOGS")
		if err := archA.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		// Written on the old primary, not archived by it (its file is still open), replicated.
		mustExec(t, ctx, a, "INSERT INTO app.p VALUES (4)")
		caughtUp()

		// Failover: db2 takes the writes; it archives from where its binlog stands.
		if err := b.StopReplica(ctx); err != nil {
			t.Fatal(err)
		}
		mustExec(t, ctx, b, "INSERT INTO app.p VALUES (5)", "INSERT INTO app.p VALUES (6)", "FLUSH BINARY LOGS")
		if err := archB.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		want := executed(t, ctx, b)

		files, err := r.catalog.ListBinlogs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			t.Logf("%s: archived %s of %s: %s .. %s", flavor, f.File, f.Member, f.GTIDBefore, f.GTIDAfter)
			if want := map[string]uint64{"db1": 1, "db2": 2}[f.Member]; f.Epoch != want {
				t.Errorf("%s of %s archived in epoch %d, want %d", f.File, f.Member, f.Epoch, want)
			}
		}
		if got := metric(t, r.reg, "shoal_backup_binlog_files_total", "already_archived"); got != 1 {
			t.Errorf("%v files skipped as already archived; want db2's first", got)
		}
		if got := metric(t, r.reg, "shoal_backup_binlog_gaps_total", ""); got != 0 {
			t.Errorf("%v gaps reported", got)
		}
		// After the backup: inserts 2 to 6, each once.
		rep, s2, err := r.restoreTo(t, ctx, m, backup.BinlogTarget{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Transactions != 5 {
			t.Errorf("replayed %d transactions, want 5 (inserts 2 to 6)", rep.Transactions)
		}
		if got := rows(t, ctx, s2); !slices.Equal(got, []int{1, 2, 3, 4, 5, 6}) {
			t.Errorf("restored to the latest point: rows %v, want [1 2 3 4 5 6]", got)
		}
		if got := executed(t, ctx, s2); !backupCovers(flavor, got, want) {
			t.Errorf("restored server at %s, the new primary at %s", got, want)
		}
	})
}

// backupCovers is covers for a test: MySQL sets, MariaDB highest seqno per domain.
func backupCovers(flavor gtid.Flavor, have, want gtid.Set) bool {
	if flavor == gtid.MariaDB {
		return have.MariaDBPosition() == want.MariaDBPosition()
	}
	ok, _ := have.Contains(want)
	return ok
}

// The archive keeps up with a server taking writes, its files closed by the archiver's own
// FLUSH BINARY LOGS on the interval; a restore to the latest point holds every write.
func TestBinlogArchiveWhileWriting(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		r := newRig(t, flavor)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		s := r.db(t, ctx)
		mustExec(t, ctx, s, "CREATE TABLE app.w (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))")
		// Writes go on through the backup: a MySQL clone's position is then only bracketed, and
		// the replay from its lower bound meets transactions the copy holds, which the server
		// skips.
		stopWriting := writeEvery(ctx, s, 5*time.Millisecond, "INSERT INTO app.w (at) VALUES (NOW(6))")
		m, err := r.taker.Take(ctx)
		if err != nil {
			stopWriting()
			t.Fatal(err)
		}
		arch := r.archiver()
		arch.FlushEvery = 300 * time.Millisecond
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if err := arch.Pass(ctx); err != nil {
				stopWriting()
				t.Fatal(err)
			}
		}
		if err := stopWriting(); err != nil {
			t.Fatal(err)
		}
		var written int
		if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM app.w").Scan(&written); err != nil {
			t.Fatal(err)
		}
		want := executed(t, ctx, s)
		flushed := metric(t, r.reg, "shoal_backup_binlog_files_total", "archived")
		mustExec(t, ctx, s, "FLUSH BINARY LOGS")
		if err := arch.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		if flushed < 3 {
			t.Errorf("%v files archived while writing for 3 s with a flush every 300 ms; want several", flushed)
		}
		rep, s2, err := r.restoreTo(t, ctx, m, backup.BinlogTarget{})
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if err := s2.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM app.w").Scan(&got); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d rows written, backup at %s (at most %s), %d files archived, %d transactions replayed", flavor, written, m.GTIDExecuted, m.GTIDExecutedMax, int(metric(t, r.reg, "shoal_backup_binlog_files_total", "archived")), rep.Transactions)
		if got != written || rep.Transactions > written {
			t.Errorf("restored %d rows with %d transactions; %d were written", got, rep.Transactions, written)
		}
		if at := executed(t, ctx, s2); !backupCovers(flavor, at, want) {
			t.Errorf("restored server at %s, the source was at %s", at, want)
		}
	})
}
