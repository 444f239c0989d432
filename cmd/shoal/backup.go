package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent/config"
	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/backup/s3store"
)

func backupCommands() []command {
	return []command{
		{"now", "take a backup of the local member now: now [--config FILE] [--KEY VALUE ...]", backupNow},
		{"list", "list the cluster's backups, valid and incomplete: list [-o table|json] [--config FILE] ...", backupList},
		{"verify", "restore a backup into a scratch dir, start a throwaway server on it and check it reaches the manifest's GTID position, recording the outcome beside the backup (--checksums-only: only check every object's sha256): verify ID [--checksums-only] [--config FILE] ...", backupVerify},
		{"delete", "delete a backup, manifest first: delete ID [--config FILE] ...", backupDelete},
		{"binlogs", "list the archived binlogs the newest valid backup replays, failing on a gap: binlogs [--config FILE] ...", backupBinlogs},
	}
}

// runBackup is `shoal backup`. Its subcommands read the agent's configuration (the file, SHOAL_*
// variables and --KEY VALUE flags, as `shoal agent`), so they reach the same server and bucket.
func runBackup(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		printUsage(os.Stderr, "shoal backup COMMAND [ARG] [--config FILE] [--KEY VALUE ...]", backupCommands())
		if len(args) == 0 {
			return fmt.Errorf("%w: no backup command given", errUsage)
		}
		return nil
	}
	for _, c := range backupCommands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout)
		}
	}
	return fmt.Errorf("%w: unknown backup command %q (see shoal backup --help)", errUsage, args[0])
}

// backupArgs is a backup command line, parsed.
type backupArgs struct {
	positional []string
	own        map[string]string
	cfg        config.Config
	secrets    config.Secrets
}

// parseBackupArgs splits a backup command line: npos leading positional arguments, the
// command's own flags (named in own; true when the flag takes a value), and the rest, which
// configure it as they configure the agent. The configuration is validated and its secrets read.
func parseBackupArgs(args []string, npos int, own map[string]bool) (*backupArgs, error) {
	a := &backupArgs{own: map[string]string{}}
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		a.positional, args = append(a.positional, args[0]), args[1:]
	}
	if len(a.positional) != npos {
		return nil, fmt.Errorf("%w: want %d argument(s) before the flags, got %d", errUsage, npos, len(a.positional))
	}
	var rest []string
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		takesValue, ok := own[name]
		if !ok {
			rest = append(rest, args[i])
			continue
		}
		switch {
		case !takesValue:
			value = "true"
		case !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-"):
			i++
			value = args[i]
		case !hasValue:
			return nil, fmt.Errorf("%w: flag --%s needs a value", errUsage, name)
		}
		a.own[name] = value
	}
	cfg, err := config.Load("", os.Environ(), rest)
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprint(os.Stderr, config.Usage())
		return nil, flag.ErrHelp
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if err := cfg.ValidateBackup(); err != nil {
		return nil, fmt.Errorf("%w: invalid config:\n%w", errUsage, err)
	}
	if a.secrets, err = cfg.Secrets(); err != nil {
		return nil, err
	}
	a.cfg = cfg
	return a, nil
}

// backupStore is the store the configuration names.
func backupStore(cfg config.Config, secrets config.Secrets) (*s3store.Store, error) {
	s3 := cfg.Backup.S3
	sse := s3.SSE
	if sse == "none" {
		sse = s3store.SSENone
	}
	return s3store.New(s3store.Config{Endpoint: s3.Endpoint, Bucket: s3.Bucket, Prefix: s3.Prefix, Region: s3.Region,
		Insecure: !s3.TLS, CAFile: s3.CAFile, Lookup: s3.Lookup, SSE: sse, KMSKeyID: s3.SSEKMSKeyID,
		Credentials: s3.Credentials, AccessKeyID: secrets.S3AccessKeyID, SecretAccessKey: secrets.S3SecretAccessKey,
		SessionToken: secrets.S3SessionToken, PartSize: int64(s3.PartSizeMiB) << 20,
		ParallelParts: s3.ParallelParts})
}

// backupTaker takes backups of the local member as the configuration says.
func backupTaker(cfg config.Config, secrets config.Secrets, store backup.Store, metrics *backup.Metrics, log *slog.Logger) (*backup.Taker, error) {
	ok, level := zstd.EncoderLevelFromString(cfg.Backup.Compression)
	if !ok {
		return nil, fmt.Errorf("backup.compression: unknown level %q", cfg.Backup.Compression)
	}
	return &backup.Taker{Store: store, Cluster: cfg.Cluster, Member: cfg.Node.ID, Local: localMySQL(cfg, secrets),
		TmpDir: cfg.Backup.TmpDir, BytesPerSecond: int64(cfg.Backup.MaxMiBPerSecond) << 20, Nice: cfg.Backup.Nice,
		CloneDir: cfg.Backup.CloneDir, CloneDirLocal: cfg.Backup.CloneDirLocal,
		ObjectSize: int64(cfg.Backup.ObjectSizeMiB) << 20, Level: level, Metrics: metrics, Log: log}, nil
}

// parseCatalogArgs is parseBackupArgs for the commands that work on the cluster's catalog.
func parseCatalogArgs(args []string, npos int, own map[string]bool) (*backupArgs, backup.Catalog, error) {
	a, err := parseBackupArgs(args, npos, own)
	if err != nil {
		return nil, backup.Catalog{}, err
	}
	store, err := backupStore(a.cfg, a.secrets)
	if err != nil {
		return nil, backup.Catalog{}, err
	}
	return a, backup.Catalog{Store: store, Cluster: a.cfg.Cluster}, nil
}

