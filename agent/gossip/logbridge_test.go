package gossip

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
)

type captured struct {
	level slog.Level
	msg   string
	attrs []string
}

// captureHandler records what reaches slog.
type captureHandler struct {
	mu    *sync.Mutex
	recs  *[]captured
	attrs []string
}

func (h captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h captureHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, captured{r.Level, r.Message, h.attrs})
	return nil
}

func (h captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	for _, a := range as {
		h.attrs = append(slices.Clip(h.attrs), a.String())
	}
	return h
}

func (h captureHandler) WithGroup(string) slog.Handler { return h }

func TestLogBridge(t *testing.T) {
	t.Parallel()
	var recs []captured
	h := captureHandler{mu: &sync.Mutex{}, recs: &recs}
	var suspects []string
	std := newStdLogger(slog.New(h).With("component", "memberlist"), func(n string) { suspects = append(suspects, n) })
	std.Printf("[DEBUG] memberlist: Stream connection from=%s", "127.0.0.1:5")
	std.Printf("[INFO] memberlist: Suspect node-3 has failed, no acks received")
	std.Printf("[INFO] memberlist: Suspect db 1 has failed, no acks received")
	std.Printf("[INFO] memberlist: Marking node-3 as failed, suspect timeout reached (1 peer confirmations)")
	std.Printf("[WARN] memberlist: Refuting a suspect message (from: node-2)")
	std.Printf("[ERR] memberlist: Failed to receive: No installed keys could decrypt the message")
	std.Printf("[ERROR] Failed to shutdown transport")
	std.Printf("[TRACE] memberlist: detail")
	std.Printf("no level at all")
	std.Printf("[odd] memberlist: bracketed text")
	want := []captured{
		{slog.LevelDebug, "Stream connection from=127.0.0.1:5", nil},
		{slog.LevelInfo, "Suspect node-3 has failed, no acks received", nil},
		{slog.LevelInfo, "Suspect db 1 has failed, no acks received", nil},
		{slog.LevelInfo, "Marking node-3 as failed, suspect timeout reached (1 peer confirmations)", nil},
		{slog.LevelWarn, "Refuting a suspect message (from: node-2)", nil},
		{slog.LevelError, "Failed to receive: No installed keys could decrypt the message", nil},
		{slog.LevelError, "Failed to shutdown transport", nil},
		{slog.LevelDebug, "detail", nil},
		{slog.LevelInfo, "no level at all", nil},
		{slog.LevelInfo, "[odd] memberlist: bracketed text", nil},
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d records: %+v", len(recs), recs)
	}
	if !slices.Equal(suspects, []string{"node-3", "db 1"}) {
		t.Errorf("suspects reported: %q", suspects)
	}
	for i, w := range want {
		g := recs[i]
		if g.level != w.level || g.msg != w.msg || !slices.Equal(g.attrs, []string{"component=memberlist"}) {
			t.Errorf("record %d = %+v, want level %v msg %q", i, g, w.level, w.msg)
		}
	}
}
