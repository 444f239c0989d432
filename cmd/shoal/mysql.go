package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-db/shoal/agent/config"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/hostport"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

// mysqlFlags are the connection flags every `shoal mysql` subcommand takes.
type mysqlFlags struct {
	user         string
	passwordFile string
	timeout      time.Duration
}

func (f *mysqlFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.user, "user", "root", "MySQL user to connect as")
	fs.StringVar(&f.passwordFile, "password-file", "", "file holding the MySQL password (trailing newline ignored)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long")
}

func (f *mysqlFlags) open(ctx context.Context, addr string) (*mysqlctl.Server, error) {
	password, err := readSecret(f.passwordFile)
	if err != nil {
		return nil, err
	}
	return mysqlctl.Open(ctx, mysqlctl.Config{Addr: addr, User: f.user, Password: password})
}

// readSecret reads a secret file under the agent's rule; no file means no secret. Secrets never
// travel on the command line, where ps shows them.
func readSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	v, err := config.ReadSecret(path)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return v, nil
}

func mysqlCommands() []command {
	return []command{
		{"status", "show servers' role, replication and GTIDs: status ADDR...", mysqlStatus},
		{"promote", "make a server the writable lossless semi-sync primary, with the replication account: promote ADDR", mysqlPromote},
		{"replicate", "make a server replicate from a source: replicate ADDR --from ADDR", mysqlReplicate},
		{"fence", "refuse writes and kill client connections: fence ADDR", mysqlFence},
		{"errant", "list transactions a server has that the primary lacks: errant ADDR --primary ADDR", mysqlErrant},
	}
}

func runMySQL(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		printUsage(os.Stderr, "shoal mysql COMMAND [flags] ADDR...", mysqlCommands())
		if len(args) == 0 {
			return fmt.Errorf("%w: no mysql command given", errUsage)
		}
		return nil
	}
	for _, c := range mysqlCommands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout)
		}
	}
	return fmt.Errorf("%w: unknown mysql command %q (see shoal mysql --help)", errUsage, args[0])
}

// parseInterspersed parses flags that may stand before, between or after positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// newFlagSet makes a flag set whose errors come back to the caller instead of exiting.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// withOne parses the flags, requires exactly one address, and opens it.
func withOne(ctx context.Context, fs *flag.FlagSet, mf *mysqlFlags, args []string,
	do func(ctx context.Context, srv *mysqlctl.Server) error) error {
	mf.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: %s takes exactly one server address, got %d", errUsage, fs.Name(), len(pos))
	}
	ctx, cancel := context.WithTimeout(ctx, mf.timeout)
	defer cancel()
	srv, err := mf.open(ctx, pos[0])
	if err != nil {
		return err
	}
	defer srv.Close()
	return do(ctx, srv)
}

func mysqlPromote(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		mf    mysqlFlags
		rf    replFlags
		fs    = newFlagSet("promote")
		async = fs.Bool("async", false, "plain asynchronous replication (acknowledged writes may be lost on failover)")
		acks  = fs.Int("acks", 1, "replicas that must receive a transaction before its commit returns")
	)
	rf.register(fs)
	return withOne(ctx, fs, &mf, args, func(ctx context.Context, srv *mysqlctl.Server) error {
		password, err := readSecret(rf.passwordFile)
		if err != nil {
			return err
		}
		opts := mysqlctl.PromoteOptions{SemiSync: mysqlctl.SemiSyncConfig{Async: *async, Acks: *acks},
			ReplUser: rf.user, ReplPassword: password}
		if err := srv.Promote(ctx, opts); err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s is now a writable primary\n", srv.Addr())
		return err
	})
}

// replFlags name the replication account.
type replFlags struct {
	user, passwordFile string
}

func (r *replFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.user, "repl-user", "shoal_repl", "replication account")
	fs.StringVar(&r.passwordFile, "repl-password-file", "", "file holding the replication account's password")
}

func mysqlReplicate(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		mf       mysqlFlags
		rf       replFlags
		fs       = newFlagSet("replicate")
		from     = fs.String("from", "", "source address host:port (required)")
		semiSync = fs.Bool("semi-sync", true, "acknowledge transactions to a semi-sync source")
	)
	rf.register(fs)
	return withOne(ctx, fs, &mf, args, func(ctx context.Context, srv *mysqlctl.Server) error {
		host, port, err := hostport.Split(*from)
		if err != nil {
			return fmt.Errorf("%w: --from: %w", errUsage, err)
		}
		password, err := readSecret(rf.passwordFile)
		if err != nil {
			return err
		}
		// Refuse to attach a server that has transactions its new source lacks.
		source, err := mf.open(ctx, *from)
		if err != nil {
			return err
		}
		defer source.Close()
		sourceStatus, err := source.Status(ctx)
		if err != nil {
			return err
		}
		st, err := srv.Status(ctx)
		if err != nil {
			return err
		}
		if err := state.CheckErrant(st, sourceStatus); err != nil {
			return err
		}
		src := mysqlctl.Source{Host: host, Port: int(port), User: rf.user, Password: password}
		if err := srv.ConfigureReplica(ctx, src, mysqlctl.ReplicaOptions{SemiSync: *semiSync}); err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s replicates from %s\n", srv.Addr(), *from)
		return err
	})
}

