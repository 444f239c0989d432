// Package harness runs real MySQL and MariaDB servers for integration tests, chaos tests and the
// demo. Each server is its own process on its own loopback address (a simulated host, so every
// server can use port 3306 and tests can cut it off with iptables), with a throw-away copy of a
// template data dir that is built once per server version and cached.
//
// Servers run in their own session, so a Ctrl-C of `go test` or the death of the process that
// started them never leaves them half killed; whatever a crashed run leaves behind is reaped by the
// next process that starts a server.
package harness

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// Accounts and database created in every template, so in every server.
const (
	// RootUser has all privileges, from any host.
	RootUser     = "root"
	RootPassword = "shoal-root-pw"
	// AppUser has all privileges on AppDatabase only: no SUPER, CONNECTION_ADMIN or READ_ONLY
	// ADMIN, so read_only applies to it on both flavors.
	AppUser     = "app"
	AppPassword = "shoal-app-pw"
	AppDatabase = "app"
)

const (
	defaultPort = 3306
	// readyTimeout bounds a start; a warm start takes about a second.
	readyTimeout = 60 * time.Second
	// killTimeout bounds the wait for a SIGKILLed process to go away.
	killTimeout = 30 * time.Second
)

// ErrNotRunning is returned by the methods that signal a server's process when there is none.
var ErrNotRunning = errors.New("server is not running")

// errAddrInUse marks a start that failed because the address was taken, so Start can try
// another allocated address.
var errAddrInUse = errors.New("address already in use")

