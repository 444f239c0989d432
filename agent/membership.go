package agent

import (
	"context"

	"github.com/shoal-db/shoal/agent/gossip"
	"github.com/shoal-db/shoal/consensus"
)

// maintainRaft bootstraps Raft once bootstrap_expect members are seen (Consul's rule), and on the
// leader keeps the Raft configuration in line with gossip: joiners added, voters up to five,
// members gone too long removed but never below a majority of the configured size.
func (a *Agent) maintainRaft(ctx context.Context) {
	members := a.gossip.Members()
	cands := make([]consensus.Candidate, 0, len(members))
	for _, m := range members {
		addr := m.Health.RaftAddr
		if m.Name == a.opts.NodeID {
			addr = a.opts.RaftAddr // our own report may not have gone out yet
		}
		c := consensus.Candidate{ID: m.Name, Addr: addr, Alive: m.State == gossip.StateAlive,
			Bootstrapped: m.Health.Bootstrapped}
		if !c.Alive {
			c.GoneSince = m.StateSince
		}
		cands = append(cands, c)
	}
	if !a.raft.HasState() {
		if servers, ok := consensus.ShouldBootstrap(cands, a.opts.BootstrapExpect); ok {
			if err := a.raft.Bootstrap(servers); err != nil {
				a.log.Warn("raft bootstrap failed", "err", err)
			} else {
				a.log.Info("raft bootstrapped", "members", len(servers))
			}
		}
		return
	}
	if !a.raft.IsLeader() {
		return
	}
	current, err := a.raft.Configuration()
	if err != nil {
		a.log.Warn("reading raft configuration failed", "err", err)
		return
	}
	plan := consensus.PlanMembership(current, cands, a.now(), consensus.MembershipOptions{
		Self: a.opts.NodeID, ExpectedVoters: a.opts.BootstrapExpect, RemoveAfter: a.opts.RemoveAfter,
	})
	for _, change := range plan {
		if err := a.raft.ApplyChange(ctx, change); err != nil {
			a.log.Warn("raft membership change failed", "reason", change.Reason, "err", err)
			return
		}
		a.log.Info("raft membership changed", "reason", change.Reason)
	}
}
