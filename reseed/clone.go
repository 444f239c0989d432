package reseed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/hostport"
)

// errRestartWithoutSupervisor (3707) is what CLONE returns when the cloned data is in place but
// mysqld, run without a supervisor, could only shut down.
const errRestartWithoutSupervisor = 3707

// CloneOptions say where a MySQL recipient clones from and how fast.
type CloneOptions struct {
	// Donor is the donor's MySQL address as the recipient reaches it (host:port).
	Donor string
	// User and Password log in to the donor; the account needs BACKUP_ADMIN there. The agent's
	// own account serves: it is the same on every member, and the copy brings it along.
	User, Password string
	// MaxBandwidthMiB caps the copy at this many MiB/s (clone_max_data_bandwidth), so the donor
	// keeps up with its primary; 0 is unlimited.
	MaxBandwidthMiB int
	// MaxConcurrency caps the clone's threads (clone_max_concurrency); 0 keeps the server's.
	MaxConcurrency int
}

// Clone replaces the MySQL server at local (the agent's own connection settings) with a copy of
// the donor's data and brings it back up: CLONE INSTANCE on the recipient, then, if mysqld shut
// down for want of a supervisor, svc.Start (svc may be nil when a supervisor restarts mysqld;
// the clone then fails if none did). Progress is logged from performance_schema.clone_progress
// when the server has it. Both servers need the clone plugin loaded
// (plugin-load-add=mysql_clone.so) and the account CLONE_ADMIN on the recipient. The recipient
// comes back with the donor's data and GTIDs, read-only as its configuration says, and no
// replication configured: the agent points it at the primary.
func Clone(ctx context.Context, local mysqlctl.Config, svc Service, opts CloneOptions, log *slog.Logger) error {
	host, port, err := hostport.Split(opts.Donor)
	if err != nil {
		return fmt.Errorf("clone: donor address: %w", err)
	}
	// CLONE INSTANCE returns only when the copy is done: the connection may wait for hours.
	long := local
	long.ReadTimeout = 24 * time.Hour
	srv, err := mysqlctl.Open(ctx, long)
	if err != nil {
		return fmt.Errorf("clone from %s: %w", opts.Donor, err)
	}
	defer srv.Close()
	if srv.Flavor() != gtid.MySQL {
		return fmt.Errorf("clone from %s: the local server is %s; clone is MySQL's", opts.Donor, srv.Flavor())
	}
	db := srv.DB()
	if err := CheckClonePlugin(ctx, db); err != nil {
		return fmt.Errorf("clone from %s: %s: %w", opts.Donor, local.Addr, err)
	}
	// CLONE drops the recipient's databases, which super_read_only forbids even to it. read_only
	// stays on, so no client without SUPER writes meanwhile, and the restart brings back the
	// configured super_read_only.
	set := map[string]any{"clone_valid_donor_list": opts.Donor, "clone_max_data_bandwidth": max(opts.MaxBandwidthMiB, 0),
		"super_read_only": false}
	if opts.MaxConcurrency > 0 {
		set["clone_max_concurrency"] = opts.MaxConcurrency
	}
	for name, value := range set {
		if _, err := db.ExecContext(ctx, "SET GLOBAL "+name+" = ?", value); err != nil {
			return fmt.Errorf("clone from %s: set %s: %w", opts.Donor, name, err)
		}
	}
	donorLSN, err := donorRedoLSN(ctx, local, opts)
	if err != nil {
		return fmt.Errorf("clone from %s: %w", opts.Donor, err)
	}
	begin := time.Now()
	log.Info("clone starting", "donor", opts.Donor, "max_mib_per_second", opts.MaxBandwidthMiB, "donor_lsn", donorLSN)
	progressCtx, stopProgress := context.WithCancel(ctx)
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		logProgress(progressCtx, db, log)
	}()
	_, err = db.ExecContext(ctx, "CLONE INSTANCE FROM ?@?:"+fmt.Sprint(port)+" IDENTIFIED BY ?", opts.User, host, opts.Password)
	stopProgress()
	<-progressDone
	var me *mysql.MySQLError
	switch {
	case errors.As(err, &me) && me.Number == errRestartWithoutSupervisor:
		// The data is in place; mysqld shut down and waits for its service manager.
		log.Info("clone copied; starting mysqld", "donor", opts.Donor, "took", time.Since(begin).Round(time.Millisecond))
		if err := waitDown(ctx, local); err != nil {
			return fmt.Errorf("clone from %s: %w", opts.Donor, err)
		}
		if svc == nil {
			return fmt.Errorf("clone from %s: mysqld shut down after the copy and no start command is set (mysql.start_command)", opts.Donor)
		}
		if err := svc.Start(ctx); err != nil {
			return fmt.Errorf("clone from %s: %w", opts.Donor, err)
		}
	case err != nil && !errors.Is(err, mysql.ErrInvalidConn):
		// The old data is still there and the server runs: fence it again as it was.
		fenceCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, ferr := db.ExecContext(fenceCtx, "SET GLOBAL super_read_only = ON"); ferr != nil {
			err = errors.Join(err, fmt.Errorf("turn super_read_only back on: %w", ferr))
		}
		return fmt.Errorf("clone from %s: CLONE INSTANCE: %w", opts.Donor, err)
	default:
		// A supervised mysqld restarts itself, which may drop our connection before CLONE answers.
		log.Info("clone copied; mysqld restarts itself", "donor", opts.Donor, "took", time.Since(begin).Round(time.Millisecond))
	}
	back, err := waitReady(ctx, local)
	if err != nil {
		return fmt.Errorf("clone from %s: %w", opts.Donor, err)
	}
	defer back.Close()
	return checkRedoCarriedOver(ctx, back.DB(), opts.Donor, donorLSN)
}

