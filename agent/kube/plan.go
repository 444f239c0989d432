// Package kube publishes a shoal cluster into Kubernetes: the EndpointSlices of the selector-less
// Services <release>-primary and <release>-replicas, a role label on every member's pod, and
// Events when the roles change. The Raft leader writes, and only from a view of its own epoch:
// every object written carries the epoch it was decided in, and a writer whose epoch is older
// than the stored one refuses, so a deposed leader cannot undo a newer failover.
//
// The leader labels every member's pod, rather than each agent its own: one writer per epoch
// can never show two primaries of one epoch, while an old primary's agent cut off from the others
// would keep labelling itself primary beside the new one until it learned of the new epoch.
//
// What to write is a pure function of the cluster view and the objects the informers hold
// (Desired); the Publisher only carries out its writes, so a steady state costs no API call.
package kube

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/mysqlctl/hostport"
)

// Labels and annotations shoal writes.
const (
	LabelCluster = "shoal.io/cluster"
	LabelRole    = "shoal.io/role"
	// AnnotationEpoch is the record epoch an object was last written in.
	AnnotationEpoch = "shoal.io/epoch"
	// ManagedBy marks the EndpointSlices shoal owns (endpointslice.kubernetes.io/managed-by),
	// so the EndpointSlice controllers leave them alone.
	ManagedBy = "agent.shoal.io"
)

// Role is a member's pod label shoal.io/role.
type Role string

const (
	RolePrimary Role = "primary"
	RoleReplica Role = "replica"
	// RoleFenced: the member serves in no role (read-only and not replicating, its MySQL or its
	// agent down).
	RoleFenced Role = "fenced"
	// RoleErrant: the member's server holds transactions the primary lacks; fenced until rebuilt.
	RoleErrant Role = "errant"
)

// Event reasons.
const (
	ReasonFailover   = "Failover"
	ReasonSwitchover = "Switchover"
	ReasonFenced     = "Fenced"
	ReasonRejoined   = "Rejoined"
	ReasonErrant     = "ErrantGTIDs"
)

// ErrStaleEpoch: the object was written in a newer epoch than the view's; the writer has been
// deposed and must not overwrite it.
var ErrStaleEpoch = errors.New("stale epoch")

// errNoService: a Service whose slices shoal writes does not exist (the chart creates them).
var errNoService = errors.New("service not found")

// Target names what the publisher writes to.
type Target struct {
	Namespace string
	// PrimaryService and ReplicasService are the selector-less Services whose slices shoal
	// writes (the chart's <release>-primary and <release>-replicas).
	PrimaryService, ReplicasService string
	// MaxLag is dns.max_lag: replicas lagging more leave the replicas Service.
	MaxLag time.Duration
}

// Current is what the API server holds, as the informers show it. Member ids are pod names.
type Current struct {
	Pods     map[string]*corev1.Pod
	Services map[string]*corev1.Service // by name
	Slices   map[string]*discoveryv1.EndpointSlice
}

// Plan is the writes that bring the API server in line with a view, in the order to make them.
type Plan struct {
	Slices []SliceWrite
	// Pods are the label writes: those taking the primary label away first, the one giving it
	// last, so two pods never carry it at once (the Publisher stops at the first failure).
	Pods []PodWrite
	// Problems are what could not be published, each saying which object and why; the rest of
	// the plan stands.
	Problems []error
}

// SliceWrite creates (Old nil) or updates one EndpointSlice; Recreate: its address type changed,
// which the API server does not allow in place, so Old is deleted first.
type SliceWrite struct {
	Old, New *discoveryv1.EndpointSlice
	Recreate bool
}

// PodWrite sets a pod's shoal labels and epoch annotation, guarded by its resourceVersion.
type PodWrite struct {
	Pod             string
	ResourceVersion string
	Labels          map[string]string
	Epoch           uint64
	// Events are emitted once the write succeeded: the role change they tell of happened.
	Events []Event
}

// Event is one Kubernetes Event to emit.
type Event struct {
	Object                corev1.ObjectReference
	Type, Reason, Message string
	At                    time.Time
}

// SliceName is the name of the one EndpointSlice shoal writes for a Service.
func SliceName(service string) string { return service + "-shoal" }

