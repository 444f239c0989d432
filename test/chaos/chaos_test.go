// Package chaos runs random faults against real clusters (real servers, real agents, a client
// writing through DNS SRV) and checks after every fault that no acknowledged write was lost, that
// no two servers were writable at once, and that no serving member holds errant transactions.
//
//	make chaos CYCLES=300 SEED=42 MEMBERS=3,5
//
// Without SHOAL_CHAOS_CYCLES (as in `make test`) it is a smoke run: each fault once per flavor.
package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
	"github.com/shoal-db/shoal/test/e2e"
	"github.com/shoal-db/shoal/test/harness"
)

var shoalBinary string

func TestMain(m *testing.M) { os.Exit(e2e.RunWithBinary(m, &shoalBinary)) }

// settings are read from the environment the make target sets.
type settings struct {
	cycles  int // 0: smoke run, each fault once
	seed    uint64
	members []int
	faults  []fault // the faults to draw from
}

func readSettings(t *testing.T) settings {
	s := settings{seed: uint64(time.Now().UnixNano()), members: []int{3}, faults: faults}
	var err error
	if v := os.Getenv("SHOAL_CHAOS_CYCLES"); v != "" {
		if s.cycles, err = strconv.Atoi(v); err != nil || s.cycles < 0 {
			t.Fatalf("SHOAL_CHAOS_CYCLES=%q: want a count of fault cycles", v)
		}
	}
	if v := os.Getenv("SHOAL_CHAOS_SEED"); v != "" {
		if s.seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SHOAL_CHAOS_SEED=%q: want an unsigned integer", v)
		}
	}
	if v := os.Getenv("SHOAL_CHAOS_MEMBERS"); v != "" {
		s.members = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 3 || n%2 == 0 {
				t.Fatalf("SHOAL_CHAOS_MEMBERS=%q: want odd cluster sizes of at least 3, comma separated", v)
			}
			s.members = append(s.members, n)
		}
	}
	if v := os.Getenv("SHOAL_CHAOS_FAULTS"); v != "" {
		s.faults = nil
		for _, name := range strings.Split(v, ",") {
			i := slices.IndexFunc(faults, func(f fault) bool { return f.name == strings.TrimSpace(name) })
			if i < 0 {
				t.Fatalf("SHOAL_CHAOS_FAULTS=%q: no fault %q (have %s)", v, name, faultNames())
			}
			s.faults = append(s.faults, faults[i])
		}
	}
	return s
}

func faultNames() string {
	var names []string
	for _, f := range faults {
		names = append(names, f.name)
	}
	return strings.Join(names, ", ")
}

func TestChaos(t *testing.T) {
	cfg := readSettings(t)
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		for _, n := range cfg.members {
			t.Run(fmt.Sprintf("%d-members", n), func(t *testing.T) { chaos(t, flavor, n, cfg) })
		}
	})
}

// run is one cluster under faults, and what happened to it.
type run struct {
	t       *testing.T
	c       *e2e.Cluster
	w       *e2e.Writer
	m       *e2e.Monitor
	mysql   []*mysqlctl.Server
	rng     *rand.Rand
	smoke   bool
	primary int

	history    []string
	faults     map[string]int
	splitBrain int
	lost       int
	errant     int // errant transactions found on a serving member
	rebuilt    int // members fenced for errant transactions, then rebuilt
}

