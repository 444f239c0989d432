package mysqlctl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

// statusStatements are what Status reads, sent as one multi-statement query: a probe costs
// one round trip instead of four, which is most of an idle agent's CPU (the leader probes
// every member each tick).
const (
	semiSyncVarsStatement   = "SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync%'"
	semiSyncStatusStatement = "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync%'"
)

// Status reads the server's state. The query is bounded by the connection's timeouts and ctx.
func (s *Server) Status(ctx context.Context) (state.Status, error) {
	st := state.Status{Addr: s.addr, Flavor: s.flavor, Version: s.version}
	d := s.dialect
	rows, err := s.db.QueryContext(ctx, strings.Join([]string{d.identity, d.showReplicaStatus,
		semiSyncVarsStatement, semiSyncStatusStatement}, "; "))
	if err != nil {
		return st, s.errorf("read identity and GTIDs", err)
	}
	defer rows.Close()
	// Each result set in turn; a failed statement ends the query, and NextResultSet then
	// reports it through rows.Err.
	var (
		executed, uuid, basename sql.NullString
		replica                  map[string]string
		vars, status             map[string]string
	)
	steps := []struct {
		what string
		read func(*sql.Rows) error
	}{
		{"read identity and GTIDs", func(r *sql.Rows) error {
			if !r.Next() {
				return errors.Join(r.Err(), errors.New("no row"))
			}
			return r.Scan(&st.ServerID, &uuid, &st.ReadOnly, &st.SuperReadOnly, &executed, &basename)
		}},
		{"read replica status", func(r *sql.Rows) (err error) { replica, err = oneRow(r); return err }},
		{"read semi-sync variables", func(r *sql.Rows) (err error) { vars, err = nameValueRows(r); return err }},
		{"read semi-sync status", func(r *sql.Rows) (err error) { status, err = nameValueRows(r); return err }},
	}
	for i, step := range steps {
		if i > 0 && !rows.NextResultSet() {
			return st, s.errorf(step.what, errors.Join(rows.Err(), errors.New("result set missing")))
		}
		if err := step.read(rows); err != nil {
			return st, s.errorf(step.what, err)
		}
	}
	st.ServerUUID, st.BinlogBasename = uuid.String, basename.String
	if st.Executed, err = gtid.Parse(s.flavor, executed.String); err != nil {
		return st, s.errorf("parse executed GTIDs", err)
	}
	if st.Replica, err = s.replicaStatus(replica, st.Executed); err != nil {
		return st, err
	}
	st.SemiSync = s.semiSyncStatus(vars, status)
	return st, nil
}

// replicaStatus reads a replica status row; nil when the server replicates from nothing.
func (s *Server) replicaStatus(row map[string]string, executed gtid.Set) (*state.Replica, error) {
	if row == nil {
		return nil, nil
	}
	d := s.dialect
	r := &state.Replica{
		SourceHost:   row[d.colSourceHost],
		SourcePort:   atoi(row[d.colSourcePort]),
		IOState:      row[d.colIORunning],
		SQLRunning:   row[d.colSQLRunning] == "Yes",
		LastIOErrno:  atoi(row["Last_IO_Errno"]),
		LastIOError:  row["Last_IO_Error"],
		LastSQLErrno: atoi(row["Last_SQL_Errno"]),
		LastSQLError: row["Last_SQL_Error"],
	}
	if file, pos := row[d.colReadFile], row[d.colReadPos]; file != "" {
		r.ReadPos = file + ":" + pos
	}
	switch v := row[d.colAutoPosition]; s.flavor {
	case gtid.MariaDB:
		r.AutoPosition = v != "" && !strings.EqualFold(v, "No")
	default:
		r.AutoPosition = v == "1"
	}
	if lag := row[d.colLag]; lag != "" {
		if n, err := strconv.Atoi(lag); err == nil {
			dur := time.Duration(n) * time.Second
			r.Lag = &dur
		}
	}
	fetched, err := gtid.Parse(s.flavor, row[d.colReceived])
	if err != nil {
		return nil, s.errorf("parse received GTIDs", err)
	}
	if r.Received, err = executed.Union(fetched); err != nil {
		return nil, s.errorf("combine received GTIDs", err)
	}
	return r, nil
}

// semiSyncStatus reads the semi-sync variables and status; zero when no plugin is loaded.
func (s *Server) semiSyncStatus(vars, status map[string]string) state.SemiSync {
	d := s.dialect
	if _, ok := vars[d.semiSource+"enabled"]; !ok {
		return state.SemiSync{}
	}
	acks := 1
	if d.semiAckCountVar != "" {
		acks = atoi(vars[d.semiAckCountVar])
	}
	return state.SemiSync{
		Available:      true,
		SourceEnabled:  isOn(vars[d.semiSource+"enabled"]),
		SourceActive:   isOn(status[d.semiSourceStatus+"status"]),
		WaitPoint:      vars[d.semiSource+"wait_point"],
		Timeout:        time.Duration(atoi(vars[d.semiSource+"timeout"])) * time.Millisecond,
		AcksRequired:   acks,
		Clients:        atoi(status[d.semiSourceStatus+"clients"]),
		WaitSessions:   atoi(status[d.semiSourceStatus+"wait_sessions"]),
		ReplicaEnabled: isOn(vars[d.semiReplica+"enabled"]),
		ReplicaActive:  isOn(status[d.semiReplicaStatus+"status"]),
	}
}

// oneRow returns the first row of the current result set by column name, or nil when it is
// empty; the other rows are skipped.
func oneRow(rows *sql.Rows) (map[string]string, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(cols))
	for i, c := range cols {
		out[c] = vals[i].String
	}
	for rows.Next() {
	}
	return out, rows.Err()
}

// nameValueRows reads the current result set of a two-column SHOW VARIABLES / SHOW STATUS.
func nameValueRows(rows *sql.Rows) (map[string]string, error) {
	out := map[string]string{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return nil, err
		}
		out[name] = value
	}
	return out, rows.Err()
}

// nameValues runs a two-column SHOW VARIABLES / SHOW STATUS statement.
func (s *Server) nameValues(ctx context.Context, query string) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return nameValueRows(rows)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func isOn(v string) bool { return strings.EqualFold(v, "ON") || v == "1" }

// CheckConfig reports every server setting that breaks shoal's guarantees, all at once.
func (s *Server) CheckConfig(ctx context.Context) error {
	vars, err := s.nameValues(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN "+
		"('log_bin', 'binlog_format', 'gtid_mode', 'enforce_gtid_consistency', 'log_replica_updates', "+
		"'log_slave_updates', 'gtid_strict_mode')")
	if err != nil {
		return s.errorf("read settings", err)
	}
	want := map[string]string{"log_bin": "ON", "binlog_format": "ROW"}
	if s.flavor == gtid.MySQL {
		want["gtid_mode"] = "ON"
		want["enforce_gtid_consistency"] = "ON"
		want["log_replica_updates"] = "ON"
	} else {
		// Without these a replica's gtid_binlog_state misses what it replicated, and errant
		// transactions would go unnoticed.
		want["log_slave_updates"] = "ON"
		want["gtid_strict_mode"] = "ON"
	}
	var problems []error
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if got := vars[name]; !strings.EqualFold(got, want[name]) {
			problems = append(problems, fmt.Errorf("%w: %s is %q, want %s", ErrMisconfigured, name, got, want[name]))
		}
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("mysql %s: %w", s.addr, err)
	}
	return nil
}
