package main

import (
	"bytes"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent/config"
	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/backup/miniotest"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// backupRig starts a MariaDB server and a MinIO with a bucket "backups", and returns the
// agent configuration flags that reach them.
func backupRig(t *testing.T) (*harness.Server, *miniotest.Server, []string) {
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
	return srv, m, []string{"--cluster", "c1", "--node.id", "db1", "--mysql.addr", srv.Addr(),
		"--mysql.password_file", secret("mysql", harness.RootPassword),
		"--backup.s3.endpoint", m.Endpoint, "--backup.s3.bucket", "backups", "--backup.s3.tls=false",
		"--backup.s3.access_key_id_file", secret("id", miniotest.AccessKey),
		"--backup.s3.secret_access_key_file", secret("key", miniotest.SecretKey),
		"--backup.tmp_dir", t.TempDir(), "--backup.verify_command", "/usr/sbin/mariadbd", "--backup.verify_dir", t.TempDir()}
}

// The commands wired end to end against a real MariaDB and MinIO: backup now, list, verify,
// restore --latest, delete. Both flavors' backups are tested in package backup; this checks
// that the configuration reaches them.
func TestBackupCommands(t *testing.T) {
	_, _, cfg := backupRig(t)
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

// shoal restore --to-time and --to-latest against a real MariaDB and MinIO, with the archive the
// agent's configuration sets up: the restored data dir holds exactly the rows up to the target,
// and a missing archived file stops the restore with nothing left behind.
func TestPointInTimeRestoreCommand(t *testing.T) {
	srv, m, cfgArgs := backupRig(t)
	cfgArgs = append(cfgArgs, "--backup.binlogs.enabled", "true", "--backup.binlogs.dir", filepath.Join(srv.Dir(), "data"))
	shoal := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(t.Context(), append(args, cfgArgs...), &out, &out)
		return out.String(), err
	}
	ctx := t.Context()
	db := srv.RootDB(t)
	exec := func(qs ...string) {
		t.Helper()
		for _, q := range qs {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	exec("CREATE TABLE app.p (id INT PRIMARY KEY)", "INSERT INTO app.p VALUES (1)")
	if out, err := shoal("backup", "now"); err != nil {
		t.Fatalf("backup now: %v\n%s", err, out)
	}
	exec("INSERT INTO app.p VALUES (2)")
	time.Sleep(1100 * time.Millisecond) // binlogs stamp whole seconds
	mid := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	exec("INSERT INTO app.p VALUES (3)", "FLUSH BINARY LOGS")
	cfg, err := config.Load("", nil, cfgArgs)
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := cfg.Secrets()
	if err != nil {
		t.Fatal(err)
	}
	archive, err := binlogArchive(cfg, secrets, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), func() uint64 { return 7 })
	if err != nil {
		t.Fatal(err)
	}
	if err := archive.Archiver.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := shoal("backup", "binlogs"); err != nil || !strings.Contains(out, "binlog.000001") ||
		!regexp.MustCompile(`and 1 of 1 archived files replay without a gap to \S+Z\n$`).MatchString(out) {
		t.Errorf("backup binlogs: %v\n%s", err, out)
	}

	server := "/usr/sbin/mariadbd --no-defaults --user=root --log-bin=binlog --server-id=9 --gtid-strict-mode=ON"
	rowsIn := func(dataDir string) string {
		t.Helper()
		sock := filepath.Join(t.TempDir(), "s.sock")
		var ids []string
		err := withServer(ctx, strings.Fields(server), dataDir, sock, mysqlctl.Config{Addr: sock, User: harness.RootUser, Password: harness.RootPassword},
			slog.New(slog.DiscardHandler), func() error {
				rows, err := sql.Open("mysql", harness.RootUser+":"+harness.RootPassword+"@unix("+sock+")/app")
				if err != nil {
					return err
				}
				defer rows.Close()
				r, err := rows.QueryContext(ctx, "SELECT GROUP_CONCAT(id ORDER BY id) FROM p")
				if err != nil {
					return err
				}
				defer r.Close()
				for r.Next() {
					var s string
					if err := r.Scan(&s); err != nil {
						return err
					}
					ids = append(ids, s)
				}
				return r.Err()
			})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(ids, ";")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	out, err := shoal("restore", "--to-time", mid.Format(time.RFC3339), "--datadir", dataDir, "--server-command", server)
	if err != nil || !strings.Contains(out, "1 archived transactions") {
		t.Fatalf("restore --to-time: %v\n%s", err, out)
	}
	if got := rowsIn(dataDir); got != "1,2" {
		t.Errorf("restored to %s: rows %s, want 1,2", mid, got)
	}

	// Without its archived file the latest point cannot be reached: nothing is left behind.
	client := m.Client(t)
	for o := range client.ListObjects(ctx, "backups", minio.ListObjectsOptions{Prefix: "c1/binlogs/", Recursive: true}) {
		if !strings.HasSuffix(o.Key, ".json") {
			if err := client.RemoveObject(ctx, "backups", o.Key, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out, err := shoal("backup", "binlogs"); !errors.Is(err, backup.ErrMissing) {
		t.Errorf("backup binlogs with an object missing: %v\n%s", err, out)
	}
	dataDir2 := filepath.Join(t.TempDir(), "data")
	if out, err := shoal("restore", "--to-latest", "--datadir", dataDir2, "--server-command", server); !errors.Is(err, backup.ErrMissing) {
		t.Errorf("restore --to-latest without the archived file: %v\n%s", err, out)
	}
	for _, p := range []string{dataDir2, dataDir2 + ".pitr", dataDir2 + ".binlogs"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
}
