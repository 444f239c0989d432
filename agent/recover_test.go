package agent

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/mysqlctltest"
)

// A recovery whose holder cannot be reached fails, is counted in the metric, and is counted for
// the decision per epoch and holder (ha reports the failover blocked after a few).
func TestRecoveryFailuresAreCounted(t *testing.T) {
	recoveries, err := newRecoveries(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{log: slog.New(slog.DiscardHandler), recoveries: recoveries}
	// An admin address nothing listens on: the holder's agent is gone.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	srv := mysqlctltest.NewNetwork().Add("10.0.0.2:3306", 2)
	rec := record.Record{Epoch: 3, Members: map[string]record.Member{"db-1": {ID: "db-1", AdminAddr: dead}, "db-2": {ID: "db-2", AdminAddr: dead}}}
	r := ha.Recover{From: "db-1", GTIDs: gtid.MustParse(gtid.MySQL, "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa:100")}
	for range 2 {
		if err := a.recoverFromLogs(t.Context(), srv, "10.0.0.2:3306", rec, r); err == nil || !strings.Contains(err.Error(), dead) {
			t.Fatalf("recovery from an unreachable holder: %v, want its address in the error", err)
		}
	}
	if f := a.recoveryFailed; f.Epoch != 3 || f.From != "db-1" || f.Count != 2 || f.Err == "" {
		t.Fatalf("after two failures: %+v", f)
	}
	r.From = "db-2" // another holder starts a new count, as does another epoch
	a.recoverFromLogs(t.Context(), srv, "10.0.0.2:3306", rec, r)
	if f := a.recoveryFailed; f.From != "db-2" || f.Count != 1 {
		t.Fatalf("after a failure from another holder: %+v", f)
	}
	if got := testutil.ToFloat64(recoveries.WithLabelValues("failed")); got != 3 {
		t.Fatalf("shoal_failover_recoveries_total{result=failed} = %v, want 3", got)
	}

	// One the leader cancelled (it decided otherwise while the recovery ran in the background)
	// is no failure of the recovery: it counts neither for the decision nor as failed.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.recoverFromLogs(ctx, srv, "10.0.0.2:3306", rec, r); err == nil {
		t.Fatal("a cancelled recovery succeeded")
	}
	if f := a.recoveryFailed; f.Count != 1 {
		t.Fatalf("a cancelled recovery was counted for the decision: %+v", f)
	}
	if got := testutil.ToFloat64(recoveries.WithLabelValues("cancelled")); got != 1 {
		t.Fatalf("shoal_failover_recoveries_total{result=cancelled} = %v, want 1", got)
	}
}
