package gossip

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/shoal-db/shoal/agent/health"
)

func node(name string, meta []byte) *memberlist.Node {
	return &memberlist.Node{Name: name, Addr: net.IPv4(10, 0, 0, 1), Port: 7946, Meta: meta}
}

func encoded(t testing.TB, r health.Report) []byte {
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTableLifecycle(t *testing.T) {
	t.Parallel()
	tb := newTable("self", time.Minute)
	woke := func() bool {
		select {
		case <-tb.events:
			return true
		default:
			return false
		}
	}
	state := func(want State) Peer {
		t.Helper()
		for _, p := range tb.snapshot(time.Now()) {
			if p.Name == "p" {
				if p.State != want {
					t.Fatalf("p is %s, want %s", p.State, want)
				}
				return p
			}
		}
		t.Fatalf("p not listed, want %s", want)
		return Peer{}
	}

	tb.NotifyJoin(node("self", encoded(t, report("a"))))
	if woke() {
		t.Fatal("own join raised an event")
	}
	tb.NotifyJoin(node("p", encoded(t, report("a"))))
	if !woke() {
		t.Fatal("no event for a join")
	}
	if p := state(StateAlive); p.Addr != netip.MustParseAddrPort("10.0.0.1:7946") || p.Health.Source != "a" {
		t.Fatalf("after join: %+v", p)
	}

	// Our probe fails, then is acked again.
	tb.suspected("p")
	if !woke() {
		t.Fatal("no event for a suspicion")
	}
	state(StateSuspect)
	tb.NotifyPingComplete(node("p", nil), time.Millisecond, nil)
	state(StateAlive)
	if !woke() {
		t.Fatal("no event for a recovery")
	}
	if tb.NotifyPingComplete(node("p", nil), time.Millisecond, nil); woke() {
		t.Fatal("an ack of a live member raised an event")
	}

	// A changed report also ends a suspicion.
	tb.suspected("p")
	tb.NotifyUpdate(node("p", encoded(t, report("b"))))
	if p := state(StateAlive); p.Health.Source != "b" {
		t.Fatalf("after update: %+v", p)
	}

	woke()

	// Replication progress alone is recorded without waking the caller; anything else wakes it.
	progress := report("b")
	progress.SourceRead, progress.LagMillis = "binlog.000001:4096", 1200
	if tb.NotifyUpdate(node("p", encoded(t, progress))); woke() {
		t.Fatal("a change of replication progress alone raised an event")
	}
	if p := state(StateAlive); p.Health.SourceRead != progress.SourceRead || p.Health.LagMillis != 1200 {
		t.Fatalf("progress not recorded: %+v", p.Health)
	}
	stopped := progress
	stopped.LagMillis = -1
	if tb.NotifyUpdate(node("p", encoded(t, stopped))); !woke() {
		t.Fatal("no event when the lag became unknown")
	}
	disconnected := stopped
	disconnected.IOConnected = false
	if tb.NotifyUpdate(node("p", encoded(t, disconnected))); !woke() {
		t.Fatal("no event for a receiver that disconnected")
	}
	if tb.NotifyUpdate(node("p", []byte("{"))); !woke() {
		t.Fatal("no event for an unreadable report")
	}
	if tb.NotifyUpdate(node("p", encoded(t, report("b")))); !woke() {
		t.Fatal("no event for a readable report again")
	}

	// Death; a leave notice arriving just after it makes it Left, keeping the time.
	tb.suspected("p")
	tb.NotifyLeave(node("p", nil))
	dead := state(StateDead)
	if dead.Health.Source != "b" {
		t.Fatalf("dead member lost its report: %+v", dead)
	}
	tb.leaveNotice("p")
	if left := state(StateLeft); !left.StateSince.Equal(dead.StateSince) {
		t.Fatalf("left since %v, died at %v", left.StateSince, dead.StateSince)
	}

	// Kept for the retention, then dropped; live members are never dropped.
	if ps := tb.snapshot(dead.StateSince.Add(time.Minute)); len(ps) != 2 {
		t.Fatalf("dead member dropped early: %+v", ps)
	}
	if ps := tb.snapshot(time.Now().Add(time.Hour)); len(ps) != 1 || ps[0].Name != "self" {
		t.Fatalf("after retention: %+v", ps)
	}

	// Back again; then a notice before the leave makes it Left, and a stale one does not.
	tb.NotifyJoin(node("p", encoded(t, report("c"))))
	state(StateAlive)
	tb.leaveNotice("p")
	tb.NotifyLeave(node("p", nil))
	state(StateLeft)
	tb.NotifyJoin(node("p", nil))
	if _, ok := tb.leaving["p"]; ok {
		t.Fatal("a rejoin kept the old leave notice")
	}
	tb.leaving["p"] = time.Now().Add(-leaveNoticeTTL)
	tb.NotifyLeave(node("p", nil))
	state(StateDead)
	tb.snapshot(time.Now())
	if len(tb.leaving) != 0 {
		t.Fatalf("stale notices kept: %v", tb.leaving)
	}

	// Signals about members never seen create nothing.
	tb.suspected("ghost")
	tb.leaveNotice("ghost")
	tb.NotifyPingComplete(node("ghost", nil), 0, nil)
	if ps := tb.snapshot(time.Now()); len(ps) != 2 {
		t.Fatalf("ghost listed: %+v", ps)
	}
}

func TestDelegateNotifyMsg(t *testing.T) {
	t.Parallel()
	tb := newTable("self", time.Minute)
	d := &delegate{peers: tb}
	for _, m := range []string{"", "garbage", leaveNoticePrefix, "shoal-leave/2:p", leaveNoticePrefix + "p"} {
		d.NotifyMsg([]byte(m))
	}
	if len(tb.leaving) != 1 || tb.leaving["p"].IsZero() {
		t.Fatalf("notices: %v", tb.leaving)
	}
}

func TestStateString(t *testing.T) {
	t.Parallel()
	got := []string{StateAlive.String(), StateSuspect.String(), StateDead.String(), StateLeft.String(), State(0).String()}
	if strings.Join(got, ",") != "alive,suspect,dead,left,unknown" {
		t.Errorf("got %v", got)
	}
}

// FuzzPeerMeta: whatever a peer puts in its metadata is listed, never a panic, and is either
// a readable report or a HealthErr.
func FuzzPeerMeta(f *testing.F) {
	f.Add(encoded(f, report("db-0")))
	f.Add([]byte{})
	f.Add([]byte("\x00{not json"))
	f.Add([]byte(`{"v":99,"r":"primary"}`))
	f.Add([]byte(`{"v":1,"e":"x"}`))
	f.Add([]byte(strings.Repeat("x", 600)))
	f.Fuzz(func(t *testing.T, meta []byte) {
		tb := newTable("self", time.Minute)
		tb.NotifyJoin(node("p", meta))
		tb.NotifyUpdate(node("p", meta))
		ps := tb.snapshot(time.Now())
		if len(ps) != 1 {
			t.Fatalf("listed %d members", len(ps))
		}
		want, wantErr := health.Decode(meta)
		p := ps[0]
		if (wantErr == nil) != (p.HealthErr == nil) || (p.HealthErr != nil && !errors.Is(p.HealthErr, health.ErrBadReport)) {
			t.Fatalf("HealthErr %v, Decode says %v", p.HealthErr, wantErr)
		}
		if p.HealthErr == nil && p.Health != want {
			t.Fatalf("report %+v, want %+v", p.Health, want)
		}
	})
}
