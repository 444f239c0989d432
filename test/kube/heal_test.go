package kube

import (
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// The primary's node is lost, with healing, force deletion and volume deletion on (the rig's
// local volumes bind a pod to its node): another member takes over; the leader deletes the old
// primary's pod, which stays Terminating (no kubelet confirms), then force-deletes it and its
// claim once the new epoch is committed and the old lease has run out; the StatefulSet recreates
// both on another node, and the member rejoins as a replica.
func TestHealLostPrimaryNode(t *testing.T) {
	c := startForTestWith(t, Options{})
	ctx := t.Context()
	// The grace is also what a recreated pod gets to start: an empty data dir is initialized first.
	helm := exec.CommandContext(ctx, Bin("helm"), "--kubeconfig", c.Kubeconfig, "install", "shoal", "../../charts/shoal",
		"-f", "../../charts/shoal/ci/test-values-mariadb.yaml", "--namespace", "default",
		"--set", "heal.enabled=true,heal.grace=60s,heal.minInterval=30s,heal.deleteVolume=true,heal.forceDeleteTerminating=true")
	if out, err := helm.CombinedOutput(); err != nil {
		t.Fatalf("helm install: %v: %s", err, out)
	}
	const selector = "app.kubernetes.io/instance=shoal"
	waitPodsReady(t, c, selector, 3)
	first := waitPrimary(t, c, selector, "")
	old, err := c.Client.CoreV1().Pods("default").Get(ctx, first, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldClaim, err := c.Client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-"+first, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(c.Nodes(), func(n *Node) bool { return n.Name == old.Spec.NodeName })
	if i < 0 {
		t.Fatalf("primary %s on unknown node %q", first, old.Spec.NodeName)
	}
	lost := c.Nodes()[i]

	begin := time.Now()
	if err := c.LoseNode(ctx, lost); err != nil {
		t.Fatal(err)
	}
	next := waitPrimary(t, c, selector, first)
	t.Logf("node %s of primary %s lost: %s primary after %v", lost.Name, first, next, time.Since(begin).Round(time.Millisecond))

	err = poll(ctx, 3*time.Minute, first+" deleted by the leader and terminating", func() error {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, first, metav1.GetOptions{})
		switch {
		case err != nil:
			return err
		case p.UID != old.UID:
			return fmt.Errorf("%s replaced before it was seen terminating", first)
		case p.DeletionTimestamp == nil:
			return fmt.Errorf("%s not deleted yet", first)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s terminating after %v", first, time.Since(begin).Round(time.Millisecond))

	fresh := waitRecreatedReady(t, c, old)
	t.Logf("%s recreated on %s and Ready after %v", first, fresh.Spec.NodeName, time.Since(begin).Round(time.Millisecond))
	if fresh.Spec.NodeName == lost.Name {
		t.Errorf("%s recreated on the lost node %s", first, lost.Name)
	}
	claim, err := c.Client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-"+first, metav1.GetOptions{})
	if err != nil || claim.UID == oldClaim.UID {
		t.Errorf("claim data-%s not replaced: %v", first, err)
	}
	if role := waitRole(t, c, first); role != "replica" {
		t.Fatalf("the recreated %s rejoined as %q, want replica", first, role)
	}
	t.Logf("%s labelled replica after %v", first, time.Since(begin).Round(time.Millisecond))

	// The force deletion came after the failover's epoch and the lease bound (ha.lease +
	// ha.max_clock_drift, 1.75 s by default); Event times have a resolution of a second.
	failover, force := eventTime(t, c, next, "Failover"), eventTime(t, c, first, "HealForceDelete")
	if gap := force.Sub(failover); gap < 2*time.Second {
		t.Errorf("force deletion %v after the failover Event, want at least the lease bound", gap)
	} else {
		t.Logf("force deletion %v after the failover Event", gap)
	}
	if deleted := eventTime(t, c, first, "HealDelete"); deleted.After(force) {
		t.Errorf("the graceful deletion's Event (%v) after the force deletion's (%v)", deleted, force)
	}
}

// eventTime returns when the first Event of reason on pod was recorded.
func eventTime(t *testing.T, c *Cluster, pod, reason string) time.Time {
	t.Helper()
	evs, err := c.Client.CoreV1().Events("default").List(t.Context(), metav1.ListOptions{
		FieldSelector: fields.AndSelectors(fields.OneTermEqualSelector("involvedObject.name", pod),
			fields.OneTermEqualSelector("reason", reason)).String()})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Items) == 0 {
		out, _ := kubectl(t, c, "get", "events", "--sort-by=.firstTimestamp")
		t.Fatalf("no %s Event on %s:\n%s", reason, pod, out)
	}
	first := evs.Items[0].FirstTimestamp.Time
	for _, e := range evs.Items {
		if e.FirstTimestamp.Time.Before(first) {
			first = e.FirstTimestamp.Time
		}
	}
	return first
}
