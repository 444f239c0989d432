package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// Faults shared by the e2e tests, the benchmarks and the chaos suite.

// FreezeMySQL SIGSTOPs member i's mysqld; thaw resumes it, or restarts it when its agent killed it.
func (c *Cluster) FreezeMySQL(i int) (thaw func()) {
	c.t.Helper()
	if err := c.Servers[i].Pause(); err != nil {
		c.t.Fatal(err)
	}
	return func() { c.ThawServer(i) }
}

// FreezeHost SIGSTOPs member i's mysqld and agent, as a hung VM or a kernel stall: nothing of it
// answers, and nobody on it can fence. thaw resumes the agent first, which kills its mysqld as it
// would one frozen alone, and only then the server: a mysqld thawed together with its agent is
// writable until the agent's first pass fences it, a window the monitor (50 ms) may see as two
// writable servers although it could acknowledge nothing (no replica follows it any more).
func (c *Cluster) FreezeHost(i int) (thaw func()) {
	c.t.Helper()
	c.PauseAgent(i)
	if err := c.Servers[i].Pause(); err != nil {
		c.t.Fatal(err)
	}
	return func() {
		c.ResumeAgent(i)
		for deadline := time.Now().Add(10 * time.Second); c.Servers[i].PID() != 0 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		c.ThawServer(i)
	}
}

// ReplicaStatement is the flavor's spelling of a replication statement written MySQL's way
// ("STOP REPLICA IO_THREAD", "SHOW REPLICA STATUS").
func (c *Cluster) ReplicaStatement(mysql string) string {
	if c.Flavor == gtid.MariaDB {
		return strings.Replace(mysql, "REPLICA", "SLAVE", 1)
	}
	return mysql
}

// Root is a pool of root connections to member i's server, kept for the cluster's life: faults
// drawn hundreds of times in a chaos run open no pool of their own.
func (c *Cluster) Root(i int) *sql.DB {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.roots == nil {
		c.roots = map[int]*sql.DB{}
	}
	if c.roots[i] == nil {
		c.roots[i] = c.Servers[i].RootDB(c.t)
	}
	return c.roots[i]
}

// ExecRoot runs statements on member i's server as root, failing the test on an error.
func (c *Cluster) ExecRoot(ctx context.Context, i int, stmts ...string) {
	c.t.Helper()
	db := c.Root(i)
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			c.t.Fatalf("%s on %s: %v", q, c.Name(i), err)
		}
	}
}

// WriteLocally runs stmts on member i's server outside the binlog, past its read-only fence: a
// row the replicated writes will collide with.
func (c *Cluster) WriteLocally(ctx context.Context, i int, stmts ...string) {
	c.t.Helper()
	conn, err := c.Root(i).Conn(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close()
	if c.Flavor == gtid.MySQL { // root writes past read_only, not past super_read_only
		stmts = append(append([]string{"SET GLOBAL super_read_only = OFF"}, stmts...), "SET GLOBAL super_read_only = ON")
	}
	for _, q := range append([]string{"SET SESSION sql_log_bin = 0"}, stmts...) {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			c.t.Fatalf("%s on %s: %v", q, c.Name(i), err)
		}
	}
}

// RepairApplier does what an operator does for member i's applier, stopped on the row id that
// WriteLocally put in its way: deletes the row and starts the applier again, until it runs
// without an error. A START REPLICA in the few milliseconds while a failing applier still shows
// running does nothing, and the applier then stays stopped (seen in a chaos run).
func (c *Cluster) RepairApplier(ctx context.Context, i int, id int64) {
	c.t.Helper()
	c.WriteLocally(ctx, i, fmt.Sprintf("DELETE FROM app.acks WHERE id = %d", id))
	srv := c.MySQL(ctx, i)
	defer srv.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := srv.Status(ctx)
		if err != nil {
			c.t.Fatalf("status of %s: %v", c.Name(i), err)
		}
		rep := st.Replica
		switch {
		case rep != nil && rep.SQLRunning && rep.LastSQLErrno == 0:
			return
		case time.Now().After(deadline):
			c.t.Fatalf("the applier of %s did not run again: %+v", c.Name(i), rep)
		case rep != nil && !rep.SQLRunning:
			c.ExecRoot(ctx, i, c.ReplicaStatement("START REPLICA"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitApplierError waits until member i's applier stopped on an error (the write of id).
func (c *Cluster) WaitApplierError(i int, id int64) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for errno := ""; errno == "" || errno == "0"; errno = c.ReplicaColumn(i, "Last_SQL_Errno") {
		if time.Now().After(deadline) {
			c.t.Fatalf("the applier of %s never failed on id %d", c.Name(i), id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ReplicaColumn is one column of member i's replica status row, "" when it replicates nothing.
func (c *Cluster) ReplicaColumn(i int, column string) string {
	c.t.Helper()
	rows, err := c.Root(i).Query(c.ReplicaStatement("SHOW REPLICA STATUS"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return ""
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		c.t.Fatal(err)
	}
	return vals[slices.Index(cols, column)].String
}

// Logged reports whether an agent logged a line holding text after a moment.
func (c *Cluster) Logged(after time.Time, text string) bool {
	return slices.ContainsFunc(c.LogLines(after, time.Time{}), func(l LogLine) bool { return strings.Contains(l.Text, text) })
}
