package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// key is one configuration key: its dotted name (the YAML path, lower case), what it means, and
// the field it sets. The field's type decides how text is parsed.
type key struct {
	name, help string
	field      func(c *Config) any
}

var keys = []key{
	{"cluster", "cluster name (a DNS label); required", func(c *Config) any { return &c.Cluster }},
	{"node.id", "this member's id (a DNS label); default: the host name", func(c *Config) any { return &c.Node.ID }},
	{"node.data_dir", "where Raft keeps its log and snapshots", func(c *Config) any { return &c.Node.DataDir }},
	{"mysql.addr", "how the agent reaches its own MySQL (host:port or a Unix socket path)", func(c *Config) any { return &c.MySQL.Addr }},
	{"mysql.advertise_addr", "how other members reach this MySQL; default: mysql.addr", func(c *Config) any { return &c.MySQL.AdvertiseAddr }},
	{"mysql.user", "administrative MySQL account of the agent", func(c *Config) any { return &c.MySQL.User }},
	{"mysql.password_file", "file holding mysql.user's password", func(c *Config) any { return &c.MySQL.PasswordFile }},
	{"mysql.repl_user", "replication account, created on the primary", func(c *Config) any { return &c.MySQL.ReplUser }},
	{"mysql.repl_password_file", "file holding the replication account's password; required", func(c *Config) any { return &c.MySQL.ReplPasswordFile }},
	{"mysql.connect_timeout", "bound on connecting to a MySQL server", func(c *Config) any { return &c.MySQL.ConnectTimeout }},
	{"mysql.read_timeout", "bound on any one MySQL statement", func(c *Config) any { return &c.MySQL.ReadTimeout }},
	{"mysql.semi_sync", "lossless (AFTER_SYNC semi-sync, never falls back to async) or async", func(c *Config) any { return &c.MySQL.SemiSync }},
	{"mysql.semi_sync_acks", "replicas that must receive a commit before it returns", func(c *Config) any { return &c.MySQL.SemiSyncAcks }},
	{"mysql.pid_file", "the local mysqld's pid file; set, the agent SIGKILLs its mysqld when it stopped answering while writable past the primary lease", func(c *Config) any { return &c.MySQL.PIDFile }},
	{"mysql.data_dir", "the local server's data dir, where a MariaDB re-seed swaps the copy in; default: the running server's datadir", func(c *Config) any { return &c.MySQL.DataDir }},
	{"mysql.stop_command", "command (a list: program and arguments) that stops the local mysqld and keeps it down, for a re-seed, e.g. systemctl,stop,mariadb", func(c *Config) any { return &c.MySQL.StopCommand }},
	{"mysql.start_command", "command that starts the local mysqld again after a re-seed, e.g. systemctl,start,mariadb", func(c *Config) any { return &c.MySQL.StartCommand }},
	{"mysql.binlog_tool", "the flavor's binlog tool (a list: program and arguments) that reads the local relay log for a failover's recovery, given the files as the server names them; default: mysqlbinlog or mariadb-binlog from the PATH (put a chroot or nsenter in front when mysqld sees another file system)", func(c *Config) any { return &c.MySQL.BinlogTool }},
	{"mysql.x_port", "X Protocol port published in DNS (_mysqlx._tcp); 0: none", func(c *Config) any { return &c.MySQL.XPort }},
	{"gossip.bind", "gossip listen address (host:port)", func(c *Config) any { return &c.Gossip.Bind }},
	{"gossip.advertise", "gossip address peers use; default: the bind address", func(c *Config) any { return &c.Gossip.Advertise }},
	{"gossip.seeds", "members to join (host:port or DNS names)", func(c *Config) any { return &c.Gossip.Seeds }},
	{"gossip.key_files", "files with base64 16/24/32-byte keys; the first encrypts, all decrypt", func(c *Config) any { return &c.Gossip.KeyFiles }},
	{"gossip.allow_plaintext", "allow gossip without encryption keys", func(c *Config) any { return &c.Gossip.AllowPlaintext }},
	{"gossip.probe_interval", "failure-detection probe interval (0: tuned default)", func(c *Config) any { return &c.Gossip.ProbeInterval }},
	{"gossip.probe_timeout", "failure-detection probe timeout (0: tuned default)", func(c *Config) any { return &c.Gossip.ProbeTimeout }},
	{"gossip.suspicion_mult", "suspicion multiplier (0: tuned default)", func(c *Config) any { return &c.Gossip.SuspicionMult }},
	{"gossip.gossip_interval", "gossip interval (0: tuned default)", func(c *Config) any { return &c.Gossip.GossipInterval }},
	{"raft.bind", "Raft listen address (host:port)", func(c *Config) any { return &c.Raft.Bind }},
	{"raft.advertise", "Raft address peers use; required when raft.bind is a wildcard", func(c *Config) any { return &c.Raft.Advertise }},
	{"raft.bootstrap_expect", "members to see before bootstrapping Raft (the cluster's size)", func(c *Config) any { return &c.Raft.BootstrapExpect }},
	{"raft.tls.cert_file", "this member's certificate: mutual TLS for Raft and the agents' calls to each other, and the admin API serves HTTPS with it (shoal certs writes one)", func(c *Config) any { return &c.Raft.CertFile }},
	{"raft.tls.key_file", "this member's private key", func(c *Config) any { return &c.Raft.KeyFile }},
	{"raft.tls.ca_file", "the CA every member's certificate must chain to (the CLI reads it as SHOAL_RAFT_TLS_CA_FILE too)", func(c *Config) any { return &c.Raft.CAFile }},
	{"raft.allow_plaintext", "allow Raft and the agents' calls to each other without TLS, unauthenticated (development only)", func(c *Config) any { return &c.Raft.AllowPlaintext }},
	{"raft.heartbeat_timeout", "Raft heartbeat timeout (0: tuned default)", func(c *Config) any { return &c.Raft.HeartbeatTimeout }},
	{"raft.election_timeout", "Raft election timeout (0: tuned default)", func(c *Config) any { return &c.Raft.ElectionTimeout }},
	{"raft.leader_heartbeat_timeout", "the heartbeat timeout a Raft leader runs with: it sends heartbeats every 1/10-1/5 of it (0: 2 x raft.heartbeat_timeout)", func(c *Config) any { return &c.Raft.LeaderHeartbeatTimeout }},
	{"raft.leader_lease_timeout", "Raft leader lease timeout (0: tuned default)", func(c *Config) any { return &c.Raft.LeaderLeaseTimeout }},
	{"membership.remove_after", "how long a member may be gone before the leader removes it from Raft, never below a majority of raft.bootstrap_expect (0: never)", func(c *Config) any { return &c.Membership.RemoveAfter }},
	{"ha.tick", "control-loop interval", func(c *Config) any { return &c.HA.Tick }},
	{"ha.detection_timeout", "how long the primary must look down before failover", func(c *Config) any { return &c.HA.DetectionTimeout }},
	{"ha.lease", "how long a primary keeps writes open without a confirmed Raft majority", func(c *Config) any { return &c.HA.Lease }},
	{"ha.max_clock_drift", "bound on how much members' clocks disagree over one lease", func(c *Config) any { return &c.HA.MaxClockDrift }},
	{"ha.promotion_margin", "safety margin on top of lease and drift before promoting", func(c *Config) any { return &c.HA.PromotionMargin }},
	{"ha.failover_cooldown", "least time between automatic failovers", func(c *Config) any { return &c.HA.FailoverCooldown }},
	{"ha.leader_off_primary", "a Raft leader that is the serving primary's agent hands leadership to another voter, so one host lost does not take both", func(c *Config) any { return &c.HA.LeaderOffPrimary }},
	{"ha.commit_stall_timeout", "how long a heartbeat commit on the primary may wait before its commit path counts as stalled (failover, unless it waits for semi-sync acks no replica can give)", func(c *Config) any { return &c.HA.CommitStallTimeout }},
	{"ha.commit_probe_interval", "how often the primary's agent commits a heartbeat row (shoal.heartbeat), one at a time", func(c *Config) any { return &c.HA.CommitProbeInterval }},
	{"ha.rebuild_errant", "let the leader re-seed a member holding errant transactions from a healthy replica (those transactions are lost)", func(c *Config) any { return &c.HA.RebuildErrant }},
	{"ha.rebuild_max_donor_lag", "a replica lagging more never donates a re-seed", func(c *Config) any { return &c.HA.RebuildMaxDonorLag }},
	{"reseed.max_mib_per_second", "cap on a re-seed's copy, so the donor keeps up (0: unlimited)", func(c *Config) any { return &c.Reseed.MaxMiBPerSecond }},
	{"reseed.tmp_dir", "a donor's scratch files for mariadb-backup", func(c *Config) any { return &c.Reseed.TmpDir }},
	{"admin.listen", "admin HTTP API address (status, switchover, metrics)", func(c *Config) any { return &c.Admin.Listen }},
	{"admin.token_file", "file holding the admin API's bearer token for people and tools (shoal status, switchover, pause, resume)", func(c *Config) any { return &c.Admin.TokenFile }},
	{"admin.allow_no_token", "allow no token when admin.listen is loopback", func(c *Config) any { return &c.Admin.AllowNoToken }},
	{"dns.listen", "authoritative DNS address; empty: off", func(c *Config) any { return &c.DNS.Listen }},
	{"dns.zone", "DNS zone served", func(c *Config) any { return &c.DNS.Zone }},
	{"dns.ttl", "TTL of DNS answers", func(c *Config) any { return &c.DNS.TTL }},
	{"dns.max_lag", "replicas lagging more are left out of DNS", func(c *Config) any { return &c.DNS.MaxLag }},
	{"log.level", "debug, info, warn or error", func(c *Config) any { return &c.Log.Level }},
	{"log.format", "json or text", func(c *Config) any { return &c.Log.Format }},
	// The backup schedule and retention.
	{"backup.schedule", "cron schedule of backups, run by the Raft leader on the least lagging replica (5 fields or @daily, UTC unless it starts with CRON_TZ=Zone); empty: no scheduled backups", func(c *Config) any { return &c.Backup.Schedule }},
	{"backup.keep_count", "retention keeps this many newest valid backups (0: none by count; with backup.keep_age 0 too, retention deletes no valid backup)", func(c *Config) any { return &c.Backup.KeepCount }},
	{"backup.keep_age", "retention keeps valid backups younger than this (0: none by age); the newest valid backup is always kept", func(c *Config) any { return &c.Backup.KeepAge }},
	{"backup.job_timeout", "a scheduled backup running longer fails and is retried once on another member; an upload without a manifest older than this is cleaned up", func(c *Config) any { return &c.Backup.JobTimeout }},
	{"backup.s3.endpoint", "S3 endpoint, host[:port] (e.g. s3.eu-west-1.amazonaws.com); required with backup.s3.bucket", func(c *Config) any { return &c.Backup.S3.Endpoint }},
	{"backup.s3.bucket", "bucket backups go to; empty: backups off", func(c *Config) any { return &c.Backup.S3.Bucket }},
	{"backup.s3.prefix", "key prefix inside the bucket; backups go under PREFIX/CLUSTER/backups/", func(c *Config) any { return &c.Backup.S3.Prefix }},
	{"backup.s3.region", "bucket region; empty: asked from the server", func(c *Config) any { return &c.Backup.S3.Region }},
	{"backup.s3.lookup", "bucket addressing: auto, path (endpoint/bucket) or virtual-host (bucket.endpoint)", func(c *Config) any { return &c.Backup.S3.Lookup }},
	{"backup.s3.tls", "talk HTTPS to the endpoint (false: plain HTTP, for a store on a trusted network only)", func(c *Config) any { return &c.Backup.S3.TLS }},
	{"backup.s3.ca_file", "PEM file of CA certificates trusted for the endpoint besides the system's", func(c *Config) any { return &c.Backup.S3.CAFile }},
	{"backup.s3.sse", "server-side encryption: none, s3 (SSE-S3) or kms (SSE-KMS)", func(c *Config) any { return &c.Backup.S3.SSE }},
	{"backup.s3.sse_kms_key_id", "KMS key id for backup.s3.sse=kms", func(c *Config) any { return &c.Backup.S3.SSEKMSKeyID }},
	{"backup.s3.credentials", "static (the key files below), env (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or iam (web identity as IRSA sets it up, then ECS/EC2 metadata)", func(c *Config) any { return &c.Backup.S3.Credentials }},
	{"backup.s3.access_key_id_file", "file holding the access key id (backup.s3.credentials=static)", func(c *Config) any { return &c.Backup.S3.AccessKeyIDFile }},
	{"backup.s3.secret_access_key_file", "file holding the secret access key (backup.s3.credentials=static)", func(c *Config) any { return &c.Backup.S3.SecretAccessKeyFile }},
	{"backup.s3.session_token_file", "file holding a session token for temporary static credentials; optional", func(c *Config) any { return &c.Backup.S3.SessionTokenFile }},
	{"backup.s3.part_size_mib", "multipart part size (5..5120): the memory one upload holds", func(c *Config) any { return &c.Backup.S3.PartSizeMiB }},
	{"backup.s3.parallel_parts", "parts of one upload sent at once (1..64), each holding a part in memory", func(c *Config) any { return &c.Backup.S3.ParallelParts }},
	{"backup.object_size_mib", "a backup is cut into objects of at most this size (at most 10000 parts)", func(c *Config) any { return &c.Backup.ObjectSizeMiB }},
	{"backup.nice", "niceness (0-19) of a MariaDB backup's mariadb-backup process, so that on a busy host the replica's own threads (its semi-sync acks, its applier) run first; 0: the agent's", func(c *Config) any { return &c.Backup.Nice }},
	{"backup.max_mib_per_second", "cap on a MariaDB backup's read rate, so a replica keeps up (0: unlimited)", func(c *Config) any { return &c.Backup.MaxMiBPerSecond }},
	{"backup.compression", "zstd level: fastest, default, better or best", func(c *Config) any { return &c.Backup.Compression }},
	{"backup.tmp_dir", "scratch files of mariadb-backup", func(c *Config) any { return &c.Backup.TmpDir }},
	{"backup.clone_dir", "MySQL: a directory mysqld can write where it clones before the copy is streamed; needs room for a full copy of the data; required for MySQL backups", func(c *Config) any { return &c.Backup.CloneDir }},
	{"backup.clone_dir_local", "MySQL: backup.clone_dir as the agent sees it when mysqld runs in another mount namespace (a container, a chroot); default: backup.clone_dir", func(c *Config) any { return &c.Backup.CloneDirLocal }},
	// Restore tests and re-seeds from backups.
	{"backup.verify_command", "command (a list: program and arguments) that runs the server program for `shoal backup verify`'s throwaway server, which gets its options appended, e.g. /usr/sbin/mariadbd; default: mariadbd or mysqld from PATH", func(c *Config) any { return &c.Backup.VerifyCommand }},
	{"backup.verify_dir", "where `shoal backup verify` restores a backup for its throwaway server (removed after); needs room for one restored copy", func(c *Config) any { return &c.Backup.VerifyDir }},
	{"backup.verify_dir_server", "backup.verify_dir as the server program sees it when it runs in another mount namespace (a chroot); default: backup.verify_dir", func(c *Config) any { return &c.Backup.VerifyDirServer }},
	{"backup.verify_after_backup", "the member that took a scheduled backup then restore-tests it as `shoal backup verify` does, within backup.job_timeout; the outcome is recorded beside the backup, and a failed test fails no job", func(c *Config) any { return &c.Backup.VerifyAfterBackup }},
	{"backup.reseed_from_backup", "when the leader re-seeds a member holding no transactions from the newest (verified first) backup instead of a donor: never, no_donor (when no member may donate) or always; needs backup.s3.bucket", func(c *Config) any { return &c.Backup.ReseedFromBackup }},
	{"backup.binlogs.enabled", "the primary's agent archives each closed binlog file to the store, for point-in-time restores (needs backup.s3.bucket)", func(c *Config) any { return &c.Backup.Binlogs.Enabled }},
	{"backup.binlogs.interval", "how often the primary's agent looks for closed binlog files to archive", func(c *Config) any { return &c.Backup.Binlogs.Interval }},
	{"backup.binlogs.flush_interval", "FLUSH BINARY LOGS when the file being written has grown and is this old, bounding the recovery point on a quiet primary (0: never)", func(c *Config) any { return &c.Backup.Binlogs.FlushInterval }},
	{"backup.binlogs.dir", "the binlog directory as the agent sees it; default: the directory of the server's log_bin_basename, through /proc/<pid>/root when mysql.pid_file is set (set it when mysqld runs in another mount namespace and its pid is not visible)", func(c *Config) any { return &c.Backup.Binlogs.Dir }},
	{"backup.binlogs.window", "point-in-time window: retention keeps the backups every instant this far back replays from, and the archived binlogs no kept backup needs are deleted (0: no window)", func(c *Config) any { return &c.Backup.Binlogs.Window }},

	// Kubernetes (agent/kube).
	{"kubernetes.enabled", "publish to the Kubernetes API: the leader writes the EndpointSlices of the primary and replicas Services, role labels on the pods, and Events", func(c *Config) any { return &c.Kubernetes.Enabled }},
	{"kubernetes.namespace", "namespace of the pods and Services; default: the service account's namespace", func(c *Config) any { return &c.Kubernetes.Namespace }},
	{"kubernetes.release", "the Helm release naming the Services; default: the cluster name", func(c *Config) any { return &c.Kubernetes.Release }},
	{"kubernetes.primary_service", "selector-less Service whose endpoints are the primary; default: <release>-primary", func(c *Config) any { return &c.Kubernetes.PrimaryService }},
	{"kubernetes.replicas_service", "selector-less Service whose endpoints are the serving replicas within dns.max_lag; default: <release>-replicas", func(c *Config) any { return &c.Kubernetes.ReplicasService }},
	{"kubernetes.pod_name", "this agent's pod (from the Downward API); must be node.id, as the leader finds each member's pod by its id; default: node.id", func(c *Config) any { return &c.Kubernetes.PodName }},
	{"kubernetes.kubeconfig", "kubeconfig file for an agent outside the cluster; empty: the in-cluster service account", func(c *Config) any { return &c.Kubernetes.Kubeconfig }},
	{"kubernetes.heal.enabled", "let the Raft leader delete the pod of a member failed for kubernetes.heal.grace (mysqld down, replication broken, errant with ha.rebuild_errant) so its StatefulSet recreates it; needs pod delete and node get/list/watch", func(c *Config) any { return &c.Kubernetes.Heal.Enabled }},
	{"kubernetes.heal.grace", "how long a member stays failed, and a recreated pod's agent runs, before its pod is deleted", func(c *Config) any { return &c.Kubernetes.Heal.Grace }},
	{"kubernetes.heal.start_grace", "how long a recreated pod may take to start its agent (image pull, init containers) before its grace counts anyway, and a failed member may have no pod while its StatefulSet recreates it", func(c *Config) any { return &c.Kubernetes.Heal.StartGrace }},
	{"kubernetes.heal.min_interval", "least time between two pod deletions", func(c *Config) any { return &c.Kubernetes.Heal.MinInterval }},
	{"kubernetes.delete_volume", "with kubernetes.heal.enabled: delete a healed member's PersistentVolumeClaims too when its data is unusable (errant, failing again in a new pod) or its node is lost; it re-seeds from a donor", func(c *Config) any { return &c.Kubernetes.DeleteVolume }},
	{"kubernetes.force_delete_terminating", "with kubernetes.heal.enabled: force-delete a pod stuck Terminating on a NotReady node once its member is fenced (another primary's epoch committed, its lease run out)", func(c *Config) any { return &c.Kubernetes.ForceDeleteTerminating }},
	{"kubernetes.roll.enabled", "let the Raft leader roll an OnDelete StatefulSet's pods after an update: the replicas' one at a time while every member serves, then a switchover, the old primary's last; needs pod delete and statefulset get/list/watch", func(c *Config) any { return &c.Kubernetes.Roll.Enabled }},
	{"kubernetes.roll.min_interval", "least time between two steps of a roll (a pod deletion, a switchover request)", func(c *Config) any { return &c.Kubernetes.Roll.MinInterval }},
}