// ServerConfig describes one server. Start fills in Host and Port when they are left empty.
type ServerConfig struct {
	Flavor gtid.Flavor
	// Name is used in directory names and logs, e.g. "db1".
	Name string
	// Host is the loopback address to bind; "" allocates one that no other server uses, across
	// processes.
	Host string
	// Port defaults to 3306.
	Port     int
	ServerID uint32
	// SuperReadOnly starts the server with super_read_only=ON (MySQL) or read_only=ON (MariaDB,
	// which has no super_read_only).
	SuperReadOnly bool
	// BinlogFSBytes, when set, puts the binlog on a file system of its own of this size (a tmpfs
	// mounted at BinlogDir; it needs root), so a test can fill it.
	BinlogFSBytes int64
	// ExtraArgs are appended to the server's command line, so they override the defaults.
	ExtraArgs []string
	// Logger receives start and stop events; nil discards them.
	Logger *slog.Logger
	// StateFile, when set, keeps the server's directory from being reaped as a leftover while this
	// file exists, although the process that started the server has exited (see test/cmd/rig).
	StateFile string
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func (c *ServerConfig) validate() error {
	if !namePattern.MatchString(c.Name) {
		return fmt.Errorf("server name %q: want 1-32 letters, digits, '-' or '_'", c.Name)
	}
	if c.ServerID == 0 {
		return fmt.Errorf("server %s: ServerID is required and must not be 0", c.Name)
	}
	if c.Host != "" && !isIPv4(c.Host) {
		return fmt.Errorf("server %s: host %q is not an IPv4 address", c.Name, c.Host)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("server %s: bad port %d", c.Name, c.Port)
	}
	return nil
}

// Server is a server started by Start (or attached to with Attach). Its methods are safe to call
// from several goroutines, except that Start, Restart and Stop must not race each other.
type Server struct {
	Config ServerConfig

	fl  *flavor
	dir string // on the host: data/, error.log, mysqld.sock, mysqld.pid, console.log, owner.json
	// bootstrap is set while building a template: no networking, no binlog, no GTIDs.
	bootstrap bool
	// loading is set while Rebuild loads a copy: no networking, so no client sees it half loaded.
	// Atomic: a monitor reading over the socket asks Loading from its own goroutine.
	loading atomic.Bool
	log     *slog.Logger

	mu   sync.Mutex
	proc *process // the last process started; nil before the first start
}

// Start copies the template data dir for cfg.Flavor (building the template first if needed),
// starts the server and waits until it accepts TCP logins as root. On failure nothing is left
// behind and the error includes the tail of the server's error log.
func Start(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.Port == 0 {
		cfg.Port = defaultPort
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fl, err := lookupFlavor(cfg.Flavor)
	if err != nil {
		return nil, err
	}
	reapLeftoversOnce(log)

	s, err := newServer(fl, cfg, log, false)
	if err != nil {
		return nil, err
	}
	if err := s.launch(ctx); err != nil {
		if rerr := s.Remove(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return s, nil
}

// StartAll starts the servers in parallel. It is all or nothing: when one fails, the others are
// removed and the error names every failure.
func StartAll(ctx context.Context, cfgs []ServerConfig) ([]*Server, error) {
	servers := make([]*Server, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Go(func() { servers[i], errs[i] = Start(ctx, cfg) })
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		return servers, nil
	}
	for _, s := range servers {
		if s != nil {
			if rerr := s.Remove(); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}
	return nil, err
}

// ClusterConfigs describes n servers db1..dbN with server ids 1..N and allocated hosts; tweak, if
// not nil, adjusts each one.
func ClusterConfigs(flavor gtid.Flavor, n int, tweak func(i int, c *ServerConfig)) []ServerConfig {
	cfgs := make([]ServerConfig, n)
	for i := range cfgs {
		cfgs[i] = ServerConfig{Flavor: flavor, Name: fmt.Sprintf("db%d", i+1), ServerID: uint32(i + 1)}
		if tweak != nil {
			tweak(i, &cfgs[i])
		}
	}
	return cfgs
}

// launch puts a fresh copy of the template in place and starts the server on it.
func (s *Server) launch(ctx context.Context) error {
	begin := time.Now()
	if err := s.fl.copyTemplate(s.dataDir(), s.log); err != nil {
		return fmt.Errorf("server %s: %w", s.Config.Name, err)
	}
	if err := s.mountBinlogFS(); err != nil {
		return fmt.Errorf("server %s: %w", s.Config.Name, err)
	}
	copied := time.Since(begin)
	allocate := s.Config.Host == ""
	for attempt := 1; ; attempt++ {
		host, err := leaseHost(s.Config.Host, s.Config.Port, s.dir)
		if err != nil {
			return fmt.Errorf("server %s: %w", s.Config.Name, err)
		}
		s.Config.Host = host
		err = s.start(ctx)
		if err == nil {
			s.log.Info("server started", "server", s.Config.Name, "flavor", s.Config.Flavor, "addr", s.Addr(),
				"pid", s.PID(), "copy", copied.Round(time.Millisecond), "total", time.Since(begin).Round(time.Millisecond))
			return nil
		}
		// Someone outside the harness took the address between our bind check and the server's
		// bind; an allocated address can simply be replaced.
		if !allocate || !errors.Is(err, errAddrInUse) || attempt == 3 {
			return err
		}
		s.log.Warn("address taken, trying another", "server", s.Config.Name, "addr", s.Addr())
		releaseHost(host, s.Config.Port, s.dir)
		s.Config.Host = ""
	}
}

// start runs the server process on the existing data dir and waits until it is ready.
func (s *Server) start(ctx context.Context) error {
	if p := s.current(); p != nil && p.running() {
		return fmt.Errorf("start server %s: already running as pid %d", s.Config.Name, p.pid)
	}
	logFrom := fileSize(s.errorLog())
	console, err := os.OpenFile(filepath.Join(s.dir, "console.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("start server %s: %w", s.Config.Name, err)
	}
	cmd := s.fl.command(s.fl.server, s.args()...)
	cmd.Stdout, cmd.Stderr = console, console
	err = cmd.Start()
	console.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("start server %s: %w", s.Config.Name, err)
	}
	p := childProcess(cmd)
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	if err := s.waitReady(ctx, p, logFrom); err != nil {
		_ = p.kill()
		return err
	}
	return nil
}

// waitReady polls with a root login until it works, the process exits or the time is up.
func (s *Server) waitReady(ctx context.Context, p *process, logFrom int64) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	db, err := sql.Open("mysql", s.probeDSN())
	if err != nil {
		return fmt.Errorf("server %s: %w", s.Config.Name, err)
	}
	defer db.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pingCtx, pingCancel := context.WithTimeout(ctx, 2*time.Second)
		err := db.PingContext(pingCtx)
		pingCancel()
		if err == nil {
			break
		}
		select {
		case <-p.done:
			return s.startError(fmt.Errorf("exited: %v", p.err), logFrom)
		case <-ctx.Done():
			return s.startError(fmt.Errorf("no root login within %v: %w (last error: %v)", readyTimeout, ctx.Err(), err), logFrom)
		case <-tick.C:
		}
	}
	// The pid we hold must be the server itself, not a wrapper that forked it: signals go to it.
	if comm := procComm(p.pid); comm != s.fl.comm {
		return s.startError(fmt.Errorf("pid %d is %q, not %s", p.pid, comm, s.fl.comm), logFrom)
	}
	return nil
}

// startError says which server failed to start and shows what it logged since this start.
func (s *Server) startError(err error, logFrom int64) error {
	logged := readFrom(s.errorLog(), logFrom)
	if strings.Contains(logged, "Address already in use") {
		err = fmt.Errorf("%w: %w", errAddrInUse, err)
	}
	return fmt.Errorf("start %s server %s on %s (dir %s): %w\n--- error log:\n%s", s.Config.Flavor, s.Config.Name,
		s.Addr(), s.dir, err, lastLines(logged, 25))
}

// Addr is "host:port".
func (s *Server) Addr() string { return s.Config.Host + ":" + strconv.Itoa(s.Config.Port) }

// Host is the server's loopback address.
func (s *Server) Host() string { return s.Config.Host }

// Port is the server's port.
func (s *Server) Port() int { return s.Config.Port }

// DSN is a go-sql-driver DSN for user over TCP. MySQL's caching_sha2_password needs no extra
// parameter: the driver fetches the server's RSA key when it has to.
func (s *Server) DSN(user, password string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd = user, password
	c.Net, c.Addr = "tcp", s.Addr()
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 2*time.Second, 30*time.Second, 30*time.Second
	return c.FormatDSN()
}

// SocketDSN is a DSN for user over the server's Unix socket, from the host. iptables rules on the
// server's address do not cut it, so a test can still observe a server it has isolated.
func (s *Server) SocketDSN(user, password string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd = user, password
	c.Net, c.Addr = "unix", s.Socket()
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 2*time.Second, 30*time.Second, 30*time.Second
	return c.FormatDSN()
}

// probeDSN is how readiness is checked: as root over TCP, or over the socket while networking is
// off: while building a template (root@'%' does not exist yet, root@localhost has no password
// yet) and while Rebuild loads a copy.
func (s *Server) probeDSN() string {
	switch {
	case s.bootstrap:
		return s.SocketDSN(RootUser, "")
	case s.loading.Load():
		return s.SocketDSN(RootUser, RootPassword)
	}
	return s.DSN(RootUser, RootPassword)
}

// RootDB opens a pool as root, closed when the test ends.
func (s *Server) RootDB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", s.DSN(RootUser, RootPassword))
	if err != nil {
		t.Fatalf("server %s: open root pool: %v", s.Config.Name, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PID is the server's process id, or 0 when it is not running.
func (s *Server) PID() int {
	if p := s.current(); p != nil && p.running() {
		return p.pid
	}
	return 0
}

// Kill sends SIGKILL and waits until the process is gone.
func (s *Server) Kill() error {
	p := s.current()
	if p == nil {
		return fmt.Errorf("kill server %s: %w", s.Config.Name, ErrNotRunning)
	}
	if err := p.kill(); err != nil {
		return fmt.Errorf("kill server %s: %w", s.Config.Name, err)
	}
	s.log.Info("server killed", "server", s.Config.Name, "pid", p.pid)
	return nil
}

// Pause freezes the server with SIGSTOP; it returns once the process is stopped.
func (s *Server) Pause() error {
	if err := s.signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pause server %s: %w", s.Config.Name, err)
	}
	if err := s.current().waitStopped(5 * time.Second); err != nil {
		return fmt.Errorf("pause server %s: %w", s.Config.Name, err)
	}
	s.log.Info("server paused", "server", s.Config.Name)
	return nil
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() error {
	if err := s.signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("resume server %s: %w", s.Config.Name, err)
	}
	s.log.Info("server resumed", "server", s.Config.Name)
	return nil
}

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit until ctx is done.
func (s *Server) Stop(ctx context.Context) error {
	if err := s.signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop server %s: %w", s.Config.Name, err)
	}
	// A paused server would hold the SIGTERM pending forever.
	_ = s.signal(syscall.SIGCONT)
	if err := s.current().wait(ctx); err != nil {
		return fmt.Errorf("stop server %s: %w\n--- error log:\n%s", s.Config.Name, err, s.ErrorLogTail(10))
	}
	s.log.Info("server stopped", "server", s.Config.Name)
	return nil
}

// Restart starts the server again on its data dir (after Kill or Stop) and waits until it is ready.
func (s *Server) Restart(ctx context.Context) error {
	begin := time.Now()
	if err := s.start(ctx); err != nil {
		return err
	}
	s.log.Info("server restarted", "server", s.Config.Name, "pid", s.PID(), "took", time.Since(begin).Round(time.Millisecond))
	return nil
}

// Remove kills the server if it runs and deletes its directory and its address lease.
func (s *Server) Remove() error {
	if err := s.Kill(); err != nil && !errors.Is(err, ErrNotRunning) {
		return fmt.Errorf("remove server %s: %w", s.Config.Name, err)
	}
	if s.Config.Host != "" {
		releaseHost(s.Config.Host, s.Config.Port, s.dir)
	}
	if err := s.unmountBinlogFS(); err != nil {
		return fmt.Errorf("remove server %s: %w", s.Config.Name, err)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove server %s: %w", s.Config.Name, err)
	}
	return nil
}

// ErrorLogTail returns the last n lines of the server's error log.
func (s *Server) ErrorLogTail(n int) string {
	return lastLines(readFrom(s.errorLog(), 0), n)
}

func (s *Server) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

func (s *Server) signal(sig syscall.Signal) error {
	p := s.current()
	if p == nil {
		return ErrNotRunning
	}
	return p.signal(sig)
}

func (s *Server) dataDir() string  { return filepath.Join(s.dir, "data") }
func (s *Server) errorLog() string { return filepath.Join(s.dir, "error.log") }

// inner is a path in the server's directory as the server sees it (inside its chroot).
func (s *Server) inner(name string) string {
	return strings.TrimPrefix(filepath.Join(s.dir, name), s.fl.root)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns a file's content from offset on; errors yield what could be read.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
