package ha

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// reseedRetry is how long the leader waits before asking for another re-seed: the member's agent
// refuses a second one while the first runs, and a failed one (its agent not listening yet, say)
// is not retried at every pass.
const reseedRetry = 15 * time.Second

// binlogsGone tells the receiver errors of a source that no longer has the binary logs a replica
// needs: ER_MASTER_FATAL_ERROR_READING_BINLOG (MariaDB) and ER_SERVER_SOURCE_FATAL_ERROR_READING_BINLOG
// (MySQL). Others, such as a replication account not there yet at a cluster's start, pass.
func binlogsGone(errno int) bool { return errno == 1236 || errno == 13114 }

// decideReseed picks a member to re-seed while the primary is healthy: one whose server holds no
// transactions while the primary does (an empty data dir: a new member, a replaced disk) and
// whose receiver fails because the primary purged the binary logs it would need, or, with
// ha.rebuild_errant, one holding errant transactions (fenced already). An empty member that
// replicates is left to catch up: at a cluster's start every replica is empty for a moment. Its
// agent must be alive and its server up, since the agent runs the copy into it.
func decideReseed(obs Observation, p Policy, d *Decision) {
	r := obs.Record
	if !d.Memory.ReseedAt.IsZero() && obs.Now.Sub(d.Memory.ReseedAt) < reseedRetry {
		return
	}
	primary := obs.Servers[r.Primary].Status.Executed
	for _, id := range r.MemberIDs() {
		srv, peer := obs.Servers[id], obs.Peers[id]
		if id == r.Primary || !srv.Up || !peer.Alive() {
			continue
		}
		var code Code
		var why string
		switch {
		case srv.Status.Executed.IsEmpty() && !primary.IsEmpty() && srv.Status.Replica != nil && binlogsGone(srv.Status.Replica.LastIOErrno):
			code, why = CodeReseedBlank, fmt.Sprintf("it holds no transactions (an empty data dir) and replication cannot give them (receiver error %d)",
				srv.Status.Replica.LastIOErrno)
		case peer.Report.Errant && p.RebuildErrant:
			code, why = CodeReseedErrant, "it holds errant transactions and ha.rebuild_errant is on"
		default:
			continue
		}
		donor, unfit := pickDonor(obs, p, id)
		switch {
		case p.ReseedFromBackup == BackupReseedAlways:
			d.Reseed = &Reseed{Member: id, FromBackup: true}
			d.ClusterReason = because(CodeReseedBackup, "re-seeding %s from the newest backup (backup.reseed_from_backup is always): %s", id, why)
		case donor == "" && p.ReseedFromBackup == BackupReseedNoDonor:
			d.Reseed = &Reseed{Member: id, FromBackup: true}
			d.ClusterReason = because(CodeReseedBackup, "re-seeding %s from the newest backup: %s, and no member may donate: %s", id, why, strings.Join(unfit, ", "))
		case donor == "":
			d.ClusterReason = because(CodeReseedNoDonor, "%s needs a re-seed (%s) but no member may donate: %s", id, why, strings.Join(unfit, ", "))
			return
		default:
			d.Reseed = &Reseed{Member: id, Donor: donor}
			d.ClusterReason = because(code, "re-seeding %s from %s: %s", id, donor, why)
		}
		d.Memory.ReseedAt = obs.Now
		return
	}
}

// BackupReseed says when the leader re-seeds a member from the newest backup rather than from a
// donor (backup.reseed_from_backup). A backup costs no member any load but is older than a
// donor's copy, so the member has more to replicate afterwards.
type BackupReseed int

const (
	// BackupReseedNever: only donors; also what an agent without a backup store uses.
	BackupReseedNever BackupReseed = iota
	// BackupReseedNoDonor: from a backup when no member may donate (a cluster whose replicas all
	// need a copy, a member whose only peer is unfit).
	BackupReseedNoDonor
	// BackupReseedAlways: from a backup even when a member could donate.
	BackupReseedAlways
)

// pickDonor chooses whom member copies: the replica of the primary with the lowest lag among
// those the leader reaches whose agent is alive, that are neither errant, empty, being re-seeded
// nor shutting down, and that receive and apply from the primary with a known lag of at most ha.rebuild_max_donor_lag.
// The copy loads the donor, so the primary donates only when it is the only other member, or
// when no replica may, none is connected to acknowledge its commits, and none but errant ones
// receives from it (one that does, say just re-seeded, donates once it caught up): the primary
// cannot commit then anyway, and lends its data read-only (see borrowers). It returns "" and
// why each member is unfit when none is.
func pickDonor(obs Observation, p Policy, member string) (string, []string) {
	r := obs.Record
	donor, lag, others, receiving := "", int64(0), 0, 0
	var unfit []string
	for _, id := range r.MemberIDs() {
		if id == member || id == r.Primary {
			continue
		}
		others++
		rep := obs.Peers[id].Report
		if rep.Source == r.Primary && rep.IOConnected && !rep.Errant {
			receiving++
		}
		switch {
		case !obs.Servers[id].Up:
			unfit = append(unfit, id+": MySQL unreachable")
		case !obs.Peers[id].Alive():
			unfit = append(unfit, id+": agent not alive")
		case rep.Errant:
			unfit = append(unfit, id+": errant GTIDs")
		case rep.Draining:
			unfit = append(unfit, id+": shutting down")
		case rep.Reseeding:
			unfit = append(unfit, id+": being re-seeded")
		case obs.Servers[id].Status.Executed.IsEmpty():
			unfit = append(unfit, id+": holds no transactions")
		case rep.Source != r.Primary || !rep.IOConnected || !rep.SQLRunning || rep.LagMillis < 0:
			unfit = append(unfit, id+": not replicating from the primary")
		case time.Duration(rep.LagMillis)*time.Millisecond > p.RebuildMaxDonorLag:
			unfit = append(unfit, fmt.Sprintf("%s: lagging %dms", id, rep.LagMillis))
		case donor == "" || rep.LagMillis < lag:
			donor, lag = id, rep.LagMillis
		}
	}
	if donor == "" && (others == 0 || receiving == 0 && obs.Servers[r.Primary].Status.SemiSync.AcksMissing()) {
		return r.Primary, nil
	}
	return donor, unfit
}

// Rebuild is the leader's answer to `shoal rebuild member`: the re-seed to start, by the same
// donor rule as the automatic one, or why there is none. An operator may rebuild any replica
// (errant, broken, or healthy); never the primary, which must be switched away first.
func Rebuild(obs Observation, p Policy, member string) (Reseed, error) {
	r := obs.Record
	switch {
	case !obs.Leader:
		return Reseed{}, errors.New("only the Raft leader picks a donor")
	case r.Members[member].ID == "":
		return Reseed{}, fmt.Errorf("%q is not a member of cluster %s", member, r.Cluster)
	case member == r.Primary:
		return Reseed{}, fmt.Errorf("%s is the primary: switch over first", member)
	case r.Primary == "" || !obs.Servers[r.Primary].Up:
		return Reseed{}, errors.New("no serving primary: a re-seed copies a replica of one")
	case !obs.Peers[member].Alive() && member != obs.Self:
		return Reseed{}, fmt.Errorf("the agent of %s is not alive: it runs the copy", member)
	}
	donor, unfit := pickDonor(obs, p, member)
	if donor == "" {
		return Reseed{}, fmt.Errorf("no member may donate to %s: %s", member, strings.Join(unfit, ", "))
	}
	return Reseed{Member: member, Donor: donor}, nil
}
