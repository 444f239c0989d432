package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver the writer and monitor use

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// Writer inserts unique ids through whatever member is the writable primary, the way a client
// would, and records every insert the server acknowledged.
type Writer struct {
	c      *Cluster
	locate func(ctx context.Context) int // the primary's index, or -1
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	acked  []int64
	times  []time.Time // when each acked write was acknowledged
	by     []int       // and by which member
	lastOK time.Time
	// Gaps are the periods between two acknowledged writes longer than 200ms: write unavailability.
	Gaps []time.Duration
}

// StartWriter creates the table and starts writing, finding the primary through the agents'
// admin API.
func (c *Cluster) StartWriter(primary int) *Writer {
	return c.startWriter(primary, func(ctx context.Context) int { return c.firstClaim(ctx, -1) })
}

// StartSRVWriter is StartWriter for a client that finds the primary the way applications do:
// the primary SRV record, asked of the members' DNS servers in turn until one answers.
func (c *Cluster) StartSRVWriter(primary int) *Writer {
	next := 0
	return c.startWriter(primary, func(ctx context.Context) int {
		for range c.Servers {
			i := next
			next = (next + 1) % len(c.Servers)
			if name := c.DNSPrimary(ctx, i); name != "" {
				return c.index(name)
			}
		}
		return -1
	})
}

func (c *Cluster) startWriter(primary int, locate func(ctx context.Context) int) *Writer {
	c.t.Helper()
	db := c.open(primary, harness.AppUser, harness.AppPassword)
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS app.acks (id BIGINT PRIMARY KEY)"); err != nil {
		c.t.Fatalf("create table: %v", err)
	}
	w := &Writer{c: c, locate: locate, stop: make(chan struct{}), done: make(chan struct{}), lastOK: time.Now()}
	go w.run()
	return w
}

func (c *Cluster) open(i int, user, password string) *sql.DB {
	return c.openWithin(i, user, password, 3*time.Second)
}

// writeTimeout is how long the writer waits for one statement, as an OLTP client would: a write
// sent to a primary that goes silent just before the fault (frozen, cut off) is given up then,
// and the client looks for the primary again. With 3 s, as before, that timeout was the first
// write's floor in those rows of the benchmarks.
const writeTimeout = time.Second

