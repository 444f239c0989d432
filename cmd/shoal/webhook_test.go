package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const webhookConfig = `{"statefulSet":"db","replicas":3,"flavor":"mariadb","mysqld":"/usr/sbin/mariadbd","image":"shoal:dev",
"configMap":"db","secrets":{"auth":"a","gossip":"g","admin":"ad","tls":"t"},"serviceAccount":"db",
"headlessService":"db-headless","clusterDomain":"cluster.local","advertise":"dns","mysqlPort":3306,
"serverIdOffset":100,"accounts":{"adminUser":"shoal_admin"},"ports":{"gossip":7946,"raft":7947,"admin":7948},
"probes":{"periodSeconds":5,"timeoutSeconds":3,"livenessFailureThreshold":6,"readinessFailureThreshold":2},
"runAsUser":999,"runAsGroup":999,"fsGroup":999,"labels":{"shoal.io/cluster":"db"}}`

func TestWebhookRefusesMissingConfiguration(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"statefulSet":"db"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{nil, true, "--config is required"},
		{[]string{"--config", "x"}, true, "--tls-cert-file is required"},
		{[]string{"--config", "x", "--tls-cert-file", "c", "--tls-key-file", "k", "extra"}, true, "unexpected arguments"},
		{[]string{"--config", filepath.Join(dir, "none.json"), "--tls-cert-file", "c", "--tls-key-file", "k"}, false, "no such file"},
		{[]string{"--config", bad, "--tls-cert-file", "c", "--tls-key-file", "k"}, false, "flavor"},
	} {
		var out bytes.Buffer
		err := run(t.Context(), append([]string{"webhook"}, tc.args...), &out, &out)
		if err == nil || errors.Is(err, errUsage) != tc.usage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("shoal webhook %q: %v, want an error (usage %v) saying %q", tc.args, err, tc.usage, tc.want)
		}
	}
}

// shoal webhook serves HTTPS with the given pair and answers an AdmissionReview.
func TestWebhookServes(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"certs", "--dir", dir, "webhook=127.0.0.1"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(webhookConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(t.Context())
	defer stop()
	go func() {
		done <- run(runCtx, []string{"webhook", "--listen", addr, "--config", cfg,
			"--tls-cert-file", filepath.Join(dir, "webhook.crt"), "--tls-key-file", filepath.Join(dir, "webhook.key")}, &out, &out)
	}()

	pem, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var resp *http.Response
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err = client.Post("https://"+addr+"/mutate", "application/json", strings.NewReader(
			`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"app",`+
				`"object":{"metadata":{"name":"other-0","ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"other","uid":"x","controller":true}]},"spec":{"containers":[{"name":"c","image":"i"}]}}}}`))
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(body.String(), `"uid":"u1","allowed":true`) || strings.Contains(body.String(), "patch") {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body.String())
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("shoal webhook after SIGTERM: %v\n%s", err, out.String())
	}
}
