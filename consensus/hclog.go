package consensus

import (
	"context"
	"io"
	"log"
	"log/slog"
	"slices"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter lets Raft, which speaks hclog, write to the agent's slog.Logger. The level is the
// slog handler's business, so SetLevel is ignored and the Is* checks ask the handler.
type hclogAdapter struct {
	base *slog.Logger // the injected logger, before name and args
	l    *slog.Logger // base with the name and args
	name string
	args []any
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// newHclog keeps base, name and args apart because hclog can rename a logger, and a slog
// attribute once added cannot be dropped.
func newHclog(base *slog.Logger, name string, args []any) *hclogAdapter {
	l := base
	if name != "" {
		l = l.With("logger", name)
	}
	if len(args) > 0 {
		l = l.With(args...)
	}
	return &hclogAdapter{base: base, l: l, name: name, args: args}
}

// slogLevel maps hclog levels; Trace sits below Debug, as slog suggests for finer levels.
func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	a.l.Log(context.Background(), slogLevel(level), msg, args...)
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(level hclog.Level) bool {
	return a.l.Enabled(context.Background(), slogLevel(level))
}

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.args }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	return newHclog(a.base, a.name, append(slices.Clip(a.args), args...))
}

func (a *hclogAdapter) Name() string { return a.name }

// Named appends to the name, as hclog does ("raft.snapshot").
func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return newHclog(a.base, name, a.args)
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger { return newHclog(a.base, name, a.args) }

func (a *hclogAdapter) SetLevel(hclog.Level) {}

// GetLevel reports the lowest level the handler accepts.
func (a *hclogAdapter) GetLevel() hclog.Level {
	for _, level := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if a.enabled(level) {
			return level
		}
	}
	return hclog.Error
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return slog.NewLogLogger(a.l.Handler(), slogLevel(level))
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(opts).Writer()
}
