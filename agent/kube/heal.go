package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/webhook"
)

// HealedPodAnnotation marks a member's claim with the UID of the pod a leader deleted to heal
// it: a pod recreated on that claim that fails again means the data is the cause. The mark
// lives in the API, not in the leader, so the next leader knows it too; it goes once the
// member works.
const HealedPodAnnotation = "shoal.io/healed-pod"

// healer carries out ha.Heal's deletions on the leader (kubernetes.heal.enabled). Touched only
// by Publish, which runs on one goroutine.
type healer struct {
	policy ha.HealPolicy
	// nodes is a cluster-wide informer of the Nodes, for their Ready condition: it needs the
	// chart's ClusterRole, and publishing never waits for it.
	factory informers.SharedInformerFactory
	nodes   cache.SharedIndexInformer
	// claims is the namespace's PersistentVolumeClaims, for their HealedPodAnnotation, and
	// claimCache its cache overlaid with this agent's marks.
	claims     cache.SharedIndexInformer
	claimCache cache.MutationCache
	actions    *prometheus.CounterVec
	memory     ha.HealMemory
	// told is the reason code last told in an Event per member, so a refusal that lasts is told
	// once.
	told map[string]ha.Code
	// leading is whether the last view was a leader's: a new leadership starts a new memory, as
	// another leader may have deleted pods meanwhile.
	leading bool
}

func (pub *Publisher) newHealer(client kubernetes.Interface, p ha.HealPolicy) *healer {
	h := &healer{policy: p, told: map[string]ha.Code{}, claims: pub.factory.Core().V1().PersistentVolumeClaims().Informer(),
		factory: informers.NewSharedInformerFactory(client, 0),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Subsystem: "kubernetes", Name: "heal_actions_total",
			Help: "Pod and volume deletions the leader started to heal failed members, by action and result."}, []string{"action", "result"}),
	}
	h.nodes = h.factory.Core().V1().Nodes().Informer()
	h.claimCache = pub.overlaid(h.claims)
	return h
}

// heal decides and carries out at most one deletion for view v.
func (p *Publisher) heal(ctx context.Context, v agent.ClusterView) error {
	h := p.healer
	if !v.Leader {
		h.leading = false
		return nil
	}
	if !h.leading {
		h.memory, h.told, h.leading = ha.HealMemory{}, map[string]ha.Code{}, true
	}
	for _, synced := range p.synced {
		if !synced() {
			return nil // publish says so
		}
	}
	if !h.nodes.HasSynced() {
		return errors.New("kubernetes: the node informer has not synced: no pod is healed (the chart's ClusterRole grants get, list and watch on nodes)")
	}
	if !h.claims.HasSynced() {
		return errors.New("kubernetes: the persistentvolumeclaim informer has not synced: no pod is healed (the Role grants get, list and watch on persistentvolumeclaims)")
	}
	obs := healObservation(v, p.memberPods(v), h.nodeReady, h.replaced, h.memory)
	d := ha.Heal(obs, h.policy)
	prev := h.memory
	h.memory = d.Memory
	var errs []error
	for _, claim := range d.Unmark {
		errs = append(errs, p.markClaim(ctx, claim, ""))
	}
	if d.Action == nil {
		p.tellHeal(ctx, d, obs)
		return errors.Join(errs...)
	}
	a := *d.Action
	p.log.Warn("healing a failed member", "member", a.Member, "pod", a.Pod, "action", a.Kind(), "code", d.Reason.Code, "reason", d.Reason.Text)
	// Gossip showed a majority; Raft proves it just before the write, so a leader deposed
	// since the view deletes nothing.
	err := p.cfg.Raft.VerifyLeader(ctx)
	res := "not_leader"
	if err != nil {
		err = fmt.Errorf("kubernetes: no majority confirms this leader, so nothing is deleted: %w", err)
	} else {
		err = p.deleteMember(ctx, a)
		res = result(err)
	}
	h.actions.WithLabelValues(a.Kind(), res).Inc()
	if res == "not_leader" || res == "precondition_failed" || res == "gone" {
		// Nothing was deleted: no deletion to space the next one from.
		h.memory.LastDeletion = prev.LastDeletion
	}
	if err == nil {
		// After the deletion, never before: a mark whose pod was never deleted would have the
		// member's next pod taken for a replacement failing again.
		for _, claim := range a.Mark {
			if merr := p.markClaim(ctx, claim, a.UID); merr != nil {
				errs = append(errs, fmt.Errorf("%w (a failure of %s's next pod will be taken for its first)", merr, a.Member))
			}
		}
	}
	if err != nil {
		d.Reason.Text += "; it failed: " + err.Error()
	}
	h.told[a.Member] = ""
	p.tellHeal(ctx, d, obs)
	return errors.Join(append(errs, err)...)
}

