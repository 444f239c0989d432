package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/hostport"
)

// act carries out a decision: Raft membership first (it never waits on MySQL), then the node
// action (fencing is the most urgent thing an agent can do), then the lease, then the leader's
// cluster steps. It reports whether state changed, so the loop runs again at once instead of
// waiting for the next tick.
func (a *Agent) act(ctx context.Context, obs ha.Observation, d ha.Decision) (bool, error) {
	a.actRaft(ctx, d)
	changed, err := a.actNode(ctx, obs, d)
	if err != nil {
		return changed, err
	}
	// A refused renewal must not hold up the leader's own cluster steps: when the leader is the
	// primary whose lease ended early, re-electing it is exactly what fixes the refusal.
	leaseChanged, leaseErr := a.actLease(ctx, obs, d)
	changed = changed || leaseChanged
	if !obs.Leader {
		a.endPreparation()
		return changed, leaseErr
	}
	if d.TransferLeadership {
		if err := a.raft.TransferLeadership(ctx, d.TransferTo); err != nil {
			return changed, errors.Join(leaseErr, fmt.Errorf("transfer leadership: %w", err))
		}
		return true, leaseErr
	}
	if d.RevokeLease {
		a.leases.revoke(obs.Record.Epoch, a.raft.LeaderSince())
	}
	clusterChanged, err := a.actCluster(ctx, obs, d)
	return changed || clusterChanged, errors.Join(leaseErr, err)
}

// actRaft bootstraps Raft or changes its configuration. A failure is logged and left to the
// next pass, which plans again: it must not hold up fencing or a failover.
func (a *Agent) actRaft(ctx context.Context, d ha.Decision) {
	if d.Bootstrap != nil {
		if err := a.raft.Bootstrap(d.Bootstrap); err != nil {
			a.log.Warn("raft bootstrap failed", "err", err)
		} else {
			a.log.Info("raft bootstrapped", "members", len(d.Bootstrap))
		}
	}
	for _, change := range d.Membership {
		if err := a.raft.ApplyChange(ctx, change); err != nil {
			a.log.Warn("raft membership change failed", "reason", change.Reason, "err", err)
			return
		}
		a.log.Info("raft membership changed", "reason", change.Reason)
	}
}

