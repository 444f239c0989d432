package gtid

import "testing"

func TestMariaDBBinlogStateAt(t *testing.T) {
	for _, tt := range []struct{ now, pos, want string }{
		// The primary (server 1) wrote on after the copy; server 2's older entry is in the copy.
		{"0-2-10,0-1-25", "0-1-20", "0-2-10,0-1-20"},
		// A server that wrote only after the copy is not in it.
		{"0-2-10,0-3-30", "0-2-10", "0-2-10"},
		// Domains are kept apart; a domain the copy does not know is dropped.
		{"0-1-5,1-4-7,2-1-3", "0-1-5,1-4-7", "0-1-5,1-4-7"},
		{"", "", ""},
	} {
		got, err := MariaDBBinlogStateAt(tt.now, tt.pos)
		if err != nil || got != tt.want {
			t.Errorf("MariaDBBinlogStateAt(%q, %q) = %q, %v; want %q", tt.now, tt.pos, got, err, tt.want)
		}
	}
	if _, err := MariaDBBinlogStateAt("0-1-x", "0-1-1"); err == nil {
		t.Error("MariaDBBinlogStateAt accepted a bad GTID")
	}
}
