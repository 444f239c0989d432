package ha

import (
	_ "embed"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
)

var rollPolicy = RollPolicy{MinInterval: 10 * time.Second, MaxLag: 5 * time.Second}

// rollCluster is n members serving in epoch 3, db-0 primary, every pod Ready on revision "old"
// while the StatefulSet (OnDelete) wants "new", seen by a leader reaching a majority.
func rollCluster(n int) RollObservation {
	o := RollObservation{Now: t0, Majority: true, OnDelete: true, UpdateRevision: "new",
		Peers: map[string]Peer{}, Servers: map[string]Server{}, Pods: map[string]RollPod{},
		Record: record.Record{Cluster: "orders", Epoch: 3, Primary: "db-0", Members: map[string]record.Member{}}}
	for i := range n {
		id := fmt.Sprintf("db-%d", i)
		o.Record.Members[id] = record.Member{ID: id, Voter: true}
		o.Pods[id] = RollPod{Name: id, UID: "uid-" + id, Revision: "old", Ready: true}
		serveReplica(&o, id, "db-0")
	}
	servePrimary(&o, "db-0")
	return o
}

func serveReplica(o *RollObservation, id, primary string) {
	o.Peers[id] = Peer{State: PeerAlive, Report: replicaReport(primary)}
	o.Servers[id] = replicaServer("10.0.0.1", uuidA+":1-100", uuidA+":1-100")
}

func servePrimary(o *RollObservation, id string) {
	o.Peers[id] = Peer{State: PeerAlive, Report: health.Report{MySQLUp: true, Writable: true, Role: health.RolePrimary, LagMillis: -1}}
	o.Servers[id] = primaryServer(uuidA + ":1-100")
}

// updated puts member id's pod on the new revision, a new pod.
func updated(o *RollObservation, id string) {
	pod := o.Pods[id]
	pod.Revision, pod.UID = "new", "uid-new-"+id
	o.Pods[id] = pod
}

// switchedOver is the replicas updated, then a switchover to `to` done: every other member
// replicates from it in epoch 4.
func switchedOver(o *RollObservation, to string) {
	updated(o, "db-1")
	updated(o, "db-2")
	o.Record.Epoch, o.Record.Primary = 4, to
	for _, id := range o.Record.MemberIDs() {
		serveReplica(o, id, to)
	}
	servePrimary(o, to)
}

// report changes member id's gossip report by f.
func report(o *RollObservation, id string, f func(*health.Report)) {
	p := o.Peers[id]
	f(&p.Report)
	o.Peers[id] = p
}

func lag(o *RollObservation, id string, ms int64) {
	report(o, id, func(r *health.Report) { r.LagMillis = ms })
}

type rollCase struct {
	name   string
	n      int
	setup  func(o *RollObservation)
	want   *RollAction
	code   Code
	reason string
}

