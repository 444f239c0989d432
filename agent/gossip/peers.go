package gossip

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/shoal-db/shoal/agent/health"
)

// State is a member's liveness as this node sees it.
type State int

const (
	// StateAlive: the member answers, as far as this node knows.
	StateAlive State = iota + 1
	// StateSuspect: this node's last probe of the member failed (direct, indirect and TCP);
	// memberlist now gives it a suspicion timeout to refute before declaring it dead. It
	// returns to Alive when this node's probe is acked again.
	StateSuspect
	// StateDead: memberlist declared the member failed.
	StateDead
	// StateLeft: the member announced a graceful Leave before going.
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "unknown"
}

// Peer is one member as this node sees it. Times are this node's clock, so ages compare.
type Peer struct {
	Name  string
	Addr  netip.AddrPort
	State State
	// Health is the member's last report; zero when HealthErr is set.
	Health health.Report
	// HealthErr is why the member's last report could not be read (wraps health.ErrBadReport).
	HealthErr error
	// ReportedAt is when this node last received a changed report from the member (or its
	// join). memberlist only passes on metadata that changed, so an unchanged report does
	// not refresh it.
	ReportedAt time.Time
	// StateSince is when this node saw the member enter State.
	StateSince time.Time
}

// leaveNoticeTTL is how long a member's leave notice turns its death into Left. The notice
// normally precedes the death by well under a second; the bound keeps a stale notice from
// relabelling a later crash.
const leaveNoticeTTL = 10 * time.Second

// table is this node's record of every member. It outlives memberlist's own list so that dead
// members stay visible for the retention time, and it tracks Suspect and Left itself:
// memberlist keeps each member's real state in a private field (the exported Node.State it
// hands out is never updated) and tells its delegates only of joins, updates and deaths.
//
// memberlist calls the Notify methods of EventDelegate with its node lock held: they must not
// call back into memberlist, and Gossip never calls memberlist while holding t.mu.
type table struct {
	self      string
	retention time.Duration
	events    chan struct{}

	mu      sync.Mutex
	peers   map[string]*Peer
	leaving map[string]time.Time // members that sent a leave notice, and when
}

func newTable(self string, retention time.Duration) *table {
	return &table{
		self:      self,
		retention: retention,
		events:    make(chan struct{}, 1),
		peers:     make(map[string]*Peer),
		leaving:   make(map[string]time.Time),
	}
}

// NotifyJoin: a new member, or one that came back from Dead or Left.
func (t *table) NotifyJoin(n *memberlist.Node) {
	t.change(n.Name, true, func(p *Peer, now time.Time) {
		delete(t.leaving, n.Name)
		setReport(p, n, now)
		setState(p, StateAlive, now)
	})
}

// NotifyUpdate: a live member changed its report. memberlist passes on updates only from
// members it holds alive, so this also ends a suspicion.
func (t *table) NotifyUpdate(n *memberlist.Node) {
	t.change(n.Name, true, func(p *Peer, now time.Time) {
		setReport(p, n, now)
		setState(p, StateAlive, now)
	})
}

// NotifyLeave: memberlist declared the member dead, or it left gracefully; only a leave notice
// tells the two apart. The last report is kept: it says what the member was.
func (t *table) NotifyLeave(n *memberlist.Node) {
	t.change(n.Name, true, func(p *Peer, now time.Time) {
		if at, ok := t.leaving[n.Name]; ok && now.Sub(at) < leaveNoticeTTL {
			setState(p, StateLeft, now)
		} else {
			setState(p, StateDead, now)
		}
	})
}

// NotifyPingComplete: this node's direct probe of the member was acked.
func (t *table) NotifyPingComplete(n *memberlist.Node, _ time.Duration, _ []byte) {
	t.change(n.Name, false, func(p *Peer, now time.Time) {
		if p.State == StateSuspect {
			setState(p, StateAlive, now)
		}
	})
}

// AckPayload: gossip sends nothing extra with acks.
func (t *table) AckPayload() []byte { return nil }

// suspected: memberlist's probe of the member from this node failed.
func (t *table) suspected(name string) {
	t.change(name, false, func(p *Peer, now time.Time) {
		if p.State == StateAlive {
			setState(p, StateSuspect, now)
		}
	})
}

// leaveNotice: the member announced it is leaving. The notice may also arrive just after the
// death it explains.
func (t *table) leaveNotice(name string) {
	t.mu.Lock()
	t.leaving[name] = time.Now()
	t.mu.Unlock()
	t.change(name, false, func(p *Peer, now time.Time) {
		if p.State == StateDead && now.Sub(p.StateSince) < leaveNoticeTTL {
			setState(p, StateLeft, p.StateSince)
		}
	})
}

// change applies f to the member's record (created only for memberlist's own events: other
// signals about unknown members are stale or bogus) and wakes the caller if a peer's state or
// the standing of its report changed.
func (t *table) change(name string, create bool, f func(p *Peer, now time.Time)) {
	now := time.Now()
	t.mu.Lock()
	p, ok := t.peers[name]
	if !ok {
		if !create {
			t.mu.Unlock()
			return
		}
		p = &Peer{Name: name}
		t.peers[name] = p
	}
	state, standing, unreadable := p.State, p.Health.Standing(), p.HealthErr != nil
	f(p, now)
	changed := p.State != state || p.Health.Standing() != standing || (p.HealthErr != nil) != unreadable
	t.mu.Unlock()
	// The caller knows when its own report changed; only peers' changes wake it, and a change of
	// replication progress alone waits for its next regular pass (health.Report.Standing).
	if changed && name != t.self {
		select {
		case t.events <- struct{}{}:
		default:
		}
	}
}

// setReport records n's address and report; n is safe to read while memberlist notifies.
func setReport(p *Peer, n *memberlist.Node, now time.Time) {
	addr, _ := netip.AddrFromSlice(n.Addr)
	p.Addr = netip.AddrPortFrom(addr.Unmap(), n.Port)
	p.Health, p.HealthErr = health.Decode(n.Meta)
	p.ReportedAt = now
}

func setState(p *Peer, s State, since time.Time) {
	if p.State != s {
		p.State = s
		p.StateSince = since
	}
}

// snapshot drops members dead or gone for longer than the retention and returns every member
// ordered by name.
func (t *table) snapshot(now time.Time) []Peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, at := range t.leaving {
		if now.Sub(at) >= leaveNoticeTTL {
			delete(t.leaving, name)
		}
	}
	out := make([]Peer, 0, len(t.peers))
	for name, p := range t.peers {
		if (p.State == StateDead || p.State == StateLeft) && now.Sub(p.StateSince) > t.retention {
			delete(t.peers, name)
			continue
		}
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// live returns the members worth telling something: alive or suspect, other than this node.
func (t *table) live() []Peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Peer
	for _, p := range t.peers {
		if p.Name != t.self && (p.State == StateAlive || p.State == StateSuspect) {
			out = append(out, *p)
		}
	}
	return out
}

// addr returns where member name is reached, if it is known.
func (t *table) addr(name string) (netip.AddrPort, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.peers[name]
	if !ok {
		return netip.AddrPort{}, false
	}
	return p.Addr, true
}
