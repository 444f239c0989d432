package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// IsDNSLabel reports whether s can name a cluster or a member: lower-case letters, digits and
// inner '-', at most 63 of them.
func IsDNSLabel(s string) bool { return dnsLabel.MatchString(s) }

// Validate reports every problem at once, each naming its key. It reads no files: Secrets and
// RaftTLS do, and say which file failed.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !dnsLabel.MatchString(c.Cluster) {
		bad("cluster: want a DNS label (lower-case letters, digits, '-'), got %q", c.Cluster)
	}
	if !dnsLabel.MatchString(c.Node.ID) {
		bad("node.id: want a DNS label (lower-case letters, digits, '-'), got %q", c.Node.ID)
	}
	if c.Node.DataDir == "" {
		bad("node.data_dir: required")
	}
	hostPort := func(name, addr string, required, wildcardOK bool) {
		if addr == "" {
			if required {
				bad("%s: required", name)
			}
			return
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || port == "" {
			bad("%s: want host:port, got %q", name, addr)
			return
		}
		if !wildcardOK && (host == "" || host == "0.0.0.0" || host == "::") {
			bad("%s: %q is not an address others can reach", name, addr)
		}
	}
	if !strings.HasPrefix(c.MySQL.Addr, "/") { // a Unix socket path is fine too
		hostPort("mysql.addr", c.MySQL.Addr, true, false)
	}
	if strings.HasPrefix(c.MySQL.Addr, "/") && c.MySQL.AdvertiseAddr == "" {
		bad("mysql.advertise_addr: required when mysql.addr is a Unix socket")
	}
	hostPort("mysql.advertise_addr", c.MySQL.AdvertiseAddr, false, false)
	hostPort("gossip.bind", c.Gossip.Bind, true, true)
	hostPort("gossip.advertise", c.Gossip.Advertise, false, false)
	hostPort("raft.bind", c.Raft.Bind, true, true)
	hostPort("raft.advertise", c.Raft.Advertise, false, false)
	hostPort("admin.listen", c.Admin.Listen, true, true)
	hostPort("dns.listen", c.DNS.Listen, false, true)
	if c.Raft.Advertise == "" && isWildcard(c.Raft.Bind) {
		bad("raft.advertise: required when raft.bind (%s) is a wildcard address", c.Raft.Bind)
	}
	if c.MySQL.User == "" {
		bad("mysql.user: required")
	}
	if c.MySQL.ReplUser == "" {
		bad("mysql.repl_user: required")
	}
	if c.MySQL.ReplPasswordFile == "" {
		bad("mysql.repl_password_file: required")
	}
	if c.MySQL.SemiSync != "lossless" && c.MySQL.SemiSync != "async" {
		bad("mysql.semi_sync: want lossless or async, got %q", c.MySQL.SemiSync)
	}
	if c.MySQL.SemiSyncAcks < 1 || c.MySQL.SemiSyncAcks > 8 {
		bad("mysql.semi_sync_acks: want 1..8, got %d", c.MySQL.SemiSyncAcks)
	}
	if c.MySQL.PIDFile != "" && !filepath.IsAbs(c.MySQL.PIDFile) {
		bad("mysql.pid_file: want an absolute path, got %q", c.MySQL.PIDFile)
	}
	if c.MySQL.DataDir != "" && !filepath.IsAbs(c.MySQL.DataDir) {
		bad("mysql.data_dir: want an absolute path, got %q", c.MySQL.DataDir)
	}
	if (len(c.MySQL.StartCommand) == 0) != (len(c.MySQL.StopCommand) == 0) {
		bad("mysql.start_command and mysql.stop_command: set both or neither")
	}
	if c.Reseed.MaxMiBPerSecond < 0 {
		bad("reseed.max_mib_per_second: want 0 (unlimited) or more, got %d", c.Reseed.MaxMiBPerSecond)
	}
	if c.HA.RebuildMaxDonorLag <= 0 {
		bad("ha.rebuild_max_donor_lag: must be positive, got %s", c.HA.RebuildMaxDonorLag)
	}
	if c.MySQL.XPort < 0 || c.MySQL.XPort > 65535 {
		bad("mysql.x_port: want 0..65535, got %d", c.MySQL.XPort)
	}
	if c.MySQL.ConnectTimeout <= 0 || c.MySQL.ReadTimeout <= c.MySQL.ConnectTimeout {
		bad("mysql.read_timeout (%s) must be above mysql.connect_timeout (%s), which must be positive", c.MySQL.ReadTimeout, c.MySQL.ConnectTimeout)
	}
	if len(c.Gossip.KeyFiles) == 0 && !c.Gossip.AllowPlaintext {
		bad("gossip.key_files: required unless gossip.allow_plaintext is true")
	}
	if c.Raft.BootstrapExpect < 1 || c.Raft.BootstrapExpect > 9 {
		bad("raft.bootstrap_expect: want 1..9, got %d", c.Raft.BootstrapExpect)
	}
	// A member gone briefly (a restart, a partition) must come back as it was: only a long
	// absence means it is gone for good.
	if c.Membership.RemoveAfter != 0 && c.Membership.RemoveAfter < 30*time.Second {
		bad("membership.remove_after: 0 (never) or at least 30s, got %s", c.Membership.RemoveAfter)
	}
	tlsFiles := 0
	for _, f := range []string{c.Raft.CertFile, c.Raft.KeyFile, c.Raft.CAFile} {
		if f != "" {
			tlsFiles++
		}
	}
	switch {
	case tlsFiles != 0 && tlsFiles != 3:
		bad("raft.tls: set cert_file, key_file and ca_file together (%d of 3 set)", tlsFiles)
	case tlsFiles == 0 && !c.Raft.AllowPlaintext:
		bad("raft.tls: cert_file, key_file and ca_file are required unless raft.allow_plaintext is true")
	}
	if c.Admin.TokenFile == "" && !(c.Admin.AllowNoToken && isLoopback(c.Admin.Listen)) {
		bad("admin.token_file: required unless admin.listen is a loopback address and admin.allow_no_token is true")
	}
	if c.DNS.Listen != "" && !strings.HasSuffix(c.DNS.Zone, ".") {
		bad("dns.zone: want a fully qualified name ending in '.', got %q", c.DNS.Zone)
	}
	if c.DNS.TTL < 0 || c.DNS.MaxLag <= 0 {
		bad("dns.ttl must not be negative and dns.max_lag must be positive (got %s, %s)", c.DNS.TTL, c.DNS.MaxLag)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level: want debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format: want json or text, got %q", c.Log.Format)
	}
	if _, _, err := c.BackupPolicy(); err != nil {
		errs = append(errs, err)
	}
	if c.Backup.KeepCount < 0 || c.Backup.KeepAge < 0 {
		bad("backup.keep_count and backup.keep_age must not be negative (got %d, %s)", c.Backup.KeepCount, c.Backup.KeepAge)
	}
	if c.Backup.JobTimeout < time.Minute {
		bad("backup.job_timeout: at least 1m, got %s", c.Backup.JobTimeout)
	}
	if c.Backup.Schedule != "" && c.Backup.S3.Bucket == "" {
		bad("backup.schedule: scheduled backups need a store, backup.s3.bucket is empty")
	}
	if err := c.Policy().Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Backup.problems()...)
	errs = append(errs, c.Backup.binlogProblems()...)
	errs = append(errs, c.validateKubernetes()...)
	return errors.Join(errs...)
}

