package backup

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func validManifest() *Manifest {
	start := time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC)
	return &Manifest{Format: 1, ID: "20261130T150000Z-db1", Cluster: "c1", Member: "db1", Job: "20261130T150000Z-1", Flavor: "mariadb",
		ServerVersion: "10.11.6-MariaDB", Archive: ArchiveMbstream, Compression: "zstd", GTIDExecuted: "0-1-42",
		BinlogFile: "binlog.000002", BinlogPosition: 1234, StartTime: start, EndTime: start.Add(time.Minute),
		RawBytes: 1000, CompressedBytes: 300, Objects: []Object{
			{Name: "data-000000.zst", Size: 200, SHA256: strings.Repeat("ab", 32)},
			{Name: "data-000001.zst", Size: 100, SHA256: strings.Repeat("cd", 32)},
		}}
}

func TestManifestRoundTrip(t *testing.T) {
	m := validManifest()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := got.Marshal()
	if string(again) != string(b) {
		t.Errorf("round trip changed the manifest:\n%s\n%s", b, again)
	}
}

func TestManifestRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(m *Manifest)
		want   string
	}{
		{"newer format", func(m *Manifest) { m.Format = 2 }, "format 2"},
		{"bad id", func(m *Manifest) { m.ID = "../../x" }, "id"},
		{"no member", func(m *Manifest) { m.Member = "" }, "member"},
		{"bad job", func(m *Manifest) { m.Job = "../../x" }, "job"},
		{"flavor and archive disagree", func(m *Manifest) { m.Archive = ArchiveTar }, "archive"},
		{"other compression", func(m *Manifest) { m.Compression = "gzip" }, "compression"},
		{"bad gtid", func(m *Manifest) { m.GTIDExecuted = "uuid:1-5" }, "gtid_executed"},
		{"mysql gtid set", func(m *Manifest) {
			m.Flavor, m.Archive, m.GTIDExecuted = "mysql", ArchiveTar, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"
		}, ""},
		{"gtid bounds", func(m *Manifest) { m.GTIDExecutedMax = "0-1-50" }, ""},
		{"gtid bounds reversed", func(m *Manifest) { m.GTIDExecutedMax = "0-1-40" }, "does not contain"},
		{"bad gtid bound", func(m *Manifest) { m.GTIDExecutedMax = "x" }, "gtid_executed_max"},
		{"end before start", func(m *Manifest) { m.EndTime = m.StartTime.Add(-time.Second) }, "start_time"},
		{"no objects", func(m *Manifest) { m.Objects, m.CompressedBytes = nil, 0 }, "no objects"},
		{"object out of order", func(m *Manifest) { m.Objects[0].Name, m.Objects[1].Name = m.Objects[1].Name, m.Objects[0].Name }, "want \"data-000000.zst\""},
		{"object path escape", func(m *Manifest) { m.Objects[1].Name = "../../other/manifest.json" }, "object 1"},
		{"short sha", func(m *Manifest) { m.Objects[0].SHA256 = "abcd" }, "sha256"},
		{"upper-case sha", func(m *Manifest) { m.Objects[0].SHA256 = strings.Repeat("AB", 32) }, "sha256"},
		{"sizes disagree", func(m *Manifest) { m.CompressedBytes = 301 }, "compressed_bytes"},
		{"negative size", func(m *Manifest) { m.Objects[1].Size, m.CompressedBytes = -1, 199 }, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validManifest()
			tc.change(m)
			b, _ := json.Marshal(m)
			_, err := ParseManifest(b)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestManifestRefusesUnknownAndTrailing(t *testing.T) {
	b, _ := json.Marshal(validManifest())
	withField := strings.Replace(string(b), `{"format":1`, `{"format":1,"encrypted_with":"x"`, 1)
	if _, err := ParseManifest([]byte(withField)); err == nil || !strings.Contains(err.Error(), "encrypted_with") {
		t.Errorf("unknown field: got %v", err)
	}
	if _, err := ParseManifest(append(b, []byte(` {}`)...)); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("trailing data: got %v", err)
	}
}

func FuzzParseManifest(f *testing.F) {
	b, _ := validManifest().Marshal()
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":1,"objects":[{"name":"data-000000.zst","size":-1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		// Whatever parses must write back and parse to the same thing.
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed manifest does not marshal: %v", err)
		}
		m2, err := ParseManifest(out)
		if err != nil {
			t.Fatalf("marshalled manifest does not parse: %v\n%s", err, out)
		}
		out2, _ := m2.Marshal()
		if string(out) != string(out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
		for _, o := range m.Objects {
			if !objectPattern.MatchString(o.Name) {
				t.Fatalf("object name %q accepted", o.Name)
			}
		}
	})
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"20261130T150000Z-db1":    true,
		newID(time.Now(), "db-2"): true,
		"20261130T150000Z":        true,
		"20261130T150000Z-":       false,
		"20261130T150000Z-DB1":    false,
		"20261130T150000Z-db1/x":  false,
		"../20261130T150000Z-db1": false,
		"":                        false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestIDTime(t *testing.T) {
	start := time.Date(2026, 11, 30, 15, 4, 5, 0, time.UTC)
	if got := idTime(newID(start.Add(300*time.Millisecond), "db1")); !got.Equal(start) {
		t.Errorf("idTime = %s, want %s", got, start)
	}
	if got := idTime("stray"); !got.IsZero() {
		t.Errorf("idTime(stray) = %s, want zero", got)
	}
}
