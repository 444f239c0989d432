package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/reseed"
)

// BackupRestorer restores the backup a re-seed from the store uses (cmd/shoal adapts
// backup.Catalog.ForRestore and backup.Restorer: the newest verified backup, else the newest
// valid one not known to fail its test).
type BackupRestorer interface {
	// RestoreNewest restores that backup into dir, which must not exist, checking every object
	// against the manifest on the way; it returns the backup's id and GTID position. On error
	// nothing is left at dir.
	RestoreNewest(ctx context.Context, dir string) (id, position string, err error)
}

// errNoBackupStore: the leader asked for a re-seed from a backup, and this agent has no store.
var errNoBackupStore = errors.New("re-seed from a backup: this agent has no backup store (backup.s3.bucket)")

// startBackupReseed starts re-seeding the local server from the newest backup in the background.
func (a *Agent) startBackupReseed() error {
	if a.opts.BackupRestorer == nil {
		return errNoBackupStore
	}
	return a.runReseed("backup", "newest", a.reseedFromBackup)
}

// reseedFromBackup replaces the local server's data with the newest backup: restored and checked
// beside the data dir while mysqld still runs, swapped in while it is down, so the server never
// starts on half a copy. The agent's next passes point it at the primary.
func (a *Agent) reseedFromBackup(ctx context.Context, flavor gtid.Flavor) error {
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
	id, pos, err := a.opts.BackupRestorer.RestoreNewest(ctx, staging)
	if err != nil {
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
