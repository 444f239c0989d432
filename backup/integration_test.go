package backup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/backup/miniotest"
	"github.com/shoal-db/shoal/backup/s3store"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// Small parts and objects, so even a test's few MiB span several objects, some of them
// multipart uploads.
const (
	testPartSize   = 5 << 20 // S3's least part size
	testObjectSize = 8 << 20
)

// rig is one real server, a real MinIO, and the backup pieces wired to them.
type rig struct {
	srv     *harness.Server
	local   mysqlctl.Config
	minio   *miniotest.Server
	bucket  string
	store   *s3store.Store
	taker   *backup.Taker
	catalog backup.Catalog
	restore *backup.Restorer
	reg     *prometheus.Registry
}

func newRig(t testing.TB, flavor gtid.Flavor) *rig {
	t.Helper()
	srv := harness.StartN(t, flavor, 1, nil)[0]
	m := miniotest.Start(t)
	r := &rig{srv: srv, minio: m, bucket: m.Bucket(t, "backups"), reg: prometheus.NewRegistry(),
		local: mysqlctl.Config{Addr: srv.Addr(), User: harness.RootUser, Password: harness.RootPassword}}
	r.store = newStore(t, s3store.Config{Endpoint: m.Endpoint, Bucket: r.bucket, Prefix: "shoal", Insecure: true,
		AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey, PartSize: testPartSize})
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	metrics := backup.NewMetrics(r.reg)
	r.catalog = backup.Catalog{Store: r.store, Cluster: "c1"}
	r.taker = &backup.Taker{Store: r.store, Cluster: "c1", Member: "db1", Local: r.local, TmpDir: t.TempDir(),
		ObjectSize: testObjectSize, ProgressInterval: time.Second, Metrics: metrics, Log: log}
	if flavor == gtid.MySQL {
		// The server runs in a chroot: it writes the clone under its own view of its directory,
		// the agent reads it from the host's.
		r.taker.CloneDir = strings.TrimPrefix(srv.Dir(), chrootOf(t, srv))
		r.taker.CloneDirLocal = srv.Dir()
	}
	r.restore = &backup.Restorer{Catalog: r.catalog, ProgressInterval: time.Second, Metrics: metrics, Log: log}
	return r
}

func newStore(t testing.TB, cfg s3store.Config) *s3store.Store {
	t.Helper()
	s, err := s3store.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// metric is the value of the metric name whose one label (if any) has the value label.
func metric(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() != label {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

// chrootOf is the root the harness runs the MySQL server in.
func chrootOf(t testing.TB, srv *harness.Server) string {
	t.Helper()
	cache := os.Getenv("SHOAL_CACHE")
	if cache == "" {
		cache = "/var/cache/shoal-test"
	}
	root := filepath.Join(cache, "mysql-9.7-root")
	if !strings.HasPrefix(srv.Dir(), root+"/") {
		t.Fatalf("MySQL server dir %s is not under %s", srv.Dir(), root)
	}
	return root
}

func (r *rig) db(t testing.TB, ctx context.Context) *mysqlctl.Server {
	t.Helper()
	s, err := mysqlctl.Open(ctx, r.local)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fill writes rows of incompressible data, so the backup spans several objects.
func fill(t testing.TB, ctx context.Context, s *mysqlctl.Server, rows int) {
	fillWith(t, ctx, s, rows, "RANDOM_BYTES(1024)")
}

// fillWith writes rows whose value is the SQL expression value.
func fillWith(t testing.TB, ctx context.Context, s *mysqlctl.Server, rows int, value string) {
	t.Helper()
	exec := func(q string) {
		if _, err := s.DB().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE TABLE app.r (id INT PRIMARY KEY, v VARBINARY(2048))")
	for i := 0; i < rows; i += 500 {
		var b strings.Builder
		b.WriteString("INSERT INTO app.r VALUES ")
		for j := i; j < min(i+500, rows); j++ {
			if j > i {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "(%d, %s)", j, value)
		}
		exec(b.String())
	}
}

// writeEvery runs query on s every interval until the returned function is called, which
// returns the first error.
func writeEvery(ctx context.Context, s *mysqlctl.Server, interval time.Duration, query string) (stop func() error) {
	quit, stopped := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-quit:
				stopped <- nil
				return
			case <-time.After(interval):
			}
			if _, err := s.DB().ExecContext(ctx, query); err != nil {
				stopped <- err
				return
			}
		}
	}()
	return func() error { close(quit); return <-stopped }
}

// digest fingerprints app.r: equal on servers with equal rows.
func digest(t *testing.T, ctx context.Context, s *mysqlctl.Server) string {
	t.Helper()
	var n int
	var sum string
	if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(id, ':', HEX(v)))), 0) FROM app.r").Scan(&n, &sum); err != nil {
		t.Fatalf("digest: %v", err)
	}
	return fmt.Sprintf("%d rows, crc %s", n, sum)
}

