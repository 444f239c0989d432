package kube

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/consensus/record"
)

// Raft is the agent's Raft node. A roll asks for its switchover by committing a command to the
// cluster record; healing has it confirm that a majority still follows this leader right
// before each deletion.
type Raft interface {
	Apply(ctx context.Context, cmd record.Command) (record.Record, error)
	VerifyLeader(ctx context.Context) error
}

// roller carries out ha.Roll's steps on the leader (kubernetes.roll.enabled). Touched only by
// Publish, which runs on one goroutine.
type roller struct {
	policy ha.RollPolicy
	raft   Raft
	// sets is the namespace's StatefulSets, for the members' one's update revision and strategy;
	// publishing never waits for it.
	sets     cache.SharedIndexInformer
	actions  *prometheus.CounterVec
	outdated prometheus.Gauge
	memory   ha.RollMemory
	// told is the reason code last told in an Event while no step is taken, so a wait that lasts
	// is told once.
	told    ha.Code
	leading bool
}

func (p *Publisher) newRoller(policy ha.RollPolicy, raft Raft) *roller {
	return &roller{policy: policy, raft: raft, sets: p.factory.Apps().V1().StatefulSets().Informer(),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Subsystem: "kubernetes", Name: "roll_actions_total",
			Help: "Steps the leader took to roll an OnDelete StatefulSet after an update (pod deletions, switchover requests), by action and result."},
			[]string{"action", "result"}),
		outdated: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "shoal", Subsystem: "kubernetes", Name: "roll_outdated_pods",
			Help: "Members' pods not on their StatefulSet's update revision, as the leader last saw them (0 on other agents)."}),
	}
}

func (r *roller) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{r.actions, r.outdated} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("kube roller metrics: %w", err)
		}
	}
	return nil
}

// roll decides and carries out at most one step of an update for view v.
func (p *Publisher) roll(ctx context.Context, v agent.ClusterView) error {
	r := p.roller
	if !v.Leader {
		r.leading = false
		r.outdated.Set(0)
		return nil
	}
	if !r.leading {
		// Another leader may have just deleted a pod the informer does not show deleted yet: a
		// new leader's first step waits one interval.
		r.memory, r.told, r.leading = ha.RollMemory{LastAction: v.At}, "", true
	}
	for _, synced := range p.synced {
		if !synced() {
			return nil // publish says so
		}
	}
	if !r.sets.HasSynced() {
		return errors.New("kubernetes: the statefulset informer has not synced: no pod is rolled (the Role grants get, list and watch on statefulsets.apps)")
	}
	pods := p.memberPods(v)
	sts := r.statefulSet(pods)
	obs := rollObservation(v, pods, sts, r.memory)
	d := ha.Roll(obs, r.policy)
	prev := r.memory
	r.memory = d.Memory
	r.outdated.Set(float64(d.Outdated))
	if d.Action == nil {
		p.tellRoll(ctx, d, v.At, sts, pods)
		return nil
	}
	a := *d.Action
	p.log.Info("rolling the statefulset", "member", a.Member, "pod", a.Pod, "action", a.Kind(), "to", a.SwitchoverTo, "code", d.Reason.Code, "reason", d.Reason.Text)
	var err error
	if a.SwitchoverTo != "" {
		_, err = r.raft.Apply(ctx, record.Command{Op: record.OpRequestSwitchover, At: v.At, Reason: d.Reason.Text,
			Switchover: &record.Switchover{To: a.SwitchoverTo, RequestedAt: v.At}})
		if err != nil {
			err = fmt.Errorf("kubernetes: ask for a switchover to %s: %w", a.SwitchoverTo, err)
		}
	} else {
		// An eviction, not a bare deletion: the PodDisruptionBudget also counts what else
		// disrupts the members meanwhile (a node drain), which ha.Roll cannot see.
		uid := types.UID(a.UID)
		err = p.client.CoreV1().Pods(p.cfg.Namespace).EvictV1(ctx, &policyv1.Eviction{
			ObjectMeta:    metav1.ObjectMeta{Name: a.Pod, Namespace: p.cfg.Namespace},
			DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}})
		if err != nil {
			err = fmt.Errorf("kubernetes: evict pod %s (uid %s): %w", a.Pod, a.UID, err)
			if !apierrors.IsNotFound(err) {
				// The pod was not deleted: it is no member being replaced.
				r.memory.Deleted = prev.Deleted
			}
		} else {
			p.writes.WithLabelValues("pods/eviction", "create").Inc()
		}
	}
	r.actions.WithLabelValues(a.Kind(), result(err)).Inc()
	if err != nil {
		d.Reason.Text += "; it failed: " + err.Error()
	}
	r.told = ""
	p.tellRoll(ctx, d, v.At, sts, pods)
	return err
}

