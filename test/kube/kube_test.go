package kube

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// startForTest starts the rig or skips when it is not built and not required.
func startForTest(t *testing.T) *Cluster { return startForTestWith(t, Options{NoShoalImage: true}) }

// startForTestWith starts the rig with o (its Log set here) and stops it when the test ends.
func startForTestWith(t testing.TB, o Options) *Cluster {
	t.Helper()
	if m := Missing(); len(m) > 0 {
		t.Fatalf("kube rig not built (make deps builds it): missing %v", m)
	}
	if !o.NoShoalImage && o.ShoalImage == "" {
		tar, err := builtShoalImage()
		if err != nil {
			t.Fatal(err)
		}
		o.ShoalImage = tar
	}
	before := readSysctls()
	start := time.Now()
	o.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	c, err := Start(t.Context(), o)
	if err != nil {
		t.Fatalf("start kube rig: %v", err)
	}
	t.Logf("cluster up in %v (logs in %s/logs)", time.Since(start).Round(time.Millisecond), c.Dir())
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, c)
		}
		stop := time.Now()
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
		t.Logf("cluster stopped in %v", time.Since(stop).Round(time.Millisecond))
		if left := Leftovers(c.Dir()); len(left) > 0 {
			t.Errorf("left after Stop:\n%s", strings.Join(left, "\n"))
		}
		if after := readSysctls(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("sysctls not restored: before %v, after %v", before, after)
		}
	})
	return c
}

// builtShoalImage builds the shoal image once for the test binary: the source does not change
// while it runs, and a build (go build and link) costs each rig start seconds of CPU.
var builtShoalImage = sync.OnceValues(func() (string, error) {
	return BuildShoalImage(context.Background(), slog.New(slog.DiscardHandler))
})

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func readSysctls() map[string]string {
	vals := map[string]string{}
	for _, k := range touchedSysctls {
		if b, err := os.ReadFile(sysctlPath(k)); err == nil {
			vals[k] = strings.TrimSpace(string(b))
		}
	}
	return vals
}

func dumpLogs(t testing.TB, c *Cluster) {
	out, _ := exec.Command("sh", "-c", "tail -n 15 "+c.Dir()+"/logs/*.log").CombinedOutput()
	t.Logf("component logs:\n%s", out)
	// What the agents saw and decided (a heal that did not come, a failover that did): the
	// test's context is done by now, so kubectl gets its own.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ = exec.CommandContext(ctx, Bin("kubectl"), "--kubeconfig", c.Kubeconfig, "logs", "-l", "shoal.io/role",
		"-c", "shoal", "--tail", "40", "--prefix").CombinedOutput()
	t.Logf("agent logs:\n%s", out)
}

func kubectl(t testing.TB, c *Cluster, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, Bin("kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// mariadbPod runs a real MariaDB server from the rig's image on one node, with a user that may
// connect from anywhere.
func mariadbPod(name, node string) *corev1.Pod {
	script := `set -e
mariadb-install-db --datadir=/tmp/data --auth-root-authentication-method=normal >/tmp/install.log 2>&1
mariadbd --datadir=/tmp/data --socket=/tmp/mysqld.sock --bind-address=0.0.0.0 --port=3306 --skip-name-resolve &
until mariadb-admin --socket=/tmp/mysqld.sock -uroot ping >/dev/null 2>&1; do sleep 0.2; done
mariadb --socket=/tmp/mysqld.sock -uroot -e "CREATE USER rig@'%' IDENTIFIED BY 'rig'; GRANT ALL ON *.* TO rig@'%'"
wait`
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "rig-mariadb", "pod": name}},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To(int64(1)),
			Containers: []corev1.Container{{
				Name: "mariadb", Image: MariaDBImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", script},
				// Ready once the user exists and the server answers over TCP.
				ReadinessProbe: &corev1.Probe{
					ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{
						"mariadb", "-h", "127.0.0.1", "-urig", "-prig", "-e", "SELECT 1"}}},
					PeriodSeconds: 1, TimeoutSeconds: 5,
				},
			}},
		},
	}
}

