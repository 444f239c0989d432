package consensus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Timing defaults for a LAN, where a round trip is well under a millisecond. Raft's own defaults
// (1 s heartbeat and election) are sized for slower networks; halving them halves the time a dead
// leader goes unnoticed, which is most of a failover. Followers wait a random 1-2x
// HeartbeatTimeout before standing, so 500 ms still leaves room for GC pauses and a loaded host.
const (
	DefaultHeartbeatTimeout = 500 * time.Millisecond
	// DefaultCommitTimeout is how often an idle leader sends each follower an append besides its
	// heartbeats. Followers learn a commit from the next append, and Apply sends one at once
	// (Node.Apply), so this only paces idle traffic: each append wakes both ends, which made it
	// a quarter of an idle leader's CPU at 50 ms.
	DefaultCommitTimeout = 500 * time.Millisecond
	// The record is a few hundred bytes and changes a handful of times a day, so snapshots are
	// cheap; taking them often keeps the log, and the replay after a restart, short.
	DefaultSnapshotInterval  = 30 * time.Second
	DefaultSnapshotThreshold = 1024
)

// minTimeout is the smallest timeout Raft accepts.
const minTimeout = 5 * time.Millisecond

// Config is one agent's Raft node.
type Config struct {
	// NodeID is this member's id, stable across restarts (the record's member id).
	NodeID string
	// BindAddr is host:port to listen on for Raft traffic.
	BindAddr string
	// AdvertiseAddr is host:port other nodes dial; empty means BindAddr, which then must not be a
	// wildcard. A host name is resolved once, at Open.
	AdvertiseAddr string
	// DataDir holds the Raft log, stable store and snapshots.
	DataDir string
	// TLS, when set, makes the transport mutual TLS. It must carry this node's certificate and
	// the cluster CA in RootCAs (ClientCAs, if set, verifies incoming peers instead). Peers dial
	// each other by address, which may change, so host names are not checked against addresses:
	// a peer is anyone whose certificate chains to the CA and, when ServerName is set, names
	// ServerName (a cluster-wide name every node's certificate carries as a DNS SAN). Leave
	// ServerName empty only when the CA issues Raft certificates and nothing else.
	TLS *tls.Config
	// Raft timings; zero takes the defaults above. HeartbeatTimeout is how long a follower goes
	// without hearing from a leader before it stands for election; ElectionTimeout defaults to
	// it. hashicorp/raft derives a leader's heartbeat period from the same setting (a tenth to
	// a fifth of it), so this node runs with LeaderHeartbeatTimeout while it leads: heartbeats
	// every 1/10-1/5 of it, by default 100-200 ms, still two or more per follower timeout,
	// at half the idle cost. LeaderLeaseTimeout (default HeartbeatTimeout) is how long a
	// leader goes without hearing from a majority before it steps down; it spans at least two
	// heartbeat periods, so one late heartbeat never deposes a healthy leader.
	HeartbeatTimeout       time.Duration
	ElectionTimeout        time.Duration
	LeaderHeartbeatTimeout time.Duration
	LeaderLeaseTimeout     time.Duration
	CommitTimeout          time.Duration
	// SnapshotInterval is how often Raft checks whether SnapshotThreshold new entries warrant a
	// snapshot; zero takes the defaults above.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// Network, for in-process tests, replaces TCP with an in-memory network shared by the
	// nodes of one test; the node's address is then its NodeID, BindAddr, AdvertiseAddr and TLS
	// must be empty, and an empty DataDir keeps the log and snapshots in memory.
	Network *InmemNetwork
	// Logger receives Raft's own log lines too; nil discards them.
	Logger *slog.Logger
}

// withDefaults returns c with every zero setting replaced by its default.
func (c Config) withDefaults() Config {
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = c.HeartbeatTimeout
	}
	if c.LeaderHeartbeatTimeout == 0 {
		c.LeaderHeartbeatTimeout = 2 * c.HeartbeatTimeout
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = c.HeartbeatTimeout
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = DefaultCommitTimeout
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem with c at once; zero timings are checked as their defaults.
func (c Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.NodeID == "" {
		bad("node id is empty")
	}
	if c.Network != nil {
		if c.BindAddr != "" || c.AdvertiseAddr != "" {
			bad("bind and advertise addresses must be empty on an in-memory network")
		}
		if c.TLS != nil {
			bad("TLS cannot be used on an in-memory network")
		}
	} else {
		if c.DataDir == "" {
			bad("data dir is empty")
		}
		bindHost, _, err := splitHostPort(c.BindAddr)
		if err != nil {
			bad("bind addr: %w", err)
		}
		if c.AdvertiseAddr == "" {
			if err == nil && isWildcard(bindHost) {
				bad("advertise addr is required when bind addr %q is a wildcard", c.BindAddr)
			}
		} else if host, port, err := splitHostPort(c.AdvertiseAddr); err != nil {
			bad("advertise addr: %w", err)
		} else if isWildcard(host) || port == 0 {
			bad("advertise addr %q is not an address other nodes can dial", c.AdvertiseAddr)
		}
	}
	if c.TLS != nil {
		// Each node is both server and client, so a callback must serve both ends.
		if len(c.TLS.Certificates) == 0 && (c.TLS.GetCertificate == nil || c.TLS.GetClientCertificate == nil) {
			bad("TLS: no certificate for this node (Certificates, or both GetCertificate and GetClientCertificate)")
		}
		if c.TLS.RootCAs == nil {
			bad("TLS: no CA (RootCAs) to verify peers against")
		}
	}
	for _, t := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"heartbeat timeout", d.HeartbeatTimeout, minTimeout},
		{"election timeout", d.ElectionTimeout, minTimeout},
		{"leader heartbeat timeout", d.LeaderHeartbeatTimeout, minTimeout},
		{"leader lease timeout", d.LeaderLeaseTimeout, minTimeout},
		{"commit timeout", d.CommitTimeout, time.Millisecond},
		{"snapshot interval", d.SnapshotInterval, minTimeout},
	} {
		if t.v < t.min {
			bad("%s %s is below the minimum %s", t.name, t.v, t.min)
		}
	}
	if d.LeaderLeaseTimeout > d.HeartbeatTimeout {
		bad("leader lease timeout %s exceeds heartbeat timeout %s", d.LeaderLeaseTimeout, d.HeartbeatTimeout)
	}
	// A leader's heartbeats are at most LeaderHeartbeatTimeout/5 apart (hashicorp/raft).
	if longest := d.LeaderHeartbeatTimeout / 5; 2*longest > d.HeartbeatTimeout {
		bad("leader heartbeat timeout %s spaces heartbeats up to %s apart: a follower must get two within its heartbeat timeout %s",
			d.LeaderHeartbeatTimeout, longest, d.HeartbeatTimeout)
	} else if 2*longest > d.LeaderLeaseTimeout {
		bad("leader heartbeat timeout %s spaces heartbeats up to %s apart: the leader lease timeout %s must span two, or one late heartbeat deposes the leader",
			d.LeaderHeartbeatTimeout, longest, d.LeaderLeaseTimeout)
	}
	if d.ElectionTimeout < d.HeartbeatTimeout {
		bad("election timeout %s is below heartbeat timeout %s", d.ElectionTimeout, d.HeartbeatTimeout)
	}
	return errors.Join(errs...)
}

// splitHostPort splits host:port and checks the port is a number. It does no lookups: Validate
// does no I/O.
func splitHostPort(addr string) (host string, port uint64, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return host, port, nil
}

// isWildcard says whether host listens everywhere (empty, 0.0.0.0, ::) and so names no address.
func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}
