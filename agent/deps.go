package agent

import (
	"context"
	"io"
	"time"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/gossip"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/membership"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

// mysqlServer is what the agent says to one MySQL server; *mysqlctl.Server implements it.
type mysqlServer interface {
	Status(ctx context.Context) (state.Status, error)
	Fence(ctx context.Context, opts mysqlctl.FenceOptions) error
	Promote(ctx context.Context, opts mysqlctl.PromoteOptions) error
	ConfigureReplica(ctx context.Context, src mysqlctl.Source, opts mysqlctl.ReplicaOptions) error
	StartReplica(ctx context.Context) error
	StopReplica(ctx context.Context) error
	StopIOThread(ctx context.Context) error
	StartApplier(ctx context.Context) error
	WaitApplied(ctx context.Context, set gtid.Set) error
	ApplyBinlogSQL(ctx context.Context, r io.Reader) error
	EnsureReplicationUser(ctx context.Context, user, password string) error
	WriteHeartbeat(ctx context.Context, member string, at time.Time) error
	Close() error
}

// dialer opens a mysqlServer for an address.
type dialer = func(ctx context.Context, addr string) (mysqlServer, error)

// raftNode is the agent's view of its Raft node; *consensus.Node implements it.
type raftNode interface {
	ID() string
	Record() record.Record
	Changes() <-chan struct{}
	IsLeader() bool
	Leader() (id, addr string)
	LeaderSince() time.Time
	HasState() bool
	Apply(ctx context.Context, cmd record.Command) (record.Record, error)
	Barrier(ctx context.Context) error
	VerifyLeader(ctx context.Context) error
	Bootstrap(servers []membership.Server) error
	Configuration() ([]membership.Server, error)
	ApplyChange(ctx context.Context, c membership.Change) error
	TransferLeadership(ctx context.Context, to string) error
}

// gossipView is the agent's view of gossip; *gossip.Gossip implements it.
type gossipView interface {
	Members() []gossip.Peer
	SetHealth(r health.Report) error
	Events() <-chan struct{}
}

// leaseClient asks the Raft leader to renew or release this agent's primary lease.
type leaseClient interface {
	Lease(ctx context.Context, leaderAdminAddr string, req adminapi.LeaseRequest) error
}

// MySQLDialer adapts a function opening *mysqlctl.Server to what the agent needs.
func MySQLDialer(open func(ctx context.Context, addr string) (*mysqlctl.Server, error)) func(ctx context.Context, addr string) (mysqlServer, error) {
	return func(ctx context.Context, addr string) (mysqlServer, error) {
		srv, err := open(ctx, addr)
		if err != nil {
			return nil, err
		}
		return srv, nil
	}
}
