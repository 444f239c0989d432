package kube

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

// rollRules are the chart's Role rules with updateStrategy OnDelete.
var rollRules = append(slices.Clip(agentRules),
	rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/eviction"}, Verbs: []string{"create"}},
	rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, Verbs: []string{"get", "list", "watch"}})

// recordRaft applies commands to a record with the record's own rules, as the Raft node would
// once they commit; VerifyLeader answers notLeader.
type recordRaft struct {
	mu        sync.Mutex
	rec       record.Record
	cmds      []record.Command
	notLeader error
}

func (r *recordRaft) VerifyLeader(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.notLeader
}

func (r *recordRaft) Apply(_ context.Context, cmd record.Command) (record.Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next, err := record.Apply(r.rec, cmd)
	if err != nil {
		return record.Record{}, err
	}
	r.rec, r.cmds = next, append(r.cmds, cmd)
	return next, nil
}

func (r *recordRaft) record() record.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec.Clone()
}

// rollView is the leader's view at `at` of epoch with primary, the other members replicating
// from it with the lags given, every MySQL answering.
func rollView(at time.Time, rec record.Record, lags map[string]time.Duration) agent.ClusterView {
	v := agent.ClusterView{At: at, Record: rec, Leader: true, Peers: map[string]ha.Peer{}, Servers: map[string]ha.Server{}}
	for _, id := range ids {
		if id == rec.Primary {
			v.Peers[id] = ha.Peer{State: ha.PeerAlive, Report: primaryRep(rec.Epoch)}
			v.Servers[id] = ha.Server{Up: true}
			continue
		}
		v.Peers[id] = ha.Peer{State: ha.PeerAlive, Report: replicaRep(rec.Epoch, rec.Primary, lags[id])}
		v.Servers[id] = ha.Server{Up: true, Status: state.Status{ReadOnly: true, SuperReadOnly: true,
			Replica: &state.Replica{IOState: "Yes", SQLRunning: true}}}
	}
	return v
}

