package ha

import (
	_ "embed"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

var healPolicy = HealPolicy{Grace: time.Minute, StartGrace: 5 * time.Minute, MinInterval: 2 * time.Minute, LeaseBound: 1750 * time.Millisecond}

// healCluster is n healthy members in epoch 3, db-0 primary since an hour, each with a pod
// created a day ago on its own Ready node (its agent started 10 s later), seen by a leader
// reaching a majority.
func healCluster(n int) HealObservation {
	o := HealObservation{Now: t0, Majority: true, Peers: map[string]Peer{}, Servers: map[string]Server{}, Pods: map[string]Pod{},
		Record: record.Record{Cluster: "orders", Epoch: 3, Primary: "db-0", Members: map[string]record.Member{},
			LastPrimaryChange: t0.Add(-time.Hour)}}
	for i := range n {
		id := fmt.Sprintf("db-%d", i)
		o.Record.Members[id] = record.Member{ID: id, Voter: true}
		o.Peers[id] = Peer{State: PeerAlive, Report: replicaReport("db-0")}
		o.Servers[id] = replicaServer("10.0.0.1", uuidA+":1-100", uuidA+":1-100")
		o.Pods[id] = Pod{Name: id, UID: "uid-" + id, Node: fmt.Sprintf("node-%d", i), NodeReady: true,
			Created: t0.Add(-24 * time.Hour), Started: t0.Add(-24*time.Hour + 10*time.Second), Claims: []string{"data-" + id}}
	}
	o.Servers["db-0"] = primaryServer(uuidA + ":1-100")
	return o
}

// down makes member id's MySQL unreachable since `since`.
func down(o *HealObservation, id string, since time.Time) {
	o.Servers[id] = Server{Err: "connection refused", Gone: true}
	if o.Memory.FailingSince == nil {
		o.Memory.FailingSince = map[string]time.Time{}
	}
	o.Memory.FailingSince[id] = since
}

// recreated gives member id a pod created `created` ago whose agent started `started` ago (never
// when negative), replacing the pod of UID replaced (none when empty).
func recreated(o *HealObservation, id string, created, started time.Duration, replaced string) {
	pod := o.Pods[id]
	pod.Created, pod.Started, pod.UID, pod.Replaced = t0.Add(-created), time.Time{}, "uid-new-"+id, replaced
	if started >= 0 {
		pod.Started = t0.Add(-started)
	}
	o.Pods[id] = pod
}

// nodeLost puts member id's pod on a NotReady node, stuck terminating since before now, its
// agent dead, and db-1 the primary of epoch 4 committed at `epochAt`.
func nodeLost(o *HealObservation, id string, epochAt time.Time) {
	down(o, id, o.Now.Add(-10*time.Minute))
	o.Peers[id] = Peer{State: PeerDead}
	pod := o.Pods[id]
	pod.NodeReady, pod.Terminating = false, o.Now.Add(-time.Second)
	o.Pods[id] = pod
	o.Record.Epoch, o.Record.Primary, o.Record.LastPrimaryChange = 4, "db-1", epochAt
	o.Servers["db-1"] = primaryServer(uuidA + ":1-100")
}

type healCase struct {
	name   string
	policy func(p *HealPolicy)
	setup  func(o *HealObservation)
	want   *HealAction
	code   Code
	reason string
}

func healCases() []healCase {
	return []healCase{
		{name: "a healthy cluster: nothing", code: ""},
		{name: "down past grace: the pod goes, with its UID as precondition",
			setup: func(o *HealObservation) { down(o, "db-2", t0.Add(-time.Minute)) },
			want:  &HealAction{Member: "db-2", Pod: "db-2", UID: "uid-db-2", Mark: []string{"data-db-2"}}, code: CodeHealDelete,
			reason: "db-2 has failed (its MySQL is unreachable: connection refused) for kubernetes.heal.grace: deleting its pod db-2"},
		{name: "down within grace: nothing yet",
			setup: func(o *HealObservation) { down(o, "db-2", t0.Add(-59*time.Second)) }},
		{name: "a recreated pod gets its own grace",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				recreated(o, "db-2", 30*time.Second, 25*time.Second, "")
			}},
		{name: "a recreated pod's grace counts from its agent's start, not from init containers",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				recreated(o, "db-2", 3*time.Minute, 59*time.Second, "")
			}},
		{name: "a recreated pod's agent has run for the grace",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				recreated(o, "db-2", 3*time.Minute, time.Minute, "")
			},
			want: &HealAction{Member: "db-2", Pod: "db-2", UID: "uid-new-db-2", Mark: []string{"data-db-2"}}, code: CodeHealDelete},
		{name: "a recreated pod whose agent never starts: its grace counts from start_grace",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				recreated(o, "db-2", 6*time.Minute, -1, "")
			},
			want: &HealAction{Member: "db-2", Pod: "db-2", UID: "uid-new-db-2", Mark: []string{"data-db-2"}}, code: CodeHealDelete},
		{name: "a recreated pod whose agent has not started within start_grace and the grace: nothing yet",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				recreated(o, "db-2", 5*time.Minute+59*time.Second, -1, "")
			}},
		{name: "an applier error past grace",
			setup: func(o *HealObservation) {
				s := replicaServer("10.0.0.1", uuidA+":1-90", uuidA+":1-100")
				s.Status.Replica.SQLRunning, s.Status.Replica.LastSQLErrno = false, 1062
				o.Servers["db-1"] = s
				o.Memory.FailingSince = map[string]time.Time{"db-1": t0.Add(-time.Hour)}
			},
			want: &HealAction{Member: "db-1", Pod: "db-1", UID: "uid-db-1", Mark: []string{"data-db-1"}}, code: CodeHealDelete, reason: "its applier stopped with error 1062"},
		{name: "binary logs purged under a replica holding data",
			setup: func(o *HealObservation) {
				s := replicaServer("10.0.0.1", uuidA+":1-90", uuidA+":1-90")
				s.Status.Replica.IOState, s.Status.Replica.LastIOErrno = "No", 1236
				o.Servers["db-1"] = s
				o.Memory.FailingSince = map[string]time.Time{"db-1": t0.Add(-time.Hour)}
			},
			want: &HealAction{Member: "db-1", Pod: "db-1", UID: "uid-db-1", Mark: []string{"data-db-1"}}, code: CodeHealDelete, reason: "error 1236"},
		{name: "an empty replica without binary logs is re-seeded in place, not healed",
			setup: func(o *HealObservation) {
				s := replicaServer("10.0.0.1", "", "")
				s.Status.Replica.IOState, s.Status.Replica.LastIOErrno = "No", 1236
				o.Servers["db-1"] = s
				o.Memory.FailingSince = map[string]time.Time{"db-1": t0.Add(-time.Hour)}
			}},
		{name: "errant without ha.rebuild_errant is no failure",
			setup: func(o *HealObservation) { errant(o, "db-2") }},
		{name: "errant with ha.rebuild_errant and delete_volume: pod and volume",
			policy: func(p *HealPolicy) { p.RebuildErrant, p.DeleteVolume = true, true },
			setup:  func(o *HealObservation) { errant(o, "db-2") },
			want:   &HealAction{Member: "db-2", Pod: "db-2", UID: "uid-db-2", Claims: []string{"data-db-2"}}, code: CodeHealDeleteVolume},
		{name: "errant without delete_volume: left fenced and reported",
			policy: func(p *HealPolicy) { p.RebuildErrant = true },
			setup:  func(o *HealObservation) { errant(o, "db-2") },
			code:   CodeHealVolumeKept, reason: "kubernetes.delete_volume is off: it stays fenced"},
		{name: "a member being re-seeded is left to it",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				p := o.Peers["db-2"]
				p.Report.Reseeding = true
				o.Peers["db-2"] = p
			}},
		{name: "a recreated pod failing again: its data is unusable, pod and volume go",
			policy: func(p *HealPolicy) { p.DeleteVolume = true },
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				recreated(o, "db-2", 10*time.Minute, 9*time.Minute, "uid-db-2")
			},
			want: &HealAction{Member: "db-2", Pod: "db-2", UID: "uid-new-db-2", Claims: []string{"data-db-2"}}, code: CodeHealDeleteVolume,
			reason: "a recreated pod failed the same way"},
		{name: "the mark names this very pod (its deletion not seen yet): no replacement",
			policy: func(p *HealPolicy) { p.DeleteVolume = true },
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				recreated(o, "db-2", 10*time.Minute, 9*time.Minute, "uid-new-db-2")
			},
			want: &HealAction{Member: "db-2", Pod: "db-2", UID: "uid-new-db-2", Mark: []string{"data-db-2"}}, code: CodeHealDelete},
		{name: "a recreated pod failing again without delete_volume: kept",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				recreated(o, "db-2", 10*time.Minute, 9*time.Minute, "uid-db-2")
			},
			code: CodeHealVolumeKept},
		{name: "never the recorded primary",
			setup: func(o *HealObservation) { down(o, "db-0", t0.Add(-time.Hour)) },
			code:  CodeHealPrimary},
		{name: "never a writable member",
			setup: func(o *HealObservation) {
				s := primaryServer(uuidA + ":1-100")
				s.Status.Replica = &state.Replica{SQLRunning: false, LastSQLErrno: 1062}
				o.Servers["db-2"] = s
				o.Memory.FailingSince = map[string]time.Time{"db-2": t0.Add(-time.Hour)}
			},
			code: CodeHealPrimary},
		{name: "two failed at once in five: one deletion at a time",
			setup: func(o *HealObservation) {
				*o = healCluster(5)
				down(o, "db-3", t0.Add(-time.Hour))
				down(o, "db-4", t0.Add(-time.Hour))
				pod := o.Pods["db-3"]
				pod.Terminating = t0.Add(time.Minute)
				o.Pods["db-3"] = pod
			},
			code: CodeHealInFlight, reason: "db-4 has failed (its MySQL is unreachable: connection refused) but db-3's pod is terminating"},
		{name: "a member whose pod is not recreated yet holds the next deletion",
			setup: func(o *HealObservation) {
				*o = healCluster(5)
				down(o, "db-3", t0.Add(-time.Hour))
				down(o, "db-4", t0.Add(-time.Hour))
				delete(o.Pods, "db-3")
				o.Memory.LastDeletion = t0.Add(-3 * time.Minute)
			},
			code: CodeHealInFlight, reason: "db-3 has no pod yet"},
		{name: "a member without a pod past start_grace holds no other's healing",
			setup: func(o *HealObservation) {
				*o = healCluster(5)
				down(o, "db-3", t0.Add(-time.Hour))
				down(o, "db-4", t0.Add(-time.Hour))
				delete(o.Pods, "db-3")
				o.Memory.LastDeletion = t0.Add(-5 * time.Minute)
			},
			want: &HealAction{Member: "db-4", Pod: "db-4", UID: "uid-db-4", Mark: []string{"data-db-4"}}, code: CodeHealDelete},
		{name: "a healthy member without a pod (not run by its StatefulSet) holds nothing",
			setup: func(o *HealObservation) {
				delete(o.Pods, "db-1")
				down(o, "db-2", t0.Add(-time.Hour))
			},
			want: &HealAction{Member: "db-2", Pod: "db-2", UID: "uid-db-2", Mark: []string{"data-db-2"}}, code: CodeHealDelete},
		{name: "rate-limited",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				o.Memory.LastDeletion = t0.Add(-time.Minute)
			},
			code: CodeHealRateLimited},
		{name: "the rate limit has passed",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				o.Memory.LastDeletion = t0.Add(-2 * time.Minute)
			},
			want: &HealAction{Member: "db-2", Pod: "db-2", UID: "uid-db-2", Mark: []string{"data-db-2"}}, code: CodeHealDelete},
		{name: "never below a majority of healthy members",
			setup: func(o *HealObservation) {
				down(o, "db-1", t0.Add(-time.Hour))
				down(o, "db-2", t0.Add(-time.Hour))
			},
			code: CodeHealBelowMajority, reason: "only 1 of 3 members are healthy, fewer than the 2"},
		{name: "a member whose agent is gone counts as unhealthy",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				o.Peers["db-1"] = Peer{State: PeerSuspect}
			},
			code: CodeHealBelowMajority},
		{name: "a leader cut off from the majority deletes nothing",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				o.Majority = false
			},
			code: CodeHealNoMajority},
		{name: "paused: nothing",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				o.Record.Paused = true
			},
			code: CodeHealPaused, reason: "db-2 has failed (its MySQL is unreachable: connection refused) for kubernetes.heal.grace, but the cluster is paused"},
		{name: "a lost node: the pod goes first, gracefully",
			setup: func(o *HealObservation) {
				down(o, "db-2", t0.Add(-time.Hour))
				pod := o.Pods["db-2"]
				pod.NodeReady = false
				o.Pods["db-2"] = pod
			},
			want: &HealAction{Member: "db-2", Pod: "db-2", UID: "uid-db-2", Mark: []string{"data-db-2"}}, code: CodeHealDelete},
		{name: "stuck terminating, fenced, force allowed: force-deleted",
			policy: func(p *HealPolicy) { p.ForceDeleteTerminating = true },
			setup:  func(o *HealObservation) { nodeLost(o, "db-0", t0.Add(-1750*time.Millisecond)) },
			want:   &HealAction{Member: "db-0", Pod: "db-0", UID: "uid-db-0", Force: true}, code: CodeHealForceDelete},
		{name: "stuck terminating with delete_volume: its node-bound volume too",
			policy: func(p *HealPolicy) { p.ForceDeleteTerminating, p.DeleteVolume = true, true },
			setup:  func(o *HealObservation) { nodeLost(o, "db-0", t0.Add(-time.Minute)) },
			want:   &HealAction{Member: "db-0", Pod: "db-0", UID: "uid-db-0", Force: true, Claims: []string{"data-db-0"}}, code: CodeHealForceDelete},
		{name: "stuck terminating, the lease may still run: waits",
			policy: func(p *HealPolicy) { p.ForceDeleteTerminating = true },
			setup:  func(o *HealObservation) { nodeLost(o, "db-0", t0.Add(-1749*time.Millisecond)) },
			code:   CodeHealStuckUnfenced},
		{name: "stuck terminating but still the recorded primary: never",
			policy: func(p *HealPolicy) { p.ForceDeleteTerminating = true },
			setup: func(o *HealObservation) {
				nodeLost(o, "db-0", t0.Add(-time.Hour))
				o.Record.Primary = "db-0"
			},
			code: CodeHealStuckUnfenced, reason: "no other primary's epoch is committed"},
		{name: "stuck terminating, no primary at all: never",
			policy: func(p *HealPolicy) { p.ForceDeleteTerminating = true },
			setup: func(o *HealObservation) {
				nodeLost(o, "db-0", t0.Add(-time.Hour))
				o.Record.Primary = ""
			},
			code: CodeHealStuckUnfenced},
		{name: "stuck terminating, force deletion off: the pod stays, and why",
			setup: func(o *HealObservation) { nodeLost(o, "db-0", t0.Add(-time.Hour)) },
			code:  CodeHealForceDisabled, reason: "kubernetes.force_delete_terminating is off: the pod stays"},
		{name: "terminating within its grace period: not stuck yet",
			policy: func(p *HealPolicy) { p.ForceDeleteTerminating = true },
			setup: func(o *HealObservation) {
				nodeLost(o, "db-0", t0.Add(-time.Hour))
				pod := o.Pods["db-0"]
				pod.Terminating = t0.Add(time.Second)
				o.Pods["db-0"] = pod
			}},
		{name: "terminating on a Ready node: its kubelet finishes it",
			policy: func(p *HealPolicy) { p.ForceDeleteTerminating = true },
			setup: func(o *HealObservation) {
				nodeLost(o, "db-0", t0.Add(-time.Hour))
				pod := o.Pods["db-0"]
				pod.NodeReady = true
				o.Pods["db-0"] = pod
			}},
		{name: "a stuck pod is not force-deleted by a leader cut off",
			policy: func(p *HealPolicy) { p.ForceDeleteTerminating = true },
			setup: func(o *HealObservation) {
				nodeLost(o, "db-0", t0.Add(-time.Hour))
				o.Majority = false
			},
			code: CodeHealNoMajority},
		{name: "a stuck pod is not force-deleted while paused",
			policy: func(p *HealPolicy) { p.ForceDeleteTerminating = true },
			setup: func(o *HealObservation) {
				nodeLost(o, "db-0", t0.Add(-time.Hour))
				o.Record.Paused = true
			},
			code: CodeHealPaused},
	}
}

