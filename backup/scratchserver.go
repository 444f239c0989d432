package backup

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// ScratchServer starts throwaway servers on restored copies: no networking (the socket only),
// no grant checks (it is reachable by the agent alone), no replication, no binlog.
type ScratchServer struct {
	// Command runs the server program, e.g. ["/usr/sbin/mariadbd"] or ["chroot", "/srv/root",
	// "/usr/sbin/mysqld"]; the server's options are appended. Empty: mariadbd or mysqld from
	// PATH, by the backup's flavor.
	Command []string
	// StartTimeout bounds the start, crash recovery of the copy included (0: 30 minutes).
	StartTimeout time.Duration
}

// ScratchProcess is a running throwaway server.
type ScratchProcess struct {
	// DB is a session over its socket.
	DB     *mysqlctl.Server
	cmd    *exec.Cmd
	exited chan struct{}
	errLog string
}

// maxSocketPath is what a Unix socket's path may hold (sun_path less its terminating NUL).
const maxSocketPath = 107

// Start runs a server on dir/data (dir as the agent sees it; serverDir as the server does) with
// its socket, logs and temporary files in dir, and returns once it accepts a session.
func (s ScratchServer) Start(ctx context.Context, flavor gtid.Flavor, dir, serverDir string) (*ScratchProcess, error) {
	sock := filepath.Join(dir, "s.sock")
	if len(sock) > maxSocketPath || len(filepath.Join(serverDir, "s.sock")) > maxSocketPath {
		return nil, fmt.Errorf("%w: the socket path %s is longer than a Unix socket allows (%d bytes): use a shorter scratch dir", errNotRun, sock, maxSocketPath)
	}
	argv := append(slices.Clone(s.Command), serverArgs(flavor, serverDir, os.Geteuid() == 0)...)
	if len(s.Command) == 0 {
		name := "mariadbd"
		if flavor == gtid.MySQL {
			name = "mysqld"
		}
		argv = append([]string{name}, argv...)
	}
	console, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotRun, err)
	}
	defer console.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = console, console
	// Its own process group: a stop reaches a wrapper's child too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errNotRun, argv[0], err)
	}
	p := &ScratchProcess{cmd: cmd, exited: make(chan struct{}), errLog: filepath.Join(dir, "error.log")}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx, sock, cmp.Or(s.StartTimeout, 30*time.Minute)); err != nil {
		return nil, errors.Join(err, p.Stop())
	}
	return p, nil
}

// serverArgs is the throwaway server's command line after the program.
func serverArgs(flavor gtid.Flavor, dir string, root bool) []string {
	a := []string{
		"--no-defaults", // first, or it is ignored
		"--datadir=" + filepath.Join(dir, "data"),
		"--socket=" + filepath.Join(dir, "s.sock"),
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--log-error=" + filepath.Join(dir, "error.log"),
		"--tmpdir=" + dir,
		"--secure-file-priv=" + dir,
		"--skip-networking", "--skip-grant-tables", "--skip-log-bin",
		// An id no member has: nothing it might write could pass for a member's.
		"--server-id=4294967295",
		"--innodb-buffer-pool-size=64M",
	}
	if root {
		a = append(a, "--user=root")
	}
	if flavor == gtid.MySQL {
		// gtid_executed is read from the copy's mysql.gtid_executed table.
		return append(a, "--skip-replica-start", "--gtid-mode=ON", "--enforce-gtid-consistency=ON",
			"--mysqlx=OFF", "--performance-schema=OFF")
	}
	return append(a, "--skip-slave-start")
}

// waitReady opens a session over the socket once the server accepts one; it fails when the
// server exits or the time is up, with the end of its error log.
func (p *ScratchProcess) waitReady(ctx context.Context, sock string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("the server exited during its start: %s", p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("the server did not accept a session (%v): %w: %s", last, ctx.Err(), p.logTail())
		case <-tick.C:
		}
		if _, err := os.Stat(sock); err != nil {
			last = err
			continue
		}
		db, err := mysqlctl.Open(ctx, mysqlctl.Config{Addr: sock, User: "root", ReadTimeout: 10 * time.Minute})
		if err == nil {
			p.DB = db
			return nil
		}
		last = err
	}
}

// Stop shuts the server down (SIGTERM, then SIGKILL after a while) and waits until it exited.
func (p *ScratchProcess) Stop() error {
	if p.DB != nil {
		p.DB.Close()
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(5 * time.Minute):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.exited
	return fmt.Errorf("the server did not stop within 5 minutes of SIGTERM: killed")
}

// logTail is the end of the server's error log, for an error message.
func (p *ScratchProcess) logTail() string {
	b, err := os.ReadFile(p.errLog)
	if err != nil {
		return "no error log: " + err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(bytes.ToValidUTF8(b, nil))), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}
