// Package e2e runs shoal end to end: real MySQL or MariaDB servers from the harness, each with a
// real `shoal agent` process on the same simulated host (loopback address), faults by SIGKILL,
// SIGSTOP and iptables, a writer that records every acknowledged write, and a monitor that
// watches every server's read-only state.
package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/consensus/peertls"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// Ports every agent uses on its own host address.
const (
	gossipPort = 7946
	raftPort   = 7947
	adminPort  = 7948
	dnsPort    = 8053
)

// Cluster is servers plus agents, one pair per simulated host.
type Cluster struct {
	t       testing.TB
	Flavor  gtid.Flavor
	Servers []*harness.Server
	agents  []*exec.Cmd
	dir     string
	binary  string
	extra   []string
	Admin   adminapi.Client
	mu      sync.Mutex
	// serviceSocket is where agents stop and start their mysqld (service.go).
	serviceSocket string
	roots         map[int]*sql.DB // Root's pools, one per member
}

// Build compiles bin/shoal once per test binary.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "shoal")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/shoal-db/shoal/cmd/shoal")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build shoal: %w: %s", err, out)
	}
	return bin, nil
}

// RunWithBinary is the TestMain of a package that starts agents: it builds shoal into a
// temporary directory, points *binary at it, runs the tests and removes the directory.
func RunWithBinary(m *testing.M, binary *string) int {
	dir, err := os.MkdirTemp("", "shoal-bin-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if *binary, err = Build(dir); err != nil {
		panic(err)
	}
	return m.Run()
}

// ClusterName is the cluster every test cluster's agents run.
const ClusterName = "e2e"

// Start runs n servers and n agents with the given extra agent flags and waits for a primary.
func Start(t testing.TB, binary string, flavor gtid.Flavor, n int, extra ...string) *Cluster {
	t.Helper()
	return StartWith(t, binary, flavor, n, nil, extra...)
}

