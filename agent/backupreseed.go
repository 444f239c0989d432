package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/reseed"
)

// BackupRestorer restores the backup a re-seed from the store uses (cmd/shoal adapts
// backup.Catalog.ForRestore and backup.Restorer: the newest verified backup, else the newest
// valid one not known to fail its test).
type BackupRestorer interface {
	// Pick names that backup and its GTID position.
	Pick(ctx context.Context) (id, position string, err error)
	// Restore restores backup id into dir, which must not exist, checking every object against
	// the manifest on the way. On error nothing is left at dir.
	Restore(ctx context.Context, id, dir string) error
}

// errNoBackupStore: the leader asked for a re-seed from a backup, and this agent has no store.
var errNoBackupStore = errors.New("re-seed from a backup: this agent has no backup store (backup.s3.bucket)")

// startBackupReseed starts re-seeding the local server from the newest backup in the background.
func (a *Agent) startBackupReseed() error {
	if a.opts.BackupRestorer == nil {
		return errNoBackupStore
	}
	var id, pos string
	return a.runReseed("from", "the newest backup", reseedSteps{
		// Checked before replication stops and before the download: the leader asks again while
		// the member stays empty, and a copy the primary's binlogs cannot bring up to date would
		// be fetched and swapped in for nothing each time (and a stopped receiver no longer
		// shows why the member needs a copy).
		check: func(ctx context.Context) (err error) {
			if id, pos, err = a.opts.BackupRestorer.Pick(ctx); err != nil {
				return fmt.Errorf("re-seed from a backup: %w", err)
			}
			if err := a.primaryCanCatchUp(ctx, pos); err != nil {
				return fmt.Errorf("re-seed from backup %s: %w", id, err)
			}
			return nil
		},
		copy: func(ctx context.Context, flavor gtid.Flavor) error { return a.reseedFromBackup(ctx, flavor, id, pos) },
	})
}

// reseedFromBackup replaces the local server's data with the newest backup: restored and checked
// beside the data dir while mysqld still runs, swapped in while it is down, so the server never
// starts on half a copy. The agent's next passes point it at the primary.
func (a *Agent) reseedFromBackup(ctx context.Context, flavor gtid.Flavor, id, pos string) error {
	o := a.opts.Reseed
	if o.Service == nil {
		return errors.New("re-seed from a backup: mysqld must be stopped and started around the swap: set mysql.stop_command and mysql.start_command")
	}
	dataDir, err := a.localDataDir(ctx)
	if err != nil {
		return fmt.Errorf("re-seed from a backup: %w", err)
	}
	staging := dataDir + ".backup"
	// What a crashed earlier attempt left there was never started on.
	if err := os.RemoveAll(staging); err != nil {
		return fmt.Errorf("re-seed from a backup: clear %s: %w", staging, err)
	}
	defer os.RemoveAll(staging)
	if err := a.opts.BackupRestorer.Restore(ctx, id, staging); err != nil {
		return fmt.Errorf("re-seed from a backup: %w", err)
	}
	log := a.log.With("component", "reseed", "backup", id)
	if flavor == gtid.MySQL {
		// The copy's server_uuid is its source's; a member needs its own, which mysqld makes at
		// start when auto.cnf is missing.
		if err := os.Remove(filepath.Join(staging, "auto.cnf")); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("re-seed from backup %s: %w", id, err)
		}
	}
	if err := reseed.ChownLike(staging, dataDir); err != nil {
		return fmt.Errorf("re-seed from backup %s: hand the copy to the data dir's owner: %w", id, err)
	}
	log.Info("backup restored beside the data dir; stopping mysqld to swap it in", "gtid", pos)
	srv, err := reseed.SwapIn(ctx, o.Local, o.Service, staging, dataDir)
	if err != nil {
		return fmt.Errorf("re-seed from backup %s: %w", id, err)
	}
	defer srv.Close()
	if flavor == gtid.MariaDB && pos != "" {
		rec := a.raft.Record()
		now, err := a.binlogState(ctx, rec.Members[rec.Primary].MySQLAddr)
		if err != nil {
			return fmt.Errorf("re-seed from backup %s: read the primary's binlog state: %w", id, err)
		}
		if _, err := reseed.PositionMariaDB(ctx, srv, pos, now); err != nil {
			return fmt.Errorf("re-seed from backup %s: %w", id, err)
		}
	}
	log.Info("re-seeded from a backup", "gtid", pos)
	return nil
}

