package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// BinlogArchiver uploads the local server's closed binlog files, each with a manifest written
// after it. The primary's agent runs Pass on an interval; after a failover the new primary's
// agent goes on where the archive ends: a file whose transactions the archive already holds
// (by GTID, whatever member wrote it) is skipped, one that adds any is uploaded, and a restore
// skips the transactions two files share. One archiver per member, one Pass at a time.
type BinlogArchiver struct {
	Store   Store
	Cluster string
	Member  string
	// Local is the agent's connection to its own server.
	Local mysqlctl.Config
	// Dir is the binlog directory as the agent sees it; "" means the directory of the server's
	// log_bin_basename, seen through /proc/<pid>/root when PIDFile names the server's pid file
	// (so a server in a chroot or a container of the agent's pid namespace needs no Dir), else
	// as it is.
	Dir, PIDFile string
	// FlushEvery bounds the recovery point on a quiet server: when the file being written has
	// grown and no file was closed for this long, Pass runs FLUSH BINARY LOGS. 0: never.
	FlushEvery time.Duration
	Metrics    *BinlogMetrics
	Log        *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Epoch is the cluster record's epoch, stamped in each manifest (nil: 0).
	Epoch func() uint64

	index map[string]*BinlogManifest // by manifest key; a manifest never changes once written
	done  map[string]int64           // local file name -> size, archived or found not needed
	flush flushState
}

// BinlogMetrics are the archive's metrics, on the registry the agent passes in.
type BinlogMetrics struct {
	files         *prometheus.CounterVec
	bytes         prometheus.Counter
	failures      prometheus.Counter
	gaps          prometheus.Counter
	recoveryPoint prometheus.Gauge
}

// NewBinlogMetrics registers the binlog archive's metrics on reg.
func NewBinlogMetrics(reg prometheus.Registerer) *BinlogMetrics {
	m := &BinlogMetrics{
		files: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Subsystem: "backup_binlog", Name: "files_total",
			Help: "Closed binlog files looked at: archived, or skipped as already archived by GTID or empty."}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "shoal", Subsystem: "backup_binlog", Name: "bytes_total",
			Help: "Binlog bytes uploaded to the archive."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "shoal", Subsystem: "backup_binlog", Name: "failures_total",
			Help: "Archive passes that failed."}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "shoal", Subsystem: "backup_binlog", Name: "gaps_total",
			Help: "Files archived whose start the archive did not reach: transactions before them are missing."}),
		recoveryPoint: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "shoal", Subsystem: "backup_binlog", Name: "newest_archived_timestamp_seconds",
			Help: "Time of the newest archived transaction (the recovery point), in Unix seconds; 0 before the first."}),
	}
	reg.MustRegister(m.files, m.bytes, m.failures, m.gaps, m.recoveryPoint)
	return m
}

// binlogFile is one file as SHOW BINARY LOGS lists it.
type binlogFile struct {
	Name string
	Size int64
}

// flushState remembers the file being written when it was last flushed or first seen.
type flushState struct {
	file binlogFile
	at   time.Time
}

// shouldFlush decides whether to close the file being written now: it grew since it was last
// seen closed-and-reopened (so it holds transactions to archive) and that was at least every ago.
func shouldFlush(now time.Time, every time.Duration, last flushState, active binlogFile) (bool, string) {
	switch {
	case every <= 0:
		return false, "flushing is off"
	case last.at.IsZero() || last.file.Name != active.Name:
		return false, "a new file is being written"
	case active.Size == last.file.Size:
		return false, "the file being written holds nothing new"
	case now.Sub(last.at) < every:
		return false, "the file being written is younger than the flush interval"
	}
	return true, fmt.Sprintf("%s grew and was opened %s ago, past the flush interval", active.Name, now.Sub(last.at).Round(time.Second))
}

