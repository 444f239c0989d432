package chart

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/shoal-db/shoal/agent/config"
	"github.com/shoal-db/shoal/consensus/peertls"
)

// everythingOn turns on every optional part and moves every choice off its default.
const everythingOn = `
flavor: mysql
replicas: 5
storage:
  type: persistentVolumeClaim
  storageClass: fast
  size: 50Gi
metrics:
  serviceMonitor: {enabled: true, labels: {release: prom}}
  dashboard: {enabled: true}
heal: {enabled: true, grace: 2m, minInterval: 10m, deleteVolume: true, forceDeleteTerminating: true}
antiAffinity: hard
agent:
  advertise: ip
  config:
    ha: {lease: 4s, detection_timeout: 2s}
auth:
  app: {database: shop, username: shop}
podLabels: {team: db}
podAnnotations: {note: x}
imagePullSecrets: [{name: regcred}]
tolerations: [{key: db, operator: Exists}]
nodeSelector: {disk: ssd}
priorityClassName: db
service: {type: LoadBalancer, annotations: {a: b}}
serviceAccount: {annotations: {a: b}}
`

// bareMinimum turns every optional part off.
const bareMinimum = `
storage: {type: emptyDir}
serviceAccount: {create: false, name: shoal-agent}
rbac: {create: false}
podDisruptionBudget: {enabled: false}
topologySpread: {enabled: false}
agent: {killFrozenPrimary: false}
`

// valueSets are the renders every structural test checks: a file of the chart's, or inline values.
var valueSets = map[string]struct{ file, inline string }{
	"defaults":      {},
	"ci-mariadb":    {file: "ci/test-values-mariadb.yaml"},
	"ci-mysql":      {file: "ci/test-values-mysql.yaml"},
	"everything-on": {inline: everythingOn},
	"bare-minimum":  {inline: bareMinimum},
	"hostpath":      {inline: "storage: {type: hostPath}"},
}

// rendered holds each value set's render, made once for all tests (helm takes a while).
var rendered sync.Map // name -> manifests

func renderSet(t *testing.T, name string) manifests {
	if m, ok := rendered.Load(name); ok {
		return m.(manifests)
	}
	set := valueSets[name]
	var files []string
	if set.file != "" {
		files = append(files, set.file)
	}
	if set.inline != "" {
		files = append(files, valuesFile(t, set.inline))
	}
	m, _ := rendered.LoadOrStore(name, mustRender(t, files...))
	return m.(manifests)
}

func eachValueSet(t *testing.T, f func(t *testing.T, m manifests)) {
	for name := range valueSets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, renderSet(t, name))
		})
	}
}

func TestLintStrict(t *testing.T) {
	for _, files := range [][]string{nil, {"ci/test-values-mariadb.yaml"}, {"ci/test-values-mysql.yaml"}} {
		t.Run(fmt.Sprint(files), func(t *testing.T) {
			t.Parallel()
			args := []string{"lint", "--strict", "--kube-version", kubeVersion, chartDir(t)}
			for _, f := range files {
				args = append(args, "--values", filepath.Join(chartDir(t), f))
			}
			out, err := helm(t, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(out, "0 chart(s) failed") || strings.Contains(out, "[WARNING]") {
				t.Fatalf("lint is not clean:\n%s", out)
			}
		})
	}
}

// TestBadValuesRefused: a wrong value fails the render with a message naming it.
func TestBadValuesRefused(t *testing.T) {
	for _, c := range []struct{ values, want string }{
		{"flavor: postgres", "flavor"},
		{"replica: 3", "replica"},
		{"replicas: three", "replicas"},
		{"replicas: 12", "replicas"},
		{"storage: {type: nfs}", "storage"},
		{"agent: {advertise: hostname}", "advertise"},
		{"agent: {config: {hq: {tick: 1s}}}", "hq"},
		{"mysql: {semiSync: fast}", "semiSync"},
		{"auth: {adminUser: \"x'; DROP USER root; --\"}", "adminUser"},
		{"metrics: {serviceMonitor: {enabled: true, intervall: 1m}}", "intervall"},
		// Not the schema's: the chart explains what cannot work together.
		{"replicas: 1", "mysql.semiSync lossless needs replicas >= 2"},
		{"mysql: {semiSyncAcks: 3}", "mysql.semiSyncAcks (3) must be below replicas (3)"},
		{"heal: {enabled: true, grace: 5 minutes}", "grace"},
		{"heal: {forceDeleteTerminating: true}", "heal.deleteVolume and heal.forceDeleteTerminating need heal.enabled"},
	} {
		t.Run(c.values, func(t *testing.T) {
			t.Parallel()
			_, err := render(t, valuesFile(t, c.values))
			if err == nil {
				t.Fatalf("values %q rendered", c.values)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("the error does not name %q: %v", c.want, err)
			}
		})
	}
	// The schema's refusals say that it is the schema speaking.
	_, err := render(t, valuesFile(t, "flavor: postgres"))
	if err == nil || !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
		t.Fatalf("want helm's schema error, got %v", err)
	}
}

