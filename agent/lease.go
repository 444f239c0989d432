package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/consensus/record"
)

// leases is the leader's side of the primary lease. A grant is given only after VerifyLeader
// confirmed that a majority still follows this leader, so a leader cut off from the majority
// cannot keep an isolated primary writable.
type leases struct {
	mu    sync.Mutex
	since time.Time // the leadership stint the state belongs to
	grant ha.LeaseGrant
	// readyFor is the leadership stint whose Barrier completed: before it, the record may lack
	// a failover an earlier leader committed, and a grant could renew a replaced primary.
	readyFor time.Time
}

// ready reports whether the Barrier of the leadership that began at since completed.
func (l *leases) ready(since time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readyFor.Equal(since)
}

// markReady records that the Barrier of the leadership that began at since completed.
func (l *leases) markReady(since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.readyFor = since
}

// view returns the grant state for epoch in the leadership that began at since. A new stint
// starts from LastGrant = since: any lease an earlier leader granted predates it. A new epoch in
// the same stint keeps the last grant of the old one.
func (l *leases) view(epoch uint64, since time.Time) ha.LeaseGrant {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reset(epoch, since)
	return l.grant
}

func (l *leases) reset(epoch uint64, since time.Time) {
	if l.since.Equal(since) && l.grant.Epoch == epoch {
		return
	}
	last := since
	if l.since.Equal(since) && l.grant.LastGrant.After(last) {
		// Same leadership, new epoch: a lease this leader granted in the old epoch may still run
		// on its holder (found by the model: re-election, then a failover that waited too little).
		last = l.grant.LastGrant
	}
	l.since = since
	l.grant = ha.LeaseGrant{Epoch: epoch, LastGrant: last}
}

// revoke stops renewals for epoch.
func (l *leases) revoke(epoch uint64, since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reset(epoch, since)
	l.grant.Revoked = true
}

// handle answers a lease request on the leader.
func (l *leases) handle(ctx context.Context, node raftNode, req adminapi.LeaseRequest, now func() time.Time) error {
	if !node.IsLeader() {
		return adminapi.ErrNotLeader
	}
	if !l.ready(node.LeaderSince()) {
		return fmt.Errorf("%w: new leader, still applying what earlier leaders committed", adminapi.ErrLeaseRefused)
	}
	rec := node.Record()
	if req.Follow {
		return l.confirmFollow(ctx, node, req, rec)
	}
	if req.Epoch != rec.Epoch || req.Member != rec.Primary {
		return fmt.Errorf("%w: %s is not the primary of epoch %d (record: %q in epoch %d)",
			adminapi.ErrLeaseRevoked, req.Member, req.Epoch, rec.Primary, rec.Epoch)
	}
	since := node.LeaderSince()
	if req.Release {
		l.mu.Lock()
		l.reset(rec.Epoch, since)
		l.grant.Released = true
		l.grant.Draining = l.grant.Draining || req.Draining
		l.mu.Unlock()
		return nil
	}
	if rec.Switchover != nil {
		return fmt.Errorf("%w: a switchover is pending", adminapi.ErrLeaseRefused)
	}
	if err := l.renewable(rec.Epoch, since); err != nil {
		return err
	}
	if err := node.VerifyLeader(ctx); err != nil {
		return fmt.Errorf("%w: leadership not confirmed by a majority: %w", adminapi.ErrLeaseRefused, err)
	}
	granted := now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reset(rec.Epoch, since)
	if l.grant.Released || l.grant.Revoked {
		return fmt.Errorf("%w: released or revoked while confirming leadership", adminapi.ErrLeaseRevoked)
	}
	if granted.After(l.grant.LastGrant) {
		l.grant.LastGrant = granted
	}
	return nil
}

func (l *leases) renewable(epoch uint64, since time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reset(epoch, since)
	switch {
	case l.grant.Released:
		return fmt.Errorf("%w: the lease of epoch %d was released; a new epoch is needed", adminapi.ErrLeaseRevoked, epoch)
	case l.grant.Revoked:
		return fmt.Errorf("%w: the leader judged the primary of epoch %d down", adminapi.ErrLeaseRevoked, epoch)
	}
	return nil
}

// confirmFollow answers a replica's Follow request.
func (l *leases) confirmFollow(ctx context.Context, node raftNode, req adminapi.LeaseRequest, rec record.Record) error {
	if req.Epoch != rec.Epoch || req.Member == rec.Primary {
		return fmt.Errorf("%w: epoch %d is not current for replica %s (record: epoch %d, primary %q)",
			adminapi.ErrLeaseRefused, req.Epoch, req.Member, rec.Epoch, rec.Primary)
	}
	if l.view(rec.Epoch, node.LeaderSince()).Revoked {
		return fmt.Errorf("%w: the primary of epoch %d is being replaced", adminapi.ErrLeaseRefused, rec.Epoch)
	}
	if err := node.VerifyLeader(ctx); err != nil {
		return fmt.Errorf("%w: leadership not confirmed by a majority: %w", adminapi.ErrLeaseRefused, err)
	}
	return nil
}
