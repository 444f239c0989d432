// Package config is the agent's one configuration: defaults < YAML file < SHOAL_* environment
// < command-line flags. One table of keys drives all four, so a key is spelled, parsed and
// documented once. Unknown keys are errors everywhere, and Validate reports every problem at once.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/backup/schedule"
)

// Config is everything `shoal agent` needs. Secrets are never values here, only files.
type Config struct {
	Cluster string
	Node    struct{ ID, DataDir string }
	MySQL   struct {
		Addr, AdvertiseAddr, User, PasswordFile, ReplUser, ReplPasswordFile string
		PIDFile, DataDir                                                    string
		StartCommand, StopCommand                                           []string
		BinlogTool                                                          []string
		ConnectTimeout, ReadTimeout                                         time.Duration
		SemiSync                                                            string
		SemiSyncAcks, XPort                                                 int
	}
	Gossip struct {
		Bind, Advertise             string
		Seeds, KeyFiles             []string
		AllowPlaintext              bool
		ProbeInterval, ProbeTimeout time.Duration
		SuspicionMult               int
		GossipInterval              time.Duration
	}
	Raft struct {
		Bind, Advertise                                       string
		BootstrapExpect                                       int
		CertFile, KeyFile, CAFile                             string
		AllowPlaintext                                        bool
		HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
		LeaderHeartbeatTimeout                                time.Duration
	}
	Membership struct {
		RemoveAfter time.Duration
	}
	HA struct {
		Tick, DetectionTimeout, Lease, MaxClockDrift, PromotionMargin, FailoverCooldown time.Duration
		CommitStallTimeout, CommitProbeInterval                                         time.Duration
		LeaderOffPrimary                                                                bool
		RebuildErrant                                                                   bool
		RebuildMaxDonorLag                                                              time.Duration
	}
	Reseed struct {
		MaxMiBPerSecond int
		TmpDir          string
	}
	Admin struct {
		Listen, TokenFile string
		AllowNoToken      bool
	}
	DNS struct {
		Listen, Zone string
		TTL, MaxLag  time.Duration
	}
	Log    struct{ Level, Format string }
	Backup Backup
	// Kubernetes is the Kubernetes publisher (agent/kube): Service endpoints, role labels, Events.
	Kubernetes struct {
		Enabled                                                      bool
		Namespace, Release, PrimaryService, ReplicasService, PodName string
		Kubeconfig                                                   string
		// Heal is the leader's replacement of failed members' pods (ha.Heal).
		Heal struct {
			Enabled                        bool
			Grace, StartGrace, MinInterval time.Duration
		}
		DeleteVolume, ForceDeleteTerminating bool
		// Roll is the leader's rolling of an OnDelete StatefulSet's pods after an update (ha.Roll).
		Roll struct {
			Enabled     bool
			MinInterval time.Duration
		}
	}
}

// Backup is the backup section: where backups go and how they are taken (backups are off while
// backup.s3.bucket is empty), and the schedule and retention the Raft leader enforces
// (backup/schedule).
type Backup struct {
	S3 struct {
		Endpoint, Bucket, Prefix, Region, Lookup, CAFile                    string
		TLS                                                                 bool
		SSE, SSEKMSKeyID                                                    string
		Credentials, AccessKeyIDFile, SecretAccessKeyFile, SessionTokenFile string
		PartSizeMiB, ParallelParts                                          int
	}
	ObjectSizeMiB, MaxMiBPerSecond  int
	Nice                            int
	Compression                     string
	TmpDir, CloneDir, CloneDirLocal string

	Schedule            string
	KeepCount           int
	KeepAge, JobTimeout time.Duration

	// Restore tests of backups (backup.Verifier) and re-seeds from backups.
	VerifyCommand              []string
	VerifyDir, VerifyDirServer string
	VerifyAfterBackup          bool
	ReseedFromBackup           string
	// Binlogs is the primary's binlog archive (backup/binlogarchive.go), for point-in-time restores.
	Binlogs struct {
		Enabled                         bool
		Interval, FlushInterval, Window time.Duration
		Dir                             string
	}
}

// ErrHelp is returned by Load when the arguments ask for help.
var ErrHelp = errors.New("help requested")