// typed returns an empty object of the Kubernetes type of kind, and the apiVersion it must have.
func typed(kind string) (any, string) {
	switch kind {
	case "StatefulSet":
		return &appsv1.StatefulSet{}, "apps/v1"
	case "Service":
		return &corev1.Service{}, "v1"
	case "ConfigMap":
		return &corev1.ConfigMap{}, "v1"
	case "Secret":
		return &corev1.Secret{}, "v1"
	case "ServiceAccount":
		return &corev1.ServiceAccount{}, "v1"
	case "Role":
		return &rbacv1.Role{}, "rbac.authorization.k8s.io/v1"
	case "RoleBinding":
		return &rbacv1.RoleBinding{}, "rbac.authorization.k8s.io/v1"
	case "ClusterRole":
		return &rbacv1.ClusterRole{}, "rbac.authorization.k8s.io/v1"
	case "ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}, "rbac.authorization.k8s.io/v1"
	case "PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, "policy/v1"
	case "ServiceMonitor":
		return &serviceMonitor{}, "monitoring.coreos.com/v1"
	}
	return nil, ""
}

// serviceMonitor is the part of the Prometheus operator's type the chart uses (the module is
// not worth a dependency); strict decoding makes it the whole of what the chart may write.
type serviceMonitor struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   map[string]any     `json:"metadata"`
	Spec       serviceMonitorSpec `json:"spec"`
}

type serviceMonitorSpec struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	Endpoints []struct {
		Port      string `json:"port"`
		Path      string `json:"path"`
		Scheme    string `json:"scheme"`
		Interval  string `json:"interval"`
		TLSConfig struct {
			InsecureSkipVerify bool `json:"insecureSkipVerify"`
		} `json:"tlsConfig"`
		Relabelings []struct {
			SourceLabels []string `json:"sourceLabels"`
			TargetLabel  string   `json:"targetLabel"`
		} `json:"relabelings"`
	} `json:"endpoints"`
}

func TestManifestsDecodeStrictly(t *testing.T) {
	eachValueSet(t, func(t *testing.T, m manifests) {
		for key, o := range m {
			into, apiVersion := typed(o.Kind)
			if into == nil {
				t.Errorf("%s: unexpected kind", key)
				continue
			}
			if o.APIVersion != apiVersion {
				t.Errorf("%s: apiVersion %q, want %q", key, o.APIVersion, apiVersion)
			}
			m.get(t, o.Kind, o.Metadata.Name, into)
		}
	})
}