// notAgentKeys are SHOAL_* variables of the test rig, not agent settings.
var notAgentKeys = map[string]bool{"SHOAL_CACHE": true, "SHOAL_FLAVORS": true}

func lookup(name string) (key, bool) {
	for _, k := range keys {
		if k.name == name {
			return k, true
		}
	}
	return key{}, false
}

func envName(name string) string {
	return "SHOAL_" + strings.ToUpper(strings.ReplaceAll(name, ".", "_"))
}

// set parses text into the key's field; list keys take comma-separated text.
func (k key) set(c *Config, text string) error {
	switch p := k.field(c).(type) {
	case *string:
		*p = text
	case *[]string:
		*p = nil
		for _, item := range strings.Split(text, ",") {
			if item = strings.TrimSpace(item); item != "" {
				*p = append(*p, item)
			}
		}
	case *bool:
		v, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("%s: want true or false, got %q", k.name, text)
		}
		*p = v
	case *int:
		v, err := strconv.Atoi(text)
		if err != nil {
			return fmt.Errorf("%s: want a whole number, got %q", k.name, text)
		}
		*p = v
	case *time.Duration:
		v, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("%s: want a duration such as 250ms or 4s, got %q", k.name, text)
		}
		*p = v
	}
	return nil
}

// get formats the key's current value as set would read it.
func (k key) get(c *Config) string {
	switch p := k.field(c).(type) {
	case *string:
		return *p
	case *[]string:
		return strings.Join(*p, ",")
	case *bool:
		return strconv.FormatBool(*p)
	case *int:
		return strconv.Itoa(*p)
	case *time.Duration:
		return p.String()
	}
	return ""
}

