package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero values of Config's timing fields: about one second from a node's death
// to every peer listing it Dead in a small LAN cluster, without false deaths on a loaded 2-core
// machine. Measured here with 5 nodes in one process beside 5 allocation-heavy CPU burners
// (load ~10): suspicion multiplier 3 gave false deaths in 2 of 6 one-minute runs (~0.9 s to
// detect), 4 gave none in 5 runs (~1.1 s to detect).
//
//   - A probe every 200 ms: each of a few peers checks a given node every 0.2-0.6 s.
//   - 100 ms for the direct ack is 100x a LAN round trip. A late ack only makes the prober ask
//     others (indirect and TCP probes get the rest of the interval), and memberlist's Lifeguard
//     awareness stretches an overloaded prober's own timeouts up to 8x before it accuses anyone.
//   - Suspicion lasts 4 probe intervals (0.8 s) once another prober confirms it: time for a live
//     but starved node to hear the rumour and refute it.
//   - Gossip every 100 ms, so a changed health report reaches everyone within a round or two.
//   - Full state sync every 5 s heals whatever dropped UDP or a partition lost; with a handful
//     of nodes that is one small TCP exchange per node per interval.
const (
	DefaultProbeInterval    = 200 * time.Millisecond
	DefaultProbeTimeout     = 100 * time.Millisecond
	DefaultSuspicionMult    = 4
	DefaultGossipInterval   = 100 * time.Millisecond
	DefaultPushPullInterval = 5 * time.Second
	DefaultRetransmitMult   = 4
	// DefaultDeadRetention keeps dead and departed members listed long enough for failover,
	// alerting and Raft membership clean-up to see what happened to them.
	DefaultDeadRetention = time.Hour
)

// Config describes one agent's gossip endpoint. Zero timing fields take the Default* values.
type Config struct {
	// NodeName identifies the agent in the cluster; it must be unique and stable across restarts.
	NodeName string
	// Cluster labels every gossip packet and stream (memberlist's Label), and a node drops what
	// carries another label: two clusters that share a network and a key, or whose seeds point
	// at each other by mistake, never merge. Empty sends no label, which only a node without
	// one accepts.
	Cluster string
	// BindAddr is the IP address to listen on (UDP and TCP); 0.0.0.0 or :: for all.
	BindAddr string
	// BindPort is the port to listen on; 0 lets the kernel pick one (tests).
	BindPort int
	// AdvertiseAddr is the IP address peers should use to reach this node; empty means the
	// bound address (or, when bound to all addresses, the first private address).
	AdvertiseAddr string
	// AdvertisePort is the port peers should use; 0 means the bound port.
	AdvertisePort int
	// Seeds are the peers to join: "host:port", "host", "[v6]:port" with host an IP or a DNS
	// name. Names resolve to all their A/AAAA records on every join attempt, so a headless
	// Service or round-robin name works and newly started peers are found. A seed without a
	// port uses BindPort.
	Seeds []string
	// Keys are the AES keys (16, 24 or 32 bytes) of the gossip keyring. Keys[0] encrypts; all of
	// them decrypt, which is what lets keys be rotated without a split (see InstallKey).
	Keys [][]byte
	// AllowPlaintext permits running with no Keys. It never makes an encrypting node accept
	// plaintext from peers.
	AllowPlaintext bool

	// Failure detection and dissemination, as in memberlist.Config; zero takes the Default*
	// value above, which is what shoal is tested with.
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	SuspicionMult    int
	GossipInterval   time.Duration
	PushPullInterval time.Duration
	RetransmitMult   int
	// DeadRetention is how long a Dead or Left member stays listed after its last state change,
	// well beyond memberlist forgetting it, so callers see "the primary is dead" rather than
	// "the primary vanished".
	DeadRetention time.Duration

	// Logger receives this package's and memberlist's logs; nil discards them.
	Logger *slog.Logger
}

