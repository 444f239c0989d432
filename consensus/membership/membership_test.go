package membership

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func voter(id string) Server    { return Server{ID: id, Addr: id + ":7000", Voter: true} }
func nonvoter(id string) Server { return Server{ID: id, Addr: id + ":7000"} }
func alive(id string) Candidate { return Candidate{ID: id, Addr: id + ":7000", Alive: true} }
func goneFor(id string, d time.Duration) Candidate {
	return Candidate{ID: id, Addr: id + ":7000", GoneSince: now.Add(-d)}
}

// actions renders a plan compactly: "remove_server db-3".
func actions(plan []Change) []string {
	var out []string
	for _, c := range plan {
		s := string(c.Action) + " " + c.ID
		if c.Action != ActionRemoveServer && c.Action != ActionDemoteVoter && c.Addr != c.ID+":7000" {
			s += "@" + c.Addr
		}
		out = append(out, s)
	}
	return out
}

func TestPlanMembership(t *testing.T) {
	opts := Options{Self: "db-0", ExpectedVoters: 3, RemoveAfter: 10 * time.Minute}
	tests := []struct {
		name    string
		current []Server
		want    []Candidate
		opts    Options
		plan    []string
	}{
		{
			name:    "steady state: nothing to do",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2")},
		},
		{
			name: "not bootstrapped: nothing to reconcile",
			want: []Candidate{alive("db-0"), alive("db-1")},
		},
		{
			name:    "a newcomer joins as a non-voter",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2"), alive("db-3")},
			plan:    []string{"add_nonvoter db-3"},
		},
		{
			name:    "a newcomer that is not alive is not added",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2"), goneFor("db-3", time.Second)},
		},
		{
			name:    "a newcomer without an address waits",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2"), {ID: "db-3", Alive: true}},
		},
		{
			name:    "non-voters are promoted by id up to five voters",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), nonvoter("db-5"), nonvoter("db-4"), nonvoter("db-3")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2"), alive("db-3"), alive("db-4"), alive("db-5")},
			plan:    []string{"add_voter db-3", "add_voter db-4"},
		},
		{
			name:    "a non-voter that is not alive is not promoted",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), nonvoter("db-3"), nonvoter("db-4")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2"), goneFor("db-3", time.Second), alive("db-4")},
			plan:    []string{"add_voter db-4"},
		},
		{
			name:    "MaxVoters caps promotion",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), nonvoter("db-3")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2"), alive("db-3")},
			opts:    Options{Self: "db-0", MaxVoters: 3},
		},
		{
			name:    "a member gone too long is removed",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), voter("db-3")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2"), goneFor("db-3", 11*time.Minute)},
			plan:    []string{"remove_server db-3"},
		},
		{
			name:    "a member gone not long enough stays",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), voter("db-3")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2"), goneFor("db-3", 9*time.Minute)},
		},
		{
			name:    "a member gossip does not mention stays",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), voter("db-3")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2")},
		},
		{
			name:    "a member not alive since an unknown time stays",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), voter("db-3")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2"), {ID: "db-3"}},
		},
		{
			name:    "zero RemoveAfter never removes",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), voter("db-3")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2"), goneFor("db-3", 1000*time.Hour)},
			opts:    Options{Self: "db-0", ExpectedVoters: 3},
		},
		{
			name:    "self is never removed",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), voter("db-3")},
			want:    []Candidate{goneFor("db-0", time.Hour), alive("db-1"), alive("db-2"), alive("db-3")},
		},
		{
			name:    "removals stop at a majority of the expected voters",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2")},
			want:    []Candidate{alive("db-0"), goneFor("db-1", time.Hour), goneFor("db-2", time.Hour)},
			plan:    []string{"remove_server db-1"},
		},
		{
			name:    "without ExpectedVoters, removals stop at a majority of the current voters",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), voter("db-3"), voter("db-4")},
			want:    []Candidate{alive("db-0"), goneFor("db-1", time.Hour), goneFor("db-2", time.Hour), goneFor("db-3", time.Hour), alive("db-4")},
			opts:    Options{Self: "db-0", RemoveAfter: time.Minute},
			plan:    []string{"remove_server db-1", "remove_server db-2"},
		},
		{
			name:    "non-voters are removed regardless of the voter floor",
			current: []Server{voter("db-0"), voter("db-1"), nonvoter("db-5"), nonvoter("db-6")},
			want:    []Candidate{alive("db-0"), alive("db-1"), goneFor("db-5", time.Hour), goneFor("db-6", time.Hour)},
			plan:    []string{"remove_server db-5", "remove_server db-6"},
		},
		{
			name:    "a removed voter's place goes to a non-voter",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), voter("db-3"), voter("db-4"), nonvoter("db-5")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2"), goneFor("db-3", time.Hour), alive("db-4"), alive("db-5")},
			plan:    []string{"remove_server db-3", "add_voter db-5"},
		},
		{
			name:    "a moved member's address is updated in its role",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), nonvoter("db-3")},
			want: []Candidate{alive("db-0"), {ID: "db-1", Addr: "10.0.0.9:7000", Alive: true}, alive("db-2"),
				{ID: "db-3", Addr: "10.0.0.8:7000", Alive: true}},
			opts: Options{Self: "db-0", MaxVoters: 3},
			plan: []string{"add_voter db-1@10.0.0.9:7000", "add_nonvoter db-3@10.0.0.8:7000"},
		},
		{
			name:    "a promotion carries the new address",
			current: []Server{voter("db-0"), nonvoter("db-1")},
			want:    []Candidate{alive("db-0"), {ID: "db-1", Addr: "10.0.0.9:7000", Alive: true}},
			plan:    []string{"add_voter db-1@10.0.0.9:7000"},
		},
		{
			name: "excess voters are demoted, those not alive first, then the highest ids",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), voter("db-3"), voter("db-4"),
				voter("db-5"), voter("db-6")},
			want: []Candidate{alive("db-0"), goneFor("db-1", time.Second), alive("db-2"), alive("db-3"), alive("db-4"),
				alive("db-5"), alive("db-6")},
			opts: Options{Self: "db-0", ExpectedVoters: 7},
			plan: []string{"demote_voter db-1", "demote_voter db-6"},
		},
		{
			name:    "self is never demoted",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2")},
			want:    []Candidate{goneFor("db-0", time.Second), alive("db-1"), alive("db-2")},
			opts:    Options{Self: "db-0", MaxVoters: 1, ExpectedVoters: 1},
			plan:    []string{"demote_voter db-2", "demote_voter db-1"},
		},
		{
			name:    "demotions stop at a majority of the expected voters",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2")},
			want:    []Candidate{alive("db-0"), alive("db-1"), alive("db-2")},
			opts:    Options{Self: "db-0", MaxVoters: 1, ExpectedVoters: 3},
			plan:    []string{"demote_voter db-2"},
		},
		{
			name:    "everything at once, in order",
			current: []Server{voter("db-0"), voter("db-1"), voter("db-2"), nonvoter("db-3"), voter("db-9")},
			want: []Candidate{alive("db-0"), {ID: "db-1", Addr: "new:1", Alive: true}, alive("db-2"), alive("db-3"),
				alive("db-4"), goneFor("db-9", time.Hour)},
			plan: []string{"remove_server db-9", "add_voter db-1@new:1", "add_voter db-3", "add_nonvoter db-4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			if reflect.ValueOf(o).IsZero() {
				o = opts
			}
			got := Plan(tt.current, tt.want, now, o)
			if g := actions(got); !reflect.DeepEqual(g, tt.plan) {
				t.Fatalf("plan = %q, want %q", g, tt.plan)
			}
			for _, c := range got {
				if c.Reason == "" {
					t.Errorf("%s %s has no reason", c.Action, c.ID)
				}
			}
			// Deterministic whatever the order of the inputs.
			for range 5 {
				cur, want := shuffled(tt.current), shuffled(tt.want)
				if again := Plan(cur, want, now, o); !reflect.DeepEqual(again, got) {
					t.Fatalf("shuffled inputs gave %+v, want %+v", again, got)
				}
			}
		})
	}
}

