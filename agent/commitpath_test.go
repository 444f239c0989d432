package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
