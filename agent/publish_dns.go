package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/shoal-db/shoal/agent/ha"
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
	z, problems := dns.BuildZone(p.cfg, dnsView(v.Record, v.Peers))
	p.srv.Update(z)
	if len(problems) > 0 {
		return fmt.Errorf("dns: members left out: %w", errors.Join(problems...))
	}
	return nil
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
		m.XPort = p.Report.XPort
		m.Healthy = ok && p.Alive() && p.Report.Serving(id, rec.Primary)
		if lag := p.Report.LagMillis; lag > 0 {
			m.Lag = time.Duration(lag) * time.Millisecond
		}
		v.Members = append(v.Members, m)
	}
	return v
}
