package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/backup/schedule"
	"github.com/shoal-db/shoal/consensus/peertls"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/consensus/tlstest"
)

// memStore is a backup store in memory: the catalog of the cluster, and each member's runner.
// A run blocks until the test opens its member's gate (nil: the backup completes; an error: it
// fails) or its ctx ends.
type memStore struct {
	mu      sync.Mutex
	backups map[string]schedule.Backup
	runs    []string // "member job" of every run begun
	gates   map[string]chan error
	deleted []string
}

func newMemStore(backups ...schedule.Backup) *memStore {
	s := &memStore{backups: map[string]schedule.Backup{}, gates: map[string]chan error{}}
	for _, b := range backups {
		s.backups[b.ID] = b
	}
	return s
}

func (s *memStore) gate(member string) chan error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gates[member] == nil {
		s.gates[member] = make(chan error)
	}
	return s.gates[member]
}

func (s *memStore) List(context.Context) ([]schedule.Backup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.backups)), nil
}

func (s *memStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.backups, id)
	s.deleted = append(s.deleted, id)
	return nil
}

func (s *memStore) snapshot() (runs, deleted []string, backups map[string]schedule.Backup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.runs), slices.Clone(s.deleted), maps.Clone(s.backups)
}

type memRunner struct {
	s      *memStore
	member string
}

func (r memRunner) RunBackup(ctx context.Context, jobID string) (schedule.Backup, error) {
	gate := r.s.gate(r.member)
	b := schedule.Backup{ID: "b-" + jobID, Member: r.member, Job: jobID, Start: time.Now()}
	r.s.mu.Lock()
	r.s.runs = append(r.s.runs, r.member+" "+jobID)
	r.s.backups[b.ID] = b // an upload under way: no manifest yet
	r.s.mu.Unlock()
	select {
	case err := <-gate:
		if err != nil {
			return schedule.Backup{}, err
		}
	case <-ctx.Done():
		return schedule.Backup{}, ctx.Err()
	}
	b.End, b.Valid, b.GTIDSet = time.Now(), true, "uuid:1-10"
	r.s.mu.Lock()
	r.s.backups[b.ID] = b
	r.s.mu.Unlock()
	return b, nil
}

// yearly's latest slot lies months back and its next months ahead: the first pass of a leader
// starts that slot, and no other comes during a test.
const yearly = "0 0 1 1 *"

// withBackups gives every member of an in-process cluster the store, the schedule and the
// retention; the members report to the leader over the real admin API.
func withBackups(t *testing.T, s *memStore, spec string, r schedule.Retention) func(string, *Options) {
	sp, err := schedule.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	return func(id string, o *Options) {
		o.Backup = &BackupOptions{Runner: memRunner{s: s, member: id}, Catalog: s, Reporter: adminapi.Client{},
			Policy: schedule.Policy{Spec: sp, JobTimeout: time.Hour}, Retention: r, Interval: 4 * fastPolicy().Tick}
	}
}

// waitJobs waits until a running member's record has jobs that ok accepts, and returns them.
func (c *testCluster) waitJobs(what string, ok func([]record.BackupJob) bool) []record.BackupJob {
	c.t.Helper()
	var jobs []record.BackupJob
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, m := range c.members {
			if m.cancel == nil {
				continue
			}
			if jobs = m.raft.Record().BackupJobs; ok(jobs) {
				return jobs
			}
		}
	}
	c.t.Fatalf("waiting for %s; jobs: %+v", what, jobs)
	return nil
}

func (c *testCluster) member(id string) *member {
	for _, m := range c.members {
		if m.id == id {
			return m
		}
	}
	c.t.Fatalf("no member %s", id)
	return nil
}

func oneJob(state record.JobState) func([]record.BackupJob) bool {
	return func(jobs []record.BackupJob) bool { return len(jobs) == 1 && jobs[0].State == state }
}

