package agent

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/agent/health"
)

// metrics are the agent's Prometheus series, registered on an injected registry.
type metrics struct {
	epoch        prometheus.Gauge
	leader       prometheus.Gauge
	role         *prometheus.GaugeVec // observed role, 1 for the current one
	desiredRole  *prometheus.GaugeVec
	failovers    *prometheus.CounterVec
	fences       *prometheus.CounterVec
	loopDuration prometheus.Histogram
	lag          prometheus.Gauge
	peers        *prometheus.GaugeVec
	lease        prometheus.Gauge
	commitWait   prometheus.Gauge
	commitStalls *prometheus.CounterVec
	// decisions counts each change of the node's and the cluster's reason code.
	decisions          *prometheus.CounterVec
	publishErrors      *prometheus.CounterVec
	leaderTaskRestarts *prometheus.CounterVec

	// The codes and the stall of the last pass, to count changes; touched only by the loop
	// goroutine.
	lastCodes [2]ha.Code
	lastStall health.CommitStall
}

var roles = []string{"primary", "replica", "fenced", "unknown"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		epoch:  prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "shoal", Name: "epoch", Help: "Epoch of the committed cluster record."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "shoal", Name: "raft_leader", Help: "1 when this agent is the Raft leader."}),
		role: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "shoal", Name: "observed_role",
			Help: "1 for the role the local MySQL server has now."}, []string{"role"}),
		desiredRole: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "shoal", Name: "desired_role",
			Help: "1 for the role the cluster record gives the local server."}, []string{"role"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Name: "primary_changes_total",
			Help: "Primary changes this agent proposed as leader, by result."}, []string{"result"}),
		fences: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Name: "fences_total",
			Help: "Fences (and kills of a frozen server) this agent carried out, by the decision's reason code."}, []string{"reason"}),
		loopDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "shoal", Name: "loop_duration_seconds",
			Help: "Duration of one gather-decide-act pass.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "shoal", Name: "replication_lag_seconds",
			Help: "Replication lag of the local server; -1 when unknown."}),
		peers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "shoal", Name: "peers",
			Help: "Members by gossip state."}, []string{"state"}),
		lease: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "shoal", Name: "primary_lease_seconds",
			Help: "Seconds left on this agent's primary lease; 0 when it holds none."}),
		commitWait: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "shoal", Name: "commit_stall_seconds",
			Help: "Seconds the primary's heartbeat commit in flight has waited (ha.commit_stall_timeout makes it a stall); 0 when none waits."}),
		commitStalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Name: "commit_stalls_total",
			Help: "Commit stalls this primary's agent detected, by kind (stalled: failover matter; no_ack: too few semi-sync replicas)."}, []string{"kind"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Name: "decisions_total",
			Help: "Decisions whose reason code changed from the pass before, by scope (node, cluster) and code."}, []string{"scope", "code"}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Name: "publish_errors_total",
			Help: "Failed publications, by publisher."}, []string{"publisher"}),
		leaderTaskRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Name: "leader_task_restarts_total",
			Help: "Leader tasks that stopped with an error and were started again, by task."}, []string{"task"}),
	}
	for _, c := range []prometheus.Collector{m.epoch, m.leader, m.role, m.desiredRole, m.failovers, m.fences,
		m.loopDuration, m.lag, m.peers, m.lease, m.commitWait, m.commitStalls, m.decisions, m.publishErrors, m.leaderTaskRestarts} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(obs ha.Observation, d ha.Decision, took time.Duration) {
	m.epoch.Set(float64(obs.Record.Epoch))
	m.leader.Set(boolFloat(obs.Leader))
	m.loopDuration.Observe(took.Seconds())
	desired := "replica"
	switch obs.Record.Primary {
	case obs.Self:
		desired = "primary"
	case "":
		desired = "fenced"
	}
	if d.Errant != "" {
		desired = "fenced"
	}
	observed, lag := "unknown", -1.0
	if obs.Local.Up {
		st := obs.Local.Status
		switch {
		case st.Replica != nil:
			observed = "replica"
			if st.Replica.Lag != nil {
				lag = st.Replica.Lag.Seconds()
			}
		case st.Writable():
			observed, lag = "primary", 0
		default:
			observed = "fenced"
		}
	}
	for _, r := range roles {
		m.role.WithLabelValues(r).Set(boolFloat(r == observed))
		m.desiredRole.WithLabelValues(r).Set(boolFloat(r == desired))
	}
	m.lag.Set(lag)
	counts := map[ha.PeerState]int{}
	for _, p := range obs.Peers {
		counts[p.State]++
	}
	for _, s := range []ha.PeerState{ha.PeerAlive, ha.PeerSuspect, ha.PeerDead, ha.PeerLeft} {
		m.peers.WithLabelValues(string(s)).Set(float64(counts[s]))
	}
	m.lease.Set(max(0, obs.LeaseUntil.Sub(obs.Now).Seconds()))
	m.commitWait.Set(commitWait(obs).Seconds())
	if d.CommitStall != "" && d.CommitStall != m.lastStall {
		m.commitStalls.WithLabelValues(string(d.CommitStall)).Inc()
	}
	m.lastStall = d.CommitStall
	for i, code := range [2]ha.Code{d.NodeReason.Code, d.ClusterReason.Code} {
		if code != "" && code != m.lastCodes[i] {
			m.decisions.WithLabelValues([2]string{"node", "cluster"}[i], string(code)).Inc()
		}
		m.lastCodes[i] = code
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
