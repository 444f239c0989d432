// Package gossip is the agent's membership layer: hashicorp/memberlist on the LAN, carrying each
// agent's health.Report as node metadata, with failure detection tuned for about one second.
//
// It keeps its own record of members, fed by memberlist's events, so that a dead primary stays
// listed as Dead (for Config.DeadRetention) instead of vanishing when memberlist forgets it, and
// so that every time in a Peer is this node's clock. memberlist does not expose suspicion or
// tell a death from a graceful leave, so Suspect comes from this node's own failed probes and
// Left from a notice that Leave sends to every member first.
package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/shoal-db/shoal/agent/health"
)

// A health report must fit memberlist's metadata limit: this fails to compile otherwise.
const _ = uint(memberlist.MetaMaxSize - health.MaxEncodedSize)

const (
	// streamTimeout bounds memberlist's TCP exchanges (join, state sync) per peer, so a join
	// attempt against a black-holed seed costs seconds, not memberlist's default 10 s.
	streamTimeout = 2 * time.Second
	// deadNodeReclaim lets a restarted member take back its name from a new address (a pod
	// rescheduled with a new IP) once the old incarnation has been dead this long, instead of
	// being refused until memberlist forgets the old one.
	deadNodeReclaim = time.Second
	// broadcastWait bounds how long the announcer waits for memberlist to send a changed
	// report. It normally takes one or two gossip rounds; a timeout only means the CPU is
	// starved, and the report still goes out later.
	broadcastWait = time.Second
	// leaveWait bounds Leave when its context has no deadline.
	leaveWait = 5 * time.Second
	// Join retry backoff, doubling from min to max.
	joinBackoffMin = 200 * time.Millisecond
	joinBackoffMax = 5 * time.Second
	// dnsTimeout bounds one seed name lookup.
	dnsTimeout = 5 * time.Second
)

// ErrShutdown is returned by operations on a Gossip after Shutdown.
var ErrShutdown = errors.New("gossip is shut down")

// ErrLeft is returned by SetHealth and Join after Leave: announcing anything more would bring
// the node back to life in its peers' eyes.
var ErrLeft = errors.New("gossip has left the cluster")

// ErrPlaintext is returned by keyring operations when gossip runs without encryption.
var ErrPlaintext = errors.New("gossip encryption is off (no keys configured)")

// Gossip is one agent's membership in the cluster.
type Gossip struct {
	cfg     Config
	log     *slog.Logger
	seeds   []seed
	ml      *memberlist.Memberlist
	keyring *memberlist.Keyring // nil without encryption
	meta    *delegate
	peers   *table

	// announce wakes the announcer goroutine, which hands changed reports to memberlist.
	announce     chan struct{}
	stopAnnounce func() // stops the announcer and waits for it; idempotent

	lifeMu sync.Mutex // serialises Leave and Shutdown: memberlist panics on Leave after Shutdown
	left   atomic.Bool
	down   atomic.Bool
}

// Start creates the local member and starts listening; Join connects it to the cluster. ctx
// bounds start-up only: the returned Gossip runs until Shutdown.
// labelPrefix keeps shoal's labels apart from other memberlist users' on the same network.
const labelPrefix = "shoal/"

