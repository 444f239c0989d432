package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/consensus/peertls"
)

// clusterFlags are what the cluster commands need to reach an agent's admin API.
type clusterFlags struct {
	addr, tokenFile, caFile string
	timeout                 time.Duration
}

func (f *clusterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", envOr("SHOAL_ADMIN_LISTEN", "127.0.0.1:7948"), "any agent's admin API address (env SHOAL_ADMIN_LISTEN, as the agent reads it)")
	fs.StringVar(&f.tokenFile, "token-file", os.Getenv("SHOAL_ADMIN_TOKEN_FILE"), "file holding the admin bearer token (env SHOAL_ADMIN_TOKEN_FILE)")
	fs.StringVar(&f.caFile, "ca-file", os.Getenv("SHOAL_RAFT_TLS_CA_FILE"), "the cluster CA, when the agents serve HTTPS (env SHOAL_RAFT_TLS_CA_FILE, as the agent reads raft.tls.ca_file)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "give up after this long")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (f *clusterFlags) client() (adminapi.Client, error) {
	token, err := readSecret(f.tokenFile)
	if err != nil {
		return adminapi.Client{}, err
	}
	var tlsConf *tls.Config
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return adminapi.Client{}, fmt.Errorf("read the cluster CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return adminapi.Client{}, fmt.Errorf("%w: --ca-file %s holds no PEM certificate", errUsage, f.caFile)
		}
		// Agents are addressed by IP:port from the record, so the certificate is checked the way
		// members check each other: it must chain to the CA, whatever address was dialled.
		tlsConf = peertls.Client(&tls.Config{RootCAs: pool})
	}
	return adminapi.NewClient(token, tlsConf, f.timeout), nil
}

// parseCluster parses a cluster command's flags; extra positional arguments are refused.
func parseCluster(name string, args []string, extra func(fs *flag.FlagSet)) (*clusterFlags, adminapi.Client, error) {
	var cf clusterFlags
	fs := newFlagSet(name)
	cf.register(fs)
	if extra != nil {
		extra(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, adminapi.Client{}, err
	}
	if len(pos) != 0 {
		return nil, adminapi.Client{}, fmt.Errorf("%w: %s takes no arguments, got %q", errUsage, name, pos)
	}
	c, err := cf.client()
	return &cf, c, err
}

// runStatus shows the cluster as the agents see it: one row per member, from each member's own
// admin API (the addresses come from the cluster record), so every row is first-hand.
func runStatus(ctx context.Context, args []string, stdout io.Writer) error {
	var output string
	cf, c, err := parseCluster("status", args, func(fs *flag.FlagSet) {
		fs.StringVar(&output, "o", "table", "output format: table, json, or primary (just the writable primary's MySQL address, for scripts)")
	})
	if err != nil {
		return err
	}
	if output != "table" && output != "json" && output != "primary" {
		return fmt.Errorf("%w: -o %q: want table, json or primary", errUsage, output)
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	first, err := c.Status(ctx, cf.addr)
	if err != nil {
		return err
	}
	rec := first.Record
	views := map[string]adminapi.View{first.Node: first}
	errs := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range rec.MemberIDs() {
		if id == first.Node {
			continue
		}
		wg.Go(func() {
			v, err := c.Status(ctx, rec.Members[id].AdminAddr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[id] = err
				return
			}
			views[id] = v
		})
	}
	wg.Wait()
	if output == "primary" {
		// Only a primary that says itself it is writable counts, so scripts never write elsewhere.
		if v, ok := views[rec.Primary]; ok && v.Local.Writable && v.Record.Primary == rec.Primary {
			_, err := fmt.Fprintln(stdout, rec.Members[rec.Primary].MySQLAddr)
			return err
		}
		return fmt.Errorf("no writable primary right now (record names %q in epoch %d)", rec.Primary, rec.Epoch)
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Record  any                      `json:"record"`
			Members map[string]adminapi.View `json:"members"`
			Errors  map[string]string        `json:"errors,omitempty"`
		}{rec, views, errStrings(errs)})
	}
	fmt.Fprintf(stdout, "cluster %s  epoch %d  primary %s  raft leader %s%s\n\n", rec.Cluster, rec.Epoch,
		orDash(rec.Primary), orDash(first.Leader), map[bool]string{true: "  PAUSED", false: ""}[rec.Paused])
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROLE\tMYSQL\tHEALTH\tLAG\tEPOCH\tGTID EXECUTED\tREASON")
	for _, id := range rec.MemberIDs() {
		v, ok := views[id]
		if !ok {
			// The innermost cause (e.g. "connection refused") is what an operator needs in a table.
			cause := errs[id].Error()
			if i := strings.LastIndex(cause, ": "); i >= 0 {
				cause = cause[i+2:]
			}
			fmt.Fprintf(tw, "%s\t?\t%s\tagent unreachable (%s)\t\t\t\t\n", id, rec.Members[id].MySQLAddr, cause)
			continue
		}
		lag := "-"
		if v.Local.LagMs >= 0 && v.Local.Role == "replica" {
			lag = (time.Duration(v.Local.LagMs) * time.Millisecond).String()
		}
		role := v.Local.Role
		if id == rec.Primary && v.Local.Writable {
			role = "primary"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", id, role, rec.Members[id].MySQLAddr, memberHealth(id, v), lag,
			v.Record.Epoch, orDash(v.Local.Executed), v.Reason)
	}
	return tw.Flush()
}

// memberHealth is "ok" only for a member that serves in the role its record gives it; otherwise
// why not, from its own decision's code when nothing plainer says it (applier_error, ...).
func memberHealth(id string, v adminapi.View) string {
	switch {
	case !v.Local.Up:
		return "mysql down"
	case v.Errant != "":
		return "errant: " + v.Errant
	case !v.Report.Serving(id, v.Record.Primary):
		return "not serving (" + orDash(v.NodeCode) + ")"
	}
	return "ok"
}

func errStrings(m map[string]error) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v.Error()
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runSwitchover(ctx context.Context, args []string, stdout io.Writer) error {
	var to string
	cf, c, err := parseCluster("switchover", args, func(fs *flag.FlagSet) {
		fs.StringVar(&to, "to", "", "member to switch to (default: the most advanced replica)")
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	rec, err := c.Switchover(ctx, cf.addr, to)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "switchover requested in epoch %d (from %s to %s)\n", rec.Epoch, rec.Primary, orDash(to))
	return err
}

func runPause(paused bool) func(ctx context.Context, args []string, stdout io.Writer) error {
	return func(ctx context.Context, args []string, stdout io.Writer) error {
		cf, c, err := parseCluster(map[bool]string{true: "pause", false: "resume"}[paused], args, nil)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, cf.timeout)
		defer cancel()
		if _, err := c.SetPaused(ctx, cf.addr, paused); err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, map[bool]string{true: "automatic actions paused", false: "automatic actions resumed"}[paused])
		return err
	}
}

// runRebuild is `shoal rebuild MEMBER`: the leader picks a donor (a healthy replica with the
// least lag, the primary only when it is the only other member) and has MEMBER's agent replace
// its data with the donor's. It returns once the copy started; `shoal status` shows it.
func runRebuild(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clusterFlags
	fs := newFlagSet("rebuild")
	cf.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: rebuild takes one member, got %q", errUsage, pos)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	rb, err := c.RequestRebuild(ctx, cf.addr, pos[0])
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "re-seeding %s from %s; shoal status shows it replicating once done\n", rb.Member, rb.Donor)
	return err
}
