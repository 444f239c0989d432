package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// process is a server process: a child of ours, or one that another process started (the rig
// CLI manages servers across invocations).
type process struct {
	pid  int
	done chan struct{} // closed once the process has exited and, if ours, been reaped
	err  error         // how it exited; set before done is closed
	// same reports whether pid is still the server; nil for our children, whose pid cannot be
	// reused before we reap them.
	same func() bool
}

func childProcess(cmd *exec.Cmd) *process {
	p := &process{pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

// adoptProcess watches the server of dir running as pid; only its parent can reap it, so we poll.
func adoptProcess(pid int, dir string) *process {
	p := &process{pid: pid, done: make(chan struct{}), same: func() bool { return isServerOf(pid, dir) }}
	go func() {
		for p.same() {
			time.Sleep(50 * time.Millisecond)
		}
		p.err = errors.New("exited")
		close(p.done)
	}()
	return p
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *process) signal(sig syscall.Signal) error {
	if !p.running() || (p.same != nil && !p.same()) {
		return ErrNotRunning
	}
	if err := syscall.Kill(p.pid, sig); err != nil {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, err)
	}
	return nil
}

func (p *process) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pid %d still running: %w", p.pid, ctx.Err())
	}
}

func (p *process) kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	return p.wait(ctx)
}

// waitStopped waits until a SIGSTOP has taken effect, so a test's next step sees a frozen server.
func (p *process) waitStopped(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		state, _, ok := procStat(p.pid)
		if ok && (state == 'T' || state == 't') {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d not stopped after %v (state %q)", p.pid, timeout, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// procStat returns a process's state letter and start time (in clock ticks since boot), which
// together with the pid identify a process even when pids are reused.
func procStat(pid int) (state byte, start uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name (field 2) may contain spaces and parentheses; the fields after it do not.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 20 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64) // field 22
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], start, true
}

// alive reports whether pid is the process that started at start and has not exited.
func alive(pid int, start uint64) bool {
	state, s, ok := procStat(pid)
	return ok && s == start && state != 'Z' && state != 'X'
}

func procComm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// cmdlines maps every live process to its command line, arguments joined by spaces.
func cmdlines() map[int]string {
	m := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && len(b) > 0 {
			m[pid] = string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	return m
}

// runsIn reports whether a command line refers to the server directory dir. Directory names
// carry a random suffix, and inside the MySQL chroot only the tail of the path is visible.
func runsIn(cmdline, dir string) bool {
	return strings.Contains(cmdline, "/"+filepath.Base(dir)+"/")
}

// isServerOf reports whether pid is a live process working in the server directory dir.
func isServerOf(pid int, dir string) bool {
	state, _, ok := procStat(pid)
	if !ok || state == 'Z' || state == 'X' {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && runsIn(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})), dir)
}

// owner records who a server directory belongs to, so leftovers can be told from live servers.
type owner struct {
	PID      int    `json:"pid"`
	PIDStart uint64 `json:"pid_start"`
	// PIDNS is the pid namespace the pid belongs to; from another namespace it means nothing.
	PIDNS     string `json:"pid_ns"`
	StateFile string `json:"state_file,omitempty"`
}

func pidNamespace() string {
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return ns
}

// newServer creates the server's directory, marked as ours. The data dir comes later.
func newServer(fl *flavor, cfg ServerConfig, log *slog.Logger, bootstrap bool) (*Server, error) {
	if err := os.MkdirAll(fl.serversDir, 0o755); err != nil {
		return nil, fmt.Errorf("server %s: %w", cfg.Name, err)
	}
	dir, err := os.MkdirTemp(fl.serversDir, cfg.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", cfg.Name, err)
	}
	if err := os.Mkdir(filepath.Join(dir, tmpDirName), 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("server %s: %w", cfg.Name, err)
	}
	_, start, _ := procStat(os.Getpid())
	o := owner{PID: os.Getpid(), PIDStart: start, PIDNS: pidNamespace(), StateFile: cfg.StateFile}
	b, _ := json.Marshal(o)
	if err := os.WriteFile(filepath.Join(dir, "owner.json"), b, 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("server %s: %w", cfg.Name, err)
	}
	return &Server{Config: cfg, fl: fl, dir: dir, bootstrap: bootstrap, log: log}, nil
}

// leftoverAge is how old a directory must be before it is reaped when its owner cannot be
// checked: it is being created right now, or its owner lives in another pid namespace.
const leftoverAge = time.Hour

func isLeftover(dir string) bool {
	var o owner
	b, err := os.ReadFile(filepath.Join(dir, "owner.json"))
	if err == nil && json.Unmarshal(b, &o) == nil {
		if o.StateFile != "" {
			if _, err := os.Stat(o.StateFile); err == nil {
				return false
			}
		}
		if o.PIDNS == pidNamespace() {
			return !alive(o.PID, o.PIDStart)
		}
	}
	fi, err := os.Stat(dir)
	return err == nil && time.Since(fi.ModTime()) > leftoverAge
}

var reapOnce sync.Once

func reapLeftoversOnce(log *slog.Logger) { reapOnce.Do(func() { reapLeftovers(log) }) }

// reapLeftovers kills the servers of crashed or interrupted runs and deletes their directories,
// so they neither fill the disk nor hold addresses and memory.
func reapLeftovers(log *slog.Logger) {
	var procs map[int]string // read once, when the first leftover is found
	for _, name := range []gtid.Flavor{gtid.MySQL, gtid.MariaDB} {
		fl, _ := newFlavor(name)
		entries, _ := os.ReadDir(fl.serversDir)
		for _, e := range entries {
			dir := filepath.Join(fl.serversDir, e.Name())
			if !e.IsDir() || !isLeftover(dir) {
				continue
			}
			if procs == nil {
				procs = cmdlines()
			}
			for pid, cmdline := range procs {
				if runsIn(cmdline, dir) {
					if err := adoptProcess(pid, dir).kill(); err != nil && !errors.Is(err, ErrNotRunning) {
						log.Warn("cannot kill leftover server", "dir", dir, "pid", pid, "err", err)
					}
				}
			}
			// A binlog file system of its own (ServerConfig.BinlogFSBytes) goes first.
			_ = syscall.Unmount(filepath.Join(dir, binlogDirName), syscall.MNT_DETACH)
			if err := os.RemoveAll(dir); err != nil {
				log.Warn("cannot remove leftover server dir", "dir", dir, "err", err)
				continue
			}
			log.Info("removed leftover server dir", "dir", dir)
		}
	}
	pruneLeases(log)
}

// fileLock is an flock(2) lock, released by the kernel if its holder dies.
type fileLock struct{ f *os.File }

func lockFile(path string, how int) (*fileLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	l := &fileLock{f}
	if err := l.relock(how); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// relock takes or converts the lock. Conversion is not atomic: recheck what the lock guards.
func (l *fileLock) relock(how int) error {
	for {
		err := syscall.Flock(int(l.f.Fd()), how)
		if err != syscall.EINTR {
			if err != nil {
				return fmt.Errorf("flock %s: %w", l.f.Name(), err)
			}
			return nil
		}
	}
}

func (l *fileLock) unlock() { l.f.Close() }
