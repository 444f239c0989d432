package e2e

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/state"
	"github.com/shoal-db/shoal/test/harness"
)

// Outcome is what Verify found after the cluster converged.
type Outcome struct {
	Primary int
	// Errant lists members that stay fenced because they hold transactions the primary lacks
	// (e.g. an isolated old primary's commit that no replica acknowledged).
	Errant []string
}

// Verify waits for convergence and checks the promises: one writable server, every other member
// replicating from it or fenced as errant, every acknowledged write on the primary, and no
// replica with transactions the primary lacks.
func (c *Cluster) Verify(acked []int64, violations []string) Outcome {
	c.t.Helper()
	for _, v := range violations {
		c.t.Errorf("split brain: %s", v)
	}
	p := c.WaitPrimary(-1, 60*time.Second)
	out := Outcome{Primary: p, Errant: c.WaitReplicating(p)}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db := c.open(p, harness.AppUser, harness.AppPassword)
	defer db.Close()
	have := map[int64]bool{}
	rows, err := db.QueryContext(ctx, "SELECT id FROM app.acks")
	if err != nil {
		c.t.Fatalf("read acks on %s: %v", c.Name(p), err)
	}
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		have[id] = true
	}
	rows.Close()
	var missing []int64
	for _, id := range acked {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		c.t.Errorf("%d of %d acknowledged writes missing on primary %s, e.g. %v", len(missing), len(acked), c.Name(p), missing[:min(10, len(missing))])
	}

	primary := c.MySQL(ctx, p)
	pst, err := primary.Status(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	writable := 0
	for j := range c.Servers {
		srv := c.MySQL(ctx, j)
		st, err := srv.Status(ctx)
		if err != nil {
			c.t.Fatalf("status of %s: %v", c.Name(j), err)
		}
		if st.Writable() {
			writable++
		}
		if j == p || slices.Contains(out.Errant, c.Name(j)) {
			continue
		}
		if err := srv.WaitApplied(ctx, pst.Executed); err != nil {
			c.t.Errorf("%s did not apply the primary's GTIDs: %v", c.Name(j), err)
		}
		if st, err = srv.Status(ctx); err != nil {
			continue
		}
		// The primary is read again after the replica: its agent's heartbeats go on, and a
		// replica that applied one the first read lacks would look errant.
		if pst, err := primary.Status(ctx); err == nil {
			if e, _ := state.Errant(st, pst); !e.IsEmpty() {
				c.t.Errorf("replica %s has errant GTIDs %s", c.Name(j), e)
			}
		}
	}
	if writable != 1 {
		c.t.Errorf("%d writable servers after convergence, want 1", writable)
	}
	return out
}

// MySQL opens a root handle on member i's server, closed when the test ends.
func (c *Cluster) MySQL(ctx context.Context, i int) *mysqlctl.Server {
	srv, err := mysqlctl.Open(ctx, mysqlctl.Config{Addr: c.Servers[i].Addr(), User: harness.RootUser, Password: harness.RootPassword})
	if err != nil {
		c.t.Fatalf("open %s: %v", c.Name(i), err)
	}
	c.t.Cleanup(func() { srv.Close() })
	return srv
}

// String renders an outcome for logs.
func (o Outcome) String() string {
	return fmt.Sprintf("primary is member %d, errant members %v", o.Primary, o.Errant)
}

// Repair is a member re-seeded from Donor because its agent fenced it for errant transactions.
type Repair struct{ Member, Errant, Donor string }

// RepairErrant waits until every member but p replicates from p, rebuilding each member whose
// agent keeps it fenced for errant transactions (an old primary's commit that no replica
// received) with the product's own repair, as an operator would: `shoal rebuild`, a re-seed from
// a donor the leader picks. It returns the repairs.
func (c *Cluster) RepairErrant(p int) []Repair {
	c.t.Helper()
	var repairs []Repair
	for errant := c.WaitReplicating(p); len(errant) > 0; errant = c.WaitReplicating(p) {
		for _, name := range errant {
			if slices.ContainsFunc(repairs, func(r Repair) bool { return r.Member == name }) {
				c.t.Fatalf("%s errant again right after its rebuild from %s", name, c.Name(p))
			}
			i := c.index(name)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			v, err := c.Admin.Status(ctx, c.AdminAddr(i))
			cancel()
			if err != nil || v.Errant == "" {
				continue // no longer reported errant: look again
			}
			begin := time.Now()
			rb := c.rebuild(i, p)
			c.waitReseeded(i, begin)
			repairs = append(repairs, Repair{Member: name, Errant: v.Errant, Donor: rb.Donor})
		}
	}
	return repairs
}

// WaitReplicating waits until every member but p replicates from p, or is fenced as errant, and
// returns the errant ones. It returns early when another member serves as the recorded
// primary, seen by that member itself or by the one waited on: the cluster failed over again meanwhile (a primary killed as frozen on a loaded machine), and
// the caller finds the new one.
func (c *Cluster) WaitReplicating(p int) []string {
	c.t.Helper()
	var errant []string
	deadline := time.Now().Add(60 * time.Second)
	for j := range c.Servers {
		if j == p {
			continue
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			v, err := c.Admin.Status(ctx, c.AdminAddr(j))
			cancel()
			if err == nil && v.Errant != "" {
				errant = append(errant, c.Name(j))
				break
			}
			if err == nil && v.Report.Source == c.Name(p) && v.Report.IOConnected && v.Report.SQLRunning && !v.Local.Writable {
				break
			}
			if err == nil && serving(v) {
				c.t.Logf("%s serves as the primary while waiting for the members to follow %s", c.Name(j), c.Name(p))
				return errant
			}
			if q := c.index(v.Record.Primary); err == nil && q >= 0 && q != p && q != j && c.claimsPrimary(context.Background(), q) {
				c.t.Logf("%s serves as the primary while waiting for %s to follow %s", c.Name(q), c.Name(j), c.Name(p))
				return errant
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("%s did not converge to replicating from %s: view %+v, err %v", c.Name(j), c.Name(p), v.Local, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return errant
}
