package backup

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// ErrGap marks an archive that does not hold every transaction a restore needs.
var ErrGap = errors.New("gap in the binlog archive")

// BinlogTarget says how far a point-in-time restore replays. With neither field set it replays
// everything archived (the latest point).
type BinlogTarget struct {
	// Time: replay the transactions stamped at or before it. Binlogs stamp whole seconds, so a
	// transaction in the same second as Time is replayed.
	Time time.Time
	// GTID: replay through this transaction (MySQL "uuid:n", MariaDB "domain-server-seqno"),
	// in the order the archive holds them.
	GTID string
}

func (t BinlogTarget) String() string {
	switch {
	case t.GTID != "":
		return "GTID " + t.GTID
	case !t.Time.IsZero():
		return t.Time.UTC().Format(time.RFC3339)
	}
	return "the latest archived transaction"
}

// ReplayStep is one archived file to replay: its transactions that Covered lacks, up to the
// target.
type ReplayStep struct {
	File    *BinlogManifest
	Covered gtid.Set
}

// PlanReplay chooses the archived files that take a server at GTID state from to the target:
// each file must start within what is covered so far (no gap) and add to it. Where files of
// two members overlap (the old primary's and the new one's after a failover), the one whose end
// state holds the others' is taken and the transactions a step's Covered holds are skipped, so
// no transaction is replayed twice. When neither holds the other, the history diverged: the old
// primary archived transactions the new one never got. The later archived file (the history the
// cluster went on with: the highest record epoch, then the last archived) is taken; the others, and every file continuing from them, are returned
// as abandoned. A gap before the target is ErrGap, naming what is missing.
func PlanReplay(flavor gtid.Flavor, from gtid.Set, files []*BinlogManifest, target BinlogTarget) (steps []ReplayStep, abandoned []*BinlogManifest, err error) {
	var goal gtid.Set
	if target.GTID != "" {
		g, err := parseOneGTID(flavor, target.GTID)
		if err != nil {
			return nil, nil, fmt.Errorf("target: %w", err)
		}
		if covers(flavor, from, g) {
			return nil, nil, fmt.Errorf("target GTID %s is already in the backup (at %s): restore an older backup", target.GTID, from)
		}
		goal = g
	}
	files = slices.DeleteFunc(slices.Clone(files), func(f *BinlogManifest) bool { return f.Flavor != flavor })
	// Deterministic choice among equals: the first archived.
	slices.SortFunc(files, func(a, b *BinlogManifest) int {
		return cmp.Or(a.ArchivedAt.Compare(b.ArchivedAt), cmp.Compare(a.ObjectKey(), b.ObjectKey()))
	})
	covered := from
	lost := gtid.MustParse(flavor, "") // the abandoned branches' transactions
	dropped := map[*BinlogManifest]bool{}
	// onLostBranch: the file was abandoned, or starts after transactions of an abandoned branch.
	onLostBranch := func(f *BinlogManifest) bool {
		if dropped[f] {
			return true
		}
		rest, err := lost.Subtract(f.before())
		return err == nil && rest.Count() < lost.Count()
	}
	passedTime := false
	for target.GTID == "" || !covers(flavor, covered, goal) {
		var cands []*BinlogManifest
		for _, f := range files {
			if onLostBranch(f) || !covers(flavor, covered, f.before()) || covers(flavor, covered, f.after()) {
				continue
			}
			if !target.Time.IsZero() && f.FirstTime.After(target.Time) {
				// The history goes on past the target time: what follows is not needed.
				passedTime = true
				continue
			}
			cands = append(cands, f)
		}
		if len(cands) == 0 {
			break
		}
		next := choose(cands)
		for _, c := range cands {
			if ok, _ := next.after().Contains(c.after()); !ok {
				dropped[c] = true
				abandoned = append(abandoned, c)
				extra, err := c.after().Subtract(next.after())
				if err == nil {
					lost, err = lost.Union(extra)
				}
				if err != nil {
					return nil, nil, err
				}
			}
		}
		passedTime = false
		steps = append(steps, ReplayStep{File: next, Covered: covered})
		if covered, err = covered.Union(next.after()); err != nil {
			return nil, nil, err
		}
		if !target.Time.IsZero() && next.LastTime.After(target.Time) {
			passedTime = true
			break
		}
	}
	reachable := slices.DeleteFunc(slices.Clone(files), onLostBranch)
	if target.GTID != "" && !covers(flavor, covered, goal) {
		if f := firstUnreachable(flavor, covered, reachable); f != nil && covers(flavor, f.after(), goal) {
			return nil, nil, gapError(flavor, covered, f)
		}
		return nil, nil, fmt.Errorf("target GTID %s is not in the binlog archive (it reaches %s)", target.GTID, covered)
	}
	if target.GTID == "" && !passedTime {
		// Whatever the archive holds beyond the walk is after a gap. For the latest point, or a
		// time the walk did not pass, the missing transactions may be before the target: what
		// they are, and when, is not known.
		if f := firstUnreachable(flavor, covered, reachable); f != nil {
			return nil, nil, gapError(flavor, covered, f)
		}
	}
	for _, f := range files {
		if onLostBranch(f) && !dropped[f] {
			abandoned = append(abandoned, f)
		}
	}
	return steps, abandoned, nil
}

