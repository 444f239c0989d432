package agent

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
)

// maxRequestBody bounds what the admin API reads from a request.
const maxRequestBody = 64 << 10

// apiError is the body of every non-2xx answer.
type apiError struct {
	Error string `json:"error"`
	// LeaderAdmin is set with 409 when the request must go to the Raft leader.
	LeaderAdmin string `json:"leader_admin,omitempty"`
}

// SwitchoverRequest asks for a planned switchover; To empty lets the leader pick the best replica.
type SwitchoverRequest struct {
	To string `json:"to,omitempty"`
}

// Handler is the admin HTTP API. Everything under /v1/ needs the bearer token; /healthz,
// /readyz and /metrics are open so probes and scrapers need no secret.
func (a *Agent) Handler(token string, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", a.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	auth := func(h http.HandlerFunc) http.Handler { return requireToken(token, h) }
	mux.Handle("GET /v1/status", auth(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, a.snapshot()) }))
	mux.Handle("POST /v1/switchover", auth(a.serveSwitchover))
	mux.Handle("POST /v1/pause", auth(func(w http.ResponseWriter, r *http.Request) { a.servePaused(w, r, true) }))
	mux.Handle("POST /v1/resume", auth(func(w http.ResponseWriter, r *http.Request) { a.servePaused(w, r, false) }))
	mux.Handle("POST /v1/lease", auth(a.serveLease))
	return mux
}

func requireToken(token string, h http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shoal"`)
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "missing or wrong bearer token"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// serveReady answers 200 when the local MySQL is healthy in the role the record gives it.
func (a *Agent) serveReady(w http.ResponseWriter, _ *http.Request) {
	v := a.snapshot()
	if why := notReady(v); why != "" {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: why})
		return
	}
	io.WriteString(w, "ready\n")
}

func notReady(v View) string {
	switch {
	case v.UpdatedAt.IsZero():
		return "no pass completed yet"
	case !v.Local.Up:
		return "local MySQL unreachable: " + v.Local.Error
	case v.Errant != "":
		return "local server has errant GTIDs: " + v.Errant
	case v.Record.Primary == "":
		return "no primary recorded"
	case v.Record.Primary == v.Node:
		if !v.Local.Writable {
			return "recorded primary but not writable yet"
		}
	case v.Report.Role != health.RoleReplica || v.Report.Source != v.Record.Primary || !v.Report.IOConnected || !v.Report.SQLRunning:
		return fmt.Sprintf("not replicating from primary %s", v.Record.Primary)
	}
	return ""
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
		if errors.Is(err, record.ErrInvalidCommand) || errors.Is(err, record.ErrStaleEpoch) {
			status = http.StatusUnprocessableEntity
		}
		writeJSON(w, status, apiError{Error: err.Error()})
		return
	}
	a.Trigger()
	writeJSON(w, http.StatusOK, rec)
}

func (a *Agent) notLeader(w http.ResponseWriter) {
	id, _ := a.raft.Leader()
	writeJSON(w, http.StatusConflict, apiError{Error: "not the raft leader", LeaderAdmin: a.raft.Record().Members[id].AdminAddr})
}

func (a *Agent) serveSwitchover(w http.ResponseWriter, r *http.Request) {
	var req SwitchoverRequest
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
	var req LeaseRequest
	if !readJSON(w, r, &req) {
		return
	}
	switch err := a.leases.handle(r.Context(), a.raft, req, a.now); {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrNotLeader):
		a.notLeader(w)
	case errors.Is(err, ErrLeaseRevoked):
		writeJSON(w, http.StatusGone, apiError{Error: err.Error()})
	case errors.Is(err, ErrLeaseRefused):
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Error: err.Error()})
	default:
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
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
		writeJSON(w, http.StatusBadRequest, apiError{Error: "bad request body: " + err.Error()})
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

// AdminClient talks to agents' admin APIs: the CLI's way in, and agents' way to the leader.
type AdminClient struct {
	HTTP  *http.Client
	Token string
}

// ErrAPI wraps every error an agent answered with.
var ErrAPI = errors.New("admin API error")

// Status fetches an agent's view.
func (c AdminClient) Status(ctx context.Context, addr string) (View, error) {
	var v View
	err := c.call(ctx, http.MethodGet, addr, "/v1/status", nil, &v)
	return v, err
}

// Switchover asks the cluster for a planned switchover, following the answer to the leader.
func (c AdminClient) Switchover(ctx context.Context, addr, to string) (record.Record, error) {
	var rec record.Record
	err := c.callLeader(ctx, addr, "/v1/switchover", SwitchoverRequest{To: to}, &rec)
	return rec, err
}

// SetPaused pauses or resumes automatic actions cluster-wide.
func (c AdminClient) SetPaused(ctx context.Context, addr string, paused bool) (record.Record, error) {
	path := "/v1/resume"
	if paused {
		path = "/v1/pause"
	}
	var rec record.Record
	err := c.callLeader(ctx, addr, path, struct{}{}, &rec)
	return rec, err
}

// Lease renews or releases a primary lease on the leader at addr.
func (c AdminClient) Lease(ctx context.Context, addr string, req LeaseRequest) error {
	return c.call(ctx, http.MethodPost, addr, "/v1/lease", req, nil)
}

// callLeader posts to addr and, when it is not the leader, once more to the leader it names.
func (c AdminClient) callLeader(ctx context.Context, addr, path string, body, out any) error {
	err := c.call(ctx, http.MethodPost, addr, path, body, out)
	var nl *notLeaderError
	if errors.As(err, &nl) && nl.leaderAdmin != "" && nl.leaderAdmin != addr {
		return c.call(ctx, http.MethodPost, nl.leaderAdmin, path, body, out)
	}
	return err
}

type notLeaderError struct{ leaderAdmin string }

func (e *notLeaderError) Error() string {
	return "not the raft leader (leader admin: " + e.leaderAdmin + ")"
}

func (c AdminClient) call(ctx context.Context, method, addr, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s request: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s%s: %w", method, addr, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s%s: read answer: %w", method, addr, path, err)
	}
	if resp.StatusCode >= 300 {
		var ae apiError
		json.Unmarshal(b, &ae)
		if resp.StatusCode == http.StatusConflict && ae.LeaderAdmin != "" {
			return fmt.Errorf("%s %s%s: %w", method, addr, path, &notLeaderError{leaderAdmin: ae.LeaderAdmin})
		}
		if ae.Error == "" {
			ae.Error = strings.TrimSpace(string(b))
		}
		switch resp.StatusCode {
		case http.StatusGone:
			return fmt.Errorf("%s %s%s: %w: %w: %s", method, addr, path, ErrAPI, ErrLeaseRevoked, ae.Error)
		case http.StatusUnprocessableEntity:
			return fmt.Errorf("%s %s%s: %w: %w: %s", method, addr, path, ErrAPI, ErrLeaseRefused, ae.Error)
		}
		return fmt.Errorf("%s %s%s: %w: %s: %s", method, addr, path, ErrAPI, resp.Status, ae.Error)
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s%s: decode answer: %w", method, addr, path, err)
	}
	return nil
}