func mysqlFence(ctx context.Context, args []string, stdout io.Writer) error {
	var mf mysqlFlags
	return withOne(ctx, newFlagSet("fence"), &mf, args, func(ctx context.Context, srv *mysqlctl.Server) error {
		if err := srv.Fence(ctx, mysqlctl.FenceOptions{}); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "%s is fenced (read-only, clients killed)\n", srv.Addr())
		return err
	})
}

func mysqlErrant(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		mf      mysqlFlags
		fs      = newFlagSet("errant")
		primary = fs.String("primary", "", "the primary's address host:port (required)")
	)
	return withOne(ctx, fs, &mf, args, func(ctx context.Context, srv *mysqlctl.Server) error {
		p, err := mf.open(ctx, *primary)
		if err != nil {
			return err
		}
		defer p.Close()
		pst, err := p.Status(ctx)
		if err != nil {
			return err
		}
		st, err := srv.Status(ctx)
		if err != nil {
			return err
		}
		errant, err := state.Errant(st, pst)
		if err != nil {
			return err
		}
		if errant.IsEmpty() {
			_, err = fmt.Fprintf(stdout, "%s: no errant GTIDs against %s\n", srv.Addr(), *primary)
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s: errant GTIDs against %s: %s\n", srv.Addr(), *primary, errant)
		return err
	})
}

// serverReport is one row of `shoal mysql status`; in JSON it is the machine-readable form.
type serverReport struct {
	Addr     string   `json:"addr"`
	Role     string   `json:"role"`
	Error    string   `json:"error,omitempty"`
	Flavor   string   `json:"flavor,omitempty"`
	Version  string   `json:"version,omitempty"`
	ServerID uint32   `json:"server_id,omitempty"`
	Writable bool     `json:"writable"`
	Source   string   `json:"source,omitempty"`
	IO       string   `json:"io_thread,omitempty"`
	SQL      string   `json:"sql_thread,omitempty"`
	LagSec   *float64 `json:"lag_seconds,omitempty"`
	SemiSync string   `json:"semi_sync"`
	Executed string   `json:"gtid_executed"`
	LastErr  string   `json:"replication_error,omitempty"`
}

func report(addr string, st *state.Status, err error) serverReport {
	r := serverReport{Addr: addr}
	if err != nil {
		r.Role, r.Error = "unreachable", err.Error()
		return r
	}
	r.Flavor, r.Version, r.ServerID = string(st.Flavor), st.Version.String(), st.ServerID
	r.Writable = st.Writable()
	r.Executed = st.Executed.String()
	switch {
	case st.Replica != nil:
		r.Role = "replica"
		rep := st.Replica
		r.Source = rep.SourceAddr()
		r.IO = rep.IOState
		r.SQL = map[bool]string{true: "Yes", false: "No"}[rep.SQLRunning]
		if rep.Lag != nil {
			lag := rep.Lag.Seconds()
			r.LagSec = &lag
		}
		r.LastErr = strings.TrimSpace(rep.LastIOError + " " + rep.LastSQLError)
	case st.Writable():
		r.Role = "primary"
	default:
		r.Role = "read-only"
	}
	r.SemiSync = semiSyncSummary(st.SemiSync)
	return r
}

func semiSyncSummary(s state.SemiSync) string {
	switch {
	case !s.Available:
		return "n/a"
	case s.SourceEnabled:
		state := "waiting for acks"
		if !s.SourceActive {
			state = "inactive"
		}
		return fmt.Sprintf("source %s, %d acks, %d replicas", state, s.AcksRequired, s.Clients)
	case s.ReplicaEnabled:
		return map[bool]string{true: "replica acking", false: "replica enabled"}[s.ReplicaActive]
	default:
		return "off"
	}
}

func mysqlStatus(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		mf     mysqlFlags
		fs     = newFlagSet("status")
		output = fs.String("o", "table", "output format: table or json")
	)
	mf.register(fs)
	addrs, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%w: status needs at least one server address", errUsage)
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("%w: -o %q: want table or json", errUsage, *output)
	}
	ctx, cancel := context.WithTimeout(ctx, mf.timeout)
	defer cancel()
	reports := make([]serverReport, len(addrs))
	for i, addr := range addrs {
		srv, err := mf.open(ctx, addr)
		if err != nil {
			reports[i] = report(addr, nil, err)
			continue
		}
		st, err := srv.Status(ctx)
		srv.Close()
		reports[i] = report(addr, &st, err)
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tROLE\tFLAVOR\tID\tWRITABLE\tSOURCE\tIO/SQL\tLAG\tSEMI-SYNC\tGTID EXECUTED")
	for _, r := range reports {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t\t\t\t%s\n", r.Addr, r.Role, r.Error)
			continue
		}
		ioSQL, lag := "-", "-"
		if r.IO != "" {
			ioSQL = r.IO + "/" + r.SQL
		}
		if r.LagSec != nil {
			lag = fmt.Sprintf("%.0fs", *r.LagSec)
		}
		source := r.Source
		if source == "" {
			source = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%d\t%v\t%s\t%s\t%s\t%s\t%s\n", r.Addr, r.Role, r.Flavor, r.Version,
			r.ServerID, r.Writable, source, ioSQL, lag, r.SemiSync, r.Executed)
	}
	return tw.Flush()
}
