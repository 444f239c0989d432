package kube

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
)

var (
	t0     = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	target = Target{Namespace: "db", PrimaryService: "orders-primary", ReplicasService: "orders-replicas", MaxLag: 10 * time.Second}
	ids    = []string{"orders-0", "orders-1", "orders-2"}
)

func primaryRep(epoch uint64) health.Report {
	return health.Report{Epoch: epoch, MySQLUp: true, Role: health.RolePrimary, Writable: true}
}

func replicaRep(epoch uint64, source string, lag time.Duration) health.Report {
	return health.Report{Epoch: epoch, MySQLUp: true, Role: health.RoleReplica, Source: source, IOConnected: true,
		SQLRunning: true, LagMillis: lag.Milliseconds()}
}

func fencedRep(epoch uint64) health.Report {
	return health.Report{Epoch: epoch, MySQLUp: true, Role: health.RoleFenced, LagMillis: -1}
}

// view is the leader's view of epoch with primary, each member's report given (a missing one:
// its agent is gone).
func view(epoch uint64, primary string, failover bool, reports map[string]health.Report) agent.ClusterView {
	rec := record.Record{Cluster: "orders", Epoch: epoch, Primary: primary, Members: map[string]record.Member{},
		LastPrimaryChange: t0.Add(-time.Second), LastReason: "the reason of the change"}
	if failover {
		rec.LastFailover = rec.LastPrimaryChange
	}
	peers := map[string]ha.Peer{}
	for i, id := range ids {
		rec.Members[id] = record.Member{ID: id, MySQLAddr: fmt.Sprintf("orders-%d.orders.db.svc:3306", i)}
		if r, ok := reports[id]; ok {
			peers[id] = ha.Peer{State: ha.PeerAlive, Report: r}
		} else {
			peers[id] = ha.Peer{State: ha.PeerDead}
		}
	}
	return agent.ClusterView{At: t0, Record: rec, Peers: peers, Leader: true}
}

func pod(id string, role Role, epoch uint64) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: "db", UID: types.UID("uid-" + id), ResourceVersion: "10",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "orders", UID: "uid-sts", Controller: ptr(true)}}},
		Spec:   corev1.PodSpec{NodeName: "node-" + id[len(id)-1:]},
		Status: corev1.PodStatus{PodIP: "10.1.0." + strconv.Itoa(int(id[len(id)-1]-'0')+1)}}
	if role != "" {
		p.Labels = map[string]string{LabelCluster: "orders", LabelRole: string(role)}
		p.Annotations = map[string]string{AnnotationEpoch: strconv.FormatUint(epoch, 10)}
	}
	return p
}

func services() map[string]*corev1.Service {
	out := map[string]*corev1.Service{}
	for _, name := range []string{target.PrimaryService, target.ReplicasService} {
		out[name] = &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "db", UID: types.UID("uid-" + name)},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "mysql", Port: 3306, TargetPort: intstr.FromString("mysql")}}}}
	}
	return out
}

// settled is the API state after publishing v: Desired applied to empty slices and the pods.
func settled(v agent.ClusterView, pods ...*corev1.Pod) Current {
	cur := Current{Pods: map[string]*corev1.Pod{}, Services: services(), Slices: map[string]*discoveryv1.EndpointSlice{}}
	for _, p := range pods {
		cur.Pods[p.Name] = p
	}
	return apply(cur, Desired(target, v, cur))
}

// apply is what the API server holds once every write of plan succeeded.
func apply(cur Current, plan Plan) Current {
	next := Current{Pods: map[string]*corev1.Pod{}, Services: cur.Services, Slices: map[string]*discoveryv1.EndpointSlice{}}
	maps.Copy(next.Pods, cur.Pods)
	maps.Copy(next.Slices, cur.Slices)
	for _, w := range plan.Slices {
		next.Slices[w.New.Name] = w.New
	}
	for _, w := range plan.Pods {
		p := next.Pods[w.Pod].DeepCopy()
		p.Labels = with(p.Labels, w.Labels)
		p.Annotations = with(p.Annotations, map[string]string{AnnotationEpoch: strconv.FormatUint(w.Epoch, 10)})
		next.Pods[w.Pod] = p
	}
	return next
}

