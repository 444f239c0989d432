// Package membership plans the Raft configuration from what gossip sees: when to bootstrap and
// which servers to add, promote, demote or remove. It is pure, so the HA decision can make these
// choices with the rest and the agent only carries them out.
package membership

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"
)

// DefaultMaxVoters keeps elections and commits fast while surviving two failures; more members
// follow as non-voters, ready to be promoted.
const DefaultMaxVoters = 5

// Candidate is a member as gossip sees it.
type Candidate struct {
	ID   string
	Addr string // Raft address
	// Alive is gossip's verdict now.
	Alive bool
	// GoneSince is when gossip first found the member not alive; zero when alive or unknown.
	GoneSince time.Time
	// Bootstrapped is the member's own report (in its gossip metadata) that it has Raft state
	// (Node.HasState). One such member means a cluster exists, so nobody bootstraps a second.
	Bootstrapped bool
}

// Server is one member of the Raft configuration.
type Server struct {
	ID    string
	Addr  string
	Voter bool
}

// Options steers Plan.
type Options struct {
	// Self is the leader's own id: it is never removed or demoted by its own plan.
	Self string
	// MaxVoters caps the voters; zero means DefaultMaxVoters.
	MaxVoters int
	// ExpectedVoters is the configured cluster size (bootstrap_expect). No removal or demotion
	// leaves fewer voters than its majority; zero means the current number of voters.
	ExpectedVoters int
	// RemoveAfter is how long a member may be gone before it is removed; zero never removes.
	RemoveAfter time.Duration
}

// Action is a Raft configuration change, named after the Node method that carries it out.
type Action string

// Actions. AddVoter also promotes a non-voter; both Add actions also update an address.
const (
	ActionAddVoter     Action = "add_voter"
	ActionAddNonvoter  Action = "add_nonvoter"
	ActionDemoteVoter  Action = "demote_voter"
	ActionRemoveServer Action = "remove_server"
)

// Change is one step of a membership plan, with the sentence saying why.
type Change struct {
	Action Action
	ID     string
	Addr   string
	Reason string
}

