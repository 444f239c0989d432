package mysqlctl_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
	"github.com/shoal-db/shoal/test/harness"
)

const (
	replUser     = "shoal_repl"
	replPassword = "repl-pw"
)

var promoteOpts = mysqlctl.PromoteOptions{ReplUser: replUser, ReplPassword: replPassword}

// node is one real server and the mysqlctl handle that drives it.
type node struct {
	proc *harness.Server
	ctl  *mysqlctl.Server
	app  *sql.DB // the application's account: no privilege that bypasses read-only
}

func startNodes(t *testing.T, flavor gtid.Flavor, n int) []*node {
	t.Helper()
	procs := harness.StartN(t, flavor, n, func(_ int, c *harness.ServerConfig) { c.SuperReadOnly = true })
	nodes := make([]*node, n)
	for i, p := range procs {
		ctl, err := mysqlctl.Open(ctx(t), mysqlctl.Config{Addr: p.Addr(), User: harness.RootUser, Password: harness.RootPassword})
		if err != nil {
			t.Fatalf("open %s: %v", p.Addr(), err)
		}
		t.Cleanup(func() { ctl.Close() })
		if ctl.Flavor() != flavor {
			t.Fatalf("%s: detected flavor %s, started %s", p.Addr(), ctl.Flavor(), flavor)
		}
		if err := ctl.CheckConfig(ctx(t)); err != nil {
			t.Fatalf("harness server fails shoal's config check: %v", err)
		}
		app, err := sql.Open("mysql", p.DSN(harness.AppUser, harness.AppPassword))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { app.Close() })
		nodes[i] = &node{proc: p, ctl: ctl, app: app}
	}
	return nodes
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func status(t *testing.T, n *node) state.Status {
	t.Helper()
	st, err := n.ctl.Status(ctx(t))
	must(t, err)
	return st
}

func source(n *node) mysqlctl.Source {
	return mysqlctl.Source{Host: n.proc.Host(), Port: n.proc.Port(), User: replUser, Password: replPassword}
}

// wireCluster makes nodes[0] the lossless semi-sync primary and the rest its replicas.
func wireCluster(t *testing.T, nodes []*node) {
	t.Helper()
	primary := nodes[0]
	must(t, primary.ctl.Promote(ctx(t), promoteOpts))
	for _, r := range nodes[1:] {
		must(t, r.ctl.ConfigureReplica(ctx(t), source(primary), mysqlctl.ReplicaOptions{SemiSync: true}))
	}
	// Lossless semi-sync: this commit waits until a replica has it.
	_, err := primary.app.ExecContext(ctx(t), "CREATE TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY, v VARCHAR(64))")
	must(t, err)
	for _, r := range nodes[1:] {
		waitCaughtUp(t, primary, r)
	}
}

// waitCaughtUp waits until replica has applied everything the primary executed.
func waitCaughtUp(t *testing.T, primary, replica *node) {
	t.Helper()
	want := status(t, primary).Executed
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := replica.ctl.WaitApplied(c, want); err != nil {
		st, _ := replica.ctl.Status(ctx(t))
		t.Fatalf("%s did not catch up to %s: %v (replica status %+v)", replica.proc.Addr(), want, err, st.Replica)
	}
}

func insertRows(t *testing.T, n *node, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := n.app.ExecContext(ctx(t), "INSERT INTO app.t VALUES (?, ?)", i, fmt.Sprintf("row-%d", i)); err != nil {
			t.Fatalf("insert %d on %s: %v", i, n.proc.Addr(), err)
		}
	}
}

// tableDigest is a content fingerprint of app.t, equal on servers with equal data.
func tableDigest(t *testing.T, n *node) string {
	t.Helper()
	var count int
	var sum sql.NullString
	err := n.app.QueryRowContext(ctx(t),
		"SELECT COUNT(*), SUM(CRC32(CONCAT(id, ':', v))) FROM app.t").Scan(&count, &sum)
	must(t, err)
	return fmt.Sprintf("%d rows, crc %s", count, sum.String)
}

