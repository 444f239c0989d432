package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/backup/schedule"
	"github.com/shoal-db/shoal/consensus/record"
)

// BackupRunner takes a backup of this member's server for a scheduled job.
type BackupRunner interface {
	// RunBackup takes the backup of the job jobID (record.BackupJob.ID names it, so a second
	// run of one job replaces what the first left rather than adding another) and returns it as
	// the catalog will list it, once its manifest is written.
	RunBackup(ctx context.Context, jobID string) (schedule.Backup, error)
}

// BackupCatalog lists and deletes the cluster's backups, for retention on the leader.
type BackupCatalog interface {
	List(ctx context.Context) ([]schedule.Backup, error)
	Delete(ctx context.Context, id string) error
}

// backupReporter tells the Raft leader how this member's job ended; adminapi.Client implements
// it.
type backupReporter interface {
	ReportBackup(ctx context.Context, leaderAdminAddr string, r adminapi.BackupReport) error
}

// BackupOptions turn on scheduled backups: the leader runs the schedule and retention, every
// member runs the jobs the record gives it.
type BackupOptions struct {
	// Runner takes this member's backups; nil fails every job given to this member, so the
	// leader retries it elsewhere.
	Runner BackupRunner
	// Catalog is the backup store as retention sees it; nil turns retention off.
	Catalog BackupCatalog
	// Reporter carries a job's end to the leader, with this member's certificate (required).
	Reporter backupReporter
	// Policy is the schedule (backup.schedule) and the job timeout (backup.job_timeout), which
	// also bounds a run on the member.
	Policy    schedule.Policy
	Retention schedule.Retention
	// Interval is how often the leader looks at the schedule between slots, for a job whose
	// member died or a slot no member could take yet (default a minute); a member's report
	// wakes it at once.
	Interval time.Duration
	// RetentionEvery is how often the leader applies retention (default 10 minutes).
	RetentionEvery time.Duration
	// PointInTimeWindow keeps every instant this far back restorable from a backup and the
	// binlog archive (retention keeps the backups it needs); 0: no window.
	PointInTimeWindow time.Duration
	// Binlogs, when set, deletes the archived binlog files no kept backup needs, after retention.
	Binlogs BinlogPruner
}

type backupMetrics struct {
	proposals *prometheus.CounterVec
	deletions *prometheus.CounterVec
	runs      *prometheus.CounterVec
	lastDone  prometheus.Gauge
}

func newBackupMetrics(reg prometheus.Registerer) (*backupMetrics, error) {
	m := &backupMetrics{
		proposals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Name: "backup_schedule_proposals_total",
			Help: "Backup job commands this agent proposed as leader, by op and result."}, []string{"op", "result"}),
		deletions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Name: "backup_retention_deletions_total",
			Help: "Backups retention deleted (or failed to), by result."}, []string{"result"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Name: "backup_scheduled_runs_total",
			Help: "Scheduled backup jobs this member ran, by result."}, []string{"result"}),
		lastDone: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "shoal", Name: "backup_schedule_last_done_timestamp_seconds",
			Help: "When the newest scheduled backup job the record shows done ended (the cluster's, on every member); 0 when none."}),
	}
	for _, c := range []prometheus.Collector{m.proposals, m.deletions, m.runs, m.lastDone} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register backup metrics: %w", err)
		}
	}
	return m, nil
}

