package harness

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// templateSQL creates the accounts and database every test server has. It runs with binary
// logging off, so no copy of the template starts with transactions of its own.
var templateSQL = []string{
	"CREATE USER '" + RootUser + "'@'%' IDENTIFIED BY '" + RootPassword + "'",
	"GRANT ALL PRIVILEGES ON *.* TO '" + RootUser + "'@'%' WITH GRANT OPTION",
	"CREATE DATABASE " + AppDatabase,
	"CREATE USER '" + AppUser + "'@'%' IDENTIFIED BY '" + AppPassword + "'",
	"GRANT ALL PRIVILEGES ON " + AppDatabase + ".* TO '" + AppUser + "'@'%'",
	// Last: the socket login this build uses needs no password until here.
	"ALTER USER '" + RootUser + "'@'localhost' IDENTIFIED BY '" + RootPassword + "'",
}

// templateFormat changes whenever templateSQL or the build steps do, so stale templates are
// never reused.
const templateFormat = "t2"

// templateDir is the cached, initialized data dir for the flavor's exact version.
func (f *flavor) templateDir() string {
	return filepath.Join(cacheDir(), "templates", string(f.name)+"-"+f.version+"-"+templateFormat)
}

// copyTemplate puts a copy of the template data dir at dst, building the template first if no
// process has yet. Copying takes a fraction of the seconds an initialization does.
func (f *flavor) copyTemplate(dst string, log *slog.Logger) error {
	if err := f.ensureTemplate(log); err != nil {
		return err
	}
	out, err := exec.Command("cp", "-a", "--reflink=auto", f.templateDir(), dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy template %s to %s: %w: %s", f.templateDir(), dst, err, out)
	}
	return nil
}

// ensureTemplate builds the template once, under a lock shared by every test process. It is
// built aside and renamed into place, so a crash never leaves half a template behind.
func (f *flavor) ensureTemplate(log *slog.Logger) error {
	dir := f.templateDir()
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	lock, err := lockFile(dir+".lock", syscall.LOCK_EX)
	if err != nil {
		return fmt.Errorf("lock template %s: %w", dir, err)
	}
	defer lock.unlock()
	if _, err := os.Stat(dir); err == nil {
		return nil // another process built it while we waited
	}
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := f.buildTemplate(ctx, dir, log); err != nil {
		return fmt.Errorf("build %s template: %w", f.name, err)
	}
	log.Info("template built", "flavor", f.name, "version", f.version, "took", time.Since(begin).Round(time.Millisecond))
	return nil
}

func (f *flavor) buildTemplate(ctx context.Context, dir string, log *slog.Logger) error {
	s, err := newServer(f, ServerConfig{Flavor: f.name, Name: "template", ServerID: 1, Port: defaultPort}, log, true)
	if err != nil {
		return err
	}
	defer s.Remove()
	bin, args := f.initialize(s)
	if out, err := f.command(bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("initialize: %w: %s\n--- error log:\n%s", err, lastLines(string(out), 20), s.ErrorLogTail(20))
	}
	if err := s.start(ctx); err != nil {
		return err
	}
	db, err := sql.Open("mysql", s.probeDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	if err := dropExtraRoots(ctx, db); err != nil {
		return err
	}
	for _, stmt := range templateSQL {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	db.Close()
	if err := s.Stop(ctx); err != nil {
		return err
	}
	// Every copy must get a server_uuid of its own at first start.
	if err := os.Remove(filepath.Join(s.dataDir(), "auto.cnf")); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if out, err := exec.Command("cp", "-a", s.dataDir(), tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("save template: %w: %s", err, out)
	}
	return os.Rename(tmp, dir)
}

// dropExtraRoots removes root accounts other than root@localhost. mariadb-install-db also makes
// password-less root@127.0.0.1 and root@::1, which would win over root@'%' for TCP logins.
func dropExtraRoots(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "SELECT Host FROM mysql.user WHERE User = 'root' AND Host <> 'localhost'")
	if err != nil {
		return fmt.Errorf("list root accounts: %w", err)
	}
	var hosts []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return err
		}
		hosts = append(hosts, h)
	}
	rows.Close()
	for _, h := range hosts {
		if _, err := db.ExecContext(ctx, "DROP USER 'root'@'"+h+"'"); err != nil {
			return fmt.Errorf("drop root@%s: %w", h, err)
		}
	}
	return nil
}
