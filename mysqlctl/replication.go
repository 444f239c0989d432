package mysqlctl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// Server error numbers mysqlctl branches on.
const (
	errLockWaitTimeout = 1205 // ER_LOCK_WAIT_TIMEOUT
	errNoSuchThread    = 1094 // ER_NO_SUCH_THREAD
)

// Source is where a replica pulls from.
type Source struct {
	Host     string
	Port     int
	User     string
	Password string
}

// ReplicaOptions tune how a replica follows its source. Zero values take defaults suited to fast
// failover: a heartbeat every 500 ms, and a connection silent for 2 s counts as lost (the server
// default, 60 s, would keep reporting a vanished source as connected for a minute, and the
// replicas' view is one of the votes that a primary is down). Reconnects come every second.
type ReplicaOptions struct {
	ConnectRetry time.Duration // default 1s
	Heartbeat    time.Duration // default 500ms
	NetTimeout   time.Duration // default 2s; whole seconds, above Heartbeat
	SemiSync     bool          // acknowledge to a semi-sync source
}

// EnsureReplicationUser creates or updates the account replicas connect with. Run it on the
// writable primary: the statements are binlogged so every replica gets the same account, and no
// replica ever holds a transaction of its own.
func (s *Server) EnsureReplicationUser(ctx context.Context, user, password string) error {
	if err := s.exec(ctx, "create replication user", "CREATE USER IF NOT EXISTS ?@'%' IDENTIFIED BY ?", user, password); err != nil {
		return err
	}
	if err := s.exec(ctx, "set replication user password", "ALTER USER ?@'%' IDENTIFIED BY ?", user, password); err != nil {
		return err
	}
	return s.exec(ctx, "grant replication", "GRANT REPLICATION SLAVE ON *.* TO ?@'%'", user)
}

// ConfigureReplica points the server at src with GTID auto-positioning and starts replication.
// It is idempotent. The caller checks for errant GTIDs first (state.Errant).
func (s *Server) ConfigureReplica(ctx context.Context, src Source, opts ReplicaOptions) error {
	if opts.ConnectRetry <= 0 {
		opts.ConnectRetry = time.Second
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 500 * time.Millisecond
	}
	if opts.NetTimeout <= 0 {
		opts.NetTimeout = 2 * time.Second
	}
	d := s.dialect
	netTimeout := max(1, int(opts.NetTimeout.Round(time.Second)/time.Second))
	if float64(netTimeout) <= opts.Heartbeat.Seconds() {
		return fmt.Errorf("mysql %s: replica net timeout %ds must exceed the heartbeat %s", s.addr, netTimeout, opts.Heartbeat)
	}
	if err := s.StopReplica(ctx); err != nil {
		return err
	}
	if d.prepareGTIDPosition != "" {
		if err := s.exec(ctx, "set replica GTID position", d.prepareGTIDPosition); err != nil {
			return err
		}
	}
	if err := s.setGlobal(ctx, d.netTimeoutVar, netTimeout); err != nil {
		return err
	}
	retry := max(1, int(opts.ConnectRetry.Round(time.Second)/time.Second))
	if err := s.exec(ctx, "change replication source", d.changeSource,
		src.Host, src.Port, src.User, src.Password, retry, opts.Heartbeat.Seconds()); err != nil {
		return err
	}
	if err := s.setSemiSyncReplica(ctx, opts.SemiSync); err != nil {
		return err
	}
	return s.StartReplica(ctx)
}

// StartReplica starts both replication threads.
func (s *Server) StartReplica(ctx context.Context) error {
	return s.exec(ctx, "start replica", s.dialect.startReplica)
}