// setUpBackups adds the schedule to the leader's tasks and readies this member's watcher.
func (a *Agent) setUpBackups() error {
	o := a.opts.Backup
	if o == nil {
		return nil
	}
	if o.Reporter == nil {
		return errors.New("agent options: Backup.Reporter is required")
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.RetentionEvery <= 0 {
		o.RetentionEvery = 10 * time.Minute
	}
	m, err := newBackupMetrics(a.opts.Registry)
	if err != nil {
		return err
	}
	a.backupScheduler = &backupScheduler{a: a, o: *o, metrics: m, wake: make(chan struct{}, 1)}
	a.backupWatcher = &backupWatcher{a: a, o: *o, metrics: m, bootedAt: a.now(), started: map[string]bool{},
		pending: map[string]adminapi.BackupReport{}, done: make(chan backupResult, 1)}
	a.opts.LeaderTasks = slices.Concat(a.opts.LeaderTasks, []LeaderTask{a.backupScheduler})
	return nil
}

// backupScheduler is the leader's task: at each slot, and every Interval, it gathers, lets
// schedule.Decide choose, and proposes; every RetentionEvery it applies retention.
type backupScheduler struct {
	a       *Agent
	o       BackupOptions
	metrics *backupMetrics
	wake    chan struct{}

	// Touched only by Run's goroutine.
	lastReason    string
	lastRetention time.Time
	lastDone      string // the newest done job when retention last ran
}

// newestDone is the newest done job in rec, and whether there is one.
func newestDone(rec record.Record) (record.BackupJob, bool) {
	for _, j := range slices.Backward(rec.BackupJobs) {
		if j.State == record.JobDone {
			return j, true
		}
	}
	return record.BackupJob{}, false
}

func (s *backupScheduler) Name() string { return "backup-schedule" }

// Wake asks for a pass now: a member reported a job's end, which may call for a retry.
func (s *backupScheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *backupScheduler) Run(ctx context.Context) error {
	s.lastRetention, s.lastDone = time.Time{}, "" // a new leader applies retention at once
	for {
		next := s.pass(ctx)
		wait := s.o.Interval
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(s.a.now()), 0))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-time.After(wait):
		}
	}
}

// pass is one gather, decide, propose round; it returns the next slot.
func (s *backupScheduler) pass(ctx context.Context) time.Time {
	a := s.a
	obs := schedule.Observation{Record: a.raft.Record(), Peers: peers(a.gossip.Members())}
	obs.Now = a.now()
	d := schedule.Decide(obs, s.o.Policy)
	if d.Reason != s.lastReason {
		a.log.Info("backup schedule", "reason", d.Reason)
		s.lastReason = d.Reason
	}
	for _, act := range d.Actions {
		_, err := a.raft.Apply(ctx, act.Command(obs.Now))
		s.metrics.proposals.WithLabelValues(string(act.Op), reseedResult(err)).Inc()
		if err != nil {
			// The next pass decides again on the record as it then is.
			a.log.Warn("backup job proposal failed", "op", act.Op, "job", act.Job.ID(), "member", act.Job.Member, "err", err)
			break
		}
		a.log.Info("backup job", "op", act.Op, "job", act.Job.ID(), "member", act.Job.Member, "reason", act.Reason)
	}
	// Retention runs every RetentionEvery, and as soon as a job is done: a new backup may put
	// an old one past the limits.
	done, _ := newestDone(a.raft.Record())
	if s.o.Catalog != nil && (obs.Now.Sub(s.lastRetention) >= s.o.RetentionEvery || done.ID() != s.lastDone) {
		s.lastRetention, s.lastDone = obs.Now, done.ID()
		s.retain(ctx)
	}
	return d.Next
}

// retain deletes what schedule.Retain says. The catalog is listed before the record is read, so
// a job that started in between has no backup listed yet, and every job whose backup is listed
// incomplete and still runs is seen running.
func (s *backupScheduler) retain(ctx context.Context) {
	a := s.a
	backups, err := s.o.Catalog.List(ctx)
	if err != nil {
		a.log.Warn("retention: listing backups failed", "err", err)
		return
	}
	running := map[string]bool{}
	for _, j := range a.raft.Record().BackupJobs {
		if j.State == record.JobRunning {
			running[j.ID()] = true
		}
	}
	now := a.now()
	for _, del := range schedule.Retain(now, backups, running, withWindow(s.o.Retention, now, s.o.PointInTimeWindow)) {
		err := s.o.Catalog.Delete(ctx, del.ID)
		s.metrics.deletions.WithLabelValues(reseedResult(err)).Inc()
		if err != nil {
			a.log.Warn("retention: deleting a backup failed", "backup", del.ID, "reason", del.Reason, "err", err)
			continue
		}
		a.log.Info("retention: backup deleted", "backup", del.ID, "reason", del.Reason)
	}
	if s.o.Binlogs != nil {
		n, err := s.o.Binlogs.PruneBinlogs(ctx)
		if err != nil {
			a.log.Warn("retention: pruning the binlog archive failed", "err", err)
		}
		if n > 0 {
			a.log.Info("retention: archived binlog files no backup needs deleted", "files", n)
		}
	}
}

