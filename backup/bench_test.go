package backup_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/backup/miniotest"
	"github.com/shoal-db/shoal/backup/s3store"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/benchstat"
	"github.com/shoal-db/shoal/test/harness"
)

// BenchmarkBackupRestore backs up a server holding SHOAL_BENCH_BACKUP_MB (default 500) MB of
// half-compressible rows to a local MinIO, side by side with the plain pipe of the same tool
// into the same MinIO, and restores shoal's backup into an empty data dir. The plain pipe is
// `mariadb-backup --stream=mbstream | zstd -1 -T0 | rclone rcat` (MariaDB) or CLONE LOCAL then
// `tar | zstd -1 -T0 | rclone rcat` (MySQL); the two alternate which goes first. Rates are MB of
// the archive (the server's files as the flavor's tool streams them) per second; restore
// includes MariaDB's prepare. SHOAL_BENCH_RUNS sets the runs (default 3). Run it alone:
//
//	SHOAL_BENCH_BACKUP_MB=5000 go test ./backup -run '^$' -bench BackupRestore -benchtime 1x -timeout 150m
func BenchmarkBackupRestore(b *testing.B) {
	mb := benchstat.Size(b, "SHOAL_BENCH_BACKUP_MB", 500)
	if _, err := exec.LookPath("rclone"); err != nil {
		b.Fatalf("the plain pipe needs rclone (make deps installs it): %v", err)
	}
	runs := benchstat.RunsOr(3)
	for _, flavor := range harness.Flavors() {
		b.Run(string(flavor), func(b *testing.B) {
			r := newRig(b, flavor)
			// The product's default parts (backup.s3.part_size_mib, parallel_parts), not the tests'.
			r.store = newStore(b, s3store.Config{Endpoint: r.minio.Endpoint, Bucket: r.bucket, Prefix: "shoal", Insecure: true,
				AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey, ParallelParts: 2})
			r.catalog.Store, r.taker.Store = r.store, r.store
			r.restore.Catalog = r.catalog
			r.taker.ObjectSize, r.taker.ProgressInterval = 0, 30*time.Second
			r.restore.ProgressInterval = 30 * time.Second
			ctx := context.Background()
			db := r.db(b, ctx).DB()
			dataMB := benchFill(b, ctx, db, mb)
			plain := plainPipe{b: b, r: r, db: db, flavor: flavor}
			var product, piped, restored, plainRestored, ratio []float64
			var archiveMB, storedMB float64
			for run := range runs {
				var shoalTook, plainTook time.Duration
				takeShoal := func() {
					begin := time.Now()
					m, err := r.taker.Take(ctx)
					if err != nil {
						b.Fatal(err)
					}
					shoalTook = time.Since(begin)
					archiveMB, storedMB = float64(m.RawBytes)/1e6, float64(m.CompressedBytes)/1e6
					target := filepath.Join(b.TempDir(), "data")
					begin = time.Now()
					if _, err := r.restore.Restore(ctx, m.ID, target); err != nil {
						b.Fatal(err)
					}
					restored = append(restored, archiveMB/time.Since(begin).Seconds())
					if err := os.RemoveAll(target); err != nil {
						b.Fatal(err)
					}
					if err := r.catalog.Delete(ctx, m.ID); err != nil {
						b.Fatal(err)
					}
				}
				takePlain := func() {
					var restoreTook time.Duration
					plainTook, restoreTook = plain.run(ctx, run)
					plainRestored = append(plainRestored, archiveMB/restoreTook.Seconds())
				}
				if run == 0 {
					takeShoal() // first: the plain restore's rate needs the archive's size
					takePlain()
				} else if run%2 == 1 {
					takePlain()
					takeShoal()
				} else {
					takeShoal()
					takePlain()
				}
				product = append(product, archiveMB/shoalTook.Seconds())
				piped = append(piped, archiveMB/plainTook.Seconds())
				ratio = append(ratio, 100*plainTook.Seconds()/shoalTook.Seconds())
				b.Logf("run %d: shoal backup %v, plain pipe %v", run+1, shoalTook.Round(time.Millisecond), plainTook.Round(time.Millisecond))
			}
			lines := []string{
				fmt.Sprintf("backup %s, %.0f MB of table data, %.0f MB archive, %.0f MB stored: shoal %s MB/s; plain %s %s MB/s; shoal at %s %% of the plain pipe",
					flavor, dataMB, archiveMB, storedMB, benchstat.Rates(product), plain.name(), benchstat.Rates(piped), benchstat.Rates(ratio)),
				fmt.Sprintf("restore %s, %.0f MB archive, prepare included: shoal %s MB/s; plain %s %s MB/s",
					flavor, archiveMB, benchstat.Rates(restored), plain.restoreName(), benchstat.Rates(plainRestored)),
				fmt.Sprintf("backup and restore %s: peak RSS of the process that ran them %.0f MiB", flavor, peakRSSMiB(b)),
			}
			for _, line := range lines {
				b.Log(line)
				fmt.Println("BENCH", line)
			}
		})
	}
}

