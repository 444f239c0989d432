/*
 * shoal's failover protocol as a Promela model, checked with spin (make model-check).
 *
 * docs/protocol.md describes the protocol in prose, maps every parameter to the agent's config
 * key, and explains the counterexamples of the mutations. The code it models: agent/ha/decide.go
 * (the decision), agent/lease.go (the leader's lease table), agent/act.go (the steps).
 *
 * What is modelled
 *  - N members (3, or 5 with -DN=5), each a MySQL server and its agent on one host.
 *    MySQL: running, frozen (SIGSTOP), writable, the set of writes it applied (binlog) and the
 *    set it received (relay log), its replication source and IO thread.
 *    Agent: running, frozen, the record it has applied, its primary lease on its own clock.
 *  - The Raft record (epoch, primary) as a register. It changes only by a proposal that reaches
 *    a majority of running agents, applied with an epoch compare-and-set. A proposal may stay in
 *    flight and commit later, after its proposer lost the lead, or be lost.
 *  - The leader: any agent that reaches a majority may win an election at any time; it knows
 *    only the lease grants it made itself, so a new leader counts the lease from its election.
 *  - Lossless semi-sync: a write is acknowledged once a replica whose IO thread is connected to
 *    the server that took the write received it; clients write to any server that is writable.
 *  - Time in units of ha.promotion_margin: a running agent acts within one unit. A lease lasts
 *    LEASE units on the leader's clock and up to DRIFT more on the holder's clock.
 *  - Faults, at most MAXF, chosen by the search: mysqld crash, agent crash, host crash, SIGSTOP of
 *    mysqld or agent, a partition into any two groups, a stalled commit path (a server that
 *    answers but executes no write: a global read lock, a full binlog disk); and recoveries:
 *    restart (read-only), SIGCONT, heal. A message is lost by the search simply not taking the step that sends it
 *    before time moves on.
 *  - Calm: at some point faults stop, everything heals except possibly one host that stays
 *    down; from then on every running agent makes a pass and replication catches up every unit.
 *
 * Properties (assertions)
 *  (a) one writer: never two servers open for writes at once. A server counts while its agent
 *      runs and it is not late: a mysqld or agent frozen (or an agent stopped) past the lease
 *      leaves the server writable until the agent's next pass after it runs again, a moment no
 *      agent-based design can avoid; (a') shows that such a server cannot have a write
 *      acknowledged.
 *  (a') a server acknowledges a write only while no other server opened writes after it did.
 *  (b) no lost write: a server that opens writes has every acknowledged write.
 *  (c) no divergence: a replica never receives from a source that lacks its transactions.
 *  (d) liveness: CALM_BOUND units into the calm phase the recorded primary is writable with a
 *      lease.
 *
 * Mutations (each must produce a counterexample): -DNO_LEASE_WAIT, -DNO_EPOCH_CAS,
 * -DNO_RELAY_WAIT. Protocol steps that can be switched off to see why they exist:
 * -DNO_QUARANTINE, -DNO_CONFIRM_START.
 */

#ifndef N
#define N 3
#endif
#define MAJ (N / 2 + 1)
#define NONE 7
#define ACKS 1                  /* ha.semi_sync_acks */

/* timings in units of ha.promotion_margin */
#ifndef LEASE
#define LEASE 2                 /* ha.lease */
#endif
#ifndef DRIFT
#define DRIFT 1                 /* ha.max_clock_drift */
#endif
#define MARGIN 1                /* ha.promotion_margin: the unit */
#ifndef DETECT
#define DETECT 1                /* ha.detection_timeout */
#endif
#define PW (LEASE + DRIFT + MARGIN)     /* Policy.PromotionWait */

/* the first Raft leader; make model-check searches both */
#ifndef LEADER
#define LEADER 0
#endif

/* bounds of the search */
#ifndef MAXW
#define MAXW 1                  /* client writes */
#endif
#ifndef MAXF
#define MAXF 2                  /* faults */
#endif
#define MAXE 4                  /* epochs */
#define CALM_BOUND (DETECT + PW + 3)

