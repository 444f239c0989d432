package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// helm upgrade with a changed value (the agents' log level, which changes the ConfigMap and so
// the pod template's checksum) rolls every pod of the StatefulSet (updateStrategy OnDelete: the
// Raft leader deletes them), with the writer through the -primary Service and the monitor
// running throughout. The primary is moved to shoal-1 first, so the StatefulSet controller's
// order (by ordinal, highest first) would replace it second. Asserted: every replica's pod
// deleted before the primary's, one at a time (every other pod present and Ready at each
// deletion), none while labelled primary; exactly one primary change during the roll, to
// another member; every pod Ready on the new revision; one primary named by its label and the
// slice; every acknowledged write on it; never two writable servers. Both flavors, each on a
// rig of its own.
func TestHelmUpgradeRolls(t *testing.T) {
	for _, flavor := range []string{"mariadb", "mysql"} {
		t.Run(flavor, func(t *testing.T) { helmUpgradeRolls(t, flavor) })
	}
}

func helmUpgradeRolls(t *testing.T, flavor string) {
	c := startForTestWith(t, Options{})
	r, first, w, m := installLoaded(t, c, flavor)
	admin := adminClient(t, c)
	primary := "shoal-1"
	if first != primary {
		admin.switchover(t, r, primary)
		waitPrimaryIs(t, c, r.selector, primary)
		w.firstAckBy(t, primary, time.Now())
	}
	epoch := admin.primaryRecord(t, r.pod(t, primary).Status.PodIP).Epoch
	deletions := watchDeletions(t, c, r.selector)

	begin := time.Now()
	helm := exec.CommandContext(t.Context(), Bin("helm"), "--kubeconfig", c.Kubeconfig, "upgrade", releaseName, "../../charts/shoal",
		"-f", "../../charts/shoal/ci/test-values-"+r.flavor+".yaml", "--namespace", "default", "--set", "agent.log.level=info")
	if out, err := helm.CombinedOutput(); err != nil {
		t.Fatalf("helm upgrade: %v: %s", err, out)
	}
	var revision string
	err := poll(t.Context(), 8*time.Minute, "every pod Ready on the new revision", func() error {
		sts, err := c.Client.AppsV1().StatefulSets("default").Get(t.Context(), releaseName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := sts.Status
		if st.ObservedGeneration < sts.Generation || st.UpdateRevision == "" || st.UpdatedReplicas != 3 || st.ReadyReplicas != 3 {
			return fmt.Errorf("status %+v; deleted so far: %v", st, deletions.list())
		}
		pods, err := c.Client.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{LabelSelector: r.selector})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if p.Labels[appsv1.ControllerRevisionHashLabelKey] != st.UpdateRevision || !podReady(&p) || p.DeletionTimestamp != nil {
				return fmt.Errorf("%s on %s, ready %v", p.Name, p.Labels[appsv1.ControllerRevisionHashLabelKey], podReady(&p))
			}
		}
		revision = st.UpdateRevision
		return nil
	})
	if err != nil {
		out, _ := kubectl(t, c, "get", "pods", "-o", "wide", "-L", "shoal.io/role,controller-revision-hash")
		evs, _ := kubectl(t, c, "get", "events", "--field-selector", "involvedObject.kind=StatefulSet", "-o", "custom-columns=REASON:.reason,MESSAGE:.message")
		t.Fatalf("%v\n%s\n%s", err, out, evs)
	}
	rolled := time.Since(begin)
	next := waitPrimary(t, c, r.selector, releaseName, "")
	w.firstAckBy(t, next, time.Now())
	checkAcked(t, r, w, next)
	m.check(t)
	after := admin.primaryRecord(t, r.pod(t, next).Status.PodIP).Epoch

	order := deletions.list()
	if len(order) != 3 || order[2].name != primary {
		t.Errorf("pods deleted %v; want the 3, the primary %s last", order, primary)
	}
	for _, d := range order {
		if d.role == "primary" || d.others != "" {
			t.Errorf("%s deleted labelled %q%s", d.name, d.role, d.others)
		}
	}
	if after != epoch+1 || next == primary {
		t.Errorf("the roll took the primary from %s in epoch %d to %s in epoch %d: want one switchover", primary, epoch, next, after)
	}
	t.Logf("helm upgrade rolled the 3 pods to %s in %v: %v; primary %s before, %s after (epoch %d to %d); %d writes acknowledged, all on %s",
		revision, rolled.Round(time.Millisecond), order, primary, next, epoch, after, len(w.acked()), next)
}

// switchover asks the leader to move the primary to `to`, through each pod's IP in turn (the
// record's admin addresses are cluster DNS names, which the test's host does not resolve), again
// while leadership moves (right after the first election the primary's agent hands it away).
func (a agentAdmin) switchover(t *testing.T, r *release, to string) {
	t.Helper()
	err := poll(t.Context(), time.Minute, "the leader to take a switchover to "+to, func() error {
		pods, err := r.c.Client.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{LabelSelector: r.selector})
		if err != nil {
			return err
		}
		var errs []string
		for _, p := range pods.Items {
			if _, err := a.client.Switchover(t.Context(), net.JoinHostPort(p.Status.PodIP, "7948"), to); err != nil {
				errs = append(errs, p.Name+": "+err.Error())
				continue
			}
			return nil
		}
		return errors.New(strings.Join(errs, "; "))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitPrimaryIs waits until pod name is the one primary, in its label and the slice.
func waitPrimaryIs(t *testing.T, c *Cluster, selector, name string) {
	t.Helper()
	err := poll(t.Context(), 2*time.Minute, name+" primary", func() error {
		if got := waitPrimary(t, c, selector, releaseName, ""); got != name {
			return fmt.Errorf("%s primary", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// deletion is one pod whose deletion began: its role label then, and what was wrong with the
// selector's other pods then (one missing, terminating or not Ready), if anything.
type deletion struct{ name, role, others string }

func (d deletion) String() string { return d.name + " (" + d.role + ")" }

// deletionWatch records, in order, every pod of a selector whose deletion began.
type deletionWatch struct {
	mu    sync.Mutex
	pods  map[string]*corev1.Pod
	seen  map[types.UID]bool
	order []deletion
}

func watchDeletions(tb testing.TB, c *Cluster, selector string) *deletionWatch {
	d := &deletionWatch{seen: map[types.UID]bool{}, pods: map[string]*corev1.Pod{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			wi, err := c.Client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				if p, ok := ev.Object.(*corev1.Pod); ok {
					d.see(ev.Type, p)
				}
			}
		}
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	return d
}

func (d *deletionWatch) see(typ watch.EventType, p *corev1.Pod) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if typ == watch.Deleted {
		delete(d.pods, p.Name)
		return
	}
	d.pods[p.Name] = p
	if p.DeletionTimestamp == nil || d.seen[p.UID] {
		return
	}
	d.seen[p.UID] = true
	var others []string
	for name, o := range d.pods {
		if name != p.Name && (o.DeletionTimestamp != nil || !podReady(o)) {
			others = append(others, name+" terminating or not Ready")
		}
	}
	if len(d.pods) < 3 {
		others = append(others, fmt.Sprintf("%d pods", len(d.pods)))
	}
	var why string
	if len(others) > 0 {
		why = " while " + strings.Join(others, ", ")
	}
	d.order = append(d.order, deletion{name: p.Name, role: p.Labels["shoal.io/role"], others: why})
}

func (d *deletionWatch) list() []deletion {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]deletion(nil), d.order...)
}