// markClaim sets the claim's HealedPodAnnotation to uid, or removes it when uid is empty.
func (p *Publisher) markClaim(ctx context.Context, claim, uid string) error {
	var value any
	if uid != "" {
		value = uid
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{HealedPodAnnotation: value}}})
	if err != nil {
		return fmt.Errorf("kubernetes: mark persistentvolumeclaim %s: %w", claim, err)
	}
	got, err := p.client.CoreV1().PersistentVolumeClaims(p.cfg.Namespace).Patch(ctx, claim, types.MergePatchType, patch, metav1.PatchOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil // a claim that is gone needs no mark
	case err != nil:
		return fmt.Errorf("kubernetes: mark persistentvolumeclaim %s with %s=%q: %w", claim, HealedPodAnnotation, uid, err)
	}
	p.writes.WithLabelValues("persistentvolumeclaims", "patch").Inc()
	p.healer.claimCache.Mutation(got)
	return nil
}

// deleteMember deletes the action's claims, then its pod with the pod's UID as precondition. The
// API server keeps a deleted claim until no pod uses it, and the StatefulSet recreates the pod
// only once the claim is gone, with a new one.
func (p *Publisher) deleteMember(ctx context.Context, a ha.HealAction) error {
	pods := p.client.CoreV1().Pods(p.cfg.Namespace)
	if len(a.Claims) > 0 {
		// Read the pod first: a claim is named, not pinned, and must be its member's old pod's.
		cur, err := pods.Get(ctx, a.Pod, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("kubernetes: read pod %s before deleting its volume: %w", a.Pod, err)
		}
		if string(cur.UID) != a.UID {
			return apierrors.NewConflict(corev1.Resource("pods"), a.Pod, fmt.Errorf("pod %s is now %s, not %s", a.Pod, cur.UID, a.UID))
		}
		for _, claim := range a.Claims {
			err := p.client.CoreV1().PersistentVolumeClaims(p.cfg.Namespace).Delete(ctx, claim, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("kubernetes: delete persistentvolumeclaim %s: %w", claim, err)
			}
			p.writes.WithLabelValues("persistentvolumeclaims", "delete").Inc()
		}
	}
	uid := types.UID(a.UID)
	opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}
	if a.Force {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	if err := pods.Delete(ctx, a.Pod, opts); err != nil {
		return fmt.Errorf("kubernetes: delete pod %s (uid %s): %w", a.Pod, a.UID, err)
	}
	p.writes.WithLabelValues("pods", "delete").Inc()
	return nil
}

// tellHeal logs a decision about a member and tells it in an Event on the member's pod, once
// per reason code while the code lasts.
func (p *Publisher) tellHeal(ctx context.Context, d ha.HealDecision, obs ha.HealObservation) {
	h := p.healer
	for id := range h.told {
		if id != d.Member {
			delete(h.told, id)
		}
	}
	if d.Member == "" || d.Reason.Code == "" || h.told[d.Member] == d.Reason.Code {
		return
	}
	h.told[d.Member] = d.Reason.Code
	if d.Action == nil {
		p.log.Info("not healing a failed member", "member", d.Member, "code", d.Reason.Code, "reason", d.Reason.Text)
	}
	pod := obs.Pods[d.Member]
	ref := corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: p.cfg.Namespace, Name: pod.Name, UID: types.UID(pod.UID)}
	if err := p.emit(ctx, Event{Object: ref, Type: corev1.EventTypeWarning, Reason: eventReason(d.Reason.Code), Message: d.Reason.Text, At: obs.Now}); err != nil {
		p.log.Warn("telling a healing decision in an event failed", "err", err)
	}
}

