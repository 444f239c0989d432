package backup

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/reseed"
)

// verificationName is the object beside a backup's manifest that records its last restore test.
// It is written after the test, so it never claims more than was checked.
const verificationName = "verification.json"

const verificationFormat = 1

// Verification is the outcome of a backup's last restore test (Verifier.Verify).
type Verification struct {
	Format int `json:"format"`
	// Time is when the test ended; Member is who ran it.
	Time   time.Time `json:"time"`
	Member string    `json:"member,omitempty"`
	OK     bool      `json:"ok"`
	// Reason says what was checked when OK, what failed when not.
	Reason   string  `json:"reason"`
	Duration float64 `json:"duration_seconds"`
	// GTID is the position the throwaway server stood at (MySQL) or the copy recorded (MariaDB).
	GTID string `json:"gtid,omitempty"`
}

// ParseVerification reads a verification record strictly, like a manifest.
func ParseVerification(b []byte) (*Verification, error) {
	var v Verification
	if err := decodeStrict(b, &v); err != nil {
		return nil, fmt.Errorf("verification record: %w", err)
	}
	switch {
	case v.Format != verificationFormat:
		return nil, fmt.Errorf("verification record: format %d: this shoal reads format %d", v.Format, verificationFormat)
	case v.Time.IsZero():
		return nil, errors.New("verification record: no time")
	case v.Duration < 0:
		return nil, fmt.Errorf("verification record: negative duration %v", v.Duration)
	case v.Reason == "":
		return nil, errors.New("verification record: no reason")
	}
	return &v, nil
}

// verification reads the record of a backup's last restore test; nil when there is none.
func (c Catalog) verification(ctx context.Context, id string) (*Verification, error) {
	b, err := readSmall(ctx, c.Store, layout{c.Cluster}.key(id, verificationName), 64<<10)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backup %s: read the verification record: %w", id, err)
	}
	return ParseVerification(b)
}

// record stores v beside backup id, replacing an earlier one.
func (c Catalog) record(ctx context.Context, id string, v *Verification) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if _, err := c.Store.Put(ctx, layout{c.Cluster}.key(id, verificationName), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("backup %s: record the verification: %w", id, err)
	}
	return nil
}

// ForRestore picks the backup a restore without an id uses: the newest valid backup whose last
// restore test passed when any passed, else the newest valid one not known to fail its test.
func (c Catalog) ForRestore(ctx context.Context) (*Manifest, error) {
	entries, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	if e := pickForRestore(entries); e != nil {
		return e.Manifest, nil
	}
	return nil, fmt.Errorf("cluster %s: %w", c.Cluster, ErrNoBackup)
}

func pickForRestore(entries []Entry) *Entry {
	var untested *Entry
	for _, e := range slices.Backward(entries) {
		switch {
		case !e.Valid:
		case e.Verification == nil:
			if untested == nil {
				untested = &e
			}
		case e.Verification.OK:
			return &e
		}
	}
	return untested
}

// Verifier proves backups restore: it restores one into a scratch directory, starts a
// throwaway server on it, checks the server stands at the manifest's GTID position, stops it,
// removes the directory and records the outcome beside the backup.
type Verifier struct {
	Restorer *Restorer
	// Server starts the throwaway server.
	Server ScratchServer
	// Dir holds the scratch directories, as the agent sees it; it needs room for one restored
	// copy. ServerDir is the same directory as the server sees it when it runs in another mount
	// namespace (a chroot, a container); "" means Dir.
	Dir, ServerDir string
	// Member names who verified, in the record.
	Member string
	Log    *slog.Logger
}

// Verify tests backup id and records the outcome beside it, failed ones included; the error
// says why it failed. Only what speaks of the backup is recorded: nothing for a backup whose
// manifest cannot be read, when ctx ended the test, or when the test could not run (no scratch
// space, the store out of reach, a server program that does not start), so that a broken
// verifier never marks good backups failed, which restores would then pass over.
func (v *Verifier) Verify(ctx context.Context, id string) (*Verification, error) {
	begin := time.Now()
	gtids, checked, err := v.test(ctx, id)
	end := time.Now()
	v.Restorer.Metrics.done("verify", begin, end, err)
	res := &Verification{Format: verificationFormat, Time: end.UTC(), Member: v.Member, OK: err == nil,
		Duration: end.Sub(begin).Seconds(), GTID: gtids, Reason: checked}
	if err != nil {
		res.Reason = oneLine(err)
	}
	if ctx.Err() != nil || errors.Is(err, errNoManifest) || errors.Is(err, errNotRun) {
		return res, err
	}
	// The outcome is worth keeping even when the test ran out of time on its own.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if rerr := v.Restorer.Catalog.record(rctx, id, res); rerr != nil {
		return res, errors.Join(err, rerr)
	}
	return res, err
}

var (
	errNoManifest = errors.New("no readable manifest")
	// errNotRun marks a test that failed for a reason of its own, not the backup's.
	errNotRun = errors.New("the restore test could not run")
)

