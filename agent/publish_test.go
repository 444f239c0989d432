package agent

import (
	"testing"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
)

func TestDNSView(t *testing.T) {
	rec := record.Record{Cluster: "orders", Epoch: 4, Primary: "db1", Members: map[string]record.Member{
		"db1": {ID: "db1", MySQLAddr: "10.0.0.1:3306"},
		"db2": {ID: "db2", MySQLAddr: "10.0.0.2:3306"},
		"db3": {ID: "db3", MySQLAddr: "10.0.0.3:3306"},
		"db4": {ID: "db4", MySQLAddr: "10.0.0.4:3306"},
	}}
	replica := health.Report{MySQLUp: true, Role: health.RoleReplica, Source: "db1", IOConnected: true, SQLRunning: true, LagMillis: 1500}
	errant := replica
	errant.Errant = true
	peers := map[string]ha.Peer{
		"db1": {State: ha.PeerAlive, Report: health.Report{MySQLUp: true, Role: health.RolePrimary, Writable: true, XPort: 33060}},
		"db2": {State: ha.PeerAlive, Report: replica},
		"db3": {State: ha.PeerAlive, Report: errant},
		// db4: no gossip at all
	}
	v := dnsView(rec, peers)
	if v.Cluster != "orders" || v.Primary != "db1" || len(v.Members) != 4 {
		t.Fatalf("view %+v", v)
	}
	healthy := map[string]bool{}
	for _, m := range v.Members {
		healthy[m.Name] = m.Healthy
		if m.Port != 3306 || len(m.Addrs) != 1 {
			t.Errorf("%s: port %d addrs %v", m.Name, m.Port, m.Addrs)
		}
	}
	want := map[string]bool{"db1": true, "db2": true, "db3": false, "db4": false}
	for name, h := range want {
		if healthy[name] != h {
			t.Errorf("%s healthy=%v, want %v", name, healthy[name], h)
		}
	}
	if v.Members[0].XPort != 33060 || v.Members[1].XPort != 0 {
		t.Errorf("X ports %d %d, want 33060 and none", v.Members[0].XPort, v.Members[1].XPort)
	}
	if v.Members[1].Lag.Milliseconds() != 1500 {
		t.Errorf("db2 lag %s", v.Members[1].Lag)
	}
}
