package kube

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// deletePrimaryAndRejoin deletes the primary's pod first and waits for another member of cluster to be
// primary, then for the recreated pod to be Ready and labelled replica.
func deletePrimaryAndRejoin(t *testing.T, c *Cluster, selector, cluster, first string) {
	t.Helper()
	ctx := t.Context()
	old, err := c.Client.CoreV1().Pods("default").Get(ctx, first, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := c.Client.CoreV1().Pods("default").Delete(ctx, first, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	next := waitPrimary(t, c, selector, cluster, first)
	t.Logf("primary pod %s deleted: %s primary and in the slice after %v", first, next, time.Since(begin).Round(time.Millisecond))
	waitRecreatedReady(t, c, old)
	waitReplica(t, c, first)
	t.Logf("recreated %s Ready and labelled replica %v after the deletion", first, time.Since(begin).Round(time.Millisecond))
}

// waitRecreatedReady waits until pod old is replaced by a pod of its name that is Ready, and
// returns that pod.
func waitRecreatedReady(t *testing.T, c *Cluster, old *corev1.Pod) *corev1.Pod {
	t.Helper()
	ctx := t.Context()
	var p *corev1.Pod
	err := poll(ctx, 3*time.Minute, "the recreated "+old.Name+" Ready", func() error {
		var err error
		if p, err = c.Client.CoreV1().Pods("default").Get(ctx, old.Name, metav1.GetOptions{}); err != nil {
			return err
		}
		if p.UID == old.UID {
			return fmt.Errorf("%s not recreated yet", old.Name)
		}
		if !podReady(p) {
			return fmt.Errorf("%s not Ready", old.Name)
		}
		return nil
	})
	if err != nil {
		out, _ := kubectl(t, c, "get", "pods,pvc", "-o", "wide", "-L", "shoal.io/role")
		logs, _ := kubectl(t, c, "logs", "--tail", "30", old.Name, "--all-containers", "--prefix")
		t.Fatalf("%v\n%s\n%s", err, out, logs)
	}
	return p
}

// waitPrimary waits until exactly one pod of selector other than not is labelled primary and
// cluster's primary Service's EndpointSlice lists that pod's IP, ready; it returns the pod's name.
func waitPrimary(t testing.TB, c *Cluster, selector, cluster, not string) string {
	t.Helper()
	var name string
	err := poll(t.Context(), 3*time.Minute, "one primary, named by the -primary EndpointSlice", func() error {
		pods, err := c.Client.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		var primaries []corev1.Pod
		for _, p := range pods.Items {
			if p.Labels["shoal.io/role"] == "primary" {
				primaries = append(primaries, p)
			}
		}
		if len(primaries) != 1 || primaries[0].Name == not {
			return fmt.Errorf("%d pods labelled primary", len(primaries))
		}
		p := primaries[0]
		ips, err := readyAddresses(t.Context(), c, cluster+"-primary")
		if err != nil {
			return err
		}
		if len(ips) != 1 || ips[0] != p.Status.PodIP {
			return fmt.Errorf("primary %s at %s, the slice has %v", p.Name, p.Status.PodIP, ips)
		}
		name = p.Name
		return nil
	})
	if err != nil {
		out, _ := kubectl(t, c, "get", "pods", "-o", "wide", "-L", "shoal.io/role")
		logs, _ := kubectl(t, c, "logs", "--tail", "20", "-l", selector, "-c", "shoal", "--prefix")
		t.Fatalf("%v\n%s\n%s", err, out, logs)
	}
	return name
}

// readyAddresses lists the ready endpoints' addresses of service's EndpointSlices.
func readyAddresses(ctx context.Context, c *Cluster, service string) ([]string, error) {
	eps, err := c.Client.DiscoveryV1().EndpointSlices("default").List(ctx,
		metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + service})
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, s := range eps.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ips = append(ips, e.Addresses...)
			}
		}
	}
	return ips, nil
}

// waitReplica waits until pod name is labelled replica. A member back with the data it had as
// primary is labelled fenced first, until its agent has checked it for errant transactions and
// pointed it at the new primary, so the first label seen is not the answer.
func waitReplica(t testing.TB, c *Cluster, name string) {
	t.Helper()
	err := poll(t.Context(), 2*time.Minute, name+" labelled replica", func() error {
		p, err := c.Client.CoreV1().Pods("default").Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if role := p.Labels["shoal.io/role"]; role != "replica" {
			return fmt.Errorf("%s labelled %q", name, role)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
