package mysqlctl

import "errors"

// Sentinels for the conditions callers branch on; every returned error wraps one of these or a
// driver error, and says which server and which step failed.
var (
	// ErrUnsupportedVersion: the server is older than MySQL 8.4 / MariaDB 10.11.
	ErrUnsupportedVersion = errors.New("unsupported server version")
	// ErrBadGTIDSet: a GTID set or position could not be parsed.
	ErrBadGTIDSet = errors.New("bad GTID set")
	// ErrFlavorMismatch: two GTID sets of different flavors were combined.
	ErrFlavorMismatch = errors.New("GTID flavors differ")
)
