/*
 * shoal failover protocol: a Promela model for spin.
 *
 * What is modelled (docs/protocol.md explains each choice and maps every
 * parameter to the agent's config names; docs/model-check.md explains the
 * runs and the counterexamples):
 *
 *   - N members (3 or 5). Each member is a MySQL server and its agent.
 *     MySQL: running / paused, super_read_only, applied and received
 *     transaction counters with the epoch each transaction was written in,
 *     replication source and IO thread, a client waiting for a semi-sync ack,
 *     and the in-server lease deadline (the fence event armed by the agent).
 *     Agent: running / paused, its lease, the epoch of the cluster record it
 *     has applied, its errant flag, and a failover pass in progress.
 *   - The Raft cluster record {epoch, primary} as a register: it changes only
 *     by a proposal of the leader while the leader reaches a majority of
 *     agents, with epoch compare-and-set. Leadership moves when the leader
 *     loses its majority (or stops); a new leader restarts the lease clock.
 *   - Discrete time: one unit is one ha.tick. Every running agent makes
 *     exactly one pass (gather -> decide -> act, atomic) per tick; the
 *     environment acts between passes: clients, replication, faults.
 *   - Faults, chosen by the search, at most MAXF of them: crash of MySQL,
 *     of the agent or of both, and restart; pause (SIGSTOP) of MySQL, of the
 *     agent or of both, and resume; a partition into any two groups, and
 *     heal; loss of every message of one member for the rest of a tick.
 *   - Clock drift: all drift between the lease holder's clock and the
 *     leader's clock is charged to the lease, which lasts LEASE+DRIFT of the
 *     leader's ticks (the worst case for safety; see docs/protocol.md).
 *
 * Properties (each assert names what it checks):
 *   (a) one_writer          never two servers accept client writes at once
 *   (b) acked_write_kept    every acknowledged write is in every later primary
 *   (c) replica_not_errant  a server with transactions its source lacks never
 *       candidate_not_errant  replicates from it, and is never made primary
 *   (d) primary_available   bounded liveness: once a majority is healthy and
 *                           connected and no fault happens for LIVE ticks,
 *                           some primary accepts writes.
 */

/* ---------- parameters (ticks; one tick = ha.tick) ---------- */
#ifndef N
#define N 3
#endif
#ifndef K                 /* ha.semi_sync_acks */
#define K 1
#endif
#ifndef LEASE             /* ha.lease */
#define LEASE 3
#endif
#ifndef DRIFT             /* ha.max_clock_drift */
#define DRIFT 1
#endif
#ifndef MARGIN            /* ha.promotion_margin */
#define MARGIN 1
#endif
#ifndef DETECT            /* ha.detection_timeout */
#define DETECT 1
#endif
#ifndef COOLDOWN          /* ha.failover_cooldown */
#define COOLDOWN 0
#endif
#define PW (LEASE+DRIFT+MARGIN)   /* Policy.PromotionWait() */

/* ---------- bounds of the search ---------- */
#ifndef MAXTX             /* client writes in one run */
#define MAXTX 2
#endif
#ifndef MAXF              /* faults in one run */
#define MAXF 3
#endif
#ifndef MAXEP             /* highest epoch (the run starts in epoch 1) */
#define MAXEP 3
#endif
#ifndef LIVE              /* ticks of calm after which a primary must serve */
#define LIVE (DETECT+PW+MAXTX+4)
#endif

/* ---------- protocol switches: 1 = the protocol of docs/protocol.md ---------- */
#ifndef IN_SERVER_FENCE   /* MySQL itself fences at the lease deadline (event) */
#define IN_SERVER_FENCE 1
#endif
#ifndef ACK_QUORUM        /* leader stops the IO threads of >= N-K replicas and
                             promotes one containing all they received */
#define ACK_QUORUM 1
#endif
#ifndef RELEASE_IF_DEAD   /* the lease is released only when mysqld is gone,
                             never when it merely does not answer */
#define RELEASE_IF_DEAD 1
#endif
#ifndef LAPSED_IS_DOWN     /* a primary without a lease for PromotionWait (or
                             that released it) counts as down */
