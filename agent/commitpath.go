package agent

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/shoal-db/shoal/backup"
)

// binlogReadWait bounds how long a pass waits for the binlog's size on disk.
const binlogReadWait = 200 * time.Millisecond

// binlogRead is one read of the binlog's size on disk.
type binlogRead struct {
	at  string
	err error
}

// binlogWritten is how far the local server has written its binlog on disk, "file:size" of the
// newest file; "" when it cannot tell (failures are logged when they change). The file's size is
// read from disk, not asked of the server: SHOW BINARY LOGS and SHOW BINARY LOG STATUS wait for
// the lock a commit holds while it writes, for as long as it writes, or waits for disk space.
//
// The read runs beside the loop and is waited for at most binlogReadWait: a file system that
// hangs (a dead volume, which is itself a stall) must not hold up the pass that fences the
// server. While a read hangs no other starts and the answer is "" (nothing seen moving), and an
// answer that comes after its pass is dropped as stale.
func (a *Agent) binlogWritten(basename string) string {
	if a.binlogPending != nil {
		select {
		case <-a.binlogPending:
			a.binlogPending = nil
		default:
			return ""
		}
	}
	read := a.newestBinlog
	if a.readBinlog != nil {
		read = a.readBinlog
	}
	pending := make(chan binlogRead, 1)
	go func() {
		at, err := read(basename)
		pending <- binlogRead{at, err}
	}()
	wait := time.NewTimer(binlogReadWait)
	defer wait.Stop()
	var r binlogRead
	select {
	case r = <-pending:
	case <-wait.C:
		a.binlogPending = pending
		r.err = fmt.Errorf("reading the binlog's size on disk took over %s", binlogReadWait)
	}
	at, err := r.at, r.err
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