func TestPromoteAndRepoint(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		nodes := startNodes(t, flavor, 3)
		wireCluster(t, nodes)
		old, next, other := nodes[0], nodes[1], nodes[2]
		insertRows(t, old, 0, 100)

		st := status(t, old)
		if !st.Writable() || st.Replica != nil {
			t.Fatalf("primary status: writable=%v replica=%+v", st.Writable(), st.Replica)
		}
		ss := st.SemiSync
		if !ss.SourceEnabled || !ss.SourceActive || ss.WaitPoint != "AFTER_SYNC" || ss.AcksRequired != 1 || ss.Clients != 2 {
			t.Fatalf("primary semi-sync = %+v, want enabled, active, AFTER_SYNC, 1 ack, 2 clients", ss)
		}
		rst := status(t, next)
		if rst.Writable() || rst.Replica == nil || !rst.Replica.IORunning() || !rst.Replica.SQLRunning ||
			!rst.Replica.AutoPosition || rst.Replica.SourcePort != old.proc.Port() || !rst.SemiSync.ReplicaActive {
			t.Fatalf("replica status = %+v writable=%v semi-sync=%+v", rst.Replica, rst.Writable(), rst.SemiSync)
		}
		// How far the receiver read, in the primary's binlog as the primary names its files.
		if base := filepath.Base(st.BinlogBasename); st.BinlogBasename == "" || !strings.HasPrefix(rst.Replica.ReadPos, base+".") {
			t.Fatalf("replica read position %q, primary log_bin_basename %q", rst.Replica.ReadPos, st.BinlogBasename)
		}

		// Planned promotion of a replica: fence the old primary, promote, repoint the rest.
		must(t, old.ctl.Fence(ctx(t), mysqlctl.FenceOptions{}))
		waitCaughtUp(t, old, next)
		must(t, next.ctl.Promote(ctx(t), promoteOpts))
		nst := status(t, next)
		if !nst.Writable() || nst.Replica != nil {
			t.Fatalf("promoted server: writable=%v replica=%+v", nst.Writable(), nst.Replica)
		}
		for _, r := range []*node{other, old} {
			must(t, state.CheckErrant(status(t, r), nst))
			must(t, r.ctl.ConfigureReplica(ctx(t), source(next), mysqlctl.ReplicaOptions{SemiSync: true}))
		}
		insertRows(t, next, 100, 150)
		for _, r := range []*node{other, old} {
			waitCaughtUp(t, next, r)
		}

		want := tableDigest(t, next)
		if !strings.HasPrefix(want, "150 rows,") {
			t.Fatalf("new primary has %s, want 150 rows", want)
		}
		final := status(t, next).Executed
		for _, r := range []*node{other, old} {
			if got := tableDigest(t, r); got != want {
				t.Errorf("%s data %s, primary %s", r.proc.Addr(), got, want)
			}
			got := status(t, r).Executed
			if eq, err := got.Equal(final); err != nil || !eq {
				t.Errorf("%s GTIDs %s, primary %s (%v)", r.proc.Addr(), got, final, err)
			}
		}
	})
}

func TestErrantTransactionDetected(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		nodes := startNodes(t, flavor, 3) // the third keeps acking while the errant one is stopped
		wireCluster(t, nodes)
		primary, replica := nodes[0], nodes[1]
		insertRows(t, primary, 0, 10)
		waitCaughtUp(t, primary, replica)
		if err := state.CheckErrant(status(t, replica), status(t, primary)); err != nil {
			t.Fatalf("caught-up replica reported errant: %v", err)
		}

		// A write that reaches a replica directly: the classic errant transaction.
		must(t, replica.ctl.StopReplica(ctx(t)))
		must(t, replica.ctl.SetWritable(ctx(t)))
		_, err := replica.app.ExecContext(ctx(t), "INSERT INTO app.t VALUES (1000, 'errant')")
		must(t, err)
		must(t, replica.ctl.Fence(ctx(t), mysqlctl.FenceOptions{}))
		insertRows(t, primary, 10, 20) // the primary moves on; the replica is still errant

		rst, pst := status(t, replica), status(t, primary)
		errant, err := state.Errant(rst, pst)
		must(t, err)
		// MySQL names the one transaction; MariaDB's state names the replica's own server id in
		// domain 0 up to the errant seqno.
		switch want := fmt.Sprintf("0-%d-", rst.ServerID); {
		case flavor == gtid.MySQL && (errant.Count() != 1 || !strings.HasPrefix(errant.String(), rst.ServerUUID+":")):
			t.Fatalf("errant set %q, want exactly the one direct write of %s", errant, rst.ServerUUID)
		case flavor == gtid.MariaDB && !strings.HasPrefix(errant.String(), want):
			t.Fatalf("errant set %q, want the replica's own writes (%s...)", errant, want)
		}
		if err := state.CheckErrant(rst, pst); !errors.Is(err, state.ErrErrant) {
			t.Fatalf("state.CheckErrant = %v, want state.ErrErrant", err)
		}
		// The primary is not errant against the replica's view in the other direction's sense:
		// it simply has more; only the replica's own write is errant.
		back, err := state.Errant(pst, rst)
		must(t, err)
		if back.IsEmpty() {
			t.Fatalf("primary's 10 newer transactions missing from the difference")
		}
	})
}

