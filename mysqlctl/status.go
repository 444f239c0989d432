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

// Status reads the server's state. Each query is bounded by the connection's timeouts and ctx.
func (s *Server) Status(ctx context.Context) (state.Status, error) {
	st := state.Status{Addr: s.addr, Flavor: s.flavor, Version: s.version}
	var (
		executed string
		uuid     sql.NullString
	)
	if err := s.db.QueryRowContext(ctx, s.dialect.identity).Scan(&st.ServerID, &uuid, &st.ReadOnly, &st.SuperReadOnly, &executed); err != nil {
		return st, s.errorf("read identity and GTIDs", err)
	}
	st.ServerUUID = uuid.String
	var err error
	if st.Executed, err = gtid.Parse(s.flavor, executed); err != nil {
		return st, s.errorf("parse executed GTIDs", err)
	}
	if st.Replica, err = s.replicaStatus(ctx, st.Executed); err != nil {
		return st, err
	}
	if st.SemiSync, err = s.semiSyncStatus(ctx); err != nil {
		return st, err
	}
	return st, nil
}

func (s *Server) replicaStatus(ctx context.Context, executed gtid.Set) (*state.Replica, error) {
	row, err := s.queryOneRow(ctx, s.dialect.showReplicaStatus)
	if err != nil {
		return nil, s.errorf("read replica status", err)
	}
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

func (s *Server) semiSyncStatus(ctx context.Context) (state.SemiSync, error) {
	d := s.dialect
	vars, err := s.nameValues(ctx, "SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync%'")
	if err != nil {
		return state.SemiSync{}, s.errorf("read semi-sync variables", err)
	}
	if _, ok := vars[d.semiSource+"enabled"]; !ok {
		return state.SemiSync{}, nil
	}
	status, err := s.nameValues(ctx, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync%'")
	if err != nil {
		return state.SemiSync{}, s.errorf("read semi-sync status", err)
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
	}, nil
}

// queryOneRow returns the first row of a SHOW statement by column name, or nil when it is empty.
func (s *Server) queryOneRow(ctx context.Context, query string) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
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
	return out, rows.Err()
}

// nameValues reads a two-column SHOW VARIABLES / SHOW STATUS result.
func (s *Server) nameValues(ctx context.Context, query string) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
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