// localDataDir is the configured data dir, else the running server's.
func (a *Agent) localDataDir(ctx context.Context) (string, error) {
	if d := a.opts.Reseed.DataDir; d != "" {
		return filepath.Clean(d), nil
	}
	srv, err := mysqlctl.Open(ctx, a.opts.Reseed.Local)
	if err != nil {
		return "", fmt.Errorf("learn the data dir from the running server (or set mysql.data_dir): %w", err)
	}
	defer srv.Close()
	var d string
	if err := srv.DB().QueryRowContext(ctx, "SELECT @@datadir").Scan(&d); err != nil {
		return "", fmt.Errorf("read datadir: %w", err)
	}
	return filepath.Clean(d), nil
}

// binlogState is the gtid_binlog_state of the member's server at addr, read with this agent's
// account (the same on every member): with a copy's position it gives the state the copy
// stands for.
func (a *Agent) binlogState(ctx context.Context, addr string) (string, error) {
	cfg := a.opts.Reseed.Local
	cfg.Addr = addr
	srv, err := mysqlctl.Open(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer srv.Close()
	var s string
	err = srv.DB().QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_state").Scan(&s)
	return s, err
}

// primaryCanCatchUp fails when the primary's binary logs start after pos, a copy's position: a
// member restored there could not replicate what lies between.
func (a *Agent) primaryCanCatchUp(ctx context.Context, pos string) error {
	rec := a.raft.Record()
	cfg := a.opts.Reseed.Local
	cfg.Addr = rec.Members[rec.Primary].MySQLAddr
	srv, err := mysqlctl.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read the primary's oldest binlog position: %w", err)
	}
	defer srv.Close()
	flavor := srv.Flavor()
	var start string
	if flavor == gtid.MySQL {
		err = srv.DB().QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_purged").Scan(&start)
	} else {
		start, err = mariadbBinlogsStart(ctx, srv)
	}
	if err != nil {
		return fmt.Errorf("read the primary's oldest binlog position: %w", err)
	}
	ok, err := binlogsReach(flavor, start, pos)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("the primary's binlogs start at %q, after the backup's position %q: a member restored from it could not catch up (take a newer backup)", start, pos)
	}
	return nil
}

// mariadbBinlogsStart is the GTID position at the start of the server's oldest binlog.
func mariadbBinlogsStart(ctx context.Context, srv *mysqlctl.Server) (string, error) {
	var file string
	var size any
	rows, err := srv.DB().QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return "", err
	}
	if rows.Next() {
		err = rows.Scan(&file, &size)
	}
	if err := errors.Join(err, rows.Err(), rows.Close()); err != nil {
		return "", err
	}
	if file == "" {
		return "", errors.New("no binary logs")
	}
	var start string
	err = srv.DB().QueryRowContext(ctx, "SELECT COALESCE(BINLOG_GTID_POS(?, 4), '')", file).Scan(&start)
	return start, err
}

// binlogsReach reports whether binlogs that start at start hold everything after pos. MySQL:
// start is gtid_purged, which pos must contain. MariaDB: both are positions (one GTID per
// domain); pos must be at or beyond start's sequence number in each of start's domains, whoever
// wrote the last transaction of the domain.
func binlogsReach(flavor gtid.Flavor, start, pos string) (bool, error) {
	if flavor == gtid.MySQL {
		purged, err := gtid.Parse(flavor, strings.ReplaceAll(start, "\n", ""))
		if err != nil {
			return false, fmt.Errorf("gtid_purged: %w", err)
		}
		have, err := gtid.Parse(flavor, pos)
		if err != nil {
			return false, fmt.Errorf("backup position: %w", err)
		}
		return have.Contains(purged)
	}
	need, err := mariadbSeqnos(start)
	if err != nil {
		return false, fmt.Errorf("binlog start: %w", err)
	}
	have, err := mariadbSeqnos(pos)
	if err != nil {
		return false, fmt.Errorf("backup position: %w", err)
	}
	for domain, seq := range need {
		if have[domain] < seq {
			return false, nil
		}
	}
	return true, nil
}

// mariadbSeqnos maps each domain of a MariaDB GTID position to its highest sequence number.
func mariadbSeqnos(pos string) (map[uint32]uint64, error) {
	if _, err := gtid.Parse(gtid.MariaDB, pos); err != nil {
		return nil, err
	}
	out := map[uint32]uint64{}
	for _, g := range strings.Split(pos, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		var domain, server uint32
		var seq uint64
		if _, err := fmt.Sscanf(g, "%d-%d-%d", &domain, &server, &seq); err != nil {
			return nil, fmt.Errorf("GTID %q: %w", g, err)
		}
		out[domain] = max(out[domain], seq)
	}
	return out, nil
}