// The leader records the due slot's job on a replica; killing the Raft leader while it runs
// does not give the slot a second job; the job ends done with its backup; retention deletes
// what is past its limits and cleans an abandoned upload.
func TestScheduledBackupOncePerSlotAcrossLeaderCrash(t *testing.T) {
	old := time.Now().Add(-30 * 24 * time.Hour)
	store := newMemStore(
		schedule.Backup{ID: "old-1", Start: old, End: old.Add(time.Hour), Valid: true},
		schedule.Backup{ID: "old-2", Start: old.Add(24 * time.Hour), End: old.Add(25 * time.Hour), Valid: true},
		schedule.Backup{ID: "abandoned", Job: "19990101T000000Z-1", Start: old},
	)
	c := startCluster(t, 3, withBackups(t, store, yearly, schedule.Retention{KeepCount: 2, IncompleteGrace: time.Hour}))
	primary := c.waitPrimary("")
	jobs := c.waitJobs("the slot's job to start", oneJob(record.JobRunning))
	runner := jobs[0].Member
	if runner == primary.id || jobs[0].Attempt != 1 {
		t.Fatalf("job %+v: want the first attempt on a replica (primary %s)", jobs[0], primary.id)
	}
	sp, _ := schedule.ParseSpec(yearly)
	if latest, _ := sp.Latest(time.Now()); !jobs[0].Slot.Equal(latest) {
		t.Fatalf("job for slot %s, want the latest slot %s", jobs[0].Slot, latest)
	}

	leader := c.leaderOtherThan(nil)
	if leader.id == runner {
		if err := leader.raft.TransferLeadership(t.Context(), ""); err != nil {
			t.Fatal(err)
		}
		leader = c.leaderOtherThan(leader)
	}
	leader.crash()
	next := c.leaderOtherThan(leader)
	// Give the new leader's task passes to (wrongly) start the slot again.
	c.waitTaskOn(next.id)
	time.Sleep(20 * fastPolicy().Tick)

	store.gate(runner) <- nil
	jobs = c.waitJobs("the job to be done", oneJob(record.JobDone))
	if jobs[0].Member != runner || jobs[0].BackupID != "b-"+jobs[0].ID() {
		t.Errorf("done job %+v, want it on %s with its backup", jobs[0], runner)
	}
	runs, _, backups := store.snapshot()
	if want := []string{runner + " " + jobs[0].ID()}; fmt.Sprint(runs) != fmt.Sprint(want) {
		t.Errorf("runs %q, want %q", runs, want)
	}
	if !backups[jobs[0].BackupID].Valid {
		t.Errorf("the job's backup is not in the catalog: %+v", backups)
	}
	var deleted []string
	// Retention ran when the first leader began (the abandoned upload) and once the job was
	// done (old-1 is then the third newest valid backup).
	waitFor(t, func() bool { _, deleted, _ = store.snapshot(); return len(deleted) == 2 }, "retention after the job")
	if slices.Sort(deleted); fmt.Sprint(deleted) != "[abandoned old-1]" {
		t.Errorf("retention deleted %q, want the abandoned upload and old-1", deleted)
	}
}

// A job that fails on its member is retried once on another; so is one whose member dies.
func TestScheduledBackupRetriedElsewhere(t *testing.T) {
	store := newMemStore()
	c := startCluster(t, 3, withBackups(t, store, yearly, schedule.Retention{}))
	primary := c.waitPrimary("")
	first := c.waitJobs("the slot's job to start", oneJob(record.JobRunning))[0]
	store.gate(first.Member) <- errors.New("disk full")
	jobs := c.waitJobs("the retry to start", func(jobs []record.BackupJob) bool { return len(jobs) == 2 })
	if jobs[0].State != record.JobFailed || !strings.Contains(jobs[0].Reason, "disk full") {
		t.Errorf("first attempt %+v: want it failed with the member's error", jobs[0])
	}
	retry := jobs[1]
	if retry.Attempt != 2 || retry.Member == first.Member || retry.Member == primary.id || retry.State != record.JobRunning {
		t.Fatalf("retry %+v: want attempt 2 on the other replica (first on %s, primary %s)", retry, first.Member, primary.id)
	}

	// The retry's member dies: the slot is recorded failed, and not tried a third time.
	c.member(retry.Member).crash()
	jobs = c.waitJobs("the retry to fail", func(jobs []record.BackupJob) bool { return len(jobs) == 2 && jobs[1].State == record.JobFailed })
	if !strings.Contains(jobs[1].Reason, "dead") && !strings.Contains(jobs[1].Reason, "left") {
		t.Errorf("retry failed with %q, want its member's death", jobs[1].Reason)
	}
	time.Sleep(20 * fastPolicy().Tick)
	if jobs := c.leaderOtherThan(nil).raft.Record().BackupJobs; len(jobs) != 2 {
		t.Errorf("jobs after both attempts failed: %+v", jobs)
	}
}

