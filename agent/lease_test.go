package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/consensus/record"
)

// leaderStub is the part of a Raft node the lease table uses.
type leaderStub struct {
	raftNode
	rec       record.Record
	since     time.Time
	verifyErr error
}

func (s *leaderStub) IsLeader() bool                     { return true }
func (s *leaderStub) Record() record.Record              { return s.rec }
func (s *leaderStub) LeaderSince() time.Time             { return s.since }
func (s *leaderStub) VerifyLeader(context.Context) error { return s.verifyErr }

func TestLeaseTable(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return t0.Add(time.Second) }
	node := &leaderStub{rec: record.Record{Cluster: "c", Epoch: 7, Primary: "db-0"}, since: t0}
	var l leases
	ask := func(req adminapi.LeaseRequest) error { return l.handle(ctx, node, req, now) }

	// Until its Barrier completed, a new leader may not know of a failover already committed.
	if err := ask(adminapi.LeaseRequest{Member: "db-0", Epoch: 7}); !errors.Is(err, adminapi.ErrLeaseRefused) || errors.Is(err, adminapi.ErrLeaseRevoked) {
		t.Fatalf("renewal before the barrier: %v, want a passing refusal", err)
	}
	l.markReady(t0)

	if err := ask(adminapi.LeaseRequest{Member: "db-0", Epoch: 7}); err != nil {
		t.Fatalf("renewal of the primary: %v", err)
	}
	if g := l.view(7, t0); !g.LastGrant.Equal(now()) {
		t.Fatalf("last grant %s, want %s", g.LastGrant, now())
	}
	if err := ask(adminapi.LeaseRequest{Member: "db-1", Epoch: 7, Follow: true}); err != nil {
		t.Fatalf("a replica of the current epoch may follow: %v", err)
	}
	for name, req := range map[string]adminapi.LeaseRequest{
		"renewal by a replica":      {Member: "db-1", Epoch: 7},
		"renewal in an older epoch": {Member: "db-0", Epoch: 6},
		"follow in an older epoch":  {Member: "db-1", Epoch: 6},
		"follow asked by a primary": {Member: "db-0", Epoch: 7, Follow: true},
		"follow in a newer epoch":   {Member: "db-1", Epoch: 8, Follow: true},
		"renewal in a future epoch": {Member: "db-0", Epoch: 8},
	} {
		if err := ask(req); !errors.Is(err, adminapi.ErrLeaseRefused) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}

	// A leader that cannot confirm its majority grants nothing.
	node.verifyErr = errors.New("no quorum")
	if err := ask(adminapi.LeaseRequest{Member: "db-0", Epoch: 7}); !errors.Is(err, adminapi.ErrLeaseRefused) || errors.Is(err, adminapi.ErrLeaseRevoked) {
		t.Errorf("renewal without a confirmed majority: %v", err)
	}
	if err := ask(adminapi.LeaseRequest{Member: "db-1", Epoch: 7, Follow: true}); !errors.Is(err, adminapi.ErrLeaseRefused) {
		t.Errorf("follow without a confirmed majority: %v", err)
	}
	node.verifyErr = nil

	// A new epoch under the same leader still counts from the last grant of the old one: that
	// lease may still run on its holder.
	if g := l.view(8, t0); !g.LastGrant.Equal(now()) || g.Epoch != 8 {
		t.Fatalf("new epoch, same leader: %+v, want the last grant %s kept", g, now())
	}
	l.view(7, t0)

	// Once revoked, neither the primary's lease nor a replica's reconnection is confirmed.
	l.revoke(7, t0)
	if err := ask(adminapi.LeaseRequest{Member: "db-0", Epoch: 7}); !errors.Is(err, adminapi.ErrLeaseRevoked) {
		t.Errorf("renewal after revocation: %v", err)
	}
	if err := ask(adminapi.LeaseRequest{Member: "db-1", Epoch: 7, Follow: true}); !errors.Is(err, adminapi.ErrLeaseRefused) {
		t.Errorf("follow after revocation: %v", err)
	}

	// A new leadership stint knows nothing of the old grants: it counts from its election.
	node.since = t0.Add(time.Minute)
	l.markReady(node.since)
	if g := l.view(7, node.since); g.Revoked || !g.LastGrant.Equal(node.since) {
		t.Fatalf("new stint: %+v", g)
	}

	// A released lease is never renewed in its epoch.
	if err := ask(adminapi.LeaseRequest{Member: "db-0", Epoch: 7, Release: true, Draining: true}); err != nil {
		t.Fatal(err)
	}
	if g := l.view(7, node.since); !g.Released || !g.Draining {
		t.Fatalf("after release: %+v", g)
	}
	if err := ask(adminapi.LeaseRequest{Member: "db-0", Epoch: 7}); !errors.Is(err, adminapi.ErrLeaseRevoked) {
		t.Errorf("renewal after release: %v", err)
	}
}