// test restores, starts and checks; it returns the position found and what was checked.
func (v *Verifier) test(ctx context.Context, id string) (gtids, checked string, err error) {
	if _, err := v.Restorer.Catalog.Manifest(ctx, id); err != nil {
		return "", "", fmt.Errorf("%w: %w", errNoManifest, err)
	}
	scratch, err := os.MkdirTemp(v.Dir, ".verify-")
	if err != nil {
		return "", "", fmt.Errorf("verify %s: %w: scratch dir: %w", id, errNotRun, err)
	}
	defer func() {
		if rerr := os.RemoveAll(scratch); rerr != nil {
			err = errors.Join(err, fmt.Errorf("verify %s: remove the scratch dir: %w", id, rerr))
		}
	}()
	// The restore checks every object's sha256 as it streams, before the server reads a byte:
	// a corrupt or missing object fails here, named.
	data := filepath.Join(scratch, "data")
	m, err := v.Restorer.Restore(ctx, id, data)
	if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMissing) {
		err = fmt.Errorf("%w: %w", errNotRun, err)
	}
	if err != nil {
		return "", "", fmt.Errorf("verify %s: %w", id, err)
	}
	serverScratch := filepath.Join(cmp.Or(v.ServerDir, v.Dir), filepath.Base(scratch))
	srv, err := v.Server.Start(ctx, m.Flavor, scratch, serverScratch)
	if err != nil {
		return "", "", fmt.Errorf("verify %s: start a server on the restored copy: %w", id, err)
	}
	defer func() {
		if serr := srv.Stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("verify %s: stop the throwaway server: %w", id, serr))
		}
	}()
	gtids, err = checkPosition(ctx, srv, m, data)
	if err != nil {
		return gtids, "", fmt.Errorf("verify %s: %w", id, err)
	}
	tables, err := openTables(ctx, srv)
	if err != nil {
		return gtids, "", fmt.Errorf("verify %s: %w", id, err)
	}
	checked = fmt.Sprintf("restored %s, started %s on it: at the manifest's position, %d InnoDB table(s) open", humanSize(m.RawBytes), m.Flavor, tables)
	v.logger().Info("backup verified", "backup", id, "gtid", gtids, "tables", tables)
	return gtids, checked, nil
}

func (v *Verifier) logger() *slog.Logger {
	if v.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return v.Log
}

// checkPosition checks the restored copy stands where the manifest says. MySQL: the server's
// gtid_executed lies within the manifest's bounds. MariaDB: a restored copy starts without a
// binlog, so its position is the one mariadb-backup wrote into the copy, which must be the
// manifest's.
func checkPosition(ctx context.Context, srv *ScratchProcess, m *Manifest, dataDir string) (string, error) {
	low, err := gtid.Parse(m.Flavor, m.GTIDExecuted)
	if err != nil {
		return "", fmt.Errorf("manifest position: %w", err)
	}
	if m.Flavor == gtid.MariaDB && m.GTIDExecuted == "" {
		// A server that never committed a GTID transaction: mariadb-backup then records a binlog
		// file and offset alone, and there is no position to compare.
		return "", nil
	}
	var got gtid.Set
	switch m.Flavor {
	case gtid.MySQL:
		var s string
		if err := srv.DB.DB().QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&s); err != nil {
			return "", fmt.Errorf("read gtid_executed: %w", err)
		}
		if got, err = gtid.Parse(gtid.MySQL, strings.ReplaceAll(s, "\n", "")); err != nil {
			return "", fmt.Errorf("gtid_executed: %w", err)
		}
	default:
		pos, err := reseed.CopyPosition(dataDir)
		if err != nil {
			return "", fmt.Errorf("the copy's position: %w", err)
		}
		if got, err = gtid.Parse(gtid.MariaDB, pos); err != nil {
			return "", fmt.Errorf("the copy's position: %w", err)
		}
	}
	high := low
	if m.GTIDExecutedMax != "" {
		if high, err = gtid.Parse(m.Flavor, m.GTIDExecutedMax); err != nil {
			return "", fmt.Errorf("manifest position: %w", err)
		}
	}
	lowOK, err1 := got.Contains(low)
	highOK, err2 := high.Contains(got)
	if err := errors.Join(err1, err2); err != nil {
		return got.String(), err
	}
	if !lowOK || !highOK {
		want := m.GTIDExecuted
		if m.GTIDExecutedMax != "" {
			want = "between " + m.GTIDExecuted + " and " + m.GTIDExecutedMax
		}
		return got.String(), fmt.Errorf("the restored copy stands at %q, the manifest says %s", got, want)
	}
	return got.String(), nil
}

// openTables reads one row of every InnoDB table outside the system schemas, so each
// tablespace is opened: a file missing from the copy fails here rather than at the first query
// of a restored member.
func openTables(ctx context.Context, srv *ScratchProcess) (int, error) {
	rows, err := srv.DB.DB().QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE ENGINE = 'InnoDB' AND TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('mysql', 'sys', 'information_schema', 'performance_schema')`)
	if err != nil {
		return 0, fmt.Errorf("list tables: %w", err)
	}
	var tables [][2]string
	for rows.Next() {
		var t [2]string
		if err := rows.Scan(&t[0], &t[1]); err != nil {
			rows.Close()
			return 0, fmt.Errorf("list tables: %w", err)
		}
		tables = append(tables, t)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		q := "SELECT 1 FROM " + quoteName(t[0]) + "." + quoteName(t[1]) + " LIMIT 1"
		r, err := srv.DB.DB().QueryContext(ctx, q)
		if err == nil {
			err = r.Close()
		}
		if err != nil {
			return 0, fmt.Errorf("open table %s.%s: %w", t[0], t[1], err)
		}
	}
	return len(tables), nil
}

func quoteName(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// humanSize is n bytes for a person: MiB with one decimal.
func humanSize(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
