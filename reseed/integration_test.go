package reseed_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
	"github.com/shoal-db/shoal/reseed"
	"github.com/shoal-db/shoal/test/harness"
)

// member is one real server and the agent's connection settings for it.
type member struct {
	proc *harness.Server
	cfg  mysqlctl.Config
	ctl  *mysqlctl.Server
}

func open(t *testing.T, ctx context.Context, s *harness.Server) *member {
	t.Helper()
	m := &member{proc: s, cfg: mysqlctl.Config{Addr: s.Addr(), User: harness.RootUser, Password: harness.RootPassword}}
	m.reopen(t, ctx)
	return m
}

// reopen connects again: a re-seed restarts the server under the old pool.
func (m *member) reopen(t *testing.T, ctx context.Context) {
	t.Helper()
	if m.ctl != nil {
		m.ctl.Close()
	}
	ctl, err := mysqlctl.Open(ctx, m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.ctl = ctl
	t.Cleanup(func() { ctl.Close() })
}

func (m *member) exec(t *testing.T, ctx context.Context, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := m.ctl.DB().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %s: %v", m.proc.Config.Name, q, err)
		}
	}
}

func (m *member) status(t *testing.T, ctx context.Context) state.Status {
	t.Helper()
	st, err := m.ctl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// digest fingerprints app.r: equal on servers with equal rows.
func (m *member) digest(t *testing.T, ctx context.Context) string {
	t.Helper()
	var n int
	var sum string
	if err := m.ctl.DB().QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(id, ':', v))), 0) FROM app.r").Scan(&n, &sum); err != nil {
		t.Fatalf("%s: digest: %v", m.proc.Config.Name, err)
	}
	return fmt.Sprintf("%d rows, crc %s", n, sum)
}

const replUser, replPassword = "repl", "repl-pw"