// StopReplica stops both replication threads, and does not wait for the transaction the
// applier is in to complete: every caller either drained what was complete first (a
// promotion), fetches it again from a new source (a repoint), or discards the data (an errant
// member, a re-seed).
//
// This matters when the relay log ends inside a transaction whose source died while sending it.
// MySQL's multi-threaded applier then sits in the middle of that group, and STOP REPLICA
// defers for 60 s (SLAVE_WAIT_GROUP_DONE) in case the rest arrives, which it never will; the
// group was never acknowledged either, since its ack needed all of it. A KILL of the
// coordinator is accepted at once when no stop request came first, so the applier is killed
// first and the stop finds it gone; the kill's applier error is cleared by the next START or
// RESET. Without performance_schema the thread cannot be found, and the stop may wait.
func (s *Server) StopReplica(ctx context.Context) error {
	if s.dialect.applierThread != "" {
		var id int64
		err := s.db.QueryRowContext(ctx, s.dialect.applierThread).Scan(&id)
		switch {
		case errors.Is(err, sql.ErrNoRows): // not running
		case err != nil:
			return s.errorf("find the applier thread", err)
		default:
			if _, err := s.db.ExecContext(ctx, "KILL ?", id); err != nil && serverErrorNumber(err) != errNoSuchThread {
				return s.errorf("kill the applier thread", err)
			}
			if err := s.awaitThreadExit(ctx, id); err != nil {
				return err
			}
		}
	}
	return s.exec(ctx, "stop replica", s.dialect.stopReplica)
}

// StopIOThread stops receiving from the source while the relay log keeps being applied: the first
// step of a promotion, so the received set stops moving and can be waited for.
//
// It returns as soon as the receiver can queue nothing more, which is not always when the
// statement returns. A receiver blocked on a silent source (a read of a dropped connection, or a
// connect) leaves the statement waiting until that call times out: up to the replica net
// timeout, and on MariaDB with semi-sync about 2 s in every case (its stopped receiver connects
// to the source to end its dump thread; see setSemiSyncReplica). But the stop raises the
// receiver's kill flag first, and the receiver checks it after every read and every connect
// before it queues anything, so once the statement is in its "Killing ..." stage, what was
// received is final. The statement is then left to finish on its own connection.
//
// A stop already under way, from this handle or any other client (the replica's own agent and
// the Raft leader both stop it in a failover), is joined, not repeated: a second statement
// waits behind the first for as long as the receiver takes to die, holding a connection of the
// pool meanwhile, and each pass that repeated it took one more until the probes had none.
//
// On MariaDB a replica whose applier is stopped without an error has it started first: with both
// threads stopped, the next start of either purges the relay log (StartApplier), and what it
// received but did not apply, perhaps the only copy of an acknowledged write, would be lost with
// its source. Stopping the receiver is a failover's step, when such an applier is started anyway.
func (s *Server) StopIOThread(ctx context.Context) error {
	if err := s.keepRelayLogApplied(ctx); err != nil {
		return err
	}
	for {
		id, stage, err := s.receiverStop(ctx, 0)
		if err != nil {
			return err
		}
		if id == 0 {
			break
		}
		if killing(stage) {
			return nil
		}
		// Joined: done once it is killing; if it ended first, look again (it may have failed).
		if err := s.awaitStopKilling(ctx, id, nil); !errors.Is(err, errStopEnded) {
			return err
		}
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.errorf("stop IO thread: connect", err)
	}
	var id int64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		conn.Close()
		return s.errorf("stop IO thread: read connection id", err)
	}
	done := make(chan error, 1)
	go func() {
		// Not the caller's ctx: cancelling would drop the connection, not the stop, and the
		// caller is gone by then anyway.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.maxWait)
		defer cancel()
		_, err := conn.ExecContext(stopCtx, s.dialect.stopIOThread)
		conn.Close()
		done <- err
	}()
	return s.awaitStopKilling(ctx, id, done)
}

// errStopEnded: the stop statement being followed ended before its stage was seen killing.
var errStopEnded = errors.New("the stop statement ended")

