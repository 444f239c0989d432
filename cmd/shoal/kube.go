package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/shoal-db/shoal/agent/config"
	"github.com/shoal-db/shoal/agent/kube"
)

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// startKubernetes connects to the Kubernetes API (in-cluster, or kubernetes.kubeconfig) and
// starts the publisher's informers and permission check, which run until ctx ends. Healing and
// rolling act through raft (the agent's Raft node).
func startKubernetes(ctx context.Context, cfg config.Config, log *slog.Logger, reg prometheus.Registerer, raft kube.Raft) (*kube.Publisher, error) {
	var (
		rc  *rest.Config
		err error
	)
	if cfg.Kubernetes.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubernetes.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes.enabled: no API server to talk to (set kubernetes.kubeconfig outside a cluster): %w", err)
	}
	// A failover writes two slices, a label per member and a few Events at once: client-go's
	// default limit (5/s, bursts of 10) would queue them behind each other.
	rc.QPS, rc.Burst = 50, 100
	rc.UserAgent = "shoal/" + cfg.Node.ID
	ns := cfg.Kubernetes.Namespace
	if ns == "" {
		b, err := os.ReadFile(serviceAccountNamespace)
		if err != nil {
			return nil, fmt.Errorf("kubernetes.namespace: not set, and the service account's is unreadable: %w", err)
		}
		ns = strings.TrimSpace(string(b))
	}
	// client-go logs through klog: send it to the agent's log.
	klog.SetSlogLogger(log.With("component", "client-go"))
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	primary, replicas := cfg.KubeServices()
	kc := kube.Config{
		Target: kube.Target{Namespace: ns, PrimaryService: primary, ReplicasService: replicas, MaxLag: cfg.DNS.MaxLag},
		Pod:    cmp.Or(cfg.Kubernetes.PodName, cfg.Node.ID), Reporter: cfg.Node.ID,
		Log: log.With("component", "kubernetes"), Registry: reg, Raft: raft,
	}
	if cfg.Kubernetes.Heal.Enabled {
		heal := cfg.HealPolicy()
		kc.Heal = &heal
	}
	if cfg.Kubernetes.Roll.Enabled {
		roll := cfg.RollPolicy()
		kc.Roll = &roll
	}
	p, err := kube.New(client, kc)
	if err != nil {
		return nil, err
	}
	p.Start(ctx)
	return p, nil
}
