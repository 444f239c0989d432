package agent

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
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

// serveRelayLog streams, as SQL that replays them with their GTIDs, the transactions the local
// server's relay log holds and the set "after" lacks: the leader applies them on the candidate
// of a failover when this member received them but cannot apply them. It carries data, so it
// needs the cluster's TLS and a member certificate (requireMemberTLS).
func (a *Agent) serveRelayLog(w http.ResponseWriter, r *http.Request) {
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
	tool := a.opts.BinlogTool
	if len(tool) == 0 {
		tool = backup.DefaultBinlogTool(local.Flavor())
	}
	rl := backup.RelayLog{Local: local.DB(), Flavor: local.Flavor(), Tool: tool, PIDFile: a.opts.MySQLPIDFile}
	out := &streamWriter{w: w}
	err = rl.WriteSQL(r.Context(), after, out)
	switch {
	case err != nil && !out.started:
		writeJSON(w, http.StatusInternalServerError, adminapi.Error{Error: err.Error()})
	case err != nil:
		a.log.Error("relay log stream to the leader failed", "remote", r.RemoteAddr, "err", err)
	default:
		if !out.started { // nothing to send: the trailer still needs a response under way
			out.Write(nil)
		}
		w.Header().Set(adminapi.BackupTrailer, adminapi.BackupComplete)
		a.log.Info("relay log streamed for a failover's recovery", "after", after.String())
	}
}

// recoverRelayLog copies onto the candidate at addr, which applied everything it received, the
// transactions r names from the relay log of the member holding them, and checks it then holds
// them. The copy goes through the candidate's binlog, so the other replicas get it from the new
// primary.
func (a *Agent) recoverRelayLog(ctx context.Context, srv mysqlServer, addr string, rec record.Record, r ha.Recover) (err error) {
	defer func() {
		result := "recovered"
		if err != nil {
			result = "failed"
		}
		a.recoveries.WithLabelValues(result).Inc()
	}()
	st, err := srv.Status(ctx)
	if err != nil {
		return err
	}
	holder := rec.Members[r.From].AdminAddr
	a.log.Info("recovering transactions from a member's relay log onto the candidate", "gtids", r.GTIDs.String(), "from", r.From, "candidate", addr)
	stream, err := a.opts.Reseed.Client.RelayLog(ctx, holder, st.Executed)
	if err != nil {
		return err
	}
	defer stream.Close()
	// Read to its end, so a stream the holder did not mark complete fails here.
	if err := srv.ApplyBinlogSQL(ctx, stream); err != nil {
		return fmt.Errorf("apply the relay log of %s: %w", r.From, err)
	}
	if st, err = srv.Status(ctx); err != nil {
		return err
	}
	if ok, err := st.Executed.Contains(r.GTIDs); err != nil || !ok {
		missing, _ := r.GTIDs.Subtract(st.Executed)
		return fmt.Errorf("after the copy from the relay log of %s the candidate still lacks %s (%v)", r.From, missing, err)
	}
	a.log.Info("recovered transactions from a member's relay log", "gtids", r.GTIDs.String(), "from", r.From, "candidate", addr)
	return nil
}
