package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/dns"
	"github.com/shoal-db/shoal/mysqlctl/hostport"
)

// zoneServer serves the DNS records built after each pass; *dns.Server implements it.
type zoneServer interface {
	Update(z *dns.Zone)
}

// DNSPublisher publishes the cluster's records to this agent's DNS server: every agent answers
// for the zone, from its own applied record and gossip.
func DNSPublisher(srv zoneServer, cfg dns.ZoneConfig) Publisher {
	return dnsPublisher{srv: srv, cfg: cfg}
}

type dnsPublisher struct {
	srv zoneServer
	cfg dns.ZoneConfig
}

func (dnsPublisher) Name() string { return "dns" }

// Publish always updates the zone; members it had to leave out come back as the error.
func (p dnsPublisher) Publish(_ context.Context, v ClusterView) error {
	z, problems := dns.BuildZone(p.cfg, dnsView(v))
	p.srv.Update(z)
	if len(problems) > 0 {
		return fmt.Errorf("dns: members left out: %w", errors.Join(problems...))
	}
	return nil
}

// dnsView is what DNS publishes: the committed record's members, each healthy while it serves
// in the role the record gives it (ClusterView.Members).
func dnsView(v ClusterView) dns.View {
	rec := v.Record
	out := dns.View{Cluster: rec.Cluster, Epoch: rec.Epoch, Primary: rec.Primary}
	for _, mv := range v.Members() {
		m := dns.Member{Name: mv.ID}
		host, port, err := hostport.Split(mv.MySQLAddr)
		if err != nil {
			continue
		}
		m.Port = port
		if addr, err := netip.ParseAddr(host); err == nil {
			m.Addrs = []netip.Addr{addr}
		}
		m.XPort = mv.Report.XPort
		m.Healthy = mv.Serving
		m.Lag = mv.Lag()
		out.Members = append(out.Members, m)
	}
	return out
}

// MemberView is one recorded member as every publisher sees it after a pass.
type MemberView struct {
	ID        string
	MySQLAddr string // as recorded
	Alive     bool   // its agent is alive in gossip with a readable report
	// Report is the member's own report with its role fields as this pass read them
	// (memberHealth).
	Report health.Report
	// Serving: alive, and its server serves in the role the record gives it; or, for a replica,
	// Adrift.
	Serving bool
	// Adrift: a replica whose receiver is not connected to the recorded primary right now (its
	// source died, or a failover has not re-pointed it yet) but which still applies and was
	// seen replicating from the recorded primary at Sighting.At. Its staleness is bounded by its
	// lag then plus the time since (Lag), so it stays in rotation until that passes dns.max_lag:
	// a failover does not take every replica out of DNS and the -replicas Service.
	Adrift   bool
	Sighting Sighting
	at       time.Time // the view's time
}

// Sighting is when an agent last saw a member replicating from the recorded primary, and its
// lag then.
type Sighting struct {
	At  time.Time
	Lag time.Duration
}

// Members returns the committed record's members by id, each as this pass knows it.
func (v ClusterView) Members() []MemberView {
	rec := v.Record
	out := make([]MemberView, 0, len(rec.Members))
	for _, id := range rec.MemberIDs() {
		p := v.Peers[id] // zero, so not alive, for a member gossip does not know
		read, haveRead := v.Servers[id]
		r := memberHealth(rec, id, p.Report, read, haveRead)
		mv := MemberView{ID: id, MySQLAddr: rec.Members[id].MySQLAddr, Alive: p.Alive(), Report: r, at: v.At,
			Serving: p.Alive() && r.Serving(id, rec.Primary)}
		if seen, ok := v.Sightings[id]; ok && !mv.Serving && p.Alive() && id != rec.Primary && appliesAdrift(r) {
			mv.Serving, mv.Adrift, mv.Sighting = true, true, seen
		}
		out = append(out, mv)
	}
	return out
}

// appliesAdrift: the server is a replica that applies what it has, whatever its receiver does,
// and nothing its agent knows makes it unfit.
func appliesAdrift(r health.Report) bool {
	return r.MySQLUp && !r.Errant && !r.Draining && r.Role == health.RoleReplica && r.SQLRunning
}

// sight returns the sightings after view v: each member replicating from the recorded primary
// now is seen at v.At; the others keep their last sighting while they are recorded members.
func sight(v ClusterView) map[string]Sighting {
	out := make(map[string]Sighting, len(v.Record.Members))
	for _, mv := range v.Members() {
		switch {
		case mv.Serving && !mv.Adrift && mv.ID != v.Record.Primary:
			out[mv.ID] = Sighting{At: v.At, Lag: mv.Lag()}
		case v.Sightings[mv.ID] != Sighting{}:
			out[mv.ID] = v.Sightings[mv.ID]
		}
	}
	return out
}

// Lag is the member's replication lag; zero when it is caught up or the lag is unknown. For an
// adrift replica it is the bound: its lag when last seen replicating plus the time since.
func (m MemberView) Lag() time.Duration {
	if m.Adrift {
		return m.Sighting.Lag + max(0, m.at.Sub(m.Sighting.At))
	}
	return time.Duration(max(0, m.Report.LagMillis)) * time.Millisecond
}

// InRotation reports whether clients should be sent to the member: it serves, and a replica
// lags no more than maxLag (dns.max_lag). The primary is in rotation whenever it serves.
func (m MemberView) InRotation(primary string, maxLag time.Duration) bool {
	return m.Serving && (m.ID == primary || m.Lag() <= maxLag)
}

// memberHealth is what this agent knows of member id's server: the member's own report, its
// role fields taken from this agent's read of the server when that answered. Which wins:
//
//   - Unfit stays unfit: only the member's agent knows that it is errant (checked against the
//     primary), draining, or cannot reach its own server; and a member whose agent is not alive
//     (the caller's check) will be neither fenced nor re-pointed by it. No read overrides these.
//   - The role (writable; source, threads and lag of a replica) comes from a read that answered:
//     it is of this pass, fresher than any report. So a new primary is named as soon as this
//     agent reads it writable, though its report still says replica, and a primary this agent
//     reads read-only is dropped, though its report still says writable.
//   - A read that failed says nothing of the role, except that a refused connection or a
//     missing socket means no server runs: then it serves nowhere. Otherwise (a timeout, perhaps
//     on this agent's path only) the report decides.
//   - A report made under an older epoch is no evidence that the recorded primary is writable:
//     the epoch moves only when the primary changes, and the new one opens writes in it (one
//     named again had lost its lease, so it was fenced or down in between). A replica's report
//     names its source, which Serving checks against the record, so its epoch does not matter.
func memberHealth(rec record.Record, id string, rep health.Report, read ha.Server, haveRead bool) health.Report {
	switch {
	case haveRead && read.Up:
		return withRole(rep, rec, read.Status)
	case haveRead && read.Gone:
		rep.MySQLUp = false
	case id == rec.Primary && rep.Epoch < rec.Epoch:
		rep.Role, rep.Writable = health.RoleUnknown, false
	}
	return rep
}
