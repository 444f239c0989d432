package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// TestDNSAcrossFailover asks every surviving agent's DNS, every 50 ms, for the primary and the
// cluster SRV names while the primary's host crashes, and reads every server's role over its
// Unix socket meanwhile. No answer may name as primary a member other than the old and the new
// primary, nor one that a read sent right after the answer finds read-only, nor the crashed old
// one again once that agent named the new one; once every replica serves, every agent lists all
// of them. How long each agent took to
// name the new primary once it was writable, and to list a replica once it served, is logged,
// never asserted.
func TestDNSAcrossFailover(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		c := Start(t, shoalBinary, flavor, 3)
		p := c.WaitPrimary(-1, 60*time.Second)
		c.WaitReplicating(p)
		roles := c.watchRoles()
		defer roles.stop()
		answers := c.watchDNS()
		defer answers.stopAll()
		everyone := []int{0, 1, 2}
		for _, i := range everyone {
			answers.watch(i)
		}
		c.waitListed(t, answers, roles, everyone, p)

		crash := time.Now()
		c.KillAgent(p)
		if err := c.Servers[p].Kill(); err != nil {
			t.Fatal(err)
		}
		answers.stop(p)
		n := c.WaitPrimary(p, 60*time.Second)
		r := 3 - p - n
		survivors := []int{n, r}
		settled := c.waitListed(t, answers, roles, survivors, n)
		// A quiet while with nothing changing: no agent may drop a serving member again.
		answers.waitSamples(survivors, 40)

		writable, ok := roles.writableSince(n)
		if !ok {
			t.Fatalf("%s never read writable", c.Name(n))
		}
		var named, deadNamed []time.Duration
		for _, i := range survivors {
			ss := answers.of(i)
			for _, v := range checkPrimaryAnswers(ss, time.Time{}, []string{c.Name(p), c.Name(n)}, c.Name(p)) {
				t.Errorf("DNS at %s: %s", c.Name(i), v)
			}
			first, ok := firstNaming(ss, c.Name(n))
			if !ok {
				t.Fatalf("DNS at %s never named %s", c.Name(i), c.Name(n))
			}
			named = append(named, first.recv.Sub(writable))
			if last, ok := lastNaming(ss, c.Name(p), crash); ok {
				deadNamed = append(deadNamed, last.recv.Sub(crash))
			}
			empty := 0
			for _, s := range ss {
				if s.err == nil && s.recv.After(writable) && s.recv.Before(first.recv) && len(s.primary) == 0 {
					empty++
				}
			}
			if missing := missingAfter(ss, roles, settled[i], n, []int{r}, c); len(missing) > 0 {
				t.Errorf("DNS at %s left out a serving member after it had listed them all: %v", c.Name(i), missing)
			}
			t.Logf("%s: DNS at %s named %s %s after it was writable (%d empty primary answers meanwhile)",
				flavor, c.Name(i), c.Name(n), first.recv.Sub(writable).Round(time.Millisecond), empty)
		}
		t.Logf("%s: DNSDELAY new primary named after it was writable: median %s max %s (agents %v)",
			flavor, median(named), slices.Max(named).Round(time.Millisecond), survivors)
		if len(deadNamed) > 0 {
			t.Logf("%s: dead old primary %s still named up to %s after the crash (median %s over agents)",
				flavor, c.Name(p), slices.Max(deadNamed).Round(time.Millisecond), median(deadNamed))
		}
		t.Logf("%s: DNSDELAY replica %s listed after it served: %s", flavor, c.Name(r),
			delays(answers, roles, survivors, r, n))

		// The old host comes back as a replica: every agent lists both replicas, and none names
		// the old primary again, not even its own agent before it has caught up with Raft.
		back := time.Now()
		c.RestartServer(p)
		c.StartAgent(p)
		answers.watch(p)
		c.waitListed(t, answers, roles, everyone, n)
		for _, i := range everyone {
			for _, v := range checkPrimaryAnswers(answers.of(i), back, []string{c.Name(n)}, "") {
				t.Errorf("DNS at %s: %s", c.Name(i), v)
			}
		}
		t.Logf("%s: DNSDELAY rejoined replica %s listed after it served: %s", flavor, c.Name(p),
			delays(answers, roles, everyone, p, n))
	})
}