func TestHeal(t *testing.T) {
	for _, tt := range healCases() {
		t.Run(tt.name, func(t *testing.T) {
			o := healCluster(3)
			p := healPolicy
			if tt.policy != nil {
				tt.policy(&p)
			}
			if tt.setup != nil {
				tt.setup(&o)
			}
			d := Heal(o, p)
			if fmt.Sprint(d.Action) != fmt.Sprint(tt.want) {
				t.Fatalf("action = %+v, want %+v (%s)", d.Action, tt.want, d.Reason)
			}
			if d.Reason.Code != tt.code || !strings.Contains(d.Reason.Text, tt.reason) {
				t.Fatalf("reason = %s %q, want %s saying %q", d.Reason.Code, d.Reason.Text, tt.code, tt.reason)
			}
			if a := d.Action; a != nil && !a.Force && !d.Memory.LastDeletion.Equal(t0) {
				t.Fatalf("a deletion must be remembered: %+v", d.Memory)
			}
			if a := d.Action; a != nil && (a.Mark != nil) != (!a.Force && a.Claims == nil) {
				t.Fatalf("a graceful deletion keeping the volume must mark it, and only that: %+v", a)
			}
		})
	}
}

// healSource is heal.go, whose healing codes TestHeal must each expect.
//
//go:embed heal.go
var healSource string