// receiverStop reads the stage of a client's STOP of this server's receiver still running: the
// one on connection id, or with id 0 the first of any other connection; it returns id 0 when
// there is none. Only a stop of the receiver alone counts: a stop of both threads stops the
// applier first, and the receiver may still be queueing while it is "Killing". The statement is
// matched, not just the connection: another client's connection outlives its statement.
func (s *Server) receiverStop(ctx context.Context, id int64) (int64, string, error) {
	var running int64
	var stage sql.NullString
	err := s.db.QueryRowContext(ctx, "SELECT ID, STATE FROM information_schema.PROCESSLIST "+
		"WHERE COMMAND = 'Query' AND ID <> CONNECTION_ID() AND (? = 0 OR ID = ?) AND UPPER(INFO) REGEXP ? "+
		"ORDER BY ID LIMIT 1", id, id, receiverStopPattern).Scan(&running, &stage)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, "", nil
	case err != nil:
		return 0, "", s.errorf("stop IO thread: read the stage of a stop", err)
	}
	return running, stage.String, nil
}

// killing: a stop in this stage has raised the receiver's kill flag ("Killing slave" on MariaDB,
// "Killing replica" on MySQL).
func killing(stage string) bool { return strings.HasPrefix(stage, "Killing ") }

// receiverStopPattern matches both dialects' statement for the default channel, in any spacing.
const receiverStopPattern = "^[[:space:]]*STOP[[:space:]]+(SLAVE|REPLICA)[[:space:]]+IO_THREAD[[:space:]]*;?[[:space:]]*$"

// awaitStopKilling follows the receiver stop running on connection id until the receiver can
// queue nothing more (its "Killing ..." stage), or the statement ends: done carries the result of
// this handle's own statement; a statement seen gone without one is errStopEnded.
func (s *Server) awaitStopKilling(ctx context.Context, id int64, done <-chan error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		running, stage, err := s.receiverStop(ctx, id)
		switch {
		case err != nil:
			return err
		case running == 0:
			if done == nil {
				return errStopEnded
			}
			// This handle's statement has not started or has ended: its result comes on done.
		case killing(stage):
			return nil
		}
		select {
		case err := <-done:
			if err != nil {
				return s.errorf("stop IO thread", err)
			}
			return nil
		case <-ctx.Done():
			return s.errorf("stop IO thread", ctx.Err())
		case <-tick.C:
		}
	}
}

// keepRelayLogApplied starts a MariaDB replica's applier that is stopped without an error while
// its receiver still runs, before StopIOThread stops the receiver.
func (s *Server) keepRelayLogApplied(ctx context.Context) error {
	if s.flavor != gtid.MariaDB {
		return nil
	}
	st, err := s.Status(ctx)
	if err != nil {
		return fmt.Errorf("mysql %s: stop IO thread: %w", s.addr, err)
	}
	if rep := st.Replica; rep == nil || rep.SQLRunning || rep.LastSQLErrno != 0 || rep.IOState == "No" {
		return nil
	}
	return s.exec(ctx, "stop IO thread: start the stopped applier first", s.dialect.startApplier)
}

// ErrRelayLogAtRisk: starting the applier would discard the relay log it is meant to apply.
var ErrRelayLogAtRisk = errors.New("both replication threads are stopped: on MariaDB with GTID, starting either purges the relay log")

// StartApplier starts the applier (SQL thread) alone, so a replica whose applier was stopped
// without an error drains its relay log while the receiver stays as it is; it does nothing when
// the applier runs or the server is no replica.
//
// MariaDB in GTID mode purges every relay log when a replication thread starts while both are
// stopped (start_slave_threads in sql/slave.cc: relay logs are "not very useful when using
// GTID"), and Gtid_IO_Pos falls back to gtid_slave_pos: whatever was received but not applied is
// gone, and with the source down it cannot be fetched again. There StartApplier refuses with
// ErrRelayLogAtRisk unless the receiver thread runs (connected or still trying to connect).
// MySQL keeps its relay log on START REPLICA SQL_THREAD.
func (s *Server) StartApplier(ctx context.Context) error {
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	rep := st.Replica
	if rep == nil || rep.SQLRunning {
		return nil
	}
	if s.flavor == gtid.MariaDB && rep.IOState == "No" {
		return fmt.Errorf("mysql %s: start applier: %w", s.addr, ErrRelayLogAtRisk)
	}
	return s.exec(ctx, "start applier", s.dialect.startApplier)
}

