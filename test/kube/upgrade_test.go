package kube

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// helm upgrade with a changed value (the agents' log level, which changes the ConfigMap and so
// the pod template's checksum) rolls every pod of the StatefulSet, with the writer through the
// -primary Service and the monitor running throughout. Asserted: every pod replaced and Ready
// on the new revision, one primary named by its label and the slice, every acknowledged write
// on it, never two writable servers. Logged: the order the pods went in and the role each had
// when its deletion began, and how many primary changes the roll cost. The issue asks for the
// primary last, after one switchover; the StatefulSet's RollingUpdate goes by ordinal, highest
// first, whatever the roles, and the primary's preStop hands its role over when its turn comes.
func TestHelmUpgradeRolls(t *testing.T) {
	c := startForTestWith(t, Options{})
	r, primary, w, m := installLoaded(t, c, "mariadb")
	admin := adminClient(t, c)
	epoch := admin.primaryRecord(t, r.pod(t, primary).Status.PodIP).Epoch
	deletions := watchDeletions(t, c, r.selector)

	begin := time.Now()
	helm := exec.CommandContext(t.Context(), Bin("helm"), "--kubeconfig", c.Kubeconfig, "upgrade", releaseName, "../../charts/shoal",
		"-f", "../../charts/shoal/ci/test-values-mariadb.yaml", "--namespace", "default", "--set", "agent.log.level=info")
	if out, err := helm.CombinedOutput(); err != nil {
		t.Fatalf("helm upgrade: %v: %s", err, out)
	}
	err := poll(t.Context(), 5*time.Minute, "every pod on the new revision and Ready", func() error {
		sts, err := c.Client.AppsV1().StatefulSets("default").Get(t.Context(), releaseName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := sts.Status
		if st.ObservedGeneration < sts.Generation || st.UpdateRevision == "" || st.CurrentRevision != st.UpdateRevision ||
			st.UpdatedReplicas != 3 || st.ReadyReplicas != 3 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	if err != nil {
		out, _ := kubectl(t, c, "get", "pods", "-o", "wide", "-L", "shoal.io/role")
		t.Fatalf("%v\n%s", err, out)
	}
	rolled := time.Since(begin)
	next := waitPrimary(t, c, r.selector, releaseName, "")
	w.firstAckBy(t, next, time.Now())
	checkAcked(t, r, w, next)
	m.check(t)
	after := admin.primaryRecord(t, r.pod(t, next).Status.PodIP).Epoch
	order := deletions.list()
	if len(order) != 3 {
		t.Errorf("%d pod deletions seen, want 3: %v", len(order), order)
	}
	t.Logf("helm upgrade rolled the 3 pods in %v: %s; primary %s before, %s after, %d primary changes (epoch %d to %d); %d writes acknowledged, all on %s",
		rolled.Round(time.Millisecond), strings.Join(order, ", "), primary, next, after-epoch, epoch, after, len(w.acked()), next)
}

// deletionWatch records, for every pod of a selector whose deletion began, its name and the
// role label it had then, in order.
type deletionWatch struct {
	mu    sync.Mutex
	seen  map[types.UID]bool
	order []string
}

func watchDeletions(tb testing.TB, c *Cluster, selector string) *deletionWatch {
	d := &deletionWatch{seen: map[types.UID]bool{}}
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
				p, ok := ev.Object.(*corev1.Pod)
				if !ok || p.DeletionTimestamp == nil {
					continue
				}
				d.mu.Lock()
				if !d.seen[p.UID] {
					d.seen[p.UID] = true
					d.order = append(d.order, fmt.Sprintf("%s (%s)", p.Name, p.Labels["shoal.io/role"]))
				}
				d.mu.Unlock()
			}
		}
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	return d
}

func (d *deletionWatch) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.order...)
}