func TestEveryHealCodeIsTested(t *testing.T) {
	tested := map[Code]bool{}
	for _, c := range healCases() {
		tested[c.code] = true
	}
	for code, name := range declaredCodes(t, healSource) {
		if !tested[code] {
			t.Errorf("%s (%q) is the expected outcome of no TestHeal case", name, code)
		}
	}
}

func errant(o *HealObservation, id string) {
	p := o.Peers[id]
	p.Report.Errant = true
	o.Peers[id] = p
	o.Memory.FailingSince = map[string]time.Time{id: t0.Add(-time.Hour)}
}

// Failure times are kept while a member stays failed, start at the first pass that sees it,
// and go when it recovers; the mark of a replacement is taken off its claims once its member
// works, and not before. The input's memory is never changed.
func TestHealMemory(t *testing.T) {
	o := healCluster(3)
	o.Servers["db-2"] = Server{Err: "refused"}
	d := Heal(o, healPolicy)
	if got := d.Memory.FailingSince["db-2"]; !got.Equal(t0) {
		t.Fatalf("db-2 failing since %v, want %v", got, t0)
	}
	o.Now, o.Memory = t0.Add(time.Minute), d.Memory
	if d = Heal(o, healPolicy); d.Action == nil || !d.Memory.FailingSince["db-2"].Equal(t0) || len(o.Memory.FailingSince) != 1 {
		t.Fatalf("a minute later: %+v, %s, %+v (input %+v)", d.Action, d.Reason, d.Memory, o.Memory)
	}
	// The pod recreated, its claim marked: its agent drains while its MySQL is still down,
	// which is no proof the data works.
	recreated(&o, "db-2", 10*time.Second, 5*time.Second, "uid-db-2")
	o.Memory = d.Memory
	o.Peers["db-2"] = Peer{State: PeerAlive, Report: health.Report{Draining: true}}
	if d = Heal(o, healPolicy); d.Unmark != nil {
		t.Fatalf("draining, the mark is taken off: %v", d.Unmark)
	}
	o.Servers["db-2"] = replicaServer("10.0.0.1", uuidA+":1-100", uuidA+":1-100")
	o.Peers["db-2"] = Peer{State: PeerAlive, Report: replicaReport("db-0")}
	o.Memory = d.Memory
	if d = Heal(o, healPolicy); len(d.Memory.FailingSince) != 0 || !slices.Equal(d.Unmark, []string{"data-db-2"}) {
		t.Fatalf("recovered: failing %v, unmark %v; want nothing failing and data-db-2 unmarked", d.Memory.FailingSince, d.Unmark)
	}
}