// Default is the configuration before any file, environment or flag.
func Default() Config {
	var c Config
	host, _ := os.Hostname()
	c.Node.ID = strings.ToLower(strings.Split(host, ".")[0])
	c.Node.DataDir = "/var/lib/shoal"
	c.MySQL.Addr = "127.0.0.1:3306"
	c.MySQL.User = "root"
	c.MySQL.ReplUser = "shoal_repl"
	c.MySQL.ConnectTimeout = time.Second
	c.MySQL.ReadTimeout = 30 * time.Second
	c.MySQL.SemiSync = "lossless"
	c.MySQL.SemiSyncAcks = 1
	c.Gossip.Bind = "0.0.0.0:7946"
	c.Raft.Bind = "0.0.0.0:7947"
	c.Raft.BootstrapExpect = 3
	p := ha.DefaultPolicy()
	c.HA.Tick, c.HA.DetectionTimeout, c.HA.Lease = p.Tick, p.DetectionTimeout, p.Lease
	c.HA.MaxClockDrift, c.HA.PromotionMargin, c.HA.FailoverCooldown = p.MaxClockDrift, p.PromotionMargin, p.FailoverCooldown
	c.HA.LeaderOffPrimary = p.LeaderOffPrimary
	c.HA.CommitStallTimeout, c.HA.CommitProbeInterval = p.CommitStallTimeout, p.CommitProbeInterval
	c.HA.RebuildMaxDonorLag = p.RebuildMaxDonorLag
	// A copy at full speed can starve the donor's own replication; 100 MiB/s leaves a disk of
	// today most of its bandwidth.
	c.Reseed.MaxMiBPerSecond = 100
	c.Reseed.TmpDir = os.TempDir()
	c.Admin.Listen = "127.0.0.1:7948"
	c.DNS.Zone = "shoal."
	c.DNS.TTL = time.Second
	c.DNS.MaxLag = 10 * time.Second
	c.Log.Level = "info"
	c.Log.Format = "json"
	c.Backup.KeepCount = 7
	c.Backup.JobTimeout = 6 * time.Hour
	c.Backup.S3.Lookup = "auto"
	c.Backup.S3.TLS = true
	c.Backup.S3.SSE = "none"
	c.Backup.S3.Credentials = "static"
	c.Backup.S3.PartSizeMiB = 16
	c.Backup.S3.ParallelParts = 2
	c.Backup.ObjectSizeMiB = 8192
	// A replica's semi-sync acks and its applier must not queue behind the backup's reads.
	c.Backup.Nice = 10
	c.Backup.Compression = "fastest"
	c.Backup.TmpDir = os.TempDir()
	c.Backup.VerifyDir = os.TempDir()
	c.Backup.ReseedFromBackup = "no_donor"
	// A member's pod goes only after minutes: a restart, a re-seed or a node back from a reboot
	// all take less, and a deletion costs a full copy of its data.
	c.Kubernetes.Heal.Grace = 5 * time.Minute
	c.Kubernetes.Heal.MinInterval = 5 * time.Minute
	// An image pull on a new node and an init container filling an empty data dir can take
	// minutes; an agent that has not started by then is failing, not starting.
	c.Kubernetes.Heal.StartGrace = 10 * time.Minute
	// Each step of a roll waits for every member to serve anyway: this only spaces them.
	c.Kubernetes.Roll.MinInterval = 10 * time.Second
	c.Backup.Binlogs.Interval = 10 * time.Second
	c.Backup.Binlogs.FlushInterval = 5 * time.Minute
	return c
}

// Policy is the HA policy the config describes.
func (c Config) Policy() ha.Policy {
	acks := c.MySQL.SemiSyncAcks
	if c.MySQL.SemiSync == "async" {
		acks = 0
	}
	return ha.Policy{Tick: c.HA.Tick, DetectionTimeout: c.HA.DetectionTimeout, Lease: c.HA.Lease,
		MaxClockDrift: c.HA.MaxClockDrift, PromotionMargin: c.HA.PromotionMargin,
		FailoverCooldown: c.HA.FailoverCooldown, CommitStallTimeout: c.HA.CommitStallTimeout, CommitProbeInterval: c.HA.CommitProbeInterval,
		SemiSyncAcks: acks, KillFrozenPrimary: c.MySQL.PIDFile != "", LeaderOffPrimary: c.HA.LeaderOffPrimary,
		RebuildErrant: c.HA.RebuildErrant, RebuildMaxDonorLag: c.HA.RebuildMaxDonorLag,
		BootstrapExpect: c.Raft.BootstrapExpect, RemoveAfter: c.Membership.RemoveAfter,
		ReseedFromBackup: c.backupReseed()}
}

