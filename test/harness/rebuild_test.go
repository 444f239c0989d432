package harness

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

// A member with a transaction its source lacks is rebuilt from the source: afterwards it holds the
// source's rows, has no errant GTIDs and replicates from it with auto-positioning.
func TestRebuild(t *testing.T) {
	EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		servers := StartN(t, flavor, 2, nil)
		src, broken := servers[0], servers[1]
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		exec := func(s *Server, stmts ...string) {
			t.Helper()
			db := s.RootDB(t)
			for _, q := range stmts {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %s: %v", s.Config.Name, q, err)
				}
			}
		}
		exec(src, "CREATE TABLE app.r (id INT PRIMARY KEY)", "INSERT INTO app.r VALUES (1), (2), (3)")
		if flavor == gtid.MariaDB {
			// A transaction of another server (an earlier primary's) before src's last ones: its
			// entry in gtid_binlog_state must survive the copy.
			exec(src, "SET STATEMENT server_id = 99 FOR INSERT INTO app.r VALUES (0)", "INSERT INTO app.r VALUES (-1)")
		}
		exec(broken, "CREATE TABLE app.errant (id INT PRIMARY KEY)")

		if err := broken.Rebuild(ctx, src); err != nil {
			t.Fatal(err)
		}
		ctl := func(s *Server) *mysqlctl.Server {
			c, err := mysqlctl.Open(ctx, mysqlctl.Config{Addr: s.Addr(), User: RootUser, Password: RootPassword})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		srcCtl, rebuiltCtl := ctl(src), ctl(broken)
		srcSt, err := srcCtl.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, err := rebuiltCtl.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if errant, err := state.Errant(st, srcSt); err != nil || !errant.IsEmpty() {
			t.Fatalf("rebuilt server has errant GTIDs %s (err %v)", errant, err)
		}
		// Nor the other way round: were the rebuilt server primary, src would not look errant.
		if missing, err := state.Errant(srcSt, st); err != nil || !missing.IsEmpty() {
			t.Fatalf("rebuilt server lacks %s of the copy's GTIDs (err %v)", missing, err)
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(srcCtl.EnsureReplicationUser(ctx, "repl", "repl-pw"))
		exec(src, "INSERT INTO app.r VALUES (4)")
		must(rebuiltCtl.ConfigureReplica(ctx, mysqlctl.Source{Host: src.Host(), Port: src.Port(), User: "repl", Password: "repl-pw"}, mysqlctl.ReplicaOptions{}))
		srcSt, err = srcCtl.Status(ctx)
		must(err)
		must(rebuiltCtl.WaitApplied(ctx, srcSt.Executed))
		var n, want int
		must(broken.RootDB(t).QueryRowContext(ctx, "SELECT COUNT(*) FROM app.r").Scan(&n))
		must(src.RootDB(t).QueryRowContext(ctx, "SELECT COUNT(*) FROM app.r").Scan(&want))
		var errantTables int
		must(broken.RootDB(t).QueryRowContext(ctx,
			"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'errant'").Scan(&errantTables))
		if n != want || errantTables != 0 {
			t.Fatalf("rebuilt server has %d rows of %d and %d errant tables", n, want, errantTables)
		}
	})
}
