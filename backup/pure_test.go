package backup

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRateAndETA(t *testing.T) {
	for _, tc := range []struct {
		n, total int64
		elapsed  time.Duration
		rate     float64
		eta      time.Duration
	}{
		{0, 100, 0, 0, -1},
		{0, 100, time.Second, 0, -1},
		{50, 100, 10 * time.Second, 5, 10 * time.Second},
		{50, 0, 10 * time.Second, 5, -1},
		{150, 100, 10 * time.Second, 15, 0},
		{100, 100, 10 * time.Second, 10, 0},
	} {
		rate, eta := rateAndETA(tc.n, tc.total, tc.elapsed)
		if rate != tc.rate || eta != tc.eta {
			t.Errorf("rateAndETA(%d, %d, %s) = %v, %s; want %v, %s", tc.n, tc.total, tc.elapsed, rate, eta, tc.rate, tc.eta)
		}
	}
}

func TestSafeJoin(t *testing.T) {
	for name, want := range map[string]string{
		"ibdata1":     "/d/ibdata1",
		"app/t.ibd":   "/d/app/t.ibd",
		"app/":        "/d/app",
		"./app/../x":  "/d/x",
		"../x":        "",
		"app/../../x": "",
		"/etc/passwd": "",
		"..":          "",
		".":           "",
		"":            "",
		"a\x00b":      "",
	} {
		got, err := safeJoin("/d", name)
		if want == "" {
			if err == nil {
				t.Errorf("safeJoin(%q) = %q, want an error", name, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("safeJoin(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}

func TestLayoutSplit(t *testing.T) {
	l := layout{"c1"}
	for key, want := range map[string][2]string{
		"c1/backups/20261130T150000Z-db1/manifest.json":   {"20261130T150000Z-db1", "manifest.json"},
		"c1/backups/20261130T150000Z-db1/data-000000.zst": {"20261130T150000Z-db1", "data-000000.zst"},
		"c1/backups/20261130T150000Z-db1/":                {},
		"c2/backups/20261130T150000Z-db1/manifest.json":   {},
		"c1/binlogs/x": {},
	} {
		id, name, ok := l.split(key)
		if ok != (want[0] != "") || id != want[0] || name != want[1] {
			t.Errorf("split(%q) = %q, %q, %v; want %q", key, id, name, ok, want)
		}
	}
	if got := l.manifestKey("x"); got != "c1/backups/x/manifest.json" {
		t.Errorf("manifestKey = %q", got)
	}
}

func TestPresence(t *testing.T) {
	m := validManifest()
	for _, tc := range []struct {
		have map[string]int64
		want string
		is   error
	}{
		{map[string]int64{"data-000000.zst": 200, "data-000001.zst": 100, "manifest.json": 5}, "", nil},
		{map[string]int64{"data-000000.zst": 200}, "object data-000001.zst: missing", ErrMissing},
		{map[string]int64{"data-000000.zst": 199, "data-000001.zst": 100}, "object data-000000.zst: 199 bytes, the manifest says 200: corrupt", ErrCorrupt},
		{map[string]int64{}, "object data-000000.zst: missing; object data-000001.zst: missing", ErrMissing},
	} {
		err := presence(m, tc.have)
		if tc.want == "" {
			if err != nil {
				t.Errorf("presence(%v) = %v, want nil", tc.have, err)
			}
			continue
		}
		if err == nil || oneLine(err) != tc.want || !errors.Is(err, tc.is) {
			t.Errorf("presence(%v) = %v, want %q matching %v", tc.have, err, tc.want, tc.is)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressLogs(t *testing.T) {
	var out syncBuffer
	p := &progress{log: slog.New(slog.NewTextHandler(&out, nil)), what: "restore", total: 1000,
		interval: 10 * time.Millisecond, begin: time.Now().Add(-time.Second)}
	p.add(250)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { p.run(ctx); close(done) }()
	giveUp := time.After(time.Minute) // a hang guard, not a timing check
	for !strings.Contains(out.String(), "restore progress") {
		select {
		case <-done:
			t.Fatal("progress stopped without logging")
		case <-giveUp:
			t.Fatal("no progress logged")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	<-done
	line := out.String()
	for _, want := range []string{"bytes=250", "expected_bytes=1000", "mib_per_second=", "eta="} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %s", line, want)
		}
	}
}
