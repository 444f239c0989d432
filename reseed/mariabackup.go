package reseed

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/hostport"
)

// Tools names the MariaDB programs; empty fields take the names on PATH.
type Tools struct {
	Backup   string // mariadb-backup
	Mbstream string // mbstream
}

func (t Tools) backup() string   { return cmp.Or(t.Backup, "mariadb-backup") }
func (t Tools) mbstream() string { return cmp.Or(t.Mbstream, "mbstream") }

// BackupOptions say how the donor's agent backs up its own MariaDB server.
type BackupOptions struct {
	// Local is the agent's connection to its server: a Unix socket path or host:port, with the
	// agent's account (it needs RELOAD, PROCESS, LOCK TABLES and BINLOG MONITOR, as root has).
	Local mysqlctl.Config
	// TmpDir holds mariadb-backup's scratch files and its credentials file while it runs.
	TmpDir string
	// BytesPerSecond caps the stream, so the donor keeps up with its primary; 0 is unlimited.
	BytesPerSecond int64
	// Nice is mariadb-backup's niceness (0: the agent's): the server's own threads go first.
	Nice  int
	Tools Tools
}

// Backup streams a consistent physical copy of the local MariaDB server to w (mbstream format)
// and returns how many bytes it wrote: the donor's side of a re-seed, and what a backup to S3
// uploads. It runs mariadb-backup, which must run beside the server: it reads the data files.
// Cancelling ctx kills it.
func Backup(ctx context.Context, w io.Writer, opts BackupOptions, log *slog.Logger) (int64, error) {
	fail := func(step string, err error) (int64, error) {
		return 0, fmt.Errorf("mariadb-backup stream: %s: %w", step, err)
	}
	srv, err := mysqlctl.Open(ctx, opts.Local)
	if err != nil {
		return fail("open the local server", err)
	}
	var dataDir string
	err = srv.DB().QueryRowContext(ctx, "SELECT @@datadir").Scan(&dataDir)
	flavor := srv.Flavor()
	srv.Close()
	if err != nil {
		return fail("read datadir", err)
	}
	if flavor != gtid.MariaDB {
		return fail("check flavor", fmt.Errorf("the local server is %s; mariadb-backup is MariaDB's", flavor))
	}
	scratch, err := os.MkdirTemp(opts.TmpDir, "shoal-backup-")
	if err != nil {
		return fail("scratch dir", err)
	}
	defer os.RemoveAll(scratch)
	// The password goes in a file only we can read, not on a command line anyone can.
	conn := "[mariadb-backup]\nuser=" + opts.Local.User + "\npassword=" + opts.Local.Password + "\n"
	if strings.HasPrefix(opts.Local.Addr, "/") {
		conn += "socket=" + opts.Local.Addr + "\n"
	} else {
		host, port, err := hostport.Split(opts.Local.Addr)
		if err != nil {
			return fail("local address", err)
		}
		conn += fmt.Sprintf("host=%s\nport=%d\n", host, port)
	}
	cnf := filepath.Join(scratch, "client.cnf")
	if err := os.WriteFile(cnf, []byte(conn), 0o600); err != nil {
		return fail("credentials file", err)
	}
	// Only this file: the host's my.cnf may describe another server; the rest comes from the
	// server itself.
	cmd := exec.CommandContext(ctx, opts.Tools.backup(), "--defaults-file="+cnf, "--backup", "--stream=mbstream",
		"--datadir="+dataDir, "--target-dir="+scratch)
	tw := &throttledWriter{ctx: ctx, w: w, rate: opts.BytesPerSecond, start: time.Now()}
	var stderr tailBuffer
	cmd.Stdout, cmd.Stderr = tw, &stderr
	begin := time.Now()
	err = cmd.Start()
	if err == nil && opts.Nice != 0 {
		// Set as soon as it runs: its copy threads, started once it has read the server's
		// state, inherit it.
		if perr := syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, opts.Nice); perr != nil {
			log.Warn("mariadb-backup runs at the agent's priority", "nice", opts.Nice, "err", perr)
		}
	}
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return tw.n, fmt.Errorf("mariadb-backup stream: %s: %w: %s", opts.Tools.backup(), err, lastLines(stderr.String(), 10))
	}
	log.Info("backup streamed", "bytes", tw.n, "took", time.Since(begin).Round(time.Millisecond))
	return tw.n, nil
}

