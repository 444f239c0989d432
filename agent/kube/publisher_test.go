package kube

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/health"
)

// cluster is a namespace on a real API server holding what the chart would create: the two
// selector-less Services, a StatefulSet, its three pods (with IPs; nothing runs them) and the
// agent's Role, bound to user "shoal-agent" with the rules given.
type cluster struct {
	api   *apiServer
	admin *kubernetes.Clientset
}

// agentRules are the chart's Role rules for the agent.
var agentRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "patch"}},
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"},
		Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "create", "update"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
}

func newCluster(t *testing.T) *cluster {
	api := startAPIServer(t)
	c := &cluster{api: api, admin: api.client(t, "admin", "system:masters", nil)}
	ctx := t.Context()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "db"}}, metav1.CreateOptions{}))
	for _, name := range []string{target.PrimaryService, target.ReplicasService} {
		must(c.admin.CoreV1().Services("db").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "mysql", Port: 3306, TargetPort: intstr.FromString("mysql")}}}},
			metav1.CreateOptions{}))
	}
	sts, err := c.admin.AppsV1().StatefulSets("db").Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "orders"},
		Spec: appsv1.StatefulSetSpec{ServiceName: "orders", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "orders"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "orders"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "mysql", Image: "mysql"}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		p, err := c.admin.CoreV1().Pods("db").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: id,
			Labels: map[string]string{"app": "orders"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID,
				Controller: ptr(true)}}},
			Spec: memberPodSpec(id)}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.PodIP = "10.1.0." + string(rune('1'+i))
		p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
		must(c.admin.CoreV1().Pods("db").UpdateStatus(ctx, p, metav1.UpdateOptions{}))
	}
	return c
}

// memberPodSpec is member id's pod as its StatefulSet would make it: on its node, its data on
// claim data-<id>.
func memberPodSpec(id string) corev1.PodSpec {
	return corev1.PodSpec{NodeName: "node-" + id[len(id)-1:], Containers: []corev1.Container{{Name: "mysql", Image: "mysql",
		Ports: []corev1.ContainerPort{{Name: "mysql", ContainerPort: 3306}}}},
		Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-" + id}}}}}
}

// grant binds a Role with rules to user.
func (c *cluster) grant(t *testing.T, user string, rules []rbacv1.PolicyRule) {
	ctx := t.Context()
	if _, err := c.admin.RbacV1().Roles("db").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: rules},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.admin.RbacV1().RoleBindings("db").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: user},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// publisher starts a publisher authenticated as user, its requests counted in count.
func (c *cluster) publisher(t *testing.T, user string, count *atomic.Int64) *Publisher {
	return c.startPublisher(t, Config{Target: target, Pod: "orders-0", Reporter: "orders-0"}, user, count)
}

// startPublisher starts a publisher configured by cfg, with a log and registry of its own.
func (c *cluster) startPublisher(t *testing.T, cfg Config, user string, count *atomic.Int64) *Publisher {
	cfg.Log, cfg.Registry = slog.New(slog.DiscardHandler), prometheus.NewRegistry()
	p, err := New(c.api.client(t, user, "", count), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p.Start(ctx)
	return p
}

// publish publishes v, retrying while the informers sync.
func publish(t *testing.T, p *Publisher, v agent.ClusterView) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := p.Publish(t.Context(), v)
		if err == nil || !strings.Contains(err.Error(), "not synced") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) slice(t *testing.T, service string) *discoveryv1.EndpointSlice {
	s, err := c.admin.DiscoveryV1().EndpointSlices("db").Get(t.Context(), SliceName(service), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (c *cluster) roles(t *testing.T) []string {
	pods, err := c.admin.CoreV1().Pods("db").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Name+"="+p.Labels[LabelRole]+"@"+p.Annotations[AnnotationEpoch])
	}
	sort.Strings(out)
	return out
}

func (c *cluster) events(t *testing.T) []string {
	evs, err := c.admin.CoreV1().Events("db").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, e.InvolvedObject.Kind+"/"+e.InvolvedObject.Name+" "+e.Reason)
	}
	sort.Strings(out)
	return out
}

