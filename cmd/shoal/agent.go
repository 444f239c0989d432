package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shoal-db/shoal/agent"
	"github.com/shoal-db/shoal/agent/adminapi"
	"github.com/shoal-db/shoal/agent/config"
	"github.com/shoal-db/shoal/agent/gossip"
	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/consensus"
	"github.com/shoal-db/shoal/consensus/peertls"
	"github.com/shoal-db/shoal/dns"
	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/hostport"
	"github.com/shoal-db/shoal/reseed"
)

// runAgent is `shoal agent`: load and check the config, start gossip, Raft and the admin API,
// and run the loop until SIGTERM, when a primary hands its role over before exiting.
func runAgent(ctx context.Context, args []string, _ io.Writer) error {
	cfg, err := config.Load("", os.Environ(), args)
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprint(os.Stderr, config.Usage())
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: invalid config:\n%w", errUsage, err)
	}
	// The agent waits on the network nearly all the time. With a second P the Go scheduler spins
	// up a second thread on each of the ~100 wakeups a second that Raft and gossip cause: a
	// quarter of an idle agent's CPU (docs/benchmarks.md). GOMAXPROCS in the environment wins.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	secrets, err := cfg.Secrets()
	if err != nil {
		return err
	}
	raftTLS, err := cfg.RaftTLS()
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log.Level, cfg.Log.Format).With("node", cfg.Node.ID)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	node, err := consensus.Open(ctx, consensus.Config{
		NodeID: cfg.Node.ID, BindAddr: cfg.Raft.Bind, AdvertiseAddr: cfg.Raft.Advertise, DataDir: cfg.Node.DataDir,
		TLS: raftTLS, HeartbeatTimeout: cfg.Raft.HeartbeatTimeout, ElectionTimeout: cfg.Raft.ElectionTimeout,
		LeaderHeartbeatTimeout: cfg.Raft.LeaderHeartbeatTimeout, LeaderLeaseTimeout: cfg.Raft.LeaderLeaseTimeout, Logger: log.With("component", "raft"),
	})
	if err != nil {
		return err
	}
	defer node.Close()

	gossipHost, gossipPort, err := splitPort(cfg.Gossip.Bind)
	if err != nil {
		return fmt.Errorf("gossip.bind: %w", err)
	}
	gcfg := gossip.Config{NodeName: cfg.Node.ID, Cluster: cfg.Cluster, BindAddr: gossipHost, BindPort: gossipPort, Seeds: cfg.Gossip.Seeds,
		Keys: secrets.GossipKeys, AllowPlaintext: cfg.Gossip.AllowPlaintext, ProbeInterval: cfg.Gossip.ProbeInterval,
		ProbeTimeout: cfg.Gossip.ProbeTimeout, SuspicionMult: cfg.Gossip.SuspicionMult,
		GossipInterval: cfg.Gossip.GossipInterval, Logger: log.With("component", "gossip")}
	if cfg.Gossip.Advertise != "" {
		if gcfg.AdvertiseAddr, gcfg.AdvertisePort, err = splitPort(cfg.Gossip.Advertise); err != nil {
			return fmt.Errorf("gossip.advertise: %w", err)
		}
	}
	g, err := gossip.Start(ctx, gcfg, health.Report{Role: health.RoleUnknown, LagMillis: -1})
	if err != nil {
		return err
	}
	defer g.Shutdown()
	go func() {
		if _, err := g.Join(ctx); err != nil && ctx.Err() == nil {
			log.Warn("joining the gossip seeds failed", "err", err)
		}
	}()

	dial := func(ctx context.Context, addr string) (*mysqlctl.Server, error) {
		return mysqlctl.Open(ctx, mysqlctl.Config{Addr: addr, User: cfg.MySQL.User, Password: secrets.MySQLPassword,
			ConnectTimeout: cfg.MySQL.ConnectTimeout, ReadTimeout: cfg.MySQL.ReadTimeout})
	}
	var publishers []agent.Publisher
	if cfg.DNS.Listen != "" {
		// The DNS server outlives the loop: it answers through the drain of a primary and stops
		// only when Run has returned.
		dnsServer := dns.NewServer(log.With("component", "dns"))
		dnsCtx, stopDNS := context.WithCancel(context.WithoutCancel(ctx))
		defer stopDNS()
		if err := dnsServer.ListenAndServe(dnsCtx, cfg.DNS.Listen); err != nil {
			return err
		}
		publishers = append(publishers, agent.DNSPublisher(dnsServer,
			dns.ZoneConfig{Zone: cfg.DNS.Zone, TTL: cfg.DNS.TTL, MaxLag: cfg.DNS.MaxLag}))
	}
	var readiness []agent.ReadinessCheck
	if cfg.Kubernetes.Enabled {
		// Like the DNS server, the publisher's informers outlive the loop's ctx: a draining
		// primary's leader still publishes the hand-over.
		kubeCtx, stopKube := context.WithCancel(context.WithoutCancel(ctx))
		defer stopKube()
		kp, err := startKubernetes(kubeCtx, cfg, log, reg, node)
		if err != nil {
			return err
		}
		publishers, readiness = append(publishers, kp), append(readiness, kp)
	}
	var service reseed.Service // nil: no commands, re-seeds rely on a supervisor
	if len(cfg.MySQL.StartCommand) > 0 {
		service = reseed.Commands{StopArgv: cfg.MySQL.StopCommand, StartArgv: cfg.MySQL.StartCommand}
	}
	var backupMetrics *backup.Metrics // one set on the registry: backups, restore tests and restores
	if cfg.Backup.S3.Bucket != "" {
		backupMetrics = backup.NewMetrics(reg)
	}
	backups, err := scheduledBackups(cfg, secrets, backupMetrics, log.With("component", "backup"), adminapi.NewClient("", leaseTLS(raftTLS), 30*time.Second))
	if err != nil {
		return err
	}
	restorer, err := reseedRestorer(cfg, secrets, backupMetrics, log.With("component", "restore"))
	if err != nil {
		return err
	}
	archive, err := binlogArchive(cfg, secrets, reg, log.With("component", "binlog-archive"), func() uint64 { return node.Record().Epoch })
	if err != nil {
		return err
	}
	a, err := agent.New(agent.Options{
		NodeID: cfg.Node.ID, Cluster: cfg.Cluster, Policy: cfg.Policy(),
		LocalMySQLAddr: cfg.MySQL.Addr, MySQLAddr: cfg.MySQLAdvertise(), RaftAddr: node.Addr(),
		AdminAddr: advertised(cfg.Admin.Listen, cfg.MySQLAdvertise()), ReplUser: cfg.MySQL.ReplUser,
		ReplPassword: secrets.ReplPassword,
		SemiSync:     mysqlctl.SemiSyncConfig{Async: cfg.MySQL.SemiSync == "async", Acks: cfg.MySQL.SemiSyncAcks},
		MySQLPIDFile: cfg.MySQL.PIDFile,
		BinlogTool:   cfg.MySQL.BinlogTool,
		XPort:        uint16(cfg.MySQL.XPort),
		Log:          log, Registry: reg, Dial: agent.MySQLDialer(dial), Raft: node, Gossip: g,
		LeaseClient: adminapi.NewClient("", leaseTLS(raftTLS), 5*time.Second),
		Publishers:  publishers,
		Backup:      backups, BinlogArchive: archive,
		BinlogDir: cfg.Backup.Binlogs.Dir,
		Readiness: readiness,
		Reseed: agent.ReseedOptions{
			Local: mysqlctl.Config{Addr: cfg.MySQL.Addr, User: cfg.MySQL.User, Password: secrets.MySQLPassword,
				ConnectTimeout: cfg.MySQL.ConnectTimeout, ReadTimeout: cfg.MySQL.ReadTimeout},
			Service: service,
			DataDir: cfg.MySQL.DataDir, TmpDir: cfg.Reseed.TmpDir, MaxMiBPerSecond: cfg.Reseed.MaxMiBPerSecond,
			// No timeout: a backup stream lasts as long as the copy.
			Client: adminapi.NewClient("", leaseTLS(raftTLS), 0),
		},
		// A re-seed from the store (backup.reseed_from_backup).
		BackupRestorer: restorer,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin.listen: %w", err)
	}
	if raftTLS != nil {
		ln = tls.NewListener(ln, agent.AdminTLS(raftTLS))
	}
	srv := &http.Server{Handler: a.Handler(agent.AdminAuth{Token: secrets.AdminToken, Peers: raftTLS}, reg), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	log.Info("agent started", "cluster", cfg.Cluster, "mysql", cfg.MySQL.Addr, "raft", node.Addr(),
		"gossip", g.AdvertiseAddr().String(), "admin", ln.Addr().String())
	err = a.Run(ctx)
	leaveCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if lerr := g.Leave(leaveCtx); lerr != nil {
		log.Warn("leaving gossip failed", "err", lerr)
	}
	return err
}

// leaseTLS is how this agent calls the leader's admin API: with its own certificate, trusting
// the cluster CA; nil (plain HTTP) when the cluster runs without TLS.
func leaseTLS(raftTLS *tls.Config) *tls.Config {
	if raftTLS == nil {
		return nil
	}
	return peertls.Client(raftTLS)
}

// advertised turns a listen address with a wildcard host into one peers can dial, using the host
// of another advertised address of the same machine.
func advertised(listen, sameHost string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || (host != "" && host != "0.0.0.0" && host != "::") {
		return listen
	}
	h, _, err := net.SplitHostPort(sameHost)
	if err != nil {
		return listen
	}
	return net.JoinHostPort(h, port)
}

func splitPort(addr string) (string, int, error) {
	host, port, err := hostport.Split(addr)
	return host, int(port), err
}

func newLogger(level, format string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}