// TestStrictDecodingCatchesTypos keeps the test above honest: a misspelled field must fail.
func TestStrictDecodingCatchesTypos(t *testing.T) {
	for _, bad := range []string{"spec: {clusterIp: None}", "spec: {selectr: {a: b}}"} {
		if err := decodeStrict([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"+bad+"\n"), &corev1.Service{}); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func statefulSet(t *testing.T, m manifests) *appsv1.StatefulSet {
	var s appsv1.StatefulSet
	m.get(t, "StatefulSet", fullname, &s)
	return &s
}

func container(t *testing.T, cs []corev1.Container, name string) *corev1.Container {
	t.Helper()
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func names(cs []corev1.Container) []string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return n
}

func TestAgentIsNativeSidecar(t *testing.T) {
	eachValueSet(t, func(t *testing.T, m manifests) {
		spec := statefulSet(t, m).Spec.Template.Spec
		inits := names(spec.InitContainers)
		// The data dir is ready before the agent starts, and the agent before mysqld.
		if i := slices.Index(inits, "init-mysql"); i < 0 || i != len(inits)-2 || inits[len(inits)-1] != "shoal" {
			t.Fatalf("init containers %v: want init-mysql then shoal last", inits)
		}
		for _, c := range spec.InitContainers {
			always := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
			if always != (c.Name == "shoal") {
				t.Errorf("init container %s: restartPolicy %s", c.Name, ptrString(c.RestartPolicy))
			}
		}
		agent := container(t, spec.InitContainers, "shoal")
		// A startup probe would hold mysqld back until the agent is up, and the agent is
		// not ready before mysqld is.
		if agent.StartupProbe != nil {
			t.Error("the agent has a startup probe: mysqld would never start")
		}
		for _, p := range []struct {
			probe *corev1.Probe
			path  string
		}{{agent.LivenessProbe, "/healthz"}, {agent.ReadinessProbe, "/readyz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Fatalf("no HTTP probe for %s", p.path)
			}
			g := p.probe.HTTPGet
			if g.Path != p.path || g.Port.String() != "admin" || g.Scheme != corev1.URISchemeHTTPS {
				t.Errorf("probe %+v: want %s on the admin port over HTTPS", g, p.path)
			}
		}
		if got := names(spec.Containers); !slices.Equal(got, []string{"mysqld"}) {
			t.Errorf("containers %v, want [mysqld]", got)
		}
		mysqld := container(t, spec.Containers, "mysqld")
		if len(mysqld.Command) == 0 || !strings.HasPrefix(mysqld.Command[0], "/usr/sbin/") {
			t.Errorf("mysqld command %v: the image's entrypoint must not be relied on", mysqld.Command)
		}
		if mysqld.LivenessProbe != nil {
			t.Error("mysqld has a liveness probe: a kubelet restart would race the agents' failover")
		}
		if spec.ShareProcessNamespace == nil || !*spec.ShareProcessNamespace {
			t.Error("the pod does not share its process namespace: the preStop cannot stop the agent first")
		}
		if s := statefulSet(t, m).Spec.PodManagementPolicy; s != appsv1.ParallelPodManagement {
			t.Errorf("podManagementPolicy %q: ordered start deadlocks, no pod is ready before a majority runs", s)
		}
		for _, v := range spec.Volumes {
			if v.Secret != nil && (v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0) {
				t.Errorf("secret volume %s is readable by others: the agent refuses world-readable secrets", v.Name)
			}
		}
	})
}

// TestVariablesDefined: every $(VAR) a container's environment or volume paths use is set
// before, as the kubelet needs (it leaves an unknown reference as it is).
func TestVariablesDefined(t *testing.T) {
	eachValueSet(t, func(t *testing.T, m manifests) {
		spec := statefulSet(t, m).Spec.Template.Spec
		p := newPod(t, m, 0)
		for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
			env := p.env(t, &c)
			for _, vm := range c.VolumeMounts {
				for _, ref := range envRef.FindAllStringSubmatch(vm.SubPathExpr, -1) {
					if _, ok := env[ref[1]]; !ok {
						t.Errorf("%s: mount %s uses $(%s), which its environment lacks", c.Name, vm.Name, ref[1])
					}
				}
			}
		}
	})
}

// TestRoleVerbs: the agent's Role grants exactly what agent/kube uses.
func TestRoleVerbs(t *testing.T) {
	want := map[string][]string{
		"/pods":                           {"get", "list", "patch", "watch"},
		"discovery.k8s.io/endpointslices": {"create", "delete", "get", "list", "patch", "update", "watch"},
		"/services":                       {"create", "get", "update"},
		"/events":                         {"create", "patch"},
		"events.k8s.io/events":            {"create", "patch"},
	}
	// The default updateStrategy OnDelete has the leader read the StatefulSet and evict pods;
	// healing deletes pods, marks a replaced pod's claim, and deletes it with deleteVolume.
	for name, c := range map[string]struct {
		values              string
		podsDelete, rolling bool
		claims              []string
	}{"default": {"", false, true, nil}, "RollingUpdate": {"updateStrategy: {type: RollingUpdate}", false, false, nil},
		"healing":              {"updateStrategy: {type: RollingUpdate}\nheal: {enabled: true}", true, false, []string{"get", "list", "patch", "watch"}},
		"healing with volumes": {"heal: {enabled: true, deleteVolume: true}", true, true, []string{"delete", "get", "list", "patch", "watch"}}} {
		t.Run(name, func(t *testing.T) {
			m := mustRender(t, valuesFile(t, c.values))
			var role rbacv1.Role
			m.get(t, "Role", fullname, &role)
			got := map[string][]string{}
			for _, r := range role.Rules {
				if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
					t.Errorf("unexpected rule %+v", r)
				}
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						k := g + "/" + res
						got[k] = append(got[k], r.Verbs...)
						sort.Strings(got[k])
					}
				}
			}
			w := map[string][]string{}
			for k, v := range want {
				w[k] = slices.Clone(v)
			}
			if c.podsDelete {
				w["/pods"] = []string{"delete", "get", "list", "patch", "watch"}
			}
			if c.claims != nil {
				w["/persistentvolumeclaims"] = c.claims
			}
			if c.rolling {
				w["apps/statefulsets"] = []string{"get", "list", "watch"}
				w["/pods/eviction"] = []string{"create"}
			}
			if fmt.Sprint(got) != fmt.Sprint(w) {
				t.Errorf("role rules\n got %v\nwant %v", got, w)
			}
			var rb rbacv1.RoleBinding
			m.get(t, "RoleBinding", fullname, &rb)
			if rb.RoleRef.Name != fullname || len(rb.Subjects) != 1 || rb.Subjects[0].Name != fullname || rb.Subjects[0].Namespace != namespace {
				t.Errorf("role binding %+v", rb)
			}
			// Healing reads Nodes, cluster wide, and nothing else.
			healing := strings.Contains(c.values, "heal:")
			nodes := namespace + "-" + fullname + "-nodes"
			var cr rbacv1.ClusterRole
			var crb rbacv1.ClusterRoleBinding
			switch {
			case !healing && (m.has("ClusterRole", nodes) || m.has("ClusterRoleBinding", nodes)):
				t.Error("a ClusterRole without healing")
			case healing:
				m.get(t, "ClusterRole", nodes, &cr)
				m.get(t, "ClusterRoleBinding", nodes, &crb)
				if fmt.Sprint(cr.Rules) != fmt.Sprint([]rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}}}) {
					t.Errorf("cluster role rules %+v", cr.Rules)
				}
				if crb.RoleRef.Name != nodes || len(crb.Subjects) != 1 || crb.Subjects[0].Name != fullname || crb.Subjects[0].Namespace != namespace {
					t.Errorf("cluster role binding %+v", crb)
				}
			}
			if sa := statefulSet(t, m).Spec.Template.Spec.ServiceAccountName; sa != fullname {
				t.Errorf("pods run as service account %q, want %q", sa, fullname)
			}
		})
	}
}

