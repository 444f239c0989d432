package harness

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

func TestServers(t *testing.T) {
	EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		begin := time.Now()
		servers := StartN(t, flavor, 2, func(_ int, c *ServerConfig) { c.SuperReadOnly = true })
		t.Logf("2 %s servers up in %s", flavor, time.Since(begin).Round(time.Millisecond))
		ctx := t.Context()

		var ids [2]string
		for i, s := range servers {
			db := s.RootDB(t)
			var serverID uint32
			var gtids string
			// Every copy of the template starts empty, with an identity of its own.
			q := "SELECT @@server_id, @@gtid_binlog_pos"
			if flavor == gtid.MySQL {
				q = "SELECT @@server_id, @@gtid_executed"
			}
			if err := db.QueryRowContext(ctx, q).Scan(&serverID, &gtids); err != nil {
				t.Fatal(err)
			}
			if serverID != uint32(i+1) || gtids != "" {
				t.Fatalf("%s: server_id %d, GTIDs %q; want %d and none", s.Config.Name, serverID, gtids, i+1)
			}
			if flavor == gtid.MySQL {
				if err := db.QueryRowContext(ctx, "SELECT @@server_uuid").Scan(&ids[i]); err != nil {
					t.Fatal(err)
				}
			}
			app, err := sql.Open("mysql", s.DSN(AppUser, AppPassword))
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			if _, err := app.ExecContext(ctx, "CREATE TABLE app.t (id INT PRIMARY KEY)"); err == nil ||
				!strings.Contains(err.Error(), "read-only") && !strings.Contains(err.Error(), "read_only") {
				t.Fatalf("%s: write by the application account while read-only: %v", s.Config.Name, err)
			}
		}
		if flavor == gtid.MySQL && ids[0] == ids[1] {
			t.Fatalf("both servers have server_uuid %s", ids[0])
		}
		if servers[0].Host() == servers[1].Host() {
			t.Fatalf("both servers on %s", servers[0].Host())
		}

		s := servers[0]
		db := s.RootDB(t)
		for _, stmt := range []string{"SET GLOBAL read_only = OFF", "CREATE TABLE app.t (id INT PRIMARY KEY)", "INSERT INTO app.t VALUES (1)"} {
			if flavor == gtid.MySQL && strings.Contains(stmt, "read_only") {
				stmt = "SET GLOBAL super_read_only = OFF"
			}
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}

		// SIGKILL and restart on the same data dir: the committed row survives, read-only again.
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		begin = time.Now()
		if err := s.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s restart after SIGKILL: %s", flavor, time.Since(begin).Round(time.Millisecond))
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM app.t").Scan(&n); err != nil || n != 1 {
			t.Fatalf("after kill and restart: %d rows, %v", n, err)
		}

		// SIGSTOP: queries time out; SIGCONT: they work again.
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, time.Second)
		err := db.QueryRowContext(short, "SELECT 1").Scan(&n)
		cancel()
		if err == nil {
			t.Fatal("paused server answered a query")
		}
		if err := s.Resume(); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil {
			t.Fatalf("resumed server: %v", err)
		}
	})
}