func Start(ctx context.Context, cfg Config, self health.Report) (*Gossip, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("gossip: start: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gossip: invalid config: %w", err)
	}
	cfg = cfg.withDefaults()
	meta, err := self.Encode()
	if err != nil {
		return nil, fmt.Errorf("gossip: start: own health report: %w", err)
	}
	peers := newTable(cfg.NodeName, cfg.DeadRetention)
	g := &Gossip{
		cfg:   cfg,
		log:   cfg.Logger,
		meta:  &delegate{meta: meta, peers: peers},
		peers: peers,
	}
	for _, s := range cfg.Seeds {
		sd, _ := parseSeed(s, cfg.BindPort) // checked by Validate
		g.seeds = append(g.seeds, sd)
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	if cfg.Cluster != "" {
		mc.Label = labelPrefix + cfg.Cluster
	}
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.SuspicionMult = cfg.SuspicionMult
	mc.GossipInterval = cfg.GossipInterval
	mc.PushPullInterval = cfg.PushPullInterval
	mc.RetransmitMult = cfg.RetransmitMult
	mc.TCPTimeout = streamTimeout
	// Packets are a few hundred bytes: compressing each one allocated a fresh LZW table, 40 % of
	// an idle agent's allocations, and saved next to nothing on a LAN.
	mc.EnableCompression = false
	mc.DeadNodeReclaimTime = deadNodeReclaim
	mc.Logger = newStdLogger(cfg.Logger.With("component", "memberlist"), peers.suspected)
	mc.Delegate = g.meta
	mc.Events = peers
	mc.Ping = peers
	if len(cfg.Keys) > 0 {
		keys := make([][]byte, len(cfg.Keys))
		for i, k := range cfg.Keys {
			keys[i] = bytes.Clone(k) // the keyring keeps them; the caller may reuse its slices
		}
		kr, err := memberlist.NewKeyring(keys, keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip: start: keyring: %w", err)
		}
		mc.Keyring = kr
		g.keyring = kr
	}

	tr, err := newTransport(cfg.Logger.With("component", "memberlist"), cfg.BindAddr, cfg.BindPort)
	if err != nil {
		return nil, fmt.Errorf("gossip: start %s: %w", cfg.NodeName, err)
	}
	// With a transport of its own memberlist reads no bind address; BindPort is the port it
	// puts on a seed given without one, and an AdvertisePort of 0 the transport makes the
	// bound port.
	mc.Transport = tr
	mc.BindPort = tr.port() // the kernel's choice when cfg.BindPort is 0
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort

	ml, err := memberlist.Create(mc)
	if err != nil {
		tr.Shutdown() // memberlist may have stopped it already; the error says nothing new
		return nil, fmt.Errorf("gossip: start %s on %s:%d: %w", cfg.NodeName, cfg.BindAddr, cfg.BindPort, err)
	}
	g.ml = ml
	g.announce = make(chan struct{}, 1)
	stop, done := make(chan struct{}), make(chan struct{})
	go g.announcer(stop, done)
	g.stopAnnounce = sync.OnceFunc(func() {
		close(stop)
		<-done
	})
	g.log.Info("gossip started", "addr", g.AdvertiseAddr().String(), "encrypted", g.keyring != nil)
	return g, nil
}

// AdvertiseAddr is where peers reach this node (with the kernel's port when BindPort was 0).
func (g *Gossip) AdvertiseAddr() netip.AddrPort {
	a, _ := g.peers.addr(g.cfg.NodeName)
	return a
}

// Events delivers a signal after a peer changes state (joins, is suspected, recovers, dies,
// leaves) or changes its report in more than replication progress (health.Report.Standing;
// Members has the latest report either way). The channel holds one pending signal (signals
// coalesce) and is never closed.
func (g *Gossip) Events() <-chan struct{} { return g.peers.events }

// Members lists every known member, this node included, ordered by name. Dead and Left members
// stay listed for Config.DeadRetention after they entered that state.
func (g *Gossip) Members() []Peer {
	return g.peers.snapshot(time.Now())
}

// SetHealth publishes this node's report without waiting: peers see it within a gossip round
// or two, and reports set in quick succession coalesce into the latest. An unchanged report is
// not re-sent (and does not refresh peers' ReportedAt).
func (g *Gossip) SetHealth(r health.Report) error {
	if err := g.usable(); err != nil {
		return fmt.Errorf("gossip: set health: %w", err)
	}
	b, err := r.Encode()
	if err != nil {
		return fmt.Errorf("gossip: set health: %w", err)
	}
	if g.meta.set(b) {
		select {
		case g.announce <- struct{}{}:
		default: // already pending; it will read the latest report
		}
	}
	return nil
}

// announcer hands changed reports to memberlist. memberlist's UpdateNode blocks until the
// update has been sent (100-200 ms here), which would stall the caller's loop on every change
// of, say, replication lag.
func (g *Gossip) announcer(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		case <-g.announce:
			// UpdateNode reads the current report through the delegate.
			if err := g.ml.UpdateNode(broadcastWait); err != nil {
				g.log.Warn("health report not yet sent; later gossip or state sync will carry it", "err", err)
			}
		}
	}
}

// Join contacts the seeds until at least one other member answers, retrying with backoff
// until ctx ends. Seed names are resolved again on every attempt, and addresses of this node
// are skipped. It returns how many seed addresses were contacted; with no seeds it returns 0 at
// once (a single-node cluster).
func (g *Gossip) Join(ctx context.Context) (int, error) {
	if len(g.seeds) == 0 {
		return 0, nil
	}
	backoff := joinBackoffMin
	for attempt := 1; ; attempt++ {
		if err := g.usable(); err != nil {
			return 0, fmt.Errorf("gossip: join: %w", err)
		}
		n, err := g.joinOnce(ctx)
		if n > 0 {
			g.log.Info("gossip joined", "contacted", n, "attempts", attempt)
			return n, nil
		}
		// Half fixed, half random, so agents started together do not retry in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		g.log.Info("gossip join failed; retrying", "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("gossip: join %v: no seed accepted this node after %d attempts "+
				"(wrong gossip key or cluster name, or no seed up?); last attempt: %v: %w",
				g.cfg.Seeds, attempt, err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, joinBackoffMax)
	}
}

