package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/benchstat"
	"github.com/shoal-db/shoal/test/harness"
)

// BenchmarkReseed measures re-seeding throughput in MB of table data per second: `shoal
// rebuild` of a replica (the joiner's whole job: copy, restart, GTID position), side by side with
// a plain run of the same tool on the same data from the same donor: mariadb-backup --stream
// piped into mbstream -x and prepared; CLONE INSTANCE into a spare server and its restart.
// SHOAL_BENCH_RESEED_MB sets the data size (default 256), SHOAL_BENCH_RUNS the runs (at most 3
// by default). The copy is unthrottled (reseed.max_mib_per_second 0) to compare like with like.
func BenchmarkReseed(b *testing.B) {
	mb := benchstat.Size(b, "SHOAL_BENCH_RESEED_MB", 256)
	runs := benchstat.RunsOr(3)
	for _, flavor := range harness.Flavors() {
		b.Run(string(flavor), func(b *testing.B) {
			c, p, w, m := StartLoaded(b, shoalBinary, flavor, "--reseed.max_mib_per_second", "0")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			dataMB := loadBenchData(ctx, b, c, p, mb)
			joiner, donor := (p+1)%3, (p+2)%3
			var spare *harness.Server
			if flavor == gtid.MySQL {
				s, err := harness.Start(ctx, harness.ServerConfig{Flavor: flavor, Name: "spare", ServerID: 99, SuperReadOnly: true})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Remove()
				spare = s
			}
			var product, plain []float64
			for range runs {
				c.WaitReplicating(p)
				begin := time.Now()
				rb, err := c.Admin.RequestRebuild(ctx, c.AdminAddr(p), c.Name(joiner))
				if err != nil {
					b.Fatal(err)
				}
				if rb.Donor != c.Name(donor) {
					b.Fatalf("rebuild picked donor %s, want the other replica %s", rb.Donor, c.Name(donor))
				}
				c.waitReseeded(joiner, begin)
				took, ok := c.reseedSpan(joiner, begin)
				if !ok {
					b.Fatal("no re-seed start and end in the joiner's log")
				}
				product = append(product, dataMB/took.Seconds())

				begin = time.Now()
				if flavor == gtid.MySQL {
					plainClone(ctx, b, spare, c.Servers[donor])
				} else {
					plainBackup(ctx, b, c.Servers[donor])
				}
				plain = append(plain, dataMB/time.Since(begin).Seconds())
			}
			out := c.Verify(w.Stop(), m.Stop())
			line := fmt.Sprintf("re-seed %s, %.0f MB of data, unthrottled: shoal rebuild %s MB/s; plain %s on the same data %s MB/s",
				flavor, dataMB, benchstat.Rates(product), map[gtid.Flavor]string{gtid.MySQL: "CLONE INSTANCE + restart",
					gtid.MariaDB: "mariadb-backup --stream | mbstream -x + --prepare"}[flavor], benchstat.Rates(plain))
			b.Log(line)
			fmt.Println("BENCH", line)
			b.Logf("%s: %s", flavor, out)
		})
	}
}

// loadBenchData fills app.bulk on the primary with about mb MB of rows, waits until the replicas
// have them, and returns the table's size in MB as InnoDB counts it (data and indexes).
func loadBenchData(ctx context.Context, b *testing.B, c *Cluster, p, mb int) float64 {
	db := c.MySQL(ctx, p).DB()
	exec := func(q string) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE TABLE app.bulk (id INT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(1000))")
	exec("INSERT INTO app.bulk (pad) VALUES (REPEAT('x', 1000))")
	// About 1 KB a row, in transactions of at most 8 MB: a loaded machine takes seconds to
	// commit a bigger one under semi-sync.
	for rows := 1; rows < mb<<10; rows += min(rows, 8192) {
		exec("INSERT INTO app.bulk (pad) SELECT CONCAT(id, REPEAT('y', 990)) FROM app.bulk LIMIT 8192")
	}
	exec("ANALYZE TABLE app.bulk")
	var size float64
	if err := db.QueryRowContext(ctx, "SELECT (DATA_LENGTH + INDEX_LENGTH) / 1048576 FROM information_schema.TABLES "+
		"WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'bulk'").Scan(&size); err != nil {
		b.Fatal(err)
	}
	c.WaitReplicating(p)
	pst, err := c.MySQL(ctx, p).Status(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for j := range c.Servers {
		if err := c.MySQL(ctx, j).WaitApplied(ctx, pst.Executed); err != nil && j != p {
			b.Fatalf("%s did not apply the bulk load: %v", c.Name(j), err)
		}
	}
	return size
}

// reseedSpan is how long member i's last re-seed after begin took, from its agent's log.
func (c *Cluster) reseedSpan(i int, begin time.Time) (time.Duration, bool) {
	var start, end time.Time
	for _, l := range c.LogLines(begin, time.Time{}) {
		if !strings.Contains(l.Text, "node="+c.Name(i)+" ") {
			continue
		}
		switch {
		case strings.Contains(l.Text, "re-seed starting"):
			start = l.At
		case strings.Contains(l.Text, "re-seed done"):
			end = l.At
		}
	}
	return end.Sub(start), !start.IsZero() && end.After(start)
}

// plainClone clones donor into spare with nothing but SQL, and restarts spare as the clone asks.
func plainClone(ctx context.Context, b *testing.B, spare, donor *harness.Server) {
	db, err := sql.Open("mysql", spare.DSN(harness.RootUser, harness.RootPassword)+"&readTimeout=1h")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"SET GLOBAL clone_valid_donor_list = '" + donor.Addr() + "'", "SET GLOBAL super_read_only = OFF"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	_, err = db.ExecContext(ctx, fmt.Sprintf("CLONE INSTANCE FROM '%s'@'%s':%d IDENTIFIED BY '%s'",
		harness.RootUser, donor.Host(), donor.Port(), harness.RootPassword))
	if err != nil && !strings.Contains(err.Error(), "3707") {
		b.Fatalf("CLONE INSTANCE: %v", err)
	}
	if err := (harness.Service{S: spare}).Start(ctx); err != nil {
		b.Fatal(err)
	}
}

// plainBackup streams a mariadb-backup of donor into mbstream -x and prepares it.
func plainBackup(ctx context.Context, b *testing.B, donor *harness.Server) {
	dir := b.TempDir()
	target, scratch := filepath.Join(dir, "copy"), filepath.Join(dir, "scratch")
	for _, d := range []string{target, scratch} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	backup := exec.CommandContext(ctx, "mariadb-backup", "--no-defaults", "--backup", "--stream=mbstream", "--user="+harness.RootUser,
		"--password="+harness.RootPassword, "--socket="+donor.Socket(), "--datadir="+filepath.Join(donor.Dir(), "data"), "--target-dir="+scratch)
	extract := exec.CommandContext(ctx, "mbstream", "-x", "-C", target)
	pipe, err := backup.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	extract.Stdin = pipe
	var stderr strings.Builder
	backup.Stderr, extract.Stderr = &stderr, io.Discard
	if err := extract.Start(); err != nil {
		b.Fatal(err)
	}
	if err := backup.Run(); err != nil {
		b.Fatalf("mariadb-backup: %v: %s", err, stderr.String())
	}
	if err := extract.Wait(); err != nil {
		b.Fatalf("mbstream: %v", err)
	}
	if out, err := exec.CommandContext(ctx, "mariadb-backup", "--no-defaults", "--prepare", "--target-dir="+target).CombinedOutput(); err != nil {
		b.Fatalf("mariadb-backup --prepare: %v: %s", err, out)
	}
}