func TestFenceStopsWriters(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		nodes := startNodes(t, flavor, 2)
		wireCluster(t, nodes)
		primary, replica := nodes[0], nodes[1]

		// A client in the middle of a transaction, and a client writing in a loop.
		tx, err := primary.app.BeginTx(ctx(t), nil)
		must(t, err)
		_, err = tx.ExecContext(ctx(t), "INSERT INTO app.t VALUES (1, 'open transaction')")
		must(t, err)
		writerErr := make(chan error, 1)
		stopWriter := make(chan struct{})
		go func() {
			for i := 100; ; i++ {
				select {
				case <-stopWriter:
					writerErr <- nil
					return
				default:
				}
				if _, err := primary.app.Exec("INSERT INTO app.t VALUES (?, 'loop')", i); err != nil {
					writerErr <- err
					return
				}
			}
		}()
		time.Sleep(200 * time.Millisecond) // let the writer commit some rows first

		must(t, primary.ctl.Fence(ctx(t), mysqlctl.FenceOptions{}))

		select {
		case err := <-writerErr:
			if err == nil || !isReadOnlyOrKilled(err) {
				t.Fatalf("looping writer ended with %v, want a read-only refusal or a killed connection", err)
			}
		case <-time.After(30 * time.Second):
			close(stopWriter)
			t.Fatal("looping writer still writing 30s after the fence")
		}
		if err := tx.Commit(); err == nil {
			t.Fatal("open transaction committed after the fence")
		}
		_, err = primary.app.ExecContext(ctx(t), "INSERT INTO app.t VALUES (2, 'after fence')")
		if !isReadOnly(err) {
			t.Fatalf("write on a fresh connection after the fence: %v, want a read-only refusal", err)
		}
		if st := status(t, primary); st.Writable() {
			t.Fatal("fenced server reports writable")
		}
		// Replication is not a client: the replica keeps its link to the fenced primary.
		if st := status(t, replica); st.Replica == nil || !st.Replica.IORunning() {
			t.Fatalf("replica lost its source after the fence: %+v", st.Replica)
		}
		waitCaughtUp(t, primary, replica)
		if got, want := tableDigest(t, replica), tableDigest(t, primary); got != want {
			t.Fatalf("replica %s, fenced primary %s", got, want)
		}
	})
}

func TestLosslessSemiSyncBlocksWithoutReplicas(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		nodes := startNodes(t, flavor, 3)
		wireCluster(t, nodes)
		primary := nodes[0]
		insertRows(t, primary, 0, 5)
		for _, r := range nodes[1:] {
			must(t, r.ctl.StopReplica(ctx(t)))
		}

		done := make(chan error, 1)
		go func() {
			_, err := primary.app.Exec("INSERT INTO app.t VALUES (42, 'needs an ack')")
			done <- err
		}()
		// The commit must still be waiting well after any async fallback would have happened.
		waitFor(t, 30*time.Second, "commit waiting for an ack", func() bool {
			return status(t, primary).SemiSync.WaitSessions >= 1
		})
		select {
		case err := <-done:
			t.Fatalf("commit returned without any replica (err=%v): semi-sync fell back to async", err)
		case <-time.After(3 * time.Second):
		}
		if ss := status(t, primary).SemiSync; !ss.SourceActive {
			t.Fatalf("semi-sync source switched itself off: %+v", ss)
		}

		must(t, nodes[1].ctl.StartReplica(ctx(t)))
		select {
		case err := <-done:
			must(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("commit still blocked 30s after a replica returned")
		}
		waitCaughtUp(t, primary, nodes[1])
		var v string
		must(t, nodes[1].app.QueryRowContext(ctx(t), "SELECT v FROM app.t WHERE id = 42").Scan(&v))
	})
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ER_OPTION_PREVENTS_STATEMENT: the server refuses because of read_only / super_read_only.
const errReadOnly = 1290

