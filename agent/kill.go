package agent

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// killMySQL SIGKILLs the process the pid file names, once it has checked that the process is a
// MySQL or MariaDB server: a stale pid file must never make the agent kill something else.
// SIGKILL reaches a stopped (frozen) process too, which is the case it exists for.
func killMySQL(pidFile string) error {
	if pidFile == "" {
		return fmt.Errorf("kill local mysqld: mysql.pid_file is not set")
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("kill local mysqld: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("kill local mysqld: pid file %s holds %q, not a process id", pidFile, strings.TrimSpace(string(raw)))
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return fmt.Errorf("kill local mysqld: process %d from %s: %w", pid, pidFile, err)
	}
	if name := strings.TrimSpace(string(comm)); name != "mysqld" && name != "mariadbd" {
		return fmt.Errorf("kill local mysqld: process %d from %s is %q, not a MySQL server", pid, pidFile, name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill local mysqld %d: %w", pid, err)
	}
	return nil
}
