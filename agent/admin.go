package agent

import (
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/consensus/peertls"
	"github.com/shoal-db/shoal/consensus/record"
)

// maxRequestBody bounds what the admin API reads from a request.
const maxRequestBody = 64 << 10

// AdminAuth says who may call which part of the admin API.
type AdminAuth struct {
	// Token is the bearer token of people and tools (status, switchover, pause, resume). Agents
	// never send it: it is not the cluster's secret.
	Token string
	// Peers, when set, is the cluster's TLS config (the Raft certificate and CA): agent-to-agent
	// calls (lease renewals and follow confirmations) then need a client certificate that
	// peertls accepts against its CA, and the token does not open them. Unset, the cluster runs
	// without TLS (raft.allow_plaintext) and those calls are as unauthenticated as Raft itself.
	Peers *tls.Config
}

// Handler is the admin HTTP API. People's endpoints under /v1/ and /debug/pprof/ need the bearer token, the
// agents' /v1/lease a member's certificate; /healthz, /readyz and /metrics are open so probes
// and scrapers need no secret.
func (a *Agent) Handler(auth AdminAuth, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", a.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	person := func(h http.HandlerFunc) http.Handler { return requireToken(auth.Token, h) }
	mux.Handle("GET /v1/status", person(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, a.snapshot()) }))
	mux.Handle("POST /v1/switchover", person(a.serveSwitchover))
	mux.Handle("POST /v1/pause", person(func(w http.ResponseWriter, r *http.Request) { a.servePaused(w, r, true) }))
	mux.Handle("POST /v1/resume", person(func(w http.ResponseWriter, r *http.Request) { a.servePaused(w, r, false) }))
	mux.Handle("POST /v1/lease", requirePeer(auth.Peers, http.HandlerFunc(a.serveLease)))
	mux.Handle("POST /v1/rebuild", person(a.serveRebuild))
	mux.Handle("POST /v1/reseed", requirePeer(auth.Peers, http.HandlerFunc(a.serveReseed)))
	mux.Handle("GET /v1/reseed/stream", requireMemberTLS(auth.Peers, http.HandlerFunc(a.serveBackupStream)))
	mux.Handle("GET "+adminapi.LogsPath, requireMemberTLS(auth.Peers, http.HandlerFunc(a.serveLogs)))
	mux.Handle("POST /v1/backup/report", requirePeer(auth.Peers, http.HandlerFunc(a.serveBackupReport)))
	// Go's profiler, for people chasing the agent's own CPU or memory: a profile shows every
	// goroutine's stack, so it takes the token like the rest of /v1/.
	mux.Handle("GET /debug/pprof/", person(pprof.Index))
	mux.Handle("GET /debug/pprof/profile", person(pprof.Profile))
	mux.Handle("GET /debug/pprof/trace", person(pprof.Trace))
	return mux
}

// AdminTLS is the admin listener's TLS config, from the cluster's (peers): the agent serves its
// own certificate and asks callers for theirs without requiring or checking it in the
// handshake. People come with the token and no certificate; requirePeer checks an agent's
// certificate on the calls that need one, so a refused agent gets an answer saying why rather
// than a bare TLS alert.
func AdminTLS(peers *tls.Config) *tls.Config {
	c := peers.Clone()
	c.ClientAuth = tls.RequestClientCert
	c.MinVersion = max(c.MinVersion, tls.VersionTLS13)
	return c
}

