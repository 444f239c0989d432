package state

import (
	"testing"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

const (
	uuidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	uuidB = "4a1b2c3d-0000-1111-2222-333344445555"
)

func TestErrant(t *testing.T) {
	status := func(flavor gtid.Flavor, uuid, executed string) Status {
		return Status{Flavor: flavor, ServerUUID: uuid, Executed: gtid.MustParse(flavor, executed)}
	}
	tests := []struct {
		name            string
		server, primary Status
		want            string
	}{
		{"replica behind", status(gtid.MySQL, uuidB, uuidA+":1-5"), status(gtid.MySQL, uuidA, uuidA+":1-9"), ""},
		{"transaction of its own", status(gtid.MySQL, uuidB, uuidA+":1-5,"+uuidB+":1"), status(gtid.MySQL, uuidA, uuidA+":1-9"), uuidB + ":1"},
		// The primary's commit waits for the ack (AFTER_SYNC) before its GTID shows in gtid_executed.
		{"primary's own commit not yet in its gtid_executed", status(gtid.MySQL, uuidB, uuidA+":1-10,"+uuidA+":t:1"), status(gtid.MySQL, uuidA, uuidA+":1-9"), ""},
		{"an older primary's commit the new one lacks", status(gtid.MySQL, uuidA, uuidA+":1-10"), status(gtid.MySQL, uuidB, uuidA+":1-9,"+uuidB+":1-3"), uuidA + ":10"},
		{"MariaDB compares binlog states as they are", status(gtid.MariaDB, "", "0-1-10"), status(gtid.MariaDB, "", "0-1-9"), "0-1-[10]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Errant(tt.server, tt.primary)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Fatalf("errant %q, want %q", got, tt.want)
			}
		})
	}
}
