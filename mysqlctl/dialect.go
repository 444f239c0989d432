package mysqlctl

import "github.com/shoal-db/shoal/mysqlctl/gtid"

// dialect is the one place where MySQL and MariaDB statements and names differ. Everything else in
// mysqlctl is written once against these fields.
type dialect struct {
	showReplicaStatus string
	startReplica      string
	stopReplica       string
	stopIOThread      string
	// startApplier starts only the SQL (applier) thread; the receiver is left as it is.
	startApplier    string
	resetReplicaAll string
	// changeSource points replication at a source with GTID auto-positioning. Arguments in order:
	// host, port, user, password, connect retry (s), heartbeat period (s).
	changeSource string
	// prepareGTIDPosition runs before changeSource (replica stopped) so the server asks its new
	// source for everything after what it has, its own past writes included.
	prepareGTIDPosition string
	// netTimeoutVar is how long a replica waits for data or a heartbeat before it reconnects.
	netTimeoutVar string
	// identity returns server_id, server_uuid, read_only, super_read_only, the executed GTIDs and
	// log_bin_basename.
	// Executed is MySQL's gtid_executed and MariaDB's gtid_binlog_state (per domain and server, with
	// log_slave_updates), the set errant-transaction checks compare.
	identity string
	// waitApplied takes (gtid set or position text, timeout seconds) and returns 0 when applied.
	waitApplied string
	// fenceVars are set ON to refuse writes; MariaDB has no super_read_only, so read_only is its
	// fence and accounts holding READ ONLY ADMIN are out of its reach (documented).
	fenceVars []string
	// unfenceVars are set OFF to accept writes, in this order.
	unfenceVars []string

	// Column names of the replica status row.
	colSourceHost, colSourcePort, colIORunning, colSQLRunning, colLag string
	// colReceived is MySQL's Retrieved_Gtid_Set or MariaDB's Gtid_IO_Pos.
	colReceived string
	// colAutoPosition reads "1" (MySQL Auto_Position) or "Slave_Pos"/"Current_Pos" (MariaDB Using_Gtid).
	colAutoPosition string
	// colReadFile and colReadPos are how far the receiver has read its source's binlog.
	colReadFile, colReadPos string

	// Semi-sync variable and status name prefixes, e.g. "rpl_semi_sync_source_".
	semiSource, semiReplica             string
	semiSourceStatus, semiReplicaStatus string
	// semiWaitNoReplicaVar keeps commits waiting even while no semi-sync replica is connected.
	semiWaitNoReplicaVar string
	// semiAckCountVar is empty where the server always waits for exactly one ack (MariaDB).
	semiAckCountVar string
	// semiPlugins maps plugin name to library for servers that load semi-sync as plugins.
	semiPlugins map[string]string
	// semiKillConnTimeoutVar bounds the connection a semi-sync receiver opens, when it is
	// stopped, to end its dump thread on the source (MariaDB). Against a silent source the
	// connect waits that long, and the stop with it; empty where no such connection is made.
	semiKillConnTimeoutVar string

	// killKeepsAckWait: a killed session stays in its semi-sync ack wait, holding the commit lock
	// (MySQL); MariaDB ends the wait on kill.
	killKeepsAckWait bool

	// applierThread returns the processlist id of the applier (coordinator) thread, no row when
	// it is not running; empty where a stop of the applier never waits for a half-received group.
	applierThread string
	// applierThreadAlive counts the threads with a processlist id (the killed applier's).
	applierThreadAlive string

	// replicationCommands are processlist COMMAND values of replication threads, never killed by a fence.
	replicationCommands []string
}

