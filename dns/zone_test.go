package dns

import (
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func view() View {
	ip := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	return View{Cluster: "orders", Epoch: 7, Primary: "db1", Members: []Member{
		{Name: "db1", Addrs: ip("10.0.0.1"), Port: 3306, XPort: 33060, Healthy: true},
		{Name: "db2", Addrs: ip("10.0.0.2"), Port: 3306, XPort: 33060, Healthy: true, Lag: 0},
		{Name: "db3", Addrs: ip("fd00::3"), Port: 3306, Healthy: true, Lag: 5 * time.Second},
		{Name: "db4", Addrs: ip("10.0.0.4"), Port: 3306, Healthy: true, Lag: time.Minute},
		{Name: "db5", Addrs: ip("10.0.0.5"), Port: 3306, Healthy: false},
	}}
}

type srvWant struct {
	target           string
	priority, weight uint16
	port             uint16
}

func srvs(z *Zone, name string) []srvWant {
	rrs, _ := z.lookup(name, mdns.TypeSRV)
	var out []srvWant
	for _, rr := range rrs {
		s := rr.(*mdns.SRV)
		out = append(out, srvWant{s.Target, s.Priority, s.Weight, s.Port})
	}
	return out
}

func TestBuildZone(t *testing.T) {
	z, problems := BuildZone(ZoneConfig{Zone: "Shoal", TTL: time.Second, MaxLag: 10 * time.Second}, view())
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	tests := []struct {
		name string
		want []srvWant
	}{
		{"_mysql._tcp.orders.shoal.", []srvWant{
			{"db1.orders.shoal.", 0, 100, 3306},
			{"db2.orders.shoal.", 10, 100, 3306},
			{"db3.orders.shoal.", 10, 50, 3306}, // half of max_lag behind: half the weight
		}},
		{"_mysql._tcp.primary.orders.shoal.", []srvWant{{"db1.orders.shoal.", 0, 100, 3306}}},
		{"_mysql._tcp.replicas.orders.shoal.", []srvWant{
			{"db2.orders.shoal.", 10, 100, 3306}, {"db3.orders.shoal.", 10, 50, 3306}}},
		{"_mysqlx._tcp.orders.shoal.", []srvWant{
			{"db1.orders.shoal.", 0, 100, 33060}, {"db2.orders.shoal.", 10, 100, 33060}}},
	}
	for _, tt := range tests {
		got := srvs(z, tt.name)
		if len(got) != len(tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s[%d]: %v, want %v", tt.name, i, got[i], tt.want[i])
			}
		}
	}
	// db4 (too far behind) and db5 (unhealthy) serve nothing, but keep their address records.
	for _, n := range []string{"db4.orders.shoal.", "db5.orders.shoal."} {
		if rrs, _ := z.lookup(n, mdns.TypeA); len(rrs) != 1 {
			t.Errorf("%s: %v, want its A record", n, rrs)
		}
	}
	if rrs, _ := z.lookup("db3.orders.shoal.", mdns.TypeAAAA); len(rrs) != 1 {
		t.Errorf("db3 AAAA: %v", rrs)
	}
	if rrs, _ := z.lookup("primary.orders.shoal.", mdns.TypeA); len(rrs) != 1 || rrs[0].(*mdns.A).A.String() != "10.0.0.1" {
		t.Errorf("primary A: %v", rrs)
	}
	if soa := z.soa().(*mdns.SOA); soa.Serial != 7 || soa.Hdr.Ttl != 1 {
		t.Errorf("SOA %v: want serial = epoch 7, TTL 1", soa)
	}
}

func TestBuildZoneEdges(t *testing.T) {
	v := view()
	v.Primary = "" // no primary: no writer is published, readers still are
	z, _ := BuildZone(ZoneConfig{Zone: "shoal."}, v)
	if got := srvs(z, "_mysql._tcp.primary.orders.shoal."); len(got) != 0 {
		t.Errorf("no primary recorded, yet %v", got)
	}
	if _, exists := z.lookup("primary.orders.shoal.", mdns.TypeA); exists {
		t.Error("primary name exists without a primary")
	}

	v = view()
	v.Primary = "db3" // the primary's record comes first in answers, whatever its name
	z, _ = BuildZone(ZoneConfig{Zone: "shoal."}, v)
	if got := srvs(z, "_mysql._tcp.orders.shoal."); len(got) != 3 || got[0].target != "db3.orders.shoal." || got[1].target != "db1.orders.shoal." {
		t.Errorf("db3 primary: answer %v, want db3 first, then db1 and db2", got)
	}

	empty, _ := BuildZone(ZoneConfig{Zone: "shoal."}, View{Cluster: "orders"})
	if _, exists := empty.lookup("_mysql._tcp.orders.shoal.", mdns.TypeSRV); exists {
		t.Error("empty cluster publishes SRV")
	}
	if rrs, _ := empty.lookup("shoal.", mdns.TypeSOA); len(rrs) != 1 {
		t.Error("empty cluster lacks the zone's SOA")
	}

	bad := view()
	bad.Members = append(bad.Members, Member{Name: "Bad_Name", Healthy: true, Port: 3306})
	if _, problems := BuildZone(ZoneConfig{Zone: "shoal."}, bad); len(problems) != 1 {
		t.Errorf("problems %v, want one for Bad_Name", problems)
	}
}

func TestReplicaWeight(t *testing.T) {
	for _, tt := range []struct {
		lag  time.Duration
		want uint16
	}{{0, 100}, {-time.Second, 100}, {time.Second, 90}, {9990 * time.Millisecond, 1}, {10 * time.Second, 1}, {time.Hour, 1}} {
		if got := replicaWeight(tt.lag, 10*time.Second); got != tt.want {
			t.Errorf("replicaWeight(%s) = %d, want %d", tt.lag, got, tt.want)
		}
	}
}
