package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"github.com/shoal-db/shoal/agent/gossip"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/consensus/membership"
)

// serverPool keeps one open mysqlctl handle per address, opened on first use. A server that is
// down fails to open and is tried again on the next pass.
type serverPool struct {
	dial dialer
	mu   sync.Mutex
	open map[string]mysqlServer
}

func (p *serverPool) get(ctx context.Context, addr string) (mysqlServer, error) {
	p.mu.Lock()
	srv, ok := p.open[addr]
	p.mu.Unlock()
	if ok {
		return srv, nil
	}
	srv, err := p.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if existing, ok := p.open[addr]; ok { // another goroutine won the race
		srv.Close()
		return existing, nil
	}
	p.open[addr] = srv
	return srv, nil
}

func (p *serverPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, srv := range p.open {
		srv.Close()
		delete(p.open, addr)
	}
}

// probe reads one server's status within the probe timeout.
func (a *Agent) probe(ctx context.Context, addr string) ha.Server {
	ctx, cancel := context.WithTimeout(ctx, a.opts.ProbeTimeout)
	defer cancel()
	srv, err := a.pool.get(ctx, addr)
	if err != nil {
		return down(err)
	}
	st, err := srv.Status(ctx)
	if err != nil {
		return down(err)
	}
	return ha.Server{Up: true, Status: st}
}

// down describes a failed probe; refused connections and missing sockets mean no server runs.
func down(err error) ha.Server {
	var nerr net.Error
	return ha.Server{Err: err.Error(), Gone: errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT),
		Stalled: errors.Is(err, context.DeadlineExceeded) || errors.As(err, &nerr) && nerr.Timeout()}
}

// gather builds the Observation for one pass.
func (a *Agent) gather(ctx context.Context) ha.Observation {
	leader := a.leaderReady(ctx)
	members := a.gossip.Members() // one snapshot for the peers and the Raft view alike
	rec := a.raft.Record()
	obs := ha.Observation{
		Self:       a.opts.NodeID,
		Cluster:    a.opts.Cluster,
		Record:     rec,
		Leader:     leader,
		LeaseUntil: a.leaseUntil,
		Draining:   a.draining,
		Memory:     a.memory,
		Peers:      peers(members),
		Raft:       a.raftView(members, leader),
	}

	// The local server is read first and the others after it: a replica's errant check compares
	// its executed set with the primary's, and a primary read earlier could lack a transaction
	// the replica applied in between, which would look errant.
	obs.Local = a.probe(ctx, a.opts.LocalMySQLAddr)
	probes := map[string]string{} // member id -> address
	if p := rec.Primary; p != "" && p != a.opts.NodeID {
		probes[p] = rec.Members[p].MySQLAddr
	}
	if obs.Leader {
		for id, m := range rec.Members {
			if id != a.opts.NodeID && m.MySQLAddr != "" {
				probes[id] = m.MySQLAddr
			}
		}
	}
	results := a.probeAll(ctx, probes)
	if p := rec.Primary; p != "" && p != a.opts.NodeID {
		primary := results[p]
		obs.Primary = &primary
	}
	if obs.Leader {
		obs.Servers = make(map[string]ha.Server, len(rec.Members))
		for id := range rec.Members {
			if id == a.opts.NodeID {
				obs.Servers[id] = obs.Local
			} else {
				obs.Servers[id] = results[id]
			}
		}
		obs.Grant = a.leases.view(rec.Epoch, a.raft.LeaderSince())
	}
	// The clock is read after the probes, so nothing the decision compares is older than Now.
	obs.Now = a.now()
	return obs
}

// probeAll probes the servers in parallel: one slow server must not delay the others.
func (a *Agent) probeAll(ctx context.Context, addrs map[string]string) map[string]ha.Server {
	out := make(map[string]ha.Server, len(addrs))
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for id, addr := range addrs {
		if addr == "" {
			out[id] = ha.Server{Err: fmt.Sprintf("no MySQL address recorded for %q", id)}
			continue
		}
		wg.Go(func() {
			s := a.probe(ctx, addr)
			mu.Lock()
			out[id] = s
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// raftView is what the membership decisions need: gossip's members as Raft candidates, and on
// the leader the current configuration.
func (a *Agent) raftView(members []gossip.Peer, leader bool) ha.Raft {
	v := ha.Raft{HasState: a.raft.HasState(), Seen: make([]membership.Candidate, 0, len(members))}
	for _, m := range members {
		addr := m.Health.RaftAddr
		if m.Name == a.opts.NodeID {
			addr = a.opts.RaftAddr // our own report may not have gone out yet
		}
		c := membership.Candidate{ID: m.Name, Addr: addr, Alive: m.State == gossip.StateAlive,
			Bootstrapped: m.Health.Bootstrapped}
		if !c.Alive {
			c.GoneSince = m.StateSince
		}
		v.Seen = append(v.Seen, c)
	}
	if leader {
		current, err := a.raft.Configuration()
		if err != nil {
			// Without it the plan is empty: membership waits a pass, nothing else does.
			a.log.Warn("reading raft configuration failed", "err", err)
		}
		v.Configuration = current
	}
	return v
}

// peers maps gossip's member list into the decision's terms.
func peers(members []gossip.Peer) map[string]ha.Peer {
	out := make(map[string]ha.Peer, len(members))
	for _, m := range members {
		p := ha.Peer{Report: m.Health}
		switch m.State {
		case gossip.StateAlive:
			p.State = ha.PeerAlive
		case gossip.StateSuspect:
			p.State = ha.PeerSuspect
		case gossip.StateLeft:
			p.State = ha.PeerLeft
		default:
			p.State = ha.PeerDead
		}
		if m.HealthErr != nil {
			p.ReportErr = m.HealthErr.Error()
		}
		out[m.Name] = p
	}
	return out
}
