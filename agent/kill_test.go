package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The pid file must name a MySQL server: anything else is refused and left running.
func TestKillMySQLRefusesOtherProcesses(t *testing.T) {
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Process.Kill()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct{ file, want string }{
		{"", "not set"},
		{filepath.Join(dir, "missing.pid"), "no such file"},
		{write("garbage.pid", "garbage\n"), "not a process id"},
		{write("other.pid", strconv.Itoa(sleeper.Process.Pid)+"\n"), `is "sleep", not a MySQL server`},
	} {
		err := killMySQL(tt.file)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("killMySQL(%q) = %v, want an error with %q", tt.file, err, tt.want)
		}
	}
	if err := syscall.Kill(sleeper.Process.Pid, 0); err != nil {
		t.Fatalf("the other process was hit: %v", err)
	}
}
