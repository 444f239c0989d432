package health

import (
	"errors"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := Report{Epoch: 7, MySQLUp: true, Role: RoleReplica, Source: "db-0", IOConnected: true, SQLRunning: true, LagMillis: 120}
	b, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	in.V = Version
	if out != in {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":       nil,
		"not json":    []byte("hello"),
		"no version":  []byte(`{"e":1}`),
		"newer":       []byte(`{"v":99,"e":1}`),
		"too large":   []byte(`{"v":1,"src":"` + strings.Repeat("x", MaxEncodedSize) + `"}`),
		"wrong types": []byte(`{"v":1,"e":"one"}`),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrBadReport) {
			t.Errorf("%s: Decode = %v, want ErrBadReport", name, err)
		}
	}
}

func TestEncodeRefusesOversize(t *testing.T) {
	if _, err := (Report{Source: strings.Repeat("x", MaxEncodedSize)}).Encode(); !errors.Is(err, ErrBadReport) {
		t.Fatalf("Encode of an oversize report = %v, want ErrBadReport", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"v":1,"e":3,"up":true,"r":"primary","w":true,"lag":-1}`))
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode again within the limit or be refused cleanly.
		if enc, err := r.Encode(); err == nil {
			if _, err := Decode(enc); err != nil {
				t.Fatalf("re-decode of %q: %v", enc, err)
			}
		}
	})
}

func TestServing(t *testing.T) {
	primary := Report{MySQLUp: true, Role: RolePrimary, Writable: true}
	replica := Report{MySQLUp: true, Role: RoleReplica, Source: "db-0", IOConnected: true, SQLRunning: true}
	with := func(r Report, f func(*Report)) Report { f(&r); return r }
	tests := []struct {
		name        string
		r           Report
		id, primary string
		want        bool
	}{
		{"writable primary", primary, "db-0", "db-0", true},
		{"read-only primary", with(primary, func(r *Report) { r.Writable = false }), "db-0", "db-0", false},
		{"primary that is a replica", replica, "db-0", "db-0", false},
		{"replica of the primary", replica, "db-1", "db-0", true},
		{"replica of another source", replica, "db-1", "db-2", false},
		{"replica not receiving", with(replica, func(r *Report) { r.IOConnected = false }), "db-1", "db-0", false},
		{"replica not applying", with(replica, func(r *Report) { r.SQLRunning = false }), "db-1", "db-0", false},
		{"writable replica", primary, "db-1", "db-0", false},
		{"errant", with(replica, func(r *Report) { r.Errant = true }), "db-1", "db-0", false},
		{"draining", with(primary, func(r *Report) { r.Draining = true }), "db-0", "db-0", false},
		{"mysql down", with(primary, func(r *Report) { r.MySQLUp = false }), "db-0", "db-0", false},
		{"no primary recorded", with(primary, func(r *Report) {}), "db-0", "", false},
	}
	for _, tt := range tests {
		if got := tt.r.Serving(tt.id, tt.primary); got != tt.want {
			t.Errorf("%s: Serving(%q, %q) = %t, want %t", tt.name, tt.id, tt.primary, got, tt.want)
		}
	}
}
