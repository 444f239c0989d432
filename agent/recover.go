package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

// newRecoveries counts a failover's recoveries of transactions from a member's relay log
// (ha.Decision.PrepareRecover), by result: a failed one leaves the cluster without a primary
// until one succeeds or an operator repairs the holder, so alert on it.
func newRecoveries(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Name: "failover_recoveries_total",
		Help: "Recoveries of transactions only a member that cannot apply them received, copied from its relay log onto the candidate, by result."},
		[]string{"result"})
	return c, reg.Register(c)
}

// serveLogs streams, as SQL that replays them with their GTIDs, the transactions one of the
// local server's logs holds (?log=binlog or relay) and the set ?after= lacks: the leader applies
// them on the candidate of a failover when this member received them but cannot apply them. It
// carries data, so it needs the cluster's TLS and a member certificate (requireMemberTLS).
func (a *Agent) serveLogs(w http.ResponseWriter, r *http.Request) {
	log := backup.Log(r.URL.Query().Get("log"))
	if log != backup.Binlog && log != backup.RelayLog {
		writeJSON(w, http.StatusBadRequest, adminapi.Error{Error: fmt.Sprintf("log: want %s or %s, got %q", backup.Binlog, backup.RelayLog, log)})
		return
	}
	local, err := mysqlctl.Open(r.Context(), a.opts.Reseed.Local)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, adminapi.Error{Error: err.Error()})
		return
	}
	defer local.Close()
	after, err := gtid.Parse(local.Flavor(), r.URL.Query().Get("after"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, adminapi.Error{Error: "after: " + err.Error()})
		return
	}
	only, err := gtid.Parse(local.Flavor(), r.URL.Query().Get("only"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, adminapi.Error{Error: "only: " + err.Error()})
		return
	}
	tool := a.opts.BinlogTool
	if len(tool) == 0 {
		tool = backup.DefaultBinlogTool(local.Flavor())
	}
	logs := backup.LocalLogs{Local: local, Tool: tool, PIDFile: a.opts.MySQLPIDFile}
	out := &streamWriter{w: w}
	err = logs.WriteSQL(r.Context(), log, after, only, out)
	switch {
	case err != nil && !out.started:
		writeJSON(w, http.StatusInternalServerError, adminapi.Error{Error: err.Error()})
	case err != nil:
		a.log.Error("log stream to the leader failed", "log", log, "remote", r.RemoteAddr, "err", err)
	default:
		out.Write(nil) // the trailer is announced with the first write, and there may have been none
		w.Header().Set(adminapi.BackupTrailer, adminapi.BackupComplete)
		a.log.Info("log streamed for a failover's recovery", "log", log, "after", after.String())
	}
}

// recoverFromLogs copies onto the candidate, which applied everything it received, the
// transactions r names from the logs of the member holding them: those it applied from its
// binlog, then those it only received from its relay log, each in a session of its own (see
// backup.LocalLogs). It then checks the candidate holds them. The copy goes through the
// candidate's binlog, so the other replicas get it from the new primary.
func (a *Agent) recoverFromLogs(ctx context.Context, srv mysqlServer, addr string, rec record.Record, r ha.Recover) (err error) {
	defer func() {
		result := "recovered"
		switch {
		case err != nil && errors.Is(ctx.Err(), context.Canceled):
			// The leader moved on (preparing.go): no failure of the recovery.
			result = "cancelled"
		case err != nil:
			result = "failed"
			// Counted for the decision, which reports the failover blocked after a few.
			a.mu.Lock()
			f := &a.recoveryFailed
			if f.Epoch != rec.Epoch || f.From != r.From {
				*f = ha.RecoveryFailures{Epoch: rec.Epoch, From: r.From}
			}
			f.Count++
			f.Err = err.Error()
			a.mu.Unlock()
		}
		a.recoveries.WithLabelValues(result).Inc()
	}()
	holder := rec.Members[r.From].AdminAddr
	a.log.Info("recovering transactions from a member's logs onto the candidate", "gtids", r.GTIDs.String(), "from", r.From, "candidate", addr)
	var st state.Status
	for _, log := range []backup.Log{backup.Binlog, backup.RelayLog} {
		if st, err = srv.Status(ctx); err != nil {
			return err
		}
		stream, err := a.opts.Reseed.Client.Logs(ctx, holder, string(log), st.Executed, r.GTIDs)
		if err != nil {
			return err
		}
		// Read to its end, so a stream the holder did not mark complete fails here.
		err = srv.ApplyBinlogSQL(ctx, stream)
		stream.Close()
		if err != nil {
			return fmt.Errorf("apply the %s of %s: %w", log, r.From, err)
		}
	}
	if st, err = srv.Status(ctx); err != nil {
		return err
	}
	if ok, err := st.Executed.Contains(r.GTIDs); err != nil || !ok {
		missing, _ := r.GTIDs.Subtract(st.Executed)
		return fmt.Errorf("after the copy from the logs of %s the candidate still lacks %s (%v)", r.From, missing, err)
	}
	a.log.Info("recovered transactions from a member's logs", "gtids", r.GTIDs.String(), "from", r.From, "candidate", addr)
	return nil
}