// withDefaults fills zero fields with their defaults.
func (c Config) withDefaults() Config {
	setDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	setDur(&c.ProbeInterval, DefaultProbeInterval)
	setDur(&c.ProbeTimeout, DefaultProbeTimeout)
	setDur(&c.GossipInterval, DefaultGossipInterval)
	setDur(&c.PushPullInterval, DefaultPushPullInterval)
	setDur(&c.DeadRetention, DefaultDeadRetention)
	if c.SuspicionMult == 0 {
		c.SuspicionMult = DefaultSuspicionMult
	}
	if c.RetransmitMult == 0 {
		c.RetransmitMult = DefaultRetransmitMult
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem in the configuration at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if strings.TrimSpace(c.NodeName) == "" {
		add("NodeName is required")
	}
	if len(labelPrefix)+len(c.Cluster) > 255 {
		add("Cluster %q is too long for a gossip label", c.Cluster)
	}
	if c.BindAddr == "" {
		add("BindAddr is required (an IP address; 0.0.0.0 or :: for all)")
	} else if a, err := netip.ParseAddr(c.BindAddr); err != nil {
		add("BindAddr %q is not an IP address", c.BindAddr)
	} else if a == netip.IPv6Unspecified() && c.AdvertiseAddr == "" {
		// memberlist finds an address to advertise by itself only when bound to 0.0.0.0.
		add("BindAddr :: needs an AdvertiseAddr")
	}
	if c.AdvertiseAddr != "" {
		if a, err := netip.ParseAddr(c.AdvertiseAddr); err != nil {
			add("AdvertiseAddr %q is not an IP address", c.AdvertiseAddr)
		} else if a.IsUnspecified() {
			add("AdvertiseAddr %q is unspecified; peers could not reach it", c.AdvertiseAddr)
		}
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		add("BindPort %d is out of range 0..65535", c.BindPort)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		add("AdvertisePort %d is out of range 0..65535", c.AdvertisePort)
	}
	// memberlist overwrites the advertised port with the kernel's choice when BindPort is 0.
	if c.BindPort == 0 && c.AdvertisePort != 0 {
		add("AdvertisePort %d needs a fixed BindPort (BindPort 0 advertises the port the kernel picks)", c.AdvertisePort)
	}
	for _, s := range c.Seeds {
		if _, err := parseSeed(s, c.BindPort); err != nil {
			errs = append(errs, err)
		}
	}

	if len(c.Keys) == 0 && !c.AllowPlaintext {
		add("Keys: no gossip key given; set AllowPlaintext to gossip unencrypted")
	}
	for i, k := range c.Keys {
		if err := checkKey(k); err != nil {
			add("Keys[%d]: %w", i, err)
		}
	}

	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ProbeInterval", c.ProbeInterval},
		{"ProbeTimeout", c.ProbeTimeout},
		{"GossipInterval", c.GossipInterval},
		{"PushPullInterval", c.PushPullInterval},
		{"DeadRetention", c.DeadRetention},
	} {
		if d.v < 0 {
			add("%s %v is negative", d.name, d.v)
		}
	}
	if c.ProbeTimeout > 0 && c.ProbeInterval > 0 && c.ProbeTimeout >= c.ProbeInterval {
		add("ProbeTimeout %v must be shorter than ProbeInterval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.SuspicionMult < 0 {
		add("SuspicionMult %d is negative", c.SuspicionMult)
	}
	if c.RetransmitMult < 0 {
		add("RetransmitMult %d is negative", c.RetransmitMult)
	}
	return errors.Join(errs...)
}

// errKeySize is memberlist's own rule, checked here so Validate can report it with the rest.
var errKeySize = errors.New("AES key must be 16, 24 or 32 bytes")

func checkKey(k []byte) error {
	switch len(k) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%w, got %d", errKeySize, len(k))
}

// seed is one parsed Seeds entry.
type seed struct {
	host string // IP literal or DNS name
	port uint16
}

// parseSeed reads "host:port", "[v6]:port", "host" or a bare IPv6 address; a missing port is
// defaultPort, which must then be non-zero.
func parseSeed(s string, defaultPort int) (seed, error) {
	bad := func(why string) (seed, error) { return seed{}, fmt.Errorf("seed %q: %s", s, why) }
	if strings.TrimSpace(s) != s || s == "" {
		return bad("empty or padded with spaces")
	}
	host, portStr := s, ""
	if a, err := netip.ParseAddr(s); err == nil {
		host = a.String()
	} else if h, p, err := net.SplitHostPort(s); err == nil {
		host, portStr = h, p
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	} else if strings.Contains(s, ":") {
		return bad("not host:port")
	}
	if host == "" {
		return bad("no host")
	}
	if _, err := netip.ParseAddr(host); err != nil && strings.ContainsAny(host, "[]:/ ") {
		return bad("host is neither an IP address nor a DNS name")
	}
	port := defaultPort
	if portStr != "" {
		p, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return bad("port is not a number in 1..65535")
		}
		port = int(p)
	} else if defaultPort == 0 {
		return bad("no port, and BindPort is 0 so there is no default")
	}
	if port == 0 {
		return bad("port 0")
	}
	return seed{host: host, port: uint16(port)}, nil
}