// Pass archives every closed binlog file not archived yet, then flushes the binlog if it is due.
func (a *BinlogArchiver) Pass(ctx context.Context) (err error) {
	defer func() {
		if err != nil && a.Metrics != nil {
			a.Metrics.failures.Inc()
		}
	}()
	srv, err := mysqlctl.Open(ctx, a.Local)
	if err != nil {
		return fmt.Errorf("binlog archive: open the local server: %w", err)
	}
	defer srv.Close()
	files, err := listBinlogs(ctx, srv.DB())
	if err != nil {
		return fmt.Errorf("binlog archive: %w", err)
	}
	dir, err := a.dir(ctx, srv.DB())
	if err != nil {
		return fmt.Errorf("binlog archive: %w", err)
	}
	if err := a.refresh(ctx); err != nil {
		return fmt.Errorf("binlog archive: %w", err)
	}
	if a.done == nil {
		a.done = map[string]int64{}
	}
	for _, f := range files[:len(files)-1] { // the last one is being written
		if size, ok := a.done[f.Name]; ok && size == f.Size || a.archivedHere(f) {
			continue
		}
		if err := a.archive(ctx, srv.Flavor(), dir, f); err != nil {
			return fmt.Errorf("binlog archive: %s: %w", f.Name, err)
		}
		a.done[f.Name] = f.Size
	}
	active := files[len(files)-1]
	if a.flush.file.Name != active.Name {
		a.flush = flushState{file: active, at: a.now()}
	}
	if ok, why := shouldFlush(a.now(), a.FlushEvery, a.flush, active); ok {
		if _, err := srv.DB().ExecContext(ctx, "FLUSH BINARY LOGS"); err != nil {
			return fmt.Errorf("binlog archive: flush binary logs: %w", err)
		}
		a.logger().Debug("binlog flushed", "reason", why)
		a.flush = flushState{}
	}
	return nil
}

// archivedHere reports whether this member archived a file of that name and size already (in an
// earlier run): it is not read again.
func (a *BinlogArchiver) archivedHere(f binlogFile) bool {
	for _, m := range a.index {
		if m.Member == a.Member && m.File == f.Name && m.Size == f.Size {
			return true
		}
	}
	return false
}

func (a *BinlogArchiver) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