func (m *member) follow(t *testing.T, ctx context.Context, primary *member) {
	t.Helper()
	src := mysqlctl.Source{Host: primary.proc.Host(), Port: primary.proc.Port(), User: replUser, Password: replPassword}
	if err := m.ctl.ConfigureReplica(ctx, src, mysqlctl.ReplicaOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := m.ctl.WaitApplied(ctx, primary.status(t, ctx).Executed); err != nil {
		t.Fatalf("%s did not catch up with %s: %v", m.proc.Config.Name, primary.proc.Config.Name, err)
	}
}

// A primary, a replica (the donor) and a member with an errant transaction: the member is
// re-seeded from the replica while the primary takes writes, then holds the primary's rows, no
// errant GTIDs either way, and replicates from the primary with GTID auto-positioning.
func TestReseedFromReplica(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		servers := harness.StartN(t, flavor, 3, func(_ int, c *harness.ServerConfig) { c.SuperReadOnly = true })
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer cancel()
		primary, donor, joiner := open(t, ctx, servers[0]), open(t, ctx, servers[1]), open(t, ctx, servers[2])
		if err := primary.ctl.Promote(ctx, mysqlctl.PromoteOptions{ReplUser: replUser, ReplPassword: replPassword,
			// Async: the joiner, replicating later, is no acknowledging replica meanwhile.
			SemiSync: mysqlctl.SemiSyncConfig{Async: true}}); err != nil {
			t.Fatal(err)
		}
		primary.exec(t, ctx, "CREATE TABLE app.r (id INT PRIMARY KEY, v VARCHAR(64))",
			"INSERT INTO app.r VALUES (1, 'a'), (2, 'b'), (3, 'c')")
		if flavor == gtid.MariaDB {
			// An earlier primary's transaction: its entry in gtid_binlog_state must survive.
			primary.exec(t, ctx, "SET STATEMENT server_id = 99 FOR INSERT INTO app.r VALUES (0, 'old')", "INSERT INTO app.r VALUES (4, 'd')")
		}
		donor.follow(t, ctx, primary)
		joiner.exec(t, ctx, "SET GLOBAL "+map[gtid.Flavor]string{gtid.MySQL: "super_read_only", gtid.MariaDB: "read_only"}[flavor]+" = OFF",
			"CREATE TABLE app.errant (id INT PRIMARY KEY)")

		// Writes go on during the copy: the joiner must pick them up by replication.
		writes := make(chan error, 1)
		go func() {
			for i := 100; i < 150; i++ {
				if _, err := primary.ctl.DB().ExecContext(ctx, "INSERT INTO app.r VALUES (?, 'during')", i); err != nil {
					writes <- err
					return
				}
			}
			writes <- nil
		}()
		log := slog.New(slog.NewTextHandler(t.Output(), nil))
		begin := time.Now()
		switch flavor {
		case gtid.MySQL:
			err := reseed.Clone(ctx, joiner.cfg, harness.Service{S: joiner.proc}, reseed.CloneOptions{
				Donor: donor.proc.Addr(), User: harness.RootUser, Password: harness.RootPassword, MaxBandwidthMiB: 100}, log)
			if err != nil {
				t.Fatal(err)
			}
		case gtid.MariaDB:
			stream, sink := io.Pipe()
			done := make(chan error, 1)
			go func() {
				_, err := reseed.Backup(ctx, sink, reseed.BackupOptions{Local: donor.cfg, TmpDir: t.TempDir(), BytesPerSecond: 100 << 20}, log)
				sink.CloseWithError(err)
				done <- err
			}()
			_, err := reseed.Restore(ctx, stream, reseed.RestoreOptions{Local: joiner.cfg, Service: harness.Service{S: joiner.proc},
				DonorBinlogState: func(ctx context.Context) (string, error) {
					var s string
					err := donor.ctl.DB().QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_state").Scan(&s)
					return s, err
				}}, log)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: re-seeded in %s", flavor, time.Since(begin).Round(time.Millisecond))
		if err := <-writes; err != nil {
			t.Fatal(err)
		}
		joiner.reopen(t, ctx)
		if st := joiner.status(t, ctx); !st.ReadOnly {
			t.Errorf("re-seeded server came back writable")
		}
		var errantTables int
		if err := joiner.ctl.DB().QueryRowContext(ctx,
			"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'errant'").Scan(&errantTables); err != nil {
			t.Fatal(err)
		}
		if errantTables != 0 {
			t.Errorf("the errant table survived the re-seed")
		}
		joiner.follow(t, ctx, primary)
		primary.exec(t, ctx, "INSERT INTO app.r VALUES (200, 'after')")
		joiner.follow(t, ctx, primary)
		pst, jst := primary.status(t, ctx), joiner.status(t, ctx)
		if errant, err := state.Errant(jst, pst); err != nil || !errant.IsEmpty() {
			t.Errorf("re-seeded server has errant GTIDs %s (err %v)", errant, err)
		}
		// Were the re-seeded server primary, the old one would not look errant either.
		if missing, err := state.Errant(pst, jst); err != nil || !missing.IsEmpty() {
			t.Errorf("re-seeded server lacks %s of the primary's GTIDs (err %v)", missing, err)
		}
		if got, want := joiner.digest(t, ctx), primary.digest(t, ctx); got != want {
			t.Errorf("re-seeded server has %s, primary %s", got, want)
		}
		if jst.Replica == nil || !jst.Replica.AutoPosition {
			t.Errorf("re-seeded server does not replicate with GTID auto-positioning: %+v", jst.Replica)
		}
	})
}

// A clone's recipient whose redo log is behind the donor's position at the start of the copy is
// refused: its next crash recovery would stop on pages "in the future".
func TestCloneRefusesARedoLogBehindTheDonor(t *testing.T) {
	s := harness.StartN(t, gtid.MySQL, 1, nil)[0]
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	m := open(t, ctx, s)
	lsn, err := reseed.RedoLSN(ctx, m.ctl.DB())
	if err != nil || lsn == 0 {
		t.Fatalf("redo position: %d, %v", lsn, err)
	}
	if err := reseed.CheckRedoCarriedOver(ctx, m.ctl.DB(), "donor:3306", lsn); err != nil {
		t.Errorf("a copy at the donor's position refused: %v", err)
	}
	if err := reseed.CheckRedoCarriedOver(ctx, m.ctl.DB(), "donor:3306", lsn+1<<30); err == nil || !strings.Contains(err.Error(), "behind the donor's") {
		t.Errorf("a copy behind the donor's position: %v, want it refused", err)
	}
}