#define LAPSED_IS_DOWN 1
#endif
#ifndef RECORD_BASE       /* the record keeps the new primary's GTID set (the
                             epoch's base); errant is judged against the record */
#define RECORD_BASE 1
#endif
#ifndef REVOKE            /* deciding a failover revokes the primary's lease
                             (no renewal in this epoch), and the proposal
                             re-checks the lease wait right before it is made */
#define REVOKE 1
#endif
#ifndef OLDP              /* the old primary, if its MySQL answers (read-only
                             by now), is a candidate too (promoted anew) */
#define OLDP 1
#endif
#ifndef FENCE_OLD         /* the leader fences writable servers in view itself */
#define FENCE_OLD 1
#endif
#ifndef CHECK_LIVENESS
#define CHECK_LIVENESS 1
#endif
#ifndef PAUSE_MYSQL       /* allow SIGSTOP of mysqld (alone or with its agent) */
#define PAUSE_MYSQL 1
#endif

/* ---------- mutations: 1 = a deliberately broken protocol ---------- */
#ifndef NO_LEASE_WAIT     /* promote without waiting PromotionWait */
#define NO_LEASE_WAIT 0
#endif
#ifndef NO_CAS            /* record accepts a decision from an older epoch */
#define NO_CAS 0
#endif
#ifndef NO_APPLY_WAIT     /* promote before the relay log is applied */
#define NO_APPLY_WAIT 0
#endif
#ifndef RELAY_RECOVERY    /* a restarted replica drops its relay log */
#define RELAY_RECOVERY 0
#endif

#define NONE 15
#define MAJ (N/2+1)

typedef Member {
	/* MySQL */
	bit  up;        /* mysqld running */
	bit  frz;       /* mysqld paused */
	bit  ro;        /* super_read_only */
	bit  late;      /* resumed after its lease deadline passed; in-server fence not yet run */
	bit  io;        /* IO (receiver) thread running */
	bit  pend;      /* a client waits for the ack of the last write here */
	byte src;       /* replication source, NONE if none */
	byte app;       /* transactions applied (executed) */
	byte rcv;       /* transactions received (applied + relay log) */
	byte wep;       /* epoch in which it last opened writes */
	byte dl;        /* ticks left until the in-server lease deadline, 0 = none */
	byte h[MAXTX+1];/* h[i] = epoch of the transaction at position i (1-based) */
	/* agent */
	bit  aup;       /* agent running */
	bit  afrz;      /* agent paused */
	bit  done;      /* made its pass in this tick */
	bit  errf;      /* knows its server is errant (reported by gossip) */
	bit  part;      /* side of the network partition */
	bit  lossy;     /* its messages are lost for the rest of this tick */
	byte lease;     /* ticks left on its primary lease, 0 = none */
	byte kep;       /* epoch of the cluster record it has applied */
	byte fo;        /* failover pass in progress: candidate+1, 0 = none */
	byte foep       /* epoch that failover was decided in */
};

Member m[N];
byte ep;                 /* Raft record: epoch ... */
byte prim[MAXEP+1];      /* ... and the primary of every epoch so far */
byte base[MAXEP+1];      /* ... and how many transactions it had when promoted
                            (its GTID set; the content is the primary's prefix) */
byte leader = NONE;      /* Raft leader (agent), NONE during an election */
byte grant;              /* leader: ticks until the primary's lease surely ended */
bit  rvk;                /* the primary's lease is revoked (or released) in this
                            epoch: no more renewals. With REVOKE it is part of the
                            Raft record; without, only the leader's memory */
byte dcnt;               /* leader: 0, or 1 + ticks the primary has looked down */
byte cool;               /* ticks left of ha.failover_cooldown */
byte faults;             /* faults so far */
bit  faulted;            /* a fault happened in this tick */
byte nw;                 /* client writes so far */
byte acked[MAXTX+1];     /* ghost: epoch of the acknowledged write at a position */
byte calm;               /* ghost: ticks a healthy majority has been calm */
bit  capped;             /* ghost: a failover was cut off by MAXEP */

