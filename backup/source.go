package backup

import (
	"archive/tar"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/reseed"
)

// mariadbSource streams mariadb-backup's mbstream, reading the copy's position from the stream
// as it passes.
type mariadbSource struct{ t *Taker }

// estimate sums the data dir's files but the binlogs and relay logs, which mariadb-backup leaves.
func (s mariadbSource) estimate(ctx context.Context, srv *mysqlctl.Server) (int64, error) {
	var dataDir string
	var binlogs, relayLogs sql.NullString
	err := srv.DB().QueryRowContext(ctx, "SELECT @@datadir, @@log_bin_basename, @@relay_log_basename").Scan(&dataDir, &binlogs, &relayLogs)
	if err != nil {
		return 0, err
	}
	return dirSize(dataDir, binlogs.String, relayLogs.String)
}

func (s mariadbSource) stream(ctx context.Context, w io.Writer) (Position, error) {
	var tap binlogInfoTap
	opts := reseed.BackupOptions{Local: s.t.Local, TmpDir: s.t.TmpDir, BytesPerSecond: s.t.BytesPerSecond, Nice: s.t.Nice, Tools: s.t.Tools}
	if _, err := reseed.Backup(ctx, io.MultiWriter(w, &tap), opts, s.t.logger()); err != nil {
		return Position{}, err
	}
	return tap.position()
}

// cloneSource clones the MySQL server into a local directory (CLONE LOCAL DATA DIRECTORY),
// streams that as a tar and removes it: the clone plugin has no streaming output, so this needs
// disk for one full copy of the data beside the server.
type cloneSource struct {
	t  *Taker
	id string
}

// estimate sums the InnoDB tablespaces the clone copies.
func (s cloneSource) estimate(ctx context.Context, srv *mysqlctl.Server) (int64, error) {
	var n sql.NullInt64
	err := srv.DB().QueryRowContext(ctx, "SELECT SUM(TOTAL_EXTENTS * EXTENT_SIZE) FROM information_schema.FILES").Scan(&n)
	return n.Int64, err
}

func (s cloneSource) stream(ctx context.Context, w io.Writer) (Position, error) {
	if s.t.CloneDir == "" {
		return Position{}, errors.New("clone: no clone dir configured (backup.clone_dir): MySQL clones to local disk before streaming")
	}
	name := "shoal-backup-" + s.id
	serverDir := path.Join(s.t.CloneDir, name)
	localDir := filepath.Join(cmp.Or(s.t.CloneDirLocal, s.t.CloneDir), name)
	if _, err := os.Stat(filepath.Dir(localDir)); err != nil {
		return Position{}, fmt.Errorf("clone dir as the agent sees it: %w", err)
	}
	// Whatever happens, the copy does not stay on disk.
	defer os.RemoveAll(localDir)
	pos, err := s.clone(ctx, serverDir)
	if err != nil {
		return Position{}, err
	}
	if err := writeTar(ctx, w, localDir); err != nil {
		return Position{}, fmt.Errorf("stream the clone in %s: %w", localDir, err)
	}
	return pos, nil
}

// clone runs CLONE LOCAL. The clone plugin reports no position for a local clone, and the copy's
// mysql.gtid_executed cannot be read without a server, so the position is bracketed: the binlog
// status read before the clone is in the copy, and nothing committed after the clone ended is.
// On an idle server (or a replica whose applier is idle) the two are the same, and exact.
func (s cloneSource) clone(ctx context.Context, dir string) (Position, error) {
	// CLONE returns only when the copy is done: the connection may wait for hours.
	long := s.t.Local
	long.ReadTimeout = 24 * time.Hour
	srv, err := mysqlctl.Open(ctx, long)
	if err != nil {
		return Position{}, fmt.Errorf("clone: %w", err)
	}
	defer srv.Close()
	db := srv.DB()
	if err := reseed.CheckClonePlugin(ctx, db); err != nil {
		return Position{}, fmt.Errorf("clone: %w", err)
	}
	before, err := binlogStatus(ctx, db)
	if err != nil {
		return Position{}, err
	}
	begin := time.Now()
	if _, err := db.ExecContext(ctx, "CLONE LOCAL DATA DIRECTORY = ?", dir); err != nil {
		return Position{}, fmt.Errorf("clone: CLONE LOCAL DATA DIRECTORY = %q: %w", dir, err)
	}
	after, err := binlogStatus(ctx, db)
	if err != nil {
		return Position{}, err
	}
	s.t.logger().Info("clone written; streaming it", "dir", dir, "took", time.Since(begin).Round(time.Millisecond))
	if after.GTIDExecuted != before.GTIDExecuted {
		before.GTIDExecutedMax = after.GTIDExecuted
	}
	return before, nil
}

// binlogStatus reads the server's binlog coordinates and gtid_executed, in one statement so they
// agree.
func binlogStatus(ctx context.Context, db *sql.DB) (Position, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOG STATUS")
	if err != nil {
		return Position{}, fmt.Errorf("clone: read the binlog status: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return Position{}, err
	}
	if !rows.Next() {
		return Position{}, errors.New("clone: SHOW BINARY LOG STATUS returned nothing: is the binlog on?")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return Position{}, fmt.Errorf("clone: read the binlog status: %w", err)
	}
	var pos Position
	for i, c := range cols {
		switch c {
		case "File":
			pos.BinlogFile = vals[i].String
		case "Position":
			if pos.BinlogPos, err = strconv.ParseUint(vals[i].String, 10, 64); err != nil {
				return Position{}, fmt.Errorf("clone: binlog position %q: %w", vals[i].String, err)
			}
		case "Executed_Gtid_Set":
			// The server breaks long sets over lines.
			pos.GTIDExecuted = strings.Join(strings.Fields(vals[i].String), "")
		}
	}
	return pos, rows.Err()
}

// writeTar writes dir's regular files and directories to w as a tar, names relative to dir.
func writeTar(ctx context.Context, w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			return fmt.Errorf("%s: neither a file nor a directory (%s)", rel, fi.Mode().Type())
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// dirSize is the bytes of the regular files under dir, but those whose path starts with one of
// the non-empty skip prefixes.
func dirSize(dir string, skip ...string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		for _, prefix := range skip {
			if prefix != "" && strings.HasPrefix(p, prefix) {
				return nil
			}
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}
