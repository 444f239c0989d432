package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Permission is one verb on one resource the agent needs in its namespace. Resource may name a
// subresource after a slash (pods/eviction).
type Permission struct{ Group, Resource, Verb string }

func (p Permission) String() string {
	if p.Group == "" {
		return p.Verb + " " + p.Resource
	}
	return p.Verb + " " + p.Resource + "." + p.Group
}

// Permissions are every call the publisher makes: the chart's Role grants exactly these.
var Permissions = []Permission{
	{"", "pods", "get"}, {"", "pods", "list"}, {"", "pods", "watch"}, {"", "pods", "patch"},
	{"discovery.k8s.io", "endpointslices", "get"}, {"discovery.k8s.io", "endpointslices", "list"},
	{"discovery.k8s.io", "endpointslices", "watch"}, {"discovery.k8s.io", "endpointslices", "create"},
	{"discovery.k8s.io", "endpointslices", "update"}, {"discovery.k8s.io", "endpointslices", "delete"},
	{"", "services", "get"},
	{"", "events", "create"},
}

// healPermissions are the calls healing adds (kubernetes.heal.enabled): nodes are read cluster
// wide, for their Ready condition; claims are read and marked with the pod deleted to heal
// them, and deleted only with kubernetes.delete_volume.
var healPermissions = []Permission{{"", "pods", "delete"}, {"", "nodes", "get"}, {"", "nodes", "list"}, {"", "nodes", "watch"},
	{"", "persistentvolumeclaims", "get"}, {"", "persistentvolumeclaims", "list"}, {"", "persistentvolumeclaims", "watch"},
	{"", "persistentvolumeclaims", "patch"}}

// rollPermissions are the calls rolling adds (kubernetes.roll.enabled): the StatefulSet's update
// revision and strategy are read, the outdated pods evicted (so PodDisruptionBudgets are kept).
var rollPermissions = []Permission{{"", "pods/eviction", "create"}, {"apps", "statefulsets", "get"}, {"apps", "statefulsets", "list"},
	{"apps", "statefulsets", "watch"}}

// permissions are the calls this publisher makes.
func (p *Publisher) permissions() []Permission {
	perms := slices.Clip(Permissions)
	if h := p.cfg.Heal; h != nil {
		perms = append(perms, healPermissions...)
		if h.DeleteVolume {
			perms = append(perms, Permission{"", "persistentvolumeclaims", "delete"})
		}
	}
	if p.cfg.Roll != nil {
		for _, perm := range rollPermissions {
			if !slices.Contains(perms, perm) {
				perms = append(perms, perm)
			}
		}
	}
	return perms
}

// accessRecheck is how often a missing permission is looked for again, so granting it needs no
// restart.
const accessRecheck = 30 * time.Second

// CheckAccess asks the API server (SelfSubjectAccessReview, open to every authenticated user)
// whether this agent may make each call it needs, and returns those it may not.
func (p *Publisher) CheckAccess(ctx context.Context) ([]Permission, error) {
	var denied []Permission
	for _, perm := range p.permissions() {
		ns := p.cfg.Namespace
		resource, sub, _ := strings.Cut(perm.Resource, "/")
		if perm.Resource == "nodes" {
			ns = "" // cluster-scoped: granted by a ClusterRole
		}
		r, err := p.client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
			Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
				Namespace: ns, Group: perm.Group, Resource: resource, Subresource: sub, Verb: perm.Verb}},
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("kubernetes: access review of %s: %w", perm, err)
		}
		if !r.Status.Allowed {
			denied = append(denied, perm)
		}
	}
	return denied, nil
}

// checkAccessUntilGranted checks the permissions now and again every accessRecheck until all
// are granted, reporting what is missing in /readyz, the log and an Event on this agent's pod.
func (p *Publisher) checkAccessUntilGranted(ctx context.Context) {
	tick := time.NewTicker(accessRecheck)
	defer tick.Stop()
	for {
		denied, err := p.CheckAccess(ctx)
		switch {
		case err != nil:
			p.log.Warn("checking kubernetes permissions failed", "err", err)
		case len(denied) == 0:
			p.setAccess("")
			return
		default:
			names := make([]string, len(denied))
			for i, d := range denied {
				names[i] = d.String()
			}
			msg := fmt.Sprintf("kubernetes: this agent's service account may not %s in namespace %s: grant them in its Role and ClusterRole (the chart's rbac.create)",
				strings.Join(names, ", "), p.cfg.Namespace)
			p.setAccess(msg)
			p.log.Error("kubernetes permissions missing", "missing", names, "namespace", p.cfg.Namespace)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *Publisher) setAccess(msg string) {
	p.mu.Lock()
	p.access = msg
	p.mu.Unlock()
	p.tell(context.Background(), msg)
}

// noteForbidden keeps the last write the API server refused as forbidden, for /readyz; a
// publish without one clears it.
func (p *Publisher) noteForbidden(errs []error) {
	var msg string
	for _, err := range errs {
		if apierrors.IsForbidden(err) {
			msg = err.Error()
			break
		}
	}
	p.mu.Lock()
	p.forbidden = msg
	p.mu.Unlock()
	if msg != "" {
		p.tell(context.Background(), msg)
	}
}

// tell emits a permission problem as a Warning Event on this agent's pod, once per problem; the
// Event may itself be forbidden, which the log then says.
func (p *Publisher) tell(ctx context.Context, msg string) {
	p.mu.Lock()
	if msg == p.told || p.cfg.Pod == "" {
		p.mu.Unlock()
		return
	}
	p.told = msg
	p.mu.Unlock()
	if msg == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ref := corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: p.cfg.Namespace, Name: p.cfg.Pod}
	if pod, err := p.client.CoreV1().Pods(p.cfg.Namespace).Get(ctx, p.cfg.Pod, metav1.GetOptions{}); err == nil {
		ref.UID = pod.UID
	}
	err := p.emit(ctx, Event{Object: ref, Type: corev1.EventTypeWarning, Reason: "Forbidden", Message: msg, At: time.Now()})
	if err != nil {
		p.log.Warn("telling a permission problem in an event failed", "err", err)
	}
}

// NotReady implements agent.ReadinessCheck: a permission the agent lacks keeps it unready, so
// the problem shows in `kubectl get pods` instead of only in a log.
func (p *Publisher) NotReady() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(nonEmptyStrings(p.access, p.forbidden), "; ")
}

func nonEmptyStrings(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
