package webhook

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testConfig() Config {
	return Config{
		StatefulSet: "db", Replicas: 3, Flavor: "mariadb", MySQLD: "/usr/sbin/mariadbd",
		Image: "shoal.local/shoal:dev", ImagePullPolicy: corev1.PullNever,
		ConfigMap: "db", Secrets: Secrets{Auth: "db-auth", Gossip: "db-gossip", Admin: "db-admin", TLS: "db-tls"},
		ServiceAccount: "db", HeadlessService: "db-headless", ClusterDomain: "cluster.local", Advertise: "dns",
		MySQLPort: 3306, ServerIDOffset: 100, Accounts: Accounts{AdminUser: "shoal_admin"},
		Ports:     Ports{Gossip: 7946, Raft: 7947, Admin: 7948},
		Probes:    Probes{PeriodSeconds: 5, TimeoutSeconds: 3, LivenessFailureThreshold: 6, ReadinessFailureThreshold: 2},
		RunAsUser: 999, RunAsGroup: 999, FSGroup: 999,
		Labels: map[string]string{"app.kubernetes.io/name": "shoal", "app.kubernetes.io/instance": "db", "shoal.io/cluster": "db"},
	}
}

// userPod is a pod as the StatefulSet controller of a user's own MariaDB StatefulSet creates it,
// after the service account admission: nothing of shoal in it but the label.
func userPod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "db-1", Namespace: "app",
			Labels: map[string]string{"app": "db", InjectLabel: "true"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: ptr(true),
			}},
		},
		Spec: corev1.PodSpec{
			Hostname: "db-1", Subdomain: "db", ServiceAccountName: "default",
			Containers: []corev1.Container{{
				Name: "mariadb", Image: "shoal.local/mariadb:10.11",
				Command: []string{"docker-entrypoint.sh", "mariadbd"},
				Args:    []string{"--innodb-buffer-pool-size=64M", "--max-connections", "100"},
				Ports:   []corev1.ContainerPort{{Name: "mysql", ContainerPort: 3306}},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "data", MountPath: "/var/lib/mysql"},
					{Name: "kube-api-access-x", MountPath: saPath, ReadOnly: true},
				},
			}},
			Volumes: []corev1.Volume{{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
}

// apply applies patch to pod as the apiserver does, and decodes the result.
func apply(t *testing.T, pod *corev1.Pod, patch []Op) *corev1.Pod {
	t.Helper()
	doc, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(patch)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := jsonpatch.DecodePatch(p)
	if err != nil {
		t.Fatalf("decode patch: %v", err)
	}
	out, err := decoded.Apply(doc)
	if err != nil {
		t.Fatalf("apply patch: %v\n%s", err, p)
	}
	var res corev1.Pod
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func container(cs []corev1.Container, name string) *corev1.Container {
	i := slices.IndexFunc(cs, func(c corev1.Container) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	return &cs[i]
}

func envValue(c *corev1.Container, name string) (string, string) {
	for _, e := range c.Env {
		if e.Name == name {
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				return "", e.ValueFrom.FieldRef.FieldPath
			}
			return e.Value, ""
		}
	}
	return "", ""
}

func TestInjectUserPod(t *testing.T) {
	pod := userPod()
	res, err := Inject(pod, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Patch) == 0 {
		t.Fatalf("no patch: %s", res.Reason)
	}
	out := apply(t, pod, res.Patch)

	agent := container(out.Spec.InitContainers, AgentContainer)
	if agent == nil {
		t.Fatalf("no agent init container in %+v", out.Spec.InitContainers)
	}
	if agent.RestartPolicy == nil || *agent.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("agent restartPolicy %v, want Always (a native sidecar)", agent.RestartPolicy)
	}
	if init := slices.IndexFunc(out.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == "shoal-init" }); init != 0 {
		t.Errorf("shoal-init at %d, want before the agent", init)
	}
	for name, path := range map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace", "POD_IP": "status.podIP"} {
		if _, got := envValue(agent, name); got != path {
			t.Errorf("agent env %s from %q, want the Downward API's %s", name, got, path)
		}
	}
	if v, _ := envValue(agent, "SHOAL_MYSQL_ADVERTISE_ADDR"); v != "$(POD_NAME).db-headless.$(POD_NAMESPACE).svc.cluster.local:3306" {
		t.Errorf("advertised MySQL address %q", v)
	}
	if agent.ReadinessProbe == nil || agent.ReadinessProbe.HTTPGet.Path != "/readyz" || agent.LivenessProbe == nil || agent.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %+v liveness %+v", agent.ReadinessProbe, agent.LivenessProbe)
	}
	if len(agent.Ports) != 4 {
		t.Errorf("agent ports %+v, want gossip (TCP, UDP), raft, admin", agent.Ports)
	}
	if !slices.ContainsFunc(agent.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == saPath }) {
		t.Error("the agent has no API credentials mounted")
	}

	mysqld := container(out.Spec.Containers, "mariadb")
	want := []string{"/usr/sbin/mariadbd", "--defaults-file=" + myCnfPath, "--innodb-buffer-pool-size=64M", "--max-connections", "100"}
	if !slices.Equal(mysqld.Command, want) || mysqld.Args != nil {
		t.Errorf("mysqld command %q args %q, want %q", mysqld.Command, mysqld.Args, want)
	}
	if mysqld.Lifecycle == nil || mysqld.Lifecycle.PreStop == nil {
		t.Error("mysqld has no preStop handing the primary over")
	}
	for _, m := range []string{dataPath, runMySQLD, podCnfDir, myCnfPath} {
		if !slices.ContainsFunc(mysqld.VolumeMounts, func(v corev1.VolumeMount) bool { return v.MountPath == m }) {
			t.Errorf("mysqld does not mount %s", m)
		}
	}
	for _, v := range []string{"shoal-config", "shoal-auth", "shoal-gossip", "shoal-admin", "shoal-tls", "shoal-kube-api", "kube-api-access-x"} {
		if !slices.ContainsFunc(out.Spec.Volumes, func(u corev1.Volume) bool { return u.Name == v }) {
			t.Errorf("no volume %s", v)
		}
	}
	if out.Labels["app"] != "db" || out.Labels["shoal.io/cluster"] != "db" || out.Labels["app.kubernetes.io/instance"] != "db" {
		t.Errorf("labels %v: want the user's and the chart's", out.Labels)
	}
	if out.Spec.Subdomain != "db-headless" || out.Spec.ServiceAccountName != "db" {
		t.Errorf("subdomain %q service account %q", out.Spec.Subdomain, out.Spec.ServiceAccountName)
	}
	if out.Spec.SecurityContext == nil || out.Spec.SecurityContext.FSGroup == nil || *out.Spec.SecurityContext.FSGroup != 999 {
		t.Errorf("pod security context %+v: want fsGroup 999", out.Spec.SecurityContext)
	}
	if out.Spec.ShareProcessNamespace == nil || !*out.Spec.ShareProcessNamespace || out.Spec.EnableServiceLinks == nil || *out.Spec.EnableServiceLinks {
		t.Error("want a shared process namespace and no service links")
	}

	// A second admission of the injected pod changes nothing.
	again, err := Inject(out, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Patch) != 0 {
		t.Fatalf("second injection patched %d fields: %+v", len(again.Patch), again.Patch)
	}
}