// choose picks, among files that all start within what is covered, the one whose end state
// holds every other's (compared as GTID sets: for MariaDB per domain and server, so two
// servers' transactions of one seqno range are told apart); when none does, the history
// diverged and the file of the newest primary wins: the highest record epoch, then the last
// archived. files are in archive order.
func choose(files []*BinlogManifest) *BinlogManifest {
	for _, f := range files {
		all := true
		for _, g := range files {
			if ok, _ := f.after().Contains(g.after()); !ok {
				all = false
				break
			}
		}
		if all {
			return f
		}
	}
	newest := files[len(files)-1]
	for _, f := range files {
		if f.Epoch > newest.Epoch {
			newest = f
		}
	}
	return newest
}

// firstUnreachable is the earliest archived file that adds to covered but does not start
// within it.
func firstUnreachable(flavor gtid.Flavor, covered gtid.Set, files []*BinlogManifest) *BinlogManifest {
	var first *BinlogManifest
	for _, f := range files {
		if !covers(flavor, covered, f.after()) && !covers(flavor, covered, f.before()) {
			if first == nil || f.FirstTime.Before(first.FirstTime) {
				first = f
			}
		}
	}
	return first
}

func gapError(flavor gtid.Flavor, covered gtid.Set, f *BinlogManifest) error {
	missing := f.GTIDBefore
	if flavor == gtid.MySQL {
		if m, err := f.before().Subtract(covered); err == nil {
			missing = m.String()
		}
	}
	return fmt.Errorf("%w: replay reaches %s, but %s of %s starts at %s (missing: %s)",
		ErrGap, covered, f.File, f.Member, f.GTIDBefore, missing)
}

// cutTxns picks, from one file's transactions in order, the byte range to replay: the
// transactions covered lacks, up to the target. Covered ones may only come first (a prefix the
// backup or an earlier file already holds); done is set once the target is reached.
func cutTxns(flavor gtid.Flavor, covered gtid.Set, target BinlogTarget, txns []BinlogTxn) (start, end int64, n int, done bool, err error) {
	var goal gtid.Set
	if target.GTID != "" {
		if goal, err = parseOneGTID(flavor, target.GTID); err != nil {
			return 0, 0, 0, false, err
		}
	}
	for _, t := range txns {
		if !target.Time.IsZero() && t.Time.After(target.Time) {
			return start, end, n, true, nil
		}
		g, err := parseOneGTID(flavor, t.GTID)
		if err != nil {
			return 0, 0, 0, false, err
		}
		if covers(flavor, covered, g) {
			if n > 0 {
				return 0, 0, 0, false, fmt.Errorf("transaction %s, already replayed, comes after %d to replay in the same file: the archive is not one history", t.GTID, n)
			}
			continue
		}
		if n == 0 {
			start = t.Start
		}
		end, n = t.End, n+1
		// The target itself, or (MariaDB) the domain's transaction of its seqno from another server.
		if target.GTID != "" && covers(flavor, g, goal) {
			return start, end, n, true, nil
		}
	}
	return start, end, n, false, nil
}

// BackupFor picks the backup a point-in-time restore to target starts from: the newest valid
// one that ended by the target time, or whose copy cannot hold the target GTID, or the newest
// for the latest point. entries are oldest first, as Catalog.List returns them.
func BackupFor(entries []Entry, target BinlogTarget) (*Manifest, error) {
	for _, e := range slices.Backward(entries) {
		m := e.Manifest
		if !e.Valid || m == nil {
			continue
		}
		switch {
		case !target.Time.IsZero():
			if m.EndTime.After(target.Time) {
				continue
			}
		case target.GTID != "":
			g, err := parseOneGTID(m.Flavor, target.GTID)
			if err != nil {
				return nil, fmt.Errorf("target: %w", err)
			}
			high := cmp.Or(m.GTIDExecutedMax, m.GTIDExecuted)
			pos, err := gtid.Parse(m.Flavor, high)
			if err != nil || covers(m.Flavor, pos, g) {
				continue
			}
		}
		return m, nil
	}
	return nil, fmt.Errorf("%w from which to reach %s", ErrNoBackup, target)
}
