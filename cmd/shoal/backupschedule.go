package main

import (
	"context"
	"log/slog"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/config"
	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/backup/schedule"
)

// scheduledBackups turns on the leader-owned backup schedule and retention against the
// configured store, or returns nil while backups are off (no backup.s3.bucket).
func scheduledBackups(cfg config.Config, secrets config.Secrets, metrics *backup.Metrics, log *slog.Logger, reporter adminapi.Client) (*agent.BackupOptions, error) {
	if cfg.Backup.S3.Bucket == "" {
		return nil, nil
	}
	policy, retention, err := cfg.BackupPolicy()
	if err != nil {
		return nil, err
	}
	store, err := backupStore(cfg, secrets)
	if err != nil {
		return nil, err
	}
	taker, err := backupTaker(cfg, secrets, store, metrics, log)
	if err != nil {
		return nil, err
	}
	catalog := backup.Catalog{Store: store, Cluster: cfg.Cluster}
	runner := backupRunner{taker: taker}
	if cfg.Backup.VerifyAfterBackup {
		runner.verifier = backupVerifier(cfg, catalog, metrics, log)
	}
	o := &agent.BackupOptions{Runner: runner, Catalog: backupCatalog{catalog},
		Reporter: reporter, Policy: policy, Retention: retention}
	if cfg.Backup.Binlogs.Enabled {
		o.PointInTimeWindow, o.Binlogs = cfg.Backup.Binlogs.Window, binlogPruner{catalog}
	}
	return o, nil
}

// backupRunner takes a scheduled job's backup of the local member, and restore-tests it when
// verifier is set.
type backupRunner struct {
	taker    *backup.Taker
	verifier *backup.Verifier
}

func (r backupRunner) RunBackup(ctx context.Context, jobID string) (schedule.Backup, error) {
	m, err := r.taker.TakeForJob(ctx, jobID)
	if err != nil {
		return schedule.Backup{}, err
	}
	if r.verifier != nil {
		// The backup is valid whatever the test finds: the outcome, recorded beside it, steers
		// restores, and the job stays done.
		if _, err := r.verifier.Verify(ctx, m.ID); err != nil {
			r.taker.Log.Error("restore test of a scheduled backup failed", "backup", m.ID, "err", err)
		}
	}
	return asScheduled(backup.Entry{ID: m.ID, Started: m.StartTime, Manifest: m, Valid: true}), nil
}

// backupCatalog is the store's catalog as retention sees it.
type backupCatalog struct{ catalog backup.Catalog }

func (c backupCatalog) List(ctx context.Context) ([]schedule.Backup, error) {
	entries, err := c.catalog.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]schedule.Backup, len(entries))
	for i, e := range entries {
		out[i] = asScheduled(e)
	}
	return out, nil
}

func (c backupCatalog) Delete(ctx context.Context, id string) error { return c.catalog.Delete(ctx, id) }

// asScheduled is a catalog entry as retention weighs it. A backup without a readable manifest
// has only its id, and its start from it.
func asScheduled(e backup.Entry) schedule.Backup {
	b := schedule.Backup{ID: e.ID, Start: e.Started, Valid: e.Valid}
	if m := e.Manifest; m != nil {
		b.Member, b.Job, b.End, b.GTIDSet = m.Member, m.Job, m.EndTime, m.GTIDExecuted
	}
	return b
}
