package ha

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/shoal-db/shoal/agent/health"
	"github.com/shoal-db/shoal/consensus/record"
)

// Rolling is the Raft leader's replacement of the pods a StatefulSet update left on an old
// revision, when the StatefulSet's updateStrategy is OnDelete: its controller then recreates a
// deleted pod on the new revision but deletes none itself. The leader deletes the replicas' pods
// one at a time, each only while every member serves, then switches the primary over to an
// updated replica, and deletes the old primary's pod last, as a replica. Roll is pure, like Heal;
// agent/kube gathers the observation and carries out the one action.

// Rolling codes: what the leader decided about an update of the StatefulSet (Roll, agent/kube); TestEveryRollCodeIsTested reads them here.
const (
	CodeRollDelete        Code = "roll_delete"         // an outdated replica's pod goes, its StatefulSet recreates it on the new revision
	CodeRollSwitchover    Code = "roll_switchover"     // only the primary's pod is outdated: a switchover to an updated replica comes first
	CodeRollNoTarget      Code = "roll_no_target"      // only the primary's pod is outdated, and no updated replica is caught up
	CodeRollWait          Code = "roll_wait"           // a member does not serve yet (a new pod starting, a failover, a switchover)
	CodeRollRateLimited   Code = "roll_rate_limited"   // the last action was less than kubernetes.roll.min_interval ago
	CodeRollBelowMajority Code = "roll_below_majority" // one member down would leave no majority: an operator deletes the pods
	CodeRollNoMajority    Code = "roll_no_majority"    // this leader does not reach a majority: it may be the one cut off
	CodeRollPaused        Code = "roll_paused"
	CodeRollNotOnDelete   Code = "roll_not_on_delete" // the StatefulSet's own controller rolls it (updateStrategy RollingUpdate)
)

// RollPolicy is what kubernetes.roll.* allows.
type RollPolicy struct {
	// MinInterval is the least time between two actions (a deletion or a switchover request)
	// this leader starts (kubernetes.roll.min_interval).
	MinInterval time.Duration
	// MaxLag is the most a switchover target may lag behind the primary (dns.max_lag): the
	// switchover waits for it to apply everything, and the primary is fenced meanwhile.
	MaxLag time.Duration
}

// RollPod is one member's pod as the leader's informer shows it.
type RollPod struct {
	Name string
	// UID is the deletion's precondition: a pod recreated since is another pod.
	UID string
	// Revision is the pod's controller-revision-hash label: the StatefulSet revision it was made
	// from.
	Revision    string
	Ready       bool
	Terminating bool
}

// RollObservation is what the leader knows when it judges an update of the StatefulSet.
type RollObservation struct {
	Now    time.Time
	Record record.Record
	// Peers and Servers are the gossip view and the leader's own probes, by member id.
	Peers   map[string]Peer
	Servers map[string]Server
	// Pods are the members' pods by member id; a member whose pod does not exist is absent.
	Pods map[string]RollPod
	// UpdateRevision is the StatefulSet's status.updateRevision once its controller has observed
	// the current spec; empty until then.
	UpdateRevision string
	// OnDelete is set when the StatefulSet's updateStrategy is OnDelete.
	OnDelete bool
	// Majority is set when this leader reaches a majority of the members right now.
	Majority bool
	Memory   RollMemory
}

// RollMemory carries state between passes.
type RollMemory struct {
	// LastAction is when this leader last deleted a pod or asked for a switchover (the rate
	// limit).
	LastAction time.Time
	// Deleted is the UID of the pod this leader last deleted: while a member's pod still has it,
	// the informer has not seen the deletion yet, and the member counts as being replaced.
	Deleted string
}

// RollAction is one step: a pod deletion, or a switchover request when SwitchoverTo is set.
type RollAction struct {
	Member string
	Pod    string
	// UID is the precondition of the pod's deletion.
	UID string
	// SwitchoverTo asks the record for a switchover of the primary Member to this member; no pod
	// is deleted.
	SwitchoverTo string
}

// Kind names the action for metrics.
func (a RollAction) Kind() string {
	if a.SwitchoverTo != "" {
		return "switchover"
	}
	return "delete_pod"
}

// RollDecision is at most one action, and why. Member names the member the reason is about
// (empty when it is about the cluster).
type RollDecision struct {
	Action *RollAction
	Member string
	Reason Reason
	Memory RollMemory
	// Outdated is how many members' pods are not on the update revision.
	Outdated int
}