// changed is cur with pod id replaced by a copy that f changed.
func changed(cur Current, id string, f func(*corev1.Pod)) Current {
	p := cur.Pods[id].DeepCopy()
	f(p)
	next := apply(cur, Plan{})
	next.Pods[id] = p
	return next
}

// endpoints renders a slice as "orders-1 10.1.0.2:3306 ready" items.
func endpoints(s *discoveryv1.EndpointSlice) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, e := range s.Endpoints {
		item := fmt.Sprintf("%s %s", e.TargetRef.Name, e.Addresses[0])
		if len(s.Ports) > 0 {
			item += fmt.Sprintf(":%d", *s.Ports[0].Port)
		}
		if *e.Conditions.Ready {
			item += " ready"
		}
		out = append(out, item)
	}
	return out
}

func renderPods(plan Plan) []string {
	var out []string
	for _, w := range plan.Pods {
		out = append(out, w.Pod+"="+w.Labels[LabelRole])
	}
	return out
}

func renderEvents(plan Plan) []string {
	var out []string
	for _, w := range plan.Pods {
		for _, e := range w.Events {
			out = append(out, fmt.Sprintf("%s/%s %s: %s", e.Object.Kind, e.Object.Name, e.Reason, e.Message))
		}
	}
	return out
}

func TestDesired(t *testing.T) {
	healthy5 := map[string]health.Report{"orders-0": primaryRep(5), "orders-1": replicaRep(5, "orders-0", 0),
		"orders-2": replicaRep(5, "orders-0", 2*time.Second)}
	steady := settled(view(5, "orders-0", false, healthy5),
		pod("orders-0", RolePrimary, 5), pod("orders-1", RoleReplica, 5), pod("orders-2", RoleReplica, 5))

	tests := []struct {
		name     string
		view     agent.ClusterView
		cur      Current
		primary  []string // want the primary slice to hold these; nil: not written
		replicas []string
		pods     []string // label writes, in order
		events   []string
		problems []string
	}{
		{name: "steady state: nothing to write", view: view(5, "orders-0", false, healthy5), cur: steady},
		{
			name: "first publish: slices created, pods labelled, no events for first labels",
			view: view(5, "orders-0", false, healthy5),
			cur: Current{Services: services(), Pods: map[string]*corev1.Pod{
				"orders-0": pod("orders-0", "", 0), "orders-1": pod("orders-1", "", 0), "orders-2": pod("orders-2", "", 0)}},
			primary:  []string{"orders-0 10.1.0.1:3306 ready"},
			replicas: []string{"orders-1 10.1.0.2:3306 ready", "orders-2 10.1.0.3:3306 ready"},
			pods:     []string{"orders-1=replica", "orders-2=replica", "orders-0=primary"},
		},
		{
			name: "failover committed, the new primary not writable yet: named, not ready; old primary demoted first",
			view: view(6, "orders-1", true, map[string]health.Report{"orders-1": fencedRep(5), "orders-2": replicaRep(5, "orders-0", 0)}),
			cur:  steady,
			// orders-2 still replicates from the old primary: it serves no one until repointed.
			primary:  []string{"orders-1 10.1.0.2:3306"},
			replicas: []string{},
			pods:     []string{"orders-0=fenced", "orders-2=replica", "orders-1=primary"},
			events: []string{
				"Pod/orders-0 Fenced: orders-0 serves in no role: its agent is not alive in gossip",
				"Pod/orders-1 Failover: orders-1 is the primary in epoch 6: the reason of the change",
				"StatefulSet/orders Failover: orders-1 is the primary in epoch 6: the reason of the change",
			},
		},
		{
			name: "the new primary opens writes: it becomes ready, nothing else changes",
			view: view(6, "orders-1", true, map[string]health.Report{"orders-1": primaryRep(6), "orders-2": replicaRep(6, "orders-1", 0)}),
			cur: settled(view(6, "orders-1", true, map[string]health.Report{"orders-1": fencedRep(5), "orders-2": replicaRep(5, "orders-0", 0)}),
				pod("orders-0", RoleFenced, 6), pod("orders-1", RolePrimary, 6), pod("orders-2", RoleReplica, 6)),
			primary:  []string{"orders-1 10.1.0.2:3306 ready"},
			replicas: []string{"orders-2 10.1.0.3:3306 ready"},
		},
		{
			name: "a switchover: the old primary becomes a replica (rejoined)",
			view: view(6, "orders-1", false, map[string]health.Report{"orders-0": replicaRep(6, "orders-1", 0), "orders-1": primaryRep(6),
				"orders-2": replicaRep(6, "orders-1", 0)}),
			cur:      steady,
			primary:  []string{"orders-1 10.1.0.2:3306 ready"},
			replicas: []string{"orders-0 10.1.0.1:3306 ready", "orders-2 10.1.0.3:3306 ready"},
			pods:     []string{"orders-0=replica", "orders-2=replica", "orders-1=primary"},
			events: []string{
				"Pod/orders-0 Rejoined: orders-0 replicates from the primary orders-1 again (was primary)",
				"Pod/orders-1 Switchover: orders-1 is the primary in epoch 6: the reason of the change",
				"StatefulSet/orders Switchover: orders-1 is the primary in epoch 6: the reason of the change",
			},
		},
		{
			name: "a replica over max lag leaves the replicas slice but keeps its label",
			view: view(5, "orders-0", false, map[string]health.Report{"orders-0": primaryRep(5), "orders-1": replicaRep(5, "orders-0", 0),
				"orders-2": replicaRep(5, "orders-0", 11*time.Second)}),
			cur:      steady,
			replicas: []string{"orders-1 10.1.0.2:3306 ready"},
		},
		{
			name: "an errant replica: labelled and told, out of the slice",
			view: view(5, "orders-0", false, map[string]health.Report{"orders-0": primaryRep(5), "orders-1": replicaRep(5, "orders-0", 0),
				"orders-2": func() health.Report { r := fencedRep(5); r.Errant = true; return r }()}),
			cur:      steady,
			replicas: []string{"orders-1 10.1.0.2:3306 ready"},
			pods:     []string{"orders-2=errant"},
			events:   []string{"Pod/orders-2 ErrantGTIDs: orders-2 holds transactions the primary orders-0 lacks (errant GTIDs): fenced until it is rebuilt"},
		},
		{
			name:     "a replica down, then its pod recreated without labels: fenced, and the new pod told nothing",
			view:     view(5, "orders-0", false, map[string]health.Report{"orders-0": primaryRep(5), "orders-1": replicaRep(5, "orders-0", 0)}),
			cur:      changed(steady, "orders-2", func(p *corev1.Pod) { *p = *pod("orders-2", "", 0) }),
			replicas: []string{"orders-1 10.1.0.2:3306 ready"},
			pods:     []string{"orders-2=fenced"},
		},
		{
			name:    "a terminating primary is not ready",
			view:    view(5, "orders-0", false, healthy5),
			cur:     changed(steady, "orders-0", func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: t0} }),
			primary: []string{"orders-0 10.1.0.1:3306"},
		},
		{
			name: "objects written in a newer epoch are left alone",
			view: view(4, "orders-2", false, healthy5),
			cur:  steady,
			problems: []string{
				"endpointslice orders-primary-shoal: written in epoch 5, this view is of epoch 4: stale epoch",
				"endpointslice orders-replicas-shoal: written in epoch 5, this view is of epoch 4: stale epoch",
				"pod orders-0: labelled in epoch 5, this view is of epoch 4: stale epoch",
				"pod orders-1: labelled in epoch 5, this view is of epoch 4: stale epoch",
				"pod orders-2: labelled in epoch 5, this view is of epoch 4: stale epoch",
			},
		},
		{
			name: "a missing Service and a member without a pod are reported",
			view: view(5, "orders-0", false, healthy5),
			cur: Current{Services: map[string]*corev1.Service{target.ReplicasService: services()[target.ReplicasService]},
				Pods: map[string]*corev1.Pod{"orders-0": pod("orders-0", RolePrimary, 5), "orders-1": pod("orders-1", RoleReplica, 5)}},
			replicas: []string{"orders-1 10.1.0.2:3306 ready"},
			problems: []string{
				"service not found: db/orders-primary, so its endpoints are not published",
				"member orders-2 has no pod with an IP in db: left out of orders-replicas",
			},
		},
		{
			name:     "a garbled epoch annotation is overwritten",
			view:     view(5, "orders-0", false, healthy5),
			cur:      changed(steady, "orders-1", func(p *corev1.Pod) { p.Annotations[AnnotationEpoch] = "five" }),
			pods:     []string{"orders-1=replica"},
			problems: []string{`pod orders-1: annotation shoal.io/epoch="five" is not an epoch: overwritten`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := Desired(target, tt.view, tt.cur)
			got := map[string]*discoveryv1.EndpointSlice{}
			for _, w := range plan.Slices {
				got[w.New.Name] = w.New
			}
			for _, s := range []struct {
				name string
				want []string
			}{{target.PrimaryService, tt.primary}, {target.ReplicasService, tt.replicas}} {
				w, written := got[SliceName(s.name)]
				if (s.want != nil) != written {
					t.Errorf("%s written: %v, want %v (%v)", s.name, written, s.want != nil, endpoints(w))
					continue
				}
				if written && !slices.Equal(endpoints(w), s.want) && !(len(s.want) == 0 && len(w.Endpoints) == 0) {
					t.Errorf("%s endpoints = %q, want %q", s.name, endpoints(w), s.want)
				}
				if written && w.Annotations[AnnotationEpoch] != strconv.FormatUint(tt.view.Record.Epoch, 10) {
					t.Errorf("%s epoch annotation = %q", s.name, w.Annotations[AnnotationEpoch])
				}
			}
			if g := renderPods(plan); !slices.Equal(g, tt.pods) {
				t.Errorf("pod writes = %q, want %q", g, tt.pods)
			}
			if g := renderEvents(plan); !slices.Equal(g, tt.events) {
				t.Errorf("events =\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(tt.events, "\n"))
			}
			var probs []string
			for _, err := range plan.Problems {
				probs = append(probs, err.Error())
			}
			if !slices.Equal(probs, tt.problems) {
				t.Errorf("problems =\n%s\nwant\n%s", strings.Join(probs, "\n"), strings.Join(tt.problems, "\n"))
			}
			// Applied, the plan leaves nothing to write (the garbled annotation is gone too).
			if again := Desired(target, tt.view, apply(tt.cur, plan)); len(again.Slices)+len(again.Pods) > 0 {
				t.Errorf("applied plan does not settle: slices %d, pods %q", len(again.Slices), renderPods(again))
			}
		})
	}
}

