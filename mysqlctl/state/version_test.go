package state

import (
	"errors"
	"testing"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in          string
		flavor      gtid.Flavor
		version     Version
		unsupported bool
		bad         bool
	}{
		{in: "9.7.4", flavor: gtid.MySQL, version: Version{9, 7, 4}},
		{in: "8.4.3-log", flavor: gtid.MySQL, version: Version{8, 4, 3}},
		{in: "8.0.40", flavor: gtid.MySQL, version: Version{8, 0, 40}, unsupported: true},
		{in: "10.11.19-MariaDB-0+deb12u1", flavor: gtid.MariaDB, version: Version{10, 11, 19}},
		{in: "11.4.2-MariaDB", flavor: gtid.MariaDB, version: Version{11, 4, 2}},
		{in: "10.6.18-MariaDB-log", flavor: gtid.MariaDB, version: Version{10, 6, 18}, unsupported: true},
		{in: "", bad: true},
		{in: "nine", bad: true},
		{in: "9.x.1", bad: true},
		{in: "1.2.3.4", bad: true},
	}
	for _, tt := range tests {
		f, v, err := ParseVersion(tt.in)
		switch {
		case tt.bad:
			if err == nil || errors.Is(err, ErrUnsupportedVersion) {
				t.Errorf("ParseVersion(%q) = %v, want a parse error", tt.in, err)
			}
			continue
		case tt.unsupported:
			if !errors.Is(err, ErrUnsupportedVersion) {
				t.Errorf("ParseVersion(%q) error = %v, want ErrUnsupportedVersion", tt.in, err)
			}
		case err != nil:
			t.Errorf("ParseVersion(%q) error = %v", tt.in, err)
		}
		if f != tt.flavor || v != tt.version {
			t.Errorf("ParseVersion(%q) = %s %s, want %s %s", tt.in, f, v, tt.flavor, tt.version)
		}
	}
}