// Desired computes the writes that publish view v, given the objects cur holds. It writes nothing
// that is already as wanted, and nothing over an object stored with a newer epoch than v's.
func Desired(t Target, v agent.ClusterView, cur Current) Plan {
	var p Plan
	rec := v.Record
	members := v.Members()

	var primary, replicas []agent.MemberView
	for _, m := range members {
		switch {
		case m.ID == rec.Primary:
			primary = append(primary, m) // listed even when not serving: then not ready
		case m.InRotation(rec.Primary, t.MaxLag):
			replicas = append(replicas, m)
		}
	}
	for _, s := range []struct {
		service string
		members []agent.MemberView
	}{{t.PrimaryService, primary}, {t.ReplicasService, replicas}} {
		w, err := desiredSlice(t, v, cur, s.service, s.members)
		p.Problems = append(p.Problems, err...)
		if w != nil {
			p.Slices = append(p.Slices, *w)
		}
	}

	for _, m := range members {
		pod := cur.Pods[m.ID]
		if pod == nil {
			continue // not scheduled yet, or not a pod of this namespace: nothing to label
		}
		want := roleOf(m, rec.Primary)
		stored, err := storedEpoch(pod.Annotations)
		if err != nil {
			p.Problems = append(p.Problems, fmt.Errorf("pod %s: %w", pod.Name, err))
		}
		if stored > rec.Epoch {
			p.Problems = append(p.Problems, fmt.Errorf("pod %s: labelled in epoch %d, this view is of epoch %d: %w",
				pod.Name, stored, rec.Epoch, ErrStaleEpoch))
			continue
		}
		labels := map[string]string{LabelCluster: rec.Cluster, LabelRole: string(want)}
		if stored == rec.Epoch && err == nil && pod.Labels[LabelCluster] == rec.Cluster && pod.Labels[LabelRole] == string(want) {
			continue
		}
		p.Pods = append(p.Pods, PodWrite{Pod: pod.Name, ResourceVersion: pod.ResourceVersion, Labels: labels,
			Epoch: rec.Epoch, Events: events(v, pod, m, Role(pod.Labels[LabelRole]), want)})
	}
	// Demotions first, the new primary last, the rest by name.
	rank := func(w PodWrite) int {
		switch {
		case Role(cur.Pods[w.Pod].Labels[LabelRole]) == RolePrimary && w.Labels[LabelRole] != string(RolePrimary):
			return 0
		case w.Labels[LabelRole] == string(RolePrimary):
			return 2
		}
		return 1
	}
	slices.SortFunc(p.Pods, func(a, b PodWrite) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.Pod, b.Pod)) })
	return p
}

// desiredSlice is the write, if any, that makes service's slice list members.
func desiredSlice(t Target, v agent.ClusterView, cur Current, service string, members []agent.MemberView) (*SliceWrite, []error) {
	var problems []error
	svc := cur.Services[service]
	if svc == nil {
		return nil, []error{fmt.Errorf("%w: %s/%s, so its endpoints are not published", errNoService, t.Namespace, service)}
	}
	name := SliceName(service)
	old := cur.Slices[name]
	stored, err := storedEpoch(annotations(old))
	if err != nil {
		problems = append(problems, fmt.Errorf("endpointslice %s: %w", name, err))
	}
	if stored > v.Record.Epoch {
		return nil, append(problems, fmt.Errorf("endpointslice %s: written in epoch %d, this view is of epoch %d: %w",
			name, stored, v.Record.Epoch, ErrStaleEpoch))
	}

	addrType := discoveryv1.AddressTypeIPv4
	var endpoints []discoveryv1.Endpoint
	var port uint16
	for _, m := range members {
		pod := cur.Pods[m.ID]
		if pod == nil || pod.Status.PodIP == "" {
			problems = append(problems, fmt.Errorf("member %s has no pod with an IP in %s: left out of %s", m.ID, t.Namespace, service))
			continue
		}
		ip, err := netip.ParseAddr(pod.Status.PodIP)
		if err != nil {
			problems = append(problems, fmt.Errorf("pod %s: IP %q: %w", pod.Name, pod.Status.PodIP, err))
			continue
		}
		_, p, err := hostport.Split(m.MySQLAddr)
		if err != nil {
			problems = append(problems, fmt.Errorf("member %s: MySQL address %q: %w", m.ID, m.MySQLAddr, err))
			continue
		}
		family := discoveryv1.AddressTypeIPv4
		if !ip.Unmap().Is4() {
			family = discoveryv1.AddressTypeIPv6
		}
		if len(endpoints) == 0 {
			addrType, port = family, p
		} else if family != addrType || p != port {
			// One slice has one address type and one port list: a StatefulSet's pods agree.
			problems = append(problems, fmt.Errorf("member %s at %s port %d differs from the others (%s port %d): left out of %s",
				m.ID, family, p, addrType, port, service))
			continue
		}
		terminating := pod.DeletionTimestamp != nil
		serving := m.InRotation(v.Record.Primary, t.MaxLag)
		endpoints = append(endpoints, discoveryv1.Endpoint{
			Addresses:  []string{ip.Unmap().String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(serving && !terminating), Serving: ptr(serving), Terminating: ptr(terminating)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
			NodeName:   nonEmpty(pod.Spec.NodeName),
		})
	}

	var want *discoveryv1.EndpointSlice
	if old != nil {
		want = old.DeepCopy()
	} else {
		want = &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: t.Namespace}}
	}
	want.Labels = with(want.Labels, map[string]string{discoveryv1.LabelServiceName: service,
		discoveryv1.LabelManagedBy: ManagedBy, LabelCluster: v.Record.Cluster})
	want.Annotations = with(want.Annotations, map[string]string{AnnotationEpoch: strconv.FormatUint(v.Record.Epoch, 10)})
	want.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID}}
	want.AddressType = addrType
	want.Endpoints = endpoints
	want.Ports = slicePorts(svc, port)
	if old != nil && apiequality.Semantic.DeepEqual(old, want) {
		return nil, problems
	}
	return &SliceWrite{Old: old, New: want, Recreate: old != nil && old.AddressType != addrType}, problems
}