/* scratch, not part of the state */
hidden byte hj, hk, hc, hp, hcnt, hcnt2, hbest;
hidden byte hok, hok2;
/* assertion names */
hidden byte one_writer, acked_write_kept, replica_not_errant, candidate_not_errant, primary_available;

/* ---------- predicates ---------- */
#define CONN(i,j)    ((i)==(j) || (m[i].part==m[j].part && !m[i].lossy && !m[j].lossy))
#define MY_OK(j)     (m[j].up && !m[j].frz)
#define AG_OK(j)     (m[j].aup && !m[j].afrz)
#define MYREACH(i,j) (MY_OK(j) && CONN(i,j))
#define AGREACH(i,j) (AG_OK(j) && CONN(i,j))
#define WRITABLE(s)  (MY_OK(s) && !m[s].ro)
#define OPEN(s)      (WRITABLE(s) && !m[s].late)
/* position x of server s is allowed by the record (see validLen) */
#define VALIDPOS(s,x) ((x) > m[s].rcv || ((x) <= base[ep] -> m[s].h[x] == m[prim[ep]].h[x] : m[s].h[x] == ep))
#if MAXTX == 1
#define ERRANT(s) (!VALIDPOS(s,1))
#elif MAXTX == 2
#define ERRANT(s) (!(VALIDPOS(s,1) && VALIDPOS(s,2)))
#elif MAXTX == 3
#define ERRANT(s) (!(VALIDPOS(s,1) && VALIDPOS(s,2) && VALIDPOS(s,3)))
#else
#error "MAXTX must be 1..3"
#endif
/* healthy: agent and MySQL run and talk, and the server is not errant
   (an errant server is fenced until rebuilt: it cannot help) */
#define HEALTHY(j)   (AG_OK(j) && MY_OK(j) && !m[j].lossy && !ERRANT(j))

#define F_AGR(j,l)     AGREACH(l,j)
#define F_RCVD(r,s)    ((r)!=(s) && m[r].rcv >= m[s].app && m[r].h[m[s].app] == m[s].h[m[s].app])
#define F_HSIDE(j,x)   (HEALTHY(j) && m[j].part == (x))
#define F_NOTDONE(j,x) (AG_OK(j) && !m[j].done)
#define F_LOK(j,x)     LEADER_OK(j)
#define F_PART(j,x)    (m[j].part)
#define F_SERVES(j,x)  (OPEN(j) && prim[ep] == (j) && m[j].lease > 0)

#if N == 3
#define SUM(F,a) (F(0,a)+F(1,a)+F(2,a))
#define ANY(F,a) (F(0,a)||F(1,a)||F(2,a))
#elif N == 5
#define SUM(F,a) (F(0,a)+F(1,a)+F(2,a)+F(3,a)+F(4,a))
#define ANY(F,a) (F(0,a)||F(1,a)||F(2,a)||F(3,a)||F(4,a))
#else
#error "N must be 3 or 5"
#endif

#define LEADER_OK(l) ((l) != NONE && AG_OK(l) && SUM(F_AGR,l) >= MAJ)
#define FRESH(i)     (LEADER_OK(leader) && AGREACH(i, leader))   /* in contact with the leader */
#define ALLDONE      (!ANY(F_NOTDONE,0))
#define ELECTABLE    (leader == NONE && ANY(F_LOK,0))
#define MAJ_HEALTHY  (SUM(F_HSIDE,0) >= MAJ || SUM(F_HSIDE,1) >= MAJ)

/* res = every transaction a received is at the same position in b */
inline prefix(a, b, res) {
	res = (m[a].rcv <= m[b].rcv);
	for (hk : 1 .. MAXTX) {
		if
		:: res && hk <= m[a].rcv && m[a].h[hk] != m[b].h[hk] -> res = 0
		:: else
		fi
	}
}

/* res = how many of s's transactions, from the first, belong to the history
   the record allows in epoch e: the epoch's base, then writes of epoch e */