func chaos(t *testing.T, flavor gtid.Flavor, members int, cfg settings) {
	r := &run{t: t, rng: rand.New(rand.NewPCG(cfg.seed, uint64(members))), smoke: cfg.cycles == 0, faults: map[string]int{}}
	// Back-to-back faults: the anti-flap cooldown would otherwise leave a dead primary in place.
	r.c = e2e.Start(t, shoalBinary, flavor, members, "--ha.failover_cooldown", "1s")
	r.primary = r.c.WaitPrimary(-1, 60*time.Second)
	r.c.WaitReplicating(r.primary)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range r.c.Servers {
		r.mysql = append(r.mysql, r.c.MySQL(ctx, i))
	}
	t.Cleanup(r.printHistoryOnFailure) // after the handles' cleanups, so it runs before them
	r.w = r.c.StartSRVWriter(r.primary)
	r.m = r.c.StartMonitor()
	r.w.WaitAcked(t, 20)
	r.logf("cluster of %d %s members up, primary %s, seed %d", members, flavor, r.c.Name(r.primary), cfg.seed)

	cycles := cfg.cycles
	if r.smoke {
		cycles = len(cfg.faults)
	}
	for cycle := 1; cycle <= cycles; cycle++ {
		f := cfg.faults[r.rng.IntN(len(cfg.faults))]
		if r.smoke {
			f = cfg.faults[cycle-1]
		}
		r.faults[f.name]++
		begin := time.Now()
		r.logf("cycle %d: %s", cycle, f.name)
		r.logf("cycle %d: %s, healed after %s", cycle, f.run(r), time.Since(begin).Round(time.Millisecond))
		r.converge()
		r.check(false)
		if t.Failed() {
			return
		}
	}
	acked := r.w.Stop()
	r.m.Stop()
	r.check(true)
	summary := fmt.Sprintf("CHAOS %s %d members: %d cycles (%s), %d acknowledged writes, %d lost, "+
		"%d split-brain intervals, %d errant GTID sets on serving members; %d errant members fenced and rebuilt; seed %d",
		flavor, members, cycles, r.faultCounts(), len(acked), r.lost, r.splitBrain, r.errant, r.rebuilt, cfg.seed)
	t.Log(summary)
	fmt.Println(summary)
}

// converge waits until one member is the writable primary and every other replicates from it,
// rebuilding members that the agents fenced for errant transactions (an old primary's commit that
// no replica received), and until the client writes again.
func (r *run) converge() {
	r.t.Helper()
	// A member that still believes it is primary during a change is seen again once settled.
	for range 3 {
		p := r.c.WaitPrimary(-1, 90*time.Second)
		r.settle(p)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		again := r.c.Primary(ctx)
		cancel()
		if again == p {
			return
		}
		r.logf("primary moved from %s to %s while settling", r.c.Name(p), r.c.Name(max(again, 0)))
	}
	r.t.Fatal("the primary kept moving after the fault was healed")
}

func (r *run) settle(p int) {
	if p != r.primary {
		r.logf("primary is now %s (was %s)", r.c.Name(p), r.c.Name(r.primary))
		r.primary = p
	}
	for _, rep := range r.c.RepairErrant(p) {
		r.logf("%s fenced with errant GTIDs %s: re-seeded from %s (shoal rebuild)", rep.Member, rep.Errant, rep.Donor)
		r.rebuilt++
	}
	r.w.WaitAcked(r.t, r.w.Acked()+10)
}

// idsOnPrimary reads every id the primary holds, retrying over a pooled connection that a
// restart broke.
func (r *run) idsOnPrimary(ctx context.Context) (map[int64]bool, error) {
	var err error
	for range 3 {
		var rows *sql.Rows
		if rows, err = r.mysql[r.primary].DB().QueryContext(ctx, "SELECT id FROM app.acks"); err != nil {
			continue
		}
		have := map[int64]bool{}
		for rows.Next() {
			var id int64
			if err = rows.Scan(&id); err != nil {
				break
			}
			have[id] = true
		}
		if cerr := rows.Close(); err == nil && cerr == nil {
			return have, nil
		} else if err == nil {
			err = cerr
		}
	}
	return nil, err
}

// status reads member i's server, retrying over a pooled connection that its restart broke.
func (r *run) status(ctx context.Context, i int) (st state.Status, err error) {
	for range 3 {
		if st, err = r.mysql[i].Status(ctx); err == nil {
			return st, nil
		}
	}
	return st, err
}