func isReadOnly(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == errReadOnly
}

func isReadOnlyOrKilled(err error) bool {
	if isReadOnly(err) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		// ER_CONNECTION_KILLED / ER_QUERY_INTERRUPTED / ER_SERVER_SHUTDOWN-style kills.
		return me.Number == 1927 || me.Number == 1317 || me.Number == 1053 || me.Number == 4031
	}
	return errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, driver.ErrBadConn)
}

// A primary cut off from its replicas has commits stuck waiting for an ack; the fence must still
// close it (the stuck commits hold the commit lock that read_only needs).
func TestFenceWhileCommitsWaitForAck(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		nodes := startNodes(t, flavor, 2)
		wireCluster(t, nodes)
		primary := nodes[0]
		insertRows(t, primary, 0, 5)
		must(t, nodes[1].ctl.StopReplica(ctx(t)))

		done := make(chan error, 3)
		for i := range 3 {
			go func() {
				_, err := primary.app.Exec("INSERT INTO app.t VALUES (?, 'needs an ack')", 100+i)
				done <- err
			}()
		}
		waitFor(t, 30*time.Second, "commits waiting for an ack", func() bool {
			return status(t, primary).SemiSync.WaitSessions >= 1
		})
		time.Sleep(500 * time.Millisecond) // let the other commits queue behind the first
		must(t, primary.ctl.Fence(ctx(t), mysqlctl.FenceOptions{}))
		if st := status(t, primary); st.Writable() {
			t.Fatal("fenced server reports writable")
		}
		// No client may hear that a commit without an ack succeeded.
		for range 3 {
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("a commit that no replica received was acknowledged")
				}
			case <-time.After(30 * time.Second):
				t.Fatal("a commit still waits for an ack 30s after the fence")
			}
		}
		// The fence leaves semi-sync as it was and lets readers back in.
		if ss := status(t, primary).SemiSync; !ss.SourceEnabled {
			t.Fatalf("semi-sync source left off by the fence: %+v", ss)
		}
		var n int
		must(t, primary.app.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM app.t").Scan(&n))
	})
}