func (a *BinlogArchiver) logger() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func listBinlogs(ctx context.Context, db *sql.DB) ([]binlogFile, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("show binary logs: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var files []binlogFile
	for rows.Next() {
		// Log_name, File_size, and MySQL's Encrypted.
		var f binlogFile
		dest := []any{&f.Name, &f.Size}
		for range cols[2:] {
			dest = append(dest, new(sql.RawBytes))
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("show binary logs: %w", err)
		}
		files = append(files, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("show binary logs: %w", err)
	}
	if len(files) == 0 {
		return nil, errors.New("show binary logs: no binlog files: the binlog must be on")
	}
	return files, nil
}

func (a *BinlogArchiver) dir(ctx context.Context, db *sql.DB) (string, error) {
	if a.Dir != "" {
		return a.Dir, nil
	}
	var base sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin_basename").Scan(&base); err != nil {
		return "", fmt.Errorf("read log_bin_basename: %w", err)
	}
	if !base.Valid || base.String == "" {
		return "", errors.New("log_bin_basename is empty: the binlog must be on")
	}
	return SeenPath(filepath.Dir(base.String), a.PIDFile)
}

// SeenPath is path, as the server whose pid file is pidFile sees it, as this process sees it:
// through /proc/<pid>/root, so a server in a chroot or a container of this pid namespace needs
// no configured path; as it is when pidFile is "".
func SeenPath(path, pidFile string) (string, error) {
	if pidFile == "" {
		return path, nil
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return "", fmt.Errorf("the server's pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "", fmt.Errorf("the server's pid file %s holds %q, not a pid", pidFile, b)
	}
	return filepath.Join("/proc", strconv.Itoa(pid), "root", path), nil
}

// refresh reads the manifests written since the last pass (by any member).
func (a *BinlogArchiver) refresh(ctx context.Context) error {
	if a.index == nil {
		a.index = map[string]*BinlogManifest{}
	}
	ms, err := readBinlogIndex(ctx, a.Store, a.Cluster, a.index)
	if err != nil {
		return err
	}
	var newest time.Time
	for _, m := range ms {
		a.index[m.manifestKey()] = m
		if m.LastTime.After(newest) {
			newest = m.LastTime
		}
	}
	if a.Metrics != nil && !newest.IsZero() {
		a.Metrics.recoveryPoint.Set(float64(newest.Unix()))
	}
	return nil
}

// readBinlogIndex lists the cluster's archived binlog files. Manifests in known are taken as
// they are rather than read again. A manifest that does not read is an error: the archive must
// not silently lose a file.
func readBinlogIndex(ctx context.Context, store Store, cluster string, known map[string]*BinlogManifest) ([]*BinlogManifest, error) {
	objs, err := store.List(ctx, layout{cluster}.binlogRoot())
	if err != nil {
		return nil, fmt.Errorf("list the binlog archive: %w", err)
	}
	var out []*BinlogManifest
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		if m, ok := known[o.Key]; ok {
			out = append(out, m)
			continue
		}
		m, err := readBinlogManifest(ctx, store, o.Key)
		if err != nil {
			return nil, err
		}
		if m.Cluster != cluster || m.manifestKey() != o.Key {
			return nil, fmt.Errorf("binlog manifest %s describes %s of cluster %s", o.Key, m.manifestKey(), m.Cluster)
		}
		out = append(out, m)
	}
	return out, nil
}

func readBinlogManifest(ctx context.Context, store Store, key string) (*BinlogManifest, error) {
	b, err := readSmall(ctx, store, key, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("read binlog manifest %s: %w", key, err)
	}
	m, err := ParseBinlogManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return m, nil
}

// archive uploads one closed file unless the archive already holds all its transactions.
func (a *BinlogArchiver) archive(ctx context.Context, flavor gtid.Flavor, dir string, f binlogFile) error {
	name := filepath.Join(dir, f.Name)
	scan, sum, err := scanFile(name, flavor)
	if err != nil {
		return err
	}
	log := a.logger().With("file", f.Name)
	archived := gtid.Set{}
	for _, m := range a.index {
		if m.Flavor != flavor {
			continue
		}
		if archived, err = archived.Union(m.after()); err != nil {
			return err
		}
	}
	switch {
	case scan.Txns == 0:
		a.count("empty")
		return nil
	case archivedAll(archived, scan.After):
		log.Debug("binlog file already archived (by GTID)", "gtid_after", scan.After)
		a.count("already_archived")
		return nil
	case len(a.index) > 0 && !covers(flavor, archived, scan.Before):
		// Still archived: later backups start after the gap and need the file.
		log.Warn("binlog archive gap: this file starts after transactions the archive lacks",
			"gtid_before", scan.Before, "archive_reaches", archived)
		if a.Metrics != nil {
			a.Metrics.gaps.Inc()
		}
	}
	m := &BinlogManifest{Format: binlogManifestFormat, Cluster: a.Cluster, Member: a.Member, Flavor: flavor,
		File: f.Name, Size: scan.Size, SHA256: sum, GTIDBefore: scan.Before.String(), GTIDAfter: scan.After.String(),
		FirstGTID: scan.First.GTID, LastGTID: scan.Last.GTID, FirstTime: scan.First.Time, LastTime: scan.Last.Time,
		Transactions: scan.Txns, ArchivedAt: a.now().UTC()}
	if a.Epoch != nil {
		m.Epoch = a.Epoch()
	}
	body, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := a.upload(ctx, name, m); err != nil {
		return err
	}
	if _, err := a.Store.Put(ctx, m.manifestKey(), bytes.NewReader(body)); err != nil {
		return fmt.Errorf("write the manifest: %w", err)
	}
	a.index[m.manifestKey()] = m
	a.count("archived")
	if a.Metrics != nil {
		a.Metrics.bytes.Add(float64(m.Size))
		a.Metrics.recoveryPoint.Set(float64(max(m.LastTime.Unix(), int64(0))))
	}
	log.Info("binlog file archived", "bytes", m.Size, "transactions", m.Transactions, "first", m.FirstGTID, "last", m.LastGTID)
	return nil
}

func (a *BinlogArchiver) count(result string) {
	if a.Metrics != nil {
		a.Metrics.files.WithLabelValues(result).Inc()
	}
}

// archivedAll reports whether the archive's end states hold every transaction of a file ending
// at after. The sets are compared as they are, MariaDB's per domain and server: a new primary's
// transactions that reuse seqnos a lost branch of the old one archived are not taken for them.
func archivedAll(archived, after gtid.Set) bool {
	ok, err := archived.Contains(after)
	return err == nil && ok
}

// upload puts the file's bytes, checking they are still those scanned.
func (a *BinlogArchiver) upload(ctx context.Context, name string, m *BinlogManifest) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := a.Store.Put(ctx, m.ObjectKey(), io.TeeReader(f, h))
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != m.Size || got != m.SHA256 {
		_ = a.Store.Remove(ctx, m.ObjectKey())
		return fmt.Errorf("upload: the file changed while it was archived (%d bytes, sha256 %s; scanned %d, %s)", n, got, m.Size, m.SHA256)
	}
	return nil
}

// scanFile reads a local binlog file once, for its transactions and its sha256.
func scanFile(name string, flavor gtid.Flavor) (*BinlogScan, string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	h := sha256.New()
	scan, err := ScanBinlog(io.TeeReader(f, h), flavor, nil)
	if err != nil {
		return nil, "", err
	}
	return scan, hex.EncodeToString(h.Sum(nil)), nil
}
