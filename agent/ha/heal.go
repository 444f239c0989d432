package ha

import (
	"fmt"
	"time"

	"github.com/shoal-db/shoal/consensus/record"
)

// Healing is the Raft leader's decision to replace a failed member's pod (and its volume) so its
// StatefulSet recreates it, and to force-delete a pod stuck Terminating on a lost node once its
// member is provably fenced. Heal is pure, like Decide; agent/kube gathers the observation and
// carries out the one action.

// Healing codes: what the leader decided about a failed member's pod (Heal, agent/kube); TestEveryHealCodeIsTested reads them here.
const (
	CodeHealDelete        Code = "heal_delete"         // a failed member's pod goes, its StatefulSet recreates it
	CodeHealDeleteVolume  Code = "heal_delete_volume"  // its volume too: the data is unusable or on a lost node
	CodeHealForceDelete   Code = "heal_force_delete"   // a fenced member's pod stuck Terminating on a NotReady node
	CodeHealForceDisabled Code = "heal_force_disabled" // it would be force-deleted, but kubernetes.force_delete_terminating is off
	CodeHealStuckUnfenced Code = "heal_stuck_unfenced" // stuck Terminating, but its member is not provably fenced yet
	CodeHealVolumeKept    Code = "heal_volume_kept"    // only a new volume helps, and kubernetes.delete_volume is off
	CodeHealPrimary       Code = "heal_primary"        // failed, but the writable primary: a failover must move it first
	CodeHealInFlight      Code = "heal_in_flight"      // another member's pod is being replaced
	CodeHealRateLimited   Code = "heal_rate_limited"   // the last deletion was less than kubernetes.heal.min_interval ago
	CodeHealBelowMajority Code = "heal_below_majority" // fewer healthy members than a majority would be left
	CodeHealNoMajority    Code = "heal_no_majority"    // this leader does not reach a majority: it may be the one cut off
	CodeHealPaused        Code = "heal_paused"
)

// HealPolicy is what kubernetes.heal.*, kubernetes.delete_volume and
// kubernetes.force_delete_terminating allow.
type HealPolicy struct {
	// Grace is how long a member must stay failed, and a recreated pod's agent have run, before
	// its pod is deleted (kubernetes.heal.grace).
	Grace time.Duration
	// StartGrace bounds how long a recreated pod may take to start its agent (images pulled,
	// init containers run) before its Grace counts anyway, and how long a failed member may be
	// without a pod while its StatefulSet recreates it (kubernetes.heal.start_grace).
	StartGrace time.Duration
	// MinInterval is the least time between two deletions this leader starts
	// (kubernetes.heal.min_interval).
	MinInterval time.Duration
	// DeleteVolume lets a member whose data is unusable, or on a lost node, lose its
	// PersistentVolumeClaims with its pod (kubernetes.delete_volume): it re-seeds from a donor.
	DeleteVolume bool
	// ForceDeleteTerminating lets a fenced member's pod stuck Terminating on a NotReady node be
	// deleted without waiting for its kubelet (kubernetes.force_delete_terminating).
	ForceDeleteTerminating bool
	// RebuildErrant makes errant transactions a failure (ha.rebuild_errant).
	RebuildErrant bool
	// LeaseBound is the longest a primary lease can outlast the epoch that replaced its holder,
	// as the holder's clock may stretch it: ha.lease + ha.max_clock_drift. Every lease is last
	// granted before the next epoch commits (a failover waits it out, a switchover releases it).
	LeaseBound time.Duration
}

// Pod is one member's pod as the leader's informer shows it.
type Pod struct {
	Name string
	// UID is the deletion's precondition: a pod recreated since is another pod.
	UID     string
	Node    string
	Created time.Time
	// Started is when its agent container started (zero until it runs): a recreated pod's grace
	// counts from there, not from init containers that fill an empty data dir.
	Started time.Time
	// NodeReady is the Ready condition of the pod's node.
	NodeReady bool
	// Terminating is when the pod's grace period ends (its deletionTimestamp); zero when it is
	// not being deleted.
	Terminating time.Time
	// Claims are the PersistentVolumeClaims its volumes use.
	Claims []string
	// Replaced is the UID of an earlier pod of this member that a leader deleted to heal it, as
	// its claims record it (HealAction.Mark): the evidence outlives that leader.
	Replaced string
}