// A replica whose applier was stopped without an error is started alone to drain its relay log.
// On MariaDB with GTID a thread that starts while both are stopped purges the relay log first
// (start_slave_threads in sql/slave.cc), so StartApplier refuses there once the receiver is
// stopped; the raw statement shows the loss it prevents. MySQL keeps its relay log.
func TestStartApplierDrainsRelayLog(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		nodes := startNodes(t, flavor, 2)
		wireCluster(t, nodes)
		primary, replica := nodes[0], nodes[1]
		root := replica.proc.RootDB(t)
		stopSQL, startSQL := "STOP REPLICA SQL_THREAD", "START REPLICA SQL_THREAD"
		if flavor == gtid.MariaDB {
			stopSQL, startSQL = "STOP SLAVE SQL_THREAD", "START SLAVE SQL_THREAD"
		}
		// received reports whether the replica received, and applied, the primary's executed set.
		received := func() (got, applied bool) {
			st := status(t, replica)
			want := status(t, primary).Executed
			got, err := st.Received().Contains(want)
			must(t, err)
			applied, err = st.Executed.Contains(want)
			must(t, err)
			return got, applied
		}
		stopApplierAndWrite := func(from, to int) {
			t.Helper()
			_, err := root.ExecContext(ctx(t), stopSQL)
			must(t, err)
			insertRows(t, primary, from, to) // semi-sync: acknowledged once the replica received them
			if got, applied := received(); !got || applied {
				t.Fatalf("after writes with the applier stopped: received %t, applied %t; want true, false", got, applied)
			}
		}

		// Receiver running: the applier starts and drains the relay log.
		stopApplierAndWrite(0, 20)
		must(t, replica.ctl.StartApplier(ctx(t)))
		waitCaughtUp(t, primary, replica)
		must(t, replica.ctl.StartApplier(ctx(t))) // running already: nothing to do

		// StopIOThread (a failover's quarantine or prepare) never leaves both threads stopped with
		// an unapplied relay log on MariaDB: it starts the applier first.
		if flavor == gtid.MariaDB {
			stopApplierAndWrite(20, 30)
			must(t, replica.ctl.StopIOThread(ctx(t)))
			if rep := status(t, replica).Replica; rep == nil || !rep.SQLRunning {
				t.Fatalf("MariaDB StopIOThread left the stopped applier stopped: %+v", rep)
			}
			waitCaughtUp(t, primary, replica)
			_, err := root.ExecContext(ctx(t), "START SLAVE IO_THREAD")
			must(t, err)
		}

		// Receiver stopped too, by hand.
		stopApplierAndWrite(30, 40)
		stopIO := "STOP REPLICA IO_THREAD"
		if flavor == gtid.MariaDB {
			stopIO = "STOP SLAVE IO_THREAD"
		}
		_, err := root.ExecContext(ctx(t), stopIO)
		must(t, err)
		err = replica.ctl.StartApplier(ctx(t))
		if flavor == gtid.MySQL {
			must(t, err)
			waitCaughtUp(t, primary, replica)
			return
		}
		if !errors.Is(err, mysqlctl.ErrRelayLogAtRisk) {
			t.Fatalf("StartApplier with both threads stopped on MariaDB: %v, want ErrRelayLogAtRisk", err)
		}
		if got, _ := received(); !got {
			t.Fatal("the refused StartApplier lost the relay log")
		}
		// What the refusal prevents: the relay log is purged and the received position falls
		// back to what was applied; with the source gone those writes would be lost.
		before := status(t, replica).Received()
		_, err = root.ExecContext(ctx(t), startSQL)
		must(t, err)
		time.Sleep(time.Second)
		after := status(t, replica)
		t.Logf("MariaDB START SLAVE SQL_THREAD with the receiver stopped: received %s -> %s, executed %s",
			before, after.Received(), after.Executed)
		if got, applied := received(); got || applied {
			t.Fatalf("MariaDB kept its relay log (received %t, applied %t): StartApplier's refusal may be lifted", got, applied)
		}
	})
}