inline validLen(s, e, res) {
	res = 0;
	for (hk : 1 .. MAXTX) {
		if
		:: res == hk-1 && hk <= m[s].rcv &&
		   ((hk <= base[e] && m[s].h[hk] == m[prim[e]].h[hk]) || (hk > base[e] && m[s].h[hk] == e)) -> res = hk
		:: else
		fi
	}
}

/* res = server s has applied every acknowledged write */
inline hasAcked(s, res) {
	res = 1;
	for (hk : 1 .. MAXTX) {
		if
		:: acked[hk] != 0 && (hk > m[s].app || m[s].h[hk] != acked[hk]) -> res = 0
		:: else
		fi
	}
}

/* drop transactions beyond what was applied (relay log discarded) */
inline dropRelay(s) {
	m[s].rcv = m[s].app;
	for (hk : 1 .. MAXTX) {
		if :: hk > m[s].app -> m[s].h[hk] = 0 :: else fi
	}
}

/* (a): s is about to accept writes; nobody else may */
inline checkOneWriter(s) {
	for (hj : 0 .. N-1) {
		one_writer = (hj == s || !OPEN(hj));
		assert(one_writer)
	}
}

/* fence: super_read_only on, client connections killed, lease event dropped */
inline fence(s) {
	printf("MSC: fence %d\n", s);
	m[s].ro = 1; m[s].pend = 0; m[s].dl = 0; m[s].late = 0
}

/* ---------- the agent's pass ---------- */

/* the primary's agent asks the leader to renew its lease; the leader grants
   after confirming its majority (VerifyLeader), for the current epoch only */
inline renew(i) {
	if
	:: LEADER_OK(leader) && AGREACH(i, leader) && m[i].kep == ep && prim[ep] == i && !rvk ->
		m[i].lease = LEASE + DRIFT;
		grant = PW;
		if :: IN_SERVER_FENCE && !m[i].ro -> m[i].dl = LEASE + DRIFT :: else fi
	:: else
	fi
}

inline openWrites(i) {
	if
	:: m[i].app < m[i].rcv && !NO_APPLY_WAIT -> skip   /* applying the relay log first */
	:: else ->
		dropRelay(i);                                   /* RESET REPLICA ALL */
		m[i].src = NONE; m[i].io = 0;
		hasAcked(i, acked_write_kept);
		assert(acked_write_kept);                       /* (b) */
		checkOneWriter(i);                              /* (a) */
		printf("MSC: %d opens writes in epoch %d\n", i, m[i].kep);
		m[i].ro = 0; m[i].wep = m[i].kep;
		if :: IN_SERVER_FENCE -> m[i].dl = m[i].lease :: else fi
	fi
}

inline primaryNode(i) {
	if
	:: REVOKE && FRESH(i) && rvk -> m[i].lease = 0      /* revoked: give it up now */
	:: else
	fi;
	if
	:: m[i].lease == 0 && !m[i].ro -> fence(i)          /* no lease: fence */
	:: else
	fi;
	renew(i);
	if
	:: m[i].lease > 0 && (m[i].ro || m[i].src != NONE) -> openWrites(i)
	:: else
	fi
}

inline replicaNode(i, p) {
	if
	:: !m[i].ro -> fence(i)
	:: else ->
		if
		:: MYREACH(i, p) ->
			prefix(i, p, hok);                          /* errant GTID check */
			if :: RECORD_BASE -> validLen(i, m[i].kep, hcnt2); hok = hok && (hcnt2 == m[i].rcv) :: else fi;
			if
			:: !hok -> m[i].errf = 1; m[i].io = 0; printf("MSC: %d errant, stays fenced\n", i)       /* fenced until rebuilt */
			:: else ->
				m[i].errf = 0;
				if
				/* start a receiver only towards a primary whose lease is not
				   revoked, as the leader says now (the leader may have stopped
				   it to count the acks the old primary can still get) */
				:: m[i].src != p -> m[i].src = p; m[i].io = (!REVOKE || (FRESH(i) && !rvk));
					printf("MSC: %d replicates from %d\n", i, p)
				:: else ->
					if
					:: !m[i].io && !m[p].ro && (!REVOKE || (FRESH(i) && !rvk)) -> m[i].io = 1
					:: else
					fi
				fi
			fi
		:: else
		fi
	fi
}