#define bit(k) (1 << (k))
#define has(set, k) (((set) >> (k)) & 1)
#define conn(a, b) (has(grp, a) == has(grp, b))
#define sub(x, y) (((x) & ~(y)) == 0)           /* set x is contained in set y */
#define mrun(k) (has(mup, k) && !has(mfz, k))
#define arun(k) (has(aup, k) && !has(afz, k))
#define reach(a, k) (conn(a, k) && mrun(k))     /* a reaches k's mysqld */
#define areach(a, k) (conn(a, k) && arun(k))    /* a reaches k's agent */
#define open(k) (mrun(k) && arun(k) && has(wr, k) && !has(late, k))

#if N == 3
#define ALL(F) (F(0) && F(1) && F(2))
#elif N == 5
#define ALL(F) (F(0) && F(1) && F(2) && F(3) && F(4))
#else
#error "N must be 3 or 5"
#endif

/* members: bit sets */
byte mup;       /* mysqld running */
byte mfz;       /* mysqld frozen */
byte aup;       /* agent running */
byte afz;       /* agent frozen */
byte wr;        /* writable (read_only off) */
byte io;        /* IO thread running */
byte errant;    /* the agent reports errant transactions */
byte grp;       /* partition: members with the bit set are cut off from the others */
byte stepped;   /* agents that made a pass in this unit */
byte stl;       /* commit path stalled: the server answers and serves its binlog, executes no write */
byte late;      /* writable servers whose lease ran out while they (or their agent) were frozen:
                 * writable on thaw until the agent's next pass fences them */
/* members: values */
byte exec[N];   /* writes applied (in the binlog) */
byte recv[N];   /* writes received (relay log) */
byte src[N];    /* replication source */
byte vep[N];    /* the record the agent applied: epoch */
byte vpr[N];    /*   and primary */
byte lease[N];  /* units left of the agent's primary lease */

/* the Raft record and the leader's memory */
byte rep = 1;   /* epoch */
byte rpr = 0;   /* primary */
byte leader;
byte lgrant;    /* units since the leader last granted a lease, in any epoch, or since its
                 * election if later (up to PW): a lease of an earlier epoch may still run */
byte ldown;     /* units the leader has seen the primary down, up to DETECT */
bool lrev;      /* the leader revoked the lease of this epoch */
bool lrel;      /* the primary released the lease of this epoch */
bool lstall;    /* the leader acted on a commit stall of this epoch: its primary is replaced, never
                 * re-elected (the fence kills the stalled sessions, and it then looks healthy) */
byte pep = NONE;/* oldest proposal in flight: decided in epoch pep, */
byte ppr;       /*   naming primary ppr, */
byte pldr;      /*   by leader pldr */
byte qep = NONE;/* a newer leader's proposal behind it in the log (decided before the older */
byte qpr;       /*   one was applied: only the compare-and-set stops it) */

/* clients */
byte nw;        /* writes issued */
byte origin[MAXW];
byte acked;     /* acknowledged writes */
byte failed;    /* writes whose client saw its connection killed (fence, crash): never acknowledged */
byte lastopen;  /* the server that opened writes last */

byte faults;
bool calm;
byte calmt;

byte cnt, lost, i, j, k, c, d;
bool ok, ok_now, down, go;

/* the leader grants a lease or confirms a replica's reconnection for the current epoch, once no
 * entry of an earlier leader is left to apply (its Raft barrier completed) */
#define grantable(m) (ok && conn(m, leader) && rep == vep[m] && !lrev && (pep == NONE || pldr == leader))

/* fence server k: super_read_only on, client connections killed (their commits fail) */
inline fence(k) {
	wr = wr & ~bit(k); late = late & ~bit(k);
	for (j : 0 .. MAXW - 1) {
		if
		:: j < nw && origin[j] == k && !has(acked, j) -> failed = failed | bit(j)
		:: else
		fi
	}
}

inline thawed(k) {
	if
	:: has(wr, k) && lease[k] == 0 -> late = late | bit(k)
	:: else
	fi
}

/* the leader appends a proposal to the log */
inline propose(m) {
	if
	:: pep == NONE -> pep = rep; ppr = m; pldr = i
	:: else -> qep = rep; qpr = m
	fi
}

