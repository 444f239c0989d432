package srv

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/shoal-db/shoal/dns"
)

// listener accepts connections and reports which listener got each one.
func listener(t *testing.T, name string, got chan<- string) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			got <- name
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	return uint16(p)
}

func TestDialFollowsThePrimary(t *testing.T) {
	got := make(chan string, 10)
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	v := dns.View{Cluster: "orders", Primary: "db1", Members: []dns.Member{
		{Name: "db1", Addrs: lo, Port: listener(t, "db1", got), Healthy: true},
		{Name: "db2", Addrs: lo, Port: listener(t, "db2", got), Healthy: true},
	}}
	s := dns.NewServer(slog.New(slog.DiscardHandler))
	z, _ := dns.BuildZone(dns.ZoneConfig{Zone: "shoal."}, v)
	s.Update(z)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.ListenAndServe(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr())
	}}
	dial := func() string {
		c, err := Dial(ctx, r, "_mysql._tcp.primary.orders.shoal")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		return <-got
	}
	if who := dial(); who != "db1" {
		t.Fatalf("dialled %s, want the primary db1", who)
	}
	v.Primary = "db2" // failover: the next connection must go to db2
	z, _ = dns.BuildZone(dns.ZoneConfig{Zone: "shoal."}, v)
	s.Update(z)
	if who := dial(); who != "db2" {
		t.Fatalf("after failover dialled %s, want db2", who)
	}
	// The general name lists both: the primary (priority 0) comes first while it answers.
	c, err := Dial(ctx, r, "_mysql._tcp.orders.shoal")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if who := <-got; who != "db2" {
		t.Fatalf("general name dialled %s first, want the primary db2", who)
	}
	if _, err := Dial(ctx, r, "_mysql._tcp.nosuch.orders.shoal"); err == nil {
		t.Fatal("a missing name dialled something")
	}
}