func TestInjectKeepsUserSettings(t *testing.T) {
	pod := userPod()
	pod.Spec.ServiceAccountName = "mine"
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr(int64(27))}
	pod.Labels = nil
	pod.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
	res, err := Inject(pod, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	out := apply(t, pod, res.Patch)
	if out.Spec.ServiceAccountName != "mine" || *out.Spec.SecurityContext.FSGroup != 27 {
		t.Errorf("service account %q fsGroup %d: want the user's", out.Spec.ServiceAccountName, *out.Spec.SecurityContext.FSGroup)
	}
	if got := out.Spec.Containers[0].Lifecycle.PreStop.Exec.Command; !slices.Equal(got, []string{"true"}) {
		t.Errorf("preStop %q, want the user's", got)
	}
	if out.Labels["shoal.io/cluster"] != "db" {
		t.Errorf("labels %v", out.Labels)
	}
}

func TestInjectLeavesOrRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(p *corev1.Pod)
		refuse string // "": no patch, no error
	}{
		{"not a StatefulSet's pod", func(p *corev1.Pod) { p.OwnerReferences = nil }, ""},
		{"another StatefulSet's pod", func(p *corev1.Pod) { p.OwnerReferences[0].Name = "other" }, ""},
		{"owner not the controller", func(p *corev1.Pod) { p.OwnerReferences[0].Controller = nil }, ""},
		{"already injected", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: AgentContainer}}
		}, ""},
		{"no data volume", func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts = nil }, "mounts no whole volume at /var/lib/mysql"},
		{"data volume by subPath", func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].SubPath = "x" }, "mounts no whole volume"},
		{"annotated container missing", func(p *corev1.Pod) {
			p.Annotations = map[string]string{MySQLContainerAnnotation: "mysql"}
		}, `names container "mysql"`},
		{"shoal's own option", func(p *corev1.Pod) { p.Spec.Containers[0].Args = []string{"--server_id=7"} }, "--server_id=7"},
		{"datadir option", func(p *corev1.Pod) { p.Spec.Containers[0].Args = []string{"--datadir=/x"} }, "--datadir"},
		{"volume name taken", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "shoal-tls"})
		}, "volume named shoal-tls"},
		{"mount path taken", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "run", MountPath: runMySQLD})
		}, "already mounts /run/mysqld"},
		{"no name", func(p *corev1.Pod) { p.Name = "" }, "not named db-<ordinal>"},
		{"beyond the chart's replicas", func(p *corev1.Pod) { p.Name = "db-3" }, "upgrade it with replicas=4"},
		{"not an ordinal", func(p *corev1.Pod) { p.Name = "db-x" }, "not named db-<ordinal>"},
		{"negative ordinal", func(p *corev1.Pod) { p.Name = "db--1" }, "not named db-<ordinal>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := userPod()
			tc.change(pod)
			res, err := Inject(pod, testConfig())
			switch {
			case tc.refuse == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refuse == "" && len(res.Patch) > 0:
				t.Fatalf("patched %+v (%s)", res.Patch, res.Reason)
			case tc.refuse == "" && res.Reason == "":
				t.Fatal("no reason")
			case tc.refuse != "" && (err == nil || !strings.Contains(err.Error(), tc.refuse)):
				t.Fatalf("got %v, want a refusal saying %q", err, tc.refuse)
			}
		})
	}
}

