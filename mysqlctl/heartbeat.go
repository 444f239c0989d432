package mysqlctl

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errOptionPreventsStatement is ER_OPTION_PREVENTS_STATEMENT: refused by super_read_only.
const errOptionPreventsStatement = 1290

// HeartbeatTable is where WriteHeartbeat writes, one row per member. Promote creates it, so it
// is binlogged by a primary and every replica holds it too.
const HeartbeatTable = "shoal.heartbeat"

// ErrNotWritten: the heartbeat found the server read-only and wrote nothing.
var ErrNotWritten = errors.New("heartbeat not written: the server is read-only")

// WriteHeartbeat commits one tiny transaction, as a client would, recording that member wrote at
// at. It goes through the binlog and, on a semi-sync primary, waits for the replicas' acks, so it
// returns only once the server can commit (the idea of pt-heartbeat): a global read lock, a full
// binlog disk or missing acks keep it waiting, and the caller times the wait.
//
// The row is written only while read_only is off, checked by the statement itself: MariaDB's
// fence (read_only) does not bind this administrative account, and a row written on a fenced
// server would be an errant transaction. A fence that completes first leaves nothing to commit
// (ErrNotWritten); one that starts later waits for this commit, like any client's.
func (s *Server) WriteHeartbeat(ctx context.Context, member string, at time.Time) error {
	at = at.UTC().Truncate(time.Microsecond)
	res, err := s.db.ExecContext(ctx, "INSERT INTO "+HeartbeatTable+" (member, at) SELECT ?, ? FROM DUAL WHERE @@GLOBAL.read_only = 0 "+
		"ON DUPLICATE KEY UPDATE at = ?", member, at, at)
	if serverErrorNumber(err) == errOptionPreventsStatement { // super_read_only (MySQL)
		return s.errorf("write heartbeat", fmt.Errorf("%w: %w", ErrNotWritten, err))
	}
	if err != nil {
		return s.errorf("write heartbeat", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return s.errorf("write heartbeat", ErrNotWritten)
	}
	return nil
}

// ensureHeartbeatTable creates the heartbeat table; Promote runs it while clients are kept out,
// so it is the new primary's own binlogged transaction, never a replica's.
func (s *Server) ensureHeartbeatTable(ctx context.Context) error {
	if err := s.exec(ctx, "create heartbeat database", "CREATE DATABASE IF NOT EXISTS shoal"); err != nil {
		return err
	}
	return s.exec(ctx, "create heartbeat table", "CREATE TABLE IF NOT EXISTS "+HeartbeatTable+
		" (member VARCHAR(255) NOT NULL PRIMARY KEY, at DATETIME(6) NOT NULL) ENGINE=InnoDB")
}
