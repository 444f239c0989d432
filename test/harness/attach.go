package harness

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// Dir is the server's directory on the host (data dir, logs, socket).
func (s *Server) Dir() string { return s.dir }

// Socket is the server's Unix socket, as a process on the host reaches it.
func (s *Server) Socket() string { return filepath.Join(s.dir, "mysqld.sock") }

// Attach takes over a server another process started (the rig CLI runs servers across its own
// invocations): same config and directory, and the server process if pid still is it.
func Attach(cfg ServerConfig, dir string, pid int) (*Server, error) {
	fl, err := lookupFlavor(cfg.Flavor)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("attach server %s: %w", cfg.Name, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{Config: cfg, fl: fl, dir: dir, log: log}
	if pid > 0 && isServerOf(pid, dir) {
		s.proc = adoptProcess(pid, dir)
	}
	return s, nil
}

// Loading reports whether Rebuild is loading a copy into the server: it then runs writable with
// networking off, reachable over its socket only, and is no member of any cluster yet.
func (s *Server) Loading() bool { return s.loading.Load() }