// eventReason is a healing code as an Event reason: heal_force_disabled is HealForceDisabled.
func eventReason(c ha.Code) string {
	var b strings.Builder
	for w := range strings.SplitSeq(string(c), "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// replaced is the pod UID the claim's HealedPodAnnotation names ("" without one).
func (h *healer) replaced(claim string) string {
	o, ok, _ := h.claimCache.GetByKey(claim)
	if !ok {
		return ""
	}
	return o.(*corev1.PersistentVolumeClaim).Annotations[HealedPodAnnotation]
}

// nodeReady reports the Ready condition of node name; a node the informer does not hold is not
// ready.
func (h *healer) nodeReady(name string) bool {
	o, ok, _ := h.nodes.GetStore().GetByKey(name)
	if !ok {
		return false
	}
	for _, c := range o.(*corev1.Node).Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// memberPods is the record's members' pods the informer holds, by member id.
func (p *Publisher) memberPods(v agent.ClusterView) map[string]*corev1.Pod {
	out := map[string]*corev1.Pod{}
	for id := range v.Record.Members {
		if o, ok, _ := p.pods.GetByKey(p.cfg.Namespace + "/" + id); ok {
			out[id] = o.(*corev1.Pod)
		}
	}
	return out
}

// healObservation is what ha.Heal reads, from the view and the objects the informers hold:
// replaced reads a claim's mark (namespace/name).
func healObservation(v agent.ClusterView, pods map[string]*corev1.Pod, nodeReady func(string) bool, replaced func(string) string,
	mem ha.HealMemory) ha.HealObservation {
	obs := ha.HealObservation{Now: v.At, Record: v.Record, Peers: v.Peers, Servers: v.Servers, Pods: map[string]ha.Pod{}, Memory: mem,
		Majority: reachesMajority(v)}
	for id, pod := range pods {
		hp := ha.Pod{Name: pod.Name, UID: string(pod.UID), Node: pod.Spec.NodeName, Created: pod.CreationTimestamp.Time,
			NodeReady: pod.Spec.NodeName == "" || nodeReady(pod.Spec.NodeName), Started: agentStarted(pod)}
		if pod.DeletionTimestamp != nil {
			hp.Terminating = pod.DeletionTimestamp.Time
		}
		for _, vol := range pod.Spec.Volumes {
			if vol.PersistentVolumeClaim != nil {
				hp.Claims = append(hp.Claims, vol.PersistentVolumeClaim.ClaimName)
				if hp.Replaced == "" {
					hp.Replaced = replaced(pod.Namespace + "/" + vol.PersistentVolumeClaim.ClaimName)
				}
			}
		}
		obs.Pods[id] = hp
	}
	return obs
}

// agentStarted is when the pod's agent container first started as far as its status tells
// (the earlier of its running and its last terminated state), zero if it never ran. The agent
// is a native sidecar in the chart and after injection, a plain container in a pod built by
// hand: both lists are read.
func agentStarted(pod *corev1.Pod) time.Time {
	var first time.Time
	for _, s := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
		if s.Name != webhook.AgentContainer {
			continue
		}
		for _, st := range []corev1.ContainerState{s.State, s.LastTerminationState} {
			var at time.Time
			switch {
			case st.Running != nil:
				at = st.Running.StartedAt.Time
			case st.Terminated != nil:
				at = st.Terminated.StartedAt.Time
			}
			if !at.IsZero() && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
	}
	return first
}

// reachesMajority reports whether gossip shows a majority of the members' agents alive, this
// leader's own included: a leader cut off from the others would see them all failed.
func reachesMajority(v agent.ClusterView) bool {
	alive := 0
	for id := range v.Record.Members {
		if v.Peers[id].State == ha.PeerAlive {
			alive++
		}
	}
	return alive > len(v.Record.Members)/2
}

// register registers the healer's metric; start runs its node informer.
func (h *healer) register(reg prometheus.Registerer) error {
	if err := reg.Register(h.actions); err != nil {
		return fmt.Errorf("kube healer metrics: %w", err)
	}
	return nil
}

func (h *healer) start(ctx context.Context) { h.factory.Start(ctx.Done()) }
