package agent

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

// Publisher tells the world where the primary is and which replicas serve: DNS records,
// Kubernetes endpoints and labels. Each runs on its own goroutine and gets views coalesced: a
// slow publisher skips to the newest view instead of working through old ones. Publish is
// called with every pass's view, so an error is retried by the next one.
type Publisher interface {
	Name() string
	Publish(ctx context.Context, v ClusterView) error
}

// ClusterView is what a publisher publishes, as of one pass.
type ClusterView struct {
	At time.Time
	// Record is the committed cluster record as this agent applied it.
	Record record.Record
	// Peers is gossip's view of every member by member id: its agent's state and last report.
	// This agent's own entry is the report of this pass, which gossip sends out from now on.
	Peers map[string]ha.Peer
	// Servers are this agent's own reads of members' MySQL, by member id: its own server, the
	// recorded primary's, and on the leader every member's. They were taken in this pass, while
	// a report waits for its agent's next pass and a gossip round. A server this pass fenced is
	// shown read-only: the read was taken before the fence.
	Servers map[string]ha.Server
	// Leader is set when this agent leads and passed its Barrier: publishers that write shared
	// state (the Kubernetes API) write only then.
	Leader bool
	// Sightings are when this agent last saw each member replicating from the recorded primary
	// (MemberView.Adrift), from earlier passes. Never changed once in a view.
	Sightings map[string]Sighting
}

// publishTimeout bounds one Publish call, so shutdown never waits on a hung publisher for long.
const publishTimeout = 10 * time.Second

// publisher runs one Publisher. Only the loop goroutine offers views, so emptying the slot
// before filling it never blocks.
type publisher struct {
	Publisher
	next chan ClusterView // capacity 1: the newest view not yet published
	done chan struct{}
}

func (a *Agent) startPublishers() {
	for _, p := range a.opts.Publishers {
		pub := &publisher{Publisher: p, next: make(chan ClusterView, 1), done: make(chan struct{})}
		go a.runPublisher(pub)
		a.publishers = append(a.publishers, pub)
	}
}

func (a *Agent) runPublisher(p *publisher) {
	defer close(p.done)
	for v := range p.next {
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		err := p.Publish(ctx, v)
		cancel()
		if err != nil {
			a.log.Warn("publishing failed", "publisher", p.Name(), "err", err)
			a.metrics.publishErrors.WithLabelValues(p.Name()).Inc()
		}
	}
}

func (p *publisher) offer(v ClusterView) {
	select {
	case <-p.next:
	default:
	}
	p.next <- v
}

// stopPublishers lets each publisher finish its last view, then waits for it.
func (a *Agent) stopPublishers() {
	for _, p := range a.publishers {
		close(p.next)
	}
	for _, p := range a.publishers {
		<-p.done
	}
	a.publishers = nil
}

// publish gossips this agent's health report, refreshes the admin view and hands the cluster
// view to the publishers; reads are the pass's reads made for them alone (gather).
func (a *Agent) publish(obs ha.Observation, d ha.Decision, reads map[string]ha.Server) {
	rep := a.report(obs, d)
	if err := a.gossip.SetHealth(rep); err != nil {
		a.log.Warn("publishing health report failed", "err", err)
	}
	leaderID, _ := a.raft.Leader()
	v := adminapi.View{
		Node: a.opts.NodeID, Leader: leaderID, IsLeader: a.raft.IsLeader(), Record: obs.Record,
		Reason: d.Reason(), NodeCode: string(d.NodeReason.Code), ClusterCode: string(d.ClusterReason.Code),
		LeaseUntil: a.leaseUntil, UpdatedAt: obs.Now, Report: rep, Errant: d.Errant,
		Local: adminapi.LocalView{Up: obs.Local.Up, Error: obs.Local.Err, Role: string(rep.Role), Writable: rep.Writable,
			Source: rep.Source, LagMs: rep.LagMillis},
	}
	if obs.Local.Up {
		v.Local.Executed = obs.Local.Status.Executed.String()
	}
	v.Local.CommitWaitMs, v.Local.CommitStall = commitWait(obs).Milliseconds(), string(d.CommitStall)
	for _, id := range slices.Sorted(maps.Keys(obs.Peers)) {
		p := obs.Peers[id]
		v.Peers = append(v.Peers, adminapi.PeerView{ID: id, State: string(p.State), Report: p.Report})
	}
	a.mu.Lock()
	a.view = v
	a.mu.Unlock()
	peers := maps.Clone(obs.Peers)
	if peers == nil {
		peers = map[string]ha.Peer{}
	}
	peers[a.opts.NodeID] = ha.Peer{State: ha.PeerAlive, Report: rep}
	cv := ClusterView{At: obs.Now, Record: obs.Record, Peers: peers, Servers: firstHand(obs, d, reads), Leader: obs.Leader}
	// A primary change this pass committed is published now, not a gather later: the reads
	// were taken before it, so the new primary is not shown serving until a read finds it
	// writable, while the old one leaves at once.
	if rec := a.raft.Record(); rec.Epoch > cv.Record.Epoch {
		cv.Record = rec
	}
	cv.Sightings = a.sightings
	a.sightings = sight(cv)
	for _, p := range a.publishers {
		p.offer(cv)
	}
}

