package consensus

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/shoal-db/shoal/consensus/tlstest"
)

func TestConfigValidate(t *testing.T) {
	good := Config{NodeID: "db-0", BindAddr: "10.0.0.1:7000", DataDir: "/var/lib/shoal/raft"}
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none means valid
	}{
		{"good", func(*Config) {}, nil},
		{"wildcard bind with advertise", func(c *Config) { c.BindAddr, c.AdvertiseAddr = "0.0.0.0:7000", "10.0.0.1:7000" }, nil},
		{"host name advertise", func(c *Config) { c.AdvertiseAddr = "db-0.db.svc:7000" }, nil},
		{"in-memory without data dir", func(c *Config) { *c = Config{NodeID: "db-0", Network: NewInmemNetwork()} }, nil},
		{"tuned timings", func(c *Config) {
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = time.Second, 2*time.Second, time.Second
		}, nil},
		{
			"everything wrong at once",
			func(c *Config) {
				*c = Config{BindAddr: "nope", AdvertiseAddr: "0.0.0.0:7000", HeartbeatTimeout: time.Millisecond, CommitTimeout: -1}
			},
			[]string{"node id is empty", "data dir is empty", "bind addr", "advertise addr \"0.0.0.0:7000\"",
				"heartbeat timeout 1ms is below", "commit timeout -1ns is below"},
		},
		{"wildcard bind alone", func(c *Config) { c.BindAddr = ":7000" }, []string{"advertise addr is required"}},
		{"advertise port zero", func(c *Config) { c.AdvertiseAddr = "10.0.0.1:0" }, []string{"not an address other nodes can dial"}},
		{"bad port", func(c *Config) { c.BindAddr = "10.0.0.1:70000" }, []string{"port \"70000\""}},
		{"lease above heartbeat", func(c *Config) { c.LeaderLeaseTimeout = time.Second }, []string{"leader lease timeout 1s exceeds heartbeat timeout 500ms"}},
		{"leader heartbeats too sparse for followers", func(c *Config) { c.LeaderHeartbeatTimeout = 2 * time.Second },
			[]string{"up to 400ms apart: a follower must get two within its heartbeat timeout 500ms"}},
		{"leader lease shorter than two heartbeats", func(c *Config) { c.LeaderLeaseTimeout = 250 * time.Millisecond },
			[]string{"up to 200ms apart: the leader lease timeout 250ms must span two"}},
		{"frequent leader heartbeats", func(c *Config) {
			c.LeaderHeartbeatTimeout, c.LeaderLeaseTimeout = 500*time.Millisecond, 250*time.Millisecond
		}, nil},
		{"election below heartbeat", func(c *Config) { c.ElectionTimeout = 100 * time.Millisecond }, []string{"election timeout 100ms is below heartbeat"}},
		{"TLS without certificate or CA", func(c *Config) { c.TLS = &tls.Config{} }, []string{"no certificate", "no CA"}},
		{"in-memory with addresses and TLS", func(c *Config) { c.Network, c.TLS = NewInmemNetwork(), &tls.Config{} },
			[]string{"must be empty on an in-memory network", "TLS cannot be used"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	d := Config{}.withDefaults()
	if d.HeartbeatTimeout != 500*time.Millisecond || d.ElectionTimeout != 500*time.Millisecond ||
		d.LeaderHeartbeatTimeout != time.Second || d.LeaderLeaseTimeout != 500*time.Millisecond || d.CommitTimeout != 500*time.Millisecond ||
		d.SnapshotInterval != DefaultSnapshotInterval || d.SnapshotThreshold != DefaultSnapshotThreshold || d.Logger == nil {
		t.Errorf("defaults = %+v", d)
	}
	d = Config{HeartbeatTimeout: 2 * time.Second}.withDefaults()
	if d.ElectionTimeout != 2*time.Second || d.LeaderHeartbeatTimeout != 4*time.Second || d.LeaderLeaseTimeout != 2*time.Second {
		t.Errorf("defaults follow the heartbeat: %+v", d)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	_, err := Open(context.Background(), Config{})
	if err == nil || !strings.Contains(err.Error(), "raft config: node id is empty") {
		t.Fatalf("Open = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, Config{NodeID: "db-0", Network: NewInmemNetwork()}); err == nil {
		t.Fatal("Open with a cancelled context succeeded")
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []*tls.Config{nil, tlstest.NewCA(t).Config("db-0")} {
		_, err := Open(context.Background(), Config{NodeID: "db-0", BindAddr: busy.Addr().String(), DataDir: t.TempDir(), TLS: tc})
		if err == nil || !strings.Contains(err.Error(), "listen on "+busy.Addr().String()) {
			t.Errorf("Open on a busy port (TLS %v) = %v", tc != nil, err)
		}
	}
}

func TestHclogAdapter(t *testing.T) {
	var buf bytes.Buffer
	l := newHclog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "raft", nil)
	lines := func() []map[string]any {
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("bad JSON line %q: %v", line, err)
			}
			out = append(out, m)
		}
		buf.Reset()
		return out
	}

	l.Trace("hidden")
	l.Debug("d", "k", 1)
	l.Info("i")
	l.Warn("w")
	l.Error("e", "error", "boom")
	got := lines()
	if len(got) != 4 {
		t.Fatalf("got %d lines, want 4 (trace is below the handler's level): %v", len(got), got)
	}
	for i, want := range []string{"DEBUG", "INFO", "WARN", "ERROR"} {
		if got[i]["level"] != want || got[i]["logger"] != "raft" {
			t.Errorf("line %d = %v, want level %s logger raft", i, got[i], want)
		}
	}
	if got[0]["k"] != 1.0 || got[3]["error"] != "boom" {
		t.Errorf("args lost: %v", got)
	}
	if l.IsTrace() || !l.IsDebug() || !l.IsError() || l.GetLevel() != hclog.Debug {
		t.Errorf("levels: trace %v debug %v level %v", l.IsTrace(), l.IsDebug(), l.GetLevel())
	}

	named := l.Named("snapshot").With("peer", "db-1")
	named.Info("x")
	named.ResetNamed("other").Info("y")
	got = lines()
	if got[0]["logger"] != "raft.snapshot" || got[0]["peer"] != "db-1" || named.Name() != "raft.snapshot" {
		t.Errorf("named = %v", got[0])
	}
	if got[1]["logger"] != "other" || got[1]["peer"] != "db-1" {
		t.Errorf("reset named = %v", got[1])
	}
	if args := named.ImpliedArgs(); len(args) != 2 {
		t.Errorf("implied args = %v", args)
	}

	named.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}).Print("std")
	if got := lines(); got[0]["level"] != "WARN" || got[0]["msg"] != "std" {
		t.Errorf("standard logger = %v", got[0])
	}
}
