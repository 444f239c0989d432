package agent

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/shoal-db/shoal/backup"
)

// binlogWritten is how far the local server has written its binlog on disk, "file:size" of the
// newest file; "" when it cannot tell (failures are logged when they change). The file's size is
// read from disk, not asked of the server: SHOW BINARY LOGS and SHOW BINARY LOG STATUS wait for
// the lock a commit holds while it writes, for as long as it writes, or waits for disk space.
func (a *Agent) binlogWritten(basename string) string {
	at, err := a.newestBinlog(basename)
	if msg := errText(err); msg != a.binlogErr {
		a.binlogErr = msg
		if err != nil {
			a.log.Warn("cannot read the binlog's size on disk; a long commit is told from a stall by the replicas alone", "err", err)
		}
	}
	return at
}

func (a *Agent) newestBinlog(basename string) (string, error) {
	if basename == "" {
		return "", errors.New("the server reports no log_bin_basename")
	}
	dir := a.opts.BinlogDir
	if dir == "" {
		var err error
		if dir, err = backup.SeenPath(filepath.Dir(basename), a.opts.MySQLPIDFile); err != nil {
			return "", err
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, filepath.Base(basename)) + ".[0-9]*")
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("no binlog file %s.NNNNNN in %s (%v)", filepath.Base(basename), dir, err)
	}
	// The sequence grows past six digits: the longest name, then the greatest, is the newest.
	newest := slices.MaxFunc(files, func(x, y string) int {
		if len(x) != len(y) {
			return len(x) - len(y)
		}
		return cmp.Compare(x, y)
	})
	fi, err := os.Stat(newest)
	if err != nil {
		return "", fmt.Errorf("binlog size: %w", err)
	}
	return filepath.Base(newest) + ":" + strconv.FormatInt(fi.Size(), 10), nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