func executed(t *testing.T, ctx context.Context, s *mysqlctl.Server) gtid.Set {
	t.Helper()
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st.Executed
}

// A backup of a server with data, restored into an empty data dir, starts a server holding the
// same rows at the manifest's GTID position; the catalog lists it valid and Verify passes. Then
// a corrupted object and a missing object are each found by Verify and stop a restore, which
// leaves the data dir as it was.
func TestBackupRestoreRoundTrip(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		r := newRig(t, flavor)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		s := r.db(t, ctx)
		fill(t, ctx, s, 20000)
		want := digest(t, ctx, s)
		// Transactions commit all through the backup: the copy must stand exactly where its
		// manifest says (MySQL: within the bounds it gives).
		if _, err := s.DB().ExecContext(ctx, "CREATE TABLE app.w (id INT AUTO_INCREMENT PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		base := executed(t, ctx, s)
		stopWriting := writeEvery(ctx, s, 5*time.Millisecond, "INSERT INTO app.w VALUES ()")
		m, err := r.taker.Take(ctx)
		if werr := stopWriting(); err != nil || werr != nil {
			t.Fatal(errors.Join(err, werr))
		}
		t.Logf("%s: backup %s: %d raw bytes, %d compressed in %d objects, GTID %s (at most %s)", flavor, m.ID, m.RawBytes,
			m.CompressedBytes, len(m.Objects), m.GTIDExecuted, m.GTIDExecutedMax)
		if len(m.Objects) < 2 {
			t.Errorf("backup of %d compressed bytes in %d object(s); want several of at most %d", m.CompressedBytes, len(m.Objects), testObjectSize)
		}
		if m.Flavor != flavor || m.Member != "db1" || m.Cluster != "c1" || m.ServerVersion == "" || m.BinlogFile == "" {
			t.Errorf("manifest: %+v", m)
		}
		if got := metric(t, r.reg, "shoal_backup_bytes_total", "upload"); got != float64(m.CompressedBytes) {
			t.Errorf("shoal_backup_bytes_total{direction=upload} = %v, want %d", got, m.CompressedBytes)
		}
		if got := metric(t, r.reg, "shoal_backup_last_success_timestamp_seconds", ""); got < float64(m.StartTime.Unix()) {
			t.Errorf("shoal_backup_last_success_timestamp_seconds = %v, before the backup started", got)
		}
		entries, err := r.catalog.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || !entries[0].Valid || entries[0].ID != m.ID {
			t.Fatalf("catalog: %+v", entries)
		}
		if _, err := r.catalog.Verify(ctx, m.ID); err != nil {
			t.Fatal(err)
		}

		// Restore into the server's own data dir, emptied, and start it there.
		stopCtx, stopCancel := context.WithTimeout(ctx, time.Minute)
		defer stopCancel()
		if err := r.srv.Stop(stopCtx); err != nil {
			t.Fatal(err)
		}
		dataDir := filepath.Join(r.srv.Dir(), "data")
		if err := os.RemoveAll(dataDir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dataDir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := r.restore.Restore(ctx, m.ID, dataDir); err == nil || !strings.Contains(err.Error(), "not empty") && !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("restore over a file: got %v", err)
		}
		// An empty data dir made ready beforehand is fine: the restore replaces it.
		if err := os.Remove(dataDir); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(dataDir, 0o750); err != nil {
			t.Fatal(err)
		}
		if _, err := r.restore.Restore(ctx, m.ID, dataDir); err != nil {
			t.Fatal(err)
		}
		if err := r.srv.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		s2, err := mysqlctl.Open(ctx, r.local)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		if got := digest(t, ctx, s2); got != want {
			t.Errorf("restored server has %s, the original had %s", got, want)
		}
		var during int
		if err := s2.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM app.w").Scan(&during); err != nil {
			t.Fatal(err)
		}
		checkPosition(t, ctx, flavor, m, base, during, s2)
		if _, err := r.restore.Restore(ctx, m.ID, dataDir); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Errorf("restore into a live data dir: got %v, want a refusal", err)
		}

		damage(t, ctx, r, m)
	})
}