// result names an action's outcome for the metrics: a failed UID precondition means the pod was
// recreated since the observation.
func result(err error) string {
	switch {
	case err == nil:
		return "done"
	case apierrors.IsConflict(err):
		return "precondition_failed"
	case apierrors.IsNotFound(err):
		return "gone"
	case apierrors.IsTooManyRequests(err):
		return "refused_by_budget"
	}
	return "error"
}

// statefulSet is the members' StatefulSet, the controller of their pods; nil when the informer
// holds none.
func (r *roller) statefulSet(pods map[string]*corev1.Pod) *appsv1.StatefulSet {
	for _, pod := range pods {
		owner := metav1.GetControllerOf(pod)
		if owner == nil || owner.Kind != "StatefulSet" {
			continue
		}
		if o, ok, _ := r.sets.GetStore().GetByKey(pod.Namespace + "/" + owner.Name); ok {
			return o.(*appsv1.StatefulSet)
		}
	}
	return nil
}

// rollObservation is what ha.Roll reads, from the view and the objects the informers hold. The
// update revision is known once the StatefulSet's controller has observed the current spec.
func rollObservation(v agent.ClusterView, pods map[string]*corev1.Pod, sts *appsv1.StatefulSet, mem ha.RollMemory) ha.RollObservation {
	obs := ha.RollObservation{Now: v.At, Record: v.Record, Peers: v.Peers, Servers: v.Servers, Pods: map[string]ha.RollPod{},
		Majority: reachesMajority(v), Memory: mem}
	if sts != nil && sts.Status.ObservedGeneration >= sts.Generation {
		obs.UpdateRevision = sts.Status.UpdateRevision
		obs.OnDelete = sts.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType
	}
	for id, pod := range pods {
		rp := ha.RollPod{Name: pod.Name, UID: string(pod.UID), Revision: pod.Labels[appsv1.ControllerRevisionHashLabelKey],
			Terminating: pod.DeletionTimestamp != nil}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady {
				rp.Ready = c.Status == corev1.ConditionTrue
			}
		}
		obs.Pods[id] = rp
	}
	return obs
}

// tellRoll logs a decision and tells it in an Event: a deletion on the pod, anything else on
// the StatefulSet; a reason without a step once while its code lasts.
func (p *Publisher) tellRoll(ctx context.Context, d ha.RollDecision, at time.Time, sts *appsv1.StatefulSet, pods map[string]*corev1.Pod) {
	r := p.roller
	if d.Reason.Code == "" {
		r.told = ""
		return
	}
	if d.Action == nil {
		if r.told == d.Reason.Code {
			return
		}
		r.told = d.Reason.Code
		p.log.Info("not rolling the statefulset", "code", d.Reason.Code, "reason", d.Reason.Text)
	}
	typ := corev1.EventTypeNormal
	switch d.Reason.Code {
	case ha.CodeRollNoTarget, ha.CodeRollBelowMajority, ha.CodeRollNoMajority:
		typ = corev1.EventTypeWarning
	}
	var ref corev1.ObjectReference
	switch pod := pods[d.Member]; {
	case d.Action != nil && d.Action.SwitchoverTo == "" && pod != nil:
		ref = corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: p.cfg.Namespace, Name: pod.Name, UID: pod.UID}
	case sts != nil:
		ref = corev1.ObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Namespace: p.cfg.Namespace, Name: sts.Name, UID: sts.UID}
	default:
		return
	}
	if err := p.emit(ctx, Event{Object: ref, Type: typ, Reason: eventReason(d.Reason.Code), Message: d.Reason.Text, At: at}); err != nil {
		p.log.Warn("telling a rolling decision in an event failed", "err", err)
	}
}