func TestInjectNamedContainerAndIPAdvertise(t *testing.T) {
	pod := userPod()
	pod.Annotations = map[string]string{MySQLContainerAnnotation: "db"}
	side := corev1.Container{Name: "exporter", Image: "x"}
	db := pod.Spec.Containers[0]
	db.Name, db.Command, db.Args = "db", nil, nil
	pod.Spec.Containers = []corev1.Container{side, db}
	cfg := testConfig()
	cfg.Advertise = "ip"
	res, err := Inject(pod, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := apply(t, pod, res.Patch)
	if c := out.Spec.Containers[0]; c.Command != nil {
		t.Errorf("the exporter was changed: %q", c.Command)
	}
	if c := out.Spec.Containers[1]; !slices.Equal(c.Command, []string{"/usr/sbin/mariadbd", "--defaults-file=" + myCnfPath}) {
		t.Errorf("db command %q", c.Command)
	}
	if v, _ := envValue(container(out.Spec.InitContainers, AgentContainer), "SHOAL_MYSQL_ADVERTISE_ADDR"); v != "$(POD_IP):3306" {
		t.Errorf("advertised %q", v)
	}
}

func TestParseConfig(t *testing.T) {
	good, err := json.Marshal(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig(good); err != nil {
		t.Fatalf("the test config: %v", err)
	}
	if _, err := ParseConfig([]byte(`{"statefulSet":"db","surprise":1}`)); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Errorf("unknown key: %v", err)
	}
	_, err = ParseConfig([]byte(`{"flavor":"postgres","mysqlPort":70000}`))
	for _, want := range []string{"replicas 0", "statefulSet: required", `flavor "postgres"`, "mysqlPort 70000", "secrets.tls: required", "labels: required", "serverIdOffset 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q among the problems, got %v", want, err)
		}
	}
}
