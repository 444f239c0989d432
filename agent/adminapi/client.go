package adminapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/shoal-db/shoal/consensus/record"
)

// Client talks to agents' admin APIs: the CLI's way in, and agents' way to the leader. Build
// one with NewClient when the agents serve HTTPS.
type Client struct {
	HTTP *http.Client
	// Token is the bearer token people and tools send; agents leave it empty.
	Token string
	// HTTPS: the agents serve TLS (the cluster has TLS material); HTTP's transport then carries
	// the TLS config that trusts the cluster CA.
	HTTPS bool
}

// NewClient returns a client giving up after timeout. A non-nil tlsConf (peertls.Client of the
// cluster CA, with this member's certificate when an agent calls) makes it speak HTTPS.
func NewClient(token string, tlsConf *tls.Config, timeout time.Duration) Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	return Client{HTTP: &http.Client{Timeout: timeout, Transport: tr}, Token: token, HTTPS: tlsConf != nil}
}

// Status fetches an agent's view.
func (c Client) Status(ctx context.Context, addr string) (View, error) {
	var v View
	err := c.call(ctx, http.MethodGet, addr, "/v1/status", nil, &v)
	return v, err
}

// Switchover asks the cluster for a planned switchover, following the answer to the leader.
func (c Client) Switchover(ctx context.Context, addr, to string) (record.Record, error) {
	var rec record.Record
	err := c.callLeader(ctx, addr, "/v1/switchover", SwitchoverRequest{To: to}, &rec)
	return rec, err
}

// SetPaused pauses or resumes automatic actions cluster-wide.
func (c Client) SetPaused(ctx context.Context, addr string, paused bool) (record.Record, error) {
	path := "/v1/resume"
	if paused {
		path = "/v1/pause"
	}
	var rec record.Record
	err := c.callLeader(ctx, addr, path, struct{}{}, &rec)
	return rec, err
}

// Lease renews or releases a primary lease on the leader at addr.
func (c Client) Lease(ctx context.Context, addr string, req LeaseRequest) error {
	return c.call(ctx, http.MethodPost, addr, "/v1/lease", req, nil)
}

// callLeader posts to addr and, when it is not the leader, once more to the leader it names.
func (c Client) callLeader(ctx context.Context, addr, path string, body, out any) error {
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

func (c Client) call(ctx context.Context, method, addr, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s request: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	scheme := "http://"
	if c.HTTPS {
		scheme = "https://"
	}
	req, err := http.NewRequestWithContext(ctx, method, scheme+addr+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
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
		var ae Error
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
