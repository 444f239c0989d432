package mysqlctl

import "errors"

// Sentinels for the conditions callers branch on; every returned error wraps one of these or a
// driver error, and says which server and which step failed.
var (
	// ErrWaitTimeout: the server did not apply the awaited GTIDs before the deadline.
	ErrWaitTimeout = errors.New("timed out waiting for GTIDs to be applied")
	// ErrSemiSyncUnavailable: the server cannot do semi-sync (plugins missing and not installable).
	ErrSemiSyncUnavailable = errors.New("semi-sync replication unavailable")
	// ErrUnsupported: the flavor cannot do what was asked (e.g. MariaDB waiting for two acks).
	ErrUnsupported = errors.New("not supported by this server flavor")
	// ErrMisconfigured: the server's settings break an HA guarantee (no binlog, GTIDs off, ...).
	ErrMisconfigured = errors.New("server misconfigured for shoal")
)
