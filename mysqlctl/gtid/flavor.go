package gtid

import "errors"

// Flavor names the server family. The two differ exactly where HA breaks (GTID format, semi-sync
// variables, replica commands, read-only), so every statement that differs is chosen by flavor.
type Flavor string

const (
	MySQL   Flavor = "mysql"
	MariaDB Flavor = "mariadb"
)

var (
	// ErrBadSet: a GTID set or position could not be parsed.
	ErrBadSet = errors.New("bad GTID set")
	// ErrFlavorMismatch: two GTID sets of different flavors were combined.
	ErrFlavorMismatch = errors.New("GTID flavors differ")
)