// HealObservation is what the leader knows when it judges the members' pods.
type HealObservation struct {
	Now    time.Time
	Record record.Record
	// Peers and Servers are the gossip view and the leader's own probes, by member id.
	Peers   map[string]Peer
	Servers map[string]Server
	// Pods are the members' pods by member id (pods are named by member id); a member whose pod
	// does not exist is absent.
	Pods map[string]Pod
	// Majority is set when this leader reaches a majority of the members right now: a leader cut
	// off from the others sees every member as failed.
	Majority bool
	Memory   HealMemory
}

// HealMemory carries state between passes.
type HealMemory struct {
	// FailingSince is when each failed member was first seen failed; a member that recovers
	// leaves it.
	FailingSince map[string]time.Time
	// LastDeletion is when this leader last started a deletion (the rate limit).
	LastDeletion time.Time
}

// HealAction is one deletion.
type HealAction struct {
	Member string
	Pod    string
	// UID is the precondition of the pod's deletion.
	UID string
	// Force deletes with a grace period of zero: the kubelet is not waited for.
	Force bool
	// Claims are deleted first (the API server holds them until the pod is gone, and the
	// StatefulSet waits for them to go before it recreates the pod); nil keeps the volume.
	Claims []string
	// Mark records the deleted pod's UID on the claims it keeps, once the pod is deleted: a
	// recreated pod that fails again means the data, not the pod, is the cause, whichever agent
	// leads by then.
	Mark []string
}

// Kind names the action for metrics and Events.
func (a HealAction) Kind() string {
	kind := "delete_pod"
	if a.Force {
		kind = "force_delete_pod"
	}
	if len(a.Claims) > 0 {
		kind += "_and_volume"
	}
	return kind
}

// HealDecision is at most one deletion, and why. Member names the member the reason is about
// (empty when it is about the cluster, or there is nothing to say).
type HealDecision struct {
	Action *HealAction
	Member string
	Reason Reason
	Memory HealMemory
	// Unmark are the claims whose Mark has served: their member works again, so a later
	// failure is news, not the data's.
	Unmark []string
}

// Failure classes a member is healed for.
type failure string

const (
	failNone        failure = ""
	failDown        failure = "mysqld_down"
	failReplication failure = "replication_broken"
	failErrant      failure = "errant"
)