func rollCases() []rollCase {
	return []rollCase{
		{name: "every pod on the update revision: nothing",
			setup: func(o *RollObservation) {
				for _, id := range []string{"db-0", "db-1", "db-2"} {
					updated(o, id)
				}
			}},
		{name: "the StatefulSet not observed yet: nothing",
			setup: func(o *RollObservation) { o.UpdateRevision = "" }},
		{name: "all outdated: the highest replica first, with its UID as precondition",
			want: &RollAction{Member: "db-2", Pod: "db-2", UID: "uid-db-2"}, code: CodeRollDelete,
			reason: "db-2's pod db-2 is on revision old, not new, and every member serves: evicting it"},
		{name: "never the primary first, whatever its id",
			setup: func(o *RollObservation) {
				o.Record.Primary = "db-2"
				servePrimary(o, "db-2")
				serveReplica(o, "db-0", "db-2")
				serveReplica(o, "db-1", "db-2")
			},
			want: &RollAction{Member: "db-1", Pod: "db-1", UID: "uid-db-1"}, code: CodeRollDelete},
		{name: "one replica updated: the other replica next",
			setup: func(o *RollObservation) { updated(o, "db-2") },
			want:  &RollAction{Member: "db-1", Pod: "db-1", UID: "uid-db-1"}, code: CodeRollDelete},
		{name: "only the primary outdated: a switchover to the updated replica lagging least, no deletion",
			setup: func(o *RollObservation) {
				updated(o, "db-1")
				updated(o, "db-2")
				lag(o, "db-1", 300)
				lag(o, "db-2", 20)
			},
			want: &RollAction{Member: "db-0", Pod: "db-0", SwitchoverTo: "db-2"}, code: CodeRollSwitchover,
			reason: "switching over to db-2 first"},
		{name: "only the primary outdated, its replicas lagging past max lag: no switchover",
			setup: func(o *RollObservation) {
				updated(o, "db-1")
				updated(o, "db-2")
				lag(o, "db-1", 6000)
				lag(o, "db-2", -1)
			},
			code: CodeRollNoTarget, reason: "no updated replica lags less than 5s"},
		{name: "the old primary, a replica now the record names db-2: its pod goes last",
			setup: func(o *RollObservation) { switchedOver(o, "db-2") },
			want:  &RollAction{Member: "db-0", Pod: "db-0", UID: "uid-db-0"}, code: CodeRollDelete},
		{name: "the switchover requested, not carried out yet: nothing",
			setup: func(o *RollObservation) {
				updated(o, "db-1")
				updated(o, "db-2")
				o.Record.Switchover = &record.Switchover{To: "db-2", RequestedAt: t0}
			},
			code: CodeRollWait, reason: "a switchover is pending"},
		{name: "the old primary fenced, not yet replicating from the new one: nothing",
			setup: func(o *RollObservation) {
				switchedOver(o, "db-2")
				o.Servers["db-0"] = replicaServer("", uuidA+":1-100", uuidA+":1-100")
				o.Peers["db-0"] = Peer{State: PeerAlive, Report: health.Report{MySQLUp: true, Role: health.RoleFenced}}
			},
			code: CodeRollWait, reason: "db-0 does not replicate from the primary db-2"},
		{name: "no primary recorded (a failover under way): nothing",
			setup: func(o *RollObservation) { o.Record.Primary = "" },
			code:  CodeRollWait, reason: "no primary is recorded"},
		{name: "the primary fenced (a failover or switchover under way): nothing",
			setup: func(o *RollObservation) { o.Servers["db-0"] = replicaServer("", uuidA+":1-100", "") },
			code:  CodeRollWait, reason: "the primary db-0 is not writable"},
		{name: "the pod just deleted, still in the informer: nothing",
			setup: func(o *RollObservation) { o.Memory.Deleted = "uid-db-2" },
			code:  CodeRollWait, reason: "db-2's pod was just deleted"},
		{name: "a pod terminating: nothing",
			setup: func(o *RollObservation) {
				pod := o.Pods["db-2"]
				pod.Terminating = true
				o.Pods["db-2"] = pod
			},
			code: CodeRollWait, reason: "db-2's pod is terminating"},
		{name: "a member without a pod: nothing",
			setup: func(o *RollObservation) { delete(o.Pods, "db-1") },
			code:  CodeRollWait, reason: "db-1 has no pod"},
		{name: "the new pod not Ready yet: nothing",
			setup: func(o *RollObservation) {
				updated(o, "db-2")
				pod := o.Pods["db-2"]
				pod.Ready = false
				o.Pods["db-2"] = pod
			},
			code: CodeRollWait, reason: "db-2's pod is not Ready"},
		{name: "the new pod Ready but its receiver not connected: nothing",
			setup: func(o *RollObservation) {
				updated(o, "db-2")
				report(o, "db-2", func(r *health.Report) { r.IOConnected = false })
			},
			code: CodeRollWait, reason: "db-2 does not replicate from the primary db-0"},
		{name: "a member's agent gone from gossip: nothing",
			setup: func(o *RollObservation) { o.Peers["db-1"] = Peer{State: PeerSuspect} },
			code:  CodeRollWait, reason: "db-1's agent is not alive in gossip"},
		{name: "a member's MySQL down: nothing",
			setup: func(o *RollObservation) { o.Servers["db-1"] = Server{Err: "connection refused", Gone: true} },
			code:  CodeRollWait, reason: "db-1's MySQL is unreachable"},
		{name: "a member draining: nothing",
			setup: func(o *RollObservation) { report(o, "db-1", func(r *health.Report) { r.Draining = true }) },
			code:  CodeRollWait, reason: "db-1's agent is shutting down"},
		{name: "a member re-seeding: nothing",
			setup: func(o *RollObservation) { report(o, "db-1", func(r *health.Report) { r.Reseeding = true }) },
			code:  CodeRollWait, reason: "db-1 is being re-seeded"},
		{name: "an errant member: nothing",
			setup: func(o *RollObservation) { report(o, "db-1", func(r *health.Report) { r.Errant = true }) },
			code:  CodeRollWait, reason: "db-1 holds errant transactions"},
		{name: "a writable replica: nothing",
			setup: func(o *RollObservation) { o.Servers["db-1"] = primaryServer(uuidA + ":1-100") },
			code:  CodeRollWait, reason: "db-1 is writable but not the primary"},
		{name: "paused: nothing",
			setup: func(o *RollObservation) { o.Record.Paused = true },
			code:  CodeRollPaused},
		{name: "a leader cut off: nothing",
			setup: func(o *RollObservation) { o.Majority = false },
			code:  CodeRollNoMajority},
		{name: "RollingUpdate: the StatefulSet's controller rolls, shoal does not",
			setup: func(o *RollObservation) { o.OnDelete = false },
			code:  CodeRollNotOnDelete},
		{name: "the last step 9s ago: nothing",
			setup: func(o *RollObservation) { o.Memory.LastAction = t0.Add(-9 * time.Second) },
			code:  CodeRollRateLimited, reason: "the last step was 9s ago"},
		{name: "the last step 10s ago: the next",
			setup: func(o *RollObservation) { o.Memory.LastAction = t0.Add(-10 * time.Second) },
			want:  &RollAction{Member: "db-2", Pod: "db-2", UID: "uid-db-2"}, code: CodeRollDelete},
		{name: "two members: one down leaves no majority", n: 2,
			code: CodeRollBelowMajority, reason: "with 2 members one pod down leaves no majority"},
		{name: "five members: a replica goes", n: 5,
			want: &RollAction{Member: "db-4", Pod: "db-4", UID: "uid-db-4"}, code: CodeRollDelete},
		{name: "a pod of no member is not the leader's",
			setup: func(o *RollObservation) {
				for _, id := range []string{"db-0", "db-1", "db-2"} {
					updated(o, id)
				}
				o.Pods["db-9"] = RollPod{Name: "db-9", UID: "uid-db-9", Revision: "old", Ready: true}
			}},
	}
}

