package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
)

func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{}, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"mysql", "frobnicate"}, `unknown mysql command "frobnicate"`},
		{[]string{"mysql", "promote"}, "exactly one server address"},
		{[]string{"mysql", "status", "-o", "yaml", "127.0.0.1:1"}, "want table or json"},
		{[]string{"mysql", "status", "--nope"}, "flag provided but not defined"},
		{[]string{"status", "extra"}, "takes no arguments"},
		{[]string{"agent", "--nope", "1"}, "unknown flag --nope"},
		{[]string{"certs"}, "at least one MEMBER"},
		{[]string{"certs", "--dir", "/nonexistent", "DB1"}, "want a node.id"},
		{[]string{"certs", "--dir", "/nonexistent", "db1", "db1=10.0.0.1"}, "given twice"},
		{[]string{"certs", "--days", "0", "db1"}, "want at least 1"},
		{[]string{"status", "--ca-file", "/dev/null"}, "holds no PEM certificate"},
		{[]string{"agent", "--cluster", "Bad Name", "--gossip.allow_plaintext", "--raft.allow_plaintext"}, "cluster: want a DNS label"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := run(t.Context(), tt.args, &out, &out)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("shoal %s: error %v, want a usage error containing %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}

// An unreachable server is a row saying so, not a failed command: status is for bad days.
func TestMySQLStatusUnreachable(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"mysql", "status", "--timeout", "2s", "127.0.0.1:1"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "unreachable") || !strings.Contains(out.String(), "127.0.0.1:1") {
		t.Fatalf("status output:\n%s", out.String())
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"version"}, &out, &out); err != nil || !strings.HasPrefix(out.String(), "shoal ") {
		t.Fatalf("version: %q, %v", out.String(), err)
	}
}

func TestMemberHealth(t *testing.T) {
	replica := health.Report{MySQLUp: true, Role: health.RoleReplica, Source: "db-0", IOConnected: true, SQLRunning: true}
	stopped := replica
	stopped.SQLRunning = false
	view := func(r health.Report, code string) adminapi.View {
		return adminapi.View{Local: adminapi.LocalView{Up: r.MySQLUp}, Report: r, NodeCode: code,
			Record: record.Record{Primary: "db-0"}}
	}
	for _, tt := range []struct {
		name string
		v    adminapi.View
		want string
	}{
		{"replicating", view(replica, "replica_serving"), "ok"},
		{"applier stopped on an error", view(stopped, "applier_error"), "not serving (applier_error)"},
		{"mysql down", view(health.Report{}, "local_unreachable"), "mysql down"},
		{"errant", func() adminapi.View { v := view(stopped, "errant"); v.Errant = "0-2-5"; return v }(), "errant: 0-2-5"},
	} {
		if got := memberHealth("db-1", tt.v); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