func TestPlanMembershipReason(t *testing.T) {
	plan := Plan([]Server{voter("db-0"), voter("db-1"), voter("db-2"), voter("db-3")},
		[]Candidate{alive("db-0"), alive("db-1"), alive("db-2"), goneFor("db-3", 90*time.Minute)},
		now, Options{Self: "db-0", RemoveAfter: time.Hour})
	if len(plan) != 1 || plan[0].Reason != "removing db-3: gone for 1h30m0s, longer than 1h0m0s" {
		t.Fatalf("plan = %+v", plan)
	}
}

func TestShouldBootstrap(t *testing.T) {
	three := []Server{voter("db-0"), voter("db-1"), voter("db-2")}
	tests := []struct {
		name   string
		seen   []Candidate
		expect int
		want   []Server
	}{
		{"exactly the expected members", []Candidate{alive("db-2"), alive("db-0"), alive("db-1")}, 3, three},
		{"too few", []Candidate{alive("db-0"), alive("db-1")}, 3, nil},
		{"too many: an existing cluster or a wrong setting", []Candidate{alive("db-0"), alive("db-1"), alive("db-2"), alive("db-3")}, 3, nil},
		{"duplicates count once", []Candidate{alive("db-0"), alive("db-1"), alive("db-1"), alive("db-2")}, 3, three},
		{"dead members do not count", []Candidate{alive("db-0"), alive("db-1"), goneFor("db-2", time.Second)}, 3, nil},
		{"members without an address do not count", []Candidate{alive("db-0"), alive("db-1"), {ID: "db-2", Alive: true}}, 3, nil},
		{"one id at two addresses", []Candidate{alive("db-0"), alive("db-1"), {ID: "db-1", Addr: "x:1", Alive: true}}, 2, nil},
		{"two ids at one address", []Candidate{alive("db-0"), {ID: "db-1", Addr: "db-0:7000", Alive: true}}, 2, nil},
		{"a member with Raft state means a cluster exists",
			[]Candidate{alive("db-0"), alive("db-1"), {ID: "db-2", Addr: "db-2:7000", Alive: true, Bootstrapped: true}}, 3, nil},
		{"even a dead member with state",
			[]Candidate{alive("db-0"), alive("db-1"), alive("db-2"), {ID: "db-3", Bootstrapped: true}}, 3, nil},
		{"single node", []Candidate{alive("db-0")}, 1, []Server{voter("db-0")}},
		{"bootstrap_expect unset", []Candidate{alive("db-0")}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 5 {
				got, ok := ShouldBootstrap(shuffled(tt.seen), tt.expect)
				if ok != (tt.want != nil) || !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("ShouldBootstrap = %v, %v; want %v", got, ok, tt.want)
				}
			}
		})
	}
}

func shuffled[T any](s []T) []T {
	out := append([]T(nil), s...)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func ExamplePlan() {
	current := []Server{
		{ID: "db-0", Addr: "10.0.0.1:7000", Voter: true},
		{ID: "db-1", Addr: "10.0.0.2:7000", Voter: true},
		{ID: "db-2", Addr: "10.0.0.3:7000", Voter: true},
	}
	gossip := []Candidate{
		{ID: "db-0", Addr: "10.0.0.1:7000", Alive: true},
		{ID: "db-1", Addr: "10.0.0.2:7000", Alive: true},
		{ID: "db-2", Addr: "10.0.0.3:7000", GoneSince: now.Add(-time.Hour)},
		{ID: "db-3", Addr: "10.0.0.4:7000", Alive: true},
	}
	for _, c := range Plan(current, gossip, now, Options{Self: "db-0", ExpectedVoters: 3, RemoveAfter: 30 * time.Minute}) {
		fmt.Println(c.Action, c.ID, "-", c.Reason)
	}
	// Output:
	// remove_server db-2 - removing db-2: gone for 1h0m0s, longer than 30m0s
	// add_nonvoter db-3 - adding db-3 as a non-voter: alive in gossip, not yet in Raft
}