// Plan returns the changes that bring the Raft configuration current in line with
// the gossip view want, in the order to apply them: removals, then promotions and address
// updates, then additions, then demotions, each by id. It is pure and deterministic; the leader
// applies the plan (Node.ApplyChange) and plans again on its next pass, so one step that fails
// costs nothing.
//
// Rules: a member gone longer than RemoveAfter is removed unless it is Self or its removal
// would leave fewer voters than a majority of ExpectedVoters. A member of current that want
// does not mention is left alone: the gossip view may be incomplete (just after a restart), so
// the caller keeps gone members in want with their GoneSince. New members join as non-voters
// and are promoted, by id, on a later plan while there are fewer than MaxVoters voters, so a
// member votes only once it follows the log. Voters beyond MaxVoters are demoted, those not
// alive first, then the highest ids.
func Plan(current []Server, want []Candidate, now time.Time, opts Options) []Change {
	if len(current) == 0 {
		return nil // not bootstrapped: nothing to reconcile
	}
	maxVoters := cmp.Or(opts.MaxVoters, DefaultMaxVoters)
	servers := slices.SortedFunc(slices.Values(current), func(a, b Server) int { return cmp.Compare(a.ID, b.ID) })
	cands := map[string]Candidate{}
	for _, c := range want {
		if _, dup := cands[c.ID]; !dup {
			cands[c.ID] = c
		}
	}
	voters := 0
	for _, s := range servers {
		if s.Voter {
			voters++
		}
	}
	floor := cmp.Or(opts.ExpectedVoters, voters)/2 + 1

	var plan []Change
	kept := servers[:0:0]
	for _, s := range servers {
		c := cands[s.ID] // zero, so never expired, when gossip does not mention s
		gone := now.Sub(c.GoneSince)
		expired := s.ID != opts.Self && !c.Alive && !c.GoneSince.IsZero() && opts.RemoveAfter > 0 && gone >= opts.RemoveAfter
		if !expired || (s.Voter && voters-1 < floor) {
			kept = append(kept, s)
			continue
		}
		if s.Voter {
			voters--
		}
		plan = append(plan, Change{Action: ActionRemoveServer, ID: s.ID, Addr: s.Addr,
			Reason: fmt.Sprintf("removing %s: gone for %s, longer than %s", s.ID, gone.Round(time.Second), opts.RemoveAfter)})
	}

	for _, s := range kept {
		c, ok := cands[s.ID]
		if !ok || !c.Alive {
			continue
		}
		addr := cmp.Or(c.Addr, s.Addr)
		switch {
		case !s.Voter && voters < maxVoters:
			voters++
			plan = append(plan, Change{Action: ActionAddVoter, ID: s.ID, Addr: addr,
				Reason: fmt.Sprintf("promoting %s to voter: %d voters, up to %d wanted", s.ID, voters-1, maxVoters)})
		case addr != s.Addr:
			action := ActionAddNonvoter
			if s.Voter {
				action = ActionAddVoter
			}
			plan = append(plan, Change{Action: action, ID: s.ID, Addr: addr,
				Reason: fmt.Sprintf("updating the address of %s from %s to %s", s.ID, s.Addr, addr)})
		}
	}

	inConfig := func(id string) bool {
		return slices.ContainsFunc(servers, func(s Server) bool { return s.ID == id })
	}
	for _, id := range slices.Sorted(maps.Keys(cands)) {
		if c := cands[id]; c.Alive && c.Addr != "" && id != "" && !inConfig(id) {
			plan = append(plan, Change{Action: ActionAddNonvoter, ID: id, Addr: c.Addr,
				Reason: fmt.Sprintf("adding %s as a non-voter: alive in gossip, not yet in Raft", id)})
		}
	}

	if voters > maxVoters {
		demotable := slices.DeleteFunc(slices.Clone(kept), func(s Server) bool { return !s.Voter || s.ID == opts.Self })
		// Not alive first, then the highest ids.
		slices.SortStableFunc(demotable, func(a, b Server) int {
			if x, y := cands[a.ID].Alive, cands[b.ID].Alive; x != y {
				if y {
					return -1
				}
				return 1
			}
			return cmp.Compare(b.ID, a.ID)
		})
		for _, s := range demotable {
			if voters <= maxVoters || voters-1 < floor {
				break
			}
			voters--
			plan = append(plan, Change{Action: ActionDemoteVoter, ID: s.ID, Addr: s.Addr,
				Reason: fmt.Sprintf("demoting %s to non-voter: more than %d voters", s.ID, maxVoters)})
		}
	}
	return plan
}

// ShouldBootstrap applies Consul's bootstrap-expect rule: once exactly bootstrapExpect distinct
// alive members are seen (self included), and none reports Raft state, every node may
// bootstrap with the same list: all of them voters, sorted by id, so they agree. Anything
// ambiguous (an id seen at two addresses, two ids at one address, more members than expected)
// waits: a wrong bootstrap splits the cluster, a late one only delays it.
func ShouldBootstrap(seen []Candidate, bootstrapExpect int) ([]Server, bool) {
	if bootstrapExpect <= 0 {
		return nil, false
	}
	addrOf := map[string]string{}
	idAt := map[string]string{}
	for _, c := range seen {
		if c.Bootstrapped {
			return nil, false
		}
		if !c.Alive || c.ID == "" || c.Addr == "" {
			continue
		}
		if a, ok := addrOf[c.ID]; ok && a != c.Addr {
			return nil, false
		}
		if id, ok := idAt[c.Addr]; ok && id != c.ID {
			return nil, false
		}
		addrOf[c.ID], idAt[c.Addr] = c.Addr, c.ID
	}
	if len(addrOf) != bootstrapExpect {
		return nil, false
	}
	var servers []Server
	for _, id := range slices.Sorted(maps.Keys(addrOf)) {
		servers = append(servers, Server{ID: id, Addr: addrOf[id], Voter: true})
	}
	return servers, true
}