/* ok: the leader runs and reaches a majority of running agents (it can commit and grant) */
inline majority() {
	cnt = 0;
	for (j : 0 .. N - 1) {
		if
		:: leader != NONE && areach(leader, j) -> cnt++
		:: else
		fi
	}
	ok = leader != NONE && arun(leader) && cnt >= MAJ
}

/* down: the leader's holistic view of the primary (agent/ha primaryDown) */
inline primary_down() {
	down = false;
	if
	:: !reach(leader, rpr) ->
		if
		:: areach(leader, rpr) && !mrun(rpr) -> down = true   /* its agent says MySQL is down */
		:: else ->
			cnt = 0; lost = 0;
			for (j : 0 .. N - 1) {
				if
				:: j != rpr && areach(leader, j) ->
					cnt++;
					if
					/* its vote: receiver connected, and its agent's own probe reaches it */
					:: !(has(io, j) && src[j] == rpr && reach(j, rpr)) -> lost++
					:: else
					fi
				:: else
				fi
			}
			down = (cnt > 0 && 2 * lost > cnt)
		fi
	:: else
	fi
}

/* the agent's pass (decideNode and its actions) */
inline node_pass() {
	if
	:: !mrun(i) ->
		/* only a server that certainly is not running (crashed, not frozen) gives its lease up
		 * early: it restarts read-only */
		if
		:: vpr[i] == i && lease[i] > 0 && !has(mup, i) ->
			lease[i] = 0;
			if
			:: ok && conn(i, leader) && rep == vep[i] && rpr == i -> lrel = true
			:: else
			fi
#ifdef STALL_RENEW
		/* ha.lease shorter than ha.detection_timeout: a frozen (stalled) server's held lease is
		 * renewed while the stall may still be shorter than detection */
		:: vpr[i] == i && lease[i] > 0 && has(mup, i) && grantable(i) && rpr == i && !lrel ->
			lease[i] = LEASE + DRIFT; lgrant = 0
#endif
		/* by default a frozen server's lease is left to run out */
		:: else
		fi
	:: mrun(i) && vpr[i] == i ->
		if
		:: lease[i] == 0 -> fence(i)                 /* no lease: fence */
		:: else
		fi;
		/* renewal, granted after the leader confirmed its majority */
		if
		:: grantable(i) && rpr == i && !lrel -> lease[i] = LEASE + DRIFT; lgrant = 0   /* slowest clock */
		:: else
		fi;
		/* open writes: stop replicating, apply the relay log, drop replica config, open */
		if
		:: lease[i] > 0 && (!has(wr, i) || has(io, i)) ->
			io = io & ~bit(i);
#ifdef NO_RELAY_WAIT
			recv[i] = exec[i];                       /* the unapplied relay log is discarded */
#else
			exec[i] = exec[i] | recv[i];
#endif
			src[i] = NONE;
			assert(sub(acked, exec[i]));             /* (b) */
			if
			:: !has(wr, i) -> lastopen = i; printf("EVENT %d opens writes in epoch %d (applied %d, acked %d)\n", i, vep[i], exec[i], acked)
			:: else
			fi;
			wr = wr | bit(i)
		:: else
		fi
	:: mrun(i) && vpr[i] != i && has(wr, i) -> fence(i)
	:: mrun(i) && vpr[i] != i && !has(wr, i) && !reach(i, vpr[i]) && has(io, i) ->
		/* the primary stopped answering this agent (agent/ha stop_receiver, after two probes
		 * in a row): it stops receiving. A pass that does not stop it yet is the model
		 * without this step, checked before; a receiver that cannot reach its source
		 * receives nothing either way. */
		io = io & ~bit(i)
	:: mrun(i) && vpr[i] != i && !has(wr, i) && reach(i, vpr[i]) ->
		if
		:: !sub(exec[i], exec[vpr[i]]) ->             /* errant: stop, stay fenced, report */
			errant = errant | bit(i); io = io & ~bit(i)
		:: else ->
			errant = errant & ~bit(i);
			/* (re)start replication only once the leader confirms the epoch is current and
			 * its primary's lease not revoked */
#ifdef NO_CONFIRM_START
			go = true;
#else
			go = grantable(i) && rpr == vpr[i];
#endif
			if
			:: go && src[i] != vpr[i] -> src[i] = vpr[i]; io = io | bit(i)
			:: go && src[i] == vpr[i] && !has(io, i) && has(wr, vpr[i]) -> io = io | bit(i)
			:: else
			fi
		fi
	:: else
	fi
}

