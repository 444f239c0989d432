package adminapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