func (a *backupArgs) logger() *slog.Logger {
	return newLogger(a.cfg.Log.Level, "text").With("node", a.cfg.Node.ID)
}

func backupNow(ctx context.Context, args []string, stdout io.Writer) error {
	a, err := parseBackupArgs(args, 0, nil)
	if err != nil {
		return err
	}
	store, err := backupStore(a.cfg, a.secrets)
	if err != nil {
		return err
	}
	taker, err := backupTaker(a.cfg, a.secrets, store, backup.NewMetrics(prometheus.NewRegistry()), a.logger())
	if err != nil {
		return err
	}
	m, err := taker.Take(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "backup %s: %s raw, %s stored in %d object(s), GTID %s, took %s\n", m.ID,
		humanBytes(m.RawBytes), humanBytes(m.CompressedBytes), len(m.Objects), orDash(m.GTIDExecuted),
		m.EndTime.Sub(m.StartTime).Round(time.Second))
	return err
}

func backupList(ctx context.Context, args []string, stdout io.Writer) error {
	a, cat, err := parseCatalogArgs(args, 0, map[string]bool{"o": true})
	if err != nil {
		return err
	}
	format := a.own["o"]
	if format != "" && format != "table" && format != "json" {
		return fmt.Errorf("%w: -o: want table or json, got %q", errUsage, format)
	}
	entries, err := cat.List(ctx)
	if err != nil {
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	return writeBackupTable(stdout, entries)
}

// writeBackupTable lists backups oldest first, one line each.
func writeBackupTable(w io.Writer, entries []backup.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tMEMBER\tSTARTED\tSIZE\tGTID\tVERIFIED\tSTATUS")
	for _, e := range entries {
		member, started, gtids := "-", "-", "-"
		size := humanBytes(e.StoredBytes)
		status := "valid"
		if m := e.Manifest; m != nil {
			member, started, gtids = m.Member, m.StartTime.UTC().Format(time.RFC3339), orDash(m.GTIDExecuted)
			size = humanBytes(m.CompressedBytes)
		}
		switch {
		case e.Incomplete:
			status = "incomplete"
		case !e.Valid:
			status = "invalid: " + e.Problem
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, member, started, size, gtids, verified(e.Verification), status)
	}
	return tw.Flush()
}

// verified is the outcome of a backup's last restore test, in a table.
func verified(v *backup.Verification) string {
	switch {
	case v == nil:
		return "-"
	case v.OK:
		return "ok " + v.Time.UTC().Format(time.RFC3339)
	case v.Time.IsZero():
		return "unreadable"
	}
	return "FAILED " + v.Time.UTC().Format(time.RFC3339)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func backupVerify(ctx context.Context, args []string, stdout io.Writer) error {
	a, cat, err := parseCatalogArgs(args, 1, map[string]bool{"checksums-only": false})
	if err != nil {
		return err
	}
	if a.own["checksums-only"] == "true" {
		m, err := cat.Verify(ctx, a.positional[0])
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "backup %s: %d object(s), %s, every sha256 matches the manifest\n", m.ID, len(m.Objects), humanBytes(m.CompressedBytes))
		return err
	}
	res, err := backupVerifier(a.cfg, cat, backup.NewMetrics(prometheus.NewRegistry()), a.logger()).Verify(ctx, a.positional[0])
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "backup %s verified in %s: %s\n", a.positional[0], time.Duration(res.Duration*float64(time.Second)).Round(time.Second), res.Reason)
	return err
}

// backupVerifier tests backups by restoring them as the configuration says.
func backupVerifier(cfg config.Config, cat backup.Catalog, metrics *backup.Metrics, log *slog.Logger) *backup.Verifier {
	return &backup.Verifier{Restorer: &backup.Restorer{Catalog: cat, Metrics: metrics, Log: log},
		Server: backup.ScratchServer{Command: cfg.Backup.VerifyCommand},
		Dir:    cfg.Backup.VerifyDir, ServerDir: cfg.Backup.VerifyDirServer, Member: cfg.Node.ID, Log: log}
}

func backupDelete(ctx context.Context, args []string, stdout io.Writer) error {
	a, cat, err := parseCatalogArgs(args, 1, nil)
	if err != nil {
		return err
	}
	if err := cat.Delete(ctx, a.positional[0]); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "backup %s deleted\n", a.positional[0])
	return err
}

// runRestore is `shoal restore`: a backup into an empty data dir, for a server to start on.
func runRestore(ctx context.Context, args []string, stdout io.Writer) error {
	own := map[string]bool{"latest": false, "id": true, "datadir": true}
	maps.Copy(own, pointInTimeFlags)
	a, cat, err := parseCatalogArgs(args, 0, own)
	if err != nil {
		return err
	}
	if target, ok, err := restoreTarget(a.own); err != nil || ok {
		if err != nil {
			return err
		}
		return runPointInTime(ctx, a, cat, target, stdout)
	}
	id, latest, dataDir := a.own["id"], a.own["latest"] == "true", a.own["datadir"]
	if (id != "") == latest || dataDir == "" {
		return fmt.Errorf("%w: restore takes --latest or --id ID, and --datadir DIR", errUsage)
	}
	if latest {
		m, err := cat.Latest(ctx)
		if err != nil {
			return err
		}
		id = m.ID
	}
	r := &backup.Restorer{Catalog: cat, Metrics: backup.NewMetrics(prometheus.NewRegistry()), Log: a.logger()}
	m, err := r.Restore(ctx, id, dataDir)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "restored backup %s (%s of %s %s, GTID %s) into %s\n", m.ID, m.Member, m.Flavor,
		m.ServerVersion, orDash(m.GTIDExecuted), dataDir)
	return err
}
