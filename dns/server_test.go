package dns

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func startServer(t *testing.T, v View) *Server {
	t.Helper()
	s := NewServer(slog.New(slog.DiscardHandler))
	z, _ := BuildZone(ZoneConfig{Zone: "shoal."}, v)
	s.Update(z)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := s.ListenAndServe(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return s
}

func resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

func TestGoResolver(t *testing.T) {
	s := startServer(t, view())
	r := resolver(s.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, srvs, err := r.LookupSRV(ctx, "mysql", "tcp", "orders.shoal")
	if err != nil {
		t.Fatal(err)
	}
	if len(srvs) != 3 || srvs[0].Target != "db1.orders.shoal." || srvs[0].Priority != 0 {
		t.Fatalf("SRV answer %+v, want the primary db1 first of 3", srvs)
	}
	addrs, err := r.LookupHost(ctx, "db2.orders.shoal")
	if err != nil || len(addrs) != 1 || addrs[0] != "10.0.0.2" {
		t.Fatalf("LookupHost db2: %v %v", addrs, err)
	}
	if _, err := r.LookupHost(ctx, "nosuch.orders.shoal"); err == nil {
		t.Fatal("a missing name resolved")
	}

	// A failover is one Update away.
	v := view()
	v.Primary, v.Epoch = "db2", 8
	z, _ := BuildZone(ZoneConfig{Zone: "shoal."}, v)
	s.Update(z)
	_, srvs, err = r.LookupSRV(ctx, "mysql", "tcp", "primary.orders.shoal")
	if err != nil || len(srvs) != 1 || srvs[0].Target != "db2.orders.shoal." {
		t.Fatalf("after failover: %+v %v", srvs, err)
	}
}

func TestDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Fatalf("dig not found (Debian bind9-dnsutils): install it with `make deps`: %v", err)
	}
	s := startServer(t, view())
	host, port, _ := net.SplitHostPort(s.Addr())
	out, err := exec.Command(dig, "@"+host, "-p", port, "SRV", "_mysql._tcp.orders.shoal", "+short").CombinedOutput()
	if err != nil {
		t.Fatalf("dig: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 || !strings.Contains(strings.Join(lines, "\n"), "0 100 3306 db1.orders.shoal.") {
		t.Fatalf("dig answer:\n%s", out)
	}
	out, _ = exec.Command(dig, "@"+host, "-p", port, "A", "example.com").CombinedOutput()
	if !strings.Contains(string(out), "status: REFUSED") || strings.Contains(string(out), " ra") {
		t.Fatalf("outside the zone, want REFUSED without recursion:\n%s", out)
	}
}

func query(s *Server, name string, qtype uint16, tcp bool) *mdns.Msg {
	req := new(mdns.Msg)
	req.SetQuestion(name, qtype)
	return s.answer(req, tcp)
}

func TestRcodes(t *testing.T) {
	s := NewServer(slog.New(slog.DiscardHandler))
	if m := query(s, "orders.shoal.", mdns.TypeA, false); m.Rcode != mdns.RcodeServerFailure {
		t.Errorf("before any zone: %s, want SERVFAIL", mdns.RcodeToString[m.Rcode])
	}
	z, _ := BuildZone(ZoneConfig{Zone: "shoal."}, view())
	s.Update(z)
	for _, tt := range []struct {
		name  string
		qtype uint16
		rcode int
		auth  bool
		empty bool
	}{
		{"db1.orders.shoal.", mdns.TypeA, mdns.RcodeSuccess, true, false},
		{"DB1.Orders.Shoal.", mdns.TypeA, mdns.RcodeSuccess, true, false},
		{"db1.orders.shoal.", mdns.TypeMX, mdns.RcodeSuccess, true, true},     // NODATA
		{"_tcp.orders.shoal.", mdns.TypeSRV, mdns.RcodeSuccess, true, true},   // empty non-terminal
		{"nosuch.orders.shoal.", mdns.TypeA, mdns.RcodeNameError, true, true}, // NXDOMAIN
		{"example.com.", mdns.TypeA, mdns.RcodeRefused, false, true},          // outside the zone
		{"shoal.", mdns.TypeSOA, mdns.RcodeSuccess, true, false},
	} {
		m := query(s, tt.name, tt.qtype, false)
		if m.Rcode != tt.rcode || m.Authoritative != tt.auth || (len(m.Answer) == 0) != tt.empty || m.RecursionAvailable {
			t.Errorf("%s %s: rcode %s aa=%v answers %d ra=%v", tt.name, mdns.TypeToString[tt.qtype],
				mdns.RcodeToString[m.Rcode], m.Authoritative, len(m.Answer), m.RecursionAvailable)
		}
		if (tt.rcode == mdns.RcodeNameError || (tt.empty && tt.rcode == mdns.RcodeSuccess)) && len(m.Ns) != 1 {
			t.Errorf("%s: negative answer without the SOA", tt.name)
		}
	}
	two := new(mdns.Msg)
	two.Question = []mdns.Question{{Name: "a.shoal.", Qtype: mdns.TypeA, Qclass: mdns.ClassINET}, {Name: "b.shoal.", Qtype: mdns.TypeA, Qclass: mdns.ClassINET}}
	if m := s.answer(two, false); m.Rcode != mdns.RcodeFormatError {
		t.Errorf("two questions: %s, want FORMERR", mdns.RcodeToString[m.Rcode])
	}
	upd := new(mdns.Msg)
	upd.SetUpdate("shoal.")
	if m := s.answer(upd, false); m.Rcode != mdns.RcodeNotImplemented {
		t.Errorf("UPDATE: %s, want NOTIMP", mdns.RcodeToString[m.Rcode])
	}
}

func TestTruncation(t *testing.T) {
	v := view()
	for i := range 40 { // many replicas: more than 512 bytes of SRV and glue
		v.Members = append(v.Members, Member{Name: "replica-" + string(rune('a'+i%26)) + string(rune('a'+i/26)),
			Addrs: []netip.Addr{netip.MustParseAddr("10.1.0.1")}, Port: 3306, Healthy: true})
	}
	s := NewServer(slog.New(slog.DiscardHandler))
	z, _ := BuildZone(ZoneConfig{Zone: "shoal."}, v)
	s.Update(z)
	udp := query(s, "_mysql._tcp.orders.shoal.", mdns.TypeSRV, false)
	tcp := query(s, "_mysql._tcp.orders.shoal.", mdns.TypeSRV, true)
	if !udp.Truncated || tcp.Truncated || len(tcp.Answer) != 43 {
		t.Fatalf("UDP truncated=%v (%d answers), TCP truncated=%v (%d answers, want 43)",
			udp.Truncated, len(udp.Answer), tcp.Truncated, len(tcp.Answer))
	}
}

func FuzzAnswer(f *testing.F) {
	req := new(mdns.Msg)
	req.SetQuestion("_mysql._tcp.orders.shoal.", mdns.TypeSRV)
	b, _ := req.Pack()
	f.Add(b, false)
	f.Add([]byte{0, 1, 2, 3}, true)
	s := NewServer(slog.New(slog.DiscardHandler))
	z, _ := BuildZone(ZoneConfig{Zone: "shoal."}, view())
	s.Update(z)
	f.Fuzz(func(t *testing.T, packet []byte, tcp bool) {
		req := new(mdns.Msg)
		if err := req.Unpack(packet); err != nil {
			return // the server library answers unparsable packets itself, or drops them
		}
		m := s.answer(req, tcp)
		if _, err := m.Pack(); err != nil {
			t.Fatalf("answer does not pack: %v", err)
		}
	})
}