// backupWatcher runs on every member: it runs the job the record gives this member, at most one
// at a time and each job once per process, and reports its end to the leader.
//
// The end goes to the leader through the admin API (member certificate), as lease renewals do,
// and not through the gossiped health report: only the leader writes the record, a job's end
// must reach it exactly (done with its backup id, or failed with why) and be retried until the
// record shows it, whereas a health report is a small last-value-wins summary the leader may
// never see in one state before the next replaces it.
type backupWatcher struct {
	a       *Agent
	o       BackupOptions
	metrics *backupMetrics
	// bootedAt is when this agent started: a job recorded before it was given to a previous run
	// of this agent, which died with it; nothing is resumed.
	bootedAt time.Time

	// Touched only by run's goroutine.
	started map[string]bool // ids of the jobs this process started or refused
	current *backupRun
	// pending holds the ends not yet reported, by job id.
	pending       map[string]adminapi.BackupReport
	lastReportErr string
	done          chan backupResult
}

type backupRun struct {
	job    record.BackupJob
	cancel context.CancelFunc
}

type backupResult struct {
	job    record.BackupJob
	backup schedule.Backup
	err    error
}

// startBackupWatcher runs this member's watcher until the agent stops.
func (a *Agent) startBackupWatcher() {
	if w := a.backupWatcher; w != nil {
		a.background.Go(func() { w.run(a.backgroundCtx) })
	}
}

func (w *backupWatcher) run(ctx context.Context) {
	tick := time.NewTicker(w.a.opts.Policy.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			w.stop(ctx)
			return
		case res := <-w.done:
			w.finished(res)
		case <-tick.C:
		}
		w.check(ctx)
	}
}

// stop ends a backup under way at shutdown and tells the leader, briefly: should the report not
// get through, the leader sees this agent leave and fails the job anyway.
func (w *backupWatcher) stop(ctx context.Context) {
	if w.current == nil {
		return
	}
	w.current.cancel()
	w.finished(<-w.done)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for _, rep := range w.pending {
		if err := w.a.reportBackup(ctx, rep); err != nil {
			w.a.log.Warn("backup job end not reported at shutdown", "member", rep.Member, "err", err)
		}
	}
}

func (w *backupWatcher) finished(res backupResult) {
	w.current = nil
	rep := adminapi.BackupReport{Member: res.job.Member, Slot: res.job.Slot, Attempt: res.job.Attempt, BackupID: res.backup.ID}
	if res.err != nil {
		rep.Error = res.err.Error()
		w.a.log.Error("scheduled backup failed", "job", res.job.ID(), "err", res.err)
	} else {
		w.a.log.Info("scheduled backup done", "job", res.job.ID(), "backup", res.backup.ID, "gtid", res.backup.GTIDSet)
	}
	w.metrics.runs.WithLabelValues(reseedResult(res.err)).Inc()
	w.pending[res.job.ID()] = rep
}