func (a *Agent) actNode(ctx context.Context, obs ha.Observation, d ha.Decision) (bool, error) {
	switch d.Node {
	case ha.NodeNone:
		return false, nil
	case ha.NodeKill:
		a.metrics.fences.WithLabelValues(string(d.NodeReason.Code)).Inc()
		return true, killMySQL(a.opts.MySQLPIDFile)
	}
	local, err := a.pool.get(ctx, a.opts.LocalMySQLAddr)
	if err != nil {
		return false, err
	}
	switch d.Node {
	case ha.NodeFence:
		a.metrics.fences.WithLabelValues(string(d.NodeReason.Code)).Inc()
		return true, a.fence(ctx, local)
	case ha.NodeOpenWrites:
		// Time passed since the decision: never open writes on a lease that ran out meanwhile.
		if !a.now().Before(a.leaseUntil) {
			return true, nil
		}
		ctx, cancel := context.WithDeadline(ctx, a.leaseUntil)
		defer cancel()
		// The replication account is ensured on the way (binlogged, so every replica and every
		// later primary has the same one).
		return true, local.Promote(ctx, mysqlctl.PromoteOptions{SemiSync: a.opts.SemiSync,
			ReplUser: a.opts.ReplUser, ReplPassword: a.opts.ReplPassword})
	}
	// The remaining actions drive the local server's replication. None may hold the loop (its
	// lease, its fencing, a leader's failover) longer than a fence may; the next pass decides
	// again and each action is idempotent. A receiver's stop is joined once under way
	// (mysqlctl.StopIOThread), so waiting more than a probe for it gains nothing.
	limit := a.opts.FenceTimeout
	if d.Node == ha.NodeStopReceiver {
		limit = a.opts.ProbeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	switch d.Node {
	case ha.NodeReplicate:
		src, err := a.source(obs.Record)
		if err != nil {
			return false, err
		}
		if err := a.confirmFollow(ctx, obs); err != nil {
			return false, err
		}
		return true, local.ConfigureReplica(ctx, src, mysqlctl.ReplicaOptions{SemiSync: !a.opts.SemiSync.Async})
	case ha.NodeStartReplica:
		if err := a.confirmFollow(ctx, obs); err != nil {
			return false, err
		}
		return true, local.StartReplica(ctx)
	case ha.NodeStopReplica:
		return true, local.StopReplica(ctx)
	case ha.NodeStopReceiver:
		return true, local.StopIOThread(ctx)
	}
	return false, fmt.Errorf("unknown node action %q", d.Node)
}

// fence fences srv within Options.FenceTimeout.
func (a *Agent) fence(ctx context.Context, srv mysqlServer) error {
	ctx, cancel := context.WithTimeout(ctx, a.opts.FenceTimeout)
	defer cancel()
	return srv.Fence(ctx, mysqlctl.FenceOptions{})
}

// source is the replication source for the recorded primary.
func (a *Agent) source(rec record.Record) (mysqlctl.Source, error) {
	addr := rec.Members[rec.Primary].MySQLAddr
	host, port, err := hostport.Split(addr)
	if err != nil {
		return mysqlctl.Source{}, fmt.Errorf("primary %s: %w", rec.Primary, err)
	}
	return mysqlctl.Source{Host: host, Port: int(port), User: a.opts.ReplUser, Password: a.opts.ReplPassword}, nil
}

// actLease renews or releases this agent's primary lease with the leader (itself, if it leads).
// The lease is counted from before the request left, so it ends no later than the leader thinks.
func (a *Agent) actLease(ctx context.Context, obs ha.Observation, d ha.Decision) (bool, error) {
	switch {
	case d.ReleaseLease:
		held := obs.Now.Before(a.leaseUntil)
		a.leaseUntil = time.Time{} // gone here first, whatever the leader hears
		return held, a.askLeader(ctx, adminapi.LeaseRequest{Member: a.opts.NodeID, Epoch: obs.Record.Epoch, Release: true, Draining: obs.Draining})
	case d.RenewLease:
		start := a.now()
		held := start.Before(a.leaseUntil)
		if err := a.askLeader(ctx, adminapi.LeaseRequest{Member: a.opts.NodeID, Epoch: obs.Record.Epoch}); err != nil {
			if errors.Is(err, adminapi.ErrLeaseRevoked) && held {
				// The next pass fences (or kills a stalled server) now, not when the rest runs out.
				a.leaseUntil = time.Time{}
				return true, fmt.Errorf("renew primary lease: %w; lease dropped", err)
			}
			return false, fmt.Errorf("renew primary lease: %w", err)
		}
		a.leaseUntil = start.Add(a.opts.Policy.Lease)
		return !held, nil
	}
	return false, nil
}

// confirmFollow asks the leader whether this replica may start receiving from the recorded
// primary (docs/protocol.md, failover step 5).
func (a *Agent) confirmFollow(ctx context.Context, obs ha.Observation) error {
	if err := a.askLeader(ctx, adminapi.LeaseRequest{Member: a.opts.NodeID, Epoch: obs.Record.Epoch, Follow: true}); err != nil {
		return fmt.Errorf("confirm primary %s of epoch %d before replicating: %w", obs.Record.Primary, obs.Record.Epoch, err)
	}
	return nil
}

func (a *Agent) askLeader(ctx context.Context, req adminapi.LeaseRequest) error {
	ctx, cancel := context.WithTimeout(ctx, a.opts.Policy.Lease/2)
	defer cancel()
	if a.raft.IsLeader() {
		return a.leases.handle(ctx, a.raft, req, a.now)
	}
	addr, err := a.leaderAdmin()
	if err != nil {
		return err
	}
	return a.lease.Lease(ctx, addr, req)
}

// actCluster carries out the leader's steps: fence a member, ready the candidate, propose.
func (a *Agent) actCluster(ctx context.Context, obs ha.Observation, d ha.Decision) (bool, error) {
	rec := obs.Record
	if d.Prepare == "" {
		a.endPreparation()
	}
	if id := d.FenceMember; id != "" {
		srv, err := a.pool.get(ctx, rec.Members[id].MySQLAddr)
		if err != nil {
			return false, fmt.Errorf("fence %s: %w", id, err)
		}
		if err := a.fence(ctx, srv); err != nil {
			return false, fmt.Errorf("fence %s: %w", id, err)
		}
		a.metrics.fences.WithLabelValues(string(d.ClusterReason.Code)).Inc()
		return true, nil
	}
	if id := d.Prepare; id != "" {
		var quarantine []string
		for _, q := range d.Quarantine {
			if q != id {
				quarantine = append(quarantine, rec.Members[q].MySQLAddr)
			}
		}
		ready, err := a.prepareInPass(ctx, rec, rec.Members[id].MySQLAddr, d, quarantine)
		if err != nil {
			a.metrics.failovers.WithLabelValues("prepare_failed").Inc()
			return false, fmt.Errorf("prepare candidate %s: %w", id, err)
		}
		if !ready {
			return false, nil // preparing in the background (preparing.go)
		}
	}
	if d.Reseed != nil {
		return false, a.askReseed(ctx, rec, *d.Reseed)
	}
	if d.Propose == nil {
		return false, nil
	}
	_, err := a.raft.Apply(ctx, *d.Propose)
	if d.Propose.Op == record.OpSetPrimary {
		result := "committed"
		if err != nil {
			result = "refused"
		}
		a.metrics.failovers.WithLabelValues(result).Inc()
	}
	if err != nil {
		return false, fmt.Errorf("propose %s: %w", d.Propose.Op, err)
	}
	return true, nil
}

// prepare readies a candidate: it stops receiving, then applies everything it received and
// everything in d.PrepareWaitFor (the old primary's executed set, when it is still reachable).
// The replicas in quarantine stop receiving too, so an old primary out of reach cannot have a
// write acknowledged any more, and the candidate must hold all they received, or will once
// d.PrepareRecover's transactions are copied onto it from the logs of a member that
// cannot apply them. A candidate whose applier is stopped (d.PrepareStartApplier) has it
// started before its receiver stops: MariaDB would purge the relay log of a replica whose
// threads are both stopped (mysqlctl.StartApplier). All of it, the copy included, is bounded
// by the prepare timeout.
func (a *Agent) prepare(ctx context.Context, rec record.Record, addr string, d ha.Decision, quarantine []string) error {
	ctx, cancel := context.WithTimeout(ctx, a.opts.PrepareTimeout)
	defer cancel()
	waitFor := d.PrepareWaitFor
	if d.PrepareStartApplier {
		srv, err := a.pool.get(ctx, addr)
		if err != nil {
			return err
		}
		if err := srv.StartApplier(ctx); err != nil {
			return fmt.Errorf("start the candidate's applier: %w", err)
		}
	}
	// The receivers stop together: each may take a moment, and none depends on another.
	stops := quarantine
	if waitFor == nil {
		// The old primary is gone: freeze what the candidate received so the wait has an end.
		stops = append(slices.Clone(quarantine), addr)
	}
	frozen := make([]gtid.Set, len(stops))
	errs := make([]error, len(stops))
	var wg sync.WaitGroup
	for i, q := range stops {
		wg.Go(func() { frozen[i], errs[i] = a.stopReceiving(ctx, q) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("stop the receiver of %s: %w", stops[i], err)
		}
	}
	others := frozen[:len(quarantine)]
	var want gtid.Set
	if waitFor == nil {
		want = frozen[len(quarantine)]
	} else {
		srv, err := a.pool.get(ctx, addr)
		if err != nil {
			return err
		}
		st, err := srv.Status(ctx)
		if err != nil {
			return err
		}
		if want, err = st.Received().Union(*waitFor); err != nil {
			return err
		}
	}
	promised := want
	if r := d.PrepareRecover; r != nil {
		var err error
		if promised, err = want.Union(r.GTIDs); err != nil {
			return err
		}
	}
	for i, received := range others {
		if ok, err := promised.Contains(received); err != nil || !ok {
			return fmt.Errorf("replica %s received transactions the candidate lacks (%s): %w", quarantine[i], received, errors.Join(err, errCandidateBehind))
		}
	}
	srv, err := a.pool.get(ctx, addr)
	if err != nil {
		return err
	}
	if err := srv.WaitApplied(ctx, want); err != nil {
		return err
	}
	if d.PrepareRecover == nil {
		return nil
	}
	return a.recoverFromLogs(ctx, srv, addr, rec, *d.PrepareRecover)
}

// errCandidateBehind: a quarantined replica holds more than the candidate; the next pass picks
// again from the frozen sets.
var errCandidateBehind = errors.New("candidate is behind")

// stopReceiving stops a replica's IO thread and returns what it received by then.
func (a *Agent) stopReceiving(ctx context.Context, addr string) (gtid.Set, error) {
	srv, err := a.pool.get(ctx, addr)
	if err != nil {
		return gtid.Set{}, err
	}
	st, err := srv.Status(ctx)
	if err != nil {
		return gtid.Set{}, err
	}
	if st.Replica != nil {
		if err := srv.StopIOThread(ctx); err != nil {
			return gtid.Set{}, err
		}
		if st, err = srv.Status(ctx); err != nil {
			return gtid.Set{}, err
		}
	}
	return st.Received(), nil
}