// Over random observations, Heal never breaks a safety rule: at most one pod, never the
// recorded or a writable primary, never from a leader without a majority or while paused, the
// precondition is the pod's UID, a graceful deletion leaves a majority of healthy members and
// keeps the rate limit, and a force deletion only of a fenced member's stuck pod when allowed.
func TestHealNeverUnsafe(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := map[string]int{}
	for i := range 20000 {
		o, p := randomHeal(rng)
		d := Heal(o, p)
		a := d.Action
		if a == nil {
			continue
		}
		kinds[a.Kind()]++
		pod, ok := o.Pods[a.Member]
		srv := o.Servers[a.Member]
		bad := ""
		switch {
		case !ok || a.Pod != pod.Name || a.UID != pod.UID:
			bad = "not the member's pod by UID"
		case a.Member == o.Record.Primary:
			bad = "deletes the recorded primary"
		case srv.Up && srv.Status.Writable():
			bad = "deletes a writable member"
		case !o.Majority:
			bad = "deletes from a leader without a majority"
		case o.Record.Paused:
			bad = "deletes while paused"
		case len(a.Claims) > 0 && !p.DeleteVolume:
			bad = "deletes a volume with kubernetes.delete_volume off"
		case a.Force && (!p.ForceDeleteTerminating || pod.NodeReady || pod.Terminating.IsZero() || o.Record.Primary == "" ||
			o.Now.Sub(o.Record.LastPrimaryChange) < p.LeaseBound):
			bad = "force-deletes a pod not provably fenced"
		case !a.Force && (healthyMembers(o, a.Member) < len(o.Record.Members)/2+1):
			bad = "leaves fewer healthy members than a majority"
		case !a.Force && !o.Memory.LastDeletion.IsZero() && o.Now.Sub(o.Memory.LastDeletion) < p.MinInterval:
			bad = "ignores the rate limit"
		case !a.Force && slices.ContainsFunc(o.Record.MemberIDs(), func(id string) bool {
			// (randomHeal's failures are all younger than StartGrace.)
			q, has := o.Pods[id]
			return (!has && !o.Servers[id].Up) || !q.Terminating.IsZero()
		}):
			bad = "starts a deletion while another is in flight"
		}
		if bad != "" {
			t.Fatalf("case %d: %s: %+v (%s)\nobservation %+v\npolicy %+v", i, bad, a, d.Reason, o, p)
		}
	}
	// The observations must reach every kind of action, or the rules above were never tried.
	if len(kinds) != 4 {
		t.Fatalf("actions taken: %v, want all four kinds", kinds)
	}
	t.Logf("actions taken: %v", kinds)
}

