package e2e

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
// Two cores stand for the hosts: one is the backup replica's host and the object store (its
// mysqld and agent, the backup process, MinIO); the other, the one that takes the disk's
// interrupts (the primary's commits wait for them), is everything else (the primary, the other
// replica, which acknowledges the semi-sync writes, and the client). The disk is shared,
// which a real deployment does not do, so this is an upper bound. With SHOAL_BENCH_COST_DISK=own
// the backup replica's files (its data dir, and the clone for MySQL) and MinIO's objects are
// kept in memory (tmpfs) instead: the replica's host then has a disk of its own and the object
// store is remote, as in a deployment, and the primary and the acknowledging replica keep the
// machine's disk to themselves. SHOAL_BENCH_COST_MB (default 1000) sizes the data,
// SHOAL_BENCH_RUNS the backups (default 3).
func BenchmarkBackupPrimaryCost(b *testing.B) {
	mb := benchstat.Size(b, "SHOAL_BENCH_COST_MB", 1000)
	runs := benchstat.RunsOr(3)
	disk := cmp.Or(os.Getenv("SHOAL_BENCH_COST_DISK"), "shared")
	nice, err := strconv.Atoi(cmp.Or(os.Getenv("SHOAL_BENCH_COST_NICE"), "0"))
	if err != nil {
		b.Fatalf("SHOAL_BENCH_COST_NICE: %v", err)
	}
	if disk != "shared" && disk != "own" {
		b.Fatalf("SHOAL_BENCH_COST_DISK=%q: want shared or own", disk)
	}
	for _, flavor := range harness.Flavors() {
		b.Run(string(flavor), func(b *testing.B) {
			s3 := miniotest.Start
			if disk == "own" {
				s3 = func(t testing.TB) *miniotest.Server { return miniotest.StartOn(t, memoryDir(t, t.TempDir())) }
			}
			args, _ := backupStoreOn(b, flavor, s3(b))
			c := Start(b, shoalBinary, flavor, 3, args...)
			p := c.WaitPrimary(-1, 60*time.Second)
			c.WaitReplicating(p)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
			defer cancel()
			taker, other := (p+1)%3, (p+2)%3
			if disk == "own" {
				c.moveToMemory(b, taker)
				if i := slices.Index(args, "--backup.clone_dir_local"); i >= 0 {
					memoryDir(b, args[i+1])
				}
				c.WaitReplicating(p)
			}
			dataMB := loadBenchData(ctx, b, c, p, mb)

			// Back to every CPU afterwards, whatever the machine has.
			primaryCPU, takerCPU := diskCPUs(b)
			pin(b, primaryCPU, os.Getpid())
			b.Cleanup(func() { pin(b, fmt.Sprintf("0-%d", runtime.NumCPU()-1), os.Getpid()) })
			for i, cpu := range map[int]string{p: primaryCPU, other: primaryCPU, taker: takerCPU} {
				c.mu.Lock()
				agent := c.agents[i].Process.Pid
				c.mu.Unlock()
				pin(b, cpu, agent)
				pin(b, cpu, c.Servers[i].PID())
			}
			minio := pinMinIO(b, takerCPU)
			if disk == "own" {
				// The object store stands for a remote one: its CPU is not the replica host's.
				for _, pid := range minio {
					niceThreads(b, pid, 19)
				}
			}

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
			// rate counts the commits/s while d runs, and how long a commit waited for its
			// semi-sync ack on average meanwhile (the primary's own counters).
			rate := func(d func()) (float64, time.Duration) {
				waited, waits := ackWaits(ctx, b, db, flavor)
				n, begin := commits.Load(), time.Now()
				d()
				waited2, waits2 := ackWaits(ctx, b, db, flavor)
				avg := time.Duration(0)
				if waits2 > waits {
					avg = (waited2 - waited) / time.Duration(waits2-waits)
				}
				return float64(commits.Load()-n) / time.Since(begin).Seconds(), avg
			}
			idle := func() { time.Sleep(20 * time.Second) }
			// MariaDB's backup can be capped (backup.max_mib_per_second); a local clone cannot.
			caps := []int{0}
			if flavor == gtid.MariaDB {
				caps = costCaps(b)
			}
			// measure runs load SHOAL_BENCH_RUNS times between idle windows and prints the cost;
			// it returns the median time load took.
			measure := func(what string, load func() time.Duration) time.Duration {
				var costs, during []float64
				var took []time.Duration
				for run := range runs {
					before, ackBefore := rate(idle)
					var d time.Duration
					loaded, ackLoaded := rate(func() { d = load() })
					after, ackAfter := rate(idle)
					cost := 100 * (1 - loaded/((before+after)/2))
					costs, during, took = append(costs, cost), append(during, loaded), append(took, d)
					b.Logf("run %d, %s: %.0f commits/s before, %.0f during its %v, %.0f after: cost %.1f %%; ack wait per commit %v, %v, %v",
						run+1, what, before, loaded, d.Round(time.Second), after, cost, ackBefore, ackLoaded, ackAfter)
				}
				line := fmt.Sprintf("%s %s, %.0f MB of data, %s disk: primary's commits/s during it %s; cost to the primary %s %%",
					what, flavor, dataMB, disk, benchstat.Rates(during), benchstat.Rates(costs))
				b.Log(line)
				fmt.Println("BENCH", line)
				slices.Sort(took)
				return took[len(took)/2]
			}
			var backupTook time.Duration
			for k, mibps := range caps {
				what := "backup on a replica, unthrottled,"
				if mibps > 0 {
					what = fmt.Sprintf("backup on a replica, backup.max_mib_per_second %d,", mibps)
				}
				took := measure(what, func() time.Duration { return c.backupNow(ctx, b, taker, takerCPU, mibps, nice) })
				if k == 0 {
					backupTook = took
				}
			}
			// The control: nothing but a busy CPU where the backup ran, for as long as it took.
			// What this costs the primary is the machine's, not the backup's: two virtual CPUs
			// of one host need not be independent.
			measure("a busy loop on the replica's CPU", func() time.Duration { return spin(ctx, b, takerCPU, backupTook) })
		})
	}
}