var (
	epoch5 = map[string]health.Report{"orders-0": primaryRep(5), "orders-1": replicaRep(5, "orders-0", 0),
		"orders-2": replicaRep(5, "orders-0", 0)}
	epoch6 = map[string]health.Report{"orders-1": primaryRep(6), "orders-2": replicaRep(6, "orders-1", 0)}
)

// On a real API server: the leader's slices and labels follow a failover, with Events; a
// steady state makes no request at all; a deposed leader's older view is refused.
func TestPublishFollowsFailover(t *testing.T) {
	c := newCluster(t)
	c.grant(t, "shoal-agent", agentRules)
	var requests atomic.Int64
	p := c.publisher(t, "shoal-agent", &requests)

	if err := publish(t, p, view(5, "orders-0", false, epoch5)); err != nil {
		t.Fatalf("first publish: %v", err)
	}
	if got := endpoints(c.slice(t, target.PrimaryService)); !slices.Equal(got, []string{"orders-0 10.1.0.1:3306 ready"}) {
		t.Errorf("primary slice = %q", got)
	}
	if got, want := c.roles(t), []string{"orders-0=primary@5", "orders-1=replica@5", "orders-2=replica@5"}; !slices.Equal(got, want) {
		t.Errorf("roles = %q, want %q", got, want)
	}

	// Steady state: the same view, again and again, costs no request.
	before := requests.Load()
	for range 20 {
		if err := p.Publish(t.Context(), view(5, "orders-0", false, epoch5)); err != nil {
			t.Fatal(err)
		}
	}
	if n := requests.Load() - before; n != 0 {
		t.Errorf("steady state made %d requests, want 0", n)
	}

	if err := p.Publish(t.Context(), view(6, "orders-1", true, epoch6)); err != nil {
		t.Fatalf("failover: %v", err)
	}
	if got := endpoints(c.slice(t, target.PrimaryService)); !slices.Equal(got, []string{"orders-1 10.1.0.2:3306 ready"}) {
		t.Errorf("primary slice after failover = %q", got)
	}
	if got := endpoints(c.slice(t, target.ReplicasService)); !slices.Equal(got, []string{"orders-2 10.1.0.3:3306 ready"}) {
		t.Errorf("replicas slice after failover = %q", got)
	}
	if got, want := c.roles(t), []string{"orders-0=fenced@6", "orders-1=primary@6", "orders-2=replica@6"}; !slices.Equal(got, want) {
		t.Errorf("roles after failover = %q, want %q", got, want)
	}
	if got, want := c.events(t), []string{"Pod/orders-0 Fenced", "Pod/orders-1 Failover", "StatefulSet/orders Failover"}; !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	// The pass after the write reads its own write, not the cache the watch may not have updated.
	before = requests.Load()
	if err := p.Publish(t.Context(), view(6, "orders-1", true, epoch6)); err != nil {
		t.Fatal(err)
	}
	if n := requests.Load() - before; n != 0 {
		t.Errorf("the pass after a failover made %d requests, want 0", n)
	}

	// A deposed leader, still at epoch 5, refuses to write over epoch 6.
	old := c.publisher(t, "shoal-agent", nil)
	err := publish(t, old, view(5, "orders-0", false, epoch5))
	if !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("deposed leader's publish: %v, want %v", err, ErrStaleEpoch)
	}
	if got := endpoints(c.slice(t, target.PrimaryService)); !slices.Equal(got, []string{"orders-1 10.1.0.2:3306 ready"}) {
		t.Errorf("primary slice after the deposed leader = %q", got)
	}
	if got, want := c.roles(t), []string{"orders-0=fenced@6", "orders-1=primary@6", "orders-2=replica@6"}; !slices.Equal(got, want) {
		t.Errorf("roles after the deposed leader = %q, want %q", got, want)
	}

	// A write from a cache older than the object is refused by its resourceVersion.
	s := c.slice(t, target.PrimaryService)
	stale := s.DeepCopy()
	s.Labels["touched"] = "by-someone-else" // an update changing nothing keeps the resourceVersion
	if _, err := c.admin.DiscoveryV1().EndpointSlices("db").Update(t.Context(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	stale.Endpoints = nil
	err = p.writeSlice(t.Context(), SliceWrite{Old: stale, New: stale})
	if !apierrors.IsConflict(err) {
		t.Errorf("write with an old resourceVersion: %v, want a conflict", err)
	}
}

// An agent whose Role lacks a verb says so: the access check names it, /readyz is failed, an
// Event on its pod tells it, and the leader's refused write is an error, not a crash.
func TestForbiddenIsReported(t *testing.T) {
	c := newCluster(t)
	rules := slices.Clone(agentRules)
	rules[0] = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}
	c.grant(t, "shoal-agent", rules)
	p := c.publisher(t, "shoal-agent", nil)

	denied, err := p.CheckAccess(t.Context())
	if err != nil || !slices.Equal(denied, []Permission{{"", "pods", "patch"}}) {
		t.Fatalf("access check: %v, %v; want patch pods denied", denied, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.NotReady(), "may not patch pods in namespace db") {
		if time.Now().After(deadline) {
			t.Fatalf("NotReady() = %q", p.NotReady())
		}
		time.Sleep(50 * time.Millisecond)
	}
	err = publish(t, p, view(5, "orders-0", false, epoch5))
	if !apierrors.IsForbidden(err) {
		t.Errorf("publish without patch pods: %v, want forbidden", err)
	}
	// The slices, which it may write, are written regardless.
	if got := endpoints(c.slice(t, target.PrimaryService)); !slices.Equal(got, []string{"orders-0 10.1.0.1:3306 ready"}) {
		t.Errorf("primary slice = %q", got)
	}
	if !slices.Contains(c.events(t), "Pod/orders-0 Forbidden") {
		t.Errorf("events = %q, want a Forbidden event on the agent's pod", c.events(t))
	}
}

// TestFailoverLatency measures how long the leader's publish of a committed failover takes to
// reach a watcher of the primary slice, over real loopback HTTP to a real API server.
func TestFailoverLatency(t *testing.T) {
	c := newCluster(t)
	c.grant(t, "shoal-agent", agentRules)
	p := c.publisher(t, "shoal-agent", nil)
	if err := publish(t, p, view(5, "orders-0", false, epoch5)); err != nil {
		t.Fatal(err)
	}
	w, err := c.admin.DiscoveryV1().EndpointSlices("db").Watch(t.Context(), metav1.ListOptions{
		FieldSelector: "metadata.name=" + SliceName(target.PrimaryService)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// The watcher notes when each primary shows, while Publish goes on with the rest.
	type shown struct {
		primary string
		at      time.Time
	}
	seen := make(chan shown, 100)
	go func() {
		for ev := range w.ResultChan() {
			if s, ok := ev.Object.(*discoveryv1.EndpointSlice); ok && ev.Type == watch.Modified && len(s.Endpoints) == 1 {
				seen <- shown{s.Endpoints[0].TargetRef.Name, time.Now()}
			}
		}
	}()
	const rounds = 21
	var took, calls []time.Duration
	primaries := []string{"orders-1", "orders-2", "orders-0"}
	for i := range rounds {
		primary := primaries[i%3]
		reports := map[string]health.Report{}
		for _, id := range ids {
			reports[id] = replicaRep(uint64(6+i), primary, 0)
		}
		reports[primary] = primaryRep(uint64(6 + i))
		v := view(uint64(6+i), primary, true, reports)
		start := time.Now()
		if err := p.Publish(t.Context(), v); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, time.Since(start))
		for done := false; !done; {
			select {
			case s := <-seen:
				if s.primary == primary {
					took, done = append(took, s.at.Sub(start)), true
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: the slice never named %s", i, primary)
			}
		}
	}
	slices.Sort(took)
	slices.Sort(calls)
	t.Logf("committed failover -> primary EndpointSlice seen by a watcher, %d rounds: median %s, p90 %s, max %s; whole Publish (slices, 3 labels, 3 events): median %s",
		rounds, took[rounds/2], took[rounds*9/10], took[rounds-1], calls[rounds/2])
}