// check verifies the promises: every acknowledged write is on the primary, no two servers were
// ever writable at once, exactly one server is writable, and no replica holds a transaction the
// primary lacks. final also re-reads every server after the writer stopped.
func (r *run) check(final bool) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	statuses := r.settledStatuses(ctx)
	for _, v := range r.m.Seen()[r.splitBrain:] {
		r.splitBrain++
		r.t.Errorf("split brain: %s", v)
		r.logf("split brain: %s", v)
	}
	for i, st := range statuses {
		if i == r.primary {
			continue
		}
		if errant, err := state.Errant(st, statuses[r.primary]); err != nil || !errant.IsEmpty() {
			r.errant++
			r.t.Errorf("replica %s holds transactions primary %s lacks: %s (err %v)", r.c.Name(i), r.c.Name(r.primary), errant, err)
		}
	}
	acked := r.w.AckedIDs() // before reading the primary: every id in it was committed there
	have, err := r.idsOnPrimary(ctx)
	if err != nil {
		r.t.Fatalf("read acknowledged ids on %s: %v", r.c.Name(r.primary), err)
	}
	var missing []int64
	for _, id := range acked {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > r.lost {
		r.lost = len(missing)
		r.t.Errorf("%d of %d acknowledged writes missing on primary %s, e.g. %v", len(missing), len(acked),
			r.c.Name(r.primary), missing[:min(10, len(missing))])
	}

	if final {
		for _, i := range r.others() {
			if err := r.mysql[i].WaitApplied(ctx, statuses[r.primary].Executed); err != nil {
				r.t.Errorf("%s did not apply the primary's transactions: %v", r.c.Name(i), err)
			}
		}
	}
}

// settledStatuses reads every server, replicas first (a transaction the primary commits
// meanwhile must not look errant), at a moment when the primary is the one writable server. A
// cluster still moving (say, the primary fencing itself while a cut-off Raft leader is replaced)
// is converged again, twice at most, before that counts as a failure.
func (r *run) settledStatuses(ctx context.Context) []state.Status {
	r.t.Helper()
	statuses := make([]state.Status, len(r.mysql))
	for attempt := 1; ; attempt++ {
		var err error
		for _, i := range append(r.others(), r.primary) {
			if statuses[i], err = r.status(ctx, i); err != nil {
				r.t.Fatalf("status of %s: %v", r.c.Name(i), err)
			}
		}
		writable := 0
		for i, st := range statuses {
			r.logf("  %s", describe(r.c.Name(i), st))
			if st.Writable() {
				writable++
			}
		}
		if writable == 1 && statuses[r.primary].Writable() {
			return statuses
		}
		if attempt == 3 {
			r.t.Errorf("%d writable servers after convergence (primary %s writable: %t), want exactly the primary",
				writable, r.c.Name(r.primary), statuses[r.primary].Writable())
			return statuses
		}
		r.logf("%d writable servers, primary %s writable: %t; the cluster is still moving, converging again",
			writable, r.c.Name(r.primary), statuses[r.primary].Writable())
		r.converge()
	}
}

func (r *run) others() []int {
	var o []int
	for i := range r.c.Servers {
		if i != r.primary {
			o = append(o, i)
		}
	}
	return o
}

func (r *run) faultCounts() string {
	var parts []string
	for _, f := range faults {
		if n := r.faults[f.name]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", f.name, n))
		}
	}
	return strings.Join(parts, ", ")
}

// logf adds a timestamped line to the run's history, printed in full when a check fails and
// as it happens with go test -v.
func (r *run) logf(format string, args ...any) {
	line := time.Now().Format("15:04:05.000 ") + fmt.Sprintf(format, args...)
	r.history = append(r.history, line)
	r.t.Log(line)
}

func (r *run) printHistoryOnFailure() {
	if !r.t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range r.mysql {
		st, err := r.status(ctx, i)
		if err != nil {
			r.logf("at failure %s: %v", r.c.Name(i), err)
			continue
		}
		r.logf("at failure %s", describe(r.c.Name(i), st))
	}
	r.t.Logf("--- chaos history (faults, primaries, GTIDs after each cycle):\n%s", strings.Join(r.history, "\n"))
}

// describe is one server's state in a line of history.
func describe(name string, st state.Status) string {
	ss := st.SemiSync
	line := fmt.Sprintf("%s: writable %t, executed %s; semi-sync source %t (%d clients, %d commits waiting), replica %t",
		name, st.Writable(), st.Executed, ss.SourceActive, ss.Clients, ss.WaitSessions, ss.ReplicaActive)
	if rs := st.Replica; rs != nil {
		line += fmt.Sprintf("; replicating from %s:%d (IO %s, SQL %t)", rs.SourceHost, rs.SourcePort, rs.IOState, rs.SQLRunning)
	}
	return line
}

func (r *run) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
}