// dnsSample is one round of questions to one agent's DNS server.
type dnsSample struct {
	sent, recv time.Time
	primary    []string // targets of _mysql._tcp.primary.<cluster>, as member names
	first      []string // priority 0 targets of _mysql._tcp.<cluster>
	replicas   []string // priority 10 targets of _mysql._tcp.<cluster>
	err        error
	// readOnly and down are the members named as primary that a read over their Unix socket,
	// sent right after the answer came, found read-only, or could not reach.
	readOnly, down []string
}

// names is every member an answer named as primary, once each.
func (s dnsSample) names() []string {
	all := append(slices.Clone(s.primary), s.first...)
	slices.Sort(all)
	return slices.Compact(all)
}

// lists reports whether the answer names primary, in both names, and every replica.
func (s dnsSample) lists(primary string, replicas []string) bool {
	if s.err != nil || !slices.Equal(s.primary, []string{primary}) || !slices.Equal(s.first, []string{primary}) {
		return false
	}
	for _, r := range replicas {
		if !slices.Contains(s.replicas, r) {
			return false
		}
	}
	return true
}

type dnsWatch struct {
	c       *Cluster
	dbs     []*sql.DB // each server over its Unix socket
	mu      sync.Mutex
	samples map[int][]dnsSample
	stops   map[int]chan struct{}
	wg      sync.WaitGroup
}

func (c *Cluster) watchDNS() *dnsWatch {
	w := &dnsWatch{c: c, samples: map[int][]dnsSample{}, stops: map[int]chan struct{}{}}
	for _, s := range c.Servers {
		db, err := sql.Open("mysql", s.SocketDSN(harness.RootUser, harness.RootPassword))
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(func() { db.Close() })
		w.dbs = append(w.dbs, db)
	}
	return w
}

// check reads, right after an answer, whether each member it named as primary is writable.
func (w *dnsWatch) check(s *dnsSample) {
	q := "SELECT @@read_only = 0"
	if w.c.Flavor == gtid.MySQL {
		q = "SELECT @@read_only = 0 AND @@super_read_only = 0"
	}
	for _, m := range s.names() {
		i := w.c.index(m)
		if i < 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		var writable bool
		err := w.dbs[i].QueryRowContext(ctx, q).Scan(&writable)
		cancel()
		switch {
		case err != nil:
			s.down = append(s.down, m)
		case !writable:
			s.readOnly = append(s.readOnly, m)
		}
	}
}

// watch starts asking member i's agent every 50 ms.
func (w *dnsWatch) watch(i int) {
	stop := make(chan struct{})
	w.mu.Lock()
	w.stops[i] = stop
	w.mu.Unlock()
	addr := net.JoinHostPort(w.c.Servers[i].Host(), strconv.Itoa(dnsPort))
	w.wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			s := askDNS(addr)
			w.check(&s)
			w.mu.Lock()
			w.samples[i] = append(w.samples[i], s)
			w.mu.Unlock()
		}
	})
}

func (w *dnsWatch) stop(i int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.stops[i]; ok {
		close(ch)
		delete(w.stops, i)
	}
}

func (w *dnsWatch) stopAll() {
	w.mu.Lock()
	for i, ch := range w.stops {
		close(ch)
		delete(w.stops, i)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

func (w *dnsWatch) of(i int) []dnsSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.samples[i])
}