// validateKubernetes checks the kubernetes section; its names are checked only when enabled.
func (c Config) validateKubernetes() []error {
	k := c.Kubernetes
	if !k.Enabled {
		return nil
	}
	var errs []error
	if k.PodName != "" && k.PodName != c.Node.ID {
		errs = append(errs, fmt.Errorf("kubernetes.pod_name: %q is not node.id %q: the leader finds each member's pod by its id, so set node.id to the pod name", k.PodName, c.Node.ID))
	}
	if k.Namespace != "" && !dnsLabel.MatchString(k.Namespace) {
		errs = append(errs, fmt.Errorf("kubernetes.namespace: want a DNS label, got %q", k.Namespace))
	}
	primary, replicas := c.KubeServices()
	for _, s := range []struct{ key, name string }{{"kubernetes.primary_service", primary}, {"kubernetes.replicas_service", replicas}} {
		if !dnsLabel.MatchString(s.name) {
			errs = append(errs, fmt.Errorf("%s: want a Service name (a DNS label), got %q", s.key, s.name))
		}
	}
	if primary == replicas {
		errs = append(errs, fmt.Errorf("kubernetes.primary_service and kubernetes.replicas_service are both %q", primary))
	}
	h := k.Heal
	if !h.Enabled && (k.DeleteVolume || k.ForceDeleteTerminating) {
		errs = append(errs, errors.New("kubernetes.delete_volume and kubernetes.force_delete_terminating need kubernetes.heal.enabled"))
	}
	// A member must look failed for longer than a failover takes, or a healthy primary's pod
	// restarting would be deleted while its replacement is still being chosen.
	if h.Enabled && h.Grace < c.HA.DetectionTimeout+c.HA.Lease {
		errs = append(errs, fmt.Errorf("kubernetes.heal.grace (%s) must be at least ha.detection_timeout + ha.lease (%s)", h.Grace, c.HA.DetectionTimeout+c.HA.Lease))
	}
	if h.Enabled && h.MinInterval <= 0 {
		errs = append(errs, fmt.Errorf("kubernetes.heal.min_interval must be positive, got %s", h.MinInterval))
	}
	if h.Enabled && h.StartGrace <= 0 {
		errs = append(errs, fmt.Errorf("kubernetes.heal.start_grace must be positive, got %s", h.StartGrace))
	}
	if k.Roll.Enabled && k.Roll.MinInterval <= 0 {
		errs = append(errs, fmt.Errorf("kubernetes.roll.min_interval must be positive, got %s", k.Roll.MinInterval))
	}
	return errs
}