// A receiver blocked on a silent source makes STOP ... IO_THREAD wait for its network timeout
// (on MariaDB about 2 s in every case). StopIOThread returns before that, once the stop is under
// way: then nothing more may be received, even when the source comes back and writes at once.
func TestStopIOThreadOnSilentSource(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		nodes := startNodes(t, flavor, 2)
		wireCluster(t, nodes)
		primary, replica := nodes[0], nodes[1]
		insertRows(t, primary, 1, 2)
		waitCaughtUp(t, primary, replica)

		cut := []string{"INPUT", "-d", primary.proc.Host(), "-p", "tcp", "-j", "DROP"}
		if out, err := exec.Command("iptables", append([]string{"-I"}, cut...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables: %v: %s (install with `make deps`)", err, out)
		}
		var healOnce sync.Once
		heal := func() { healOnce.Do(func() { exec.Command("iptables", append([]string{"-D"}, cut...)...).Run() }) }
		t.Cleanup(heal)
		time.Sleep(300 * time.Millisecond) // the receiver waits in a read from the silent source
		begin := time.Now()
		must(t, replica.ctl.StopIOThread(ctx(t)))
		stopped := status(t, replica)
		t.Logf("%s: StopIOThread returned after %s with the receiver %q", flavor, time.Since(begin).Round(time.Millisecond), stopped.Replica.IOState)

		// Stopping it again, here and from another client (the leader, while the replica's own
		// agent stops it), joins the stop under way: each statement more would wait behind it
		// holding a connection, and a pass repeating it used up the pool.
		leader, err := mysqlctl.Open(ctx(t), mysqlctl.Config{Addr: replica.proc.Addr(), User: harness.RootUser, Password: harness.RootPassword})
		must(t, err)
		defer leader.Close()
		for _, again := range []*mysqlctl.Server{replica.ctl, leader, replica.ctl} {
			must(t, again.StopIOThread(ctx(t)))
		}
		var stops int
		must(t, replica.ctl.DB().QueryRowContext(ctx(t), "SELECT COUNT(*) FROM information_schema.PROCESSLIST "+
			"WHERE INFO LIKE 'STOP % IO_THREAD'").Scan(&stops))
		if now := status(t, replica); stops > 1 && now.Replica.IOState != "No" {
			t.Fatalf("%d receiver stops running after stopping it four times, want 1", stops)
		}

		// The source is back and commits at once (the commit waits for an ack no replica gives).
		heal()
		go func() {
			c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			primary.app.ExecContext(c, "INSERT INTO app.t VALUES (2, 'after the stop')")
		}()
		deadline := time.Now().Add(30 * time.Second)
		for status(t, replica).Replica.IOState != "No" {
			if time.Now().After(deadline) {
				t.Fatal("the receiver never stopped")
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s: the receiver stopped %s after the stop began", flavor, time.Since(begin).Round(10*time.Millisecond))
		if flavor == gtid.MariaDB {
			// Its stopped semi-sync receiver connects to the source to end its dump thread, and
			// the stop waits that connect out: 2 s against a silent source by default, 1 s here.
			var limit int
			must(t, replica.ctl.DB().QueryRowContext(ctx(t), "SELECT @@GLOBAL.rpl_semi_sync_slave_kill_conn_timeout").Scan(&limit))
			if limit != 1 {
				t.Errorf("rpl_semi_sync_slave_kill_conn_timeout = %d on a semi-sync replica, want 1", limit)
			}
		}
		time.Sleep(500 * time.Millisecond)
		final := status(t, replica).Replica.Received
		if same, err := final.Equal(stopped.Replica.Received); err != nil || !same {
			t.Fatalf("received %s after StopIOThread returned, %s when the stop completed", stopped.Replica.Received, final)
		}
	})
}

// A heartbeat commits through the binlog to the replicas, waits while no replica can ack it
// (what the agent times as a stall), and writes nothing on a fenced server: MariaDB's read_only
// does not bind the root account that writes it, the statement's own check does.
func TestWriteHeartbeat(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		nodes := startNodes(t, flavor, 2)
		wireCluster(t, nodes)
		primary, replica := nodes[0], nodes[1]
		must(t, primary.ctl.WriteHeartbeat(ctx(t), "db1", time.Now()))
		waitCaughtUp(t, primary, replica)
		var n int
		must(t, replica.ctl.DB().QueryRowContext(ctx(t), "SELECT COUNT(*) FROM "+mysqlctl.HeartbeatTable).Scan(&n))
		if n != 1 {
			t.Fatalf("replica has %d heartbeat rows, want 1", n)
		}

		must(t, replica.ctl.StopReplica(ctx(t)))
		waitCtx, cancel := context.WithTimeout(ctx(t), 3*time.Second)
		err := primary.ctl.WriteHeartbeat(waitCtx, "db1", time.Now())
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("heartbeat without an acking replica: %v, want it still waiting at the deadline", err)
		}
		must(t, replica.ctl.StartReplica(ctx(t)))
		waitCaughtUp(t, primary, replica)

		must(t, primary.ctl.Fence(ctx(t), mysqlctl.FenceOptions{}))
		before := status(t, primary).Executed
		if err := primary.ctl.WriteHeartbeat(ctx(t), "db1", time.Now()); !errors.Is(err, mysqlctl.ErrNotWritten) {
			t.Fatalf("heartbeat on a fenced server: %v, want ErrNotWritten", err)
		}
		if same, err := status(t, primary).Executed.Equal(before); err != nil || !same {
			t.Fatalf("a heartbeat refused on a fenced server still committed (before: %s, err %v)", before, err)
		}
	})
}