// onDelete makes the cluster's StatefulSet OnDelete with update revision orders-new, observed by
// its controller, and every member's pod Ready on orders-old.
func (c *cluster) onDelete(t *testing.T) {
	ctx := t.Context()
	sets := c.admin.AppsV1().StatefulSets("db")
	sts, err := sets.Get(ctx, "orders", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sts.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	if sts, err = sets.Update(ctx, sts, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: 3, CurrentRevision: "orders-old", UpdateRevision: "orders-new"}
	if _, err := sets.UpdateStatus(ctx, sts, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		c.readyOn(t, c.pod(t, id), "orders-old")
	}
}

// readyOn labels pod p with revision and makes it Running and Ready, with the IPs it holds (an
// eviction ignores the disruption budget for a pod still Pending).
func (c *cluster) readyOn(t *testing.T, p *corev1.Pod, revision string) {
	ctx := t.Context()
	pods := c.admin.CoreV1().Pods("db")
	p.Labels = with(p.Labels, map[string]string{appsv1.ControllerRevisionHashLabelKey: revision})
	status := p.Status
	p, err := pods.Update(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status = status
	p.Status.Phase, p.Status.Conditions = corev1.PodRunning, []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// recreate does what the StatefulSet's controller does once pod id is gone: a new pod of the
// name on the update revision (Ready here at once).
func (c *cluster) recreate(t *testing.T, id string) {
	ctx := t.Context()
	pods := c.admin.CoreV1().Pods("db")
	old := c.pod(t, id)
	if err := pods.Delete(ctx, id, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	p, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: id, Labels: map[string]string{"app": "orders"},
		OwnerReferences: old.OwnerReferences}, Spec: memberPodSpec(id)}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.PodIP, p.Status.PodIPs = old.Status.PodIP, old.Status.PodIPs
	c.readyOn(t, p, "orders-new")
}

// terminating reports whether pod id is being deleted.
func (c *cluster) terminating(t *testing.T, id string) bool {
	return c.pod(t, id).DeletionTimestamp != nil
}

// On a real API server, an update of the OnDelete StatefulSet: the leader's first pass (a whole
// Publish) waits an interval (another leader may just have acted); then orders-2's pod goes, and nothing more
// while it terminates; orders-1's once orders-2 is back, Ready on the new revision; then, with
// only the primary orders-0 outdated, a switchover to the updated replica lagging least is
// proposed and no pod goes; nothing while it is pending; orders-0's pod goes once the record
// names orders-2 primary. Each step is in an Event and the metrics.
func TestRollOnAPIServer(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	c.grant(t, "shoal-agent", rollRules)
	c.onDelete(t)
	rec := view(5, "orders-0", false, epoch5).Record
	prop := &recordRaft{rec: rec}
	policy := ha.RollPolicy{MinInterval: time.Second, MaxLag: 5 * time.Second}
	p := c.startPublisher(t, Config{Target: target, Pod: "orders-1", Reporter: "orders-1", Roll: &policy, Raft: prop}, "shoal-agent", nil)
	if denied, err := p.CheckAccess(ctx); err != nil || len(denied) > 0 {
		t.Fatalf("access with the chart's OnDelete rules: denied %v, %v", denied, err)
	}
	lags := map[string]time.Duration{"orders-1": 200 * time.Millisecond, "orders-2": 50 * time.Millisecond}
	at := t0
	pass := func(r record.Record) {
		t.Helper()
		at = at.Add(time.Second)
		// The roll alone: the labels' writes would race the test's own pod updates.
		if err := p.roll(ctx, rollView(at, r, lags)); err != nil {
			t.Fatalf("pass at %s: %v", at.Format(time.TimeOnly), err)
		}
	}
	if err := publish(t, p, rollView(at, rec, lags)); err != nil {
		t.Fatal(err)
	}
	if c.terminating(t, "orders-2") {
		t.Fatal("a new leader's first pass deleted a pod")
	}
	pass(rec)
	if !c.terminating(t, "orders-2") || c.terminating(t, "orders-1") || c.terminating(t, "orders-0") {
		t.Fatalf("after the first step: %v %v %v, want orders-2 alone terminating",
			c.terminating(t, "orders-0"), c.terminating(t, "orders-1"), c.terminating(t, "orders-2"))
	}
	waitFor(t, "the informer to show orders-2 terminating", func() bool {
		pass(rec)
		return slices.Contains(c.events(t), "StatefulSet/orders RollWait")
	})
	if c.terminating(t, "orders-1") {
		t.Fatal("orders-1 deleted while orders-2 terminates")
	}

	c.recreate(t, "orders-2")
	waitFor(t, "orders-1 deleted once orders-2 is back", func() bool {
		pass(rec)
		return c.terminating(t, "orders-1")
	})
	if c.terminating(t, "orders-0") {
		t.Fatal("the primary's pod deleted")
	}

	c.recreate(t, "orders-1")
	waitFor(t, "a switchover proposed", func() bool {
		pass(rec)
		return prop.record().Switchover != nil
	})
	if s := prop.record().Switchover; s.To != "orders-2" {
		t.Fatalf("switchover to %q, want orders-2, the updated replica lagging least", s.To)
	}
	for range 3 {
		pass(prop.record())
	}
	if c.terminating(t, "orders-0") {
		t.Fatal("the primary's pod deleted before the record named another primary")
	}

	// The leader's loop carries the switchover out: epoch 6 names orders-2.
	if _, err := prop.Apply(ctx, record.Command{Op: record.OpSetPrimary, Epoch: 5, Primary: "orders-2", At: at}); err != nil {
		t.Fatal(err)
	}
	lags = map[string]time.Duration{"orders-0": 0, "orders-1": 0}
	waitFor(t, "the old primary's pod deleted", func() bool {
		pass(prop.record())
		return c.terminating(t, "orders-0")
	})
	if n := testutil.ToFloat64(p.roller.actions.WithLabelValues("delete_pod", "done")); n != 3 {
		t.Errorf("delete_pod done = %v, want 3", n)
	}
	if n := testutil.ToFloat64(p.roller.actions.WithLabelValues("switchover", "done")); n != 1 || len(prop.cmds) != 2 {
		t.Errorf("switchover done = %v, commands %+v; want 1", n, prop.cmds)
	}
	evs := c.events(t)
	for _, want := range []string{"Pod/orders-2 RollDelete", "Pod/orders-1 RollDelete", "Pod/orders-0 RollDelete",
		"StatefulSet/orders RollSwitchover", "StatefulSet/orders RollRateLimited"} {
		if !slices.Contains(evs, want) {
			t.Errorf("events %q lack %q", evs, want)
		}
	}
}

// Without pod delete, a rolling agent reports what it misses; a deletion refused is counted, and
// the pod is not taken for one being replaced.
func TestRollAccessChecked(t *testing.T) {
	c := newCluster(t)
	c.grant(t, "shoal-agent", append(slices.Clip(agentRules), rollRules[len(rollRules)-1]))
	c.onDelete(t)
	policy := ha.RollPolicy{MinInterval: time.Second}
	p := c.startPublisher(t, Config{Target: target, Pod: "orders-1", Reporter: "orders-1", Roll: &policy, Raft: &recordRaft{}}, "shoal-agent", nil)
	denied, err := p.CheckAccess(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(denied) != 1 || denied[0].String() != "create pods/eviction" {
		t.Errorf("denied %v, want create pods/eviction", denied)
	}
	rec := view(5, "orders-0", false, epoch5).Record
	if err := publish(t, p, rollView(t0, rec, nil)); err != nil {
		t.Fatal(err)
	}
	err = p.roll(t.Context(), rollView(t0.Add(time.Second), rec, nil))
	if !apierrors.IsForbidden(err) || p.roller.memory.Deleted != "" || !p.roller.memory.LastAction.Equal(t0.Add(time.Second)) {
		t.Errorf("a refused deletion: %v, memory %+v", err, p.roller.memory)
	}
	if n := testutil.ToFloat64(p.roller.actions.WithLabelValues("delete_pod", "error")); n != 1 {
		t.Errorf("delete_pod error = %v, want 1", n)
	}
	if _, err := New(c.admin, Config{Target: target, Log: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Roll: &policy}); err == nil {
		t.Error("a roller without a proposer was made")
	}
}

// A roll evicts: a PodDisruptionBudget that allows no disruption now (here its status, which only
// the disruption controller writes, was never computed) keeps the pod, the refusal is counted,
// and the pod is not taken for one being replaced; the roll tries again a pass later.
func TestRollKeepsTheDisruptionBudget(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	c.grant(t, "shoal-agent", rollRules)
	c.onDelete(t)
	one := intstr.FromInt32(1)
	if _, err := c.admin.PolicyV1().PodDisruptionBudgets("db").Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "orders"},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "orders"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	policy := ha.RollPolicy{MinInterval: time.Second}
	p := c.startPublisher(t, Config{Target: target, Pod: "orders-1", Reporter: "orders-1", Roll: &policy, Raft: &recordRaft{}}, "shoal-agent", nil)
	rec := view(5, "orders-0", false, epoch5).Record
	if err := publish(t, p, rollView(t0, rec, nil)); err != nil {
		t.Fatal(err)
	}
	err := p.roll(ctx, rollView(t0.Add(time.Second), rec, nil))
	if !apierrors.IsTooManyRequests(err) || p.roller.memory.Deleted != "" {
		t.Errorf("an eviction the budget refuses: %v, memory %+v; want a 429 and nothing taken for deleted", err, p.roller.memory)
	}
	if c.terminating(t, "orders-2") {
		t.Error("orders-2 deleted against its disruption budget")
	}
	if n := testutil.ToFloat64(p.roller.actions.WithLabelValues("delete_pod", "refused_by_budget")); n != 1 {
		t.Errorf("delete_pod refused_by_budget = %v, want 1", n)
	}
}

// The observation ha.Roll reads: each pod's revision label, readiness and deletion; the update
// revision and strategy only once the StatefulSet's controller has observed its spec.
func TestRollObservation(t *testing.T) {
	v := view(5, "orders-0", false, epoch5)
	pods := map[string]*corev1.Pod{}
	for _, id := range ids {
		p := pod(id, "", 0)
		p.Labels = map[string]string{appsv1.ControllerRevisionHashLabelKey: "orders-old"}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		pods[id] = p
	}
	pods["orders-1"].Status.Conditions[0].Status = corev1.ConditionFalse
	pods["orders-2"].DeletionTimestamp = &metav1.Time{Time: t0}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "orders", Generation: 2, UID: types.UID("uid-sts")},
		Spec:   appsv1.StatefulSetSpec{UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 1, UpdateRevision: "orders-new"}}
	obs := rollObservation(v, pods, sts, ha.RollMemory{})
	if obs.UpdateRevision != "" || obs.OnDelete {
		t.Errorf("a spec the controller has not observed: revision %q, OnDelete %v", obs.UpdateRevision, obs.OnDelete)
	}
	sts.Status.ObservedGeneration = 2
	obs = rollObservation(v, pods, sts, ha.RollMemory{})
	want := map[string]ha.RollPod{
		"orders-0": {Name: "orders-0", UID: "uid-orders-0", Revision: "orders-old", Ready: true},
		"orders-1": {Name: "orders-1", UID: "uid-orders-1", Revision: "orders-old"},
		"orders-2": {Name: "orders-2", UID: "uid-orders-2", Revision: "orders-old", Ready: true, Terminating: true},
	}
	if obs.UpdateRevision != "orders-new" || !obs.OnDelete || !obs.Majority || len(obs.Pods) != 3 {
		t.Fatalf("observation %+v", obs)
	}
	for id, p := range want {
		if obs.Pods[id] != p {
			t.Errorf("%s = %+v, want %+v", id, obs.Pods[id], p)
		}
	}
	v.Peers["orders-1"], v.Peers["orders-2"] = ha.Peer{State: ha.PeerDead}, ha.Peer{State: ha.PeerAlive, Report: health.Report{}}
	if rollObservation(v, pods, nil, ha.RollMemory{}).Majority != true {
		t.Error("two live agents of three are a majority")
	}
}