// joinOnce resolves every seed and pushes/pulls state with each address that is not this node.
func (g *Gossip) joinOnce(ctx context.Context) (int, error) {
	self := g.AdvertiseAddr()
	var errs []error
	seen := make(map[netip.AddrPort]bool)
	joined := 0
	for _, s := range g.seeds {
		addrs, err := resolve(ctx, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, a := range addrs {
			if a == self || seen[a] {
				continue
			}
			seen[a] = true
			if err := ctx.Err(); err != nil {
				return joined, errors.Join(append(errs, err)...)
			}
			n, err := g.ml.Join([]string{a.String()})
			joined += n
			if err != nil {
				// memberlist returns a list of one error per address; the error itself reads better.
				if inner := errors.Unwrap(err); inner != nil {
					err = inner
				}
				errs = append(errs, fmt.Errorf("seed %s: %w", s.host, err))
			}
		}
	}
	if joined == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("the seeds resolve only to this node"))
	}
	return joined, errors.Join(errs...)
}

// resolve returns every address of a seed: the IP itself, or all A/AAAA records of the name.
func resolve(ctx context.Context, s seed) ([]netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s.host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(a.Unmap(), s.port)}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", s.host)
	if err != nil {
		return nil, fmt.Errorf("resolve seed %s: %w", s.host, err)
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), s.port))
	}
	return out, nil
}

// Leave announces a graceful departure, so peers list this node as Left rather than Dead: a
// notice straight to every live member, then memberlist's leave broadcast. It waits until both
// have gone out, bounded by ctx's deadline (or 5 s without one) plus at most one stream
// timeout for the notices. The node keeps answering until Shutdown.
func (g *Gossip) Leave(ctx context.Context) error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.down.Load() {
		return fmt.Errorf("gossip: leave: %w", ErrShutdown)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(leaveWait)
	}
	g.left.Store(true)
	// A report sent after the leave would announce this node alive again.
	g.stopAnnounce()
	// Our own record should say Left, not Dead, when memberlist reports the leave.
	g.peers.leaveNotice(g.cfg.NodeName)
	g.sendLeaveNotices()
	// memberlist reads a zero or negative timeout as "wait forever".
	wait := time.Until(deadline)
	if wait <= 0 {
		return fmt.Errorf("gossip: leave: %w", context.DeadlineExceeded)
	}
	if err := g.ml.Leave(wait); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	g.log.Info("gossip left")
	return nil
}

func (g *Gossip) usable() error {
	switch {
	case g.down.Load():
		return ErrShutdown
	case g.left.Load():
		return ErrLeft
	}
	return nil
}

// sendLeaveNotices tells every live member, over TCP and in parallel, that this node is about
// to leave. memberlist's own leave message looks like a death to its delegates. A member that
// misses the notice lists this node as Dead, which is what it could observe anyway.
func (g *Gossip) sendLeaveNotices() {
	msg := append([]byte(leaveNoticePrefix), g.cfg.NodeName...)
	var wg sync.WaitGroup
	for _, p := range g.peers.live() {
		// A fresh Node from our own record: memberlist's own Node structs change under its lock.
		n := &memberlist.Node{Name: p.Name, Addr: p.Addr.Addr().AsSlice(), Port: p.Addr.Port()}
		wg.Go(func() {
			if err := g.ml.SendReliable(n, msg); err != nil {
				g.log.Warn("leave notice not delivered", "peer", p.Name, "err", err)
			}
		})
	}
	wg.Wait()
}

// Shutdown stops gossip at once, without announcing it: peers detect it as a failure (call
// Leave first for a graceful exit). Calling it again does nothing.
func (g *Gossip) Shutdown() error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.down.Swap(true) {
		return nil
	}
	g.stopAnnounce()
	if err := g.ml.Shutdown(); err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	g.log.Info("gossip stopped")
	return nil
}

// leaveNoticePrefix starts the only user message gossip sends; the leaver's name follows.
const leaveNoticePrefix = "shoal-leave/1:"

// delegate hands memberlist this node's encoded health report and receives leave notices.
type delegate struct {
	peers *table

	mu   sync.Mutex
	meta []byte
}

// set stores a new report and says whether it differs from the current one.
func (d *delegate) set(b []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if bytes.Equal(d.meta, b) {
		return false
	}
	d.meta = b // replaced, never modified: memberlist keeps the old slice
	return true
}

func (d *delegate) NodeMeta(int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.meta
}

// NotifyMsg receives leave notices; anything else is not ours and is dropped.
func (d *delegate) NotifyMsg(b []byte) {
	if name, ok := strings.CutPrefix(string(b), leaveNoticePrefix); ok && name != "" {
		d.peers.leaveNotice(name)
	}
}

func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d *delegate) LocalState(bool) []byte          { return nil }
func (d *delegate) MergeRemoteState([]byte, bool)   {}