// benchFill writes about mb MB of rows of 512 random and 500 repeated bytes (which compress
// about 2:1) in statements of 10 MB, without binlogging them: the backups read the data files,
// and the disk is spared a second copy. It returns the table's size in MB as InnoDB counts it.
func benchFill(b *testing.B, ctx context.Context, db *sql.DB, mb int) float64 {
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string) {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	exec("SET SESSION sql_log_bin = 0")
	exec("CREATE TABLE app.seq (n INT PRIMARY KEY)")
	exec("INSERT INTO app.seq VALUES (0)")
	for rows := 1; rows < 10000; rows *= 2 {
		exec("INSERT INTO app.seq SELECT n + (SELECT COUNT(*) FROM app.seq) FROM app.seq")
	}
	exec("CREATE TABLE app.r (id INT AUTO_INCREMENT PRIMARY KEY, v VARBINARY(2048))")
	begin := time.Now()
	for written := 0; written < mb; written += 10 {
		exec("INSERT INTO app.r (v) SELECT CONCAT(RANDOM_BYTES(512), REPEAT('shoal', 100)) FROM app.seq WHERE n < 9766")
	}
	exec("ANALYZE TABLE app.r")
	var size float64
	if err := conn.QueryRowContext(ctx, "SELECT (DATA_LENGTH + INDEX_LENGTH) / 1e6 FROM information_schema.TABLES "+
		"WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'r'").Scan(&size); err != nil {
		b.Fatal(err)
	}
	b.Logf("%.0f MB of rows written in %v", size, time.Since(begin).Round(time.Second))
	return size
}

// plainPipe is the same backup done with the flavor's tool, zstd and a plain S3 uploader.
type plainPipe struct {
	b      *testing.B
	r      *rig
	db     *sql.DB
	flavor gtid.Flavor
}

func (p plainPipe) name() string {
	if p.flavor == gtid.MySQL {
		return "CLONE LOCAL + tar | zstd -1 -T0 | rclone rcat"
	}
	return "mariadb-backup --stream | zstd -1 -T0 | rclone rcat"
}

func (p plainPipe) restoreName() string {
	if p.flavor == gtid.MySQL {
		return "rclone cat | zstd -d | tar -x + sync"
	}
	return "rclone cat | zstd -d | mbstream -x + mariadb-backup --prepare + sync"
}

// run takes the plain backup as object plain/<run>, restores it into an empty directory,
// removes both, and returns how long the backup and the restore took.
func (p plainPipe) run(ctx context.Context, run int) (backup, restore time.Duration) {
	b := p.b
	scratch := b.TempDir()
	object := fmt.Sprintf("bench:%s/plain/%d", p.r.bucket, run)
	// Without the host's AWS_* settings: an AWS_CA_BUNDLE stops rclone's S3 client (seen here),
	// and the uploader is configured whole by these.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "AWS_") })
	env = append(env, "RCLONE_CONFIG_BENCH_TYPE=s3", "RCLONE_CONFIG_BENCH_PROVIDER=Minio",
		"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="+miniotest.AccessKey, "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="+miniotest.SecretKey,
		"RCLONE_CONFIG_BENCH_ENDPOINT=http://"+p.r.minio.Endpoint)
	begin := time.Now()
	var producer string
	if p.flavor == gtid.MySQL {
		// As the product does: the server writes the clone under its own (chroot) view of its
		// directory, and the pipe reads it from the host's.
		name := fmt.Sprintf("plain-%d", run)
		if _, err := p.db.ExecContext(ctx, "CLONE LOCAL DATA DIRECTORY = ?", path.Join(p.r.taker.CloneDir, name)); err != nil {
			b.Fatalf("plain clone: %v", err)
		}
		local := filepath.Join(p.r.taker.CloneDirLocal, name)
		defer os.RemoveAll(local)
		producer = "tar -C " + local + " -cf - ."
	} else {
		var dataDir string
		if err := p.db.QueryRowContext(ctx, "SELECT @@datadir").Scan(&dataDir); err != nil {
			b.Fatal(err)
		}
		cnf := filepath.Join(scratch, "client.cnf")
		conn := fmt.Sprintf("[mariadb-backup]\nuser=%s\npassword=%s\nhost=%s\nport=%d\n", harness.RootUser, harness.RootPassword,
			p.r.srv.Host(), p.r.srv.Port())
		if err := os.WriteFile(cnf, []byte(conn), 0o600); err != nil {
			b.Fatal(err)
		}
		producer = fmt.Sprintf("mariadb-backup --defaults-file=%s --backup --stream=mbstream --datadir=%s --target-dir=%s 2>%s",
			cnf, dataDir, filepath.Join(scratch, "target"), filepath.Join(scratch, "backup.log"))
	}
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -o pipefail; "+producer+" | zstd -1 -T0 -q | rclone rcat "+object)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(scratch, "backup.log"))
		b.Fatalf("plain pipe: %v: %s\n%s", err, out, log)
	}
	backup = time.Since(begin)

	target := filepath.Join(scratch, "restored")
	if err := os.Mkdir(target, 0o750); err != nil {
		b.Fatal(err)
	}
	// Synced at the end, as a restore must be before a server starts on it.
	unpack := fmt.Sprintf("tar -x -C %[1]s && sync -f %[1]s", target)
	if p.flavor == gtid.MariaDB {
		unpack = fmt.Sprintf("mbstream -x -C %[1]s && mariadb-backup --prepare --target-dir=%[1]s 2>%[2]s && sync -f %[1]s",
			target, filepath.Join(scratch, "prepare.log"))
	}
	begin = time.Now()
	cmd = exec.CommandContext(ctx, "bash", "-c", "set -o pipefail; rclone cat "+object+" | zstd -d -q | "+unpack)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(scratch, "prepare.log"))
		b.Fatalf("plain restore: %v: %s\n%s", err, out, log)
	}
	restore = time.Since(begin)
	if err := os.RemoveAll(target); err != nil {
		b.Fatal(err)
	}
	rm := exec.CommandContext(ctx, "rclone", "deletefile", object)
	rm.Env = env
	if out, err := rm.CombinedOutput(); err != nil {
		b.Fatalf("remove the plain backup: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return backup, restore
}

// peakRSSMiB is this process's peak resident memory (VmHWM): the backup and restore ran in it.
func peakRSSMiB(b *testing.B) float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				b.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
