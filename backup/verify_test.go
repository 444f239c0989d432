package backup

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

func TestParseVerification(t *testing.T) {
	ok := `{"format":1,"time":"2026-11-30T18:00:00Z","member":"db2","ok":true,"reason":"restored","duration_seconds":2.5,"gtid":"0-1-7"}`
	v, err := ParseVerification([]byte(ok))
	if err != nil || !v.OK || v.Member != "db2" || v.Duration != 2.5 || v.GTID != "0-1-7" {
		t.Fatalf("ParseVerification(%s) = %+v, %v", ok, v, err)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"format":2,"time":"2026-11-30T18:00:00Z","ok":true,"reason":"r"}`, "format 2"},
		{`{"format":1,"ok":true,"reason":"r"}`, "no time"},
		{`{"format":1,"time":"2026-11-30T18:00:00Z","ok":true,"reason":"r","duration_seconds":-1}`, "negative duration"},
		{`{"format":1,"time":"2026-11-30T18:00:00Z","ok":true}`, "no reason"},
		{`{"format":1,"time":"2026-11-30T18:00:00Z","ok":true,"reason":"r","passed":true}`, "unknown field"},
		{ok + `{}`, "trailing data"},
		{`{"format":1,`, "unexpected EOF"},
	} {
		if _, err := ParseVerification([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseVerification(%s) = %v, want an error saying %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseVerification(f *testing.F) {
	f.Add([]byte(`{"format":1,"time":"2026-11-30T18:00:00Z","ok":false,"reason":"object data-000001.zst: corrupt","duration_seconds":1}`))
	f.Add([]byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVerification(b)
		if err != nil {
			return
		}
		// What reads must survive a write and a read unchanged.
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseVerification(out)
		if err != nil || !again.Time.Equal(v.Time) || again.OK != v.OK || again.Reason != v.Reason || again.GTID != v.GTID {
			t.Fatalf("%s read as %+v, written as %s, read back as %+v, %v", b, v, out, again, err)
		}
	})
}

func TestPickForRestore(t *testing.T) {
	pass := &Verification{OK: true, Reason: "ok"}
	fail := &Verification{Reason: "corrupt"}
	e := func(id string, valid bool, v *Verification) Entry {
		return Entry{ID: id, Valid: valid, Verification: v}
	}
	for _, tc := range []struct {
		name    string
		entries []Entry
		want    string
	}{
		{"none", nil, ""},
		{"only invalid ones", []Entry{e("a", false, pass), e("b", false, nil)}, ""},
		{"the newest valid when none was tested", []Entry{e("a", true, nil), e("b", true, nil), e("c", false, nil)}, "b"},
		{"a verified one before a newer untested one", []Entry{e("a", true, pass), e("b", true, nil)}, "a"},
		{"the newest verified one", []Entry{e("a", true, pass), e("b", true, pass), e("c", true, nil)}, "b"},
		{"a failed test is skipped", []Entry{e("a", true, nil), e("b", true, fail)}, "a"},
		{"only failed tests", []Entry{e("a", true, fail), e("b", true, fail)}, ""},
		{"a verified one whose objects went missing is not valid", []Entry{e("a", true, nil), e("b", false, pass)}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if p := pickForRestore(tc.entries); p != nil {
				got = p.ID
			}
			if got != tc.want {
				t.Errorf("picked %q, want %q", got, tc.want)
			}
		})
	}
}

// The throwaway server never listens on a network, never checks grants against a copy's
// accounts, never replicates or writes a binlog.
func TestServerArgs(t *testing.T) {
	for _, flavor := range []gtid.Flavor{gtid.MariaDB, gtid.MySQL} {
		a := serverArgs(flavor, "/s/v1", false)
		if a[0] != "--no-defaults" {
			t.Errorf("%s: %v: --no-defaults must come first", flavor, a)
		}
		skipReplica := map[gtid.Flavor]string{gtid.MariaDB: "--skip-slave-start", gtid.MySQL: "--skip-replica-start"}[flavor]
		for _, want := range []string{"--skip-networking", "--skip-grant-tables", "--skip-log-bin", skipReplica, "--datadir=/s/v1/data", "--socket=/s/v1/s.sock"} {
			if !slices.Contains(a, want) {
				t.Errorf("%s: %v lacks %s", flavor, a, want)
			}
		}
		if slices.Contains(a, "--user=root") || !slices.Contains(serverArgs(flavor, "/s", true), "--user=root") {
			t.Errorf("%s: --user=root goes only to a server started as root", flavor)
		}
	}
}
