package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/reseed"
)

// ReseedOptions say how this agent re-seeds its own server from a donor, and donates to others.
type ReseedOptions struct {
	// Local is the agent's own MySQL address and account. The account is the same on every
	// member, so it also logs in to a MySQL donor (it needs BACKUP_ADMIN there, CLONE_ADMIN here).
	Local mysqlctl.Config
	// Service stops and starts the local mysqld (mysql.stop_command, mysql.start_command); nil
	// when they are not set: a MySQL clone then needs a supervisor that restarts mysqld, and a
	// MariaDB re-seed is refused.
	Service reseed.Service
	// DataDir is the local server's data dir ("" asks the server); TmpDir holds a donor's
	// scratch files.
	DataDir, TmpDir string
	// MaxMiBPerSecond caps a copy this agent donates (MariaDB) or pulls (MySQL); 0 is unlimited.
	MaxMiBPerSecond int
	// Client calls other agents' admin APIs with this member's certificate and no timeout: a
	// backup stream lasts as long as the copy.
	Client adminapi.Client
	Tools  reseed.Tools
}

// errReseedRunning: this agent is re-seeding its server already.
var errReseedRunning = errors.New("a re-seed of this server is already running")

type reseedMetrics struct {
	runs  *prometheus.CounterVec
	bytes prometheus.Counter
}

func newReseedMetrics(reg prometheus.Registerer) (*reseedMetrics, error) {
	m := &reseedMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Name: "reseeds_total",
			Help: "Re-seeds this agent took part in, as joiner or donor, by result."}, []string{"side", "result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "shoal", Name: "reseed_donated_bytes_total",
			Help: "Bytes of backup streams this agent sent to joiners."}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.bytes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register reseed metrics: %w", err)
		}
	}
	return m, nil
}

func reseedResult(err error) string {
	if err != nil {
		return "failed"
	}
	return "done"
}

