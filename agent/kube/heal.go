package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/ha"
)

// healer carries out ha.Heal's deletions on the leader (kubernetes.heal.enabled). Touched only
// by Publish, which runs on one goroutine.
type healer struct {
	policy ha.HealPolicy
	// nodes is a cluster-wide informer of the Nodes, for their Ready condition: it needs the
	// chart's ClusterRole, and publishing never waits for it.
	factory informers.SharedInformerFactory
	nodes   cache.SharedIndexInformer
	actions *prometheus.CounterVec
	memory  ha.HealMemory
	// told is the reason code last told in an Event per member, so a refusal that lasts is told
	// once.
	told map[string]ha.Code
	// leading is whether the last view was a leader's: a new leadership starts a new memory, as
	// another leader may have deleted pods meanwhile.
	leading bool
}

func newHealer(client kubernetes.Interface, p ha.HealPolicy) *healer {
	h := &healer{policy: p, told: map[string]ha.Code{},
		factory: informers.NewSharedInformerFactory(client, 0),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Subsystem: "kubernetes", Name: "heal_actions_total",
			Help: "Pod and volume deletions the leader started to heal failed members, by action and result."}, []string{"action", "result"}),
	}
	h.nodes = h.factory.Core().V1().Nodes().Informer()
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
	obs := healObservation(v, p.memberPods(v), h.nodeReady, h.memory)
	d := ha.Heal(obs, h.policy)
	prev := h.memory
	h.memory = d.Memory
	if d.Action == nil {
		p.tellHeal(ctx, d, obs)
		return nil
	}
	a := *d.Action
	p.log.Warn("healing a failed member", "member", a.Member, "pod", a.Pod, "action", a.Kind(), "code", d.Reason.Code, "reason", d.Reason.Text)
	err := p.deleteMember(ctx, a)
	res := result(err)
	h.actions.WithLabelValues(a.Kind(), res).Inc()
	if res == "precondition_failed" || res == "gone" {
		// Not this leader's deletion: the pod that comes is no replacement failing again.
		if uid, ok := prev.Replaced[a.Member]; ok {
			h.memory.Replaced[a.Member] = uid
		} else {
			delete(h.memory.Replaced, a.Member)
		}
	}
	if err != nil {
		d.Reason.Text += "; it failed: " + err.Error()
	}
	h.told[a.Member] = ""
	p.tellHeal(ctx, d, obs)
	return err
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

// healObservation is what ha.Heal reads, from the view and the objects the informers hold.
func healObservation(v agent.ClusterView, pods map[string]*corev1.Pod, nodeReady func(string) bool, mem ha.HealMemory) ha.HealObservation {
	obs := ha.HealObservation{Now: v.At, Record: v.Record, Peers: v.Peers, Servers: v.Servers, Pods: map[string]ha.Pod{}, Memory: mem,
		Majority: reachesMajority(v)}
	for id, pod := range pods {
		hp := ha.Pod{Name: pod.Name, UID: string(pod.UID), Node: pod.Spec.NodeName, Created: pod.CreationTimestamp.Time,
			NodeReady: pod.Spec.NodeName == "" || nodeReady(pod.Spec.NodeName)}
		if pod.DeletionTimestamp != nil {
			hp.Terminating = pod.DeletionTimestamp.Time
		}
		for _, vol := range pod.Spec.Volumes {
			if vol.PersistentVolumeClaim != nil {
				hp.Claims = append(hp.Claims, vol.PersistentVolumeClaim.ClaimName)
			}
		}
		obs.Pods[id] = hp
	}
	return obs
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
