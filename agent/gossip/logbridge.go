package gossip

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// newStdLogger returns a *log.Logger, as memberlist wants, that feeds l. memberlist writes one
// line per call, "[LEVEL] memberlist: message"; the level becomes the slog level.
//
// onSuspect, if set, is told whenever memberlist reports that its own probe of a member
// failed. memberlist exposes suspicion nowhere else (see table).
func newStdLogger(l *slog.Logger, onSuspect func(name string)) *log.Logger {
	return log.New(slogWriter{l, onSuspect}, "", 0)
}

type slogWriter struct {
	l         *slog.Logger
	onSuspect func(string)
}

// memberlist's line, stable since 2016, on a probe that got no direct, indirect or TCP ack.
const suspectPrefix, suspectSuffix = "Suspect ", " has failed, no acks received"

func (w slogWriter) Write(p []byte) (int, error) {
	level, msg := parseLogLine(strings.TrimRight(string(p), "\r\n"))
	if w.onSuspect != nil {
		if rest, ok := strings.CutPrefix(msg, suspectPrefix); ok {
			if name, ok := strings.CutSuffix(rest, suspectSuffix); ok {
				w.onSuspect(name)
			}
		}
	}
	w.l.Log(context.Background(), level, msg)
	return len(p), nil
}

// parseLogLine splits memberlist's "[LEVEL] memberlist: message". Lines without a known level
// are logged at Info rather than lost.
func parseLogLine(line string) (slog.Level, string) {
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if tag, msg, ok := strings.Cut(rest, "]"); ok {
			known := true
			switch strings.ToUpper(tag) {
			case "TRACE", "DEBUG":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN", "WARNING":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			default:
				known = false
			}
			if known {
				line = strings.TrimPrefix(msg, " ")
			}
		}
	}
	return level, strings.TrimPrefix(line, "memberlist: ")
}
