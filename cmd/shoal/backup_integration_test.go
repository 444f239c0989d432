package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shoal-db/shoal/backup/miniotest"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// The commands wired end to end against a real MariaDB and MinIO: backup now, list, verify,
// restore --latest, delete. Both flavors' backups are tested in package backup; this checks
// that the configuration reaches them.
func TestBackupCommands(t *testing.T) {
	srv := harness.StartN(t, gtid.MariaDB, 1, nil)[0]
	m := miniotest.Start(t)
	m.Bucket(t, "backups")
	secret := func(name, value string) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := []string{"--cluster", "c1", "--node.id", "db1", "--mysql.addr", srv.Addr(),
		"--mysql.password_file", secret("mysql", harness.RootPassword),
		"--backup.s3.endpoint", m.Endpoint, "--backup.s3.bucket", "backups", "--backup.s3.tls=false",
		"--backup.s3.access_key_id_file", secret("id", miniotest.AccessKey),
		"--backup.s3.secret_access_key_file", secret("key", miniotest.SecretKey),
		"--backup.tmp_dir", t.TempDir(), "--backup.verify_command", "/usr/sbin/mariadbd", "--backup.verify_dir", t.TempDir()}
	shoal := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(t.Context(), append(args, cfg...), &out, &out); err != nil {
			t.Fatalf("shoal %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	out := shoal("backup", "now")
	id := regexp.MustCompile(`^backup (\S+):`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("backup now said %q", out)
	}
	if list := shoal("backup", "list"); !regexp.MustCompile(id[1] + `\s+db1\s.*\svalid\n`).MatchString(list) {
		t.Errorf("backup list:\n%s", list)
	}
	if out := shoal("backup", "verify", id[1], "--checksums-only"); !strings.Contains(out, "every sha256 matches") {
		t.Errorf("backup verify --checksums-only: %s", out)
	}
	if list := shoal("backup", "list"); !regexp.MustCompile(id[1] + `\s+db1\s.*\s-\s+valid\n`).MatchString(list) {
		t.Errorf("backup list before a restore test:\n%s", list)
	}
	if out := shoal("backup", "verify", id[1]); !strings.Contains(out, "at the manifest's position") {
		t.Errorf("backup verify: %s", out)
	}
	if list := shoal("backup", "list"); !regexp.MustCompile(id[1] + `\s+db1\s.*\sok \S+\s+valid\n`).MatchString(list) {
		t.Errorf("backup list after a restore test:\n%s", list)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	if out := shoal("restore", "--latest", "--datadir", dataDir); !strings.Contains(out, "restored backup "+id[1]) {
		t.Errorf("restore: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "ibdata1")); err != nil {
		t.Errorf("restored data dir: %v", err)
	}
	shoal("backup", "delete", id[1])
	if list := shoal("backup", "list"); strings.Contains(list, id[1]) {
		t.Errorf("deleted backup still listed:\n%s", list)
	}
}
