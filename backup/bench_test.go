package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/test/harness"
)

// BenchmarkBackupRestore backs up a server holding SHOAL_BENCH_BACKUP_MB (default 500) MB of
// half-compressible rows to a local MinIO and restores it into an empty data dir, reporting
// MB/s of the archive (the server's files as the flavor's tool streams them). Run it alone:
//
//	go test ./backup -run '^$' -bench BackupRestore -benchtime 1x -timeout 60m
func BenchmarkBackupRestore(b *testing.B) {
	mb := 500
	if v := os.Getenv("SHOAL_BENCH_BACKUP_MB"); v != "" {
		var err error
		if mb, err = strconv.Atoi(v); err != nil {
			b.Fatalf("SHOAL_BENCH_BACKUP_MB=%q: %v", v, err)
		}
	}
	for _, flavor := range harness.Flavors() {
		b.Run(string(flavor), func(b *testing.B) {
			r := newRig(b, flavor)
			r.taker.ObjectSize, r.taker.ProgressInterval = 0, 10*time.Second
			r.restore.ProgressInterval = 10 * time.Second
			ctx := context.Background()
			// 512 random bytes and 500 repeated ones a row: compresses about 2:1.
			fillWith(b, ctx, r.db(b, ctx), mb*1000, "CONCAT(RANDOM_BYTES(512), REPEAT('shoal', 100))")
			for b.Loop() {
				begin := time.Now()
				m, err := r.taker.Take(ctx)
				if err != nil {
					b.Fatal(err)
				}
				took := time.Since(begin)
				b.ReportMetric(float64(m.RawBytes)/1e6/took.Seconds(), "backup-MB/s")
				b.ReportMetric(float64(m.RawBytes)/1e6, "archive-MB")
				b.ReportMetric(float64(m.CompressedBytes)/1e6, "stored-MB")
				target := filepath.Join(b.TempDir(), "data")
				begin = time.Now()
				if _, err := r.restore.Restore(ctx, m.ID, target); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(m.RawBytes)/1e6/time.Since(begin).Seconds(), "restore-MB/s")
				if err := r.catalog.Delete(ctx, m.ID); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(peakRSSMiB(b), "peak-RSS-MiB")
			}
		})
	}
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