inline node(i) {
	hp = prim[m[i].kep];
	if
	:: !MY_OK(i) ->
		/* local MySQL does not answer: release the lease only if mysqld is
		   gone (it restarts read-only); a paused one may come back writable */
		if
		:: hp == i && m[i].lease > 0 && (!RELEASE_IF_DEAD || !m[i].up) ->
			m[i].lease = 0; printf("MSC: %d releases its lease\n", i);
			if
			:: LEADER_OK(leader) && AGREACH(i, leader) && m[i].kep == ep -> rvk = 1; grant = 0
			:: else
			fi
		:: else
		fi
	:: hp == i -> primaryNode(i)
	:: else -> replicaNode(i, hp)
	fi
}

/* the leader's view: is primary p down? (probe fails and either p's agent
   says its MySQL is down or most live agents lost replication from p) */
inline primaryDown(i, p, res) {
	if
	:: LAPSED_IS_DOWN && (rvk || grant == 0) -> res = 1
	:: MYREACH(i, p) -> res = 0
	:: else ->
		if
		:: AGREACH(i, p) && !MY_OK(p) -> res = 1
		:: else ->
			hcnt = 0; hcnt2 = 0;
			for (hj : 0 .. N-1) {
				if
				:: hj != p && AGREACH(i, hj) ->
					hcnt++;
					if
					:: !(m[hj].src == p && m[hj].io && MY_OK(hj) && CONN(hj, p)) -> hcnt2++
					:: else
					fi
				:: else
				fi
			}
			res = (hcnt > 0 && 2*hcnt2 > hcnt)
		fi
	fi
}

/* commit {epoch+1, primary=candidate} once the candidate applied all it received */
inline finishFailover(i) {
	hc = m[i].fo - 1;
	if
	:: !MYREACH(i, hc) -> m[i].fo = 0; m[i].foep = 0      /* candidate lost: decide again */
	:: else ->
		if
		:: m[hc].app < m[hc].rcv && !NO_APPLY_WAIT -> skip   /* still applying */
		:: else ->
			if
			:: LEADER_OK(i) && leader == i && (ep == m[i].foep || NO_CAS) &&
			   (!REVOKE || NO_LEASE_WAIT || rvk || grant == 0) ->
				if
				:: ep < MAXEP ->
					prefix(hc, prim[ep], candidate_not_errant);
					assert(candidate_not_errant);       /* (c) */
					printf("MSC: leader %d commits epoch %d primary %d\n", i, ep+1, hc);
					ep++; prim[ep] = hc; base[ep] = m[hc].app;
					grant = 0; rvk = 0; dcnt = 0; cool = COOLDOWN;
					m[i].kep = ep
				:: else -> capped = 1
				fi
			:: else                                      /* not leader: proposal fails */
			fi;
			m[i].fo = 0; m[i].foep = 0
		fi
	fi
}

