package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewestBinlog(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int) {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a := &Agent{opts: Options{BinlogDir: dir}}
	if _, err := a.newestBinlog("/var/lib/mysql/binlog"); err == nil || !strings.Contains(err.Error(), "no binlog file") {
		t.Fatalf("no files: err %v, want no binlog file", err)
	}
	write("binlog.index", 100)
	write("binlog.000001", 10)
	write("binlog.999999", 20)
	write("other.000003", 30)
	if got, err := a.newestBinlog("/var/lib/mysql/binlog"); err != nil || got != "binlog.999999:20" {
		t.Fatalf("got %q, %v, want binlog.999999:20", got, err)
	}
	// Past six digits the sequence grows a digit.
	write("binlog.1000000", 5)
	if got, err := a.newestBinlog("/var/lib/mysql/binlog"); err != nil || got != "binlog.1000000:5" {
		t.Fatalf("got %q, %v, want binlog.1000000:5", got, err)
	}
	if _, err := a.newestBinlog(""); err == nil {
		t.Fatal("no log_bin_basename: want an error")
	}
	// Without a configured directory, the server's own, as it is without a pid file.
	a = &Agent{opts: Options{}}
	if got, err := a.newestBinlog(filepath.Join(dir, "binlog")); err != nil || got != "binlog.1000000:5" {
		t.Fatalf("server's directory: got %q, %v", got, err)
	}
	a = &Agent{opts: Options{MySQLPIDFile: filepath.Join(dir, "missing.pid")}}
	if _, err := a.newestBinlog(filepath.Join(dir, "binlog")); err == nil {
		t.Fatal("a pid file that cannot be read: want an error")
	}
}

// A binlog read that hangs (a dead volume) holds no pass longer than binlogReadWait, starts no
// second read while it hangs, and its late answer is dropped, not taken for progress.
func TestBinlogWrittenHung(t *testing.T) {
	release := make(chan struct{})
	var reads atomic.Int32
	a := &Agent{log: slog.New(slog.DiscardHandler), readBinlog: func(string) (string, error) {
		if reads.Add(1) == 1 {
			<-release
			return "binlog.000001:10", nil
		}
		return "binlog.000001:20", nil
	}}
	for pass := range 3 {
		begin := time.Now()
		if got := a.binlogWritten("binlog"); got != "" {
			t.Fatalf("pass %d with the read hung: %q, want nothing seen", pass, got)
		}
		if took := time.Since(begin); took > binlogReadWait+time.Second {
			t.Fatalf("pass %d waited %v for a hung read", pass, took)
		}
	}
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads started while the first hung, want 1", n)
	}
	close(release)
	for a.binlogPending != nil && len(a.binlogPending) == 0 {
		time.Sleep(time.Millisecond)
	}
	if got := a.binlogWritten("binlog"); got != "binlog.000001:20" {
		t.Fatalf("after the hung read ended: %q, want a fresh read's binlog.000001:20", got)
	}
}
