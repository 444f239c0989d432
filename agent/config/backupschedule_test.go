package config

import (
	"strings"
	"testing"
	"time"
)

func TestBackupSchedule(t *testing.T) {
	c := validConfig(t)
	p, r, err := c.BackupPolicy()
	if err != nil || !p.Spec.IsZero() || p.JobTimeout != 6*time.Hour || r.KeepCount != 7 || r.IncompleteGrace != p.JobTimeout {
		t.Fatalf("defaults: %+v %+v %v", p, r, err)
	}
	c, err = Load("", []string{"SHOAL_BACKUP_SCHEDULE=CRON_TZ=Europe/Paris 30 2 * * *"}, []string{"--backup.keep_age", "72h"})
	if err != nil {
		t.Fatal(err)
	}
	p, r, err = c.BackupPolicy()
	if err != nil || p.Spec.String() != "CRON_TZ=Europe/Paris 30 2 * * *" || r.KeepAge != 72*time.Hour {
		t.Fatalf("loaded: %+v %+v %v", p, r, err)
	}

	c = validConfig(t)
	c.Backup.Schedule = "@every 1h"
	c.Backup.KeepCount = -1
	c.Backup.JobTimeout = time.Second
	err = c.Validate()
	for _, want := range []string{"backup.schedule: ", "backup.keep_count", "backup.job_timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem with %s", err, want)
		}
	}
}
