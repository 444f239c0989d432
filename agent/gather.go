package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-db/shoal/agent/gossip"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/consensus/membership"
	"github.com/shoal-db/shoal/consensus/record"
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

// gather builds the Observation for one pass. The leader's lease table may reflect a record
// newer than the one the pass read at its start: a primary releases its lease once it sees a
// switchover, which the leader applied before it did. Deciding on the older record with that
// release would re-elect a primary that stepped down for the switchover (seen in a benchmark).
// So a leader whose record moved while it gathered gathers again, and after three tries makes
// no cluster decision in this pass; the change that moved the record runs the next pass at once.
//
// reads holds a non-leader's reads of the members it probed only for publishing (unsettled).
func (a *Agent) gather(ctx context.Context) (obs ha.Observation, reads map[string]ha.Server) {
	obs, reads = a.gatherOnce(ctx)
	for try := 1; obs.Leader && recordMoved(obs.Record, a.raft.Record()); try++ {
		if try == 3 {
			obs.Leader = false
			break
		}
		obs, reads = a.gatherOnce(ctx)
	}
	return obs, reads
}

// unsettled returns the members a non-leader reads itself for its publishers: those alive in
// gossip whose reports do not show them serving in the role the record gives them. After a
// failover the replicas re-point within a pass, but their reports reach the other agents up to
// a gossip round or two later (about 320 ms measured), and DNS would leave them out meanwhile; a
// read of this pass settles it. In the steady state every member serves and nothing is read.
func unsettled(self string, rec record.Record, peers map[string]ha.Peer) map[string]string {
	out := map[string]string{}
	for id, m := range rec.Members {
		if p := peers[id]; id != self && id != rec.Primary && m.MySQLAddr != "" && p.Alive() && !p.Report.Serving(id, rec.Primary) {
			out[id] = m.MySQLAddr
		}
	}
	return out
}

// recordMoved reports whether the record changed in what the cluster decisions branch on.
func recordMoved(was, now record.Record) bool {
	return was.Epoch != now.Epoch || was.Primary != now.Primary || was.Paused != now.Paused ||
		(was.Switchover == nil) != (now.Switchover == nil) || was.Cluster != now.Cluster || len(was.Members) != len(now.Members)
}

func (a *Agent) gatherOnce(ctx context.Context) (ha.Observation, map[string]ha.Server) {
	leader := a.leaderReady(ctx)
	members := a.gossip.Members() // one snapshot for the peers and the Raft view alike
	rec := a.raft.Record()
	run := a.reseed.Load()
	obs := ha.Observation{
		Self:       a.opts.NodeID,
		Cluster:    a.opts.Cluster,
		Record:     rec,
		Leader:     leader,
		LeaseUntil: a.leaseUntil,
		Draining:   a.draining,
		Reseeding:  run != nil,
		Memory:     a.memory,
		Peers:      peers(members),
		Raft:       a.raftView(members, leader),
	}
	if run != nil {
		obs.ReseedFrom = run.donor
	}

	// The local server is read first and the others after it: a replica's errant check compares
	// its executed set with the primary's, and a primary read earlier could lack a transaction
	// the replica applied in between, which would look errant.
	obs.Local = a.probe(ctx, a.opts.LocalMySQLAddr)
	// Only the writable primary writes heartbeats: on any other server the row would be errant.
	// And only under its lease: past it the server is being fenced, and a heartbeat waiting for
	// an ack it will not get would hold up the fence.
	writer := rec.Primary == a.opts.NodeID && obs.Local.Up && obs.Local.Status.Writable() && a.now().Before(a.leaseUntil)
	obs.CommitWaitingSince = a.commits.observe(writer, rec.Epoch)
	if !obs.CommitWaitingSince.IsZero() {
		// Only while a heartbeat waits: the binlog's growth then tells a long commit from a
		// stalled one.
		obs.BinlogWritten = a.binlogWritten(obs.Local.Status.BinlogBasename)
	}
	probes := map[string]string{} // member id -> address
	if p := rec.Primary; p != "" && p != a.opts.NodeID {
		probes[p] = rec.Members[p].MySQLAddr
	}
	var published map[string]string
	if obs.Leader {
		for id, m := range rec.Members {
			if id != a.opts.NodeID && m.MySQLAddr != "" {
				probes[id] = m.MySQLAddr
			}
		}
	} else {
		published = unsettled(a.opts.NodeID, rec, obs.Peers)
		maps.Copy(probes, published)
	}
	results := a.probeAll(ctx, probes, published)
	reads := make(map[string]ha.Server, len(published))
	for id := range published {
		reads[id] = results[id]
	}
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
		a.mu.Lock()
		obs.RecoveryFailed = a.recoveryFailed
		a.mu.Unlock()
	}
	// The clock is read after the probes, so nothing the decision compares is older than Now.
	obs.Now = a.now()
	return obs, reads
}

