package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/config"
	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// localMySQL is the agent's connection to its own server.
func localMySQL(cfg config.Config, secrets config.Secrets) mysqlctl.Config {
	return mysqlctl.Config{Addr: cfg.MySQL.Addr, User: cfg.MySQL.User, Password: secrets.MySQLPassword,
		ConnectTimeout: cfg.MySQL.ConnectTimeout, ReadTimeout: cfg.MySQL.ReadTimeout}
}

// binlogArchive turns on the primary's binlog archive, or returns nil while it is off.
func binlogArchive(cfg config.Config, secrets config.Secrets, reg prometheus.Registerer, log *slog.Logger, epoch func() uint64) (*agent.BinlogArchiveOptions, error) {
	b := cfg.Backup.Binlogs
	if !b.Enabled {
		return nil, nil
	}
	store, err := backupStore(cfg, secrets)
	if err != nil {
		return nil, err
	}
	return &agent.BinlogArchiveOptions{Interval: b.Interval, Archiver: &backup.BinlogArchiver{Store: store, Cluster: cfg.Cluster,
		Member: cfg.Node.ID, Local: localMySQL(cfg, secrets), Dir: b.Dir, PIDFile: cfg.MySQL.PIDFile, FlushEvery: b.FlushInterval,
		Metrics: backup.NewBinlogMetrics(reg), Log: log, Epoch: epoch}}, nil
}

// binlogPruner prunes the binlog archive after retention.
type binlogPruner struct{ catalog backup.Catalog }

func (p binlogPruner) PruneBinlogs(ctx context.Context) (int, error) {
	done, err := p.catalog.PruneBinlogs(ctx)
	return len(done), err
}

// pointInTimeFlags are restore's flags for a point-in-time restore.
var pointInTimeFlags = map[string]bool{"to-time": true, "to-gtid": true, "to-latest": false, "server-command": true,
	"binlog-tool": true, "client": true}

// restoreTarget reads --to-time, --to-gtid or --to-latest; ok is false when none is given.
func restoreTarget(own map[string]string) (target backup.BinlogTarget, ok bool, err error) {
	n := 0
	if v, set := own["to-time"]; set {
		n++
		if target.Time, err = time.Parse(time.RFC3339, v); err != nil {
			return target, true, fmt.Errorf("%w: --to-time: want RFC 3339, e.g. 2026-11-30T14:05:00Z: %w", errUsage, err)
		}
	}
	if v, set := own["to-gtid"]; set {
		n++
		target.GTID = v
	}
	if own["to-latest"] == "true" {
		n++
	}
	if n > 1 {
		return target, true, fmt.Errorf("%w: restore takes one of --to-time, --to-gtid and --to-latest", errUsage)
	}
	return target, n == 1, nil
}

// runPointInTime is `shoal restore --to-time T | --to-gtid G | --to-latest`: a backup restored
// and the binlog archive replayed into it up to the target. The archived files are all
// downloaded and checked before anything is restored. The backup goes into a directory beside
// DIR, where a server started with --server-command (plus --datadir, --socket and
// --skip-networking, so no client and no replica can reach it) replays the binlogs and is shut
// down; only then is the directory renamed to DIR. A failure removes it: nothing half-restored
// is left to start as a member.
//
// --latest already names the newest backup without binlogs; --to-latest is the newest point
// the archive reaches.
func runPointInTime(ctx context.Context, a *backupArgs, cat backup.Catalog, target backup.BinlogTarget, stdout io.Writer) (err error) {
	dataDir, id := a.own["datadir"], a.own["id"]
	server := strings.Fields(a.own["server-command"])
	if dataDir == "" || len(server) == 0 || a.own["latest"] != "" {
		return fmt.Errorf("%w: a point-in-time restore takes --datadir DIR and --server-command CMD (and --id ID to name the backup)", errUsage)
	}
	dataDir, err = filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if names, _ := os.ReadDir(dataDir); len(names) > 0 {
		return fmt.Errorf("%s is not empty: restore only into an empty or new directory", dataDir)
	}
	m, err := pitrBackup(ctx, cat, id, target)
	if err != nil {
		return err
	}
	log := a.logger().With("backup", m.ID, "target", target.String())
	stage := dataDir + ".binlogs"
	if err := os.Mkdir(stage, 0o750); err != nil {
		return fmt.Errorf("stage dir for binlogs: %w", err)
	}
	defer os.RemoveAll(stage)
	replay, err := backup.PrepareReplay(ctx, cat, m, target, stage)
	if err != nil {
		return err
	}
	log.Info("binlogs downloaded and checked", "files", len(replay.Steps), "transactions", replay.Transactions)
	for _, f := range replay.Abandoned {
		log.Warn("archived binlog of a lost history not replayed: the cluster went on without its transactions",
			"file", f.File, "member", f.Member, "gtid_after", f.GTIDAfter)
	}
	work := dataDir + ".pitr"
	defer func() {
		if err != nil {
			os.RemoveAll(work)
		}
	}()
	r := &backup.Restorer{Catalog: cat, Metrics: backup.NewMetrics(prometheus.NewRegistry()), Log: log}
	if _, err := r.Restore(ctx, m.ID, work); err != nil {
		return err
	}
	tools := replayTools(m.Flavor, a.own)
	sock := filepath.Join(stage, "mysqld.sock")
	conn := mysqlctl.Config{Addr: sock, User: a.cfg.MySQL.User, Password: a.secrets.MySQLPassword}
	if err := withServer(ctx, server, work, sock, conn, log, func() error {
		return replay.Apply(ctx, tools, stage, conn, log)
	}); err != nil {
		return err
	}
	// rename(2) replaces an empty directory, as the restore of a backup does.
	if err := syscall.Rename(work, dataDir); err != nil {
		return fmt.Errorf("move the restored data in: %w", err)
	}
	last := "nothing after the backup"
	if replay.Transactions > 0 {
		last = fmt.Sprintf("%s of %s", replay.Last.GTID, replay.Last.Time.Format(time.RFC3339))
	}
	_, err = fmt.Fprintf(stdout, "restored backup %s (GTID %s) and %d archived transactions to %s (last: %s) into %s\n",
		m.ID, orDash(m.GTIDExecuted), replay.Transactions, target, last, dataDir)
	return err
}