// WaitApplied blocks until the server has applied every transaction in set, or returns
// ErrWaitTimeout when ctx's deadline (or the read timeout) comes first.
func (s *Server) WaitApplied(ctx context.Context, set gtid.Set) error {
	if set.IsEmpty() {
		return nil
	}
	arg := set.String()
	if s.flavor == gtid.MariaDB {
		arg = set.MariaDBPosition()
	}
	var result *int64
	if err := s.db.QueryRowContext(ctx, s.dialect.waitApplied, arg, s.waitSeconds(ctx)).Scan(&result); err != nil {
		return s.errorf("wait for GTIDs "+arg, err)
	}
	if result == nil || *result != 0 {
		return fmt.Errorf("mysql %s: %w: %s", s.addr, ErrWaitTimeout, arg)
	}
	return nil
}

// WaitRelayLogApplied stops the IO thread and waits until everything it received is applied:
// after it returns, Executed equals the received set and the server is ready to be promoted.
func (s *Server) WaitRelayLogApplied(ctx context.Context) (gtid.Set, error) {
	if err := s.StopIOThread(ctx); err != nil {
		return gtid.Set{}, err
	}
	st, err := s.Status(ctx)
	if err != nil {
		return gtid.Set{}, err
	}
	received := st.Received()
	if err := s.WaitApplied(ctx, received); err != nil {
		return received, err
	}
	return received, nil
}

// awaitThreadExit waits until the killed applier thread id is gone. KILL only flags the thread:
// a stop issued before the thread has seen the flag would make it defer after all.
func (s *Server) awaitThreadExit(ctx context.Context, id int64) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int
		if err := s.db.QueryRowContext(ctx, s.dialect.applierThreadAlive, id).Scan(&n); err != nil {
			return s.errorf("wait for the killed applier thread to exit", err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return s.errorf("wait for the killed applier thread to exit", ctx.Err())
		case <-tick.C:
		}
	}
}

// PromoteOptions say how the new primary runs.
type PromoteOptions struct {
	SemiSync SemiSyncConfig
	// ReplUser and ReplPassword, when set, are ensured as the replication account before
	// semi-sync is switched on: replicas need it to connect, and under lossless semi-sync the
	// account's creation would otherwise wait for an ack no replica can give.
	ReplUser, ReplPassword string
}

// Promote makes the server a writable primary: receive nothing more, apply all it received, drop
// its replication config, become a (lossless) semi-sync source, and only then open writes. The
// caller must already have committed this server as primary of the new epoch.
func (s *Server) Promote(ctx context.Context, opts PromoteOptions) error {
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	if st.Replica != nil {
		if _, err := s.WaitRelayLogApplied(ctx); err != nil {
			return err
		}
		if err := s.StopReplica(ctx); err != nil {
			return err
		}
		if err := s.exec(ctx, "reset replica", s.dialect.resetReplicaAll); err != nil {
			return err
		}
	}
	if err := s.adminWritesOnly(ctx); err != nil {
		return err
	}
	if opts.ReplUser != "" {
		if err := s.EnsureReplicationUser(ctx, opts.ReplUser, opts.ReplPassword); err != nil {
			return err
		}
	}
	if err := s.ensureHeartbeatTable(ctx); err != nil {
		return err
	}
	if err := s.ConfigureSemiSync(ctx, opts.SemiSync); err != nil {
		return err
	}
	return s.SetWritable(ctx)
}

