package backup

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// LocalLogs reads the transactions a replica holds, for a failover that must copy onto the
// candidate what only this replica received (MHA's differential relay log): those it applied
// from its binlog (a relay log file is purged once applied), those it only received from its
// relay log.
type LocalLogs struct {
	// Local is the replica's own server.
	Local *mysqlctl.Server
	// Tool is the flavor's binlog tool as a command line (mysqlbinlog, mariadb-binlog), e.g.
	// with a chroot in front. It is given the files as the server names them.
	Tool []string
	// PIDFile is the server's pid file, for finding its log directories through
	// /proc/<pid>/root ("": the directories are where the server says).
	PIDFile string
}

// DefaultBinlogTool is the flavor's binlog tool, found on the PATH.
func DefaultBinlogTool(f gtid.Flavor) []string {
	if f == gtid.MariaDB {
		return []string{"mariadb-binlog"}
	}
	return []string{"mysqlbinlog"}
}

// Log names one of a server's logs.
type Log string

const (
	Binlog   Log = "binlog"
	RelayLog Log = "relay"
)

// WriteSQL writes to w, as SQL that replays them with their GTIDs (the binlog tool's output),
// the transactions of the log that are not in after and, unless it is empty, are in only. The
// files go to the tool oldest first, past after: MySQL's --exclude-gtids, MariaDB's
// --start-position with after's GTID position (exclusive per domain, so the binlog's part must
// be applied before the relay log's is asked for); bounded by only: MySQL's --include-gtids,
// MariaDB's --stop-position with only's GTID position (inclusive per domain). The bound keeps
// whatever else a log holds off the candidate of a recovery. Apply each output in a session of its own: MySQL refuses a second output's first event
// in a session that applied another. The binlog gives nothing when after holds all the server
// executed. A transaction the relay log holds only the start of comes out unterminated:
// applied, it is rolled back when the session ends.
func (r LocalLogs) WriteSQL(ctx context.Context, log Log, after, only gtid.Set, w io.Writer) error {
	if len(r.Tool) == 0 {
		return errors.New("no binlog tool named")
	}
	var base sql.NullString
	switch log {
	case Binlog:
		st, err := r.Local.Status(ctx)
		if err != nil {
			return err
		}
		if has, err := after.Contains(st.Executed); err != nil || has {
			return err
		}
		base.String = st.BinlogBasename
	case RelayLog:
		if err := r.Local.DB().QueryRowContext(ctx, "SELECT @@relay_log_basename").Scan(&base); err != nil {
			return fmt.Errorf("read relay_log_basename: %w", err)
		}
	default:
		return fmt.Errorf("no log %q: want %s or %s", log, Binlog, RelayLog)
	}
	files, err := r.files(base.String)
	if err != nil {
		return fmt.Errorf("%s: %w", log, err)
	}
	if err := r.run(ctx, after, only, files, w); err != nil {
		return fmt.Errorf("%s: %w", log, err)
	}
	return nil
}

// run writes the transactions of files past after, and within only, to w.
func (r LocalLogs) run(ctx context.Context, after, only gtid.Set, files []string, w io.Writer) error {
	args := slices.Clone(r.Tool)
	mariadb := r.Local.Flavor() == gtid.MariaDB
	switch {
	case after.IsEmpty():
	case mariadb:
		// Not strict: the position may lie before the files' first transaction.
		args = append(args, "--start-position="+after.MariaDBPosition(), "--skip-gtid-strict-mode")
	default:
		args = append(args, "--exclude-gtids="+after.String())
	}
	switch {
	case only.IsEmpty():
	case mariadb:
		args = append(args, "--stop-position="+only.MariaDBPosition())
	default:
		args = append(args, "--include-gtids="+only.String())
	}
	cmd := exec.CommandContext(ctx, args[0], append(args[1:], files...)...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// files lists the files of a log whose basename the server reports, oldest first, as the
// server names them.
func (r LocalLogs) files(base string) ([]string, error) {
	if base == "" {
		return nil, errors.New("the server reports no basename: is the log on?")
	}
	dir, err := SeenPath(filepath.Dir(base), r.PIDFile)
	if err != nil {
		return nil, err
	}
	found, err := filepath.Glob(filepath.Join(dir, filepath.Base(base)) + ".[0-9]*")
	if err != nil || len(found) == 0 {
		return nil, fmt.Errorf("no file %s.NNNNNN in %s (%v)", filepath.Base(base), dir, err)
	}
	// The sequence grows past six digits: by length first, then by name.
	slices.SortFunc(found, func(x, y string) int { return cmp.Or(cmp.Compare(len(x), len(y)), cmp.Compare(x, y)) })
	files := make([]string, len(found))
	for i, f := range found {
		files[i] = filepath.Join(filepath.Dir(base), filepath.Base(f))
	}
	return files, nil
}
