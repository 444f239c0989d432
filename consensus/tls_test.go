package consensus

import (
	"crypto/tls"
	"fmt"
	"net"
	"testing"

	"github.com/shoal-db/shoal/consensus/membership"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/consensus/tlstest"
)

// Two nodes with certificates from the cluster CA form a cluster over mutual TLS. Two intruders,
// one with a certificate from another CA and one from the right CA but without the cluster
// name, bootstrap believing they belong: they never get through, the log says why, and neither
// side's record changes.
func TestTLSRefusesForeignPeers(t *testing.T) {
	const clusterName = "raft.c1"
	log, logs := testLogger(t)
	ca, other := tlstest.NewCA(t), tlstest.NewCA(t)
	named := func(c *tls.Config) *tls.Config { c.ServerName = clusterName; return c }
	open := func(id string, tc *tls.Config) *Node {
		return openNode(t, Config{NodeID: id, BindAddr: "127.0.0.1:0", DataDir: t.TempDir(), TLS: tc, Logger: log.With("node", id)})
	}
	a := open("db-0", named(ca.Config("db-0", clusterName)))
	b := open("db-1", named(ca.Config("db-1", clusterName)))
	foreign := open("db-2", named(other.Config("db-2", clusterName)))
	unnamed := open("db-3", named(ca.Config("db-3")))

	bootstrapAll(t, []*Node{a, b})
	members := []membership.Server{{ID: a.ID(), Addr: a.Addr(), Voter: true}, {ID: b.ID(), Addr: b.Addr(), Voter: true}}
	for _, n := range []*Node{foreign, unnamed} {
		if err := n.Bootstrap(append(members, membership.Server{ID: n.ID(), Addr: n.Addr(), Voter: true})); err != nil {
			t.Fatalf("bootstrap %s: %v", n.ID(), err)
		}
	}

	r := seed(t, a, b)
	r = mustApply(t, record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: "db-0"}, a, b)
	waitConverged(t, r, a, b)

	waitFor(t, "both intruders to be refused, with reasons, on both sides", func() bool {
		l := logs.String()
		return contains(l, "raft TLS handshake with", `peer certificate \"db-3\" refused`, "not "+clusterName) &&
			contains(l, "raft TLS dial", "certificate signed by unknown authority")
	})
	for _, n := range []*Node{foreign, unnamed} {
		if n.IsLeader() {
			t.Errorf("intruder %s became leader", n.ID())
		}
		if id, _ := n.Leader(); id != "" {
			t.Errorf("intruder %s follows %q", n.ID(), id)
		}
		if got := n.Record(); !equalRecords(got, record.Record{}) {
			t.Errorf("intruder %s got a record: %+v", n.ID(), got)
		}
	}
	if got := a.Record(); !equalRecords(got, r) {
		t.Errorf("cluster record changed: %+v, want %+v", got, r)
	}
}

// A node advertising a DNS name (a StatefulSet pod's stable name) is known and dialled by that
// name, so a member back at a new IP is found at the address in everyone's configuration.
func TestTLSAdvertisesANameAsIs(t *testing.T) {
	log, _ := testLogger(t)
	ca := tlstest.NewCA(t)
	var nodes []*Node
	for _, id := range []string{"db-0", "db-1"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		n := openNode(t, Config{NodeID: id, BindAddr: fmt.Sprintf("127.0.0.1:%d", port), AdvertiseAddr: fmt.Sprintf("localhost:%d", port),
			DataDir: t.TempDir(), TLS: ca.Config(id), Logger: log.With("node", id)})
		if want := fmt.Sprintf("localhost:%d", port); n.Addr() != want {
			t.Fatalf("%s advertises %s, want %s", id, n.Addr(), want)
		}
		nodes = append(nodes, n)
	}
	bootstrapAll(t, nodes)
	r := seed(t, nodes...)
	r = mustApply(t, record.Command{Op: record.OpSetPrimary, Epoch: r.Epoch, Primary: "db-0"}, nodes...)
	waitConverged(t, r, nodes...)
}