// RestoreOptions say how a joiner installs a stream from Backup.
type RestoreOptions struct {
	// Local is the agent's connection to its server.
	Local mysqlctl.Config
	// DataDir is the server's data dir; "" asks the running server (@@datadir). The copy is
	// extracted and prepared beside it (DataDir + ".reseed"), on the same file system, so the
	// swap is a rename.
	DataDir string
	// Service stops mysqld for the swap and starts it again.
	Service Service
	// DonorBinlogState returns a member's current gtid_binlog_state (the donor's): with the
	// copy's position it gives the state the copy stands for (gtid.MariaDBBinlogStateAt).
	DonorBinlogState func(ctx context.Context) (string, error)
	Tools            Tools
}

// Restore replaces the local MariaDB server's data with the stream of a Backup: extract and
// prepare it beside the data dir while the server still runs, stop the server, swap the copy in
// (the old data is removed), start it, and give it the copy's GTID position and binlog state, so
// it replicates from the primary with GTID auto-positioning. It returns the copy's position.
func Restore(ctx context.Context, stream io.Reader, opts RestoreOptions, log *slog.Logger) (string, error) {
	fail := func(step string, err error) (string, error) {
		return "", fmt.Errorf("restore a re-seed: %s: %w", step, err)
	}
	dataDir := opts.DataDir
	if dataDir == "" {
		srv, err := mysqlctl.Open(ctx, opts.Local)
		if err != nil {
			return fail("learn the data dir from the running server (or set it)", err)
		}
		err = srv.DB().QueryRowContext(ctx, "SELECT @@datadir").Scan(&dataDir)
		srv.Close()
		if err != nil {
			return fail("read datadir", err)
		}
	}
	dataDir = filepath.Clean(dataDir)
	staging := dataDir + ".reseed"
	if err := os.RemoveAll(staging); err != nil {
		return fail("clear the staging dir", err)
	}
	if err := os.Mkdir(staging, 0o750); err != nil {
		return fail("staging dir", err)
	}
	defer os.RemoveAll(staging)
	begin := time.Now()
	if err := Unpack(ctx, stream, staging, opts.Tools, log); err != nil {
		return fail("unpack the copy", err)
	}
	pos, err := CopyPosition(staging)
	if err != nil {
		return fail("read the copy's GTID position", err)
	}
	// The server reads the data as its own user, which owns the old data dir.
	if err := ChownLike(staging, dataDir); err != nil {
		return fail("hand the copy to the data dir's owner", err)
	}
	log.Info("copy prepared; stopping mysqld to swap it in", "gtid", pos)
	srv, err := SwapIn(ctx, opts.Local, opts.Service, staging, dataDir)
	if err != nil {
		return fail("swap the copy in", err)
	}
	defer srv.Close()
	now, err := opts.DonorBinlogState(ctx)
	if err != nil {
		return fail("read the donor's binlog state", err)
	}
	binlogState, err := PositionMariaDB(ctx, srv, pos, now)
	if err != nil {
		return fail("position the copy", err)
	}
	log.Info("re-seeded from a backup stream", "gtid", pos, "binlog_state", binlogState, "took", time.Since(begin).Round(time.Millisecond))
	return pos, nil
}

// SwapIn replaces dataDir with staging, a data dir made ready beside it, while mysqld is down:
// it stops mysqld, moves the old data aside, moves staging in, removes the old data, starts
// mysqld and returns a session once it accepts one. The caller closes it.
func SwapIn(ctx context.Context, local mysqlctl.Config, svc Service, staging, dataDir string) (*mysqlctl.Server, error) {
	if err := svc.Stop(ctx); err != nil {
		return nil, fmt.Errorf("stop mysqld: %w", err)
	}
	if err := waitDown(ctx, local); err != nil {
		return nil, fmt.Errorf("stop mysqld: %w", err)
	}
	old := dataDir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return nil, fmt.Errorf("clear the old data's place: %w", err)
	}
	if err := os.Rename(dataDir, old); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("move the old data aside: %w", err)
	}
	if err := os.Rename(staging, dataDir); err != nil {
		return nil, fmt.Errorf("move the copy in: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return nil, fmt.Errorf("remove the old data: %w", err)
	}
	if err := svc.Start(ctx); err != nil {
		return nil, fmt.Errorf("start mysqld: %w", err)
	}
	srv, err := waitReady(ctx, local)
	if err != nil {
		return nil, fmt.Errorf("start mysqld: %w", err)
	}
	return srv, nil
}

