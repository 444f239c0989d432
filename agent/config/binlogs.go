package config

import (
	"fmt"
	"time"
)

// binlogProblems checks the binlog archive's settings.
func (b Backup) binlogProblems() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	l := b.Binlogs
	if l.Enabled && b.S3.Bucket == "" {
		bad("backup.binlogs.enabled: the binlog archive needs a store, backup.s3.bucket is empty")
	}
	if l.Interval < time.Second {
		bad("backup.binlogs.interval: at least 1s, got %s", l.Interval)
	}
	if l.FlushInterval != 0 && l.FlushInterval < l.Interval {
		bad("backup.binlogs.flush_interval: 0 (never) or at least backup.binlogs.interval (%s), got %s", l.Interval, l.FlushInterval)
	}
	if l.Window < 0 {
		bad("backup.binlogs.window: must not be negative, got %s", l.Window)
	}
	return errs
}
