package e2e

import (
	"context"
	"strings"
	"time"

	"github.com/shoal-db/shoal/agent/adminapi"
)

// waitReseeded waits until member i's agent logged a finished re-seed after begin and the
// member replicates from the primary again, not errant.
func (c *Cluster) waitReseeded(i int, begin time.Time) {
	t := c.t
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		done := false
		for _, l := range c.LogLines(begin, time.Time{}) {
			if strings.Contains(l.Text, "node="+c.Name(i)+" ") && strings.Contains(l.Text, "re-seed done") {
				done = true
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		v, err := c.Admin.Status(ctx, c.AdminAddr(i))
		cancel()
		if done && err == nil && v.Errant == "" && v.Report.Source == v.Record.Primary && v.Report.IOConnected && v.Report.SQLRunning {
			return
		}
		if time.Now().After(deadline) {
			for _, l := range c.LogLines(begin, time.Time{}) {
				if strings.Contains(l.Text, "re-seed") || strings.Contains(l.Text, "rebuild") || strings.Contains(l.Text, "clone") || strings.Contains(l.Text, "backup") {
					t.Log(l.Text)
				}
			}
			t.Fatalf("%s not re-seeded and replicating within 3m: re-seed done %t, view %+v reason %q, err %v", c.Name(i), done, v.Local, v.Reason, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rebuild asks the leader, through member p's agent, to re-seed member i. Right after a fault
// heals the leader may not see i's agent alive yet and refuses; it asks again for up to a minute.
func (c *Cluster) rebuild(i, p int) adminapi.Rebuild {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rb, err := c.Admin.RequestRebuild(ctx, c.AdminAddr(p), c.Name(i))
		cancel()
		if err == nil {
			return rb
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("rebuild %s: %v", c.Name(i), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