// backupReseed is backup.reseed_from_backup for the leader: never without a store.
func (c Config) backupReseed() ha.BackupReseed {
	if c.Backup.S3.Bucket == "" {
		return ha.BackupReseedNever
	}
	switch c.Backup.ReseedFromBackup {
	case "no_donor":
		return ha.BackupReseedNoDonor
	case "always":
		return ha.BackupReseedAlways
	}
	return ha.BackupReseedNever
}

// HealPolicy is the pod healing the config allows (kubernetes.heal.*).
func (c Config) HealPolicy() ha.HealPolicy {
	return ha.HealPolicy{Grace: c.Kubernetes.Heal.Grace, StartGrace: c.Kubernetes.Heal.StartGrace, MinInterval: c.Kubernetes.Heal.MinInterval,
		DeleteVolume: c.Kubernetes.DeleteVolume, ForceDeleteTerminating: c.Kubernetes.ForceDeleteTerminating,
		RebuildErrant: c.HA.RebuildErrant, LeaseBound: c.HA.Lease + c.HA.MaxClockDrift}
}

// RollPolicy is the rolling of an OnDelete StatefulSet the config allows (kubernetes.roll.*): a
// switchover target lags at most dns.max_lag, as the replicas the -replicas Service lists.
func (c Config) RollPolicy() ha.RollPolicy {
	return ha.RollPolicy{MinInterval: c.Kubernetes.Roll.MinInterval, MaxLag: c.DNS.MaxLag}
}

// BackupPolicy is the backup schedule and retention the config describes. An upload without a
// manifest is cleaned up once it is older than the job timeout, which no job outlives.
func (c Config) BackupPolicy() (schedule.Policy, schedule.Retention, error) {
	p := schedule.Policy{JobTimeout: c.Backup.JobTimeout}
	if c.Backup.Schedule != "" {
		spec, err := schedule.ParseSpec(c.Backup.Schedule)
		if err != nil {
			return p, schedule.Retention{}, fmt.Errorf("backup.schedule: %w", err)
		}
		p.Spec = spec
	}
	return p, schedule.Retention{KeepCount: c.Backup.KeepCount, KeepAge: c.Backup.KeepAge, IncompleteGrace: c.Backup.JobTimeout}, nil
}

// Usage lists every key with its environment variable, flag, default and meaning.
func Usage() string {
	var b strings.Builder
	b.WriteString("Usage: shoal agent [--config FILE] [--KEY VALUE ...]\n\n" +
		"Every key can be set in the YAML file (nested sections), as SHOAL_<KEY> in the environment,\n" +
		"or as --<key> on the command line; later sources win. Durations look like 250ms or 4s;\n" +
		"lists are comma-separated outside YAML.\n\n")
	def := Default()
	for _, k := range keys {
		fmt.Fprintf(&b, "  --%-28s %s\n      %s (default %q)\n", k.name, envName(k.name), k.help, k.get(&def))
	}
	return b.String()
}

// MySQLAdvertise is how other members reach this agent's MySQL.
func (c Config) MySQLAdvertise() string {
	if c.MySQL.AdvertiseAddr != "" {
		return c.MySQL.AdvertiseAddr
	}
	return c.MySQL.Addr
}

// KubeServices are the Services whose EndpointSlices the Kubernetes publisher writes:
// kubernetes.primary_service and kubernetes.replicas_service, by default <release>-primary and
// <release>-replicas, the release being the cluster's name unless set.
func (c Config) KubeServices() (primary, replicas string) {
	release := c.Kubernetes.Release
	if release == "" {
		release = c.Cluster
	}
	primary, replicas = c.Kubernetes.PrimaryService, c.Kubernetes.ReplicasService
	if primary == "" {
		primary = release + "-primary"
	}
	if replicas == "" {
		replicas = release + "-replicas"
	}
	return primary, replicas
}
