package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shoal-db/shoal/webhook"
)

// runWebhook is `shoal webhook`: the mutating admission webhook that injects the agent into the
// pods of a StatefulSet labelled shoal.io/inject=true (the chart's injection: webhook mode).
func runWebhook(ctx context.Context, args []string, _ io.Writer) error {
	flags := newFlagSet("webhook")
	listen := flags.String("listen", ":8443", "HTTPS address serving /mutate, /healthz and /metrics")
	cfgFile := flags.String("config", "", "the injection config (JSON, rendered by the chart); required")
	certFile := flags.String("tls-cert-file", "", "the serving certificate, read again when it changes; required")
	keyFile := flags.String("tls-key-file", "", "the serving key; required")
	level := flags.String("log-level", "info", "debug, info, warn or error")
	format := flags.String("log-format", "json", "json or text")
	pos, err := parseInterspersed(flags, args)
	if err != nil {
		return err
	}
	var missing []error
	for name, v := range map[string]string{"--config": *cfgFile, "--tls-cert-file": *certFile, "--tls-key-file": *keyFile} {
		if v == "" {
			missing = append(missing, fmt.Errorf("%s is required", name))
		}
	}
	if len(pos) > 0 {
		missing = append(missing, fmt.Errorf("unexpected arguments %q", pos))
	}
	if err := errors.Join(missing...); err != nil {
		return fmt.Errorf("%w: webhook: %w", errUsage, err)
	}
	cfg, err := webhook.LoadConfig(*cfgFile)
	if err != nil {
		return err
	}
	certs, err := webhook.NewCertReloader(*certFile, *keyFile)
	if err != nil {
		return err
	}
	log := newLogger(*level, *format).With("component", "webhook")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := webhook.NewHandler(cfg, log, reg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("webhook: listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate},
		ReadHeaderTimeout: 5 * time.Second,
		// The apiserver waits at most timeoutSeconds (the chart sets 5 s) for an answer.
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
	}
	log.Info("serving", "addr", ln.Addr().String(), "statefulSet", cfg.StatefulSet)
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-done:
		return fmt.Errorf("webhook: serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("webhook: shut down: %w", err)
	}
	return nil
}