// A source that dies while sending a transaction leaves its replicas' relay logs ending inside
// it. Whatever was received up to there is promoted, and the half-received transaction (never
// acknowledged: its ack needed all of it) is dropped. MySQL's multi-threaded applier sits in the
// middle of that group, waiting for events that never come, and a STOP REPLICA there defers
// for 60 s (SLAVE_WAIT_GROUP_DONE) hoping the group completes: the promotion must not wait.
func TestPromoteWithHalfReceivedTransaction(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		nodes := startNodes(t, flavor, 2)
		wireCluster(t, nodes)
		primary, replica := nodes[0], nodes[1]
		_, err := primary.app.ExecContext(ctx(t), "CREATE TABLE app.big (id INT PRIMARY KEY, pad LONGBLOB)")
		must(t, err)
		insertRows(t, primary, 1, 151)
		waitCaughtUp(t, primary, replica)
		before := status(t, replica).Replica.Received
		replicaRoot := replica.proc.RootDB(t)
		space := func() int64 {
			var n int64
			row, err := replicaRoot.QueryContext(ctx(t), replicaStatusStatement(flavor))
			must(t, err)
			defer row.Close()
			cols, _ := row.Columns()
			vals := make([]any, len(cols))
			for i := range vals {
				vals[i] = new(sql.NullString)
			}
			if !row.Next() {
				t.Fatal("no replica status")
			}
			must(t, row.Scan(vals...))
			for i, c := range cols {
				if c == "Relay_Log_Space" {
					fmt.Sscan(vals[i].(*sql.NullString).String, &n)
				}
			}
			return n
		}
		spaceBefore := space()

		// The replica is frozen while the primary commits a 65 MB transaction, so the primary's
		// sender fills the socket buffers and blocks; then the primary freezes for good and the
		// replica thaws: it receives only what the buffers held. The primary freezes only once
		// its sender has written a few MB: on a loaded machine the commit waited for its ack
		// before the sender had written a MB (a CI run), and the replica then never got one.
		primaryRoot := primary.proc.RootDB(t)
		sent := func() int64 {
			var name string
			var n int64
			must(t, primaryRoot.QueryRowContext(ctx(t), "SHOW GLOBAL STATUS LIKE 'Bytes_sent'").Scan(&name, &n))
			return n
		}
		must(t, replica.proc.Pause())
		t.Cleanup(func() { replica.proc.Resume() })
		sentBefore := sent()
		go func() {
			c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			primary.app.ExecContext(c, "INSERT INTO app.big SELECT a.id * 1000 + b.id, REPEAT('x', 3000) FROM app.t a, app.t b")
		}()
		waitFor(t, time.Minute, "the big transaction waiting for its ack, partly sent", func() bool {
			st := status(t, primary)
			return st.SemiSync.WaitSessions > 0 && sent() > sentBefore+2<<20
		})
		t.Logf("%s: %d bytes sent when the primary froze", flavor, sent()-sentBefore)
		must(t, primary.proc.Pause())
		t.Cleanup(func() { primary.proc.Resume() })
		must(t, replica.proc.Resume())
		waitFor(t, time.Minute, "part of the transaction in the relay log", func() bool { return space() > spaceBefore+1<<20 })

		begin := time.Now()
		c, cancel := context.WithTimeout(t.Context(), 40*time.Second) // the server's deferral is 60 s
		defer cancel()
		must(t, replica.ctl.Promote(c, promoteOpts))
		t.Logf("%s: promoted in %s", flavor, time.Since(begin).Round(time.Millisecond))
		st := status(t, replica)
		if !st.Writable() || st.Replica != nil {
			t.Fatalf("not a writable primary after Promote: read_only %v, replica %+v", st.ReadOnly, st.Replica)
		}
		var rows int
		must(t, replica.app.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM app.big").Scan(&rows))
		if rows != 0 {
			t.Fatalf("%d rows of the half-received transaction were applied", rows)
		}
		if ok, err := st.Executed.Contains(before); err != nil || !ok {
			t.Fatalf("executed %s lost some of what was received before: %s", st.Executed, before)
		}
	})
}

func replicaStatusStatement(flavor gtid.Flavor) string {
	if flavor == gtid.MariaDB {
		return "SHOW SLAVE STATUS"
	}
	return "SHOW REPLICA STATUS"
}
