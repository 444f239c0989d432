package adminapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// A lease answer keeps its meaning across the wire: a final refusal (410) makes the primary drop
// its lease at once, a passing one (422) does not.
func TestLeaseRefusalsOverHTTP(t *testing.T) {
	for _, tt := range []struct {
		status         int
		refused, final bool
	}{
		{http.StatusGone, true, true},
		{http.StatusUnprocessableEntity, true, false},
		{http.StatusServiceUnavailable, false, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(tt.status)
			w.Write([]byte(`{"error":"because"}`))
		}))
		err := Client{HTTP: srv.Client()}.Lease(t.Context(), strings.TrimPrefix(srv.URL, "http://"), LeaseRequest{Member: "db-0", Epoch: 1})
		srv.Close()
		if !errors.Is(err, ErrAPI) || errors.Is(err, ErrLeaseRefused) != tt.refused || errors.Is(err, ErrLeaseRevoked) != tt.final {
			t.Errorf("status %d: %v; want refused %t, for good %t", tt.status, err, tt.refused, tt.final)
		}
	}
}

// The GTID sets of a logs request reach the agent in a form its parser takes, on both flavors:
// a MariaDB set of a range not from 1 (what a recovery names) by its position.
func TestLogsSetsParseOnTheAgent(t *testing.T) {
	for _, tt := range []struct {
		flavor      gtid.Flavor
		after, only string
		wantOnly    string
	}{
		{gtid.MariaDB, "0-1-27", "0-1-28,0-1-203", "0-1-203"},
		{gtid.MySQL, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-27",
			"3e11fa47-71ca-11e1-9e33-c80aa9429562:28-203", "3e11fa47-71ca-11e1-9e33-c80aa9429562:28-203"},
	} {
		var got url.Values
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = r.URL.Query()
			w.WriteHeader(http.StatusBadRequest)
		}))
		after := gtid.MustParse(tt.flavor, tt.after)
		only, err := gtid.MustParse(tt.flavor, tt.only).Subtract(after)
		if err != nil {
			t.Fatal(err)
		}
		Client{HTTP: srv.Client()}.Logs(t.Context(), strings.TrimPrefix(srv.URL, "http://"), "relay", after, only)
		srv.Close()
		for _, key := range []string{"after", "only"} {
			if _, err := gtid.Parse(tt.flavor, got.Get(key)); err != nil {
				t.Errorf("%s: %s=%q does not parse: %v", tt.flavor, key, got.Get(key), err)
			}
		}
		if got.Get("only") != tt.wantOnly {
			t.Errorf("%s: only=%q, want %q", tt.flavor, got.Get("only"), tt.wantOnly)
		}
	}
}
