package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestParseSpecRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"":                             "empty",
		"   ":                          "empty",
		"@every 1h":                    "@every is not a calendar schedule",
		"* * *":                        "expected exactly 5 fields",
		"0 0 30 2 *":                   "never fires",
		"61 * * * *":                   "above maximum",
		"CRON_TZ=":                     "want CRON_TZ=Zone",
		"CRON_TZ=UTC":                  "want CRON_TZ=Zone",
		"CRON_TZ=Local 0 * * * *":      "not Local",
		"CRON_TZ=Nowhere/Else @daily":  "Nowhere/Else",
		"TZ=UTC 0 * * * *":             "give the zone once",
		"CRON_TZ=UTC   @every 1h":      "@every is not a calendar schedule",
		"CRON_TZ=UTC TZ=UTC 0 * * * *": "give the zone once",
		"@fortnightly":                 "unrecognized descriptor",
	} {
		_, err := ParseSpec(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSpec(%q) = %v, want an error saying %q", in, err, want)
		}
	}
}

func TestSlots(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		spec, now, latest, next string
	}{
		{"0 * * * *", "2026-11-30T10:20:00Z", "2026-11-30T10:00:00Z", "2026-11-30T11:00:00Z"},
		{"0 * * * *", "2026-11-30T10:00:00Z", "2026-11-30T10:00:00Z", "2026-11-30T11:00:00Z"},
		{"0 * * * *", "2026-11-30T09:59:59.999Z", "2026-11-30T09:00:00Z", "2026-11-30T10:00:00Z"},
		{"*/15 2 * * *", "2026-11-30T10:20:00Z", "2026-11-30T02:45:00Z", "2026-12-01T02:00:00Z"},
		{"@daily", "2026-11-30T10:20:00Z", "2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z"},
		{"@weekly", "2026-11-30T10:20:00Z", "2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z"},
		{"0 0 29 2 *", "2026-11-30T10:20:00Z", "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"},
		// Every minute of January: the search must not walk them one by one.
		{"* * * 1 *", "2026-12-31T23:00:00Z", "2026-01-31T23:59:00Z", "2027-01-01T00:00:00Z"},
		// Zoned: 02:30 in Paris is 01:30 UTC in winter.
		{"CRON_TZ=Europe/Paris 30 2 * * *", "2026-11-30T10:20:00Z", "2026-11-30T01:30:00Z", "2026-12-01T01:30:00Z"},
		// Times given in another zone name the same instants.
		{"0 * * * *", "2026-11-30T11:20:00+01:00", "2026-11-30T10:00:00Z", "2026-11-30T11:00:00Z"},
	}
	for _, tt := range tests {
		s, err := ParseSpec(tt.spec)
		if err != nil {
			t.Fatalf("ParseSpec(%q): %v", tt.spec, err)
		}
		now := at(tt.now)
		latest, ok := s.Latest(now)
		if !ok || !latest.Equal(at(tt.latest)) || latest.Location() != time.UTC {
			t.Errorf("%q at %s: latest %s %v, want %s", tt.spec, tt.now, latest, ok, tt.latest)
		}
		if next := s.Next(now); !next.Equal(at(tt.next)) {
			t.Errorf("%q at %s: next %s, want %s", tt.spec, tt.now, next, tt.next)
		}
		if s.String() != tt.spec {
			t.Errorf("String() = %q", s.String())
		}
	}
	var off Spec
	if _, ok := off.Latest(at("2026-11-30T10:20:00Z")); ok || !off.IsZero() || !off.Next(time.Now()).IsZero() {
		t.Error("the zero Spec schedules something")
	}
}

// FuzzParseSpec: any text parses or is refused without panicking; a parsed spec's latest slot is
// at or before now, is a slot (the one after a second before it), and none lies between it and now.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"0 * * * *", "@daily", "CRON_TZ=Europe/Paris 30 2 * * 1-5", "TZ=UTC", "CRON_TZ=", "*/7 1,2 3-9/2 JAN-MAR SUN",
		"0 0 29 2 *", "@every 5m", "? ? ? ? ?"} {
		f.Add(s, int64(1796036400))
	}
	f.Fuzz(func(t *testing.T, text string, unix int64) {
		s, err := ParseSpec(text)
		if err != nil {
			return
		}
		now := time.Unix(unix%(1<<34), 0).UTC() // years 1970..2514
		latest, ok := s.Latest(now)
		if !ok {
			return
		}
		if latest.After(now) || !s.Next(latest.Add(-time.Second)).Equal(latest) {
			t.Fatalf("%q at %s: latest %s is not a slot at or before now", text, now, latest)
		}
		if n := s.Next(latest); !n.IsZero() && !n.After(now) {
			t.Fatalf("%q at %s: slot %s lies between latest %s and now", text, now, n, latest)
		}
	})
}