/* the leader's pass (decideCluster: failover and re-election; actions before the proposal) */
inline cluster_pass() {
	primary_down();
	/* the primary's own agent reports its commit path stalled (agent/ha judgeCommits) */
	go = lstall || (areach(i, rpr) && has(stl, rpr));
	if
	/* its lease was released or revoked, and it is back: only a new epoch can renew it */
	:: !go && (lrel || lrev) && reach(i, rpr) && areach(i, rpr) && !has(errant, rpr) ->
		propose(rpr); printf("EVENT leader %d re-elects %d\n", i, rpr)  /* released, back */
	:: !(!go && (lrel || lrev) && reach(i, rpr) && areach(i, rpr) && !has(errant, rpr)) &&
	   !go && !lrel && !(down && ldown >= DETECT) -> skip    /* healthy, or confirming */
	:: !(!go && (lrel || lrev) && reach(i, rpr) && areach(i, rpr) && !has(errant, rpr)) &&
	   (go || lrel || (down && ldown >= DETECT)) ->
		/* a stall needs no detection wait: its agent timed it */
		lstall = go;
		lrev = true;
#ifdef NO_LEASE_WAIT
		go = true;
#else
		go = lrel || lgrant >= PW;
#endif
		/* the candidate: MySQL and agent reachable, not errant, received the most */
		c = NONE; cnt = 0;
		for (k : 0 .. N - 1) {
			if
			:: k != rpr && reach(i, k) ->
				cnt++;
				if
				:: areach(i, k) && !has(errant, k) && (c == NONE || !sub(recv[k], recv[c])) -> c = k
				:: else
				fi
			:: else
			fi
		}
		d = go;         /* the lease allows it */
#ifndef NO_QUARANTINE
		/* the old primary out of reach: an acknowledged write is on ACKS replicas, so enough
		 * must be in view for one to hold it */
		go = go && ((reach(i, rpr) && !lstall) || cnt >= N - ACKS);
#endif
		go = go && c != NONE;
		for (k : 0 .. N - 1) {
			if
			:: go && k != rpr && reach(i, k) && !has(errant, k) && (!reach(i, rpr) || lstall || areach(i, k)) ->
				go = sub(recv[k], recv[c])
			:: else
			fi
		}
		/* blocked: the stall is forgotten, so a healthy old primary can be re-elected instead */
		if
		:: d && !go -> lstall = false
		:: else
		fi;
		/* a reachable old primary is fenced first; the candidate must have what it executed,
		 * unless it stalled: then what it executed may never reach anyone, and the replicas in
		 * view are quarantined as for one out of reach */
		if
		:: go && reach(i, rpr) && has(wr, rpr) -> fence(rpr); go = false
		:: go && reach(i, rpr) && !has(wr, rpr) && !lstall -> go = sub(exec[rpr], recv[c])
		:: else
		fi;
		if
		:: go ->
			/* stop receiving: the candidate, and every replica in view (quarantine) */
			for (k : 0 .. N - 1) {
				if
#ifndef NO_QUARANTINE
				:: k != rpr && k != c && reach(i, k) && (!reach(i, rpr) || lstall) -> io = io & ~bit(k)
#endif
				:: k == c -> io = io & ~bit(k)
				:: else
				fi
			}
			if
			:: !calm   /* the prepare goes on in the background (agent/preparing.go): receivers
			            * stopped, no proposal in this pass; a later pass prepares again. Once
			            * calm, every prepare ends, and the next pass proposes. */
			:: true ->
#ifndef NO_RELAY_WAIT
				exec[c] = exec[c] | recv[c];          /* wait until it applied what it received */
#endif
				propose(c); printf("EVENT leader %d proposes %d in epoch %d\n", i, c, rep)
			fi
		:: else
		fi
	fi
}

#define settled(k) (!(arun(k) && mrun(k) && vpr[k] == k && lease[k] == 0 && has(wr, k)))
#define passed(k) (!arun(k) || has(stepped, k))

