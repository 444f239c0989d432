package gossip

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := Config{NodeName: "db-0", BindAddr: "0.0.0.0", BindPort: 7946, Keys: [][]byte{keyA}}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string // every fragment must appear; none means valid
	}{
		{"valid", func(*Config) {}, nil},
		{"plaintext allowed", func(c *Config) { c.Keys, c.AllowPlaintext = nil, true }, nil},
		{"rotation keyring", func(c *Config) { c.Keys = [][]byte{keyB, keyA, keyC} }, nil},
		{"seeds of every form", func(c *Config) {
			c.Seeds = []string{"10.0.0.1:7946", "10.0.0.2", "[fd00::1]:7946", "fd00::2", "[fd00::3]",
				"db-0.db.ns.svc.cluster.local", "db-1.db:8000", "localhost:1"}
		}, nil},
		{"random port, seeds with ports", func(c *Config) { c.BindPort = 0; c.Seeds = []string{"10.0.0.1:7946"} }, nil},
		{"advertise", func(c *Config) { c.AdvertiseAddr, c.AdvertisePort = "192.0.2.1", 17946 }, nil},
		{"explicit timings", func(c *Config) {
			c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = time.Second, 500*time.Millisecond, 4
			c.GossipInterval, c.PushPullInterval, c.RetransmitMult = 200*time.Millisecond, 30*time.Second, 3
			c.DeadRetention = time.Minute
		}, nil},
		{"everything wrong at once", func(c *Config) {
			*c = Config{
				BindPort: 70000, AdvertisePort: -1,
				Keys:          [][]byte{keyA, []byte("short")},
				ProbeInterval: -time.Second, DeadRetention: -1, SuspicionMult: -1, RetransmitMult: -2,
				Seeds: []string{"", "host:port", "a:b:c", " padded", "h:0"},
			}
		}, []string{
			"NodeName is required", "BindAddr is required", "BindPort 70000", "AdvertisePort -1",
			"Keys[1]: AES key must be 16, 24 or 32 bytes, got 5", "ProbeInterval -1s is negative",
			"DeadRetention -1ns is negative", "SuspicionMult -1", "RetransmitMult -2",
			`seed "": empty`, `seed "host:port": port is not a number`, `seed "a:b:c": not host:port`,
			`seed " padded": empty or padded`, `seed "h:0": port 0`,
		}},
		{"no keys", func(c *Config) { c.Keys = nil }, []string{"set AllowPlaintext"}},
		{"bad addresses", func(c *Config) { c.BindAddr, c.AdvertiseAddr = "db-0", "0.0.0.0" },
			[]string{`BindAddr "db-0" is not an IP`, `AdvertiseAddr "0.0.0.0" is unspecified`}},
		{"all IPv6 addresses, no advertise", func(c *Config) { c.BindAddr = "::" }, []string{"BindAddr :: needs an AdvertiseAddr"}},
		{"all IPv6 addresses", func(c *Config) { c.BindAddr, c.AdvertiseAddr = "::", "fd00::1" }, nil},
		{"bad advertise", func(c *Config) { c.AdvertiseAddr = "example.com" }, []string{`AdvertiseAddr "example.com" is not an IP`}},
		{"timeout not below interval", func(c *Config) { c.ProbeTimeout = 200 * time.Millisecond },
			[]string{"ProbeTimeout 200ms must be shorter than ProbeInterval 200ms"}},
		{"random port, seed without port", func(c *Config) { c.BindPort = 0; c.Seeds = []string{"db-1"} },
			[]string{`seed "db-1": no port, and BindPort is 0`}},
		{"random port, fixed advertise port", func(c *Config) { c.BindPort, c.AdvertisePort = 0, 7946 },
			[]string{"AdvertisePort 7946 needs a fixed BindPort"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.Keys = [][]byte{keyA}
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseSeed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want seed
	}{
		{"10.0.0.1:7000", seed{"10.0.0.1", 7000}},
		{"10.0.0.1", seed{"10.0.0.1", 7946}},
		{"[fd00::1]:7000", seed{"fd00::1", 7000}},
		{"fd00::1", seed{"fd00::1", 7946}},
		{"[fd00::1]", seed{"fd00::1", 7946}},
		{"db-0.db", seed{"db-0.db", 7946}},
		{"localhost:1", seed{"localhost", 1}},
	} {
		got, err := parseSeed(tc.in, 7946)
		if err != nil || got != tc.want {
			t.Errorf("parseSeed(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	t.Parallel()
	_, err := Start(t.Context(), Config{Keys: [][]byte{bytes.Repeat([]byte{1}, 7)}}, report("x"))
	if err == nil || !strings.Contains(err.Error(), "NodeName is required") || !strings.Contains(err.Error(), "got 7") {
		t.Fatalf("start with bad config: %v", err)
	}
}
