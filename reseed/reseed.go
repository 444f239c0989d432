// Package reseed replaces a member's data with a physical copy of a healthy member's (the donor)
// so it can replicate again: a new member whose data dir is empty, a replaced disk, or a server
// holding errant transactions. MySQL copies with the clone plugin (CLONE INSTANCE, the recipient
// pulls); MariaDB with mariadb-backup, run beside the donor and streamed (mbstream) to the
// joiner, which extracts and prepares it beside its data dir and swaps it in while its mysqld is
// stopped.
//
// Stopping and starting mysqld is not the agent's to do on its own: a service manager runs it
// (systemd, a container runtime, the test harness). Service is that manager as the re-seed sees
// it.
package reseed

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/shoal-db/shoal/mysqlctl"
)

// Service stops and starts the local mysqld for a re-seed.
//
// MySQL's clone restarts the recipient itself when a supervisor runs it (systemd, mysqld_safe);
// otherwise the server shuts down once the cloned data is in place and Start brings it back.
// MariaDB's restore needs mysqld down while the prepared copy is swapped into the data dir, so
// Stop must keep it down until Start: a supervisor that restarts mysqld on its own (a
// container's restart policy) must be told to stop it, not only see it exit.
type Service interface {
	// Stop returns once mysqld has exited and stays down.
	Stop(ctx context.Context) error
	// Start launches mysqld; the caller waits until it accepts logins.
	Start(ctx context.Context) error
}

// Commands is a Service that runs one command for each step, e.g. ["systemctl", "stop",
// "mariadb"] and ["systemctl", "start", "mariadb"] (mysql.stop_command, mysql.start_command).
type Commands struct {
	StopArgv, StartArgv []string
}

// Stop runs the stop command.
func (c Commands) Stop(ctx context.Context) error { return runCommand(ctx, "stop", c.StopArgv) }

// Start runs the start command.
func (c Commands) Start(ctx context.Context) error { return runCommand(ctx, "start", c.StartArgv) }

func runCommand(ctx context.Context, step string, argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("%s mysqld: no %s command configured", step, step)
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s mysqld: %s: %w: %s", step, strings.Join(argv, " "), err, lastLines(string(out), 5))
	}
	return nil
}

// waitReady polls until the server at cfg accepts a login and returns it open; the caller closes it.
func waitReady(ctx context.Context, cfg mysqlctl.Config) (*mysqlctl.Server, error) {
	var last error
	for {
		srv, err := mysqlctl.Open(ctx, cfg)
		if err == nil {
			return srv, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for mysqld at %s to accept logins: %w (last error: %w)", cfg.Addr, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitDown polls until the server at cfg no longer accepts logins: a stop command may return
// before mysqld has let go of its files.
func waitDown(ctx context.Context, cfg mysqlctl.Config) error {
	for {
		srv, err := mysqlctl.Open(ctx, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("wait for mysqld at %s to stop: %w", cfg.Addr, ctx.Err())
			}
			return nil
		}
		srv.Close()
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for mysqld at %s to stop: still answering: %w", cfg.Addr, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
