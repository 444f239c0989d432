package gtid

import (
	"fmt"
	"strings"
)

// MariaDBBinlogStateAt is the gtid_binlog_state a copy of a server taken at GTID position pos
// stands for, given the server's (or any cluster member's) gtid_binlog_state now: each (domain,
// server) entry of now that is not past pos, and pos itself. A copy (a logical dump, a
// mariadb-backup) carries no binlog, yet errant checks compare the last transaction of every
// (domain, server) pair, so the copy must be given this state. An entry past pos is a server's
// that wrote after the copy; with one writer at a time that is pos's own server, whose entry at the
// copy is pos.
func MariaDBBinlogStateAt(now, pos string) (string, error) {
	type entry struct{ domain, server, seq uint64 }
	parse := func(list string) ([]entry, error) {
		var out []entry
		for _, g := range strings.Split(list, ",") {
			if g = strings.TrimSpace(g); g == "" {
				continue
			}
			var e entry
			if _, err := fmt.Sscanf(g, "%d-%d-%d", &e.domain, &e.server, &e.seq); err != nil {
				return nil, fmt.Errorf("GTID %q: %w", g, err)
			}
			out = append(out, e)
		}
		return out, nil
	}
	current, err := parse(now)
	if err != nil {
		return "", err
	}
	at, err := parse(pos)
	if err != nil {
		return "", err
	}
	last := map[uint64]entry{} // domain -> the copy's position in it
	for _, e := range at {
		last[e.domain] = e
	}
	var keep []string
	for _, e := range current {
		if p, ok := last[e.domain]; ok && e.seq < p.seq && e.server != p.server {
			keep = append(keep, fmt.Sprintf("%d-%d-%d", e.domain, e.server, e.seq))
		}
	}
	for _, e := range at {
		keep = append(keep, fmt.Sprintf("%d-%d-%d", e.domain, e.server, e.seq))
	}
	return strings.Join(keep, ","), nil
}