// pitrBackup is the backup named by id, or the newest that can reach target.
func pitrBackup(ctx context.Context, cat backup.Catalog, id string, target backup.BinlogTarget) (*backup.Manifest, error) {
	if id != "" {
		return cat.Manifest(ctx, id)
	}
	entries, err := cat.List(ctx)
	if err != nil {
		return nil, err
	}
	return backup.BackupFor(entries, target)
}

// replayTools are the flavor's binlog tool and client, or those named by --binlog-tool and
// --client.
func replayTools(flavor gtid.Flavor, own map[string]string) backup.ReplayTools {
	t := backup.ReplayTools{Binlog: []string{"mysqlbinlog"}, Client: []string{"mysql"}}
	if flavor == gtid.MariaDB {
		t = backup.ReplayTools{Binlog: []string{"mariadb-binlog"}, Client: []string{"mariadb"}}
	}
	if v := strings.Fields(own["binlog-tool"]); len(v) > 0 {
		t.Binlog = v
	}
	if v := strings.Fields(own["client"]); len(v) > 0 {
		t.Client = v
	}
	return t
}

// withServer starts a server on dataDir reachable only through sock, runs f against it, and
// shuts it down.
func withServer(ctx context.Context, argv []string, dataDir, sock string, conn mysqlctl.Config, log *slog.Logger, f func() error) error {
	args := append(append([]string{}, argv[1:]...), "--datadir="+dataDir, "--socket="+sock, "--skip-networking",
		"--pid-file="+sock+".pid", "--log-error="+filepath.Join(filepath.Dir(sock), "mysqld.err"))
	cmd := exec.Command(argv[0], args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the server on the restored data: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	errLog := func() string {
		b, _ := os.ReadFile(filepath.Join(filepath.Dir(sock), "mysqld.err"))
		return lastLines(string(b), 5)
	}
	srv, err := waitServer(ctx, conn, exited)
	if err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("server on the restored data: %w\n%s", err, errLog())
	}
	log.Info("server started on the restored data", "socket", sock)
	ferr := f()
	_, serr := srv.DB().ExecContext(ctx, "SHUTDOWN")
	srv.Close()
	select {
	case <-exited:
	case <-time.After(5 * time.Minute):
		_ = cmd.Process.Kill()
		serr = errors.Join(serr, errors.New("the server did not stop within 5 minutes of SHUTDOWN; killed"))
	}
	if serr != nil {
		serr = fmt.Errorf("shut the server on the restored data down: %w", serr)
	}
	return errors.Join(ferr, serr)
}

// waitServer connects to the starting server, failing when it exits first.
func waitServer(ctx context.Context, conn mysqlctl.Config, exited <-chan error) (*mysqlctl.Server, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for {
		srv, err := mysqlctl.Open(ctx, conn)
		if err == nil {
			return srv, nil
		}
		select {
		case werr := <-exited:
			return nil, fmt.Errorf("it exited: %w", werr)
		case <-ctx.Done():
			return nil, fmt.Errorf("not ready: %w (last: %w)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// backupBinlogs is `shoal backup binlogs`: the archived binlog files in replay order from the
// newest valid backup, and whether that replay reaches the end of the archive without a gap.
// It fails on a gap or a missing object (found by listing; restore checks the sha256), so it can
// serve as a check.
func backupBinlogs(ctx context.Context, args []string, stdout io.Writer) error {
	_, cat, err := parseCatalogArgs(args, 0, nil)
	if err != nil {
		return err
	}
	m, err := cat.Latest(ctx)
	if err != nil {
		return err
	}
	files, err := cat.ListBinlogs(ctx)
	if err != nil {
		return err
	}
	from, err := gtid.Parse(m.Flavor, m.GTIDExecuted)
	if err != nil {
		return fmt.Errorf("backup %s: %w", m.ID, err)
	}
	steps, abandoned, err := backup.PlanReplay(m.Flavor, from, files, backup.BinlogTarget{})
	if err != nil {
		return fmt.Errorf("from backup %s: %w", m.ID, err)
	}
	var needed []*backup.BinlogManifest
	for _, s := range steps {
		needed = append(needed, s.File)
	}
	if err := cat.BinlogPresence(ctx, needed); err != nil {
		return fmt.Errorf("from backup %s: %w", m.ID, err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tFILE\tSIZE\tTRANSACTIONS\tFIRST\tLAST\tGTID AFTER")
	for _, s := range steps {
		f := s.File
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", f.Member, f.File, humanBytes(f.Size), f.Transactions,
			f.FirstTime.Format(time.RFC3339), f.LastTime.Format(time.RFC3339), f.GTIDAfter)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range abandoned {
		fmt.Fprintf(stdout, "not replayed (a history the cluster did not go on with): %s of %s, to %s\n", f.File, f.Member, f.GTIDAfter)
	}
	point := m.EndTime
	if len(steps) > 0 {
		point = steps[len(steps)-1].File.LastTime
	}
	_, err = fmt.Fprintf(stdout, "backup %s and %d of %d archived files replay without a gap to %s\n", m.ID, len(steps), len(files), point.Format(time.RFC3339))
	return err
}
