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

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// RelayLog reads the transactions a replica received into its relay log, for a failover that
// must copy what only this replica received onto the candidate (MHA's differential relay log).
type RelayLog struct {
	// Local is the connection to the replica's own server.
	Local *sql.DB
	// Flavor is the server's.
	Flavor gtid.Flavor
	// Tool is the flavor's binlog tool as a command line (mysqlbinlog, mariadb-binlog), e.g.
	// with a chroot in front. It is given the relay log files as the server names them.
	Tool []string
	// PIDFile is the server's pid file, for finding its relay log directory through
	// /proc/<pid>/root ("": the directory is where the server says).
	PIDFile string
}

// DefaultBinlogTool is the flavor's binlog tool, found on the PATH.
func DefaultBinlogTool(f gtid.Flavor) []string {
	if f == gtid.MariaDB {
		return []string{"mariadb-binlog"}
	}
	return []string{"mysqlbinlog"}
}

// WriteSQL writes to w, as SQL that replays them with their GTIDs (the binlog tool's output),
// the transactions of the relay log that are not in after: MySQL's --exclude-gtids, MariaDB's
// --start-position with after's GTID position (exclusive per domain). The relay log files go
// to the tool oldest first. A transaction the relay log holds only the start of comes out
// unterminated: applied, it is rolled back when the session ends.
func (r RelayLog) WriteSQL(ctx context.Context, after gtid.Set, w io.Writer) error {
	if len(r.Tool) == 0 {
		return errors.New("relay log: no binlog tool named")
	}
	files, err := r.files(ctx)
	if err != nil {
		return err
	}
	args := slices.Clone(r.Tool)
	switch {
	case after.IsEmpty():
	case r.Flavor == gtid.MariaDB:
		args = append(args, "--start-position="+after.MariaDBPosition(), "--skip-gtid-strict-mode")
	default:
		args = append(args, "--exclude-gtids="+after.String())
	}
	cmd := exec.CommandContext(ctx, args[0], append(args[1:], files...)...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("relay log: %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// files lists the relay log files, oldest first, as the server names them.
func (r RelayLog) files(ctx context.Context) ([]string, error) {
	var base sql.NullString
	if err := r.Local.QueryRowContext(ctx, "SELECT @@relay_log_basename").Scan(&base); err != nil {
		return nil, fmt.Errorf("relay log: read relay_log_basename: %w", err)
	}
	if !base.Valid || base.String == "" {
		return nil, errors.New("relay log: the server reports no relay_log_basename")
	}
	dir, err := SeenPath(filepath.Dir(base.String), r.PIDFile)
	if err != nil {
		return nil, fmt.Errorf("relay log: %w", err)
	}
	found, err := filepath.Glob(filepath.Join(dir, filepath.Base(base.String)) + ".[0-9]*")
	if err != nil || len(found) == 0 {
		return nil, fmt.Errorf("relay log: no file %s.NNNNNN in %s (%v)", filepath.Base(base.String), dir, err)
	}
	// The sequence grows past six digits: by length first, then by name.
	slices.SortFunc(found, func(x, y string) int { return cmp.Or(cmp.Compare(len(x), len(y)), cmp.Compare(x, y)) })
	files := make([]string, len(found))
	for i, f := range found {
		files[i] = filepath.Join(filepath.Dir(base.String), filepath.Base(f))
	}
	return files, nil
}