// redoLSNQuery reads how far a MySQL server's redo log has come (8.0.30 and later).
const redoLSNQuery = "SELECT VARIABLE_VALUE FROM performance_schema.global_status WHERE VARIABLE_NAME = 'Innodb_redo_log_current_lsn'"

// donorRedoLSN is the donor's redo position before the copy; 0 when the server does not say.
func donorRedoLSN(ctx context.Context, local mysqlctl.Config, opts CloneOptions) (uint64, error) {
	cfg := local
	cfg.Addr, cfg.User, cfg.Password = opts.Donor, opts.User, opts.Password
	donor, err := mysqlctl.Open(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("read the donor's redo position: %w", err)
	}
	defer donor.Close()
	lsn, err := redoLSN(ctx, donor.DB())
	if err != nil {
		return 0, fmt.Errorf("read the donor's redo position: %w", err)
	}
	return lsn, nil
}

// redoLSN is how far the server's redo log has come; 0 when the server does not say (before
// MySQL 8.0.30).
func redoLSN(ctx context.Context, db *sql.DB) (uint64, error) {
	var lsn uint64
	if err := db.QueryRowContext(ctx, redoLSNQuery).Scan(&lsn); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	return lsn, nil
}

// checkRedoCarriedOver fails a clone whose recipient came back with its redo log behind where
// the donor's was when the copy began. The copied pages carry the donor's LSNs; a recipient whose
// own LSN is lower writes pages that its redo cannot account for, and its next crash recovery
// finds them "in the future" and stops (seen once in the five-member chaos run).
func checkRedoCarriedOver(ctx context.Context, db *sql.DB, donor string, donorLSN uint64) error {
	if donorLSN == 0 {
		return nil
	}
	lsn, err := redoLSN(ctx, db)
	if err != nil {
		return fmt.Errorf("clone from %s: read the copy's redo position: %w", donor, err)
	}
	if lsn < donorLSN {
		return fmt.Errorf("clone from %s: the copy's redo log is at LSN %d, behind the donor's %d when the copy began: "+
			"its pages are newer than its redo, and a crash would leave it unrecoverable; copy it again", donor, lsn, donorLSN)
	}
	return nil
}

// CheckClonePlugin fails unless the server behind db has the clone plugin active.
func CheckClonePlugin(ctx context.Context, db *sql.DB) error {
	var status sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'").Scan(&status); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("check the clone plugin: %w", err)
	}
	if status.String != "ACTIVE" {
		return errors.New("the clone plugin is not active (load it with plugin-load-add=mysql_clone.so)")
	}
	return nil
}

// logProgress logs the running clone's stage and bytes every 10 seconds until ctx ends. Without
// performance_schema (or before the clone registers) there is nothing to read, and it says so
// once at debug level.
func logProgress(ctx context.Context, db *sql.DB, log *slog.Logger) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var stage string
		var estimate, data int64
		err := db.QueryRowContext(ctx, "SELECT STAGE, ESTIMATE, DATA FROM performance_schema.clone_progress "+
			"WHERE STATE = 'In Progress' ORDER BY ID DESC LIMIT 1").Scan(&stage, &estimate, &data)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			log.Debug("no clone progress to read", "err", err)
			return
		default:
			log.Info("clone progress", "stage", stage, "bytes", data, "estimate", estimate)
		}
	}
}