// Heal decides what, if anything, to delete in this pass. Its rules: nothing from a leader that
// does not reach a majority, nothing while paused (said about the member it would heal); never
// the recorded or a writable primary; a pod stuck Terminating on a NotReady node is
// force-deleted only when its member is fenced (another
// primary's epoch is committed and the lease bound has passed since) and force deletion is
// allowed; otherwise one deletion at a time, at most one per MinInterval, of a member failed for
// Grace, and only when the healthy members left are still a majority.
func Heal(obs HealObservation, p HealPolicy) HealDecision {
	r := obs.Record
	d := HealDecision{Memory: HealMemory{FailingSince: map[string]time.Time{}, LastDeletion: obs.Memory.LastDeletion}}
	type failed struct {
		class failure
		why   string
	}
	failures := map[string]failed{}
	healthy := 0
	for _, id := range r.MemberIDs() {
		f, why := classify(obs, p, id)
		if f == failNone {
			if obs.Servers[id].Up && obs.Peers[id].Alive() {
				healthy++
				// The pod that replaced a failed one works. (A draining agent is no such
				// proof: its server may still be down.)
				if pod := obs.Pods[id]; pod.Replaced != "" && pod.Terminating.IsZero() {
					d.Unmark = append(d.Unmark, pod.Claims...)
				}
			}
			continue
		}
		failures[id] = failed{f, why}
		since, ok := obs.Memory.FailingSince[id]
		if !ok {
			since = obs.Now
		}
		d.Memory.FailingSince[id] = since
	}
	switch {
	case r.Cluster == "":
		return d
	case !obs.Majority:
		d.Reason = because(CodeHealNoMajority, "this leader does not reach a majority of the members: it may be the one cut off, so it deletes nothing")
		return d
	}
	if healStuck(obs, p, &d) {
		return d
	}
	inFlight := ""
	for _, id := range r.MemberIDs() {
		pod, ok := obs.Pods[id]
		switch {
		case !ok:
			// Its StatefulSet is recreating it, unless that has taken longer than a start
			// may: then the member is reported failed but holds no other's healing.
			gone := d.Memory.FailingSince[id]
			if d.Memory.LastDeletion.After(gone) {
				gone = d.Memory.LastDeletion
			}
			if _, failing := failures[id]; failing && obs.Now.Sub(gone) < p.StartGrace {
				inFlight = id + " has no pod yet"
			}
		case !pod.Terminating.IsZero():
			inFlight = id + "'s pod is terminating"
		}
	}
	for _, id := range r.MemberIDs() {
		f, isFailed := failures[id]
		why := f.why
		pod, hasPod := obs.Pods[id]
		if !isFailed || !hasPod || !pod.Terminating.IsZero() {
			continue
		}
		// A recreated pod gets its own grace to catch up, from its agent's start: init
		// containers may take long to fill an empty data dir, though not past StartGrace.
		since := d.Memory.FailingSince[id]
		if pod.Created.After(since) {
			since = pod.Created.Add(p.StartGrace)
			if !pod.Started.IsZero() && pod.Started.Before(since) {
				since = pod.Started
			}
		}
		if obs.Now.Sub(since) < p.Grace {
			continue
		}
		d.Member = id
		if id == r.Primary || writable(obs, id) {
			role := fmt.Sprintf("the primary of epoch %d", r.Epoch)
			if id != r.Primary {
				role = "writable"
			}
			d.Reason = because(CodeHealPrimary, "%s has failed (%s) but is %s: a failover or a fence must come before its pod may go", id, why, role)
			return d
		}
		if r.Paused {
			d.Reason = because(CodeHealPaused, "%s has failed (%s) for kubernetes.heal.grace, but the cluster is paused: its pod stays until it is resumed", id, why)
			return d
		}
		if inFlight != "" {
			d.Reason = because(CodeHealInFlight, "%s has failed (%s) but %s: one deletion at a time", id, why, inFlight)
			return d
		}
		if !d.Memory.LastDeletion.IsZero() && obs.Now.Sub(d.Memory.LastDeletion) < p.MinInterval {
			d.Reason = because(CodeHealRateLimited, "%s has failed (%s) but a pod was deleted %s ago, less than kubernetes.heal.min_interval (%s)",
				id, why, obs.Now.Sub(d.Memory.LastDeletion).Round(time.Second), p.MinInterval)
			return d
		}
		if need := len(r.Members)/2 + 1; healthy < need {
			d.Reason = because(CodeHealBelowMajority, "%s has failed (%s) but only %d of %d members are healthy, fewer than the %d a majority needs: "+
				"deleting pods would not bring them back", id, why, healthy, len(r.Members), need)
			return d
		}
		replaced := pod.Replaced != "" && pod.Replaced != pod.UID
		a := &HealAction{Member: id, Pod: pod.Name, UID: pod.UID}
		var volumeWhy string
		switch {
		case f.class == failErrant:
			volumeWhy = "its data holds errant transactions"
		case replaced:
			volumeWhy = "a recreated pod failed the same way, so its data is unusable"
		case !pod.NodeReady:
			volumeWhy = "its node " + pod.Node + " is not ready, and a node-bound volume would keep the new pod there"
		}
		switch {
		case volumeWhy != "" && p.DeleteVolume:
			a.Claims = pod.Claims
			d.Reason = because(CodeHealDeleteVolume, "%s has failed (%s) for kubernetes.heal.grace and %s: deleting its pod %s and its volume %v, to re-seed from a donor",
				id, why, volumeWhy, pod.Name, pod.Claims)
		case volumeWhy != "" && pod.NodeReady:
			d.Reason = because(CodeHealVolumeKept, "%s has failed (%s) and %s, but kubernetes.delete_volume is off: it stays fenced for an operator",
				id, why, volumeWhy)
			return d
		default:
			d.Reason = because(CodeHealDelete, "%s has failed (%s) for kubernetes.heal.grace: deleting its pod %s for its StatefulSet to recreate it", id, why, pod.Name)
		}
		if a.Claims == nil {
			a.Mark = pod.Claims
		}
		d.Action = a
		d.Memory.LastDeletion = obs.Now
		return d
	}
	return d
}