// raftStub is the part of a Raft node the watcher reads; the leader applies the reports to it.
type raftStub struct {
	raftNode
	mu  sync.Mutex
	rec record.Record
}

func (s *raftStub) Record() record.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.Clone()
}

func (s *raftStub) apply(c record.Command) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, err := record.Apply(s.rec, c)
	if err == nil {
		s.rec = next
	}
	return err
}

func (*raftStub) IsLeader() bool            { return false }
func (*raftStub) Leader() (id, addr string) { return "db-0", "db-0" }

// reports is a leader that records the reports it is sent, and applies them unless refusing.
type reports struct {
	node   *raftStub
	now    time.Time // the leader's clock
	mu     sync.Mutex
	got    []adminapi.BackupReport
	refuse error
}

func (r *reports) ReportBackup(_ context.Context, addr string, rep adminapi.BackupReport) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if addr != "leader:7948" {
		return fmt.Errorf("report sent to %s", addr)
	}
	r.got = append(r.got, rep)
	if r.refuse != nil {
		return r.refuse
	}
	cmd := backupEndCommand(rep)
	cmd.At = r.now
	return r.node.apply(cmd)
}

func (r *reports) last() (adminapi.BackupReport, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return adminapi.BackupReport{}, 0
	}
	return r.got[len(r.got)-1], len(r.got)
}

// The watcher, step by step: a job given before this agent started is reported failed and not
// run; a new job runs once and its end is reported until recorded; a job the leader ended stops;
// a member without a store fails its job.
func TestBackupWatcher(t *testing.T) {
	booted := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	node := &raftStub{rec: record.Record{Cluster: "c", Primary: "db-0", Members: map[string]record.Member{
		"db-0": {ID: "db-0", AdminAddr: "leader:7948"}, "db-1": {ID: "db-1"}, "db-2": {ID: "db-2"}}}}
	leader := &reports{node: node, now: booted.Add(90 * time.Second)}
	store := newMemStore()
	m, err := newBackupMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{log: logger(t), raft: node, now: func() time.Time { return booted },
		opts: Options{NodeID: "db-1", Policy: fastPolicy(), Backup: &BackupOptions{Reporter: leader}}}
	w := &backupWatcher{a: a, o: BackupOptions{Runner: memRunner{s: store, member: "db-1"}}, metrics: m, bootedAt: booted,
		started: map[string]bool{}, pending: map[string]adminapi.BackupReport{}, done: make(chan backupResult, 1)}
	ctx := t.Context()
	start := func(slot time.Time, attempt int, member string) record.BackupJob {
		t.Helper()
		j := record.BackupJob{Slot: slot, Attempt: attempt, Member: member}
		if err := node.apply(record.Command{Op: record.OpBackupStart, Job: &j, At: slot}); err != nil {
			t.Fatal(err)
		}
		j, _ = node.Record().BackupJob(slot, attempt)
		return j
	}
	state := func(j record.BackupJob) record.JobState {
		cur, _ := node.Record().BackupJob(j.Slot, j.Attempt)
		return cur.State
	}

	// Given an hour before this agent started: never resumed, reported failed.
	stale := start(booted.Add(-time.Hour), 1, "db-1")
	w.check(ctx)
	w.check(ctx)
	if rep, n := leader.last(); n != 1 || !strings.Contains(rep.Error, "restarted") || state(stale) != record.JobFailed {
		t.Fatalf("job from before the restart: report %+v (%d sent), state %s", rep, n, state(stale))
	}
	if runs, _, _ := store.snapshot(); len(runs) != 0 {
		t.Fatalf("a job from before the restart was run: %q", runs)
	}

	// Given after it started: run once, however often the watcher looks.
	job := start(booted.Add(time.Minute), 1, "db-1")
	for range 3 {
		w.check(ctx)
	}
	store.gate("db-1") <- nil
	w.finished(<-w.done)
	// The first report is refused (a leader change, say): it is sent again.
	leader.refuse = errors.New("leader moved")
	w.check(ctx)
	leader.refuse = nil
	w.check(ctx)
	if rep, n := leader.last(); n != 3 || rep.BackupID != "b-"+job.ID() || state(job) != record.JobDone {
		t.Fatalf("done job: last report %+v (%d sent), state %s", rep, n, state(job))
	}
	w.check(ctx)
	if got, want := testutil.ToFloat64(m.lastDone), float64(leader.now.Unix()); got != want {
		t.Errorf("last done gauge %v, want %v (the job's end by the leader's clock)", got, want)
	}
	if runs, _, _ := store.snapshot(); len(runs) != 1 {
		t.Fatalf("runs %q, want the job run once", runs)
	}
	if _, n := leader.last(); n != 3 {
		t.Fatalf("%d reports, want none after the record shows the end", n)
	}

	// The leader fails the job (its timeout, say): the watcher stops the run and reports nothing.
	job = start(booted.Add(2*time.Minute), 1, "db-1")
	w.check(ctx)
	if err := node.apply(record.Command{Op: record.OpBackupFailed, Job: &job, At: booted, Reason: "timed out"}); err != nil {
		t.Fatal(err)
	}
	w.check(ctx)
	res := <-w.done
	if !errors.Is(res.err, context.Canceled) {
		t.Fatalf("run ended with %v, want it cancelled", res.err)
	}
	w.finished(res)
	w.check(ctx)
	if _, n := leader.last(); n != 3 {
		t.Fatalf("%d reports, want none for a job the leader ended", n)
	}

	// Without a store, a job is reported failed at once.
	w.o.Runner = nil
	job = start(booted.Add(3*time.Minute), 1, "db-1")
	w.check(ctx)
	w.check(ctx)
	if rep, _ := leader.last(); !strings.Contains(rep.Error, "no backup store") || state(job) != record.JobFailed {
		t.Fatalf("job without a store: report %+v, state %s", rep, state(job))
	}
}