inline prepare(i, p) {
	/* replicas whose MySQL the leader reaches: an acknowledged write is on at
	   least K replicas, so with N-K of the N-1 replicas in view one of them has it */
	hcnt = 0;
	for (hj : 0 .. N-1) {
		if :: hj != p && MYREACH(i, hj) -> hcnt++ :: else fi
	}
	/* the candidate: the most received among the fit (MySQL and agent
	   reachable; not errant: by the record's base, or by its agent's report).
	   The old primary, if its MySQL answers (OLDP), is preferred: it has
	   every transaction of its epoch. */
	hbest = NONE;
	for (hj : 0 .. N-1) {
		if
		:: (hj != p || OLDP) && MYREACH(i, hj) && AGREACH(i, hj) ->
			if
			:: RECORD_BASE -> validLen(hj, ep, hcnt2); hok = (hcnt2 == m[hj].rcv)
			:: else -> hok = !m[hj].errf
			fi;
			if
			:: hok && (hbest == NONE || m[hj].rcv > m[hbest].rcv || hj == p) && hbest != p -> hbest = hj
			:: else
			fi
		:: else
		fi
	}
	if
	:: hbest == NONE -> skip
	:: hbest != p && ACK_QUORUM && hcnt < N - K -> skip   /* an acked write may hide out of view */
	:: else ->
		/* it must contain what the replicas received: every reachable replica
		   (the part the record allows), or in the design as written the
		   other fit candidates */
		hok2 = 1;
		for (hj : 0 .. N-1) {
			if
			:: hj != p && MYREACH(i, hj) && RECORD_BASE ->
				validLen(hj, ep, hcnt2);
				hok2 = hok2 && (hcnt2 <= m[hbest].rcv)
			:: hj != p && MYREACH(i, hj) && !RECORD_BASE && (ACK_QUORUM || (AGREACH(i, hj) && !m[hj].errf)) ->
				prefix(hj, hbest, hok);
				hok2 = hok2 && hok
			:: else
			fi
		}
		if
		:: hok2 ->
			/* stop the receivers: all reachable replicas, or the candidate's */
			for (hj : 0 .. N-1) {
				if
				:: hj != p && MYREACH(i, hj) && (ACK_QUORUM || hj == hbest) -> m[hj].io = 0
				:: else
				fi
			}
			/* fence directly every server in view that is still writable
			   (the old primary, or one that resumed after a pause) */
			for (hj : 0 .. N-1) {
				if :: FENCE_OLD && MYREACH(i, hj) && !m[hj].ro -> fence(hj) :: else fi
			}
			printf("MSC: leader %d prepares %d (epoch %d)\n", i, hbest, ep);
			m[i].fo = hbest + 1; m[i].foep = ep;
			if :: REVOKE -> rvk = 1; printf("MSC: leader %d revokes the lease of %d (epoch %d)\n", i, p, ep) :: else fi;
			finishFailover(i)
		:: else
		fi
	fi
}

inline cluster(i) {
	hp = prim[ep];
	primaryDown(i, hp, hok);
	if
	:: !hok -> dcnt = 0
	:: hok && dcnt == 0 -> dcnt = 1
	:: hok && dcnt > 0 && dcnt <= DETECT -> skip            /* confirming for ha.detection_timeout */
	:: else ->
		if
		:: cool > 0 -> skip                                 /* ha.failover_cooldown */
		:: cool == 0 && grant > 0 && !rvk && !NO_LEASE_WAIT -> skip   /* old lease may still run */
		:: else -> prepare(i, hp)
		fi
	fi
}

inline pass(i) {
	m[i].done = 1;
	if :: LEADER_OK(leader) && AGREACH(i, leader) -> m[i].kep = ep :: else fi;
	if
	:: m[i].fo != 0 -> finishFailover(i)                    /* the blocked pass goes on */
	:: else ->
		node(i);
		if :: leader == i && LEADER_OK(i) -> cluster(i) :: else fi
	fi
}

/* ---------- time ---------- */
inline tick() {
	printf("MSC: ---- tick (leader %d, epoch %d, primary %d, grant %d, calm %d)\n", leader, ep, prim[ep], grant, calm);
	for (hj : 0 .. N-1) {
		if :: m[hj].lease > 0 -> m[hj].lease-- :: else fi;
		if
		:: m[hj].dl > 0 ->
			m[hj].dl--;
			if :: m[hj].dl == 0 && MY_OK(hj) -> fence(hj) :: else fi  /* the lease event fires */
		:: else
		fi;
		if :: m[hj].late && MY_OK(hj) -> fence(hj) :: else fi;
		/* while calm, replication keeps up: one transaction per tick */
		if
		:: calm > 0 && MY_OK(hj) && m[hj].io && m[hj].src != NONE && MYREACH(hj, m[hj].src) &&
		   m[hj].rcv < m[m[hj].src].app ->
			prefix(hj, m[hj].src, hok);
			if :: hok -> m[hj].rcv++; m[hj].h[m[hj].rcv] = m[m[hj].src].h[m[hj].rcv] :: else fi
		:: else
		fi;
		if :: calm > 0 && MY_OK(hj) && m[hj].app < m[hj].rcv -> m[hj].app++ :: else fi;
		m[hj].done = 0; m[hj].lossy = 0
	}
	if :: grant > 0 -> grant-- :: else fi;
	if :: cool > 0 -> cool-- :: else fi;
	if :: dcnt > 0 && dcnt <= DETECT -> dcnt++ :: else fi;
	if :: leader != NONE && !LEADER_OK(leader) -> leader = NONE :: else fi;
	if
	:: !faulted && MAJ_HEALTHY -> if :: calm < LIVE -> calm++ :: else fi
	:: else -> calm = 0
	fi;
	if
	:: CHECK_LIVENESS && calm >= LIVE ->
		primary_available = (ANY(F_SERVES,0) || capped);
		assert(primary_available)                            /* (d) */
	:: else
	fi;
	faulted = 0
}