// healthyMembers counts the members other than except whose MySQL answers and agent is alive.
func healthyMembers(o HealObservation, except string) int {
	n := 0
	for id := range o.Record.Members {
		if id != except && o.Servers[id].Up && o.Peers[id].Alive() {
			n++
		}
	}
	return n
}

func randomHeal(rng *rand.Rand) (HealObservation, HealPolicy) {
	o := healCluster(3 + 2*rng.IntN(2))
	coin := func() bool { return rng.IntN(2) == 0 }
	ago := func() time.Time { return t0.Add(-time.Duration(rng.IntN(180)) * time.Second) }
	ids := o.Record.MemberIDs()
	o.Majority, o.Record.Paused = rng.IntN(5) > 0, rng.IntN(5) == 0
	o.Record.Primary = []string{"", ids[0], ids[1]}[rng.IntN(3)]
	o.Record.LastPrimaryChange = t0.Add(-time.Duration(rng.IntN(4000)) * time.Millisecond)
	if coin() {
		o.Memory.LastDeletion = ago()
	}
	o.Memory.FailingSince = map[string]time.Time{}
	for _, id := range ids {
		switch rng.IntN(5) {
		case 0:
			o.Servers[id] = Server{Err: "refused"}
		case 1:
			o.Servers[id] = primaryServer(uuidA + ":1-100")
		case 2:
			s := replicaServer("10.0.0.1", uuidA+":1-90", uuidA+":1-100")
			s.Status.Replica.SQLRunning, s.Status.Replica.LastSQLErrno = false, 1062
			o.Servers[id] = s
		}
		if coin() {
			o.Memory.FailingSince[id] = ago()
		}
		if rng.IntN(4) == 0 {
			o.Peers[id] = Peer{State: PeerDead}
		}
		if rng.IntN(4) == 0 {
			p := o.Peers[id]
			p.Report.Errant = true
			o.Peers[id] = p
		}
		pod := o.Pods[id]
		pod.NodeReady = rng.IntN(3) > 0
		pod.Created = ago()
		if coin() {
			pod.Started = pod.Created.Add(time.Duration(rng.IntN(60)) * time.Second)
		}
		if rng.IntN(4) == 0 {
			pod.Terminating = t0.Add(time.Duration(rng.IntN(60)-50) * time.Second)
		}
		if rng.IntN(4) == 0 {
			pod.Replaced = "uid-old"
		}
		o.Pods[id] = pod
		if rng.IntN(8) == 0 {
			delete(o.Pods, id)
		}
	}
	p := healPolicy
	p.DeleteVolume, p.ForceDeleteTerminating, p.RebuildErrant = coin(), coin(), coin()
	return o, p
}
