package main

import (
	"context"
	"log/slog"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/config"
	"github.com/shoal-db/shoal/backup"
)

// reseedRestorer gives the agent the store's backups for re-seeds, or nil while backups are off
// (no backup.s3.bucket).
func reseedRestorer(cfg config.Config, secrets config.Secrets, metrics *backup.Metrics, log *slog.Logger) (agent.BackupRestorer, error) {
	if cfg.Backup.S3.Bucket == "" {
		return nil, nil
	}
	store, err := backupStore(cfg, secrets)
	if err != nil {
		return nil, err
	}
	return newestRestorer{&backup.Restorer{Catalog: backup.Catalog{Store: store, Cluster: cfg.Cluster}, Metrics: metrics, Log: log}}, nil
}

// newestRestorer restores the backup Catalog.ForRestore picks.
type newestRestorer struct{ r *backup.Restorer }

func (n newestRestorer) Pick(ctx context.Context) (string, string, error) {
	m, err := n.r.Catalog.ForRestore(ctx)
	if err != nil {
		return "", "", err
	}
	return m.ID, m.GTIDExecuted, nil
}

func (n newestRestorer) Restore(ctx context.Context, id, dir string) error {
	_, err := n.r.Restore(ctx, id, dir)
	return err
}
