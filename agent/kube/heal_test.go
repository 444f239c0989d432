package kube

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

// healRules are the chart's Role rules with healing and kubernetes.delete_volume on.
var healRules = append(slices.Clip(agentRules),
	rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"delete"}},
	rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"get", "list", "watch", "patch", "delete"}})

// healingCluster is a real API server holding the members' pods, each on its node (Ready as
// ready says) with its claim (marked as marks says), and the chart's healing rules granted to
// shoal-agent.
func healingCluster(t *testing.T, ready func(id string) bool, marks map[string]string) *cluster {
	c := newCluster(t)
	c.grant(t, "shoal-agent", healRules)
	c.grantNodes(t, "shoal-agent")
	for _, id := range ids {
		c.node(t, "node-"+id[len(id)-1:], ready(id))
		var annotations map[string]string
		if m := marks[id]; m != "" {
			annotations = map[string]string{HealedPodAnnotation: m}
		}
		_, err := c.admin.CoreV1().PersistentVolumeClaims("db").Create(t.Context(), &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "data-" + id, Annotations: annotations},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// healerAt starts a publisher healing by policy, as user shoal-agent, with a Raft node that
// confirms its leadership.
func (c *cluster) healerAt(t *testing.T, policy ha.HealPolicy) *Publisher {
	return c.healerWith(t, policy, &recordRaft{})
}

func (c *cluster) healerWith(t *testing.T, policy ha.HealPolicy, raft Raft) *Publisher {
	return c.startPublisher(t, Config{Target: target, Pod: "orders-1", Reporter: "orders-1", Heal: &policy, Raft: raft}, "shoal-agent", nil)
}

// lostNodeView is the leader's view after orders-0's node was lost: orders-1 primary of epoch 6
// since epochAt, orders-2 replicating from it, orders-0's agent and MySQL gone.
func lostNodeView(at, epochAt time.Time) agent.ClusterView {
	v := view(6, "orders-1", true, epoch6)
	v.At, v.Record.LastPrimaryChange = at, epochAt
	v.Servers = map[string]ha.Server{
		"orders-0": {Err: "dial tcp: i/o timeout", Stalled: true},
		"orders-1": {Up: true},
		"orders-2": {Up: true, Status: state.Status{ReadOnly: true, SuperReadOnly: true,
			Replica: &state.Replica{IOState: "Yes", SQLRunning: true}}},
	}
	return v
}

// On a real API server: the pod of a member on a lost node is deleted gracefully and stays
// Terminating (no kubelet confirms); with force deletion off it stays and an Event says why;
// with it on, once the member is fenced, the pod goes at once and its claim with it. A deletion
// racing the pod's recreation is refused by the UID precondition, and the claim is kept.
func TestHealOnAPIServer(t *testing.T) {
	c := healingCluster(t, func(id string) bool { return id != "orders-0" }, nil)
	ctx := t.Context()
	policy := ha.HealPolicy{Grace: time.Minute, MinInterval: time.Minute, LeaseBound: 1750 * time.Millisecond}
	p := c.healerAt(t, policy)
	old := c.pod(t, "orders-0")

	now := time.Now()
	if err := publish(t, p, lostNodeView(now, now)); err != nil {
		t.Fatalf("first pass: %v", err)
	}
	if err := p.Publish(ctx, lostNodeView(now.Add(time.Minute), now)); err != nil {
		t.Fatalf("pass past the grace: %v", err)
	}
	got := c.pod(t, "orders-0")
	if got.UID != old.UID || got.DeletionTimestamp == nil {
		t.Fatalf("orders-0 after the grace: uid %s (was %s), deletion %v; want it terminating", got.UID, old.UID, got.DeletionTimestamp)
	}
	stuck := got.DeletionTimestamp.Add(time.Second)
	waitFor(t, "the healer to see orders-0 terminating and tell why it stays", func() bool {
		if err := p.Publish(ctx, lostNodeView(stuck, now)); err != nil {
			t.Fatal(err)
		}
		return slices.Contains(c.events(t), "Pod/orders-0 HealForceDisabled")
	})
	if got := c.pod(t, "orders-0"); got.UID != old.UID {
		t.Fatalf("orders-0 replaced with force deletion off")
	}
	if n := testutil.ToFloat64(p.healer.actions.WithLabelValues("delete_pod", "done")); n != 1 {
		t.Errorf("delete_pod done = %v, want 1", n)
	}

	policy.ForceDeleteTerminating, policy.DeleteVolume = true, true
	force := c.healerAt(t, policy)
	if err := publish(t, force, lostNodeView(stuck, stuck.Add(-1749*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	if got := c.pod(t, "orders-0"); got.UID != old.UID {
		t.Fatal("orders-0 force-deleted before its lease bound passed")
	}
	if err := force.Publish(ctx, lostNodeView(stuck, stuck.Add(-1750*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.admin.CoreV1().Pods("db").Get(ctx, "orders-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("orders-0 after the force deletion: %v, want not found", err)
	}
	if !c.claimGone(t, "data-orders-0") {
		t.Error("data-orders-0 kept after the force deletion with delete_volume on")
	}
	if n := testutil.ToFloat64(force.healer.actions.WithLabelValues("force_delete_pod_and_volume", "done")); n != 1 {
		t.Errorf("force_delete_pod_and_volume done = %v, want 1", n)
	}
	evs := c.events(t)
	for _, want := range []string{"Pod/orders-0 HealDelete", "Pod/orders-0 HealForceDisabled", "Pod/orders-0 HealStuckUnfenced", "Pod/orders-0 HealForceDelete"} {
		if !slices.Contains(evs, want) {
			t.Errorf("events %q lack %q", evs, want)
		}
	}

	// The race: orders-2 is recreated (a new UID) after the leader observed it.
	stale := c.pod(t, "orders-2")
	if err := c.admin.CoreV1().Pods("db").Delete(ctx, "orders-2", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	fresh, err := c.admin.CoreV1().Pods("db").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orders-2",
		Labels: map[string]string{"app": "orders"}}, Spec: memberPodSpec("orders-2")}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []ha.HealAction{
		{Member: "orders-2", Pod: "orders-2", UID: string(stale.UID)},
		{Member: "orders-2", Pod: "orders-2", UID: string(stale.UID), Force: true, Claims: []string{"data-orders-2"}},
	} {
		if err := force.deleteMember(ctx, a); !apierrors.IsConflict(err) {
			t.Errorf("%s of the old orders-2: %v, want a conflict", a.Kind(), err)
		}
	}
	if got := c.pod(t, "orders-2"); got.UID != fresh.UID || got.DeletionTimestamp != nil {
		t.Errorf("the recreated orders-2 was deleted")
	}
	if c.claimGone(t, "data-orders-2") {
		t.Error("the recreated orders-2's claim was deleted")
	}
}

func (c *cluster) pod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	p, err := c.admin.CoreV1().Pods("db").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// claimGone reports whether claim is deleted or being deleted (the protection finalizer keeps it
// while no controller runs).
func (c *cluster) claimGone(t *testing.T, claim string) bool {
	pvc, err := c.admin.CoreV1().PersistentVolumeClaims("db").Get(t.Context(), claim, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return pvc.DeletionTimestamp != nil
}

// node creates a Node with its Ready condition.
func (c *cluster) node(t *testing.T, name string, ready bool) {
	n, err := c.admin.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if _, err := c.admin.CoreV1().Nodes().UpdateStatus(t.Context(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// grantNodes lets user read Nodes cluster wide, as the chart's ClusterRole does.
func (c *cluster) grantNodes(t *testing.T, user string) {
	ctx := t.Context()
	name := user + "-nodes"
	if _, err := c.admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The observation ha.Heal reads: pods with their node's readiness, deletion time and claims;
// a majority by gossip's live agents.
func TestHealObservation(t *testing.T) {
	v := lostNodeView(t0, t0)
	deleting := metav1.NewTime(t0.Add(30 * time.Second))
	pods := map[string]*corev1.Pod{}
	for _, id := range ids {
		p := pod(id, "", 0)
		p.Spec.Volumes = memberPodSpec(id).Volumes
		pods[id] = p
	}
	pods["orders-0"].DeletionTimestamp = &deleting
	started := metav1.NewTime(t0.Add(-time.Minute))
	pods["orders-1"].Status.InitContainerStatuses = []corev1.ContainerStatus{
		{Name: "init-mysql", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{StartedAt: metav1.NewTime(t0.Add(-time.Hour))}}},
		{Name: "shoal", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{StartedAt: started}}},
	}
	pods["orders-2"].Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "shoal", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{}}}}
	marks := map[string]string{"db/data-orders-1": "uid-gone"}
	obs := healObservation(v, pods, func(node string) bool { return node != "node-0" }, func(claim string) string { return marks[claim] }, ha.HealMemory{})
	want := ha.Pod{Name: "orders-0", UID: "uid-orders-0", Node: "node-0", Terminating: deleting.Time, Claims: []string{"data-orders-0"}}
	if got := obs.Pods["orders-0"]; !got.Terminating.Equal(want.Terminating) || got.NodeReady || got.UID != want.UID ||
		!slices.Equal(got.Claims, want.Claims) || got.Node != want.Node {
		t.Errorf("orders-0 = %+v, want %+v", got, want)
	}
	if got := obs.Pods["orders-1"]; !got.NodeReady || !obs.Majority || !got.Started.Equal(started.Time) || got.Replaced != "uid-gone" {
		t.Errorf("orders-1 %+v, majority %v; want its agent's first start %v and its claim's mark", got, obs.Majority, started.Time)
	}
	if got := obs.Pods["orders-2"]; !got.Started.IsZero() || got.Replaced != "" {
		t.Errorf("orders-2 %+v: its agent never ran, its claim is unmarked", got)
	}
	v.Peers["orders-2"] = ha.Peer{State: ha.PeerSuspect}
	if healObservation(v, pods, func(string) bool { return true }, func(string) string { return "" }, ha.HealMemory{}).Majority {
		t.Error("one live agent of three is a majority")
	}
	if got := eventReason(ha.CodeHealForceDisabled); got != "HealForceDisabled" {
		t.Errorf("event reason %q", got)
	}
}

// downView is the leader's view at `at`: orders-1 primary of epoch 6, orders-0 replicating from
// it, orders-2's agent alive but its MySQL down.
func downView(at time.Time) agent.ClusterView {
	v := lostNodeView(at, t0)
	v.Peers["orders-0"] = v.Peers["orders-2"]
	v.Servers["orders-0"], v.Servers["orders-2"] = v.Servers["orders-2"], ha.Server{Err: "connection refused", Gone: true}
	return v
}

// On a real API server: the evidence that a member's pod was already replaced lives on its
// claim, so a new leader (a publisher with an empty memory) deletes the failing successor with
// its volume; a member that works again has the mark taken off; a leader Raft does not confirm
// deletes nothing.
func TestHealMarkOutlivesTheLeader(t *testing.T) {
	c := healingCluster(t, func(string) bool { return true }, map[string]string{"orders-0": "uid-gone"})
	ctx := t.Context()
	policy := ha.HealPolicy{Grace: time.Minute, StartGrace: 5 * time.Minute, MinInterval: time.Minute, DeleteVolume: true, LeaseBound: 1750 * time.Millisecond}
	raft := &recordRaft{notLeader: errors.New("leadership lost")}
	first := c.healerWith(t, policy, raft)
	old := c.pod(t, "orders-2")
	now := time.Now()
	if err := publish(t, first, downView(now)); err != nil {
		t.Fatalf("first pass: %v", err)
	}
	// orders-0 works: its old mark goes.
	waitFor(t, "orders-0's claim unmarked", func() bool { return c.claim(t, "data-orders-0").Annotations[HealedPodAnnotation] == "" })

	err := first.Publish(ctx, downView(now.Add(time.Minute)))
	if err == nil || !strings.Contains(err.Error(), "no majority confirms this leader") {
		t.Fatalf("past the grace, Raft refusing: %v, want no deletion for want of a majority", err)
	}
	if got := c.pod(t, "orders-2"); got.DeletionTimestamp != nil {
		t.Fatal("orders-2 deleted by a leader Raft did not confirm")
	}
	raft.mu.Lock()
	raft.notLeader = nil
	raft.mu.Unlock()
	if err := first.Publish(ctx, downView(now.Add(time.Minute))); err != nil {
		t.Fatalf("past the grace: %v", err)
	}
	if got := c.pod(t, "orders-2"); got.DeletionTimestamp == nil {
		t.Fatal("orders-2 not deleted past the grace")
	}
	if got := c.claim(t, "data-orders-2").Annotations[HealedPodAnnotation]; got != string(old.UID) {
		t.Fatalf("data-orders-2 marked %q, want the deleted pod's %s", got, old.UID)
	}

	// The StatefulSet recreates the pod; leadership moves to an agent that never saw the deletion.
	if err := c.admin.CoreV1().Pods("db").Delete(ctx, "orders-2", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.admin.CoreV1().Pods("db").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orders-2",
		Labels: map[string]string{"app": "orders"}}, Spec: memberPodSpec("orders-2")}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	next := c.healerAt(t, policy)
	later := time.Now().Add(policy.StartGrace) // its agent never started: its grace counts from StartGrace
	if err := publish(t, next, downView(later)); err != nil {
		t.Fatalf("the new leader's first pass: %v", err)
	}
	if err := next.Publish(ctx, downView(later.Add(policy.Grace))); err != nil {
		t.Fatalf("the new leader past the grace: %v", err)
	}
	if !c.claimGone(t, "data-orders-2") {
		t.Error("the new leader deleted the failing successor without its volume")
	}
	if n := testutil.ToFloat64(next.healer.actions.WithLabelValues("delete_pod_and_volume", "done")); n != 1 {
		t.Errorf("delete_pod_and_volume done = %v, want 1", n)
	}
}

func (c *cluster) claim(t *testing.T, name string) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc, err := c.admin.CoreV1().PersistentVolumeClaims("db").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pvc
}

// On a real API server, five members, two failed at once (orders-3 and orders-4, MySQL down past
// the grace): the first pass deletes one pod; while it terminates, the other's deletion waits and
// an Event on it says why, however long the rate limit has passed.
func TestHealOneAtATimeOnAPIServer(t *testing.T) {
	c := healingCluster(t, func(string) bool { return true }, nil)
	ctx := t.Context()
	five := []string{"orders-0", "orders-1", "orders-2", "orders-3", "orders-4"}
	for _, id := range five[3:] {
		c.node(t, "node-"+id[len(id)-1:], true)
		if _, err := c.admin.CoreV1().Pods("db").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: id,
			Labels: map[string]string{"app": "orders"}}, Spec: memberPodSpec(id)}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	policy := ha.HealPolicy{Grace: time.Minute, StartGrace: 5 * time.Minute, MinInterval: time.Minute, LeaseBound: 1750 * time.Millisecond}
	p := c.healerAt(t, policy)
	viewAt := func(at time.Time) agent.ClusterView {
		v := downView(at)
		v.Servers["orders-2"] = v.Servers["orders-0"]
		for _, id := range five[3:] {
			v.Record.Members[id] = record.Member{ID: id, MySQLAddr: id + ".orders.db.svc:3306"}
			v.Peers[id], v.Servers[id] = v.Peers["orders-0"], ha.Server{Err: "connection refused", Gone: true}
		}
		return v
	}
	now := time.Now()
	if err := publish(t, p, viewAt(now)); err != nil {
		t.Fatalf("first pass: %v", err)
	}
	if err := p.Publish(ctx, viewAt(now.Add(time.Minute))); err != nil {
		t.Fatalf("past the grace: %v", err)
	}
	if !c.terminating(t, "orders-3") || c.terminating(t, "orders-4") {
		t.Fatalf("past the grace: orders-3 terminating %v, orders-4 %v; want orders-3 alone", c.terminating(t, "orders-3"), c.terminating(t, "orders-4"))
	}
	waitFor(t, "orders-4's deletion held while orders-3 terminates, and told", func() bool {
		if err := p.Publish(ctx, viewAt(now.Add(3*time.Minute))); err != nil {
			t.Fatal(err)
		}
		return slices.Contains(c.events(t), "Pod/orders-4 HealInFlight")
	})
	if c.terminating(t, "orders-4") {
		t.Fatal("orders-4 deleted while orders-3 terminates")
	}
}