func TestRoll(t *testing.T) {
	for _, tt := range rollCases() {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.n
			if n == 0 {
				n = 3
			}
			o := rollCluster(n)
			if tt.setup != nil {
				tt.setup(&o)
			}
			d := Roll(o, rollPolicy)
			if fmt.Sprint(d.Action) != fmt.Sprint(tt.want) {
				t.Fatalf("action = %+v, want %+v (%s)", d.Action, tt.want, d.Reason)
			}
			if d.Reason.Code != tt.code || !strings.Contains(d.Reason.Text, tt.reason) {
				t.Fatalf("reason = %s %q, want %s saying %q", d.Reason.Code, d.Reason.Text, tt.code, tt.reason)
			}
			if a := d.Action; a != nil {
				deleted := o.Memory.Deleted
				if a.SwitchoverTo == "" {
					deleted = a.UID
				}
				if !d.Memory.LastAction.Equal(t0) || d.Memory.Deleted != deleted {
					t.Fatalf("an action must be remembered: %+v", d.Memory)
				}
				if d.Member != a.Member {
					t.Fatalf("the reason is about %q, the action about %q", d.Member, a.Member)
				}
			} else if d.Memory != o.Memory {
				t.Fatalf("memory changed without an action: %+v, was %+v", d.Memory, o.Memory)
			}
		})
	}
}

// rollSource is roll.go, whose rolling codes TestRoll must each expect.
//
//go:embed roll.go
var rollSource string

func TestEveryRollCodeIsTested(t *testing.T) {
	tested := map[Code]bool{}
	for _, c := range rollCases() {
		tested[c.code] = true
	}
	codes := map[Code]string{}
	for _, m := range codeDecl.FindAllStringSubmatch(rollSource, -1) {
		codes[Code(m[2])] = m[1]
	}
	if len(codes) < 9 {
		t.Fatalf("found only %d Code constants in roll.go", len(codes))
	}
	for code, name := range codes {
		if !tested[code] {
			t.Errorf("%s (%q) is the expected outcome of no TestRoll case", name, code)
		}
	}
}