func waitPodsReady(t testing.TB, c *Cluster, selector string, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	err := poll(t.Context(), 3*time.Minute, fmt.Sprintf("%d pods %s Ready", n, selector), func() error {
		list, err := c.Client.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		ready := 0
		for _, p := range list.Items {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready != n {
			return fmt.Errorf("%d of %d Ready", ready, n)
		}
		pods = list.Items
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	return pods
}

// query runs a SQL statement with the mariadb client inside pod, against host.
func query(t *testing.T, c *Cluster, pod, host, sql string) string {
	t.Helper()
	out, err := tryQuery(t, c, pod, host, sql)
	if err != nil {
		t.Fatalf("query %q from %s to %s: %v: %s", sql, pod, host, err, out)
	}
	return out
}

// tryQuery runs sql with the client in pod against host. A connection attempt gives up after
// 5 s: a ClusterIP that kube-proxy has not programmed yet drops the SYN, and the client's own
// default would wait out the caller's whole poll on one try.
func tryQuery(t *testing.T, c *Cluster, pod, host, sql string) (string, error) {
	t.Helper()
	return kubectl(t, c, "exec", pod, "--", "mariadb", "--connect-timeout=5", "-h", host, "-urig", "-prig", "-N", "-B", "-e", sql)
}

func TestCluster(t *testing.T) {
	c := startForTest(t)
	ctx := t.Context()
	for name, rss := range c.RSS() {
		t.Logf("RSS %-28s %4d MB", name, rss>>20)
	}

	nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 3 {
		t.Fatalf("%d nodes, want 3", len(nodes.Items))
	}

	t.Run("pods on every node reach each other by pod IP", func(t *testing.T) {
		for _, n := range c.Nodes() {
			if _, err := c.Client.CoreV1().Pods("default").Create(ctx, mariadbPod("mdb-"+n.Name, n.Name), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		pods := waitPodsReady(t, c, "app=rig-mariadb", 3)
		for i, p := range pods {
			if want := c.Nodes()[i].Name; p.Spec.NodeName != want {
				t.Errorf("%s on %s, want %s", p.Name, p.Spec.NodeName, want)
			}
			next := pods[(i+1)%len(pods)]
			if got := query(t, c, p.Name, next.Status.PodIP, "SELECT @@hostname"); got != next.Name {
				t.Errorf("%s -> %s (%s): hostname %q, want %q", p.Name, next.Name, next.Status.PodIP, got, next.Name)
			}
		}
	})

	t.Run("a ClusterIP Service through kube-proxy and its DNS name", func(t *testing.T) {
		target := "mdb-" + c.Nodes()[1].Name
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "rig-db"},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"pod": target},
				Ports:    []corev1.ServicePort{{Port: 3306, TargetPort: intstr.FromInt32(3306)}},
			},
		}
		svc, err := c.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		from := "mdb-" + c.Nodes()[0].Name
		err = poll(ctx, time.Minute, "the Service's ClusterIP", func() error {
			out, err := tryQuery(t, c, from, svc.Spec.ClusterIP, "SELECT @@hostname")
			if err == nil && out != target {
				err = fmt.Errorf("reached %q, want %q", out, target)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := query(t, c, from, "rig-db.default.svc."+DNSDomain, "SELECT @@hostname"); got != target {
			t.Errorf("through the DNS name: %q, want %q", got, target)
		}
		out, err := kubectl(t, c, "exec", from, "--", "getent", "hosts", "rig-db")
		if err != nil || !strings.HasPrefix(out, svc.Spec.ClusterIP+" ") {
			t.Errorf("getent hosts rig-db (search path) = %q, %v; want %s", out, err, svc.Spec.ClusterIP)
		}
	})

	t.Run("RBAC refuses a ServiceAccount without a Role", func(t *testing.T) {
		sa, err := c.Client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "rig-norole"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := c.Client.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		caData, err := os.ReadFile(c.pki.path("ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := &rest.Config{Host: "https://" + ControlIP + ":6443", BearerToken: tok.Status.Token,
			TLSClientConfig: rest.TLSClientConfig{CAData: caData}}
		as, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := as.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("list pods as %s without a Role: %v, want Forbidden", sa.Name, err)
		}
		// The same token with a Role that allows it: the refusal above was RBAC, not authentication.
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "rig-list-pods"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}}
		if _, err := c.Client.RbacV1().Roles("default").Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "rig-list-pods"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: "default"}}}
		if _, err := c.Client.RbacV1().RoleBindings("default").Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		err = poll(ctx, 30*time.Second, "the RoleBinding to take effect", func() error {
			_, err := as.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := as.CoreV1().Pods("default").Delete(ctx, "mdb-"+c.Nodes()[0].Name, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("delete a pod with only list granted: %v, want Forbidden", err)
		}
	})

	t.Run("a lost node goes NotReady and comes back", func(t *testing.T) {
		n := c.Nodes()[2]
		lost := time.Now()
		if err := c.LoseNode(ctx, n); err != nil {
			t.Fatal(err)
		}
		if pids := alive(append(cgroupPIDs(n.cgroupRoot()), pidsWithArg(n.socket())...)); len(pids) > 0 {
			for _, p := range pids {
				cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
				stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
				t.Errorf("process of lost node %s still running: %d %q %s", n.Name, p, cmd, stat)
			}
		}
		err := poll(ctx, 90*time.Second, n.Name+" NotReady", func() error {
			node, err := c.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status != corev1.ConditionTrue {
					return nil
				}
			}
			return fmt.Errorf("%s still Ready", n.Name)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s NotReady %v after it was lost", n.Name, time.Since(lost).Round(time.Millisecond))
		restored := time.Now()
		if err := c.RestoreNode(ctx, n); err != nil {
			t.Fatal(err)
		}
		if err := c.waitNodesReady(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		waitPodsReady(t, c, "app=rig-mariadb", 3)
		t.Logf("%s Ready and its pod serving again %v after restore", n.Name, time.Since(restored).Round(time.Millisecond))
	})

	// Last, as it ends c: a run that died without Stop leaves every process, mount, address and
	// chain behind (here the pods, Service and RBAC objects above too); the next Start must
	// clean all of it and come up. After a failure above it is left out: it would replace the
	// rig whose component logs the cleanup shows (a CI failure came without them).
	if t.Failed() {
		return
	}
	t.Run("Start after a crashed run", func(t *testing.T) {
		c.unlock() // the crashed process's lock died with it; nothing was torn down
		next, err := Start(t.Context(), Options{NoShoalImage: true, Nodes: 1})
		if err != nil {
			t.Fatalf("start over a crashed run: %v", err)
		}
		nodes, err := next.Client.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			t.Fatalf("nodes after restart: %v, %v; want only node-1 of the new run", nodes, err)
		}
		if err := next.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