// slicePorts mirrors the Service's ports, as kube-proxy matches them by name: a numeric target
// port is taken as it is, any other goes to the member's MySQL port.
func slicePorts(svc *corev1.Service, mysqlPort uint16) []discoveryv1.EndpointPort {
	if mysqlPort == 0 {
		return nil // no endpoints: no port to name
	}
	var out []discoveryv1.EndpointPort
	for _, sp := range svc.Spec.Ports {
		port := int32(mysqlPort)
		if sp.TargetPort.IntVal != 0 {
			port = sp.TargetPort.IntVal
		}
		proto := cmp.Or(sp.Protocol, corev1.ProtocolTCP)
		out = append(out, discoveryv1.EndpointPort{Name: ptr(sp.Name), Port: ptr(port), Protocol: &proto})
	}
	return out
}

// roleOf is the member's role label: the recorded primary whatever its state (the record is
// the truth, and one label per epoch); an errant or replicating member as its report says; any
// other member is fenced.
func roleOf(m agent.MemberView, primary string) Role {
	switch {
	case m.ID == primary:
		return RolePrimary
	case m.Alive && m.Report.Errant:
		return RoleErrant
	case m.Alive && m.Report.MySQLUp && m.Report.Role == health.RoleReplica:
		return RoleReplica
	default:
		return RoleFenced
	}
}

// events are the Events a pod's role change from was to want tells of. A pod never labelled
// before (just created) tells nothing: its first role is no change. The primary's change goes
// on the StatefulSet too, with the committed reason of the change.
func events(v agent.ClusterView, pod *corev1.Pod, m agent.MemberView, was, want Role) []Event {
	if was == want || was == "" && want != RoleErrant {
		return nil
	}
	rec := v.Record
	ref := corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		ResourceVersion: pod.ResourceVersion}
	ev := func(typ, reason, format string, args ...any) Event {
		return Event{Object: ref, Type: typ, Reason: reason, Message: fmt.Sprintf(format, args...), At: v.At}
	}
	switch want {
	case RolePrimary:
		reason, typ := ReasonSwitchover, corev1.EventTypeNormal
		if !rec.LastFailover.IsZero() && rec.LastFailover.Equal(rec.LastPrimaryChange) {
			reason, typ = ReasonFailover, corev1.EventTypeWarning
		}
		e := ev(typ, reason, "%s is the primary in epoch %d: %s", m.ID, rec.Epoch, rec.LastReason)
		out := []Event{e}
		if owner := metav1.GetControllerOf(pod); owner != nil && owner.Kind == "StatefulSet" {
			e.Object = corev1.ObjectReference{APIVersion: owner.APIVersion, Kind: owner.Kind, Namespace: pod.Namespace,
				Name: owner.Name, UID: owner.UID}
			out = append(out, e)
		}
		return out
	case RoleErrant:
		return []Event{ev(corev1.EventTypeWarning, ReasonErrant,
			"%s holds transactions the primary %s lacks (errant GTIDs): fenced until it is rebuilt", m.ID, rec.Primary)}
	case RoleFenced:
		return []Event{ev(corev1.EventTypeWarning, ReasonFenced, "%s serves in no role: %s", m.ID, whyNotServing(m, rec.Primary))}
	default: // a replica again
		return []Event{ev(corev1.EventTypeNormal, ReasonRejoined, "%s replicates from the primary %s again (was %s)", m.ID, rec.Primary, was)}
	}
}

// whyNotServing says, from the member's report, why it takes no traffic.
func whyNotServing(m agent.MemberView, primary string) string {
	r := m.Report
	switch {
	case !m.Alive:
		return "its agent is not alive in gossip"
	case !r.MySQLUp:
		return "its agent cannot reach its MySQL server"
	case r.Draining:
		return "its agent is shutting down"
	case r.Reseeding:
		return "it is being re-seeded from a donor"
	case r.Writable:
		return fmt.Sprintf("it is writable but %s is the recorded primary", primary)
	default:
		return "it is read-only and replicates from no primary"
	}
}

// storedEpoch reads an object's epoch annotation; 0 when there is none. A value that does not
// parse is reported and counts as 0: shoal owns the annotation, and a garbled one must not stop
// publishing for good.
func storedEpoch(ann map[string]string) (uint64, error) {
	s, ok := ann[AnnotationEpoch]
	if !ok {
		return 0, nil
	}
	e, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("annotation %s=%q is not an epoch: overwritten", AnnotationEpoch, s)
	}
	return e, nil
}

func annotations(s *discoveryv1.EndpointSlice) map[string]string {
	if s == nil {
		return nil
	}
	return s.Annotations
}

// with returns m with set's entries set, m itself left alone.
func with(m, set map[string]string) map[string]string {
	out := make(map[string]string, len(m)+len(set))
	maps.Copy(out, m)
	maps.Copy(out, set)
	return out
}

func ptr[T any](v T) *T { return &v }

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