// askReseed has the member of rs re-seed from its donor or the newest backup: through its
// agent, or this one.
func (a *Agent) askReseed(ctx context.Context, rec record.Record, rs ha.Reseed) error {
	if rs.Member == a.opts.NodeID {
		if rs.FromBackup {
			return a.startBackupReseed()
		}
		return a.startReseed(rec.Members[rs.Donor])
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	from, err := "from "+rs.Donor, error(nil)
	if rs.FromBackup {
		from, err = "from the newest backup", a.opts.Reseed.Client.ReseedFromBackup(ctx, rec.Members[rs.Member].AdminAddr)
	} else {
		err = a.opts.Reseed.Client.Reseed(ctx, rec.Members[rs.Member].AdminAddr, rs.Donor)
	}
	if err != nil {
		return fmt.Errorf("ask %s to re-seed %s: %w", rs.Member, from, err)
	}
	return nil
}

// startReseed starts re-seeding the local server from donor in the background.
func (a *Agent) startReseed(donor record.Member) error {
	return a.runReseed("donor", donor.ID, reseedSteps{donor: donor.ID, copy: func(ctx context.Context, flavor gtid.Flavor) error {
		return a.reseedFrom(ctx, flavor, donor)
	}})
}

// reseedRun is a re-seed of the local server under way.
type reseedRun struct {
	// donor is the member whose data is copied; "" for a backup. Gossiped (health.Report
	// ReseedFrom), so that a primary lending its data knows to stay read-only meanwhile.
	donor string
}

// reseedSteps are a re-seed's own steps: check (optional) runs while replication still runs, so
// a refusal leaves the server as it was; copy replaces the data once replication stopped.
type reseedSteps struct {
	donor string
	check func(ctx context.Context) error
	copy  func(ctx context.Context, flavor gtid.Flavor) error
}

// runReseed runs steps in the background unless a re-seed runs already; source and id say where
// the copy comes from in the logs ("donor", "db-2").
func (a *Agent) runReseed(source, id string, steps reseedSteps) error {
	if !a.reseed.CompareAndSwap(nil, &reseedRun{donor: steps.donor}) {
		return errReseedRunning
	}
	a.background.Go(func() {
		defer a.Trigger()
		defer a.reseed.Store(nil)
		begin := a.now()
		a.log.Info("re-seed starting", source, id)
		var err error
		if steps.check != nil {
			err = steps.check(a.backgroundCtx)
		}
		var flavor gtid.Flavor
		if err == nil {
			// A pass that began before the flag was set may still act on the server (start its
			// replication, say): replication stops once it ended, and later passes see the flag.
			a.passing.Lock()
			flavor, err = a.stopReplication(a.backgroundCtx)
			a.passing.Unlock()
		}
		if err == nil {
			err = steps.copy(a.backgroundCtx, flavor)
		}
		a.reseedMetrics.runs.WithLabelValues("joiner", reseedResult(err)).Inc()
		if err != nil {
			a.log.Error("re-seed failed", source, id, "err", err)
			return
		}
		a.log.Info("re-seed done", source, id, "took", a.now().Sub(begin).Round(time.Millisecond))
	})
	return nil
}

// stopReplication stops the local server's replication before a re-seed: nothing more is
// applied to data about to be replaced, and the replica leaves DNS. It returns the flavor.
func (a *Agent) stopReplication(ctx context.Context) (gtid.Flavor, error) {
	srv, err := mysqlctl.Open(ctx, a.opts.Reseed.Local)
	if err != nil {
		return "", fmt.Errorf("re-seed: %w", err)
	}
	defer srv.Close()
	if err := srv.StopReplica(ctx); err != nil {
		return "", fmt.Errorf("re-seed: %w", err)
	}
	return srv.Flavor(), nil
}

// reseedFrom replaces the local server's data with donor's: MySQL clones, MariaDB restores the
// donor agent's backup stream.
func (a *Agent) reseedFrom(ctx context.Context, flavor gtid.Flavor, donor record.Member) error {
	o := a.opts.Reseed
	log := a.log.With("component", "reseed", "donor", donor.ID)
	if err := a.awaitLending(ctx, donor, log); err != nil {
		return err
	}
	if flavor == gtid.MySQL {
		return reseed.Clone(ctx, o.Local, o.Service, reseed.CloneOptions{Donor: donor.MySQLAddr, User: o.Local.User,
			Password: o.Local.Password, MaxBandwidthMiB: o.MaxMiBPerSecond}, log)
	}
	if o.Service == nil {
		return errors.New("re-seed: MariaDB needs mysqld stopped and started around the swap: set mysql.stop_command and mysql.start_command")
	}
	stream, err := o.Client.BackupStream(ctx, donor.AdminAddr)
	if err != nil {
		return fmt.Errorf("re-seed: %w", err)
	}
	defer stream.Close()
	_, err = reseed.Restore(ctx, stream, reseed.RestoreOptions{Local: o.Local, DataDir: o.DataDir, Service: o.Service, Tools: o.Tools,
		DonorBinlogState: func(ctx context.Context) (string, error) { return a.binlogState(ctx, donor.MySQLAddr) }}, log)
	return err
}

// lendWait bounds how long a joiner waits for a primary donor to go read-only for its copy.
const lendWait = time.Minute

// awaitLending waits, when donor is the primary of a semi-sync cluster, until its agent reports
// it read-only. The leader picks the primary only when no replica can donate, and then none
// acknowledges its commits once this member stopped replicating: they wait, and so would a copy
// (MySQL's clone, MariaDB's backup lock), until the primary's agent sees this re-seed gossiped
// and fences its server for it (ha: lending). Its report says read-only only after that fence
// ended, and a fence that ran during the copy would kill the copy's session. An asynchronous
// primary never waits for acks, nor lends; nor does one that other replicas acknowledge.
func (a *Agent) awaitLending(ctx context.Context, donor record.Member, log *slog.Logger) error {
	if a.opts.SemiSync.Async || a.raft.Record().Primary != donor.ID {
		return nil
	}
	deadline := a.now().Add(lendWait)
	for logged := false; ; logged = true {
		ready := primaryDonorReady(peers(a.gossip.Members()), a.opts.NodeID, donor.ID, max(1, a.opts.SemiSync.Acks))
		switch {
		case ready == lentReadOnly:
			return nil
		case ready == acknowledged:
			log.Info("copying from the primary while it stays writable: enough other replicas acknowledge its commits")
			return nil
		case a.now().After(deadline):
			return fmt.Errorf("re-seed: primary donor %s did not go read-only for the copy within %s (its commits, waiting for acks, would hold the copy up)",
				donor.ID, lendWait)
		case !logged:
			log.Info("waiting for the primary to lend its data read-only: no replica acknowledges its commits")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("re-seed: wait for primary donor %s: %w", donor.ID, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// primaryDonorState is whether a copy from the primary may start.
type primaryDonorState int

const (
	donorNotReady primaryDonorState = iota
	lentReadOnly                    // the primary's agent fenced it for the copy and the fence ended
	// acknowledged: enough other replicas receive from the primary to acknowledge its commits,
	// so its commits, and the copy behind them, do not wait. Such a replica connected after the
	// leader chose the primary; its agent then does not lend, and waiting for that is in vain.
	acknowledged
)

// primaryDonorReady reads the gossip view for a copy from donor, the primary, by self. Only
// other members' reports count as acknowledgers: the primary's own count of semi-sync clients
// may still hold this member's receiver, stopped for the copy.
func primaryDonorReady(view map[string]ha.Peer, self, donor string, acks int) primaryDonorState {
	primary := view[donor]
	if !primary.Alive() || !primary.Report.MySQLUp {
		return donorNotReady
	}
	if !primary.Report.Writable {
		return lentReadOnly
	}
	n := 0
	for id, p := range view {
		r := p.Report
		if id != self && id != donor && p.Alive() && r.MySQLUp && !r.Reseeding && !r.Errant && r.Source == donor && r.IOConnected {
			n++
		}
	}
	if n >= acks {
		return acknowledged
	}
	return donorNotReady
}

// serveReseed is the leader asking this agent to re-seed its server (member certificate).
func (a *Agent) serveReseed(w http.ResponseWriter, r *http.Request) {
	var req adminapi.ReseedRequest
	if !readJSON(w, r, &req) {
		return
	}
	rec := a.raft.Record()
	donor, ok := rec.Members[req.Donor]
	switch {
	case rec.Primary == a.opts.NodeID:
		writeJSON(w, http.StatusConflict, adminapi.Error{Error: "this member is the primary: it is never re-seeded"})
		return
	case !req.FromBackup && (!ok || req.Donor == a.opts.NodeID):
		writeJSON(w, http.StatusBadRequest, adminapi.Error{Error: fmt.Sprintf("donor %q is not another member of the cluster", req.Donor)})
		return
	}
	start := func() error { return a.startReseed(donor) }
	if req.FromBackup {
		start = a.startBackupReseed
	}
	if err := start(); err != nil {
		writeJSON(w, http.StatusConflict, adminapi.Error{Error: err.Error()})
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// serveRebuild is `shoal rebuild MEMBER` on the leader: it picks the donor (ha.Rebuild, on the
// last pass's observation) and asks the member's agent to start.
func (a *Agent) serveRebuild(w http.ResponseWriter, r *http.Request) {
	var req adminapi.RebuildRequest
	if !readJSON(w, r, &req) {
		return
	}
	if !a.raft.IsLeader() {
		a.notLeader(w)
		return
	}
	obs := a.lastObservation()
	rs, err := ha.Rebuild(obs, a.opts.Policy, req.Member)
	if err != nil {
		writeJSON(w, http.StatusConflict, adminapi.Error{Error: "cannot rebuild: " + err.Error()})
		return
	}
	if err := a.askReseed(r.Context(), obs.Record, rs); err != nil {
		writeJSON(w, http.StatusBadGateway, adminapi.Error{Error: err.Error()})
		return
	}
	a.log.Info("rebuild requested", "member", rs.Member, "donor", rs.Donor)
	writeJSON(w, http.StatusOK, adminapi.Rebuild{Member: rs.Member, Donor: rs.Donor})
}

// serveBackupStream streams a backup of the local MariaDB server to a joining member's agent.
// It carries the whole database, so it needs the cluster's TLS and a member certificate
// (requireMemberTLS); an errant server never donates.
func (a *Agent) serveBackupStream(w http.ResponseWriter, r *http.Request) {
	if v := a.snapshot(); v.Errant != "" {
		writeJSON(w, http.StatusConflict, adminapi.Error{Error: "this member holds errant transactions and must not donate: " + v.Errant})
		return
	}
	if a.reseed.Load() != nil {
		writeJSON(w, http.StatusConflict, adminapi.Error{Error: "this member is being re-seeded itself"})
		return
	}
	o := a.opts.Reseed
	out := &streamWriter{w: w}
	n, err := reseed.Backup(r.Context(), out, reseed.BackupOptions{Local: o.Local, TmpDir: o.TmpDir,
		BytesPerSecond: int64(o.MaxMiBPerSecond) << 20, Tools: o.Tools}, a.log.With("component", "reseed"))
	a.reseedMetrics.bytes.Add(float64(n))
	a.reseedMetrics.runs.WithLabelValues("donor", reseedResult(err)).Inc()
	switch {
	case err != nil && !out.started:
		writeJSON(w, http.StatusInternalServerError, adminapi.Error{Error: err.Error()})
	case err != nil:
		// Too late for a status: the missing trailer tells the joiner.
		a.log.Error("backup stream to a joiner failed", "remote", r.RemoteAddr, "err", err)
	default:
		w.Header().Set(adminapi.BackupTrailer, adminapi.BackupComplete)
	}
}

// streamWriter announces the completion trailer before the first byte of a stream.
type streamWriter struct {
	w       http.ResponseWriter
	started bool
}

func (s *streamWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.w.Header().Set("Trailer", adminapi.BackupTrailer)
		s.w.Header().Set("Content-Type", "application/octet-stream")
		s.w.WriteHeader(http.StatusOK)
	}
	return s.w.Write(p)
}

// requireMemberTLS is requirePeer for calls that must never be plain, whatever
// raft.allow_plaintext says.
func requireMemberTLS(peers *tls.Config, h http.Handler) http.Handler {
	if peers == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusForbidden, adminapi.Error{Error: "this stream needs the cluster's TLS (raft.tls): it carries the database's data"})
		})
	}
	return requirePeer(peers, h)
}