// Load builds the configuration: defaults, then the YAML file (path, or --config in args), then
// the SHOAL_* variables of environ, then the flags in args. Every error is returned at once.
func Load(path string, environ, args []string) (Config, error) {
	c := Default()
	flags, file, err := splitArgs(args)
	if err != nil {
		return c, err
	}
	if file != "" {
		path = file
	}
	var errs []error
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		if err := loadYAML(&c, b); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
	}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "SHOAL_") || notAgentKeys[name] {
			continue
		}
		k, ok := envKey(name)
		if !ok {
			errs = append(errs, fmt.Errorf("environment: unknown variable %s", name))
			continue
		}
		if err := k.set(&c, value); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", name, err))
		}
	}
	for _, f := range flags {
		k, ok := lookup(f[0])
		if !ok {
			errs = append(errs, fmt.Errorf("unknown flag --%s", f[0]))
			continue
		}
		if err := k.set(&c, f[1]); err != nil {
			errs = append(errs, fmt.Errorf("flag %w", err))
		}
	}
	return c, errors.Join(errs...)
}

func envKey(name string) (key, bool) {
	for _, k := range keys {
		if envName(k.name) == name {
			return k, true
		}
	}
	return key{}, false
}

// splitArgs reads --key value / --key=value pairs (a bool flag alone means true) and --config.
func splitArgs(args []string) (flags [][2]string, file string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-h" || a == "--help" || a == "-help" {
			return nil, "", ErrHelp
		}
		if !strings.HasPrefix(a, "--") {
			return nil, "", fmt.Errorf("unexpected argument %q: flags look like --mysql.addr=host:port", a)
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !hasValue {
			switch {
			case isBoolKey(name) && (i+1 == len(args) || strings.HasPrefix(args[i+1], "--")):
				value = "true"
			case i+1 < len(args):
				i++
				value = args[i]
			default:
				return nil, "", fmt.Errorf("flag --%s needs a value", name)
			}
		}
		if name == "config" {
			file = value
			continue
		}
		flags = append(flags, [2]string{name, value})
	}
	return flags, file, nil
}