// healStuck handles a pod stuck Terminating on a NotReady node past its grace period: its
// kubelet cannot confirm the containers stopped, so only a member provably fenced may have its
// pod removed without that. It reports whether it decided.
func healStuck(obs HealObservation, p HealPolicy, d *HealDecision) bool {
	r := obs.Record
	for _, id := range r.MemberIDs() {
		pod, ok := obs.Pods[id]
		if !ok || pod.Terminating.IsZero() || pod.NodeReady || obs.Now.Before(pod.Terminating) {
			continue
		}
		d.Member = id
		fencedAt := r.LastPrimaryChange.Add(p.LeaseBound)
		switch {
		case r.Primary == "" || r.Primary == id:
			d.Reason = because(CodeHealStuckUnfenced, "%s's pod is stuck terminating on NotReady node %s, but no other primary's epoch is committed: "+
				"it is not provably fenced, so it stays", id, pod.Node)
		case obs.Now.Before(fencedAt):
			d.Reason = because(CodeHealStuckUnfenced, "%s's pod is stuck terminating on NotReady node %s; epoch %d names %s primary, "+
				"and any lease of %s ends by %s", id, pod.Node, r.Epoch, r.Primary, id, fencedAt.UTC().Format(time.RFC3339Nano))
		case writable(obs, id):
			d.Reason = because(CodeHealStuckUnfenced, "%s's pod is stuck terminating on NotReady node %s, but its MySQL answers writable: it is not fenced, so it stays",
				id, pod.Node)
		case r.Paused:
			d.Reason = because(CodeHealPaused, "%s's pod is stuck terminating on NotReady node %s and %s is fenced, but the cluster is paused: it stays until it is resumed",
				id, pod.Node, id)
		case !p.ForceDeleteTerminating:
			d.Reason = because(CodeHealForceDisabled, "%s's pod is stuck terminating on NotReady node %s and %s is fenced (epoch %d names %s primary, "+
				"its lease has run out), but kubernetes.force_delete_terminating is off: the pod stays until its node returns or an operator deletes it",
				id, pod.Node, id, r.Epoch, r.Primary)
		default:
			a := &HealAction{Member: id, Pod: pod.Name, UID: pod.UID, Force: true}
			vol := ""
			if p.DeleteVolume {
				a.Claims = pod.Claims
				vol = fmt.Sprintf(" and its volume %v (bound to the lost node)", pod.Claims)
			}
			d.Action = a
			d.Reason = because(CodeHealForceDelete, "%s's pod is stuck terminating on NotReady node %s and %s is fenced (epoch %d names %s primary, "+
				"its lease has run out): force-deleting the pod%s", id, pod.Node, id, r.Epoch, r.Primary, vol)
		}
		return true
	}
	return false
}

// writable reports whether the leader reads member id's MySQL as writable.
func writable(obs HealObservation, id string) bool {
	return obs.Servers[id].Up && obs.Servers[id].Status.Writable()
}

// classify tells whether member id has failed, and how, as the leader sees it. A member whose
// agent is re-seeding or shutting down is doing its own work.
func classify(obs HealObservation, p HealPolicy, id string) (failure, string) {
	peer, srv := obs.Peers[id], obs.Servers[id]
	if peer.Alive() && (peer.Report.Reseeding || peer.Report.Draining) {
		return failNone, ""
	}
	if !srv.Up {
		why := "its MySQL is unreachable"
		if srv.Err != "" {
			why += ": " + srv.Err
		}
		return failDown, why
	}
	if rep := srv.Status.Replica; rep != nil && id != obs.Record.Primary {
		switch {
		case rep.LastSQLErrno != 0 && !rep.SQLRunning:
			return failReplication, fmt.Sprintf("its applier stopped with error %d", rep.LastSQLErrno)
		case binlogsGone(rep.LastIOErrno) && !srv.Status.Executed.IsEmpty():
			// An empty server is re-seeded in place (decideReseed); one holding data cannot be.
			return failReplication, fmt.Sprintf("its receiver cannot get the binary logs it needs (error %d)", rep.LastIOErrno)
		}
	}
	if peer.Report.Errant && p.RebuildErrant {
		return failErrant, "it holds errant transactions and ha.rebuild_errant is on"
	}
	return failNone, ""
}
