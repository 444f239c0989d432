package agent

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/dns"
	"github.com/shoal-db/shoal/mysqlctl/hostport"
)

// View is what this agent shows through its admin API: its decision, its server and its peers.
type View struct {
	Node       string        `json:"node"`
	Leader     string        `json:"raft_leader"`
	IsLeader   bool          `json:"is_leader"`
	Record     record.Record `json:"record"`
	Reason     string        `json:"reason"`
	Local      LocalView     `json:"local"`
	Peers      []PeerView    `json:"peers"`
	LeaseUntil time.Time     `json:"lease_until,omitzero"`
	UpdatedAt  time.Time     `json:"updated_at"`
	Report     health.Report `json:"report"`
	Errant     string        `json:"errant_gtids,omitempty"`
}

// LocalView is the agent's own server, as of the last pass.
type LocalView struct {
	Up       bool   `json:"up"`
	Error    string `json:"error,omitempty"`
	Role     string `json:"role"`
	Writable bool   `json:"writable"`
	Executed string `json:"gtid_executed,omitempty"`
	Source   string `json:"source,omitempty"`
	LagMs    int64  `json:"lag_ms"`
}

// PeerView is one member as this agent's gossip sees it.
type PeerView struct {
	ID     string        `json:"id"`
	State  string        `json:"state"`
	Report health.Report `json:"report"`
}

// publish gossips this agent's health report and refreshes the admin view.
func (a *Agent) publish(obs ha.Observation, d ha.Decision) {
	rep := a.report(obs, d)
	if err := a.gossip.SetHealth(rep); err != nil {
		a.log.Warn("publishing health report failed", "err", err)
	}
	leaderID, _ := a.raft.Leader()
	v := View{
		Node: a.opts.NodeID, Leader: leaderID, IsLeader: a.raft.IsLeader(), Record: obs.Record,
		Reason: d.Reason(), LeaseUntil: a.leaseUntil, UpdatedAt: obs.Now, Report: rep, Errant: d.Errant,
		Local: LocalView{Up: obs.Local.Up, Error: obs.Local.Err, Role: string(rep.Role), Writable: rep.Writable,
			Source: rep.Source, LagMs: rep.LagMillis},
	}
	if obs.Local.Up {
		v.Local.Executed = obs.Local.Status.Executed.String()
	}
	for _, id := range slices.Sorted(maps.Keys(obs.Peers)) {
		p := obs.Peers[id]
		v.Peers = append(v.Peers, PeerView{ID: id, State: string(p.State), Report: p.Report})
	}
	a.mu.Lock()
	a.view = v
	a.mu.Unlock()
	if a.opts.DNS != nil {
		z, problems := dns.BuildZone(a.opts.DNSZone, dnsView(obs.Record, obs.Peers))
		for _, p := range problems {
			a.log.Warn("dns: member left out", "err", p)
		}
		a.opts.DNS.Update(z)
	}
}

// dnsView is what DNS publishes: the committed record's members, each healthy only when its
// own gossiped report says it serves in the role the record gives it.
func dnsView(rec record.Record, peers map[string]ha.Peer) dns.View {
	v := dns.View{Cluster: rec.Cluster, Epoch: rec.Epoch, Primary: rec.Primary}
	for _, id := range rec.MemberIDs() {
		m := dns.Member{Name: id}
		host, port, err := hostport.Split(rec.Members[id].MySQLAddr)
		if err != nil {
			continue
		}
		m.Port = port
		if addr, err := netip.ParseAddr(host); err == nil {
			m.Addrs = []netip.Addr{addr}
		}
		p, ok := peers[id]
		r := p.Report
		m.XPort = r.XPort
		serving := r.Writable && r.Role == health.RolePrimary
		if id != rec.Primary {
			serving = r.Role == health.RoleReplica && r.Source == rec.Primary && r.IOConnected && r.SQLRunning
		}
		m.Healthy = ok && p.Alive() && r.MySQLUp && !r.Errant && !r.Draining && serving
		if r.LagMillis > 0 {
			m.Lag = time.Duration(r.LagMillis) * time.Millisecond
		}
		v.Members = append(v.Members, m)
	}
	return v
}

// report is this agent's gossip report for the pass.
func (a *Agent) report(obs ha.Observation, d ha.Decision) health.Report {
	r := health.Report{
		Epoch: obs.Record.Epoch, MySQLUp: obs.Local.Up, Role: health.RoleUnknown, LagMillis: -1,
		Errant: d.Errant != "", Draining: a.draining, Bootstrapped: a.raft.HasState(),
		MySQLAddr: a.opts.MySQLAddr, RaftAddr: a.opts.RaftAddr, AdminAddr: a.opts.AdminAddr, XPort: a.opts.XPort,
	}
	if !obs.Local.Up {
		return r
	}
	st := obs.Local.Status
	r.Writable = st.Writable()
	switch {
	case st.Replica != nil:
		r.Role = health.RoleReplica
		rep := st.Replica
		r.Source = memberAt(obs.Record, rep.SourceAddr())
		r.IOConnected = rep.IORunning()
		r.SQLRunning = rep.SQLRunning
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
func (a *Agent) snapshot() View {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.view
}
