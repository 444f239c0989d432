package state

import (
	"errors"
	"fmt"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// ErrErrant: a server has transactions its primary lacks; it must not replicate or serve.
var ErrErrant = errors.New("errant GTIDs")

// Errant returns the transactions the server has that primary lacks; an empty set means
// the server may replicate from primary. Both must be read from the same flavor.
//
// A transaction that carries the MySQL primary's own server_uuid came from its binlog, even when
// its gtid_executed does not show it yet: with AFTER_SYNC semi-sync the primary adds a GTID there
// only once the ack is back, and a frozen or overloaded primary can sit between the two for
// seconds while its replicas have applied the transaction. It is not errant. (MariaDB's
// gtid_binlog_state is updated when the binlog is written, so it never lags that way.)
func Errant(server, primary Status) (gtid.Set, error) {
	errant, err := server.Executed.Subtract(primary.Executed)
	if err != nil {
		return gtid.Set{}, fmt.Errorf("compare GTIDs of %s with primary %s: %w", server.Addr, primary.Addr, err)
	}
	if primary.Flavor == gtid.MySQL && primary.ServerUUID != "" {
		errant = errant.WithoutUUID(primary.ServerUUID)
	}
	return errant, nil
}

// CheckErrant returns an error wrapping ErrErrant, naming the transactions, when the server
// has any its primary lacks.
func CheckErrant(server, primary Status) error {
	errant, err := Errant(server, primary)
	if err != nil {
		return err
	}
	if !errant.IsEmpty() {
		return fmt.Errorf("%s has transactions primary %s lacks: %w: %s", server.Addr, primary.Addr, ErrErrant, errant)
	}
	return nil
}
