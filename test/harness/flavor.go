package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// installHint is part of every "not installed" error: a missing server is a setup problem to fix,
// never a reason to skip.
const installHint = "install it with `make deps` or, as root, `bash test/rig/install.sh`"

// cacheDir holds everything built or installed for tests, outside the repo. SHOAL_CACHE overrides
// it, as it does for test/rig/install.sh.
func cacheDir() string {
	if d := os.Getenv("SHOAL_CACHE"); d != "" {
		return d
	}
	return "/var/cache/shoal-test"
}

// flavor is what differs between MySQL and MariaDB: where the programs are and the few arguments
// that differ. Everything else is shared.
type flavor struct {
	name gtid.Flavor
	// root is the chroot the server runs in ("" = the host). Debian 12 has no MySQL, so MySQL runs
	// from a Debian sid root.
	root string
	// server is the server binary as seen inside root; comm is its process name.
	server, comm string
	// serversDir holds the servers' directories, on the host; inside root, as the server must
	// see them.
	serversDir string
	// version is the exact server version; it keys the template.
	version string
	// initialize returns the command that creates a fresh data dir for s.
	initialize func(s *Server) (bin string, args []string)
	// baseArgs go to every run, initialize included, so the template matches the servers.
	baseArgs []string
	// serverArgs go to a normal start; bootstrapArgs to the start that builds the template.
	serverArgs, bootstrapArgs []string
	// readOnlyArg starts the server read only for everyone without the privilege to bypass it.
	readOnlyArg string
	// client and dump are the command-line client and the logical dump tool, inside root.
	client, dump string
}

func newFlavor(name gtid.Flavor) (*flavor, error) {
	switch name {
	case gtid.MySQL:
		root := MySQLRoot()
		return &flavor{
			name:       name,
			root:       root,
			server:     "/usr/sbin/mysqld",
			comm:       "mysqld",
			serversDir: filepath.Join(root, "srv", "shoal"),
			initialize: func(s *Server) (string, []string) {
				return "/usr/sbin/mysqld", append(s.baseArgs(), "--initialize-insecure", "--skip-log-bin")
			},
			baseArgs: []string{"--innodb-redo-log-capacity=32M", "--mysqlx=OFF"},
			serverArgs: []string{
				"--gtid-mode=ON", "--enforce-gtid-consistency=ON",
				// Loaded so tests can turn semi-sync on; both halves stay disabled until they do.
				"--plugin-load-add=semisync_source.so", "--plugin-load-add=semisync_replica.so",
				// Re-seeding copies a member with CLONE INSTANCE.
				"--plugin-load-add=mysql_clone.so",
				"--secure-file-priv=",
				// On, as MySQL ships it: shoal finds the applier thread there (mysqlctl's
				// stopDrainedReplica). Sized down, since tests run many servers at once.
				"--performance-schema=ON", "--performance-schema-max-digest-length=0",
				"--performance-schema-consumer-events-statements-current=OFF",
			},
			// With gtid_mode=ON MySQL records GTIDs in mysql.gtid_executed even without a binlog,
			// and every copy of the template would then share them.
			bootstrapArgs: []string{"--gtid-mode=OFF"},
			readOnlyArg:   "--super-read-only=ON",
			client:        "/usr/bin/mysql",
			dump:          "/usr/bin/mysqldump",
		}, nil
	case gtid.MariaDB:
		return &flavor{
			name:       name,
			server:     "/usr/sbin/mariadbd",
			comm:       "mariadbd",
			serversDir: filepath.Join(cacheDir(), "servers"),
			initialize: func(s *Server) (string, []string) {
				// Options it does not know itself go on to mariadbd.
				return "/usr/bin/mariadb-install-db", append(s.baseArgs(),
					"--auth-root-authentication-method=normal", "--skip-test-db")
			},
			// Without --no-defaults Debian's config would set utf8mb4; keep that, not latin1.
			baseArgs:    []string{"--innodb-log-file-size=32M", "--character-set-server=utf8mb4"},
			serverArgs:  []string{"--log-slave-updates=ON", "--gtid-strict-mode=ON", "--gtid-domain-id=0", "--performance-schema=OFF"},
			readOnlyArg: "--read-only=ON",
			client:      "/usr/bin/mariadb",
			dump:        "/usr/bin/mariadb-dump",
		}, nil
	}
	return nil, fmt.Errorf("unknown flavor %q (want %q or %q)", name, gtid.MySQL, gtid.MariaDB)
}