// checkPosition checks the restored copy stands where the manifest says: base was the server's
// set before the writes of app.w began, and the copy holds during of them, one transaction each.
func checkPosition(t *testing.T, ctx context.Context, flavor gtid.Flavor, m *backup.Manifest, base gtid.Set, during int, restored *mysqlctl.Server) {
	t.Helper()
	switch flavor {
	case gtid.MariaDB:
		// The copy starts with an empty binlog, so its position is only in the manifest: one
		// server, one domain, so the sequence numbers count the transactions.
		var seq int
		if _, err := fmt.Sscanf(base.String(), "0-1-%d", &seq); err != nil {
			t.Fatalf("base %s: %v", base, err)
		}
		if want := fmt.Sprintf("0-1-%d", seq+during); m.GTIDExecuted != want {
			t.Errorf("manifest position %s, but the copy holds %d transactions after %s: want %s", m.GTIDExecuted, during, base, want)
		}
	case gtid.MySQL:
		got := executed(t, ctx, restored)
		low := gtid.MustParse(flavor, m.GTIDExecuted)
		high := low
		if m.GTIDExecutedMax != "" {
			high = gtid.MustParse(flavor, m.GTIDExecutedMax)
		}
		lowOK, _ := got.Contains(low)
		highOK, _ := high.Contains(got)
		if !lowOK || !highOK {
			t.Errorf("restored server at %s, the manifest says between %s and %s", got, low, high)
		}
	}
}