var mysqlDialect = dialect{
	showReplicaStatus: "SHOW REPLICA STATUS",
	startReplica:      "START REPLICA",
	stopReplica:       "STOP REPLICA",
	stopIOThread:      "STOP REPLICA IO_THREAD",
	startApplier:      "START REPLICA SQL_THREAD",
	resetReplicaAll:   "RESET REPLICA ALL",
	changeSource: "CHANGE REPLICATION SOURCE TO SOURCE_HOST = ?, SOURCE_PORT = ?, SOURCE_USER = ?, " +
		"SOURCE_PASSWORD = ?, SOURCE_AUTO_POSITION = 1, SOURCE_CONNECT_RETRY = ?, SOURCE_RETRY_COUNT = 86400, " +
		"SOURCE_HEARTBEAT_PERIOD = ?, GET_SOURCE_PUBLIC_KEY = 1",
	identity: "SELECT @@GLOBAL.server_id, @@GLOBAL.server_uuid, @@GLOBAL.read_only, " +
		"@@GLOBAL.super_read_only, @@GLOBAL.gtid_executed, @@GLOBAL.log_bin_basename",
	waitApplied:   "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)",
	netTimeoutVar: "replica_net_timeout",
	fenceVars:     []string{"super_read_only"}, // implies read_only
	unfenceVars:   []string{"super_read_only", "read_only"},

	colSourceHost:   "Source_Host",
	colSourcePort:   "Source_Port",
	colIORunning:    "Replica_IO_Running",
	colSQLRunning:   "Replica_SQL_Running",
	colLag:          "Seconds_Behind_Source",
	colReceived:     "Retrieved_Gtid_Set",
	colAutoPosition: "Auto_Position",
	colReadFile:     "Source_Log_File",
	colReadPos:      "Read_Source_Log_Pos",

	semiSource:           "rpl_semi_sync_source_",
	semiReplica:          "rpl_semi_sync_replica_",
	semiSourceStatus:     "Rpl_semi_sync_source_",
	semiReplicaStatus:    "Rpl_semi_sync_replica_",
	semiWaitNoReplicaVar: "rpl_semi_sync_source_wait_no_replica",
	semiAckCountVar:      "rpl_semi_sync_source_wait_for_replica_count",
	semiPlugins: map[string]string{
		"rpl_semi_sync_source":  "semisync_source.so",
		"rpl_semi_sync_replica": "semisync_replica.so",
	},
	killKeepsAckWait:    true,
	applierThread:       "SELECT PROCESSLIST_ID FROM performance_schema.threads WHERE NAME = 'thread/sql/replica_sql'",
	applierThreadAlive:  "SELECT COUNT(*) FROM performance_schema.threads WHERE PROCESSLIST_ID = ?",
	replicationCommands: []string{"Binlog Dump", "Binlog Dump GTID"},
}

var mariadbDialect = dialect{
	showReplicaStatus: "SHOW SLAVE STATUS",
	startReplica:      "START SLAVE",
	stopReplica:       "STOP SLAVE",
	stopIOThread:      "STOP SLAVE IO_THREAD",
	startApplier:      "START SLAVE SQL_THREAD",
	resetReplicaAll:   "RESET SLAVE ALL",
	changeSource: "CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, " +
		"MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = ?, MASTER_HEARTBEAT_PERIOD = ?",
	prepareGTIDPosition: "SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_current_pos",
	identity: "SELECT @@GLOBAL.server_id, NULL, @@GLOBAL.read_only, @@GLOBAL.read_only, " +
		"@@GLOBAL.gtid_binlog_state, @@GLOBAL.log_bin_basename",
	waitApplied:   "SELECT MASTER_GTID_WAIT(?, ?)",
	netTimeoutVar: "slave_net_timeout",
	fenceVars:     []string{"read_only"},
	unfenceVars:   []string{"read_only"},

	colSourceHost:   "Master_Host",
	colSourcePort:   "Master_Port",
	colIORunning:    "Slave_IO_Running",
	colSQLRunning:   "Slave_SQL_Running",
	colLag:          "Seconds_Behind_Master",
	colReceived:     "Gtid_IO_Pos",
	colAutoPosition: "Using_Gtid",
	colReadFile:     "Master_Log_File",
	colReadPos:      "Read_Master_Log_Pos",

	semiSource:             "rpl_semi_sync_master_",
	semiReplica:            "rpl_semi_sync_slave_",
	semiKillConnTimeoutVar: "rpl_semi_sync_slave_kill_conn_timeout",
	semiSourceStatus:       "Rpl_semi_sync_master_",
	semiReplicaStatus:      "Rpl_semi_sync_slave_",
	semiWaitNoReplicaVar:   "rpl_semi_sync_master_wait_no_slave",
	replicationCommands:    []string{"Binlog Dump", "Slave_IO", "Slave_SQL", "Slave_worker"},
}

func dialectFor(f gtid.Flavor) dialect {
	if f == gtid.MariaDB {
		return mariadbDialect
	}
	return mysqlDialect
}