// A whole update, with the StatefulSet's controller, the pods and the leader's switchover
// simulated between passes: every replica's pod goes before the primary's, one at a time, each
// only once its predecessor's successor serves; the primary's pod goes only after one
// switchover, once the record names another primary; at the end every pod is on the new
// revision.
func TestRollWholeUpdate(t *testing.T) {
	for _, primary := range []string{"db-0", "db-1", "db-2"} {
		t.Run("primary "+primary, func(t *testing.T) {
			o := rollCluster(3)
			o.Record.Primary = primary
			for _, id := range o.Record.MemberIDs() {
				serveReplica(&o, id, primary)
			}
			servePrimary(&o, primary)
			var (
				deleted     []string
				switchovers int
				starting    = map[string]int{} // passes until a recreated pod serves
			)
			for pass := 0; pass < 200; pass++ {
				o.Now = t0.Add(time.Duration(pass) * time.Second)
				// The world moves: a deleted pod is recreated on the new revision and serves
				// some passes later; a requested switchover completes.
				for id, left := range starting {
					if left > 0 {
						starting[id]--
						continue
					}
					delete(starting, id)
					pod := o.Pods[id]
					pod.Ready = true
					o.Pods[id] = pod
					serveReplica(&o, id, o.Record.Primary)
				}
				if s := o.Record.Switchover; s != nil {
					o.Record.Epoch, o.Record.Primary, o.Record.Switchover = o.Record.Epoch+1, s.To, nil
					servePrimary(&o, s.To)
					for _, id := range o.Record.MemberIDs() {
						if id != s.To {
							serveReplica(&o, id, s.To)
						}
					}
				}
				d := Roll(o, rollPolicy)
				o.Memory = d.Memory
				a := d.Action
				if a == nil {
					if d.Outdated == 0 {
						break
					}
					continue
				}
				if a.SwitchoverTo != "" {
					if len(deleted) != 2 || a.Member != o.Record.Primary {
						t.Fatalf("pass %d: switchover from %s to %s after deleting %v", pass, a.Member, a.SwitchoverTo, deleted)
					}
					if o.Pods[a.SwitchoverTo].Revision != "new" {
						t.Fatalf("switchover to %s, not updated", a.SwitchoverTo)
					}
					switchovers++
					o.Record.Switchover = &record.Switchover{To: a.SwitchoverTo, RequestedAt: o.Now}
					continue
				}
				if a.Member == o.Record.Primary {
					t.Fatalf("pass %d: the recorded primary %s's pod deleted", pass, a.Member)
				}
				if len(starting) > 0 {
					t.Fatalf("pass %d: %s deleted while %v starts", pass, a.Member, starting)
				}
				if a.Member == primary && switchovers != 1 {
					t.Fatalf("pass %d: the first primary's pod deleted after %d switchovers", pass, switchovers)
				}
				deleted = append(deleted, a.Member)
				// The StatefulSet recreates it on the new revision, not Ready at first.
				o.Pods[a.Member] = RollPod{Name: a.Member, UID: fmt.Sprintf("uid-%s-%d", a.Member, pass), Revision: "new"}
				o.Peers[a.Member] = Peer{State: PeerAlive, Report: health.Report{MySQLUp: true, Role: health.RoleFenced}}
				starting[a.Member] = 3
			}
			if len(deleted) != 3 || deleted[2] != primary || switchovers != 1 {
				t.Fatalf("deleted %v with %d switchovers; want every pod, %s last, after one switchover", deleted, switchovers, primary)
			}
			for id, pod := range o.Pods {
				if pod.Revision != "new" {
					t.Errorf("%s still on %s", id, pod.Revision)
				}
			}
		})
	}
}

// Whatever the cluster looks like, a step is taken only while every member serves, the cluster is
// neither paused nor cut off and no switchover is pending; a deletion is never the recorded
// primary's, and a switchover is asked only from it.
func TestRollNeverUnsafe(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		o := rollCluster(3)
		ids := o.Record.MemberIDs()
		o.Record.Primary = ids[rng.IntN(3)]
		for _, id := range ids {
			serveReplica(&o, id, o.Record.Primary)
			if rng.IntN(2) == 0 {
				updated(&o, id)
			}
			pod := o.Pods[id]
			pod.Ready, pod.Terminating = rng.IntN(8) != 0, rng.IntN(8) == 0
			o.Pods[id] = pod
			if rng.IntN(8) == 0 {
				o.Servers[id] = Server{Err: "refused"}
			}
		}
		servePrimary(&o, o.Record.Primary)
		o.Record.Paused, o.Majority = rng.IntN(8) == 0, rng.IntN(8) != 0
		if rng.IntN(8) == 0 {
			o.Record.Switchover = &record.Switchover{}
		}
		d := Roll(o, rollPolicy)
		a := d.Action
		if a == nil {
			continue
		}
		if o.Record.Paused || !o.Majority || o.Record.Switchover != nil || notServing(o) != "" {
			t.Fatalf("case %d: %+v taken in %+v", i, a, o)
		}
		if (a.SwitchoverTo == "") == (a.Member == o.Record.Primary) {
			t.Fatalf("case %d: %+v with %s primary", i, a, o.Record.Primary)
		}
	}
}