// adminWritesOnly lets this administrative account write while clients are still kept out, for
// what Promote creates before opening (the replication account, the heartbeat table): semi-sync
// source off (ConfigureReplica and fresh servers leave it off), so those writes wait for no ack
// that no replica can give yet, and read_only on, which binds client accounts but not this one.
func (s *Server) adminWritesOnly(ctx context.Context) error {
	vars, err := s.nameValues(ctx, semiSyncVarsStatement)
	if err != nil {
		return s.errorf("read semi-sync variables", err)
	}
	if isOn(vars[s.dialect.semiSource+"enabled"]) {
		if err := s.setGlobal(ctx, s.dialect.semiSource+"enabled", "OFF"); err != nil {
			return err
		}
	}
	if err := s.setGlobal(ctx, "read_only", "ON"); err != nil {
		return err
	}
	if s.flavor == gtid.MySQL {
		return s.setGlobal(ctx, "super_read_only", "OFF")
	}
	return nil
}

// SetWritable turns writes on. Only the agent of the committed primary, holding a fresh lease, calls it.
func (s *Server) SetWritable(ctx context.Context) error {
	for _, v := range s.dialect.unfenceVars {
		if err := s.exec(ctx, "set "+v+" OFF", "SET GLOBAL "+v+" = OFF"); err != nil {
			return err
		}
	}
	return nil
}

// FenceOptions tune Fence.
type FenceOptions struct {
	// LockWait bounds how long setting read-only may wait for in-flight commits (default 1s).
	// A commit stuck waiting for a semi-sync ack holds the lock, so on timeout Fence kills client
	// connections first and then sets read-only again (on MySQL, with the killed sessions' ack
	// waits released; see releaseAckWaiters).
	LockWait time.Duration
}

// Fence refuses all writes (super_read_only first, so nothing can slip in) and then kills every
// client connection except replication and its own, so no transaction stays open on a fenced server.
// It is safe to call repeatedly.
func (s *Server) Fence(ctx context.Context, opts FenceOptions) error {
	if opts.LockWait <= 0 {
		opts.LockWait = time.Second
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.errorf("fence: get connection", err)
	}
	defer conn.Close()
	lockWait := max(1, int(opts.LockWait.Round(time.Second)/time.Second))
	if _, err := conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = ?", lockWait); err != nil {
		return s.errorf("fence: set lock_wait_timeout", err)
	}
	setReadOnly := func() error {
		for _, v := range s.dialect.fenceVars {
			if _, err := conn.ExecContext(ctx, "SET GLOBAL "+v+" = ON"); err != nil {
				return err
			}
		}
		return nil
	}
	var ownID int64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&ownID); err != nil {
		return s.errorf("fence: read own connection id", err)
	}
	done := make(chan error, 1)
	go func() { done <- setReadOnly() }()
	var fenced error
	select {
	case fenced = <-done:
	case <-time.After(fenceGrace):
		// Commits waiting for a semi-sync ack hold the lock that read-only needs, and a primary
		// cut off from its replicas gets no ack: the statement would wait out lock_wait_timeout,
		// a second in which the server is writable beside the new primary (seen in a benchmark).
		// The pending statement already holds new writers back, so the waiters are killed now.
		fenced = s.unblockFence(ctx, ownID, done)
	}
	if fenced != nil && serverErrorNumber(fenced) != errLockWaitTimeout {
		return s.errorf("fence: set read-only", fenced)
	}
	if err := s.killClients(ctx, conn, ownID); err != nil {
		return err
	}
	if fenced != nil {
		err := setReadOnly()
		if serverErrorNumber(err) == errLockWaitTimeout && s.dialect.killKeepsAckWait {
			err = s.releaseAckWaiters(ctx, conn, setReadOnly)
		}
		if err != nil {
			return s.errorf("fence: set read-only after killing clients", err)
		}
	}
	return nil
}