func TestServices(t *testing.T) {
	eachValueSet(t, func(t *testing.T, m manifests) {
		var headless corev1.Service
		m.get(t, "Service", fullname+"-headless", &headless)
		if headless.Spec.ClusterIP != "None" || !headless.Spec.PublishNotReadyAddresses {
			t.Errorf("headless service: clusterIP %q, publishNotReadyAddresses %v", headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses)
		}
		if sts := statefulSet(t, m); sts.Spec.ServiceName != headless.Name {
			t.Errorf("statefulset serviceName %q, want %q", sts.Spec.ServiceName, headless.Name)
		}
		for _, role := range []string{"primary", "replicas"} {
			var s corev1.Service
			m.get(t, "Service", fullname+"-"+role, &s)
			if len(s.Spec.Selector) != 0 {
				t.Errorf("%s has a selector %v: the agents write its endpoints", s.Name, s.Spec.Selector)
			}
			if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Name != "mysql" {
				t.Errorf("%s ports %+v", s.Name, s.Spec.Ports)
			}
		}
	})
}

// pod is what a test knows of one member's pod: its container's environment as the kubelet
// expands it, and the files its volumes show.
type pod struct {
	name, ip string
	m        manifests
	volumes  map[string]corev1.Volume
}

func newPod(t *testing.T, m manifests, ordinal int) pod {
	p := pod{name: fmt.Sprintf("%s-%d", fullname, ordinal), ip: "10.1.2.3", m: m, volumes: map[string]corev1.Volume{}}
	for _, v := range statefulSet(t, m).Spec.Template.Spec.Volumes {
		p.volumes[v.Name] = v
	}
	return p
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// env is c's environment as the kubelet sets it: field references resolved, $(VAR) expanded
// from the variables before it.
func (p pod) env(t *testing.T, c *corev1.Container) map[string]string {
	fields := map[string]string{"metadata.name": p.name, "metadata.namespace": namespace, "status.podIP": p.ip}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			v, ok := fields[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				t.Fatalf("%s: env %s: unexpected field %s", c.Name, e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = v
		case e.ValueFrom != nil:
			t.Fatalf("%s: env %s: unexpected source %+v", c.Name, e.Name, e.ValueFrom)
		default:
			env[e.Name] = envRef.ReplaceAllStringFunc(e.Value, func(ref string) string {
				v, ok := env[ref[2:len(ref)-1]]
				if !ok {
					t.Errorf("%s: env %s refers to %s, not set before it", c.Name, e.Name, ref)
					return ref
				}
				return v
			})
		}
	}
	return env
}

// file returns the content container c sees at path, from a ConfigMap or a Secret the chart
// renders; ok is false for a path on no such volume.
func (p pod) file(t *testing.T, c *corev1.Container, file string) (content string, ok bool) {
	for _, vm := range c.VolumeMounts {
		key, found := "", false
		switch {
		case vm.SubPath != "" && file == vm.MountPath:
			key, found = vm.SubPath, true
		case vm.SubPath == "" && path.Dir(file) == vm.MountPath:
			key, found = path.Base(file), true
		}
		if !found {
			continue
		}
		v := p.volumes[vm.Name]
		switch {
		case v.ConfigMap != nil:
			var cm corev1.ConfigMap
			p.m.get(t, "ConfigMap", v.ConfigMap.Name, &cm)
			content, ok = cm.Data[key]
			return content, ok
		case v.Secret != nil:
			var s corev1.Secret
			p.m.get(t, "Secret", v.Secret.SecretName, &s)
			b, ok := s.Data[key]
			return string(b), ok
		}
	}
	return "", false
}

// mountedIn reports whether c mounts the volume name at dir.
func mountedIn(c *corev1.Container, name, dir string) bool {
	for _, vm := range c.VolumeMounts {
		if vm.Name == name && vm.MountPath == dir && vm.SubPath == "" {
			return true
		}
	}
	return false
}

// TestAgentConfigAccepted: the agent's config file and environment, as a pod gets them, pass
// the agent's own loader and Validate, and every file they name is there.
func TestAgentConfigAccepted(t *testing.T) {
	eachValueSet(t, func(t *testing.T, m manifests) {
		sts := statefulSet(t, m)
		replicas := int(*sts.Spec.Replicas)
		p := newPod(t, m, 1)
		agent := container(t, sts.Spec.Template.Spec.InitContainers, "shoal")
		env := p.env(t, agent)
		args := slices.Clone(agent.Command[2:])
		i := slices.Index(args, "--config")
		if agent.Command[1] != "agent" || i < 0 {
			t.Fatalf("agent command %v", agent.Command)
		}
		text, ok := p.file(t, agent, args[i+1])
		if !ok {
			t.Fatalf("the agent's config file %s is on no volume", args[i+1])
		}
		args[i+1] = filepath.Join(t.TempDir(), "shoal.yaml")
		if err := os.WriteFile(args[i+1], []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		var environ []string
		for k, v := range env {
			environ = append(environ, k+"="+v)
		}
		cfg, err := config.Load("", environ, args)
		if err != nil {
			t.Fatalf("the agent does not load its config: %v\n%s", err, text)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("the agent refuses its config: %v\n%s", err, text)
		}
		if cfg.Node.ID != p.name || cfg.Cluster != fullname || cfg.Raft.BootstrapExpect != replicas {
			t.Errorf("node %q cluster %q bootstrap_expect %d", cfg.Node.ID, cfg.Cluster, cfg.Raft.BootstrapExpect)
		}
		if cfg.Raft.Advertise != "10.1.2.3:7947" || cfg.Gossip.Advertise != "10.1.2.3:7946" {
			t.Errorf("raft advertises %q, gossip %q: want the pod IP", cfg.Raft.Advertise, cfg.Gossip.Advertise)
		}
		if len(cfg.Gossip.Seeds) != replicas {
			t.Errorf("gossip seeds %v: want every member", cfg.Gossip.Seeds)
		}
		for i, s := range cfg.Gossip.Seeds {
			if want := fmt.Sprintf("%s-%d.%s-headless.%s.svc.cluster.local:7946", fullname, i, fullname, namespace); s != want {
				t.Errorf("seed %q, want %q", s, want)
			}
		}
		if host, _, _ := strings.Cut(cfg.MySQLAdvertise(), ":"); host != "10.1.2.3" && host != fmt.Sprintf("%s.%s-headless.%s.svc.cluster.local", p.name, fullname, namespace) {
			t.Errorf("mysql advertised as %q", cfg.MySQLAdvertise())
		}
		// Every file the agent reads is in the pod.
		files := map[string]string{"mysql.password_file": cfg.MySQL.PasswordFile, "mysql.repl_password_file": cfg.MySQL.ReplPasswordFile,
			"admin.token_file": cfg.Admin.TokenFile, "raft.tls.cert_file": cfg.Raft.CertFile, "raft.tls.key_file": cfg.Raft.KeyFile,
			"raft.tls.ca_file": cfg.Raft.CAFile}
		for i, f := range cfg.Gossip.KeyFiles {
			files[fmt.Sprintf("gossip.key_files[%d]", i)] = f
		}
		for key, f := range files {
			if content, ok := p.file(t, agent, f); !ok || content == "" {
				t.Errorf("%s: %s is not in the pod", key, f)
			}
		}
		// The agent reaches mysqld by its socket, and the pid file beside it, on a volume
		// both containers mount.
		mysqld := container(t, sts.Spec.Template.Spec.Containers, "mysqld")
		for _, f := range []string{cfg.MySQL.Addr, cfg.MySQL.PIDFile} {
			if f == "" {
				continue
			}
			if !mountedIn(agent, "run-mysqld", path.Dir(f)) || !mountedIn(mysqld, "run-mysqld", path.Dir(f)) {
				t.Errorf("%s is not on a volume both containers mount", f)
			}
		}
		init := container(t, sts.Spec.Template.Spec.InitContainers, "init-mysql")
		if got := p.env(t, init)["ADMIN_USER"]; got != cfg.MySQL.User {
			t.Errorf("the init container creates %q, the agent logs in as %q", got, cfg.MySQL.User)
		}
	})
}

// myCnf reads the chart's my.cnf: the [mysqld] settings (the last of a name wins, plugins
// collected) and its !include.
func myCnf(t *testing.T, m manifests) (settings map[string]string, plugins []string, include string) {
	var cm corev1.ConfigMap
	m.get(t, "ConfigMap", fullname, &cm)
	settings = map[string]string{}
	for line := range strings.Lines(cm.Data["my.cnf"]) {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "!include "); ok {
			include = rest
			continue
		}
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		k, v = strings.ReplaceAll(strings.TrimSpace(k), "_", "-"), strings.TrimSpace(v)
		if k == "plugin-load-add" {
			plugins = append(plugins, v)
		}
		settings[k] = v
	}
	return settings, plugins, include
}

func TestMySQLConfig(t *testing.T) {
	eachValueSet(t, func(t *testing.T, m manifests) {
		sts := statefulSet(t, m)
		p := newPod(t, m, 2)
		initEnv := p.env(t, container(t, sts.Spec.Template.Spec.InitContainers, "init-mysql"))
		settings, plugins, include := myCnf(t, m)
		mysql := initEnv["FLAVOR"] == "mysql"
		want := map[string]string{"datadir": initEnv["DATADIR"], "log-bin": "binlog", "binlog-format": "ROW",
			"sync-binlog": "1", "socket": "/run/mysqld/mysqld.sock"}
		if mysql {
			want["gtid-mode"], want["enforce-gtid-consistency"], want["super-read-only"] = "ON", "ON", "ON"
		} else {
			want["gtid-strict-mode"], want["log-slave-updates"], want["read-only"] = "ON", "ON", "ON"
		}
		for k, v := range want {
			if settings[k] != v {
				t.Errorf("my.cnf %s = %q, want %q", k, settings[k], v)
			}
		}
		wantPlugins := []string(nil)
		if mysql {
			// MariaDB has semi-sync built in; MySQL loads it, and clone for re-seeding.
			wantPlugins = []string{"semisync_source.so", "semisync_replica.so", "mysql_clone.so"}
		}
		if !slices.Equal(plugins, wantPlugins) {
			t.Errorf("plugins %v, want %v", plugins, wantPlugins)
		}
		// server_id and report_host come from the file the init container writes per pod.
		if include != initEnv["POD_CNF"] {
			t.Errorf("my.cnf includes %q; the init container writes %q", include, initEnv["POD_CNF"])
		}
		if want := fmt.Sprintf("%s.%s-headless.%s.svc.cluster.local", p.name, fullname, namespace); initEnv["REPORT_HOST"] != want {
			t.Errorf("report_host %q, want %q", initEnv["REPORT_HOST"], want)
		}
	})
}

// TestMemberCertificates: the chart's CA and member certificates pass the agents' own check,
// one per member, and the CA's key is not in what the pods mount.
func TestMemberCertificates(t *testing.T) {
	eachValueSet(t, func(t *testing.T, m manifests) {
		replicas := int(*statefulSet(t, m).Spec.Replicas)
		var s corev1.Secret
		m.get(t, "Secret", fullname+"-tls", &s)
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(s.Data["ca.crt"]) {
			t.Fatal("ca.crt holds no certificate")
		}
		var ca corev1.Secret
		m.get(t, "Secret", fullname+"-ca", &ca)
		if string(ca.Data["ca.crt"]) != string(s.Data["ca.crt"]) || len(ca.Data["ca.key"]) == 0 {
			t.Error("the CA secret does not hold the CA the members trust, with its key")
		}
		if len(s.Data) != 1+2*replicas {
			t.Errorf("tls secret has %d keys, want ca.crt and a pair per member (%d)", len(s.Data), 1+2*replicas)
		}
		for i := range replicas {
			member := fmt.Sprintf("%s-%d", fullname, i)
			pair, err := tls.X509KeyPair(s.Data[member+".crt"], s.Data[member+".key"])
			if err != nil {
				t.Fatalf("%s: %v", member, err)
			}
			leaf, err := x509.ParseCertificate(pair.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if err := peertls.Verify([]*x509.Certificate{leaf}, roots, "", usage); err != nil {
					t.Errorf("%s: %v", member, err)
				}
			}
			if leaf.Subject.CommonName != member || !slices.Contains(leaf.DNSNames, member) {
				t.Errorf("%s: certificate for %q %v", member, leaf.Subject.CommonName, leaf.DNSNames)
			}
		}
	})
}

// TestDashboardMetrics: every series the dashboard queries is one the agent exports.
func TestDashboardMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir(t), "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	exported := exportedMetrics(t)
	used := regexp.MustCompile(`\bshoal_[a-z_]+`)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, target := range p.Targets {
			for _, name := range used.FindAllString(target.Expr, -1) {
				if !exported[strings.TrimSuffix(name, "_bucket")] {
					t.Errorf("panel %q queries %s, which the agent does not export", p.Title, name)
				}
			}
		}
	}
}