// PositionMariaDB readies a MariaDB server just started on a copy taken at GTID position pos to
// replicate from the primary: the copy has no binlog, and errant checks compare every (domain,
// server) entry of the binlog state, so it gets the state it stands for (from now, a member's
// gtid_binlog_state today), and replication starts at its position. It returns that state.
func PositionMariaDB(ctx context.Context, srv *mysqlctl.Server, pos, now string) (string, error) {
	binlogState, err := gtid.MariaDBBinlogStateAt(now, pos)
	if err != nil {
		return "", fmt.Errorf("binlog state of the copy: %w", err)
	}
	for _, q := range []struct {
		step, query string
		args        []any
	}{
		{"reset binlog", "RESET MASTER", nil},
		{"set gtid_binlog_state", "SET GLOBAL gtid_binlog_state = ?", []any{binlogState}},
		{"set gtid_slave_pos", "SET GLOBAL gtid_slave_pos = ?", []any{pos}},
	} {
		if _, err := srv.DB().ExecContext(ctx, q.query, q.args...); err != nil {
			return "", fmt.Errorf("%s: %w", q.step, err)
		}
	}
	return binlogState, nil
}

// Unpack makes a data dir a server can start on out of a Backup stream: it extracts the stream
// into dir (which exists and is empty) and prepares it (mariadb-backup --prepare applies the redo
// log copied alongside).
func Unpack(ctx context.Context, stream io.Reader, dir string, tools Tools, log *slog.Logger) error {
	begin := time.Now()
	extract := exec.CommandContext(ctx, tools.mbstream(), "-x", "-C", dir)
	var stderr tailBuffer
	extract.Stdin, extract.Stderr = stream, &stderr
	if err := extract.Run(); err != nil {
		return fmt.Errorf("extract: %s: %w: %s", tools.mbstream(), err, lastLines(stderr.String(), 10))
	}
	extracted := time.Since(begin)
	// --no-defaults: the copy's own backup-my.cnf says how its InnoDB was set up.
	prepare := exec.CommandContext(ctx, tools.backup(), "--no-defaults", "--prepare", "--target-dir="+dir)
	if out, err := prepare.CombinedOutput(); err != nil {
		return fmt.Errorf("prepare: %s: %w: %s", tools.backup(), err, lastLines(string(out), 10))
	}
	log.Info("copy extracted and prepared", "extract", extracted.Round(time.Millisecond),
		"prepare", (time.Since(begin) - extracted).Round(time.Millisecond))
	return nil
}

// CopyPosition reads the GTID position mariadb-backup recorded in the copy at dir (file, offset,
// GTID; older versions name the file xtrabackup_binlog_info).
func CopyPosition(dir string) (string, error) {
	for _, name := range []string{"mariadb_backup_binlog_info", "xtrabackup_binlog_info"} {
		f, err := os.Open(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		defer f.Close()
		line, err := bufio.NewReader(f).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			return "", fmt.Errorf("%s: no GTID position in %q (is the binlog on?)", name, strings.TrimSpace(line))
		}
		if _, err := gtid.Parse(gtid.MariaDB, fields[2]); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return fields[2], nil
	}
	return "", fmt.Errorf("no mariadb_backup_binlog_info in the copy")
}

// ChownLike gives every file under dir the owner of ref, when they differ (the agent runs as
// root, the server as mysql); a missing ref changes nothing.
func ChownLike(dir, ref string) error {
	fi, err := os.Stat(ref)
	if os.IsNotExist(err) {
		return nil // an emptied member: nothing says whose it should be
	}
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || (int(st.Uid) == os.Geteuid() && int(st.Gid) == os.Getegid()) {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(st.Uid), int(st.Gid))
	})
}

// throttledWriter passes writes on to w at no more than rate bytes per second on average (0: no
// limit), sleeping after a write that got ahead; it counts what it wrote.
type throttledWriter struct {
	ctx   context.Context
	w     io.Writer
	rate  int64
	start time.Time
	n     int64
}

func (t *throttledWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	t.n += int64(n)
	if err != nil || t.rate <= 0 {
		return n, err
	}
	ahead := time.Duration(float64(t.n)/float64(t.rate)*float64(time.Second)) - time.Since(t.start)
	if ahead > 0 {
		select {
		case <-t.ctx.Done():
			return n, t.ctx.Err()
		case <-time.After(ahead):
		}
	}
	return n, nil
}

// tailBuffer keeps the last 64 KiB written to it: enough of a tool's stderr to say why it failed.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - 64<<10; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
