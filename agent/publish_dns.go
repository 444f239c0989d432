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

// dnsView is what DNS publishes: the committed record's members, each healthy only while it
// serves in the role the record gives it, as memberHealth tells.
func dnsView(v ClusterView) dns.View {
	rec := v.Record
	out := dns.View{Cluster: rec.Cluster, Epoch: rec.Epoch, Primary: rec.Primary}
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
		p := v.Peers[id] // zero, so not alive, for a member gossip does not know
		read, haveRead := v.Servers[id]
		r := memberHealth(rec, id, p.Report, read, haveRead)
		m.XPort = p.Report.XPort
		m.Healthy = p.Alive() && r.Serving(id, rec.Primary)
		if lag := r.LagMillis; lag > 0 {
			m.Lag = time.Duration(lag) * time.Millisecond
		}
		out.Members = append(out.Members, m)
	}
	return out
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