// waitSamples waits until each of the agents answered k more rounds.
func (w *dnsWatch) waitSamples(agents []int, k int) {
	base := map[int]int{}
	for _, i := range agents {
		base[i] = len(w.of(i))
	}
	for _, i := range agents {
		for len(w.of(i)) < base[i]+k {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// askDNS asks one agent for both SRV names.
func askDNS(addr string) dnsSample {
	s := dnsSample{sent: time.Now()}
	cl := &mdns.Client{Net: "udp", Timeout: 300 * time.Millisecond}
	ask := func(name string) []*mdns.SRV {
		if s.err != nil {
			return nil
		}
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.TypeSRV)
		in, _, err := cl.Exchange(m, addr)
		if err != nil {
			s.err = fmt.Errorf("ask %s for %s: %w", addr, name, err)
			return nil
		}
		var out []*mdns.SRV
		for _, rr := range in.Answer {
			if srv, ok := rr.(*mdns.SRV); ok {
				out = append(out, srv)
			}
		}
		return out
	}
	member := func(srv *mdns.SRV) string { return strings.TrimSuffix(srv.Target, ".e2e.shoal.") }
	for _, srv := range ask("_mysql._tcp.primary.e2e.shoal.") {
		s.primary = append(s.primary, member(srv))
	}
	for _, srv := range ask("_mysql._tcp.e2e.shoal.") {
		if srv.Priority == 0 {
			s.first = append(s.first, member(srv))
		} else {
			s.replicas = append(s.replicas, member(srv))
		}
	}
	s.recv = time.Now()
	sort.Strings(s.replicas)
	return s
}

// roleSample is one read of a server's role over its Unix socket.
type roleSample struct {
	sent     time.Time
	up       bool
	writable bool
	source   string // the member it replicates from, "" for none
	serving  bool   // receiving from source and applying
}

type roleWatch struct {
	c       *Cluster
	mu      sync.Mutex
	samples [][]roleSample
	done    chan struct{}
	wg      sync.WaitGroup
}

// watchRoles reads every server's status every 20 ms, as mysqlctl reads it for the agents.
func (c *Cluster) watchRoles() *roleWatch {
	w := &roleWatch{c: c, samples: make([][]roleSample, len(c.Servers)), done: make(chan struct{})}
	for i, s := range c.Servers {
		w.wg.Go(func() {
			var srv *mysqlctl.Server
			defer func() {
				if srv != nil {
					srv.Close()
				}
			}()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-w.done:
					return
				case <-tick.C:
				}
				rs := roleSample{sent: time.Now()}
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				if srv == nil {
					srv, _ = mysqlctl.Open(ctx, mysqlctl.Config{Addr: s.Socket(), User: harness.RootUser,
						Password: harness.RootPassword, ReadTimeout: 2 * time.Second})
				}
				if srv != nil {
					if st, err := srv.Status(ctx); err == nil {
						rs.up, rs.writable = true, st.Writable()
						if rep := st.Replica; rep != nil {
							if j := slices.IndexFunc(c.Servers, func(o *harness.Server) bool { return o.Addr() == rep.SourceAddr() }); j >= 0 {
								rs.source = c.Name(j)
							}
							rs.serving = rep.IORunning() && rep.SQLRunning
						}
					}
				}
				cancel()
				w.mu.Lock()
				w.samples[i] = append(w.samples[i], rs)
				w.mu.Unlock()
			}
		})
	}
	return w
}

func (w *roleWatch) stop() {
	close(w.done)
	w.wg.Wait()
}

func (w *roleWatch) of(i int) []roleSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.samples[i])
}

// writableSince is when the read that first found member i writable, in its latest writable
// stretch, was sent: it was read-only when the read before was sent.
func (w *roleWatch) writableSince(i int) (time.Time, bool) {
	return since(w.of(i), func(s roleSample) bool { return s.up && s.writable })
}

// servingSince is the same for member i replicating from primary with both threads running.
func (w *roleWatch) servingSince(i int, primary string) (time.Time, bool) {
	return since(w.of(i), func(s roleSample) bool { return s.up && !s.writable && s.source == primary && s.serving })
}

func since(ss []roleSample, ok func(roleSample) bool) (time.Time, bool) {
	j := len(ss)
	for j > 0 && ok(ss[j-1]) {
		j--
	}
	if j == len(ss) {
		return time.Time{}, false
	}
	return ss[j].sent, true
}

