package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent/config"
)

// An agent told to publish to Kubernetes with no API server to reach, or no namespace, says
// which key to set instead of starting without it.
func TestStartKubernetesErrors(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, kubeconfig, namespace, want string
	}{
		{"outside a cluster, no kubeconfig", "", "db", "set kubernetes.kubeconfig outside a cluster"},
		{"a kubeconfig that is not there", "/nonexistent/kubeconfig", "db", "/nonexistent/kubeconfig"},
		{"no namespace outside a pod", kubeconfig, "", "kubernetes.namespace: not set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Cluster, cfg.Kubernetes.Enabled = "orders", true
			cfg.Kubernetes.Kubeconfig, cfg.Kubernetes.Namespace = tt.kubeconfig, tt.namespace
			_, err := startKubernetes(t.Context(), cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
