package kube

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver the writer and the monitor use
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// release is the chart installed on the rig under the release name "shoal" (also the chart's
// full name, so its Services are shoal-primary and shoal-replicas).
type release struct {
	c        *Cluster
	flavor   string
	selector string
	adminPW  string
	appPW    string
}

const releaseName = "shoal"

// installChart helm-installs the chart with its test values for flavor (mariadb or mysql) and
// extra helm arguments, and reads the passwords the chart generated.
func installChart(t testing.TB, c *Cluster, flavor string, extra ...string) *release {
	t.Helper()
	ctx := t.Context()
	args := append([]string{"--kubeconfig", c.Kubeconfig, "install", releaseName, "../../charts/shoal",
		"-f", "../../charts/shoal/ci/test-values-" + flavor + ".yaml", "--namespace", "default"}, extra...)
	helm := exec.CommandContext(ctx, Bin("helm"), args...)
	if out, err := helm.CombinedOutput(); err != nil {
		t.Fatalf("helm install (%s): %v: %s", flavor, err, out)
	}
	sec, err := c.Client.CoreV1().Secrets("default").Get(ctx, releaseName+"-auth", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &release{c: c, flavor: flavor, selector: "app.kubernetes.io/instance=" + releaseName,
		adminPW: string(sec.Data["admin-password"]), appPW: string(sec.Data["app-password"])}
}

// installLoaded installs the chart for flavor, waits for three pods Ready and a primary named by
// its label and the slice, and starts the monitor and the writer. Faults follow each other
// within seconds: the default 30 s anti-flap cooldown (ha.failover_cooldown) would hold every
// failover after the first back to it, by design, so it is 3 s here.
func installLoaded(tb testing.TB, c *Cluster, flavor string) (r *release, primary string, w *writer, m *monitor) {
	tb.Helper()
	r = installChart(tb, c, flavor, "--set-json", `agent.config={"ha":{"failover_cooldown":"3s"}}`)
	begin := time.Now()
	waitPodsReady(tb, c, r.selector, 3)
	primary = waitPrimary(tb, c, r.selector, releaseName, "")
	tb.Logf("%s: 3 pods Ready, %s primary after %v", flavor, primary, time.Since(begin).Round(time.Millisecond))
	m = startMonitor(tb, r)
	w = startWriter(tb, r)
	w.firstAckBy(tb, primary, begin)
	return r, primary, w, m
}

// adminDB opens the admin account of the server at ip (a pod IP).
func (r *release) adminDB(ip string) (*sql.DB, error) {
	dsn := fmt.Sprintf("shoal_admin:%s@tcp(%s)/?timeout=1s&readTimeout=2s&writeTimeout=2s", r.adminPW, net.JoinHostPort(ip, "3306"))
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func (r *release) pod(t testing.TB, name string) *corev1.Pod {
	t.Helper()
	p, err := r.c.Client.CoreV1().Pods("default").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ack is one write the server acknowledged: its id, when, and the pod whose server took it.
type ack struct {
	id int64
	at time.Time
	by string
}

// writer inserts unique ids through the -primary Service's ClusterIP, reached through kube-proxy
// as a client in the cluster would, each connection's server named by @@hostname (its pod).
// A failed write closes the connection.
type writer struct {
	dsn        string
	stop, done chan struct{}
	// gate is held for each write; pause holds it, so no write is in flight while paused.
	gate    sync.Mutex
	mu      sync.Mutex
	acks    []ack
	lastErr error
	errs    []failure // the first error of each run of failed attempts
}

// failure is a write attempt that failed, and when.
type failure struct {
	at  time.Time
	err error
}

func startWriter(t testing.TB, r *release) *writer {
	t.Helper()
	svc, err := r.c.Client.CoreV1().Services("default").Get(t.Context(), releaseName+"-primary", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{
		dsn:  fmt.Sprintf("app:%s@tcp(%s)/app?timeout=1s&readTimeout=5s&writeTimeout=5s", r.appPW, net.JoinHostPort(svc.Spec.ClusterIP, "3306")),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	err = poll(t.Context(), time.Minute, "the table through the -primary Service", func() error {
		db, err := sql.Open("mysql", w.dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(t.Context(), "CREATE TABLE IF NOT EXISTS acks (id BIGINT PRIMARY KEY)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	go w.run()
	t.Cleanup(w.close)
	return w
}

func (w *writer) run() {
	defer close(w.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-w.stop
		cancel()
	}()
	db, err := sql.Open("mysql", w.dsn)
	if err != nil {
		w.setErr(err)
		return
	}
	defer db.Close()
	// No idle connections: the next connection after an error is a new one, which kube-proxy
	// sends wherever the Service points now.
	db.SetMaxIdleConns(0)
	var (
		conn *sql.Conn
		by   string
		next int64
	)
	for ctx.Err() == nil {
		if conn == nil {
			// One pinned connection: database/sql would retry a broken one on a new connection,
			// possibly to another server than the one named.
			if conn, err = db.Conn(ctx); err == nil {
				err = conn.QueryRowContext(ctx, "SELECT @@hostname").Scan(&by)
			}
			if err != nil {
				w.setErr(err)
				if conn != nil {
					conn.Close()
					conn = nil
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
		}
		next++
		w.gate.Lock()
		_, err := conn.ExecContext(ctx, "INSERT INTO acks (id) VALUES (?)", next)
		w.gate.Unlock()
		if err != nil {
			w.setErr(err)
			conn.Close()
			conn = nil
			continue
		}
		w.mu.Lock()
		w.acks = append(w.acks, ack{id: next, at: time.Now(), by: by})
		w.lastErr = nil
		w.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	if conn != nil {
		conn.Close()
	}
}

// pause waits for the write in flight, if any, and holds the next until resume.
func (w *writer) pause()  { w.gate.Lock() }
func (w *writer) resume() { w.gate.Unlock() }

func (w *writer) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastErr == nil || w.lastErr.Error() != err.Error() {
		w.errs = append(w.errs, failure{time.Now(), err})
	}
	w.lastErr = err
}

// failuresBetween describes the distinct errors of write attempts in [from, to], timed from from.
func (w *writer) failuresBetween(from, to time.Time) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, f := range w.errs {
		if !f.at.Before(from) && !f.at.After(to) {
			out = append(out, fmt.Sprintf("+%v %v", f.at.Sub(from).Round(time.Millisecond), f.err))
		}
	}
	return out
}

func (w *writer) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *writer) acked() []ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acks)
}

// firstAckBy waits until pod acknowledged a write after t through the Service, and returns when.
func (w *writer) firstAckBy(tb testing.TB, pod string, t time.Time) time.Time {
	tb.Helper()
	var at time.Time
	err := poll(tb.Context(), 2*time.Minute, "a write acknowledged by "+pod+" through the Service", func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, a := range w.acks {
			if a.by == pod && a.at.After(t) {
				at = a.at
				return nil
			}
		}
		return fmt.Errorf("%d writes acknowledged in all, last error %v", len(w.acks), w.lastErr)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return at
}

// checkAcked fails the test unless every write acknowledged so far is on pod's server.
func checkAcked(t testing.TB, r *release, w *writer, pod string) {
	t.Helper()
	if err := missingAcks(t.Context(), r, w.acked(), r.pod(t, pod).Status.PodIP); err != nil {
		t.Fatalf("%s: %v", pod, err)
	}
}

// waitHoldsAcked waits until replica pod has applied every write acknowledged so far.
func waitHoldsAcked(t testing.TB, r *release, w *writer, pod string) {
	t.Helper()
	acks, ip := w.acked(), r.pod(t, pod).Status.PodIP
	err := poll(t.Context(), time.Minute, pod+" to hold every acknowledged write", func() error {
		return missingAcks(t.Context(), r, acks, ip)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// missingAcks reports the acknowledged writes the server at ip does not hold.
func missingAcks(ctx context.Context, r *release, acks []ack, ip string) error {
	db, err := r.adminDB(ip)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT id FROM app.acks")
	if err != nil {
		return fmt.Errorf("read the writes: %w", err)
	}
	defer rows.Close()
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var lost []ack
	for _, a := range acks {
		if !have[a.id] {
			lost = append(lost, a)
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("%d of %d acknowledged writes missing, e.g. %+v", len(lost), len(acks), lost[:min(len(lost), 5)])
	}
	return nil
}

// monitor reads every pod's read_only at once every 50 ms, over the pod IP as the admin user,
// and records each round in which two servers were writable. A server it cannot read is
// unknown and counts as neither (a killed or lost server accepts no writes).
type monitor struct {
	r          *release
	stop, done chan struct{}
	mu         sync.Mutex
	rounds     int
	violations []string
}

func startMonitor(t testing.TB, r *release) *monitor {
	m := &monitor{r: r, stop: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	t.Cleanup(func() {
		close(m.stop)
		<-m.done
	})
	return m
}

type monitored struct {
	ip string
	db *sql.DB
}

func (m *monitor) run() {
	defer close(m.done)
	dbs := map[string]monitored{} // by pod name
	defer func() {
		for _, d := range dbs {
			d.db.Close()
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
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		pods, err := m.r.c.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: m.r.selector})
		cancel()
		if err != nil {
			continue
		}
		for _, p := range pods.Items {
			d, ok := dbs[p.Name]
			if ok && d.ip == p.Status.PodIP {
				continue
			}
			if ok {
				d.db.Close()
				delete(dbs, p.Name)
			}
			if p.Status.PodIP == "" {
				continue
			}
			if db, err := m.r.adminDB(p.Status.PodIP); err == nil {
				dbs[p.Name] = monitored{ip: p.Status.PodIP, db: db}
			}
		}
		m.sample(dbs)
	}
}

func (m *monitor) sample(dbs map[string]monitored) {
	var (
		mu       sync.Mutex
		writable []string
		wg       sync.WaitGroup
	)
	for name, d := range dbs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			var w bool
			if d.db.QueryRowContext(ctx, "SELECT @@read_only = 0").Scan(&w) == nil && w {
				mu.Lock()
				writable = append(writable, name)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rounds++
	if len(writable) > 1 {
		slices.Sort(writable)
		m.violations = append(m.violations, fmt.Sprintf("%s: %v writable at once", time.Now().Format("15:04:05.000"), writable))
	}
}

// check fails the test if two servers were ever seen writable at once, or the monitor never ran.
func (m *monitor) check(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.violations) > 0 {
		t.Fatalf("split brain: %v", m.violations)
	}
	if m.rounds == 0 {
		t.Fatal("the monitor read no server")
	}
}