// flavors caches looked-up flavors per cache dir, so the version is asked once per process.
var flavors = struct {
	sync.Mutex
	m map[string]*flavor
}{m: map[string]*flavor{}}

// lookupFlavor returns the flavor after checking that its server is installed.
func lookupFlavor(name gtid.Flavor) (*flavor, error) {
	key := string(name) + "\x00" + cacheDir()
	flavors.Lock()
	defer flavors.Unlock()
	if f := flavors.m[key]; f != nil {
		return f, nil
	}
	f, err := newFlavor(name)
	if err != nil {
		return nil, err
	}
	need := []string{filepath.Join(f.root, f.server)}
	if f.root != "" {
		// install.sh marks the root ready only once debootstrap has finished.
		need = append(need, filepath.Join(f.root, ".shoal-ready"))
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s server is not installed (%v); %s", name, err, installHint)
		}
	}
	out, err := f.command(f.server, "--version").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s server: %s --version: %w: %s; %s", name, f.server, err, out, installHint)
	}
	m := regexp.MustCompile(`Ver (\S+)`).FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("%s server: no version in %q", name, out)
	}
	f.version = string(m[1])
	flavors.m[key] = f
	return f, nil
}

// command runs bin inside the flavor's root, in a session of its own: a Ctrl-C of `go test` or
// the exit of the starting process must not hit the server, and SIGSTOP must reach only it.
// Chrooting in the child (not with chroot(8)) keeps the pid we hold the server's.
func (f *flavor) command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Chroot: f.root}
	return cmd
}

// tmpDirName is the directory, in the server's, that holds its temporary files.
const tmpDirName = "tmp"

// baseArgs go to every run of the server, initialize included. InnoDB is small for quick starts,
// but flushes at every commit: tests check durability. Each server has a tmpdir of its own: a
// starting server deletes every "#sql" file in its tmpdir, which in a shared /tmp were another
// server's temporary tables in use.
func (s *Server) baseArgs() []string {
	return append([]string{
		"--no-defaults", // first, or it is ignored
		"--user=root",
		"--datadir=" + s.inner("data"),
		"--socket=" + s.inner("mysqld.sock"),
		"--pid-file=" + s.inner("mysqld.pid"),
		"--log-error=" + s.inner("error.log"),
		"--tmpdir=" + s.inner(tmpDirName),
		"--innodb-buffer-pool-size=64M",
		"--innodb-flush-log-at-trx-commit=1",
	}, s.fl.baseArgs...)
}

// args is the server's command line.
func (s *Server) args() []string {
	a := s.baseArgs()
	if s.bootstrap {
		a = append(a, "--skip-networking", "--skip-log-bin")
		return append(a, s.fl.bootstrapArgs...)
	}
	c := s.Config
	port := strconv.Itoa(c.Port)
	a = append(a,
		"--server-id="+strconv.FormatUint(uint64(c.ServerID), 10),
		"--bind-address="+c.Host, "--port="+port,
		"--report-host="+c.Host, "--report-port="+port,
		"--skip-name-resolve",
		"--log-bin=binlog", "--relay-log=relay-bin", "--binlog-format=ROW", "--sync-binlog=1",
		"--relay-log-recovery=ON",
		"--max-connections=200",
	)
	a = append(a, s.fl.serverArgs...)
	if c.BinlogFSBytes > 0 {
		a = append(a, "--log-bin="+s.inner(filepath.Join(binlogDirName, "binlog")))
	}
	if s.loading.Load() {
		// Only Rebuild's root session over the socket can reach it, and it must be able to write.
		return append(append(a, "--skip-networking"), c.ExtraArgs...)
	}
	if c.SuperReadOnly {
		a = append(a, s.fl.readOnlyArg)
	}
	return append(a, c.ExtraArgs...)
}

// MySQLRoot is the chroot MySQL servers run in, as the host sees it.
func MySQLRoot() string { return filepath.Join(cacheDir(), "mysql-9.7-root") }
