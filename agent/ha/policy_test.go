package ha

import (
	"strings"
	"testing"
	"time"
)

func TestPolicyValidate(t *testing.T) {
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatalf("default policy: %v", err)
	}
	tests := []struct {
		name   string
		change func(p *Policy)
		want   string
	}{
		{"lease shorter than three ticks lapses between renewals", func(p *Policy) { p.Lease = 2 * p.Tick }, "3 x ha.tick"},
		{"margin shorter than the time to notice and fence", func(p *Policy) { p.PromotionMargin = p.Tick }, "2 x ha.tick"},
		{"negative drift", func(p *Policy) { p.MaxClockDrift = -time.Millisecond }, "ha.max_clock_drift"},
		{"zero tick", func(p *Policy) { p.Tick = 0 }, "ha.tick must be positive"},
		{"negative acks", func(p *Policy) { p.SemiSyncAcks = -1 }, "ha.semi_sync_acks"},
		{"zero detection timeout", func(p *Policy) { p.DetectionTimeout = 0 }, "ha.detection_timeout must be positive"},
		{"zero lease", func(p *Policy) { p.Lease = 0 }, "ha.lease must be positive"},
		{"zero margin", func(p *Policy) { p.PromotionMargin = 0 }, "ha.promotion_margin must be positive"},
		// With no margin the old lease, stretched by drift, may outlast the promotion wait.
		{"zero margin lets a new primary open before the old lease ends", func(p *Policy) { p.PromotionMargin = 0 },
			"must be < ha.lease + ha.max_clock_drift + ha.promotion_margin"},
		{"negative cooldown", func(p *Policy) { p.FailoverCooldown = -time.Second }, "ha.failover_cooldown must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			tt.change(&p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error about %q", err, tt.want)
			}
		})
	}
}
