package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// commitProbe writes heartbeats through the local server's commit path (binlog, semi-sync)
// while it is the writable primary, one write at a time, on a goroutine of its own: a stalled
// commit must never hold up the loop, which may have to fence that very server. The loop reads
// since when the write in flight has waited; the decision judges it.
type commitProbe struct {
	interval time.Duration
	write    func(ctx context.Context, at time.Time) error
	now      func() time.Time
	log      *slog.Logger

	mu     sync.Mutex
	active bool
	epoch  uint64
	// gen changes whenever the probe stops or the epoch changes: a write begun before must not
	// clear the clock of the writes after it.
	gen     uint64
	waiting time.Time // when the write in flight began; zero when none is
	lastErr string
}

// observe tells the probe whether the local server is the writable primary of epoch, and
// returns when the write in flight began (zero when none is). Only the loop calls it.
func (p *commitProbe) observe(active bool, epoch uint64) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if active != p.active || epoch != p.epoch {
		p.active, p.epoch = active, epoch
		p.gen++
		p.waiting = time.Time{}
	}
	return p.waiting
}

// run writes one heartbeat per interval while active, until ctx ends.
func (p *commitProbe) run(ctx context.Context) {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.mu.Lock()
		active, gen := p.active, p.gen
		start := p.now()
		if active {
			p.waiting = start
		}
		p.mu.Unlock()
		if !active {
			continue
		}
		err := p.write(ctx, start)
		p.mu.Lock()
		if p.gen == gen {
			// An error ends the wait too: the commit path answered, if only with an error (a
			// fence killed the write, the driver's read timeout ended it). A stall that goes on
			// shows again in the next write.
			p.waiting = time.Time{}
		}
		// A failure is logged when it changes, not once per interval.
		text := ""
		if err != nil {
			text = err.Error()
		}
		report := text != "" && text != p.lastErr
		p.lastErr = text
		p.mu.Unlock()
		if report && ctx.Err() == nil {
			p.log.Warn("heartbeat write failed", "err", err)
		}
	}
}