// exportedMetrics reads the names of the agent's series from the source: every Prometheus
// metric of namespace shoal that the non-test code declares.
func exportedMetrics(t *testing.T) map[string]bool {
	decl := regexp.MustCompile(`Namespace:\s*"shoal",\s*Name:\s*"([a-z_]+)"`)
	found := map[string]bool{}
	err := filepath.WalkDir(repoRoot(t), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		src, err := os.ReadFile(p)
		for _, m := range decl.FindAllSubmatch(src, -1) {
			found["shoal_"+string(m[1])] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found["shoal_epoch"] || !found["shoal_observed_role"] {
		t.Fatalf("found only %v: the declarations changed shape", found)
	}
	return found
}

// TestOptionalParts: each value that turns a part on or off does.
func TestOptionalParts(t *testing.T) {
	on, off := renderSet(t, "everything-on"), renderSet(t, "bare-minimum")
	for _, key := range []string{"ServiceMonitor/" + fullname, "ConfigMap/" + fullname + "-dashboard",
		"PodDisruptionBudget/" + fullname, "Role/" + fullname, "ServiceAccount/" + fullname} {
		if _, ok := on[key]; !ok {
			t.Errorf("%s missing with everything on", key)
		}
		if _, ok := off[key]; ok {
			t.Errorf("%s rendered with it off", key)
		}
	}
	sts := statefulSet(t, on)
	if len(sts.Spec.VolumeClaimTemplates) != 1 || *sts.Spec.VolumeClaimTemplates[0].Spec.StorageClassName != "fast" {
		t.Errorf("volume claims %+v", sts.Spec.VolumeClaimTemplates)
	}
	if a := sts.Spec.Template.Spec.Affinity.PodAntiAffinity; len(a.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Error("antiAffinity hard is not required")
	}
	bare := statefulSet(t, off)
	if len(bare.Spec.VolumeClaimTemplates) != 0 {
		t.Error("emptyDir storage still claims volumes")
	}
	if a := bare.Spec.Template.Spec.Affinity.PodAntiAffinity; len(a.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Error("antiAffinity soft is not preferred")
	}
	if sa := bare.Spec.Template.Spec.ServiceAccountName; sa != "shoal-agent" {
		t.Errorf("service account %q, want the one named", sa)
	}
}

// TestExistingSecrets: named Secrets replace the generated ones, and the pods mount them.
func TestExistingSecrets(t *testing.T) {
	m := mustRender(t, valuesFile(t, `
auth: {existingSecret: my-auth}
gossip: {existingSecret: my-gossip}
admin: {existingSecret: my-admin}
tls: {existingSecret: my-tls}
`))
	for key := range m {
		if strings.HasPrefix(key, "Secret/") {
			t.Errorf("%s rendered though every Secret is the user's", key)
		}
	}
	mounted := map[string]bool{}
	for _, v := range statefulSet(t, m).Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			mounted[v.Secret.SecretName] = true
		}
	}
	if want := map[string]bool{"my-auth": true, "my-gossip": true, "my-admin": true, "my-tls": true}; fmt.Sprint(mounted) != fmt.Sprint(want) {
		t.Errorf("pods mount %v, want %v", mounted, want)
	}
}
