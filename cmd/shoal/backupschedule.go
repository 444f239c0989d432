package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/config"
	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/backup/schedule"
)

// scheduledBackups turns on the leader-owned backup schedule and retention against the
// configured store, or returns nil while backups are off (no backup.s3.bucket).
func scheduledBackups(cfg config.Config, secrets config.Secrets, reg prometheus.Registerer, log *slog.Logger, reporter adminapi.Client) (*agent.BackupOptions, error) {
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
	taker, err := backupTaker(cfg, secrets, store, backup.NewMetrics(reg), log)
	if err != nil {
		return nil, err
	}
	o := &agent.BackupOptions{Runner: backupRunner{taker}, Catalog: backupCatalog{backup.Catalog{Store: store, Cluster: cfg.Cluster}},
		Reporter: reporter, Policy: policy, Retention: retention}
	if cfg.Backup.Binlogs.Enabled {
		o.PointInTimeWindow, o.Binlogs = cfg.Backup.Binlogs.Window, binlogPruner{backup.Catalog{Store: store, Cluster: cfg.Cluster}}
	}
	return o, nil
}

// backupRunner takes a scheduled job's backup of the local member.
type backupRunner struct{ taker *backup.Taker }

func (r backupRunner) RunBackup(ctx context.Context, jobID string) (schedule.Backup, error) {
	m, err := r.taker.TakeForJob(ctx, jobID)
	if err != nil {
		return schedule.Backup{}, err
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