// probeAll probes the other members' servers in parallel (the probes are remoteProbes'). A pass
// waits for a server that answered last time until its probe ends, but for one whose last
// probe failed only briefly: a live server answers within milliseconds, and waiting out the
// probe timeout on a silent one would slow every pass of the outage, the promotion's included.
// The probe goes on meanwhile and the next pass takes its result. The members in brief are read
// for publishing only, which never holds a pass longer than that brief wait.
func (a *Agent) probeAll(ctx context.Context, addrs, brief map[string]string) map[string]ha.Server {
	out := make(map[string]ha.Server, len(addrs))
	type started struct {
		run          *probeRun
		answeredLast bool
	}
	runs := make(map[string]started, len(addrs))
	for id, addr := range addrs {
		if addr == "" {
			out[id] = ha.Server{Err: fmt.Sprintf("no MySQL address recorded for %q", id)}
			continue
		}
		run, answeredLast := a.remote.start(addr, func() ha.Server {
			// Not the pass's ctx: the probe may outlive the pass, and its own timeout ends it.
			return a.probe(context.WithoutCancel(ctx), addr)
		})
		runs[id] = started{run, answeredLast}
	}
	for id, r := range runs {
		// A little past the probe's own timeout, so its timeout is what the pass reports.
		patience := a.opts.ProbeTimeout + 50*time.Millisecond
		if _, ok := brief[id]; ok || !r.answeredLast {
			patience = min(a.opts.ProbeTimeout, a.opts.Policy.Tick/4)
		}
		if s, ok := a.remote.wait(addrs[id], r.run, r.run.started.Add(patience)); ok {
			out[id] = s
		} else {
			out[id] = ha.Server{Stalled: true, Pending: true, Err: fmt.Sprintf("a probe unanswered after %s, the one before it failed too",
				time.Since(r.run.started).Round(time.Millisecond))}
		}
	}
	return out
}

// remoteProbes keeps at most one probe in flight per address, across passes.
type remoteProbes struct {
	mu       sync.Mutex
	inFlight map[string]*probeRun
	// failed holds the addresses whose last finished probe failed.
	failed map[string]bool
}

type probeRun struct {
	started time.Time
	done    chan struct{}
	result  ha.Server
}

// start returns the probe in flight for addr, or starts one; and whether addr's last finished
// probe succeeded (true when there was none).
func (r *remoteProbes) start(addr string, probe func() ha.Server) (*probeRun, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inFlight == nil {
		r.inFlight, r.failed = map[string]*probeRun{}, map[string]bool{}
	}
	run := r.inFlight[addr]
	if run == nil {
		run = &probeRun{started: time.Now(), done: make(chan struct{})}
		r.inFlight[addr] = run
		go func() {
			run.result = probe()
			close(run.done)
		}()
	}
	return run, !r.failed[addr]
}

// wait returns run's result if it ends by deadline. A finished run is forgotten, so the next
// pass probes again.
func (r *remoteProbes) wait(addr string, run *probeRun, deadline time.Time) (ha.Server, bool) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-run.done:
	case <-timer.C:
		return ha.Server{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inFlight[addr] == run {
		delete(r.inFlight, addr)
		r.failed[addr] = !run.result.Up
	}
	return run.result, true
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