// releaseAckWaiters runs setReadOnly (the read-only statement, or a wait for the pending one)
// while the sessions that still wait for a semi-sync ack are let go. MySQL keeps a killed session waiting for its ack, holding the commit lock that read-only
// needs. Its client is already disconnected, so finishing that commit acknowledges nothing to anyone
// (and the transaction is in the binlog already). offline_mode keeps new client sessions out while
// the source side of semi-sync is off, so no fresh write can commit unacknowledged in between;
// both are restored before returning.
func (s *Server) releaseAckWaiters(ctx context.Context, conn *sql.Conn, setReadOnly func() error) (err error) {
	// Deferred restores run in reverse: semi-sync is back before clients are let in again.
	for _, v := range []struct {
		name string
		on   bool
	}{{"offline_mode", true}, {s.dialect.semiSource + "enabled", false}} {
		var was bool
		if e := conn.QueryRowContext(ctx, "SELECT @@GLOBAL."+v.name).Scan(&was); e != nil {
			return fmt.Errorf("read %s: %w", v.name, e)
		}
		if was == v.on {
			continue
		}
		if _, e := conn.ExecContext(ctx, "SET GLOBAL "+v.name+" = ?", v.on); e != nil {
			return fmt.Errorf("set %s = %t: %w", v.name, v.on, e)
		}
		defer func() {
			if _, e := conn.ExecContext(ctx, "SET GLOBAL "+v.name+" = ?", was); e != nil {
				err = errors.Join(err, fmt.Errorf("restore %s: %w", v.name, e))
			}
		}()
	}
	return setReadOnly()
}

// fenceGrace is how long a fence's read-only statement may wait before the clients holding it
// up are killed.
const fenceGrace = 50 * time.Millisecond

// unblockFence frees the read-only statement pending on connection spare, over a connection of
// its own: it kills the clients and, where a killed session keeps waiting for its ack (MySQL),
// lets the waiters go; then it returns the statement's result.
func (s *Server) unblockFence(ctx context.Context, spare int64, done <-chan error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return errors.Join(fmt.Errorf("get a second connection: %w", err), <-done)
	}
	defer conn.Close()
	var ownID int64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&ownID); err != nil {
		return errors.Join(fmt.Errorf("read own connection id: %w", err), <-done)
	}
	if err := s.killClients(ctx, conn, ownID, spare); err != nil {
		return errors.Join(err, <-done)
	}
	if !s.dialect.killKeepsAckWait {
		return <-done
	}
	select {
	case err := <-done:
		return err
	case <-time.After(fenceGrace):
	}
	return s.releaseAckWaiters(ctx, conn, func() error { return <-done })
}

// killClients kills, over conn, every connection but replication threads, system threads and
// spare (conn's own id among them); the pool's other connections are clients like any other.
func (s *Server) killClients(ctx context.Context, conn *sql.Conn, spare ...int64) error {
	rows, err := conn.QueryContext(ctx, "SELECT ID, USER, COMMAND FROM information_schema.PROCESSLIST")
	if err != nil {
		return s.errorf("fence: list connections", err)
	}
	var victims []int64
	for rows.Next() {
		var (
			id            int64
			user, command string
		)
		if err := rows.Scan(&id, &user, &command); err != nil {
			rows.Close()
			return s.errorf("fence: read connection list", err)
		}
		if s.isServerThread(user, command) || slices.Contains(spare, id) {
			continue
		}
		victims = append(victims, id)
	}
	if err := rows.Close(); err != nil {
		return s.errorf("fence: read connection list", err)
	}
	for _, id := range victims {
		if _, err := conn.ExecContext(ctx, "KILL CONNECTION ?", id); err != nil && serverErrorNumber(err) != errNoSuchThread {
			return s.errorf(fmt.Sprintf("fence: kill connection %d", id), err)
		}
	}
	return nil
}

func (s *Server) isServerThread(user, command string) bool {
	switch user {
	case "system user", "event_scheduler":
		return true
	}
	if command == "Daemon" {
		return true
	}
	for _, c := range s.dialect.replicationCommands {
		if strings.EqualFold(command, c) {
			return true
		}
	}
	return false
}