func isWildcard(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	return host == "" || host == "0.0.0.0" || host == "::"
}

func isLoopback(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	a, err := netip.ParseAddr(host)
	return host == "localhost" || (err == nil && a.IsLoopback())
}

// Secrets are the values read from the *_file keys.
type Secrets struct {
	MySQLPassword, ReplPassword, AdminToken string
	GossipKeys                              [][]byte
	// The S3 credentials of backup.s3.credentials=static.
	S3AccessKeyID, S3SecretAccessKey, S3SessionToken string
}

// Secrets reads every secret file; all problems are reported at once.
func (c Config) Secrets() (Secrets, error) {
	var s Secrets
	var errs []error
	read := func(name, path string, optional bool) string {
		if path == "" {
			return ""
		}
		v, err := ReadSecret(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		} else if v == "" && !optional {
			errs = append(errs, fmt.Errorf("%s: %s is empty", name, path))
		}
		return v
	}
	s.MySQLPassword = read("mysql.password_file", c.MySQL.PasswordFile, true)
	s.ReplPassword = read("mysql.repl_password_file", c.MySQL.ReplPasswordFile, false)
	s.AdminToken = read("admin.token_file", c.Admin.TokenFile, false)
	s.S3AccessKeyID = read("backup.s3.access_key_id_file", c.Backup.S3.AccessKeyIDFile, false)
	s.S3SecretAccessKey = read("backup.s3.secret_access_key_file", c.Backup.S3.SecretAccessKeyFile, false)
	s.S3SessionToken = read("backup.s3.session_token_file", c.Backup.S3.SessionTokenFile, true)
	for _, f := range c.Gossip.KeyFiles {
		text := read("gossip.key_files", f, false)
		if text == "" {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(text)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("gossip.key_files: %s is not base64: %w", f, err))
		case len(key) != 16 && len(key) != 24 && len(key) != 32:
			errs = append(errs, fmt.Errorf("gossip.key_files: %s holds %d bytes, want 16, 24 or 32", f, len(key)))
		default:
			s.GossipKeys = append(s.GossipKeys, key)
		}
	}
	return s, errors.Join(errs...)
}