// spin keeps cpus busy for d with a shell loop and returns how long it ran.
func spin(ctx context.Context, b *testing.B, cpus string, d time.Duration) time.Duration {
	begin := time.Now()
	loopCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cmd := exec.CommandContext(loopCtx, "taskset", "-c", cpus, "sh", "-c", "while :; do :; done")
	if err := cmd.Run(); loopCtx.Err() == nil {
		b.Fatalf("busy loop on CPU %s ended early: %v", cpus, err)
	}
	return time.Since(begin)
}

// ackWaits reads the primary's semi-sync counters: the time its commits waited for acks, and
// how many waited.
func ackWaits(ctx context.Context, b *testing.B, db *sql.DB, flavor gtid.Flavor) (time.Duration, int64) {
	prefix := "Rpl_semi_sync_source_"
	if flavor == gtid.MariaDB {
		prefix = "Rpl_semi_sync_master_"
	}
	var name string
	var waited, waits int64
	for _, v := range []struct {
		name string
		to   *int64
	}{{"tx_wait_time", &waited}, {"tx_waits", &waits}} {
		if err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE ?", prefix+v.name).Scan(&name, v.to); err != nil {
			b.Fatalf("read %s%s: %v", prefix, v.name, err)
		}
	}
	return time.Duration(waited) * time.Microsecond, waits
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

// backupNow runs `shoal backup now` as member i, pinned to cpu, its read rate capped at mibps
// (0: not), and returns how long it took.
func (c *Cluster) backupNow(ctx context.Context, b *testing.B, i int, cpu string, mibps, nice int) time.Duration {
	s := c.Servers[i]
	args := []string{"-c", cpu, "nice", "-n", strconv.Itoa(nice), c.binary, "backup", "now", "--cluster", ClusterName, "--node.id", s.Config.Name,
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

// pinMinIO pins the benchmark's MinIO servers (children of this process) to cpu and returns
// their pids.
func pinMinIO(b *testing.B, cpu string) []int {
	out, err := exec.Command("pgrep", "-P", strconv.Itoa(os.Getpid()), "-f", filepath.Base(miniotest.Binary())).Output()
	if err != nil {
		b.Fatalf("find MinIO: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			b.Fatal(err)
		}
		pin(b, cpu, pid)
		pids = append(pids, pid)
	}
	return pids
}

// memoryDir mounts a tmpfs on dir (which exists) for the rest of the test and returns dir.
// The unmount is lazy: a server still running on it at the end keeps it until it exits.
func memoryDir(t testing.TB, dir string) string {
	t.Helper()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "mode=0777", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// moveToMemory moves member i's server directory onto a tmpfs: its mysqld stops, its files are
// copied into a new tmpfs that then takes the directory's place, and it starts again.
func (c *Cluster) moveToMemory(b *testing.B, i int) {
	s := c.Servers[i]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	staging := memoryDir(b, b.TempDir())
	if out, err := exec.Command("cp", "-a", s.Dir()+"/.", staging).CombinedOutput(); err != nil {
		b.Fatalf("copy %s into memory: %v: %s", s.Dir(), err, out)
	}
	if out, err := exec.Command("mount", "--move", staging, s.Dir()).CombinedOutput(); err != nil {
		b.Fatalf("move the tmpfs onto %s: %v: %s", s.Dir(), err, out)
	}
	b.Cleanup(func() { exec.Command("umount", "-l", s.Dir()).Run() })
	c.RestartServer(i)
}

// niceThreads sets the niceness of every thread of pid: Linux keeps it per thread, and threads
// started later take their creator's.
func niceThreads(b *testing.B, pid, nice int) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, syscall.ESRCH) {
			b.Fatalf("nice %d thread %d of %d: %v", nice, tid, pid, err)
		}
	}
}

// diskCPUs returns the CPU that took most of the block devices' interrupts (virtio "-req"
// queues, NVMe) and another one: a commit's fsync completes there, so the primary's side runs
// on it, as a host takes its own disk's interrupts.
func diskCPUs(b *testing.B) (disk, other string) {
	raw, err := os.ReadFile("/proc/interrupts")
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	cpus := len(strings.Fields(lines[0]))
	if cpus < 2 {
		b.Fatalf("the cost benchmark needs two CPUs, /proc/interrupts shows %d", cpus)
	}
	counts := make([]int64, cpus)
	for _, line := range lines[1:] {
		if !strings.Contains(line, "-req") && !strings.Contains(line, "nvme") {
			continue
		}
		fields := strings.Fields(line)
		for k := 0; k < cpus && k+1 < len(fields); k++ {
			n, _ := strconv.ParseInt(fields[k+1], 10, 64)
			counts[k] += n
		}
	}
	busiest := 0
	for k, n := range counts[:2] {
		if n > counts[busiest] {
			busiest = k
		}
	}
	return strconv.Itoa(busiest), strconv.Itoa(1 - busiest)
}
