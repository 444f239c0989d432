package agent

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/consensus/peertls"
	"github.com/shoal-db/shoal/consensus/record"
	"github.com/shoal-db/shoal/consensus/tlstest"
)

// Over real TLS, a lease call (here a follow confirmation, which only reads) reaches the leader
// only with a member certificate of the cluster's CA: a certificate of another CA, none at all,
// or the admin token alone are refused with 403 and change nothing. The token still opens the
// people's endpoints, and a member certificate does not replace it there. An agent refuses a
// leader whose certificate is not of the cluster.
func TestLeaseCallsNeedAMemberCertificate(t *testing.T) {
	c := startCluster(t, 3)
	primary := c.waitPrimary("")
	leader := c.leaderOtherThan(nil)
	replica := c.other(primary, primary)
	ca, other := tlstest.NewCA(t), tlstest.NewCA(t)

	peers := ca.Config(leader.id)
	srv := httptest.NewUnstartedServer(leader.agent.Handler(AdminAuth{Token: "secret", Peers: peers}, prometheus.NewRegistry()))
	srv.TLS = AdminTLS(peers)
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	client := func(token string, tc *tls.Config) adminapi.Client {
		return adminapi.NewClient(token, peertls.Client(tc), 5*time.Second)
	}
	member := func(ca *tlstest.CA, name string) []tls.Certificate { return []tls.Certificate{ca.Issue(name).TLS} }
	follow := adminapi.LeaseRequest{Member: replica.id, Epoch: leader.raft.Record().Epoch, Follow: true}

	if err := client("", &tls.Config{Certificates: member(ca, replica.id), RootCAs: ca.Pool()}).Lease(t.Context(), addr, follow); err != nil {
		t.Fatalf("follow confirmation with a member certificate: %v", err)
	}
	for _, tt := range []struct {
		name string
		c    adminapi.Client
		want string
	}{
		{"certificate of another CA", client("", &tls.Config{Certificates: member(other, replica.id), RootCAs: ca.Pool()}), "unknown authority"},
		{"no certificate", client("", &tls.Config{RootCAs: ca.Pool()}), "no certificate"},
		{"admin token alone", client("secret", &tls.Config{RootCAs: ca.Pool()}), "no certificate"},
	} {
		err := tt.c.Lease(t.Context(), addr, follow)
		if !errors.Is(err, adminapi.ErrAPI) || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("lease call with %s: %v, want 403 saying %q", tt.name, err, tt.want)
		}
	}

	if _, err := client("secret", &tls.Config{RootCAs: ca.Pool()}).Status(t.Context(), addr); err != nil {
		t.Errorf("status with the token over TLS: %v", err)
	}
	if _, err := client("", &tls.Config{Certificates: member(ca, replica.id), RootCAs: ca.Pool()}).Status(t.Context(), addr); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("status with a member certificate and no token: %v, want 401", err)
	}
	err := client("", &tls.Config{Certificates: member(other, replica.id), RootCAs: other.Pool()}).Lease(t.Context(), addr, follow)
	if err == nil || errors.Is(err, adminapi.ErrAPI) || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("lease call to a leader of another CA: %v, want the handshake refused", err)
	}
	if _, err := (adminapi.Client{Token: "secret"}).Status(t.Context(), addr); err == nil {
		t.Error("plain HTTP to the TLS admin API answered")
	}
}

type readinessFunc func() string

func (f readinessFunc) NotReady() string { return f() }

// /readyz fails on a readiness check (the Kubernetes publisher's missing permissions) even while
// MySQL serves, and says why; MySQL's own problem is told first.
func TestReadyzHonoursReadinessChecks(t *testing.T) {
	problem := "kubernetes: this agent's service account may not patch pods"
	a := &Agent{opts: Options{Readiness: []ReadinessCheck{readinessFunc(func() string { return "" }), readinessFunc(func() string { return problem })}}}
	a.view = adminapi.View{Node: "db1", UpdatedAt: time.Now(), Local: adminapi.LocalView{Up: true},
		Record: record.Record{Primary: "db1"}, Report: primaryReport}
	ready := func() (int, string) {
		w := httptest.NewRecorder()
		a.serveReady(w, httptest.NewRequest("GET", "/readyz", nil))
		return w.Code, w.Body.String()
	}
	if code, body := ready(); code != 503 || !strings.Contains(body, problem) {
		t.Errorf("readyz = %d %s, want 503 saying %q", code, body, problem)
	}
	a.view.Local = adminapi.LocalView{Error: "connection refused"}
	if code, body := ready(); code != 503 || !strings.Contains(body, "local MySQL unreachable") {
		t.Errorf("readyz with MySQL down = %d %s", code, body)
	}
	a.opts.Readiness = a.opts.Readiness[:1]
	a.view.Local = adminapi.LocalView{Up: true}
	if code, body := ready(); code != 200 {
		t.Errorf("readyz with every check passing = %d %s", code, body)
	}
}

// The profiler answers people with the token and nobody else: a goroutine dump shows every
// stack, with what is on it.
func TestProfilerNeedsTheToken(t *testing.T) {
	srv := httptest.NewServer((&Agent{}).Handler(AdminAuth{Token: "secret"}, prometheus.NewRegistry()))
	defer srv.Close()
	get := func(path, token string) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1"} {
		if code := get(path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", path, code)
		}
		if code := get(path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, code)
		}
		if code := get(path, "secret"); code != http.StatusOK {
			t.Errorf("GET %s with the token: %d, want 200", path, code)
		}
	}
}