// check compares the record with what this member does: it stops a backup whose job the leader
// ended (timed out, or its member taken for dead), reports ends until the record shows them,
// and starts the job given to this member.
func (w *backupWatcher) check(ctx context.Context) {
	a, self := w.a, w.a.opts.NodeID
	rec := a.raft.Record()
	if done, ok := newestDone(rec); ok {
		w.metrics.lastDone.Set(float64(done.EndedAt.Unix()))
	}
	stillRuns := func(j record.BackupJob) bool {
		cur, ok := rec.BackupJob(j.Slot, j.Attempt)
		return ok && cur.State == record.JobRunning && cur.Member == self
	}
	if w.current != nil && !stillRuns(w.current.job) {
		a.log.Warn("the leader ended this member's backup job; stopping it", "job", w.current.job.ID())
		w.current.cancel()
	}
	for id, rep := range w.pending {
		if !stillRuns(record.BackupJob{Slot: rep.Slot, Attempt: rep.Attempt}) {
			delete(w.pending, id)
			continue
		}
		err := a.reportBackup(ctx, rep)
		if err == nil {
			delete(w.pending, id)
			w.lastReportErr = ""
		} else if err.Error() != w.lastReportErr {
			a.log.Warn("reporting a backup job's end failed; retrying", "job", id, "err", err)
			w.lastReportErr = err.Error()
		}
	}
	job, ok := rec.RunningBackupJob(self)
	if !ok || w.started[job.ID()] || w.current != nil {
		return
	}
	w.started[job.ID()] = true
	fail := func(why string) {
		w.pending[job.ID()] = adminapi.BackupReport{Member: self, Slot: job.Slot, Attempt: job.Attempt, Error: why}
	}
	switch {
	case job.StartedAt.Before(w.bootedAt.Add(-a.opts.Policy.MaxClockDrift)):
		fail("the agent restarted after the job was given to it; a backup is never resumed")
	case w.o.Runner == nil:
		fail("this member has no backup store configured")
	default:
		w.start(ctx, job)
	}
}

func (w *backupWatcher) start(ctx context.Context, job record.BackupJob) {
	var cancel context.CancelFunc
	if t := w.o.Policy.JobTimeout; t > 0 {
		ctx, cancel = context.WithTimeout(ctx, t)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	w.current = &backupRun{job: job, cancel: cancel}
	w.a.log.Info("scheduled backup starting", "job", job.ID(), "reason", job.Reason)
	go func() {
		defer cancel()
		b, err := w.o.Runner.RunBackup(ctx, job.ID())
		w.done <- backupResult{job: job, backup: b, err: err}
	}()
}

// reportBackup records a job's end: on the leader directly, elsewhere through the leader's
// admin API.
func (a *Agent) reportBackup(ctx context.Context, rep adminapi.BackupReport) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if a.raft.IsLeader() {
		cmd := backupEndCommand(rep)
		cmd.At = a.now()
		if _, err := a.raft.Apply(ctx, cmd); err != nil {
			return err
		}
		a.backupScheduler.Wake()
		return nil
	}
	addr, err := a.leaderAdmin()
	if err != nil {
		return fmt.Errorf("report backup job: %w", err)
	}
	return a.opts.Backup.Reporter.ReportBackup(ctx, addr, rep)
}

// leaderAdmin is the Raft leader's admin API address.
func (a *Agent) leaderAdmin() (string, error) {
	leaderID, _ := a.raft.Leader()
	if leaderID == "" {
		return "", fmt.Errorf("%w: no raft leader known", adminapi.ErrNotLeader)
	}
	addr := a.raft.Record().Members[leaderID].AdminAddr
	if addr == "" {
		return "", fmt.Errorf("no admin address recorded for leader %s", leaderID)
	}
	return addr, nil
}

// backupEndCommand is the record command of a member's report.
func backupEndCommand(rep adminapi.BackupReport) record.Command {
	cmd := record.Command{Op: record.OpBackupDone, Job: &record.BackupJob{Slot: rep.Slot, Attempt: rep.Attempt,
		Member: rep.Member, BackupID: rep.BackupID}, Reason: "backup " + rep.BackupID + " taken"}
	if rep.Error != "" {
		cmd.Op, cmd.Job.BackupID, cmd.Reason = record.OpBackupFailed, "", rep.Error
	}
	return cmd
}

// serveBackupReport is a member reporting its job's end to the leader (member certificate).
func (a *Agent) serveBackupReport(w http.ResponseWriter, r *http.Request) {
	var rep adminapi.BackupReport
	if !readJSON(w, r, &rep) {
		return
	}
	if a.backupScheduler == nil {
		writeJSON(w, http.StatusNotFound, adminapi.Error{Error: "scheduled backups are off on this agent"})
		return
	}
	a.proposeOnLeader(w, r, backupEndCommand(rep))
	a.backupScheduler.Wake()
}