// ReadSecret reads a secret file, refusing one that anyone on the machine can read. The agent
// and the command-line tools share it, so a secret is never read under a laxer rule.
func ReadSecret(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return "", fmt.Errorf("%s is world-readable (mode %v): chmod o-r it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// RaftTLS returns the mutual-TLS configuration for Raft, or nil when none is configured.
func (c Config) RaftTLS() (*tls.Config, error) {
	if c.Raft.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.Raft.CertFile, c.Raft.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("raft.tls: load %s / %s: %w", c.Raft.CertFile, c.Raft.KeyFile, err)
	}
	caPEM, err := os.ReadFile(c.Raft.CAFile)
	if err != nil {
		return nil, fmt.Errorf("raft.tls.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("raft.tls.ca_file: %s holds no PEM certificate", c.Raft.CAFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}, nil
}

// ValidateBackup checks what the backup and restore commands need, which is less than the
// agent's whole configuration: the cluster, the member and the backup section, backups on.
func (c Config) ValidateBackup() error {
	var errs []error
	if !dnsLabel.MatchString(c.Cluster) {
		errs = append(errs, fmt.Errorf("cluster: want a DNS label (lower-case letters, digits, '-'), got %q", c.Cluster))
	}
	if !dnsLabel.MatchString(c.Node.ID) {
		errs = append(errs, fmt.Errorf("node.id: want a DNS label (lower-case letters, digits, '-'), got %q", c.Node.ID))
	}
	if c.Backup.S3.Bucket == "" {
		errs = append(errs, errors.New("backup.s3.bucket: required for backups"))
	}
	errs = append(errs, c.Backup.problems()...)
	return errors.Join(errs...)
}

// problems checks the backup section; with no bucket, backups are off and only the values
// themselves are checked.
func (b Backup) problems() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s3 := b.S3
	if s3.Bucket != "" && s3.Endpoint == "" {
		bad("backup.s3.endpoint: required with backup.s3.bucket")
	}
	if s3.CAFile != "" && !s3.TLS {
		bad("backup.s3.ca_file: goes with backup.s3.tls true")
	}
	if strings.Contains(s3.Endpoint, "/") {
		bad("backup.s3.endpoint: want host[:port] without a scheme or path (backup.s3.tls says HTTP or HTTPS), got %q", s3.Endpoint)
	}
	switch s3.Lookup {
	case "auto", "path", "virtual-host":
	default:
		bad("backup.s3.lookup: want auto, path or virtual-host, got %q", s3.Lookup)
	}
	switch {
	case s3.SSE != "none" && s3.SSE != "s3" && s3.SSE != "kms":
		bad("backup.s3.sse: want none, s3 or kms, got %q", s3.SSE)
	case (s3.SSE == "kms") != (s3.SSEKMSKeyID != ""):
		bad("backup.s3.sse_kms_key_id: set it exactly when backup.s3.sse is kms")
	}
	keyFiles := s3.AccessKeyIDFile != "" || s3.SecretAccessKeyFile != "" || s3.SessionTokenFile != ""
	switch s3.Credentials {
	case "static":
		if s3.Bucket != "" && (s3.AccessKeyIDFile == "" || s3.SecretAccessKeyFile == "") {
			bad("backup.s3.access_key_id_file and backup.s3.secret_access_key_file: required with backup.s3.credentials=static")
		}
	case "env", "iam":
		if keyFiles {
			bad("backup.s3.*_file: key files go with backup.s3.credentials=static, not %s", s3.Credentials)
		}
	default:
		bad("backup.s3.credentials: want static, env or iam, got %q", s3.Credentials)
	}
	if s3.ParallelParts < 1 || s3.ParallelParts > 64 {
		bad("backup.s3.parallel_parts: want 1..64, got %d", s3.ParallelParts)
	}
	if s3.PartSizeMiB < 5 || s3.PartSizeMiB > 5120 {
		bad("backup.s3.part_size_mib: want 5..5120 (S3's part limits), got %d", s3.PartSizeMiB)
	} else if b.ObjectSizeMiB < s3.PartSizeMiB || b.ObjectSizeMiB > s3.PartSizeMiB*10000 {
		bad("backup.object_size_mib: want %d..%d (one to 10000 parts of backup.s3.part_size_mib), got %d",
			s3.PartSizeMiB, s3.PartSizeMiB*10000, b.ObjectSizeMiB)
	}
	if b.Nice < 0 || b.Nice > 19 {
		bad("backup.nice: want 0..19, got %d", b.Nice)
	}
	if b.MaxMiBPerSecond < 0 {
		bad("backup.max_mib_per_second: want 0 (unlimited) or more, got %d", b.MaxMiBPerSecond)
	}
	switch b.Compression {
	case "fastest", "default", "better", "best":
	default:
		bad("backup.compression: want fastest, default, better or best, got %q", b.Compression)
	}
	for _, d := range []struct{ name, dir string }{{"backup.tmp_dir", b.TmpDir}, {"backup.clone_dir", b.CloneDir}, {"backup.clone_dir_local", b.CloneDirLocal}} {
		if d.dir != "" && !filepath.IsAbs(d.dir) {
			bad("%s: want an absolute path, got %q", d.name, d.dir)
		}
	}
	if b.CloneDirLocal != "" && b.CloneDir == "" {
		bad("backup.clone_dir_local: set backup.clone_dir too")
	}
	for _, d := range []struct{ name, dir string }{{"backup.verify_dir", b.VerifyDir}, {"backup.verify_dir_server", b.VerifyDirServer}} {
		if d.dir != "" && !filepath.IsAbs(d.dir) {
			bad("%s: want an absolute path, got %q", d.name, d.dir)
		}
	}
	switch b.ReseedFromBackup {
	case "never", "no_donor", "always":
	default:
		bad("backup.reseed_from_backup: want never, no_donor or always, got %q", b.ReseedFromBackup)
	}
	return errs
}
