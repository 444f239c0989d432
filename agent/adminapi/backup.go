package adminapi

import (
	"context"
	"net/http"
	"time"
)

// BackupReport is a member's agent telling the Raft leader how its scheduled backup job ended.
type BackupReport struct {
	Member string `json:"member"`
	// Slot and Attempt name the job (record.BackupJob).
	Slot    time.Time `json:"slot"`
	Attempt int       `json:"attempt"`
	// BackupID is the backup the job took; empty when Error says why there is none.
	BackupID string `json:"backup_id,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ReportBackup tells the leader at addr how this member's job ended.
func (c Client) ReportBackup(ctx context.Context, addr string, r BackupReport) error {
	return c.call(ctx, http.MethodPost, addr, "/v1/backup/report", r, nil)
}