// loadYAML applies a YAML document whose nesting follows the dotted key names.
func loadYAML(c *Config, b []byte) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		return err
	}
	if len(doc.Content) == 0 {
		return nil
	}
	var errs []error
	walkYAML(c, doc.Content[0], "", &errs)
	return errors.Join(errs...)
}

func walkYAML(c *Config, n *yaml.Node, prefix string, errs *[]error) {
	if n.Kind != yaml.MappingNode {
		*errs = append(*errs, fmt.Errorf("line %d: %s must be a mapping of keys", n.Line, cmp.Or(prefix, "the document")))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, value := n.Content[i].Value, n.Content[i+1]
		if prefix != "" {
			name = prefix + "." + name
		}
		k, ok := lookup(name)
		switch {
		case ok && value.Kind == yaml.SequenceNode:
			var items []string
			for _, item := range value.Content {
				items = append(items, item.Value)
			}
			if _, isList := k.field(new(Config)).(*[]string); !isList {
				*errs = append(*errs, fmt.Errorf("line %d: %s takes one value, not a list", value.Line, name))
				continue
			}
			*k.field(c).(*[]string) = items
		case ok && value.Kind == yaml.ScalarNode:
			if err := k.set(c, value.Value); err != nil {
				*errs = append(*errs, fmt.Errorf("line %d: %w", value.Line, err))
			}
		case ok:
			*errs = append(*errs, fmt.Errorf("line %d: %s takes a value, not a mapping", value.Line, name))
		case value.Kind == yaml.MappingNode && hasKeysUnder(name):
			walkYAML(c, value, name, errs)
		default:
			*errs = append(*errs, fmt.Errorf("line %d: unknown key %s", n.Content[i].Line, name))
		}
	}
}

func hasKeysUnder(prefix string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k.name, prefix+".") {
			return true
		}
	}
	return false
}

func isBoolKey(name string) bool {
	k, ok := lookup(name)
	if !ok {
		return false
	}
	_, isBool := k.field(new(Config)).(*bool)
	return isBool
}
