package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/e2e"
	"github.com/shoal-db/shoal/test/harness"
)

// TestSoak pauses random agents and mysqlds for 0.5-2 s, one at a time, while another process
// keeps a core busy, on a cluster with the default timings. Nothing fails for long enough to
// warrant a failover, so every new epoch is a false failover. The safety checks always apply;
// the count of false failovers is asserted only in a long run (`make soak`, SHOAL_SOAK=30m),
// since a short run on a shared machine measures the machine as much as shoal.
func TestSoak(t *testing.T) {
	length, strict := 45*time.Second, false
	if v := os.Getenv("SHOAL_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("SHOAL_SOAK=%q: want a duration such as 30m", v)
		}
		length, strict = d, true
	}
	cfg := readSettings(t)
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		c := e2e.Start(t, shoalBinary, flavor, 3)
		p := c.WaitPrimary(-1, 60*time.Second)
		c.WaitReplicating(p)
		w := c.StartSRVWriter(p)
		m := c.StartMonitor()
		w.WaitAcked(t, 20)
		epoch0 := clusterEpoch(t, c)

		busy := exec.Command("sh", "-c", "while :; do :; done")
		if err := busy.Start(); err != nil {
			t.Fatal(err)
		}
		defer busy.Process.Kill()

		rng := rand.New(rand.NewPCG(cfg.seed, 0))
		between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
		pauses := map[string]int{}
		begin := time.Now()
		for time.Since(begin) < length {
			time.Sleep(between(time.Second, 3*time.Second))
			i, d := rng.IntN(len(c.Servers)), between(500*time.Millisecond, 2*time.Second)
			if rng.IntN(2) == 0 {
				c.PauseAgent(i)
				time.Sleep(d)
				c.ResumeAgent(i)
				pauses["agent"]++
				continue
			}
			if err := c.Servers[i].Pause(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(d)
			if c.ThawServer(i) {
				t.Logf("mysqld of %s killed by its agent during a %s pause", c.Name(i), d.Round(time.Millisecond))
			}
			pauses["mysqld"]++
		}
		busy.Process.Kill()
		busy.Wait()

		p = c.WaitPrimary(-1, 60*time.Second)
		c.WaitReplicating(p)
		w.WaitAcked(t, w.Acked()+20)
		failovers := clusterEpoch(t, c) - epoch0
		gap := w.LongestGap(begin, time.Now())
		out := c.Verify(w.Stop(), m.Stop())
		summary := fmt.Sprintf("SOAK %s: %s with a core busy, %d agent and %d mysqld pauses of 0.5-2 s, %d failovers; "+
			"longest write gap %s; %s", flavor, length, pauses["agent"], pauses["mysqld"], failovers, gap.Round(time.Millisecond), out)
		t.Log(summary)
		fmt.Println(summary)
		if strict && failovers > 0 {
			t.Errorf("%d false failovers: no fault lasted long enough to warrant one", failovers)
		}
	})
}

// clusterEpoch is the highest epoch any agent reports.
func clusterEpoch(t *testing.T, c *e2e.Cluster) uint64 {
	t.Helper()
	var epoch uint64
	for i := range c.Servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		v, err := c.Admin.Status(ctx, c.AdminAddr(i))
		cancel()
		if err == nil {
			epoch = max(epoch, v.Record.Epoch)
		}
	}
	if epoch == 0 {
		t.Fatal("no agent reports an epoch")
	}
	return epoch
}
