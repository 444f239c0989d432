package harness

import (
	"context"
	"errors"
)

// Service is the harness as the service manager of one server, as a re-seed sees it
// (reseed.Service): Stop shuts it down, Start starts it again on its data dir once the last
// process has exited, also when it shut itself down (a MySQL clone without a supervisor).
type Service struct{ S *Server }

// Stop shuts the server down gracefully and waits until it has exited.
func (v Service) Stop(ctx context.Context) error { return v.S.Stop(ctx) }

// Start waits for the previous process to exit (SIGTERM speeds up one shutting down already)
// and starts the server again.
func (v Service) Start(ctx context.Context) error {
	if err := v.S.Stop(ctx); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	return v.S.Restart(ctx)
}
