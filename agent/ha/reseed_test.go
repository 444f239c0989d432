package ha

import (
	"strings"
	"testing"
)

// `shoal rebuild` picks its donor by the automatic rule and refuses what it must not do.
func TestRebuild(t *testing.T) {
	for _, tt := range []struct {
		name   string
		member string
		setup  func(o *Observation)
		want   Reseed
		err    string
	}{
		{name: "a healthy replica is rebuilt from the other", member: "db-2", want: Reseed{Member: "db-2", Donor: "db-1"}},
		{name: "only the leader picks", member: "db-2", setup: func(o *Observation) { o.Leader = false }, err: "only the Raft leader"},
		{name: "an unknown member", member: "db-9", err: `"db-9" is not a member`},
		{name: "never the primary", member: "db-0", err: "db-0 is the primary: switch over first"},
		{name: "no serving primary", member: "db-2", setup: func(o *Observation) { o.Servers["db-0"] = Server{Err: "refused"} },
			err: "no serving primary"},
		{name: "the member's agent runs the copy", member: "db-2", setup: func(o *Observation) {
			p := o.Peers["db-2"]
			p.State = PeerDead
			o.Peers["db-2"] = p
		}, err: "the agent of db-2 is not alive"},
		{name: "no donor", member: "db-2", setup: func(o *Observation) {
			p := o.Peers["db-1"]
			p.Report.LagMillis = -1
			o.Peers["db-1"] = p
		}, err: "no member may donate to db-2: db-1: not replicating from the primary"},
		{name: "the primary lends its data when no replica may and none acknowledges its commits", member: "db-2", setup: func(o *Observation) {
			p := o.Peers["db-1"]
			p.Report.Errant = true
			o.Peers["db-1"] = p
			o.Servers["db-0"] = noAcks(o.Servers["db-0"])
		}, want: Reseed{Member: "db-2", Donor: "db-0"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := cluster()
			if tt.setup != nil {
				tt.setup(&o)
			}
			got, err := Rebuild(o, DefaultPolicy(), tt.member)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Rebuild = %+v, %v; want an error saying %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Rebuild = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
