// Package consensus is the Raft node every agent runs: it replicates the cluster record
// (package record) with hashicorp/raft, so every agent applies the same commands in the same
// order, and a primary change commits only with a majority.
//
// Decisions worth knowing:
//
//   - Storage: raft-boltdb (log and stable store) and file snapshots (two kept) in DataDir.
//     The record is tiny, so snapshots are cheap and taken often (DefaultSnapshotInterval).
//   - Timings: tuned for a LAN (Config); a dead leader is replaced within about a second.
//   - TLS: mutual, both sides verifying the peer against the cluster CA. Host names are not
//     matched against addresses (peers are dialled by IP, which moves); instead, when
//     tls.Config.ServerName is set, both sides require that name in the peer's certificate,
//     which ties certificates to one cluster when the CA serves several. Certificates need both
//     server and client auth usages; TLS 1.3 only.
//   - Refusals are results: a command the record refuses (record.ErrStaleEpoch...) is refused
//     by every node alike and returned to the proposer; it never stops the node.
//   - Membership: package membership plans it (Plan, ShouldBootstrap), purely, for the HA
//     decision; the leader carries a plan out with Node.ApplyChange. A removed node keeps
//     running outside the configuration so the leader can add it back without a restart.
//   - Tests: Config.Network puts nodes on an InmemNetwork (no sockets, optional in-memory
//     stores, partitions with Disconnect); package tlstest makes certificates.
package consensus
