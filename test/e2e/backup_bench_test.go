package e2e

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-db/shoal/backup/miniotest"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/benchstat"
	"github.com/shoal-db/shoal/test/harness"
)

// BenchmarkBackupPrimaryCost measures what a backup on a replica costs the primary's write
// throughput: a closed-loop writer (4 connections, one-row autocommit inserts) on the primary
// counts commits for 20 s before a `shoal backup now` on a replica, during it, and for 20 s
// after it. The cost is 1 - during / mean(before, after). MariaDB's row is repeated with the
// backup capped (SHOAL_BENCH_COST_CAPS, default 32 MiB/s).
//
// Two cores stand for the hosts: CPU 1 is the backup replica's host and the object store
// (its mysqld and agent, the backup process, MinIO); CPU 0 is everything else (the primary, the
// other replica, which acknowledges the semi-sync writes, and the client). The disk is shared,
// which a real deployment does not do, so this is an upper bound. SHOAL_BENCH_COST_MB (default
// 1000) sizes the data, SHOAL_BENCH_RUNS the backups (default 3).
func BenchmarkBackupPrimaryCost(b *testing.B) {
	mb := benchstat.Size(b, "SHOAL_BENCH_COST_MB", 1000)
	runs := benchstat.RunsOr(3)
	for _, flavor := range harness.Flavors() {
		b.Run(string(flavor), func(b *testing.B) {
			args, _ := backupStore(b, flavor)
			c := Start(b, shoalBinary, flavor, 3, args...)
			p := c.WaitPrimary(-1, 60*time.Second)
			c.WaitReplicating(p)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
			defer cancel()
			dataMB := loadBenchData(ctx, b, c, p, mb)
			taker, other := (p+1)%3, (p+2)%3

			// Back to every CPU afterwards, whatever the machine has.
			pin(b, "0", os.Getpid())
			b.Cleanup(func() { pin(b, fmt.Sprintf("0-%d", runtime.NumCPU()-1), os.Getpid()) })
			for i, cpu := range map[int]string{p: "0", other: "0", taker: "1"} {
				c.mu.Lock()
				agent := c.agents[i].Process.Pid
				c.mu.Unlock()
				pin(b, cpu, agent)
				pin(b, cpu, c.Servers[i].PID())
			}
			pinMinIO(b)

			db := c.MySQL(ctx, p).DB()
			if _, err := db.ExecContext(ctx, "CREATE TABLE app.cost (id INT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(200))"); err != nil {
				b.Fatal(err)
			}
			var commits atomic.Int64
			writeCtx, stopWriting := context.WithCancel(ctx)
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for writeCtx.Err() == nil {
						if _, err := db.ExecContext(writeCtx, "INSERT INTO app.cost (pad) VALUES (REPEAT('z', 200))"); err == nil {
							commits.Add(1)
						}
					}
				})
			}
			defer func() { stopWriting(); wg.Wait() }()
			rate := func(d func()) float64 {
				n, begin := commits.Load(), time.Now()
				d()
				return float64(commits.Load()-n) / time.Since(begin).Seconds()
			}
			idle := func() { time.Sleep(20 * time.Second) }
			// MariaDB's backup can be capped (backup.max_mib_per_second); a local clone cannot.
			caps := []int{0}
			if flavor == gtid.MariaDB {
				caps = costCaps(b)
			}
			for _, mibps := range caps {
				var costs, during []float64
				for run := range runs {
					before := rate(idle)
					var took time.Duration
					backing := rate(func() { took = c.backupNow(ctx, b, taker, mibps) })
					after := rate(idle)
					cost := 100 * (1 - backing/((before+after)/2))
					costs, during = append(costs, cost), append(during, backing)
					b.Logf("run %d, cap %d MiB/s: %.0f commits/s before, %.0f during the %v backup on %s, %.0f after: cost %.1f %%",
						run+1, mibps, before, backing, took.Round(time.Second), c.Name(taker), after, cost)
				}
				capped := "unthrottled"
				if mibps > 0 {
					capped = fmt.Sprintf("backup.max_mib_per_second %d", mibps)
				}
				line := fmt.Sprintf("backup on a replica %s, %.0f MB of data, %s: primary's commits/s during it %s; cost to the primary %s %%",
					flavor, dataMB, capped, benchstat.Rates(during), benchstat.Rates(costs))
				b.Log(line)
				fmt.Println("BENCH", line)
			}
		})
	}
}

// costCaps are the backup.max_mib_per_second values MariaDB's row is measured with:
// SHOAL_BENCH_COST_CAPS, a comma-separated list where 0 is unthrottled (default "0,32").
func costCaps(b *testing.B) []int {
	list := cmp.Or(os.Getenv("SHOAL_BENCH_COST_CAPS"), "0,32")
	var caps []int
	for f := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			b.Fatalf("SHOAL_BENCH_COST_CAPS=%q: %q is not a rate in MiB/s (0 for unthrottled)", list, f)
		}
		caps = append(caps, n)
	}
	return caps
}

// backupNow runs `shoal backup now` as member i, pinned to CPU 1, its read rate capped at mibps
// (0: not), and returns how long it took.
func (c *Cluster) backupNow(ctx context.Context, b *testing.B, i, mibps int) time.Duration {
	s := c.Servers[i]
	args := []string{"-c", "1", c.binary, "backup", "now", "--cluster", ClusterName, "--node.id", s.Config.Name,
		"--mysql.addr", s.Socket(), "--mysql.password_file", filepath.Join(c.dir, "root.pw"),
		"--mysql.data_dir", filepath.Join(s.Dir(), "data"), "--backup.max_mib_per_second", strconv.Itoa(mibps)}
	cmd := exec.CommandContext(ctx, "taskset", append(args, c.extra...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	begin := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("shoal backup now on %s: %v: %s", s.Config.Name, err, out[max(0, len(out)-2000):])
	}
	return time.Since(begin)
}

// pin sets the CPU affinity of every thread of pid; threads started later inherit it.
func pin(b *testing.B, cpus string, pid int) {
	if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		b.Fatalf("taskset %s %d: %v: %s", cpus, pid, err, out)
	}
}

// pinMinIO pins the benchmark's MinIO servers (children of this process) to CPU 1.
func pinMinIO(b *testing.B) {
	out, err := exec.Command("pgrep", "-P", strconv.Itoa(os.Getpid()), "-f", filepath.Base(miniotest.Binary())).Output()
	if err != nil {
		b.Fatalf("find MinIO: %v", err)
	}
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			b.Fatal(err)
		}
		pin(b, "1", pid)
	}
}
