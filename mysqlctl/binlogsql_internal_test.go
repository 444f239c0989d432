package mysqlctl

import "testing"

func TestArtificialFDE(t *testing.T) {
	for _, c := range []struct {
		stmt string
		want bool
	}{
		// The source's format description as a replica's relay log holds it after a reconnect
		// (flags 0x20), then as written at the source's startup (flags 0), both from MySQL 9.7.
		{"BINLOG '\niVIOaw8BAAAAewAAAAAAAAAgAAQAOS43LjQtMgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n'", true},
		{"BINLOG '\niVIOaw8BAAAAewAAAH8AAAAAAAQAOS43LjQtMgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n'", false},
		{"BINLOG '\nSabDaQ8B\n'", false}, // too short to hold a header
		{"BINLOG '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'", false},
		{"SET @@SESSION.GTID_NEXT= 'AUTOMATIC'", false},
	} {
		if got := artificialFDE(c.stmt); got != c.want {
			t.Errorf("artificialFDE(%.40q) = %t, want %t", c.stmt, got, c.want)
		}
	}
}
