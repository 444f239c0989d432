// Command shoal is the single binary of shoal: the agent beside each MySQL server and the tools
// to inspect and drive a cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand: its name, a one-line summary, and what it runs.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

func commands() []command {
	return []command{
		{"agent", "run the agent beside a MySQL server (see shoal agent --help)", runAgent},
		{"status", "show the cluster: every member's role, health, lag, GTIDs, epoch", runStatus},
		{"switchover", "move the primary in a planned way: switchover [--to MEMBER]", runSwitchover},
		{"pause", "stop automatic failover and switchover cluster-wide", runPause(true)},
		{"resume", "resume automatic actions", runPause(false)},
		{"rebuild", "re-seed a member's data from a healthy replica the leader picks: rebuild MEMBER", runRebuild},
		{"certs", "write a cluster CA and member certificates for Raft and the admin API: certs MEMBER[=HOST,...]...", runCerts},
		{"mysql", "inspect and drive MySQL/MariaDB servers directly (status, promote, replicate, fence, errant)", runMySQL},
		{"backup", "back the local member up to S3 and manage the backups (now, list, verify, delete)", runBackup},
		{"restore", "restore a backup into an empty data dir: restore --latest|--id ID --datadir DIR; to a point in time from the binlog archive: restore --to-time T|--to-gtid G|--to-latest [--id ID] --datadir DIR --server-command CMD", runRestore},
		{"webhook", "serve the admission webhook that injects the agent into a labelled StatefulSet's pods", runWebhook},
		{"version", "print the version", func(_ context.Context, _ []string, w io.Writer) error {
			_, err := fmt.Fprintln(w, "shoal", version)
			return err
		}},
	}
}

// errUsage marks errors the user fixes by changing the command line; main exits 2 for them.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "shoal:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "shoal:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr, "shoal COMMAND [flags]", commands())
		if len(args) == 0 {
			return fmt.Errorf("%w: no command given", errUsage)
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout)
		}
	}
	return fmt.Errorf("%w: unknown command %q (see shoal help)", errUsage, args[0])
}

func printUsage(w io.Writer, synopsis string, cmds []command) {
	fmt.Fprintf(w, "Usage: %s\n\nCommands:\n", synopsis)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
}
