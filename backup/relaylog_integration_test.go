package backup_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
	"github.com/shoal-db/shoal/test/harness"
)

// Writes that only a replica whose applier is stopped received are read from its binlog (those
// it applied) and its relay log (the rest) and applied on another replica that lacks them (a
// failover's recovery): that replica then holds them with their GTIDs, in its tables and its
// binlog, and stays fenced.
func TestRelayLogRecovery(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		procs := harness.StartN(t, flavor, 3, func(_ int, c *harness.ServerConfig) { c.SuperReadOnly = true })
		srv := make([]*mysqlctl.Server, len(procs))
		for i, p := range procs {
			s, err := mysqlctl.Open(ctx, mysqlctl.Config{Addr: p.Addr(), User: harness.RootUser, Password: harness.RootPassword})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			srv[i] = s
		}
		primary, lacking, holder := srv[0], srv[1], srv[2]
		if err := primary.Promote(ctx, mysqlctl.PromoteOptions{ReplUser: "repl", ReplPassword: "repl-pw"}); err != nil {
			t.Fatal(err)
		}
		src := mysqlctl.Source{Host: procs[0].Host(), Port: procs[0].Port(), User: "repl", Password: "repl-pw"}
		for _, r := range srv[1:] {
			if err := r.ConfigureReplica(ctx, src, mysqlctl.ReplicaOptions{SemiSync: true}); err != nil {
				t.Fatal(err)
			}
		}
		mustExec(t, ctx, primary, "CREATE TABLE app.p (id INT PRIMARY KEY)", "INSERT INTO app.p VALUES (1)")
		waitApplied(t, ctx, primary, lacking, holder)

		stop, stopIO := "STOP REPLICA SQL_THREAD", "STOP REPLICA IO_THREAD"
		if flavor == gtid.MariaDB {
			stop, stopIO = "STOP SLAVE SQL_THREAD", "STOP SLAVE IO_THREAD"
		}
		if err := lacking.StopIOThread(ctx); err != nil {
			t.Fatal(err)
		}
		// Applied by the holder alone, then gone from its relay log: a new file and the applier
		// moving on purge the one that held it. It is left in the holder's binlog.
		mustExec(t, ctx, primary, "INSERT INTO app.p VALUES (2)")
		waitApplied(t, ctx, primary, holder)
		mustExec(t, ctx, holder, "FLUSH RELAY LOGS")
		mustExec(t, ctx, primary, "INSERT INTO app.p VALUES (3)")
		waitApplied(t, ctx, primary, holder)
		mustExec(t, ctx, holder, stop)
		for i := 4; i <= 6; i++ { // received by the holder alone
			mustExec(t, ctx, primary, fmt.Sprintf("INSERT INTO app.p VALUES (%d)", i))
		}
		// Both threads stopped: on MariaDB the state that must never start a thread again.
		mustExec(t, ctx, holder, stopIO)
		want := status(t, ctx, primary).Executed
		if got := status(t, ctx, holder).Received(); !contains(t, got, want) {
			t.Fatalf("the holder received %s, not all of %s", got, want)
		}
		after := status(t, ctx, lacking).Executed
		if contains(t, after, want) {
			t.Fatalf("the lacking replica has %s already", after)
		}

		tool := backup.DefaultBinlogTool(flavor)
		if flavor == gtid.MySQL {
			tool = []string{"chroot", chrootOf(t, procs[2]), "/usr/bin/mysqlbinlog"}
		}
		logs := backup.LocalLogs{Local: holder, Tool: tool, PIDFile: filepath.Join(procs[2].Dir(), "mysqld.pid")}
		recover := func() {
			t.Helper()
			for _, log := range []backup.Log{backup.Binlog, backup.RelayLog} {
				after := status(t, ctx, lacking).Executed
				pr, pw := io.Pipe()
				go func() { pw.CloseWithError(logs.WriteSQL(ctx, log, after, want, pw)) }()
				if err := lacking.ApplyBinlogSQL(ctx, pr); err != nil {
					t.Fatalf("%s: %v", log, err)
				}
			}
		}
		// The binlog part in full; the relay log part cut short after its last transaction,
		// as when the leader cancels a recovery that copied everything (the stream's trailer
		// lost, the apply failing): what committed still counts as applied, on MariaDB by
		// gtid_slave_pos too, or a wait for it would never end.
		for _, log := range []backup.Log{backup.Binlog, backup.RelayLog} {
			var sqlText strings.Builder
			if err := logs.WriteSQL(ctx, log, status(t, ctx, lacking).Executed, want, &sqlText); err != nil {
				t.Fatalf("%s: %v", log, err)
			}
			text := sqlText.String()
			var r io.Reader = strings.NewReader(text)
			if log == backup.RelayLog {
				end := strings.LastIndex(text, "COMMIT")
				if end < 0 {
					t.Fatalf("no transaction in the relay log's SQL:\n%s", text)
				}
				end += strings.Index(text[end:], "\n") + 1
				r = io.MultiReader(strings.NewReader(text[:end]), iotest.ErrReader(errors.New("cut short")))
			}
			err := lacking.ApplyBinlogSQL(ctx, r)
			if log == backup.RelayLog && (err == nil || !strings.Contains(err.Error(), "cut short")) {
				t.Fatalf("%s cut short: %v, want its error", log, err)
			} else if log == backup.Binlog && err != nil {
				t.Fatalf("%s: %v", log, err)
			}
		}
		st := status(t, ctx, lacking)
		waitCtx, cancelWait := context.WithTimeout(ctx, 10*time.Second)
		defer cancelWait()
		if err := lacking.WaitApplied(waitCtx, want); err != nil { // MariaDB: by gtid_slave_pos
			t.Fatalf("after the recovery: %v", err)
		}
		if !contains(t, st.Executed, want) {
			t.Fatalf("after the recovery the replica executed %s, want all of %s", st.Executed, want)
		}
		if got := rows(t, ctx, lacking); !slices.Equal(got, []int{1, 2, 3, 4, 5, 6}) {
			t.Fatalf("rows after the recovery: %v", got)
		}
		if !st.ReadOnly || flavor == gtid.MySQL && !st.SuperReadOnly {
			t.Fatalf("the recovery left the replica writable: read_only %t, super_read_only %t", st.ReadOnly, st.SuperReadOnly)
		}
		// Nothing more to copy: the same calls apply nothing.
		recover()
		if again := status(t, ctx, lacking).Executed; !contains(t, st.Executed, again) {
			t.Fatalf("a second recovery added %s to %s", again, st.Executed)
		}
	})
}

func status(t *testing.T, ctx context.Context, s *mysqlctl.Server) state.Status {
	t.Helper()
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func contains(t *testing.T, a, b gtid.Set) bool {
	t.Helper()
	ok, err := a.Contains(b)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func waitApplied(t *testing.T, ctx context.Context, primary *mysqlctl.Server, replicas ...*mysqlctl.Server) {
	t.Helper()
	want := status(t, ctx, primary).Executed
	for _, r := range replicas {
		if err := r.WaitApplied(ctx, want); err != nil {
			t.Fatal(err)
		}
	}
}
