package harness

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// Rebuild replaces the server's data with a logical copy of src's user databases taken at a
// consistent GTID position: the explicit repair of a member that holds errant transactions. The
// server is killed if it runs and started on a fresh template copy, so nothing of its old data
// survives; it comes back read-only (as configured) with the GTID position of the copy, ready to
// replicate from src's cluster with auto-positioning.
func (s *Server) Rebuild(ctx context.Context, src *Server) error {
	fail := func(step string, err error) error {
		return fmt.Errorf("rebuild %s from %s: %s: %w", s.Config.Name, src.Config.Name, step, err)
	}
	if s.fl != src.fl {
		return fail("check flavors", fmt.Errorf("%s is %s, %s is %s", s.Config.Name, s.Config.Flavor, src.Config.Name, src.Config.Flavor))
	}
	dump := filepath.Join(s.dir, "rebuild.sql")
	position, err := src.dumpUserDatabases(ctx, dump)
	if err != nil {
		return fail("dump", err)
	}
	defer os.Remove(dump)
	var state string // MariaDB: the gtid_binlog_state the copy stands for
	if s.Config.Flavor == gtid.MariaDB {
		if state, err = src.binlogStateAt(ctx, position); err != nil {
			return fail("binlog state of the copy", err)
		}
	}
	if err := s.freshDataDir(); err != nil {
		return fail("fresh data dir", err)
	}
	// Loaded with networking off and read-only off: no client, agent or replica sees the
	// half-loaded server, and root can write it.
	s.loading.Store(true)
	err = s.load(ctx, dump, position, state)
	if err != nil {
		s.loading.Store(false)
		return fail("load", err)
	}
	// Still loading until stopped: the loaded server runs writable until then.
	err = s.Stop(ctx)
	s.loading.Store(false)
	if err != nil {
		return fail("stop after loading", err)
	}
	if err := s.start(ctx); err != nil {
		return fail("start", err)
	}
	s.log.Info("server rebuilt", "server", s.Config.Name, "from", src.Config.Name, "gtid", position)
	return nil
}

// freshDataDir kills the server if it runs and replaces its data dir with a copy of the template.
func (s *Server) freshDataDir() error {
	if err := s.Kill(); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	if err := os.RemoveAll(s.dataDir()); err != nil {
		return err
	}
	return s.fl.copyTemplate(s.dataDir(), s.log)
}

// Reinitialize gives the server an empty data dir, as a new disk or a new pod's first start has
// (initialized: the accounts exist, no user data, no GTIDs), and starts it on it.
func (s *Server) Reinitialize(ctx context.Context) error {
	if err := s.freshDataDir(); err != nil {
		return fmt.Errorf("reinitialize %s: %w", s.Config.Name, err)
	}
	if err := s.start(ctx); err != nil {
		return fmt.Errorf("reinitialize %s: %w", s.Config.Name, err)
	}
	s.log.Info("server reinitialized", "server", s.Config.Name)
	return nil
}

// load starts the server and loads the dump at path, with the GTID position and the binlog
// state state (MariaDB).
func (s *Server) load(ctx context.Context, path, position, state string) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	cmd := s.fl.command(s.fl.client, "--socket="+s.inner("mysqld.sock"), "--user="+RootUser,
		// The copy is not a transaction of this server's own: no binlog, no GTIDs of its own.
		"--init-command=SET SESSION sql_log_bin = 0")
	cmd.Env = append(cmd.Env, "MYSQL_PWD="+RootPassword)
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", s.fl.client, err, lastLines(string(out), 10))
	}
	if s.Config.Flavor == gtid.MySQL {
		return nil // its dump sets gtid_purged itself
	}
	db, err := sql.Open("mysql", s.probeDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	// MariaDB's dump names the position in a comment. The binlog state matters as much: errant
	// checks compare it per server, and a copy without it would make every member holding an
	// older server's last transaction look errant once this one is primary.
	if _, err := db.ExecContext(ctx, "RESET MASTER"); err != nil {
		return fmt.Errorf("reset binlog: %w", err)
	}
	if _, err := db.ExecContext(ctx, "SET GLOBAL gtid_binlog_state = ?", state); err != nil {
		return fmt.Errorf("set gtid_binlog_state: %w", err)
	}
	if _, err := db.ExecContext(ctx, "SET GLOBAL gtid_slave_pos = ?", position); err != nil {
		return fmt.Errorf("set gtid_slave_pos: %w", err)
	}
	return nil
}

// binlogStateAt is the gtid_binlog_state a copy of s taken at position pos stands for: each
// (domain, server) entry of s's state now that is not past pos, and pos itself. An entry past pos
// is a server's that wrote after the copy; with one writer at a time that is pos's own server,
// whose entry at the copy is pos.
func (s *Server) binlogStateAt(ctx context.Context, pos string) (string, error) {
	db, err := sql.Open("mysql", s.DSN(RootUser, RootPassword))
	if err != nil {
		return "", err
	}
	defer db.Close()
	var now string
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_state").Scan(&now); err != nil {
		return "", fmt.Errorf("read gtid_binlog_state: %w", err)
	}
	return gtid.MariaDBBinlogStateAt(now, pos)
}

// mariadbDumpGTID is the position line mariadb-dump --gtid --master-data=2 writes.
var mariadbDumpGTID = regexp.MustCompile(`(?m)^-- SET GLOBAL gtid_slave_pos='([0-9,-]*)';$`)

// dumpUserDatabases writes every non-system database of s to path, with the GTID position of the
// snapshot, and returns that position as MariaDB states it ("" for MySQL, whose dump sets
// gtid_purged itself).
func (s *Server) dumpUserDatabases(ctx context.Context, path string) (string, error) {
	db, err := sql.Open("mysql", s.DSN(RootUser, RootPassword))
	if err != nil {
		return "", err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "+
		"WHERE SCHEMA_NAME NOT IN ('mysql', 'sys', 'information_schema', 'performance_schema')")
	if err != nil {
		return "", fmt.Errorf("list databases: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return "", err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	args := []string{"--host=" + s.Host(), "--port=" + strconv.Itoa(s.Port()), "--user=" + RootUser,
		"--single-transaction", "--triggers", "--routines", "--events"}
	if s.Config.Flavor == gtid.MySQL {
		// --source-data makes the GTID set the snapshot's (a brief global read lock); gtid_purged
		// is set by the dump.
		args = append(args, "--source-data=2", "--set-gtid-purged=ON")
	} else {
		args = append(args, "--master-data=2", "--gtid")
	}
	args = append(args, "--databases")
	args = append(args, names...)
	out, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer out.Close()
	cmd := s.fl.command(s.fl.dump, args...)
	cmd.Env = append(cmd.Env, "MYSQL_PWD="+RootPassword)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", s.fl.dump, err, lastLines(stderr.String(), 10))
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	if s.Config.Flavor == gtid.MySQL {
		return "", nil
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	m := mariadbDumpGTID.FindSubmatch(text)
	if m == nil {
		return "", fmt.Errorf("no gtid_slave_pos line in the dump")
	}
	return string(m[1]), nil
}
