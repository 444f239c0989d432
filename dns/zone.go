// Package dns answers, authoritatively, where a cluster's primary and replicas are: SRV records
// whose priority and weight follow role and replication lag, and A/AAAA records per member. The
// records are a pure function of a View (the committed cluster record plus each member's health
// as the agent knows it), so agents with the same view answer the same, and the answers change
// within a loop tick of a failover.
package dns

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// Member is one server as the DNS view needs it.
type Member struct {
	Name    string // member id, a DNS label
	Addrs   []netip.Addr
	Port    uint16 // MySQL classic protocol
	XPort   uint16 // X Protocol; 0 when the flavor has none
	Healthy bool
	// Lag is the replica's replication lag; ignored for the primary.
	Lag time.Duration
}

// View is what the records are built from.
type View struct {
	Cluster string
	Epoch   uint64
	Primary string
	Members []Member
}

// ZoneConfig says which zone is served and how.
type ZoneConfig struct {
	Zone   string        // e.g. "shoal."
	TTL    time.Duration // answers' TTL (default 1s)
	MaxLag time.Duration // replicas lagging more are left out (default 10s)
}

// Priorities of the SRV records (RFC 2782: lower is tried first).
const (
	primaryPriority = 0
	replicaPriority = 10
	maxWeight       = 100
)

// replicaWeight falls linearly with lag: a caught-up replica gets 100, one at MaxLag gets 1, so
// clients spread reads towards the freshest replicas but never starve a slightly lagging one.
func replicaWeight(lag, maxLag time.Duration) uint16 {
	if lag <= 0 {
		return maxWeight
	}
	w := math.Round(maxWeight * (1 - float64(lag)/float64(maxLag)))
	return uint16(max(1, min(maxWeight, w)))
}

var label = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Zone is the set of records for one View: name -> records, every name lower-case and fully
// qualified. It is immutable once built.
type Zone struct {
	origin string
	ttl    uint32
	serial uint32
	names  map[string][]mdns.RR
}

// BuildZone builds every record of the cluster. Members whose names are not DNS labels are
// skipped and reported in the returned problems.
func BuildZone(cfg ZoneConfig, v View) (*Zone, []error) {
	if cfg.TTL <= 0 {
		cfg.TTL = time.Second
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = 10 * time.Second
	}
	origin := mdns.Fqdn(strings.ToLower(cfg.Zone))
	base := strings.ToLower(v.Cluster) + "." + origin
	z := &Zone{origin: origin, ttl: uint32(max(0, cfg.TTL.Seconds())), names: map[string][]mdns.RR{},
		serial: uint32(v.Epoch)}
	var problems []error
	add := func(rr mdns.RR) {
		h := rr.Header()
		h.Ttl, h.Class = z.ttl, mdns.ClassINET
		z.names[h.Name] = append(z.names[h.Name], rr)
	}
	hdr := func(name string, t uint16) mdns.RR_Header { return mdns.RR_Header{Name: name, Rrtype: t} }
	addAddrs := func(name string, addrs []netip.Addr) {
		for _, a := range addrs {
			if a.Is4() {
				add(&mdns.A{Hdr: hdr(name, mdns.TypeA), A: a.AsSlice()})
			} else {
				add(&mdns.AAAA{Hdr: hdr(name, mdns.TypeAAAA), AAAA: a.AsSlice()})
			}
		}
	}

	add(&mdns.SOA{Hdr: hdr(origin, mdns.TypeSOA), Ns: "ns." + origin, Mbox: "hostmaster." + origin,
		Serial: z.serial, Refresh: 60, Retry: 10, Expire: 600, Minttl: z.ttl})
	add(&mdns.NS{Hdr: hdr(origin, mdns.TypeNS), Ns: "ns." + origin})

	// The primary first, then by name: clients order by priority anyway, but people read
	// answers (dig) in the order given.
	members := slices.Clone(v.Members)
	rank := func(m Member) int {
		if m.Name == v.Primary {
			return 0
		}
		return 1
	}
	slices.SortFunc(members, func(a, b Member) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a.Name, b.Name))
	})
	for _, m := range members {
		if !label.MatchString(m.Name) {
			problems = append(problems, fmt.Errorf("member %q is not a DNS label: left out", m.Name))
			continue
		}
		host := m.Name + "." + base
		addAddrs(host, m.Addrs)
		if !m.Healthy {
			continue
		}
		isPrimary := m.Name == v.Primary
		if !isPrimary && m.Lag > cfg.MaxLag {
			continue
		}
		prio, weight, role := uint16(replicaPriority), replicaWeight(m.Lag, cfg.MaxLag), "replicas."
		if isPrimary {
			prio, weight, role = primaryPriority, maxWeight, "primary."
			addAddrs("primary."+base, m.Addrs)
		}
		for _, svc := range []struct {
			prefix string
			port   uint16
		}{{"_mysql._tcp.", m.Port}, {"_mysqlx._tcp.", m.XPort}} {
			if svc.port == 0 {
				continue
			}
			for _, name := range []string{svc.prefix + base, svc.prefix + role + base} {
				add(&mdns.SRV{Hdr: hdr(name, mdns.TypeSRV), Priority: prio, Weight: weight, Port: svc.port, Target: host})
			}
		}
	}
	return z, problems
}

// lookup returns the records of name and type qtype, and whether the name exists at all.
func (z *Zone) lookup(name string, qtype uint16) ([]mdns.RR, bool) {
	rrs, ok := z.names[name]
	if !ok {
		// An empty non-terminal (e.g. "_tcp.orders.shoal.") exists too: NODATA, not NXDOMAIN.
		for n := range z.names {
			if strings.HasSuffix(n, "."+name) {
				return nil, true
			}
		}
		return nil, false
	}
	var out []mdns.RR
	for _, rr := range rrs {
		if qtype == mdns.TypeANY || rr.Header().Rrtype == qtype {
			out = append(out, mdns.Copy(rr))
		}
	}
	return out, true
}

// inZone reports whether name is the zone's origin or below it.
func (z *Zone) inZone(name string) bool {
	return name == z.origin || strings.HasSuffix(name, "."+z.origin)
}

func (z *Zone) soa() mdns.RR { return mdns.Copy(z.names[z.origin][0]) }
