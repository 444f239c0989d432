package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shoal-db/shoal/agent/ha"
	"github.com/shoal-db/shoal/consensus/record"
)

// A prepare (act.go) can take as long as the candidate needs to apply its relay log, or a
// recovery to copy transactions: up to Options.PrepareTimeout. The leader's loop must not wait
// that long, blind to everything else (a candidate that dies meanwhile, an old primary that
// comes back, a member to fence or heal). So a pass waits for its prepare one tick at most,
// which a prepare that finds nothing to wait for fits in (tens of ms), and proposes in the same
// pass as before; a longer one goes on in the background. Later passes decide again from what
// they observe: one that decides the same preparation leaves it running, one that decides
// another (or none) cancels it. When it ends, the next pass prepares once more, now quickly,
// since what it waited for is done, and only a prepare that ended within its own pass ever leads
// to a proposal. So the proposal follows its prepare in one pass, as the model has it.

// preparation is a prepare running past the pass that started it; loop goroutine only.
type preparation struct {
	key       preparationKey
	cancel    context.CancelFunc
	cancelled bool // the leader moved on: it only finishes, and counts for no decision
	done      chan struct{}
	err       error // set before done is closed
}

// preparationKey tells one preparation from another: the sets it waits for, copies and stops
// change as it makes progress, so they are not part of it. Nor is the recovery: once it copied
// everything, the next decision for the same candidate needs none, and cancelling it then cut
// its bookkeeping short (a chaos run: MariaDB's gtid_slave_pos left behind, and every later wait
// for the copied transactions ran into the prepare timeout).
type preparationKey struct {
	epoch     uint64
	candidate string
}

func keyOf(rec record.Record, d ha.Decision) preparationKey {
	return preparationKey{epoch: rec.Epoch, candidate: d.Prepare}
}

// prepareInPass runs the prepare d asks for and reports whether the candidate is ready for the
// proposal of this pass. It is not ready, with no error, while a prepare goes on in the
// background; the failure of one that ended there is reported by the first pass that decides
// the same preparation again.
func (a *Agent) prepareInPass(ctx context.Context, rec record.Record, addr string, d ha.Decision, quarantine []string) (bool, error) {
	key := keyOf(rec, d)
	if p := a.preparing; p != nil {
		select {
		case <-p.done:
			a.preparing = nil
			if p.key == key && !p.cancelled && p.err != nil {
				// A later pass tries again, as after a failure within a pass.
				return false, fmt.Errorf("in the background: %w", p.err)
			}
		default:
			if p.key == key && !p.cancelled {
				return false, nil
			}
			if !a.endPreparation() {
				return false, nil // the one cancelled still finishes; a later pass starts this one
			}
		}
	}
	pctx, cancel := context.WithCancel(a.backgroundCtx)
	p := &preparation{key: key, cancel: cancel, done: make(chan struct{})}
	a.background.Add(1)
	go func() {
		defer a.background.Done()
		defer cancel()
		p.err = a.prepare(pctx, rec, addr, d, quarantine)
		close(p.done)
		a.Trigger() // a pass that finds it ended proposes, or reports its failure
	}()
	wait := time.NewTimer(a.opts.Policy.Tick)
	defer wait.Stop()
	select {
	case <-p.done:
		return p.err == nil, p.err
	case <-wait.C:
	case <-ctx.Done():
	}
	a.preparing = p
	a.log.Info("preparing the candidate in the background", "candidate", d.Prepare, "epoch", rec.Epoch)
	return false, nil
}

// endPreparation cancels the prepare in the background, if any, and waits one tick at most for
// it to return; it reports whether none runs any more. Statements and the log copy follow the
// cancel at once, but some bookkeeping outlives it on purpose (MariaDB's gtid_slave_pos after a
// copy, MySQL's super_read_only put back), and against a frozen server that can take a read
// timeout: the loop does not wait for that. Until it returned it stays in a.preparing, so no
// two prepares ever work on the servers at once.
func (a *Agent) endPreparation() bool {
	p := a.preparing
	if p == nil {
		return true
	}
	p.cancel()
	p.cancelled = true
	wait := time.NewTimer(a.opts.Policy.Tick)
	defer wait.Stop()
	select {
	case <-p.done:
	case <-wait.C:
		return false
	}
	a.preparing = nil
	if p.err != nil && !errors.Is(p.err, context.Canceled) {
		a.log.Info("a prepare in the background ended with an error after the cluster moved on", "candidate", p.key.candidate, "err", p.err)
	}
	return true
}