// openWithin is open with statements given up after timeout.
func (c *Cluster) openWithin(i int, user, password string, timeout time.Duration) *sql.DB {
	db, err := sql.Open("mysql", fmt.Sprintf("%s&timeout=500ms&readTimeout=%s&writeTimeout=%s", c.Servers[i].DSN(user, password), timeout, timeout))
	if err != nil {
		c.t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return db
}

func (w *Writer) run() {
	defer close(w.done)
	var (
		db      *sql.DB
		current = -1
		next    int64
	)
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		if db == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			current = w.locate(ctx)
			cancel()
			if current < 0 {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			db = w.c.openWithin(current, harness.AppUser, harness.AppPassword, writeTimeout)
		}
		next++
		if _, err := db.Exec("INSERT INTO app.acks (id) VALUES (?)", next); err != nil {
			db.Close()
			db = nil
			continue
		}
		now := time.Now()
		w.mu.Lock()
		w.acked = append(w.acked, next)
		w.times = append(w.times, now)
		w.by = append(w.by, current)
		if gap := now.Sub(w.lastOK); gap > 200*time.Millisecond {
			w.Gaps = append(w.Gaps, gap)
		}
		w.lastOK = now
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop ends the writer and returns the acknowledged ids.
func (w *Writer) Stop() []int64 {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

// FirstAckAfter is when member `by` first acknowledged a write after t, waiting up to limit.
// Naming the member keeps a write the old primary acknowledged just after t out of a failover time.
func (w *Writer) FirstAckAfter(t time.Time, by int, limit time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for i, at := range w.times {
			if at.After(t) && w.by[i] == by {
				w.mu.Unlock()
				return at, true
			}
		}
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}, false
}

// LongestGap is the longest time without an acknowledged write within [from, to].
func (w *Writer) LongestGap(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest time.Duration
	prev := from
	for _, t := range w.times {
		if t.Before(from) {
			continue
		}
		if t.After(to) {
			break
		}
		longest = max(longest, t.Sub(prev))
		prev = t
	}
	return longest
}

// WaitAcked waits until n writes were acknowledged in all.
func (w *Writer) WaitAcked(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for w.Acked() < n {
		if time.Now().After(deadline) {
			t.Fatalf("writer stuck at %d acknowledged writes, waiting for %d", w.Acked(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// AckedIDs returns a copy of the ids acknowledged so far.
func (w *Writer) AckedIDs() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked)
}

// Acked is how many writes were acknowledged so far.
func (w *Writer) Acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// Monitor polls every server's read-only state every 50ms and records each moment when two
// servers accepted writes at once. It reads over each server's Unix socket, not TCP: the
// isolation faults are iptables rules on a host's address, and over TCP the one server that
// matters most then, the isolated primary, could not be observed at all.
type Monitor struct {
	c          *Cluster
	stop, done chan struct{}
	mu         sync.Mutex
	Violations []string
	samples    []Samples // per member, guarded by mu like Violations
}

// Samples counts one member's reads by the monitor: those that returned its state, and those
// that failed (its state unknown).
type Samples struct {
	OK, Failed int
	LastErr    error // of the last failed read
}

// StartMonitor starts polling.
func (c *Cluster) StartMonitor() *Monitor {
	c.t.Helper()
	m := &Monitor{c: c, stop: make(chan struct{}), done: make(chan struct{}), samples: make([]Samples, len(c.Servers))}
	dbs := make([]*sql.DB, len(c.Servers))
	for i, s := range c.Servers {
		db, err := sql.Open("mysql", s.SocketDSN(harness.RootUser, harness.RootPassword))
		if err != nil {
			c.t.Fatalf("monitor of %s: %v", c.Name(i), err)
		}
		db.SetMaxOpenConns(1)
		dbs[i] = db
	}
	go func() {
		defer close(m.done)
		defer func() {
			for _, db := range dbs {
				db.Close()
			}
		}()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
			m.record(m.sample(dbs))
		}
	}()
	return m
}

// errRebuilding marks a monitor read of a server that Rebuild was loading.
var errRebuilding = errors.New("being rebuilt")

// sample reads every server's state at once: whether it is writable, or why that is unknown.
func (m *Monitor) sample(dbs []*sql.DB) (writable []bool, errs []error) {
	q := "SELECT @@read_only = 0"
	if m.c.Flavor == gtid.MySQL {
		q = "SELECT @@read_only = 0 AND @@super_read_only = 0"
	}
	writable, errs = make([]bool, len(dbs)), make([]error, len(dbs))
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			// A server being rebuilt runs writable with networking off, which only the socket
			// reaches: it is no member then, so a read during the load is discarded. Asked before
			// and after the read, since a load takes far longer than one read.
			loading := m.c.Servers[i].Loading()
			err := db.QueryRowContext(ctx, q).Scan(&writable[i])
			if loading = loading || m.c.Servers[i].Loading(); loading {
				err = errRebuilding
			}
			if err != nil {
				errs[i] = fmt.Errorf("read-only state of %s: %w", m.c.Name(i), err)
			}
		})
	}
	wg.Wait()
	return writable, errs
}

// record counts a sample and records a violation if it found two writable servers. A server
// whose read failed is unknown, and counts neither way: not as writable, since a killed or
// frozen (SIGSTOP) server accepts no writes and would report split brains that never were; and
// not as read-only either, but as a failed sample, so that a run where the monitor could not see
// a server (as over TCP during an isolation) shows in Observed instead of passing unnoticed.
func (m *Monitor) record(writable []bool, errs []error) {
	var yes, unknown []string
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, err := range errs {
		switch {
		case err != nil:
			m.samples[i].Failed++
			m.samples[i].LastErr = err
			unknown = append(unknown, m.c.Name(i))
		case writable[i]:
			m.samples[i].OK++
			yes = append(yes, m.c.Name(i))
		default:
			m.samples[i].OK++
		}
	}
	if len(yes) > 1 {
		v := fmt.Sprintf("%s: %v writable at once", time.Now().Format("15:04:05.000"), yes)
		if len(unknown) > 0 {
			v += fmt.Sprintf(" (%v unknown)", unknown)
		}
		m.Violations = append(m.Violations, v)
	}
}

// Observed returns how many reads of each member's state succeeded and failed so far.
func (m *Monitor) Observed() []Samples {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.samples)
}

// Seen returns the violations recorded so far.
func (m *Monitor) Seen() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.Violations)
}

// Stop ends the monitor and returns the violations.
func (m *Monitor) Stop() []string {
	close(m.stop)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.Violations
}

// Isolate cuts member i's host off with iptables, in both directions: nothing reaches its
// address, and nothing leaves that its processes send, on connections they opened (matched by
// the host's cgroup) or accepted (matched by the host's address: its mysqld's accepted sockets
// stay in the group it started in, outside the host's). A cut-off primary's commits in flight
// then reach nobody. The rules go when heal is called or the test ends, also after a failure.
func (c *Cluster) Isolate(i int) (heal func()) { return c.drop(i) }

// Lossy drops the given share (0-1) of the packets member i's host sends and receives.
func (c *Cluster) Lossy(i int, share float64) (heal func()) {
	return c.drop(i, "-m", "statistic", "--mode", "random", "--probability", strconv.FormatFloat(share, 'f', 3, 64))
}

func (c *Cluster) drop(i int, match ...string) (heal func()) {
	c.t.Helper()
	host := c.Servers[i].Host()
	group, err := c.hostGroup(i)
	if err != nil {
		c.t.Fatal(err)
	}
	rules := [][]string{
		append([]string{"INPUT", "-d", host}, match...),
		append([]string{"OUTPUT", "-m", "cgroup", "--path", group}, match...),
		append([]string{"OUTPUT", "-s", host}, match...),
	}
	for j := range rules {
		rules[j] = append(rules[j], "-j", "DROP")
		if out, err := exec.Command("iptables", append([]string{"-I"}, rules[j]...)...).CombinedOutput(); err != nil {
			c.t.Fatalf("iptables -I %v: %v: %s (install with `make deps`)", rules[j], err, out)
		}
	}
	var once sync.Once
	heal = func() {
		once.Do(func() {
			for _, r := range rules {
				exec.Command("iptables", append([]string{"-D"}, r...)...).Run()
			}
		})
	}
	c.t.Cleanup(heal)
	return heal
}
