package mysqlctl

import (
	"bufio"
	"context"
	"database/sql/driver"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// ApplyBinlogSQL runs the binlog tool's SQL output (mysqlbinlog, mariadb-binlog) read from r on
// the server, as the command-line client would: one session, statements split at the
// delimiter the text sets, comment lines skipped. The transactions keep their GTIDs and go to
// the server's binlog, so its replicas get them too. On MySQL, super_read_only is lifted for
// the time of it (read_only stays on, so only administrative accounts can write meanwhile).
// The session is discarded afterwards, whatever it was left with (GTID_NEXT, an open
// transaction of a stream cut short, which is rolled back). On a MariaDB replica, whose relay
// log must be applied already, replication is stopped afterwards and gtid_slave_pos moved to
// gtid_binlog_pos, so the transactions count as replicated, also after a stream that failed
// part way.
func (s *Server) ApplyBinlogSQL(ctx context.Context, r io.Reader) error {
	if s.flavor == gtid.MySQL {
		var on bool
		if err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.super_read_only").Scan(&on); err != nil {
			return s.errorf("read super_read_only", err)
		}
		if on {
			if err := s.setGlobal(ctx, "super_read_only", "OFF"); err != nil {
				return err
			}
			defer func() {
				// Set again even when ctx ended: a fenced server must not stay less fenced.
				restore, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.maxWait)
				defer cancel()
				_ = s.setGlobal(restore, "super_read_only", "ON")
			}()
		}
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.errorf("apply binlog SQL: connect", err)
	}
	defer conn.Close()
	defer conn.Raw(func(any) error { return driver.ErrBadConn }) // never back into the pool
	n := 0
	err = SplitBinlogSQL(r, func(stmt string) error {
		n++
		if artificialFDE(stmt) {
			return nil
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("statement %d (%.80q): %w", n, stmt, err)
		}
		return nil
	})
	if err != nil {
		err = s.errorf("apply binlog SQL", err)
	}
	if s.flavor != gtid.MariaDB || n == 0 {
		return err
	}
	// Also when the stream failed or ctx ended part way: what committed must count as
	// replicated, or a later MASTER_GTID_WAIT for it never returns (a failover's prepare that
	// was cancelled just after its recovery's last commit then waited out its timeout, again and
	// again, in a chaos run).
	fix, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.maxWait)
	defer cancel()
	return errors.Join(err, s.countAsReplicated(fix))
}

// countAsReplicated moves a MariaDB replica's gtid_slave_pos to its gtid_binlog_pos. MariaDB's
// MASTER_GTID_WAIT (a promotion's wait for the relay log) and a replica's auto-positioned
// connect go by gtid_slave_pos, which a client's transactions do not move (nor
// gtid_current_pos, for another server's GTIDs). Setting it needs replication stopped: a
// replica's relay log is applied by now.
func (s *Server) countAsReplicated(ctx context.Context) error {
	st, err := s.Status(ctx)
	if err != nil || st.Replica == nil {
		return err
	}
	if err := s.StopReplica(ctx); err != nil {
		return err
	}
	return s.exec(ctx, "set replica GTID position", "SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos")
}

// artificialFDE tells a BINLOG statement carrying a format description event the source sent
// a replica on connecting (LOG_EVENT_ARTIFICIAL_F): the binlog tool prints it from a relay log,
// and MySQL 9.7 refuses it ("GTID_NEXT cannot be set to ANONYMOUS"). The format it describes
// is the relay log's own, already applied at the file's start.
func artificialFDE(stmt string) bool {
	const (
		formatDescription = 0x0f
		artificial        = 0x20 // LOG_EVENT_ARTIFICIAL_F
	)
	b64, ok := strings.CutPrefix(stmt, "BINLOG '")
	if !ok {
		return false
	}
	// The 19-byte common header is in the first 28 characters of base64.
	b64 = strings.Join(strings.Fields(b64), "")
	if len(b64) < 28 {
		return false
	}
	h, err := base64.StdEncoding.DecodeString(b64[:28])
	return err == nil && h[4] == formatDescription && binary.LittleEndian.Uint16(h[17:19])&artificial != 0
}

// ErrUnterminated: the binlog tool's output ended inside a statement (a stream cut short).
var ErrUnterminated = errors.New("SQL ends inside a statement")

// SplitBinlogSQL splits the binlog tool's SQL output into statements, handing each to f in
// order, as the command-line client does with it: a line "DELIMITER x" sets the delimiter (";"
// at first), a statement ends at a line ending with it, and lines starting with "#" between
// statements are comments; the charset command "/*!\C x */" becomes SET NAMES x. Text after
// the last statement fails with ErrUnterminated.
func SplitBinlogSQL(r io.Reader, f func(stmt string) error) error {
	br := bufio.NewReader(r)
	delim := ";"
	var stmt strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		eof := err != nil
		text := strings.TrimRight(line, "\r\n")
		trimmed := strings.TrimSpace(text)
		switch {
		case stmt.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")):
		case stmt.Len() == 0 && len(trimmed) > 10 && strings.EqualFold(trimmed[:10], "DELIMITER "):
			if delim = strings.TrimSpace(trimmed[10:]); strings.ContainsFunc(delim, isSpace) {
				return fmt.Errorf("bad delimiter line %.80q", trimmed)
			}
		default:
			stmt.WriteString(text)
			stmt.WriteByte('\n')
			if end := strings.TrimRightFunc(text, isSpace); strings.HasSuffix(end, delim) {
				s := strings.TrimRightFunc(stmt.String(), isSpace)
				s = strings.TrimSpace(s[:len(s)-len(delim)])
				stmt.Reset()
				if s == "" {
					break
				}
				if cs, ok := charsetCommand(s); ok {
					s = "SET NAMES " + cs
				}
				if err := f(s); err != nil {
					return err
				}
			}
		}
		if eof {
			if strings.TrimSpace(stmt.String()) != "" {
				return fmt.Errorf("%w: %.80q", ErrUnterminated, stmt.String())
			}
			return nil
		}
	}
}

// charsetCommand reads the client's charset command as mysqlbinlog writes it, "/*!\C utf8mb4 */":
// the client switches its connection's character set, as SET NAMES does.
func charsetCommand(stmt string) (string, bool) {
	rest, ok := strings.CutPrefix(stmt, `/*!\C `)
	if !ok {
		return "", false
	}
	cs, ok := strings.CutSuffix(strings.TrimSpace(rest), "*/")
	cs = strings.TrimSpace(cs)
	if !ok || cs == "" || strings.ContainsFunc(cs, notNameChar) {
		return "", false
	}
	return cs, true
}

func notNameChar(r rune) bool {
	return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }
