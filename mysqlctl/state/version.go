package state

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// ErrUnsupportedVersion: the server is older than MySQL 8.4 / MariaDB 10.11.
var ErrUnsupportedVersion = errors.New("unsupported server version")

// Version is a server's numeric version, e.g. 9.7.4 or 10.11.19.
type Version struct {
	Major, Minor, Patch int
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v >= major.minor.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// ParseVersion reads the result of SELECT VERSION(), e.g. "9.7.4" or "10.11.19-MariaDB-0+deb12u1",
// and tells the flavor and whether shoal supports it (MySQL 8.4+, MariaDB 10.11+).
func ParseVersion(s string) (gtid.Flavor, Version, error) {
	flavor := gtid.MySQL
	if strings.Contains(strings.ToLower(s), "mariadb") {
		flavor = gtid.MariaDB
	}
	num := s
	if i := strings.IndexAny(num, "-+ "); i >= 0 {
		num = num[:i]
	}
	parts := strings.Split(num, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return "", Version{}, fmt.Errorf("parse server version %q: want major.minor[.patch]", s)
	}
	var nums [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return "", Version{}, fmt.Errorf("parse server version %q: bad number %q", s, p)
		}
		nums[i] = n
	}
	v := Version{nums[0], nums[1], nums[2]}
	switch {
	case flavor == gtid.MySQL && !v.AtLeast(8, 4):
		return flavor, v, fmt.Errorf("%w: MySQL %s (need 8.4 or newer)", ErrUnsupportedVersion, v)
	case flavor == gtid.MariaDB && !v.AtLeast(10, 11):
		return flavor, v, fmt.Errorf("%w: MariaDB %s (need 10.11 or newer)", ErrUnsupportedVersion, v)
	}
	return flavor, v, nil
}