// report is this agent's gossip report for the pass.
func (a *Agent) report(obs ha.Observation, d ha.Decision) health.Report {
	r := health.Report{
		Epoch: obs.Record.Epoch, MySQLUp: obs.Local.Up, Role: health.RoleUnknown, LagMillis: -1,
		Errant: d.Errant != "", Draining: a.draining, Reseeding: obs.Reseeding, ReseedFrom: obs.ReseedFrom, Bootstrapped: a.raft.HasState(),
		MySQLAddr: a.opts.MySQLAddr, RaftAddr: a.opts.RaftAddr, AdminAddr: a.opts.AdminAddr, XPort: a.opts.XPort,
		PrimaryUnreachable: obs.Primary != nil && !obs.Primary.Up, CommitStall: d.CommitStall,
	}
	if !obs.Local.Up {
		return r
	}
	return withRole(r, obs.Record, obs.Local.Status)
}

// withRole returns r with its role fields (Role, Writable, Source, IOConnected, SQLRunning,
// LagMillis) as status st shows them; a replica's source is named by its member id in rec.
func withRole(r health.Report, rec record.Record, st state.Status) health.Report {
	r.Writable = st.Writable()
	r.Source, r.IOConnected, r.SQLRunning, r.LagMillis, r.SourceRead = "", false, false, -1, ""
	switch {
	case st.Replica != nil:
		r.Role = health.RoleReplica
		rep := st.Replica
		r.Source = memberAt(rec, rep.SourceAddr())
		r.IOConnected = rep.IORunning()
		r.SQLRunning = rep.SQLRunning
		r.SourceRead = rep.ReadPos
		if rep.Lag != nil {
			r.LagMillis = rep.Lag.Milliseconds()
		}
	case r.Writable:
		r.Role = health.RolePrimary
		r.LagMillis = 0
	default:
		r.Role = health.RoleFenced
	}
	return r
}

// commitWait is how long the local heartbeat commit in flight has waited; 0 when none is.
func commitWait(obs ha.Observation) time.Duration {
	if obs.CommitWaitingSince.IsZero() {
		return 0
	}
	return obs.Now.Sub(obs.CommitWaitingSince)
}

// firstHand is what this pass read of members' MySQL, by member id (ClusterView.Servers):
// the observation's reads and those made for publishing only.
func firstHand(obs ha.Observation, d ha.Decision, reads map[string]ha.Server) map[string]ha.Server {
	out := make(map[string]ha.Server, len(obs.Servers)+len(reads)+2)
	maps.Copy(out, reads)
	maps.Copy(out, obs.Servers)
	out[obs.Self] = obs.Local
	if obs.Primary != nil && obs.Record.Primary != "" {
		out[obs.Record.Primary] = *obs.Primary
	}
	// The reads came before act: a server this pass fenced (or killed) must not be published
	// as writable until a read shows what the fence left.
	fenced := []string{d.FenceMember}
	if d.Node == ha.NodeFence || d.Node == ha.NodeKill {
		fenced = append(fenced, obs.Self)
	}
	for _, id := range fenced {
		if s, ok := out[id]; ok && s.Up {
			s.Status.ReadOnly, s.Status.SuperReadOnly = true, true
			out[id] = s
		}
	}
	return out
}

// memberAt returns the id of the member whose MySQL is at addr, or addr itself.
func memberAt(rec record.Record, addr string) string {
	for id, m := range rec.Members {
		if m.MySQLAddr == addr {
			return id
		}
	}
	return addr
}

// snapshot returns the current view for the admin API.
func (a *Agent) snapshot() adminapi.View {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.view
}