// StartWith is Start with tweak, if not nil, adjusting each server's configuration.
func StartWith(t testing.TB, binary string, flavor gtid.Flavor, n int, tweak func(i int, cfg *harness.ServerConfig), extra ...string) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Flavor: flavor, dir: t.TempDir(), binary: binary, extra: extra}
	c.Servers = harness.StartN(t, flavor, n, func(i int, cfg *harness.ServerConfig) {
		cfg.SuperReadOnly = true
		if tweak != nil {
			tweak(i, cfg)
		}
	})
	write := func(name, content string) string {
		p := filepath.Join(c.dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("root.pw", harness.RootPassword)
	write("repl.pw", "repl-secret")
	write("admin.token", "admin-secret")
	write("gossip.key", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	c.Admin = adminapi.NewClient("admin-secret", c.makeCerts(), 2*time.Second)
	c.agents = make([]*exec.Cmd, n)
	c.startServiceManager()
	for i := range n {
		c.StartAgent(i)
	}
	t.Cleanup(c.stopAll)
	return c
}

// makeCerts issues the cluster CA and each member's certificate with `shoal certs`, as an
// operator would, and returns the TLS config that trusts the CA, for the admin client.
func (c *Cluster) makeCerts() *tls.Config {
	c.t.Helper()
	args := []string{"certs", "--dir", filepath.Join(c.dir, "tls")}
	for _, s := range c.Servers {
		args = append(args, s.Config.Name+"="+s.Host())
	}
	if out, err := exec.Command(c.binary, args...).CombinedOutput(); err != nil {
		c.t.Fatalf("shoal certs: %v: %s", err, out)
	}
	pem, err := os.ReadFile(filepath.Join(c.dir, "tls", "ca.crt"))
	if err != nil {
		c.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		c.t.Fatal("shoal certs wrote no CA certificate")
	}
	return peertls.Client(&tls.Config{RootCAs: pool})
}

// RestartServer restarts member i's mysqld on its data dir, inside its host's cgroup.
func (c *Cluster) RestartServer(i int) {
	c.t.Helper()
	if err := c.Servers[i].Restart(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.joinHost(i, c.Servers[i].PID())
}

// ThawServer resumes member i's paused mysqld or, when its agent killed it meanwhile (a
// writable server frozen past its lease), starts it again as a service manager would. It
// reports whether the agent had killed it.
//
// The agent may also kill it just after the thaw, on probes that failed while it was frozen
// (seen in CI): a kill decided in a pass lands within about a second, so the thaw watches that
// long before it reports the server alive.
func (c *Cluster) ThawServer(i int) (killed bool) {
	c.t.Helper()
	if c.Servers[i].PID() == 0 {
		c.RestartServer(i)
		return true
	}
	if err := c.Servers[i].Resume(); err != nil {
		c.t.Fatal(err)
	}
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if c.Servers[i].PID() == 0 {
			c.RestartServer(i)
			return true
		}
	}
	return false
}

// RebuildServer replaces member i's data with a copy of member from's (see harness.Rebuild); the
// caller stops member i's agent first.
func (c *Cluster) RebuildServer(i, from int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.Servers[i].Rebuild(ctx, c.Servers[from]); err != nil {
		c.t.Fatal(err)
	}
	c.joinHost(i, c.Servers[i].PID())
}

// StartLoaded starts a cluster and, once it has a primary with its replicas attached, a writer
// and a split-brain monitor; it returns the primary's index too.
func StartLoaded(t testing.TB, binary string, flavor gtid.Flavor, extra ...string) (*Cluster, int, *Writer, *Monitor) {
	t.Helper()
	return StartLoadedWith(t, binary, flavor, nil, extra...)
}

// StartLoadedWith is StartLoaded with tweak adjusting each server's configuration (StartWith).
func StartLoadedWith(t testing.TB, binary string, flavor gtid.Flavor, tweak func(i int, cfg *harness.ServerConfig), extra ...string) (*Cluster, int, *Writer, *Monitor) {
	t.Helper()
	c := StartWith(t, binary, flavor, 3, tweak, extra...)
	p := c.WaitPrimary(-1, 60*time.Second)
	c.WaitReplicating(p)
	return c, p, c.StartWriter(p), c.StartMonitor()
}

// Name is member i's id.
func (c *Cluster) Name(i int) string { return c.Servers[i].Config.Name }

// index is the position of the member named name, or -1.
func (c *Cluster) index(name string) int {
	return slices.IndexFunc(c.Servers, func(s *harness.Server) bool { return s.Config.Name == name })
}

// AdminAddr is member i's admin API address.
func (c *Cluster) AdminAddr(i int) string {
	return net.JoinHostPort(c.Servers[i].Host(), strconv.Itoa(adminPort))
}

// StartAgent starts (or restarts) member i's agent.
func (c *Cluster) StartAgent(i int) {
	c.t.Helper()
	s := c.Servers[i]
	h := s.Host()
	seeds := ""
	for j, o := range c.Servers {
		if j != i {
			seeds += net.JoinHostPort(o.Host(), strconv.Itoa(gossipPort)) + ","
		}
	}
	args := []string{"agent", "--cluster", ClusterName, "--node.id", s.Config.Name, "--node.data_dir", filepath.Join(c.dir, s.Config.Name),
		"--mysql.addr", s.Socket(), "--mysql.advertise_addr", s.Addr(), "--mysql.password_file", filepath.Join(c.dir, "root.pw"),
		"--mysql.repl_password_file", filepath.Join(c.dir, "repl.pw"), "--mysql.pid_file", filepath.Join(s.Dir(), "mysqld.pid"),
		// As the agent sees it: a MySQL server in its chroot reports its own view.
		"--mysql.data_dir", filepath.Join(s.Dir(), "data"),
		"--gossip.bind", net.JoinHostPort(h, strconv.Itoa(gossipPort)), "--gossip.seeds", seeds,
		"--gossip.key_files", filepath.Join(c.dir, "gossip.key"),
		"--raft.bind", net.JoinHostPort(h, strconv.Itoa(raftPort)),
		"--raft.tls.cert_file", filepath.Join(c.dir, "tls", s.Config.Name+".crt"),
		"--raft.tls.key_file", filepath.Join(c.dir, "tls", s.Config.Name+".key"),
		"--raft.tls.ca_file", filepath.Join(c.dir, "tls", "ca.crt"),
		"--raft.bootstrap_expect", strconv.Itoa(len(c.Servers)),
		"--admin.listen", c.AdminAddr(i), "--admin.token_file", filepath.Join(c.dir, "admin.token"),
		"--dns.listen", net.JoinHostPort(h, strconv.Itoa(dnsPort)),
		"--log.format", "text", "--log.level", "info"}
	if c.Flavor == gtid.MySQL { // as a deployment would: the host's mysqlbinlog is MariaDB's, the server's own is in its root
		args = append(args, "--mysql.binlog_tool", "chroot,"+harness.MySQLRoot()+",/usr/bin/mysqlbinlog")
	}
	args = append(args, c.serviceArgs(i)...)
	args = append(args, c.extra...)
	cmd := exec.Command(c.binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no SHOAL_* test settings leak into the agent
	logFile, err := os.OpenFile(filepath.Join(c.dir, s.Config.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start agent %s: %v", s.Config.Name, err)
	}
	logFile.Close()
	go cmd.Wait()
	c.joinHost(i, cmd.Process.Pid)
	c.joinHost(i, s.PID())
	c.mu.Lock()
	c.agents[i] = cmd
	c.mu.Unlock()
}

// KillAgent SIGKILLs member i's agent.
func (c *Cluster) KillAgent(i int) { c.signalAgent(i, syscall.SIGKILL) }

// PauseAgent / ResumeAgent freeze and thaw member i's agent.
func (c *Cluster) PauseAgent(i int)  { c.signalAgent(i, syscall.SIGSTOP) }
func (c *Cluster) ResumeAgent(i int) { c.signalAgent(i, syscall.SIGCONT) }

// TermAgent sends SIGTERM, the graceful stop of a service manager.
func (c *Cluster) TermAgent(i int) { c.signalAgent(i, syscall.SIGTERM) }

func (c *Cluster) signalAgent(i int, sig syscall.Signal) {
	c.mu.Lock()
	cmd := c.agents[i]
	c.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Signal(sig)
	}
}

func (c *Cluster) stopAll() {
	for i := range c.agents {
		c.signalAgent(i, syscall.SIGCONT)
		c.signalAgent(i, syscall.SIGKILL)
	}
	if c.t.Failed() {
		if keep := os.Getenv("SHOAL_E2E_LOGS"); keep != "" {
			to := filepath.Join(keep, strings.ReplaceAll(c.t.Name(), "/", "_"))
			exec.Command("cp", "-r", c.dir, to).Run()
			for _, s := range c.Servers {
				exec.Command("cp", filepath.Join(s.Dir(), "error.log"), filepath.Join(to, s.Config.Name+"-mysqld-error.log")).Run()
			}
		}
		for _, s := range c.Servers {
			b, _ := os.ReadFile(filepath.Join(c.dir, s.Config.Name+".log"))
			c.t.Logf("--- agent %s decisions and failures (last 30):\n%s", s.Config.Name, tail(decisions(string(b)), 30))
			// A server that died by itself says why here (a crash's stack, an assertion).
			c.t.Logf("--- mysqld %s error log (last 15 lines):\n%s", s.Config.Name, s.ErrorLogTail(15))
		}
	}
}

// decisions keeps the log lines that explain what an agent did: its decisions and failed actions.
func decisions(log string) string {
	var b strings.Builder
	for _, line := range strings.Split(log, "\n") {
		if ExplainsAction(line) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// ExplainsAction tells the log lines that say what an agent did: decisions, failed actions, errors.
func ExplainsAction(line string) bool {
	return strings.Contains(line, "msg=decision") || strings.Contains(line, "failed") || strings.Contains(line, "level=ERROR")
}

func tail(s string, n int) string {
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			lines++
			if lines > n {
				return s[i+1:]
			}
		}
	}
	return s
}

// FirstDecision is when an agent first logged a decision whose reason contains text, after t.
func (c *Cluster) FirstDecision(after time.Time, text string) (time.Time, bool) {
	for _, l := range c.LogLines(after, time.Time{}) {
		if strings.Contains(l.Text, "msg=decision") && strings.Contains(l.Text, text) {
			return l.At, true
		}
	}
	return time.Time{}, false
}

// LogLine is one timestamped line of an agent's log.
type LogLine struct {
	At   time.Time
	Text string
}

// LogLines is every agent's log between from and to (a zero to: no end), merged in time order.
func (c *Cluster) LogLines(from, to time.Time) []LogLine {
	var out []LogLine
	for _, s := range c.Servers {
		raw, err := os.ReadFile(filepath.Join(c.dir, s.Config.Name+".log"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			stamp, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			at, err := time.Parse(time.RFC3339Nano, stamp)
			if err == nil && at.After(from) && (to.IsZero() || at.Before(to)) {
				out = append(out, LogLine{At: at, Text: line})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b LogLine) int { return a.At.Compare(b.At) })
	return out
}

// RaftLeader is the member whose agent says it leads Raft, or -1.
func (c *Cluster) RaftLeader(ctx context.Context) int {
	for i := range c.Servers {
		one, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		v, err := c.Admin.Status(one, c.AdminAddr(i))
		cancel()
		if err == nil && v.IsLeader {
			return i
		}
	}
	return -1
}

// Primary returns the index of the member that is recorded primary and says it is writable,
// as its own agent reports, or -1.
func (c *Cluster) Primary(ctx context.Context) int {
	// All agents at once, each with its own short deadline: an isolated one must not hold up
	// the answer of the others, as a client's would not be.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	claims := make(chan int, len(c.Servers))
	for i := range c.Servers {
		go func() {
			if !c.claimsPrimary(ctx, i) {
				claims <- -1
				return
			}
			claims <- i
		}()
	}
	for range c.Servers {
		if i := <-claims; i >= 0 {
			return i
		}
	}
	return -1
}

// claimsPrimary asks member i's agent, within 500 ms, whether its member serves as the primary.
func (c *Cluster) claimsPrimary(ctx context.Context, i int) bool {
	one, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	v, err := c.Admin.Status(one, c.AdminAddr(i))
	return err == nil && serving(v)
}

// serving tells whether a view shows its member serving as the primary now: recorded so,
// writable, and with a lease that has not run out (the agents run on this machine, so their
// clock is the harness's). An agent cut off from the cluster is the primary of its old epoch in
// its own view, and the last view it published, writable with a lease, stays its answer while
// its loop waits out the renewal that cannot reach the leader and then fences: taken for the
// primary after a heal, it sent the harness to a fenced server that lacked the newer epoch's
// writes.
func serving(v adminapi.View) bool {
	return v.Record.Primary == v.Node && v.Local.Writable && v.LeaseUntil.After(time.Now())
}

// WaitPrimary waits until a member other than not is the writable primary, and returns it.
func (c *Cluster) WaitPrimary(not int, limit time.Duration) int {
	c.t.Helper()
	if p := c.primaryOtherThan(not, limit); p >= 0 {
		return p
	}
	for i := range c.Servers {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		v, err := c.Admin.Status(ctx, c.AdminAddr(i))
		cancel()
		c.t.Logf("%s: record primary %q epoch %d, local %+v, reason %q, err %v", c.Name(i), v.Record.Primary, v.Record.Epoch, v.Local, v.Reason, err)
	}
	c.t.Fatalf("no writable primary other than %s within %s", c.Name(max(not, 0)), limit)
	return -1
}

// primaryOtherThan waits up to limit for a writable primary other than not, and returns it, or -1.
func (c *Cluster) primaryOtherThan(not int, limit time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return c.firstClaim(ctx, not)
}

// firstClaim asks every agent but not's, each in a loop of its own (every 20 ms, 500 ms per
// answer), whether its member is the writable primary, and returns the first that says so, or
// -1 when ctx ends. A silent agent holds up no other's answer: with one round over all agents
// at a time, as Primary does, each round waited out a frozen agent's 500 ms, and a new primary
// was seen in steps of about 0.55 s.
func (c *Cluster) firstClaim(ctx context.Context, not int) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	claims := make(chan int, len(c.Servers))
	for i := range c.Servers {
		if i == not {
			continue
		}
		go func() {
			for ctx.Err() == nil {
				if c.claimsPrimary(ctx, i) {
					claims <- i
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	select {
	case i := <-claims:
		return i
	case <-ctx.Done():
		return -1
	}
}

// DNSPrimary asks member i's DNS server which member the primary SRV record names ("" if none).
func (c *Cluster) DNSPrimary(ctx context.Context, i int) string {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(c.Servers[i].Host(), strconv.Itoa(dnsPort)))
	}}
	_, srvs, err := r.LookupSRV(ctx, "mysql", "tcp", "primary.e2e.shoal")
	if err != nil || len(srvs) == 0 {
		return ""
	}
	return strings.TrimSuffix(srvs[0].Target, ".e2e.shoal.")
}