inline fault() { faults++; faulted = 1; calm = 0 }

/* ---------- steps of member i ---------- */
#define STEPS(i) \
	/* the agent's pass */ \
	:: d_step { AG_OK(i) && !m[i].done -> pass(i) } \
	/* Raft election: a member reaching a majority becomes leader */ \
	:: d_step { leader == NONE && LEADER_OK(i) -> \
		printf("MSC: %d elected leader\n", i); leader = i; m[i].kep = ep; grant = PW; dcnt = 0; \
		if :: !REVOKE -> rvk = 0 :: else fi } \
	/* a client writes to a server that accepts writes */ \
	:: d_step { WRITABLE(i) && !m[i].pend && nw < MAXTX && m[i].app < MAXTX -> \
		m[i].app++; m[i].rcv = m[i].app; m[i].h[m[i].app] = m[i].wep; m[i].pend = 1; nw++; \
		printf("MSC: client writes tx %d (epoch %d) on %d\n", m[i].app, m[i].wep, i) } \
	/* semi-sync: the client is acknowledged once K replicas received it */ \
	:: d_step { m[i].pend && MY_OK(i) && SUM(F_RCVD,i) >= K -> \
		acked[m[i].app] = m[i].h[m[i].app]; m[i].pend = 0; \
		printf("MSC: %d acknowledges tx %d to the client\n", i, m[i].app); \
		for (hj : 0 .. N-1) { \
			if :: m[hj].wep > acked[m[i].app] -> \
				hasAcked(hj, acked_write_kept); assert(acked_write_kept) \
			:: else fi }; skip } \
	/* IO thread receives one transaction from its source */ \
	:: d_step { MY_OK(i) && m[i].io && m[i].src != NONE && MYREACH(i, m[i].src) && \
		m[i].rcv < m[m[i].src].app -> \
		prefix(i, m[i].src, replica_not_errant); assert(replica_not_errant); \
		m[i].rcv++; m[i].h[m[i].rcv] = m[m[i].src].h[m[i].rcv]; \
		printf("MSC: %d receives tx %d from %d\n", i, m[i].rcv, m[i].src) } \
	/* SQL thread applies one transaction */ \
	:: d_step { MY_OK(i) && m[i].app < m[i].rcv -> m[i].app++; printf("MSC: %d applies tx %d\n", i, m[i].app) } \
	/* the overdue lease event of a resumed server fires */ \
	:: d_step { m[i].late && MY_OK(i) -> fence(i) } \
	/* faults */ \
	:: d_step { faults < MAXF && m[i].up -> fault(); \
		m[i].up = 0; m[i].frz = 0; m[i].pend = 0; m[i].late = 0; printf("MSC: FAULT mysqld %d crashes\n", i) } \
	:: d_step { faults < MAXF && m[i].aup -> fault(); \
		m[i].aup = 0; m[i].afrz = 0; m[i].lease = 0; m[i].fo = 0; m[i].foep = 0; m[i].errf = 0; m[i].done = 0; \
		printf("MSC: FAULT agent %d crashes\n", i) } \
	:: d_step { faults < MAXF && m[i].up && m[i].aup -> fault(); printf("MSC: FAULT member %d crashes\n", i); \
		m[i].up = 0; m[i].frz = 0; m[i].pend = 0; m[i].late = 0; \
		m[i].aup = 0; m[i].afrz = 0; m[i].lease = 0; m[i].fo = 0; m[i].foep = 0; m[i].errf = 0; m[i].done = 0 } \
	:: d_step { faults < MAXF && AG_OK(i) -> fault(); m[i].afrz = 1; printf("MSC: FAULT agent %d paused\n", i) } \
	:: d_step { PAUSE_MYSQL && faults < MAXF && MY_OK(i) -> fault(); m[i].frz = 1; printf("MSC: FAULT mysqld %d paused\n", i) } \
	:: d_step { PAUSE_MYSQL && faults < MAXF && MY_OK(i) && AG_OK(i) -> fault(); m[i].frz = 1; m[i].afrz = 1; \
		printf("MSC: FAULT member %d paused\n", i) } \
	:: d_step { faults < MAXF && !m[i].lossy -> fault(); m[i].lossy = 1; printf("MSC: FAULT messages of %d lost this tick\n", i) } \
	/* recoveries */ \
	:: d_step { !m[i].up -> printf("MSC: mysqld %d restarts read-only\n", i); m[i].up = 1; m[i].ro = 1; m[i].io = 0; m[i].dl = 0; \
		if :: RELAY_RECOVERY -> dropRelay(i) :: else fi } \
	:: d_step { !m[i].aup -> printf("MSC: agent %d restarts\n", i); m[i].aup = 1; m[i].lease = 0; m[i].done = 1 } \
	:: d_step { m[i].frz -> m[i].frz = 0; printf("MSC: mysqld %d resumes\n", i); \
		m[i].late = (IN_SERVER_FENCE && !m[i].ro && m[i].dl == 0); \
		if :: OPEN(i) -> checkOneWriter(i) :: else fi } \
	:: d_step { m[i].afrz -> m[i].afrz = 0; printf("MSC: agent %d resumes\n", i) }