func requireToken(token string, h http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shoal"`)
			writeJSON(w, http.StatusUnauthorized, adminapi.Error{Error: "missing or wrong bearer token"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// requirePeer lets through only callers whose client certificate peertls accepts against the
// cluster CA; without peers (no TLS in the cluster) everyone.
func requirePeer(peers *tls.Config, h http.Handler) http.Handler {
	if peers == nil {
		return h
	}
	roots := peertls.ClientCAs(peers)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			writeJSON(w, http.StatusForbidden, adminapi.Error{Error: "agent calls need TLS with a member certificate"})
			return
		}
		if err := peertls.Verify(r.TLS.PeerCertificates, roots, peers.ServerName, x509.ExtKeyUsageClientAuth); err != nil {
			writeJSON(w, http.StatusForbidden, adminapi.Error{Error: "agent calls need a member certificate of this cluster: " + err.Error()})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ReadinessCheck is a condition of /readyz beside the local MySQL's health: the Kubernetes
// publisher's permissions, say. NotReady says what is wrong, or "" when nothing is.
type ReadinessCheck interface {
	NotReady() string
}

// serveReady answers 200 when the local MySQL is healthy in the role the record gives it and
// every readiness check passes.
func (a *Agent) serveReady(w http.ResponseWriter, _ *http.Request) {
	v := a.snapshot()
	why := notReady(v)
	for _, c := range a.opts.Readiness {
		if why != "" {
			break
		}
		why = c.NotReady()
	}
	if why != "" {
		writeJSON(w, http.StatusServiceUnavailable, adminapi.Error{Error: why})
		return
	}
	io.WriteString(w, "ready\n")
}

func notReady(v adminapi.View) string {
	switch {
	case v.UpdatedAt.IsZero():
		return "no pass completed yet"
	case !v.Local.Up:
		return "local MySQL unreachable: " + v.Local.Error
	case v.Errant != "":
		return "local server has errant GTIDs: " + v.Errant
	case v.Record.Primary == "":
		return "no primary recorded"
	case v.Local.CommitStall != "":
		return fmt.Sprintf("commit path stalled (%s): a heartbeat commit has waited %s", v.Local.CommitStall,
			(time.Duration(v.Local.CommitWaitMs) * time.Millisecond).String())
	case v.Report.Serving(v.Node, v.Record.Primary):
		return ""
	case v.Record.Primary == v.Node:
		return "recorded primary but not writable yet"
	default:
		return fmt.Sprintf("not replicating from primary %s", v.Record.Primary)
	}
}

// proposeOnLeader applies cmd if this agent leads, and otherwise tells the caller where the
// leader's admin API is.
func (a *Agent) proposeOnLeader(w http.ResponseWriter, r *http.Request, cmd record.Command) {
	if !a.raft.IsLeader() {
		a.notLeader(w)
		return
	}
	cmd.At = a.now()
	rec, err := a.raft.Apply(r.Context(), cmd)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, record.ErrInvalidCommand) || errors.Is(err, record.ErrStaleEpoch) || errors.Is(err, record.ErrJobConflict) {
			status = http.StatusUnprocessableEntity
		}
		writeJSON(w, status, adminapi.Error{Error: err.Error()})
		return
	}
	a.Trigger()
	writeJSON(w, http.StatusOK, rec)
}

func (a *Agent) notLeader(w http.ResponseWriter) {
	id, _ := a.raft.Leader()
	writeJSON(w, http.StatusConflict, adminapi.Error{Error: "not the raft leader", LeaderAdmin: a.raft.Record().Members[id].AdminAddr})
}

func (a *Agent) serveSwitchover(w http.ResponseWriter, r *http.Request) {
	var req adminapi.SwitchoverRequest
	if !readJSON(w, r, &req) {
		return
	}
	a.proposeOnLeader(w, r, record.Command{Op: record.OpRequestSwitchover,
		Switchover: &record.Switchover{To: req.To, RequestedAt: a.now()}, Reason: "switchover requested through the admin API"})
}

func (a *Agent) servePaused(w http.ResponseWriter, r *http.Request, paused bool) {
	a.proposeOnLeader(w, r, record.Command{Op: record.OpSetPaused, Paused: paused})
}

func (a *Agent) serveLease(w http.ResponseWriter, r *http.Request) {
	var req adminapi.LeaseRequest
	if !readJSON(w, r, &req) {
		return
	}
	switch err := a.leases.handle(r.Context(), a.raft, req, a.now); {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, adminapi.ErrNotLeader):
		a.notLeader(w)
	case errors.Is(err, adminapi.ErrLeaseRevoked):
		writeJSON(w, http.StatusGone, adminapi.Error{Error: err.Error()})
	case errors.Is(err, adminapi.ErrLeaseRefused):
		writeJSON(w, http.StatusUnprocessableEntity, adminapi.Error{Error: err.Error()})
	default:
		writeJSON(w, http.StatusServiceUnavailable, adminapi.Error{Error: err.Error()})
	}
}

// readJSON decodes a request body strictly: unknown fields and trailing data are errors.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) { // an empty body means all defaults
		err = nil
	} else if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, adminapi.Error{Error: "bad request body: " + err.Error()})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
