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
	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/peertls"
	"github.com/shoal-db/shoal/consensus/tlstest"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// The backup stream carries the whole database: over TLS it needs a member certificate of the
// cluster's CA (another CA's, none, or the admin token alone get 403), and without the cluster's
// TLS it is refused outright. A donor that cannot back up says why before streaming anything.
// The same holds for the log stream a failover's recovery reads (/v1/logs).
// The re-seed and rebuild calls refuse bad requests with a clear error and start nothing.
func TestReseedCallsNeedAMemberCertificateAndGoodRequests(t *testing.T) {
	c := startCluster(t, 3)
	primary := c.waitPrimary("")
	leader := c.leaderOtherThan(nil)
	replica := c.other(primary, primary)
	ca, other := tlstest.NewCA(t), tlstest.NewCA(t)

	serve := func(m *member, peers *tls.Config) string {
		srv := httptest.NewUnstartedServer(m.agent.Handler(AdminAuth{Token: "secret", Peers: peers}, prometheus.NewRegistry()))
		if peers != nil {
			srv.TLS = AdminTLS(peers)
			srv.StartTLS()
		} else {
			srv.Start()
		}
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	client := func(token string, tc *tls.Config) adminapi.Client {
		return adminapi.NewClient(token, peertls.Client(tc), 5*time.Second)
	}
	member := func(ca *tlstest.CA, name string) []tls.Certificate { return []tls.Certificate{ca.Issue(name).TLS} }
	memberClient := client("", &tls.Config{Certificates: member(ca, leader.id), RootCAs: ca.Pool()})

	donor := serve(replica, ca.Config(replica.id))
	for _, tt := range []struct {
		name string
		c    adminapi.Client
		want string
	}{
		{"certificate of another CA", client("", &tls.Config{Certificates: member(other, leader.id), RootCAs: ca.Pool()}), "403"},
		{"no certificate", client("", &tls.Config{RootCAs: ca.Pool()}), "403"},
		{"admin token alone", client("secret", &tls.Config{RootCAs: ca.Pool()}), "403"},
		// The fake cluster's agents have no local MySQL account to back up with.
		{"member certificate, no server to back up", memberClient, "500"},
	} {
		_, err := tt.c.BackupStream(t.Context(), donor)
		if !errors.Is(err, adminapi.ErrAPI) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("backup stream with %s: %v, want %s", tt.name, err, tt.want)
		}
	}
	_, err := adminapi.Client{}.BackupStream(t.Context(), serve(replica, nil))
	if !errors.Is(err, adminapi.ErrAPI) || !strings.Contains(err.Error(), "needs the cluster's TLS") {
		t.Errorf("backup stream without cluster TLS: %v, want it refused", err)
	}

	// The logs a failover's recovery copies carry data too; a bad request is refused before
	// any server is asked.
	for _, tt := range []struct {
		name string
		c    adminapi.Client
		log  string
		want string
	}{
		{"admin token alone", client("secret", &tls.Config{RootCAs: ca.Pool()}), "relay", "403"},
		{"member certificate, an unknown log", memberClient, "general", "400"},
		{"member certificate, no server to read", memberClient, "relay", "503"},
	} {
		_, err := tt.c.Logs(t.Context(), donor, tt.log, gtid.Set{}, gtid.Set{})
		if !errors.Is(err, adminapi.ErrAPI) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("log stream with %s: %v, want %s", tt.name, err, tt.want)
		}
	}
	if _, err := (adminapi.Client{}).Logs(t.Context(), serve(replica, nil), "relay", gtid.Set{}, gtid.Set{}); err == nil || !strings.Contains(err.Error(), "needs the cluster's TLS") {
		t.Errorf("log stream without cluster TLS: %v, want it refused", err)
	}

	joiner := serve(replica, ca.Config(replica.id))
	for _, tt := range []struct{ name, donor, want string }{
		{"an unknown donor", "db-9", "400"},
		{"itself as donor", replica.id, "400"},
	} {
		if err := memberClient.Reseed(t.Context(), joiner, tt.donor); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("re-seed from %s: %v, want %s", tt.name, err, tt.want)
		}
	}
	if err := client("secret", &tls.Config{RootCAs: ca.Pool()}).Reseed(t.Context(), joiner, primary.id); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("re-seed call with the admin token alone: %v, want 403", err)
	}
	if err := memberClient.Reseed(t.Context(), serve(primary, ca.Config(primary.id)), replica.id); err == nil || !strings.Contains(err.Error(), "is the primary") {
		t.Errorf("re-seed of the primary: %v, want it refused", err)
	}
	// A re-seed from a backup: never the primary, and an agent without a store says so.
	if err := memberClient.ReseedFromBackup(t.Context(), serve(primary, ca.Config(primary.id))); err == nil || !strings.Contains(err.Error(), "is the primary") {
		t.Errorf("re-seed of the primary from a backup: %v, want it refused", err)
	}
	if err := memberClient.ReseedFromBackup(t.Context(), joiner); err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "no backup store") {
		t.Errorf("re-seed from a backup without a store: %v, want 409 saying so", err)
	}
	if err := client("secret", &tls.Config{RootCAs: ca.Pool()}).ReseedFromBackup(t.Context(), joiner); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("re-seed from a backup with the admin token alone: %v, want 403", err)
	}
	// Unknown fields are refused before anything is looked at.
	resp, err := memberClient.HTTP.Post("https://"+joiner+"/v1/reseed", "application/json", strings.NewReader(`{"donor":"db-0","from":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "unknown field") {
		t.Errorf("re-seed with an unknown field: %d %s, want 400", resp.StatusCode, body)
	}
	if replica.agent.reseed.Load() != nil {
		t.Error("a refused request started a re-seed")
	}

	leaderAddr := serve(leader, ca.Config(leader.id))
	people := client("secret", &tls.Config{RootCAs: ca.Pool()})
	for _, tt := range []struct{ member, want string }{
		{primary.id, "switch over first"},
		{"db-9", "not a member"},
	} {
		if _, err := people.RequestRebuild(t.Context(), leaderAddr, tt.member); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("rebuild %s: %v, want %q", tt.member, err, tt.want)
		}
	}
	if _, err := memberClient.RequestRebuild(t.Context(), leaderAddr, replica.id); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("rebuild with a member certificate and no token: %v, want 401", err)
	}
}

// A copy from the primary starts once the primary lends its data read-only, or once enough
// other replicas acknowledge its commits (then it does not lend); the joiner's own report, an
// errant or re-seeding member, or a replica of another source never count as acknowledgers.
func TestPrimaryDonorReady(t *testing.T) {
	alive := func(r health.Report) ha.Peer { r.MySQLUp = true; return ha.Peer{State: ha.PeerAlive, Report: r} }
	primary := alive(health.Report{Role: health.RolePrimary, Writable: true})
	acker := alive(health.Report{Role: health.RoleReplica, Source: "db1", IOConnected: true})
	with := func(p ha.Peer, edit func(*health.Report)) ha.Peer { edit(&p.Report); return p }
	self := with(acker, func(r *health.Report) { r.Reseeding, r.ReseedFrom = true, "db1" })
	for _, tt := range []struct {
		name string
		view map[string]ha.Peer
		acks int
		want primaryDonorState
	}{
		{"lent read-only", map[string]ha.Peer{"db1": with(primary, func(r *health.Report) { r.Writable = false }), "db2": self}, 1, lentReadOnly},
		{"writable, no other replica", map[string]ha.Peer{"db1": primary, "db2": self}, 1, donorNotReady},
		{"writable, one acknowledging replica", map[string]ha.Peer{"db1": primary, "db2": self, "db3": acker}, 1, acknowledged},
		{"two acks needed, one replica", map[string]ha.Peer{"db1": primary, "db2": self, "db3": acker}, 2, donorNotReady},
		{"the joiner's own report claims a connection", map[string]ha.Peer{"db1": primary, "db2": with(self, func(r *health.Report) { r.Reseeding = false })}, 1, donorNotReady},
		{"replica not connected", map[string]ha.Peer{"db1": primary, "db2": self, "db3": with(acker, func(r *health.Report) { r.IOConnected = false })}, 1, donorNotReady},
		{"replica of another source", map[string]ha.Peer{"db1": primary, "db2": self, "db3": with(acker, func(r *health.Report) { r.Source = "db4" })}, 1, donorNotReady},
		{"errant replica", map[string]ha.Peer{"db1": primary, "db2": self, "db3": with(acker, func(r *health.Report) { r.Errant = true })}, 1, donorNotReady},
		{"replica re-seeding", map[string]ha.Peer{"db1": primary, "db2": self, "db3": with(acker, func(r *health.Report) { r.Reseeding = true })}, 1, donorNotReady},
		{"replica's agent dead", map[string]ha.Peer{"db1": primary, "db2": self, "db3": {State: ha.PeerDead, Report: acker.Report}}, 1, donorNotReady},
		{"primary's MySQL down", map[string]ha.Peer{"db1": with(primary, func(r *health.Report) { r.MySQLUp, r.Writable = false, false }), "db2": self, "db3": acker}, 1, donorNotReady},
		{"primary's agent gone", map[string]ha.Peer{"db2": self, "db3": acker}, 1, donorNotReady},
	} {
		if got := primaryDonorReady(tt.view, "db2", "db1", tt.acks); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}