// The slice's ports mirror the Service's by name: numeric target ports as they are, named ones
// at the member's MySQL port; the owner is the Service.
func TestDesiredSliceShape(t *testing.T) {
	v := view(5, "orders-0", false, map[string]health.Report{"orders-0": primaryRep(5)})
	cur := Current{Services: services(), Pods: map[string]*corev1.Pod{"orders-0": pod("orders-0", "", 0)}}
	cur.Services[target.PrimaryService].Spec.Ports = append(cur.Services[target.PrimaryService].Spec.Ports,
		corev1.ServicePort{Name: "mysqlx", Port: 33060, TargetPort: intstr.FromInt32(33060)})
	plan := Desired(target, v, cur)
	s := plan.Slices[0].New
	var ports []string
	for _, p := range s.Ports {
		ports = append(ports, fmt.Sprintf("%s=%d/%s", *p.Name, *p.Port, *p.Protocol))
	}
	if want := []string{"mysql=3306/TCP", "mysqlx=33060/TCP"}; !slices.Equal(ports, want) {
		t.Errorf("ports = %q, want %q", ports, want)
	}
	if s.Labels[discoveryv1.LabelServiceName] != target.PrimaryService || s.Labels[discoveryv1.LabelManagedBy] != ManagedBy {
		t.Errorf("labels = %v", s.Labels)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != "uid-orders-primary" {
		t.Errorf("owner = %+v", s.OwnerReferences)
	}
	if e := s.Endpoints[0]; e.NodeName == nil || *e.NodeName != "node-0" || e.TargetRef.UID != "uid-orders-0" {
		t.Errorf("endpoint = %+v", e)
	}

	// An IPv6 pod turns the slice's address type, which means a new slice.
	six := apply(cur, plan)
	six.Pods = map[string]*corev1.Pod{"orders-0": six.Pods["orders-0"].DeepCopy()}
	six.Pods["orders-0"].Status.PodIP = "fd00::1"
	plan = Desired(target, v, six)
	if len(plan.Slices) != 1 || !plan.Slices[0].Recreate || plan.Slices[0].New.AddressType != discoveryv1.AddressTypeIPv6 {
		t.Fatalf("IPv6 pod: %+v", plan.Slices)
	}
}

// FuzzDesired checks, for views and API states made from the input, what must hold whatever
// they are: nothing is written over a newer epoch, the primary label is never added while
// another pod still carries it, the plan applied settles, and Desired is deterministic.
func FuzzDesired(f *testing.F) {
	f.Add([]byte{5, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	f.Add([]byte{6, 1, 0xff, 0x10, 0x21, 0x32, 3, 7, 5, 5, 1, 0})
	f.Add([]byte{2, 2, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		epoch := uint64(next() % 8)
		b := next()
		primary := ids[b%3]
		if b&0x80 != 0 {
			primary = ""
		}
		reports := map[string]health.Report{}
		for _, id := range ids {
			b := next()
			if b&1 == 0 {
				continue // agent gone
			}
			r := health.Report{Epoch: epoch - uint64(b>>1&1), MySQLUp: b&4 != 0, Writable: b&8 != 0, Errant: b&16 != 0,
				Draining: b&32 != 0, LagMillis: int64(b>>6) * 6000}
			r.Role = []health.Role{health.RolePrimary, health.RoleReplica, health.RoleFenced, health.RoleUnknown}[next()%4]
			if r.Role == health.RoleReplica {
				r.Source, r.IOConnected, r.SQLRunning = ids[next()%3], true, next()&1 == 1
			}
			reports[id] = r
		}
		v := view(epoch, primary, next()&1 == 1, reports)
		cur := Current{Pods: map[string]*corev1.Pod{}, Services: services(), Slices: map[string]*discoveryv1.EndpointSlice{}}
		roles := []Role{"", RolePrimary, RoleReplica, RoleFenced, RoleErrant}
		for _, id := range ids {
			b := next()
			if b%7 == 6 {
				continue // no pod
			}
			cur.Pods[id] = pod(id, roles[b%5], uint64(b>>3)%9)
		}
		if b := next(); b&1 == 1 {
			// Slices of some other epoch, as an earlier or a newer leader left them.
			other := view(uint64(b>>1)%9, ids[b>>4%3], false, reports)
			for _, w := range Desired(target, other, cur).Slices {
				cur.Slices[w.New.Name] = w.New
			}
		}

		plan := Desired(target, v, cur)
		if again := Desired(target, v, cur); fmt.Sprint(again) != fmt.Sprint(plan) {
			t.Fatalf("not deterministic:\n%v\n%v", plan, again)
		}
		for _, w := range plan.Slices {
			if e, _ := storedEpoch(annotations(w.Old)); e > epoch {
				t.Fatalf("slice %s of epoch %d overwritten in epoch %d", w.New.Name, e, epoch)
			}
		}
		// Each prefix of the label writes (the publisher stops at a failure): a pod gains the
		// primary label only when no other pod carries it any more.
		state := apply(cur, Plan{})
		for _, w := range plan.Pods {
			if e, _ := storedEpoch(state.Pods[w.Pod].Annotations); e > epoch {
				t.Fatalf("pod %s of epoch %d relabelled in epoch %d", w.Pod, e, epoch)
			}
			if w.Labels[LabelRole] == string(RolePrimary) {
				for id, p := range state.Pods {
					if id != w.Pod && p.Labels[LabelRole] == string(RolePrimary) {
						if e, _ := storedEpoch(p.Annotations); e <= epoch {
							t.Fatalf("%s labelled primary while %s (epoch %d) still is", w.Pod, id, e)
						}
					}
				}
			}
			state = apply(state, Plan{Pods: []PodWrite{w}})
		}
		after := apply(cur, plan)
		again := Desired(target, v, after)
		if len(again.Slices)+len(again.Pods) > 0 {
			t.Fatalf("applied plan does not settle: %d slices, pods %q", len(again.Slices), renderPods(again))
		}
		for _, err := range plan.Problems {
			if err == nil || err.Error() == "" {
				t.Fatal("empty problem")
			}
			if errors.Is(err, ErrStaleEpoch) && !strings.Contains(err.Error(), fmt.Sprintf("view is of epoch %d", epoch)) {
				t.Fatalf("stale refusal without the epochs: %v", err)
			}
		}
	})
}
