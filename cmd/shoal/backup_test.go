package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/backup"
)

func TestBackupCommandLineErrors(t *testing.T) {
	// Enough configuration to pass validation; nothing listens on 127.0.0.1:1.
	cfg := []string{"--cluster", "c1", "--node.id", "db1", "--backup.s3.bucket", "b", "--backup.s3.endpoint", "127.0.0.1:1",
		"--backup.s3.credentials", "env"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"backup"}, "no backup command given"},
		{[]string{"backup", "frobnicate"}, `unknown backup command "frobnicate"`},
		{[]string{"backup", "list", "--cluster", "c1"}, "backup.s3.bucket: required"},
		{append([]string{"backup", "verify"}, cfg...), "want 1 argument(s)"},
		{append([]string{"backup", "now", "extra"}, cfg...), "want 0 argument(s)"},
		{append([]string{"backup", "list", "-o", "yaml"}, cfg...), "want table or json"},
		{append([]string{"backup", "list", "--nope", "x"}, cfg...), "unknown flag --nope"},
		{append([]string{"backup", "list", "--backup.s3.sse", "kms"}, cfg...), "sse_kms_key_id"},
		{append([]string{"restore", "--datadir", "/x"}, cfg...), "--latest or --id"},
		{append([]string{"restore", "--latest", "--id", "x", "--datadir", "/x"}, cfg...), "--latest or --id"},
		{append([]string{"restore", "--latest"}, cfg...), "--datadir DIR"},
		{append([]string{"restore", "--id"}, cfg...), "needs a value"},
	} {
		var out bytes.Buffer
		err := run(t.Context(), tt.args, &out, &out)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("shoal %s: error %v, want a usage error containing %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}

func TestBackupTable(t *testing.T) {
	start := time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC)
	m := &backup.Manifest{ID: "20261130T150000Z-db1", Member: "db1", StartTime: start, GTIDExecuted: "0-1-42", CompressedBytes: 3 << 20}
	var out bytes.Buffer
	err := writeBackupTable(&out, []backup.Entry{
		{ID: m.ID, Manifest: m, Valid: true, StoredBytes: 3 << 20, Verification: &backup.Verification{OK: true, Time: start.Add(time.Hour)}},
		{ID: "20261130T160000Z-db2", Incomplete: true, Problem: "incomplete: no manifest", StoredBytes: 1500},
		{ID: "20261130T170000Z-db1", Manifest: m, Problem: "object data-000001.zst: missing", Verification: &backup.Verification{Time: start.Add(2 * time.Hour)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `ID                    MEMBER  STARTED               SIZE     GTID    VERIFIED                     STATUS
20261130T150000Z-db1  db1     2026-11-30T15:00:00Z  3.0 MiB  0-1-42  ok 2026-11-30T16:00:00Z      valid
20261130T160000Z-db2  -       -                     1.5 KiB  -       -                            incomplete
20261130T170000Z-db1  db1     2026-11-30T15:00:00Z  3.0 MiB  0-1-42  FAILED 2026-11-30T17:00:00Z  invalid: object data-000001.zst: missing
`
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 30: "5.0 GiB", 1536 << 20: "1.5 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
