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

// member is one member's pod laid out on this machine: the files its containers see (ConfigMap
// and Secret volumes, the data and run dirs) under a scratch dir, host, which the flavor's server
// sees as inner (MySQL runs in its Debian sid root). Its server runs as root and listens on a
// free loopback port, so my.cnf says so.
type member struct {
	flavor             gtid.Flavor
	m                  manifests
	pod                pod
	root, host, inner  string
	port               string // mysqld's, on 127.0.0.1
	passwords, initEnv map[string]string
}

// newMember renders the chart with valueFiles and lays out member ordinal's files. The auth
// Secret's passwords are replaced by ones with quotes and backslashes, which must reach the
// server as they are.
func newMember(t *testing.T, flavor gtid.Flavor, ordinal int, valueFiles ...string) *member {
	mb := &member{flavor: flavor, m: mustRender(t, valueFiles...), root: flavorRoot(flavor)}
	mb.pod = newPod(t, mb.m, ordinal)
	mysqld := container(t, statefulSet(t, mb.m).Spec.Template.Spec.Containers, "mysqld").Command[0]
	if _, err := os.Stat(filepath.Join(mb.root, mysqld)); err != nil {
		t.Fatalf("%s server is not installed (%v); install it with `make deps`", flavor, err)
	}
	host, err := os.MkdirTemp(filepath.Join(mb.root, "tmp"), "shoal-chart-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(host) })
	mb.host, mb.inner = host, "/"+strings.TrimPrefix(strings.TrimPrefix(host, mb.root), "/")
	spec := statefulSet(t, mb.m).Spec.Template.Spec
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		mb.materialize(t, &c)
	}
	for _, d := range []string{"/data", "/run/mysqld", "/run/shoal-mysql"} {
		if err := os.MkdirAll(mb.path(d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	cnf := mb.path("/etc/shoal/mysql/my.cnf")
	b, err := os.ReadFile(cnf)
	if err != nil {
		t.Fatalf("my.cnf is not where the containers mount it: %v", err)
	}
	mb.port = freePort(t)
	b = []byte(strings.NewReplacer("/data/", mb.inner+"/data/", "/run/", mb.inner+"/run/").Replace(string(b)))
	// Last, so they win: a free loopback port, and root's server.
	b = fmt.Appendf(b, "[mysqld]\nport = %s\nbind-address = 127.0.0.1\nuser = root\n", mb.port)
	writeFile(t, cnf, string(b))
	mb.passwords = map[string]string{"root-password": `r'o\o"t`, "admin-password": `ad''min\\`,
		"repl-password": "repl-pw", "app-password": `a\'pp`}
	for k, v := range mb.passwords {
		writeFile(t, mb.path("/etc/shoal/auth/"+k), v)
	}
	mb.initEnv = mb.pod.env(t, container(t, spec.InitContainers, "init-mysql"))
	for _, k := range []string{"DATADIR", "DEFAULTS_FILE", "POD_CNF", "SECRETS"} {
		mb.initEnv[k] = mb.inner + mb.initEnv[k]
	}
	return mb
}

// path is where the pod's file p is on this machine.
func (mb *member) path(p string) string { return filepath.Join(mb.host, p) }

// materialize writes the files of c's ConfigMap and Secret mounts.
func (mb *member) materialize(t *testing.T, c *corev1.Container) {
	for _, vm := range c.VolumeMounts {
		v := mb.pod.volumes[vm.Name]
		data := map[string][]byte{}
		switch {
		case v.ConfigMap != nil:
			var cm corev1.ConfigMap
			mb.m.get(t, "ConfigMap", v.ConfigMap.Name, &cm)
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
		case v.Secret != nil:
			var s corev1.Secret
			mb.m.get(t, "Secret", v.Secret.SecretName, &s)
			data = s.Data
		default:
			continue
		}
		for k, b := range data {
			p := filepath.Join(vm.MountPath, k)
			if vm.SubPath != "" {
				if k != vm.SubPath {
					continue
				}
				p = vm.MountPath
			}
			if err := os.MkdirAll(filepath.Dir(mb.path(p)), 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(mb.path(p), b, 0o440); err != nil && !os.IsExist(err) {
				t.Fatal(err)
			}
		}
	}
}

// initialize runs the chart's init-mysql.sh as the init container does, inside the flavor's root.
func (mb *member) initialize(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", mb.inner+"/etc/shoal/scripts/init-mysql.sh")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	for k, v := range mb.initEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Chroot: mb.root}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("init-mysql.sh: %v\n%s", err, out)
	}
	return string(out)
}

// TestInitScript runs the chart's init-mysql.sh on a real server of each flavor with nothing
// but the rendered my.cnf and the Secret's files, as the init container does, then starts the
// server from the same my.cnf and checks the accounts, the member's settings, and that the new
// server holds no transactions of its own.
func TestInitScript(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		mb := newMember(t, flavor, 2, fmt.Sprintf("ci/test-values-%s.yaml", flavor))
		env := mb.initEnv
		mb.initialize(t)
		if _, err := os.Stat(mb.path("/data/mysql.init")); !os.IsNotExist(err) {
			t.Errorf("the scratch data dir is left behind (%v)", err)
		}
		podCnf, err := os.ReadFile(mb.path("/run/shoal-mysql/pod.cnf"))
		if err != nil {
			t.Fatal(err)
		}
		if want := "server_id = 102\nreport_host = " + env["REPORT_HOST"] + "\n"; !strings.Contains(string(podCnf), want) {
			t.Errorf("pod.cnf:\n%s\nwant it to hold\n%s", podCnf, want)
		}

		stop := mb.startServer(t)
		socket := mb.path("/run/mysqld/mysqld.sock")
		passwords := mb.passwords
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
		if out := mb.initialize(t); !strings.Contains(out, "exists") {
			t.Errorf("second run did not see the initialized data dir:\n%s", out)
		}
	})
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

// startServer starts the flavor's server as the mysqld container does, and returns a function
// that stops it; the cleanup stops it too.
func (mb *member) startServer(t *testing.T) (stop func()) {
	flavor, root, inner := mb.flavor, mb.root, mb.inner
	argv := container(t, statefulSet(t, mb.m).Spec.Template.Spec.Containers, "mysqld").Command
	var args []string
	for _, a := range argv[1:] {
		if k, v, ok := strings.Cut(a, "=/"); ok {
			a = k + "=" + inner + "/" + v
		}
		args = append(args, a)
	}
	args = append(args, "--log-error="+inner+"/error.log") // --defaults-file must stay first
	cmd := exec.Command(argv[0], args...)
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
	socket := mb.path("/run/mysqld/mysqld.sock")
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
