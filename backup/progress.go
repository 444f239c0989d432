package backup

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the backup metrics, on the registry the agent passes in.
type Metrics struct {
	bytes       *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	lastSuccess prometheus.Gauge
	failures    *prometheus.CounterVec
}

// NewMetrics registers the backup metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Subsystem: "backup", Name: "bytes_total",
			Help: "Compressed bytes moved to (upload) or from (download) the backup store."}, []string{"direction"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "shoal", Subsystem: "backup", Name: "duration_seconds",
			Help:    "How long backups and restores took, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(10, 2, 12)}, []string{"operation"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "shoal", Subsystem: "backup", Name: "last_success_timestamp_seconds",
			Help: "When this member's last backup completed (its manifest written), in Unix seconds; 0 before the first."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shoal", Subsystem: "backup", Name: "failures_total",
			Help: "Backups and restores that failed."}, []string{"operation"}),
	}
	reg.MustRegister(m.bytes, m.duration, m.lastSuccess, m.failures)
	return m
}

// done records one finished operation ("backup" or "restore").
func (m *Metrics) done(op string, began, now time.Time, err error) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(op).Observe(now.Sub(began).Seconds())
	if err != nil {
		m.failures.WithLabelValues(op).Inc()
		return
	}
	if op == "backup" {
		m.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	}
}

func (m *Metrics) moved(direction string, n int) {
	if m != nil {
		m.bytes.WithLabelValues(direction).Add(float64(n))
	}
}

// progress counts the bytes of a running backup or restore and logs them, with the rate and an
// estimate of the time left, every interval.
type progress struct {
	log      *slog.Logger
	what     string
	total    int64 // expected bytes; 0 when unknown
	interval time.Duration
	n        atomic.Int64
	begin    time.Time
}

func (p *progress) add(n int) { p.n.Add(int64(n)) }

// run logs until ctx ends.
func (p *progress) run(ctx context.Context) {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n := p.n.Load()
			rate, eta := rateAndETA(n, p.total, now.Sub(p.begin))
			attrs := []any{"bytes", n, "mib_per_second", float64(int64(rate/(1<<20)*10)) / 10}
			if p.total > 0 {
				attrs = append(attrs, "expected_bytes", p.total)
			}
			if eta >= 0 {
				attrs = append(attrs, "eta", eta.Round(time.Second))
			}
			p.log.Info(p.what+" progress", attrs...)
		}
	}
}

// rateAndETA is the average rate in bytes per second after n bytes in elapsed, and the time
// left to reach total at that rate: -1 when there is no telling (no total, no rate yet), 0 once
// the total is passed (an estimate that was short).
func rateAndETA(n, total int64, elapsed time.Duration) (float64, time.Duration) {
	if elapsed <= 0 {
		return 0, -1
	}
	rate := float64(n) / elapsed.Seconds()
	switch {
	case total <= 0 || rate <= 0:
		return rate, -1
	case n >= total:
		return rate, 0
	}
	return rate, time.Duration(float64(total-n) / rate * float64(time.Second))
}