/* partition: the members in mask (bit j-1 for member j >= 1) go to side 1 */
#define PARTITION(mask) \
	:: d_step { faults < MAXF -> fault(); printf("MSC: FAULT partition, side 1 = mask %d<<1\n", mask); \
		for (hj : 1 .. N-1) { m[hj].part = ((mask) >> (hj-1)) & 1 }; skip }

init {
	d_step {
		for (hj : 0 .. N-1) {
			m[hj].up = 1; m[hj].aup = 1; m[hj].ro = 1; m[hj].kep = 1;
			m[hj].src = 0; m[hj].io = 1
		}
		/* epoch 1: member 0 is the primary, writable with a fresh lease */
		m[0].ro = 0; m[0].src = NONE; m[0].io = 0; m[0].wep = 1;
		m[0].lease = LEASE + DRIFT;
		if :: IN_SERVER_FENCE -> m[0].dl = LEASE + DRIFT :: else fi;
		ep = 1; prim[0] = NONE; prim[1] = 0; grant = PW
	}
	if :: leader = 0 :: leader = 1 fi;
	do
	:: d_step { ALLDONE && !ELECTABLE -> tick() }
	STEPS(0)
	STEPS(1)
	STEPS(2)
#if N == 5
	STEPS(3)
	STEPS(4)
#endif
	/* heal */
	:: d_step { ANY(F_PART,0) -> printf("MSC: partition heals\n"); for (hj : 0 .. N-1) { m[hj].part = 0 }; skip }
	PARTITION(1)
	PARTITION(2)
	PARTITION(3)
#if N == 5
	PARTITION(4)
	PARTITION(5)
	PARTITION(6)
	PARTITION(7)
	PARTITION(8)
	PARTITION(9)
	PARTITION(10)
	PARTITION(11)
	PARTITION(12)
	PARTITION(13)
	PARTITION(14)
	PARTITION(15)
#endif
	od
}