// waitListed waits until the primary is writable, every other of the members serves as its
// replica, and then every one of the agents answers with the primary and all of them. It returns,
// per agent, when the first such answer came.
func (c *Cluster) waitListed(t *testing.T, answers *dnsWatch, roles *roleWatch, agents []int, primary int) map[int]time.Time {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var replicas []string
	for _, i := range agents {
		if i != primary {
			replicas = append(replicas, c.Name(i))
		}
	}
	sort.Strings(replicas)
	for {
		out := map[int]time.Time{}
		if from, ok := c.allServing(roles, agents, primary); ok {
			for _, i := range agents {
				for _, s := range answers.of(i) {
					if s.sent.After(from) && s.lists(c.Name(primary), replicas) {
						out[i] = s.recv
						break
					}
				}
			}
			if len(out) == len(agents) {
				return out
			}
		}
		if time.Now().After(deadline) {
			for _, i := range agents {
				ss := answers.of(i)
				rs := roles.of(i)
				t.Logf("%s: last DNS answer %+v; last role read %+v", c.Name(i), ss[max(0, len(ss)-1):], rs[max(0, len(rs)-1):])
			}
			t.Fatalf("DNS did not list primary %s and replicas %v at every agent of %v within 90s", c.Name(primary), replicas, agents)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// allServing returns since when the primary has been writable and every other member a serving
// replica of it.
func (c *Cluster) allServing(roles *roleWatch, members []int, primary int) (time.Time, bool) {
	from, ok := roles.writableSince(primary)
	for _, i := range members {
		if i == primary || !ok {
			continue
		}
		var at time.Time
		at, ok = roles.servingSince(i, c.Name(primary))
		from = later(from, at)
	}
	return from, ok
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// checkPrimaryAnswers returns every answer sent after from that named as primary a member not
// allowed, or one that a read right after the answer found read-only; and, if dead is set, every
// answer that named dead after this agent had named another member primary.
func checkPrimaryAnswers(ss []dnsSample, from time.Time, allowed []string, dead string) []string {
	var bad []string
	namedOther := false
	for _, s := range ss {
		if !s.sent.After(from) {
			continue
		}
		at := s.recv.Format("15:04:05.000")
		for _, m := range s.names() {
			switch {
			case !slices.Contains(allowed, m):
				bad = append(bad, fmt.Sprintf("%s: named %s, not a primary then", at, m))
			case slices.Contains(s.readOnly, m):
				bad = append(bad, fmt.Sprintf("%s: named %s, read-only when read right after", at, m))
			case m == dead && namedOther:
				bad = append(bad, fmt.Sprintf("%s: named the crashed %s again", at, m))
			}
		}
		namedOther = namedOther || slices.ContainsFunc(s.names(), func(m string) bool { return m != dead })
	}
	return bad
}

func firstNaming(ss []dnsSample, primary string) (dnsSample, bool) {
	for _, s := range ss {
		if slices.Contains(s.primary, primary) {
			return s, true
		}
	}
	return dnsSample{}, false
}

// lastNaming is the last answer sent after t that named primary.
func lastNaming(ss []dnsSample, primary string, t time.Time) (dnsSample, bool) {
	for j := len(ss) - 1; j >= 0; j-- {
		if ss[j].sent.After(t) && slices.Contains(ss[j].names(), primary) {
			return ss[j], true
		}
	}
	return dnsSample{}, false
}

// missingAfter returns the answers after from that left out the primary or a replica while the
// role reads just before and after the answer found them all serving.
func missingAfter(ss []dnsSample, roles *roleWatch, from time.Time, primary int, replicas []int, c *Cluster) []string {
	var names []string
	for _, r := range replicas {
		names = append(names, c.Name(r))
	}
	sort.Strings(names)
	servingAround := func(i int, ok func(roleSample) bool, s dnsSample) bool {
		rs := roles.of(i)
		j := sort.Search(len(rs), func(k int) bool { return rs[k].sent.After(s.sent) })
		return j > 0 && j < len(rs) && ok(rs[j-1]) && ok(rs[j])
	}
	var bad []string
	for _, s := range ss {
		if !s.sent.After(from) || s.lists(c.Name(primary), names) {
			continue
		}
		all := servingAround(primary, func(r roleSample) bool { return r.up && r.writable }, s)
		for _, r := range replicas {
			all = all && servingAround(r, func(x roleSample) bool {
				return x.up && !x.writable && x.source == c.Name(primary) && x.serving
			}, s)
		}
		if all {
			bad = append(bad, fmt.Sprintf("%s: primary %v, replicas %v (err %v)", s.recv.Format("15:04:05.000"), s.primary, s.replicas, s.err))
		}
	}
	return bad
}

// delays says, per agent, how long after replica began to serve primary its DNS first listed
// both (negative when the agent saw it before the role reads did).
func delays(answers *dnsWatch, roles *roleWatch, agents []int, replica, primary int) string {
	c := answers.c
	from, ok := roles.servingSince(replica, c.Name(primary))
	if !ok {
		return "never served"
	}
	var ds []time.Duration
	var parts []string
	for _, i := range agents {
		for _, s := range answers.of(i) {
			if s.lists(c.Name(primary), []string{c.Name(replica)}) {
				ds = append(ds, s.recv.Sub(from))
				parts = append(parts, fmt.Sprintf("%s %s", c.Name(i), s.recv.Sub(from).Round(time.Millisecond)))
				break
			}
		}
	}
	if len(ds) == 0 {
		return "never listed"
	}
	return fmt.Sprintf("median %s max %s (%s)", median(ds), slices.Max(ds).Round(time.Millisecond), strings.Join(parts, ", "))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2].Round(time.Millisecond)
	}
	return ((s[len(s)/2-1] + s[len(s)/2]) / 2).Round(time.Millisecond)
}