// damage corrupts one object, then removes another, checking each is found.
func damage(t *testing.T, ctx context.Context, r *rig, m *backup.Manifest) {
	client := r.minio.Client(t)
	key := func(name string) string { return "shoal/c1/backups/" + m.ID + "/" + name }
	target := filepath.Join(t.TempDir(), "data")

	// Same size, one byte flipped: only the checksum can tell.
	obj, err := client.GetObject(ctx, r.bucket, key(m.Objects[1].Name), minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if _, err := client.PutObject(ctx, r.bucket, key(m.Objects[1].Name), bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.catalog.Verify(ctx, m.ID); !errors.Is(err, backup.ErrCorrupt) || !strings.Contains(err.Error(), m.Objects[1].Name) {
		t.Errorf("verify of a corrupted object: got %v, want ErrCorrupt naming %s", err, m.Objects[1].Name)
	} else {
		t.Logf("verify: %v", err)
	}
	if _, err := r.restore.Restore(ctx, m.ID, target); !errors.Is(err, backup.ErrCorrupt) || !strings.Contains(err.Error(), m.Objects[1].Name) {
		t.Errorf("restore of a corrupted backup: got %v, want ErrCorrupt naming %s", err, m.Objects[1].Name)
	} else {
		t.Logf("restore: %v", err)
	}
	assertNoRestore(t, target)

	if err := client.RemoveObject(ctx, r.bucket, key(m.Objects[0].Name), minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	entries, err := r.catalog.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Valid || !strings.Contains(entries[0].Problem, m.Objects[0].Name+": missing") {
		t.Errorf("catalog with a missing object: %+v", entries)
	}
	if _, err := r.catalog.Verify(ctx, m.ID); !errors.Is(err, backup.ErrMissing) {
		t.Errorf("verify with a missing object: got %v, want ErrMissing", err)
	}
	if _, err := r.restore.Restore(ctx, m.ID, target); !errors.Is(err, backup.ErrMissing) {
		t.Errorf("restore with a missing object: got %v, want ErrMissing", err)
	} else {
		t.Logf("restore: %v", err)
	}
	assertNoRestore(t, target)
	if _, err := r.catalog.Latest(ctx); !errors.Is(err, backup.ErrNoBackup) {
		t.Errorf("latest with only a damaged backup: got %v", err)
	}

	if err := r.catalog.Delete(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	assertBucketEmpty(t, ctx, r.minio, r.bucket)
}

// assertNoRestore checks a failed restore left neither the target nor a staging dir beside it.
func assertNoRestore(t *testing.T, target string) {
	t.Helper()
	left, err := os.ReadDir(filepath.Dir(target))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("a failed restore left %s in %s", e.Name(), filepath.Dir(target))
	}
}

func assertBucketEmpty(t *testing.T, ctx context.Context, m *miniotest.Server, bucket string) {
	t.Helper()
	client := m.Client(t)
	for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		t.Errorf("left in the bucket: %s (%v)", o.Key, o.Err)
	}
	for u := range client.ListIncompleteUploads(ctx, bucket, "", true) {
		t.Errorf("unfinished upload left in the bucket: %s (%v)", u.Key, u.Err)
	}
}

// Wrong credentials, a missing bucket and an unreachable endpoint each fail a backup and a
// restore up front with an error saying so, and leave nothing behind.
func TestStoreErrors(t *testing.T) {
	m := miniotest.Start(t)
	bucket := m.Bucket(t, "backups")
	closed := "127.0.0.1:1" // nothing listens on port 1 of loopback here
	for _, tc := range []struct {
		name string
		cfg  s3store.Config
		want string
	}{
		{"wrong credentials", s3store.Config{Endpoint: m.Endpoint, Bucket: bucket, AccessKeyID: miniotest.AccessKey, SecretAccessKey: "wrong"}, "refused the credentials"},
		{"missing bucket", s3store.Config{Endpoint: m.Endpoint, Bucket: "nope", AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey}, `bucket "nope" does not exist`},
		{"unreachable endpoint", s3store.Config{Endpoint: closed, Bucket: bucket, AccessKeyID: "a", SecretAccessKey: "b", MaxRetries: 1}, "cannot reach " + closed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			tc.cfg.Insecure = true
			store := newStore(t, tc.cfg)
			// No server: the store is checked before anything else is touched.
			taker := &backup.Taker{Store: store, Cluster: "c1", Member: "db1", Local: mysqlctl.Config{Addr: closed}}
			if _, err := taker.Take(ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("backup: got %v, want an error containing %q", err, tc.want)
			}
			cat := backup.Catalog{Store: store, Cluster: "c1"}
			if _, err := cat.List(ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("list: got %v, want an error containing %q", err, tc.want)
			}
			target := filepath.Join(t.TempDir(), "data")
			if _, err := (&backup.Restorer{Catalog: cat}).Restore(ctx, "20261130T150000Z-db1", target); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("restore: got %v, want an error containing %q", err, tc.want)
			}
			assertNoRestore(t, target)
			assertBucketEmpty(t, ctx, m, bucket)
		})
	}
}

// Over TLS the store trusts a private CA given as a file, and without it says the certificate is
// not trusted.
func TestStoreTLSWithCustomCA(t *testing.T) {
	m, caFile := miniotest.StartTLS(t)
	m.Bucket(t, "backups")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cfg := s3store.Config{Endpoint: m.Endpoint, Bucket: "backups", Lookup: s3store.LookupPath,
		AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey, MaxRetries: 1}
	untrusted := newStore(t, cfg)
	if err := untrusted.Check(ctx); err == nil || !strings.Contains(err.Error(), "certificate is not trusted") {
		t.Errorf("without the CA: got %v, want a certificate error", err)
	} else {
		t.Logf("without the CA: %v", err)
	}
	cfg.CAFile = caFile
	if err := newStore(t, cfg).Check(ctx); err != nil {
		t.Errorf("with the CA: %v", err)
	}
	cfg.Insecure = true
	if _, err := s3store.New(cfg); err == nil {
		t.Error("a CA file with plain HTTP was accepted")
	}
}

