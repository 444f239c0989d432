package chart

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// flavorRoot is the directory the flavor's server programs run in, as test/harness runs them:
// MariaDB from the host, MySQL from the Debian sid root make deps builds.
func flavorRoot(flavor gtid.Flavor) string {
	if flavor == gtid.MySQL {
		return filepath.Join(cacheDir(), "mysql-9.7-root")
	}
	return "/"
}

// TestInitScript runs the chart's init-mysql.sh on a real server of each flavor with nothing
// but the rendered my.cnf and the Secret's files, as the init container does, then starts the
// server from the same my.cnf and checks the accounts, the member's settings, and that the new
// server holds no transactions of its own.
func TestInitScript(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		m := mustRender(t, fmt.Sprintf("ci/test-values-%s.yaml", flavor))
		var cm corev1.ConfigMap
		m.get(t, "ConfigMap", fullname, &cm)
		sts := statefulSet(t, m)
		p := newPod(t, m, 2)
		env := p.env(t, container(t, sts.Spec.Template.Spec.InitContainers, "init-mysql"))

		root := flavorRoot(flavor)
		if _, err := os.Stat(filepath.Join(root, strings.TrimPrefix(mysqldPath(flavor), "/"))); err != nil {
			t.Fatalf("%s server is not installed (%v); install it with `make deps`", flavor, err)
		}
		host, err := os.MkdirTemp(filepath.Join(root, "tmp"), "shoal-chart-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(host) })
		inner := "/" + strings.TrimPrefix(strings.TrimPrefix(host, root), "/") // host as the server sees it
		for _, d := range []string{"data", "run", "conf", "secrets"} {
			if err := os.MkdirAll(filepath.Join(host, d), 0o750); err != nil {
				t.Fatal(err)
			}
		}
		// The container's paths moved into the scratch dir; as root, mysqld must be told to run so.
		cnf := strings.NewReplacer(
			"datadir = /data/mysql", "datadir = "+inner+"/data/mysql",
			"/run/mysqld/", inner+"/run/",
			"!include /run/shoal-mysql/pod.cnf", "!include "+inner+"/conf/pod.cnf",
			"[mysqld]\n", "[mysqld]\nuser = root\nskip-networking\n",
		).Replace(cm.Data["my.cnf"])
		writeFile(t, filepath.Join(host, "my.cnf"), cnf)
		writeFile(t, filepath.Join(host, "init-mysql.sh"), cm.Data["init-mysql.sh"])
		// Quotes and backslashes must reach the server as they are.
		passwords := map[string]string{"root-password": `r'o\o"t`, "admin-password": "admin-pw",
			"repl-password": "repl-pw", "app-password": `a\'pp`}
		for k, v := range passwords {
			writeFile(t, filepath.Join(host, "secrets", k), v)
		}

		env["DATADIR"] = inner + "/data/mysql"
		env["DEFAULTS_FILE"] = inner + "/my.cnf"
		env["POD_CNF"] = inner + "/conf/pod.cnf"
		env["SECRETS"] = inner + "/secrets"
		run := func() string {
			t.Helper()
			cmd := exec.Command("/bin/sh", inner+"/init-mysql.sh")
			cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			cmd.Dir = "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Chroot: root}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("init-mysql.sh: %v\n%s", err, out)
			}
			return string(out)
		}
		run()
		if _, err := os.Stat(filepath.Join(host, "data", "mysql.init")); !os.IsNotExist(err) {
			t.Errorf("the scratch data dir is left behind (%v)", err)
		}
		podCnf, err := os.ReadFile(filepath.Join(host, "conf", "pod.cnf"))
		if err != nil {
			t.Fatal(err)
		}
		if want := "server_id = 102\nreport_host = " + env["REPORT_HOST"] + "\n"; !strings.Contains(string(podCnf), want) {
			t.Errorf("pod.cnf:\n%s\nwant it to hold\n%s", podCnf, want)
		}

		stop := startServer(t, flavor, root, inner)
		socket := filepath.Join(host, "run", "mysqld.sock")
		admin := openSocket(t, socket, env["ADMIN_USER"], passwords["admin-password"])
		var serverID int
		var reportHost, executed string
		var readOnly bool
		gtidVar := map[gtid.Flavor]string{gtid.MySQL: "@@global.gtid_executed", gtid.MariaDB: "@@global.gtid_binlog_state"}[flavor]
		if err := admin.QueryRow("SELECT @@server_id, @@report_host, @@read_only, "+gtidVar).Scan(&serverID, &reportHost, &readOnly, &executed); err != nil {
			t.Fatal(err)
		}
		if serverID != 102 || reportHost != env["REPORT_HOST"] || !readOnly || executed != "" {
			t.Errorf("server_id %d report_host %q read_only %v GTIDs %q: want 102, %q, read only, none",
				serverID, reportHost, readOnly, executed, env["REPORT_HOST"])
		}
		rows, err := admin.Query("SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE User NOT LIKE 'mysql.%' AND User <> 'mariadb.sys' ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		var users []string
		for rows.Next() {
			var u string
			if err := rows.Scan(&u); err != nil {
				t.Fatal(err)
			}
			users = append(users, u)
		}
		if want := []string{"app@%", "root@localhost", env["ADMIN_USER"] + "@%"}; !slices.Equal(users, want) {
			t.Errorf("accounts %v, want %v", users, want)
		}
		var grants string
		if err := admin.QueryRow("SHOW GRANTS").Scan(&grants); err != nil || !strings.Contains(grants, "WITH GRANT OPTION") {
			t.Errorf("the agent's account: %q, %v: want all privileges with grant option", grants, err)
		}
		rootDB := openSocket(t, socket, "root", passwords["root-password"])
		app := openSocket(t, socket, "app", passwords["app-password"])
		if _, err := app.Exec("CREATE TEMPORARY TABLE app.t (i INT)"); err != nil {
			t.Errorf("the app account cannot use its database: %v", err)
		}
		for _, db := range []*sql.DB{admin, rootDB, app} {
			db.Close() // before the server goes, or the driver logs its failed goodbyes
		}
		stop()

		// A second start finds the data dir and leaves it alone.
		if out := run(); !strings.Contains(out, "exists") {
			t.Errorf("second run did not see the initialized data dir:\n%s", out)
		}
	})
}

func mysqldPath(flavor gtid.Flavor) string {
	if flavor == gtid.MySQL {
		return "/usr/sbin/mysqld"
	}
	return "/usr/sbin/mariadbd"
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

// startServer starts the flavor's server from the test's my.cnf, as the mysqld container does,
// and returns a function that stops it; the cleanup stops it too.
func startServer(t *testing.T, flavor gtid.Flavor, root, inner string) (stop func()) {
	cmd := exec.Command(mysqldPath(flavor), "--defaults-file="+inner+"/my.cnf", "--log-error="+inner+"/error.log")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Chroot: root}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	socket := filepath.Join(root, inner, "run", "mysqld.sock")
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if _, err := os.Stat(socket); err == nil {
			return stop
		}
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(root, inner, "error.log"))
			t.Fatalf("%s exited: %v\n%s", flavor, err, log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not open its socket", flavor)
		}
	}
}

func openSocket(t *testing.T, socket, user, password string) *sql.DB {
	t.Helper()
	c := mysql.NewConfig()
	c.Net, c.Addr, c.User, c.Passwd = "unix", socket, user, password
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("log in as %s: %v", user, err)
	}
	return db
}
