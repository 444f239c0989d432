package hostport

import (
	"errors"
	"net"
	"strconv"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port uint16
		bad  bool
	}{
		{in: "127.0.0.11:3306", host: "127.0.0.11", port: 3306},
		{in: "db-0.db.default.svc:3306", host: "db-0.db.default.svc", port: 3306},
		{in: "[::1]:3306", host: "::1", port: 3306},
		{in: ":7946", host: "", port: 7946},
		{in: "[fe80::1%eth0]:1", host: "fe80::1%eth0", port: 1},
		{in: "host:65535", host: "host", port: 65535},
		{in: "host", bad: true},
		{in: "host:", bad: true},
		{in: "host:65536", bad: true},
		{in: "host:-1", bad: true},
		{in: "host:+1", bad: true},
		{in: "::1:3306", bad: true},
		{in: "[::1]3306", bad: true},
		{in: "[::1:3306", bad: true},
		{in: "a]:1", bad: true},
	}
	for _, tt := range tests {
		host, port, err := Split(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrBadAddress) {
				t.Errorf("Split(%q) = %q, %d, %v; want ErrBadAddress", tt.in, host, port, err)
			}
			continue
		}
		if err != nil || host != tt.host || port != tt.port {
			t.Errorf("Split(%q) = %q, %d, %v; want %q, %d", tt.in, host, port, err, tt.host, tt.port)
		}
	}
}

func TestJoinMatchesNet(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1", "db-0", "", "fe80::1%eth0"} {
		if got, want := Join(host, 3306), net.JoinHostPort(host, "3306"); got != want {
			t.Errorf("Join(%q, 3306) = %q, want %q", host, got, want)
		}
	}
}

// FuzzSplit checks Split against the standard library: whatever Split accepts, net.SplitHostPort
// reads the same way, and Join gives back an address that splits to the same parts.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"127.0.0.1:3306", "[::1]:1", ":0", "a:b:c", "[a]:]", "[]:1", "x:0099"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		host, port, err := Split(addr)
		if err != nil {
			return
		}
		nh, np, nerr := net.SplitHostPort(addr)
		if nerr != nil || nh != host {
			t.Fatalf("Split(%q) = %q, %d but net.SplitHostPort = %q, %q, %v", addr, host, port, nh, np, nerr)
		}
		if n, err := strconv.ParseUint(np, 10, 16); err != nil || uint16(n) != port {
			t.Fatalf("Split(%q) port %d, net says %q", addr, port, np)
		}
		h2, p2, err := Split(Join(host, int(port)))
		if err != nil || h2 != host || p2 != port {
			t.Fatalf("Split(Join(%q, %d)) = %q, %d, %v", host, port, h2, p2, err)
		}
	})
}