// Objects are stored encrypted with SSE-S3 and SSE-KMS, and read back; credentials come from
// the environment as well as from files.
func TestStoreEncryptionAndEnvCredentials(t *testing.T) {
	m := miniotest.Start(t)
	bucket := m.Bucket(t, "backups")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	t.Setenv("AWS_ACCESS_KEY_ID", miniotest.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", miniotest.SecretKey)
	for _, tc := range []struct{ sse, keyID, header string }{
		{s3store.SSES3, "", "AES256"},
		{s3store.SSEKMS, miniotest.KMSKeyID, "aws:kms"},
	} {
		store := newStore(t, s3store.Config{Endpoint: m.Endpoint, Bucket: bucket, Insecure: true, Credentials: s3store.CredsEnv,
			SSE: tc.sse, KMSKeyID: tc.keyID})
		key := "sse-" + tc.sse
		want := bytes.Repeat([]byte("shoal"), 1000)
		if _, err := store.Put(ctx, key, bytes.NewReader(want)); err != nil {
			t.Fatalf("%s: %v", tc.sse, err)
		}
		info, err := m.Client(t).StatObject(ctx, bucket, key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Metadata.Get("X-Amz-Server-Side-Encryption"); got != tc.header {
			t.Errorf("%s: stored with server-side encryption %q, want %q", tc.sse, got, tc.header)
		}
		rc, err := store.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read back %d bytes (err %v), wrote %d", tc.sse, len(got), err, len(want))
		}
	}
}

// helperEnv makes the test binary, run again, take one backup as a separate process (see
// TestMain), so a test can SIGKILL it mid-upload.
const helperEnv = "SHOAL_BACKUP_TEST_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helperTake(spec))
	}
	os.Exit(m.Run())
}

// helperTake takes a backup for the spec "endpoint bucket mysql-addr tmpdir" and returns the exit
// code.
func helperTake(spec string) int {
	f := strings.Fields(spec)
	store, err := s3store.New(s3store.Config{Endpoint: f[0], Bucket: f[1], Prefix: "shoal", Insecure: true,
		AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey, PartSize: testPartSize})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	t := &backup.Taker{Store: store, Cluster: "c1", Member: "db1", TmpDir: f[3], ObjectSize: testObjectSize,
		Local:          mysqlctl.Config{Addr: f[2], User: harness.RootUser, Password: harness.RootPassword},
		BytesPerSecond: 4 << 20, // slow, so the kill lands mid-upload
		Log:            slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if _, err := t.Take(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// A backup whose process is SIGKILLed mid-upload is listed as incomplete, never valid, and
// Delete removes all of it, unfinished multipart uploads included. The upload path is the same
// for both flavors, so MariaDB (whose stream is slowed down) stands for both.
func TestKilledUploadNeverValid(t *testing.T) {
	r := newRig(t, gtid.MariaDB)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	fill(t, ctx, r.db(t, ctx), 20000)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join([]string{r.minio.Endpoint, r.bucket, r.local.Addr, t.TempDir()}, " "))
	cmd.Stderr = t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once one object is complete and the next is under way.
	var entries []backup.Entry
	for {
		var err error
		if entries, err = r.catalog.List(ctx); err != nil {
			t.Fatal(err)
		}
		if len(entries) == 1 && entries[0].StoredBytes > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no object uploaded in time")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("the backup finished before it was killed: slow it down")
	}
	entries, err := r.catalog.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Valid || !entries[0].Incomplete || entries[0].Started.IsZero() {
		t.Fatalf("after a killed upload: %+v", entries)
	}
	if _, err := r.catalog.Latest(ctx); !errors.Is(err, backup.ErrNoBackup) {
		t.Errorf("latest after a killed upload: got %v, want ErrNoBackup", err)
	}
	var pending int
	for range r.minio.Client(t).ListIncompleteUploads(ctx, r.bucket, "", true) {
		pending++
	}
	t.Logf("killed upload left %d bytes in objects and %d unfinished multipart upload(s)", entries[0].StoredBytes, pending)
	if err := r.catalog.Delete(ctx, entries[0].ID); err != nil {
		t.Fatal(err)
	}
	assertBucketEmpty(t, ctx, r.minio, r.bucket)
}
