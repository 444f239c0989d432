package agent

import (
	"testing"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// A copy is worth restoring only when the primary's binlogs reach back to its position.
func TestBinlogsReach(t *testing.T) {
	const a, b = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4f22fa47-71ca-11e1-9e33-c80aa9429562"
	for _, tc := range []struct {
		flavor     gtid.Flavor
		start, pos string
		want       bool
		err        bool
	}{
		{gtid.MySQL, "", a + ":1-10", true, false},
		{gtid.MySQL, a + ":1-10", a + ":1-10", true, false},
		{gtid.MySQL, a + ":1-10", a + ":1-20", true, false},
		{gtid.MySQL, a + ":1-\n10", a + ":1-20", true, false}, // MySQL prints a newline after commas and in long sets
		{gtid.MySQL, a + ":1-30", a + ":1-20", false, false},
		{gtid.MySQL, a + ":1-10," + b + ":1-5", a + ":1-20", false, false},
		{gtid.MySQL, "junk", a + ":1-20", false, true},
		{gtid.MariaDB, "", "0-1-5", true, false},
		{gtid.MariaDB, "0-1-100", "0-1-100", true, false},
		{gtid.MariaDB, "0-1-100", "0-1-150", true, false},
		// After a failover the domain's last GTID names another server: sequence numbers decide.
		{gtid.MariaDB, "0-1-100", "0-2-150", true, false},
		{gtid.MariaDB, "0-2-120", "0-1-100", false, false},
		{gtid.MariaDB, "0-1-100,1-3-7", "0-1-150", false, false},
		{gtid.MariaDB, "0-1-100,1-3-7", "1-3-9,0-1-150", true, false},
		{gtid.MariaDB, "0-1-100", "x", false, true},
	} {
		got, err := binlogsReach(tc.flavor, tc.start, tc.pos)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%s binlogs from %q, copy at %q: %t, %v; want %t, error %t", tc.flavor, tc.start, tc.pos, got, err, tc.want, tc.err)
		}
	}
}

// Positions from the servers and the store are outside input: never a panic, and a copy at the
// very position the binlogs start from can always catch up.
func FuzzBinlogsReach(f *testing.F) {
	f.Add(true, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-20")
	f.Add(false, "0-1-100,1-3-7", "1-3-9,0-2-150")
	f.Add(false, "0-1-18446744073709551615", "4294967295-1-1")
	f.Fuzz(func(t *testing.T, mysql bool, start, pos string) {
		flavor := gtid.MariaDB
		if mysql {
			flavor = gtid.MySQL
		}
		_, _ = binlogsReach(flavor, start, pos)
		if _, err := gtid.Parse(flavor, pos); err == nil {
			if ok, err := binlogsReach(flavor, pos, pos); !ok || err != nil {
				t.Fatalf("%s copy at %q, binlogs from the same: %t, %v", flavor, pos, ok, err)
			}
		}
	})
}