init {
	atomic {
		mup = bit(N) - 1; aup = mup; wr = bit(0); lease[0] = LEASE;
		for (k : 1 .. N - 1) { io = io | bit(k); src[k] = 0 }
		for (k : 0 .. N - 1) { vep[k] = 1; vpr[k] = 0 }
		src[0] = NONE;
		/* the Raft leader: the primary's agent (LEADER=0) or another member's (LEADER=1) */
		leader = LEADER
	}
	do
	/* clients write to a writable server */
	:: atomic { nw < MAXW -> select(k : 0 .. N - 1);
		if
		:: mrun(k) && has(wr, k) && !has(stl, k) ->
			assert(sub(acked, exec[k]));
			exec[k] = exec[k] | bit(nw); origin[nw] = k; printf("EVENT client writes w%d on %d\n", nw, k); nw++
		:: else
		fi }
	/* lossless semi-sync: acknowledged once a replica connected to the origin received it */
	:: atomic { select(c : 0 .. MAXW - 1); select(k : 0 .. N - 1);
		if
		:: c < nw && !has(acked, c) && !has(failed, c) && mrun(origin[c]) && k != origin[c] && mrun(k) && has(io, k) &&
		   src[k] == origin[c] && conn(k, origin[c]) && has(recv[k], c) ->
			assert(lastopen == origin[c]);            /* (a') */
			acked = acked | bit(c); printf("EVENT %d acknowledges w%d (%d received it)\n", origin[c], c, k)
		:: else
		fi }
	/* the IO thread receives, the SQL thread applies */
	:: atomic { select(k : 0 .. N - 1);
		if
		:: mrun(k) && has(io, k) && src[k] != NONE && reach(k, src[k]) && !sub(exec[src[k]], recv[k]) ->
			assert(sub(exec[k], exec[src[k]]));       /* (c) */
			recv[k] = recv[k] | exec[src[k]]
		:: else
		fi }
	:: atomic { select(k : 0 .. N - 1);
		if
		:: mrun(k) && !sub(recv[k], exec[k]) -> exec[k] = exec[k] | recv[k]
		:: else
		fi }

	/* an agent's pass: learn the record, act on the own server, and lead */
	:: atomic { select(i : 0 .. N - 1);
		if
		:: arun(i) && !has(stepped, i) ->
			if
			:: calm -> stepped = stepped | bit(i)
			:: else
			fi;
			if
			:: leader != NONE && areach(i, leader) -> vep[i] = rep; vpr[i] = rpr
			:: else
			fi;
			majority();
			node_pass();
			if
			:: i == leader && ok && (pep == NONE || (pldr != i && qep == NONE)) && rep < MAXE -> cluster_pass()
			:: else
			fi
		:: else
		fi }

	/* Raft: a proposal commits while the leader reaches a majority, with compare-and-set */
	:: atomic { pep != NONE -> majority();
		if
		:: ok ->
#ifndef NO_EPOCH_CAS
			if
			:: pep == rep -> rep++; rpr = ppr; lrev = false; lrel = false; lstall = false; ldown = 0;
				printf("EVENT commit: epoch %d primary %d\n", rep, rpr)
			:: else
			fi;
#else
			rep++; rpr = ppr; lrev = false; lrel = false; lstall = false; ldown = 0;
			printf("EVENT commit without compare-and-set: epoch %d primary %d (decided in %d)\n", rep, rpr, pep);
#endif
			pep = qep; ppr = qpr; pldr = leader; qep = NONE
		:: else
		fi }
	/* an election, once the leader stopped or lost its majority: the winner counts any lease
	 * from its own election */
	:: atomic { majority(); ok_now = ok; select(k : 0 .. N - 1);
		if
		:: k != leader && arun(k) && !ok_now ->
			d = leader; leader = k; majority();
			if
			:: ok -> printf("EVENT %d elected leader\n", k); lgrant = 0; ldown = 0; lrev = false; lrel = false; lstall = false; vep[k] = rep; vpr[k] = rpr
			:: else -> leader = d
			fi
		:: else
		fi }

	/* time: a running agent acts on an expired lease within the unit */
	:: atomic { ALL(settled) && (!calm || (ALL(passed) && pep == NONE && leader != NONE && arun(leader))) ->
		stepped = 0; printf("EVENT ---- time unit passes\n");
		for (k : 0 .. N - 1) {
			if
			:: lease[k] > 0 -> lease[k]--
			:: else
			fi;
			/* calm: replication keeps up */
			if
			:: calm && mrun(k) && has(io, k) && src[k] != NONE && reach(k, src[k]) && sub(exec[k], exec[src[k]]) ->
				recv[k] = recv[k] | exec[src[k]]
			:: else
			fi;
			if
			:: calm && mrun(k) -> exec[k] = exec[k] | recv[k]
			:: else
			fi
		}
		if
		:: lgrant < PW -> lgrant++
		:: else
		fi;
		if
		:: leader != NONE && arun(leader) ->
			primary_down();
			if
			:: down && ldown < DETECT -> ldown++
			:: !down -> ldown = 0
			:: else
			fi
		:: else
		fi;
		if
		:: calm ->
			if
			:: calmt <= CALM_BOUND -> calmt++
			:: else
			fi;
			assert(calmt <= CALM_BOUND || (has(wr, rpr) && lease[rpr] > 0))   /* (d) */
		:: else
		fi }

	/* faults */
	:: atomic { !calm && faults < MAXF -> faults++; select(k : 0 .. N - 1);
		if
		:: mup = mup & ~bit(k); mfz = mfz & ~bit(k); fence(k);
		   printf("FAULT mysqld %d crashes\n", k)
		:: aup = aup & ~bit(k); afz = afz & ~bit(k); lease[k] = 0;
		   printf("FAULT agent %d crashes\n", k)
		:: mup = mup & ~bit(k); mfz = mfz & ~bit(k); fence(k);
		   aup = aup & ~bit(k); afz = afz & ~bit(k); lease[k] = 0;
		   printf("FAULT host %d crashes\n", k)
		:: mfz = mfz | bit(k); printf("FAULT mysqld %d frozen\n", k)
		:: afz = afz | bit(k); printf("FAULT agent %d frozen\n", k)
		:: select(d : 1 .. bit(N - 1) - 1); grp = d; printf("FAULT partition: members in set %d cut off\n", d)
		:: stl = stl | bit(k); printf("FAULT commit path of %d stalls\n", k)
		fi }
	/* recoveries: a restarted mysqld is read-only */
	:: atomic { !calm -> select(k : 0 .. N - 1);
		if
		:: !has(mup, k) -> mup = mup | bit(k); printf("HEAL mysqld %d restarts read-only\n", k)
		:: !has(aup, k) -> aup = aup | bit(k); printf("HEAL agent %d restarts\n", k); thawed(k)
		:: has(mfz, k) -> mfz = mfz & ~bit(k); printf("HEAL mysqld %d thaws\n", k); thawed(k)
		:: has(afz, k) -> afz = afz & ~bit(k); printf("HEAL agent %d thaws\n", k); thawed(k)
		:: grp != 0 -> grp = 0; printf("HEAL partition heals\n")
		:: has(stl, k) -> stl = stl & ~bit(k); printf("HEAL commit path of %d\n", k)
		:: else
		fi }
	/* calm: no more faults; everything heals but perhaps one host stays down */
	:: atomic { !calm -> calm = true; stepped = 0; pep = NONE; qep = NONE;
		for (k : 0 .. N - 1) {
			if
			:: has(mfz | afz, k) || !has(aup, k) -> thawed(k)
			:: else
			fi
		}
		mfz = 0; afz = 0; grp = 0; stl = 0; mup = bit(N) - 1; aup = mup;
		if
		:: printf("CALM everything heals\n")
		:: select(k : 0 .. N - 1);
		   mup = mup & ~bit(k); aup = aup & ~bit(k); fence(k); lease[k] = 0;
		   printf("CALM everything heals but host %d stays down\n", k);
		   if
		   :: leader == k -> leader = NONE
		   :: else
		   fi
		fi }
	/* (a) one writer: never two servers open for writes, counting a server whose agent runs
	 * and that is not late (a late one cannot have a write acknowledged, by (a') below) */
	:: atomic { select(c : 0 .. N - 1); select(k : 0 .. N - 1);
		assert(c == k || !(open(c) && open(k))) }
	od
}
