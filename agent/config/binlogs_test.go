package config

import (
	"strings"
	"testing"
	"time"
)

func TestBinlogArchiveKeys(t *testing.T) {
	c, err := Load("", []string{"SHOAL_BACKUP_BINLOGS_FLUSH_INTERVAL=1m"}, []string{"--backup.binlogs.interval", "5s", "--backup.binlogs.dir", "/var/lib/mysql", "--backup.binlogs.window", "168h"})
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Backup.Binlogs; b.Enabled || b.Interval != 5*time.Second || b.FlushInterval != time.Minute || b.Dir != "/var/lib/mysql" || b.Window != 168*time.Hour {
		t.Fatalf("loaded: %+v", b)
	}
	if _, err := Load("", nil, []string{"--backup.binlogs.enable", "true"}); err == nil {
		t.Error("an unknown key was accepted")
	}

	c = validConfig(t)
	c.Backup.Binlogs.Enabled = true
	c.Backup.Binlogs.Interval = time.Millisecond
	c.Backup.Binlogs.FlushInterval = time.Nanosecond
	c.Backup.Binlogs.Window = -time.Hour
	err = c.Validate()
	for _, want := range []string{"backup.binlogs.enabled: ", "backup.binlogs.interval: ", "backup.binlogs.flush_interval: ", "backup.binlogs.window: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem with %s", err, want)
		}
	}
	c = validConfig(t)
	c.Backup.Binlogs.FlushInterval = 0
	if err := c.Validate(); err != nil {
		t.Errorf("flushing off: %v", err)
	}
}