// Roll decides the next step of an update. Its rules: nothing while no pod is outdated, the
// StatefulSet is not OnDelete, this leader does not reach a majority, or the cluster is paused;
// nothing while any member does not serve (its pod missing, terminating, not Ready or the one
// just deleted; its agent or MySQL down; the primary not writable; a replica not replicating from
// it) or a switchover is pending; at most one action per MinInterval; never a deletion that
// leaves fewer serving members than a majority; never the recorded primary's pod: the outdated
// replicas go first, one at a time, then a switchover to a caught-up updated replica, and the old
// primary's pod goes once the record names another primary and it serves as a replica.
func Roll(obs RollObservation, p RollPolicy) RollDecision {
	r := obs.Record
	d := RollDecision{Memory: obs.Memory}
	if r.Cluster == "" || obs.UpdateRevision == "" {
		return d
	}
	var outdated []string
	for _, id := range r.MemberIDs() {
		if pod, ok := obs.Pods[id]; ok && pod.Revision != obs.UpdateRevision {
			outdated = append(outdated, id)
		}
	}
	d.Outdated = len(outdated)
	if len(outdated) == 0 {
		return d
	}
	switch {
	case !obs.OnDelete:
		d.Reason = because(CodeRollNotOnDelete, "%d pods are not on revision %s, but the StatefulSet's updateStrategy is not OnDelete: its controller replaces them, by ordinal",
			len(outdated), obs.UpdateRevision)
		return d
	case !obs.Majority:
		d.Reason = because(CodeRollNoMajority, "this leader does not reach a majority of the members: it may be the one cut off, so no pod goes for the update")
		return d
	case r.Paused:
		d.Reason = because(CodeRollPaused, "the cluster is paused: no pod goes for the update to revision %s", obs.UpdateRevision)
		return d
	}
	if why := notServing(obs); why != "" {
		d.Reason = because(CodeRollWait, "%d pods are not on revision %s, but %s: the next goes once every member serves",
			len(outdated), obs.UpdateRevision, why)
		return d
	}
	if last := d.Memory.LastAction; !last.IsZero() && obs.Now.Sub(last) < p.MinInterval {
		d.Reason = because(CodeRollRateLimited, "%d pods are not on revision %s, but the last step was %s ago, less than kubernetes.roll.min_interval (%s)",
			len(outdated), obs.UpdateRevision, obs.Now.Sub(last).Round(time.Second), p.MinInterval)
		return d
	}
	if n := len(r.Members); n-1 < n/2+1 {
		d.Reason = because(CodeRollBelowMajority, "%d pods are not on revision %s, but with %d members one pod down leaves no majority: delete them yourself, the replicas first",
			len(outdated), obs.UpdateRevision, n)
		return d
	}
	// Highest id first, as the StatefulSet's own controller goes.
	for _, id := range slices.Backward(outdated) {
		if id == r.Primary {
			continue
		}
		pod := obs.Pods[id]
		d.Member, d.Action = id, &RollAction{Member: id, Pod: pod.Name, UID: pod.UID}
		d.Reason = because(CodeRollDelete, "%s's pod %s is on revision %s, not %s, and every member serves: evicting it (as its PodDisruptionBudget allows) for its StatefulSet to recreate it (%d outdated)",
			id, pod.Name, pod.Revision, obs.UpdateRevision, len(outdated))
		d.Memory.LastAction, d.Memory.Deleted = obs.Now, pod.UID
		return d
	}
	d.Member = r.Primary
	to := switchoverTarget(obs, p)
	if to == "" {
		d.Reason = because(CodeRollNoTarget, "only the primary %s's pod is not on revision %s, and no updated replica lags less than %s: no switchover yet",
			r.Primary, obs.UpdateRevision, p.MaxLag)
		return d
	}
	d.Action = &RollAction{Member: r.Primary, Pod: obs.Pods[r.Primary].Name, SwitchoverTo: to}
	d.Reason = because(CodeRollSwitchover, "only the primary %s's pod is not on revision %s: switching over to %s first, its pod goes once it is a replica",
		r.Primary, obs.UpdateRevision, to)
	d.Memory.LastAction = obs.Now
	return d
}

// notServing says why a member does not serve in its recorded role, or a step of the record is
// under way; "" when every member serves.
func notServing(obs RollObservation) string {
	r := obs.Record
	switch {
	case r.Switchover != nil:
		return "a switchover is pending"
	case r.Primary == "":
		return "no primary is recorded"
	}
	for _, id := range r.MemberIDs() {
		pod, ok := obs.Pods[id]
		peer, srv := obs.Peers[id], obs.Servers[id]
		rep := peer.Report
		switch {
		case !ok:
			return id + " has no pod"
		case pod.UID == obs.Memory.Deleted:
			return id + "'s pod was just deleted"
		case pod.Terminating:
			return id + "'s pod is terminating"
		case !pod.Ready:
			return id + "'s pod is not Ready"
		case !peer.Alive():
			return id + "'s agent is not alive in gossip"
		case rep.Draining:
			return id + "'s agent is shutting down"
		case rep.Reseeding:
			return id + " is being re-seeded"
		case rep.Errant:
			return id + " holds errant transactions"
		case !srv.Up:
			return id + "'s MySQL is unreachable"
		case id == r.Primary && !srv.Status.Writable():
			return "the primary " + id + " is not writable"
		case id != r.Primary && srv.Status.Writable():
			return id + " is writable but not the primary"
		case id != r.Primary && (rep.Role != health.RoleReplica || rep.Source != r.Primary || !rep.IOConnected || !rep.SQLRunning):
			return fmt.Sprintf("%s does not replicate from the primary %s", id, r.Primary)
		}
	}
	return ""
}

// switchoverTarget is the updated replica lagging least, within MaxLag (lowest id of equals);
// "" when there is none.
func switchoverTarget(obs RollObservation, p RollPolicy) string {
	r := obs.Record
	var ids []string
	for _, id := range r.MemberIDs() {
		lag := obs.Peers[id].Report.LagMillis
		if id != r.Primary && obs.Pods[id].Revision == obs.UpdateRevision && lag >= 0 && time.Duration(lag)*time.Millisecond <= p.MaxLag {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	return slices.MinFunc(ids, func(a, b string) int {
		return cmp.Or(cmp.Compare(obs.Peers[a].Report.LagMillis, obs.Peers[b].Report.LagMillis), cmp.Compare(a, b))
	})
}