// Over real TLS, a job's end reaches the leader only with a member certificate; the leader
// records it once, and refuses the same report again.
func TestBackupReportsNeedAMemberCertificate(t *testing.T) {
	store := newMemStore()
	c := startCluster(t, 3, withBackups(t, store, yearly, schedule.Retention{}))
	c.waitPrimary("")
	job := c.waitJobs("the slot's job to start", oneJob(record.JobRunning))[0]
	leader := c.leaderOtherThan(nil)
	ca := tlstest.NewCA(t)
	srv := httptest.NewUnstartedServer(leader.agent.Handler(AdminAuth{Token: "secret", Peers: ca.Config(leader.id)}, prometheus.NewRegistry()))
	srv.TLS = AdminTLS(ca.Config(leader.id))
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	rep := adminapi.BackupReport{Member: job.Member, Slot: job.Slot, Attempt: job.Attempt, BackupID: "b-by-hand"}
	withCert := tls.Config{Certificates: []tls.Certificate{ca.Issue(job.Member).TLS}, RootCAs: ca.Pool()}

	for name, cl := range map[string]adminapi.Client{
		"no certificate":    adminapi.NewClient("", peertls.Client(&tls.Config{RootCAs: ca.Pool()}), 5*time.Second),
		"admin token alone": adminapi.NewClient("secret", peertls.Client(&tls.Config{RootCAs: ca.Pool()}), 5*time.Second),
	} {
		if err := cl.ReportBackup(t.Context(), addr, rep); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("report with %s: %v, want 403", name, err)
		}
	}
	member := adminapi.NewClient("", peertls.Client(&withCert), 5*time.Second)
	if err := member.ReportBackup(t.Context(), addr, rep); err != nil {
		t.Fatalf("report with a member certificate: %v", err)
	}
	if got, _ := leader.raft.Record().BackupJob(job.Slot, job.Attempt); got.State != record.JobDone || got.BackupID != "b-by-hand" {
		t.Errorf("job after the report: %+v", got)
	}
	if err := member.ReportBackup(t.Context(), addr, rep); !errors.Is(err, adminapi.ErrAPI) || !strings.Contains(err.Error(), record.ErrJobConflict.Error()) {
		t.Errorf("the same report again: %v, want it refused with %q", err, record.ErrJobConflict)
	}
}
