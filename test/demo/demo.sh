#!/usr/bin/env bash
# The `make demo` walk-through: three real servers and three shoal agents, each pair on its own
# loopback address (a simulated host). The agents elect a primary, the primary host is killed
# (mysqld and agent), the agents fail over, and the old host comes back as a replica.
# Run through `make demo`, which installs the servers and builds bin/shoal and bin/rig first.
set -euo pipefail
cd "$(dirname "$0")/../.."

FLAVOR=${FLAVOR:-mariadb}
HOSTS=(127.0.0.11 127.0.0.12 127.0.0.13)
NAMES=(db1 db2 db3)
DIR=$(mktemp -d /tmp/shoal-demo.XXXXXX)
STATE="$DIR/rig.json"
declare -A AGENT_PID

cleanup() {
  for n in "${!AGENT_PID[@]}"; do kill -9 "${AGENT_PID[$n]}" 2>/dev/null || true; done
  for n in "${!AGENT_PID[@]}"; do while kill -0 "${AGENT_PID[$n]}" 2>/dev/null; do sleep 0.1; done; done
  bin/rig down --state "$STATE" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
now_ms() { date +%s%3N; }

step "Start three $FLAVOR servers on ${HOSTS[*]}, each read-only as shoal requires"
bin/rig up --flavor "$FLAVOR" --n 3 --hosts "$(IFS=,; echo "${HOSTS[*]}")" --state "$STATE"

umask 077
printf '%s\n' shoal-root-pw >"$DIR/root.pw"
head -c 18 /dev/urandom | base64 >"$DIR/repl.pw"
head -c 24 /dev/urandom | base64 >"$DIR/admin.token"
head -c 32 /dev/urandom | base64 >"$DIR/gossip.key"
step "A cluster CA and a certificate per member: Raft and the agents' calls to each other use mutual TLS"
show bin/shoal certs --dir "$DIR/tls" "${NAMES[0]}=${HOSTS[0]}" "${NAMES[1]}=${HOSTS[1]}" "${NAMES[2]}=${HOSTS[2]}"
# The CLI reads the agent's variables: where an admin API is, the token, and the CA to trust.
export SHOAL_ADMIN_TOKEN_FILE="$DIR/admin.token" SHOAL_ADMIN_LISTEN="${HOSTS[1]}:7948" SHOAL_RAFT_TLS_CA_FILE="$DIR/tls/ca.crt"

start_agent() { # index
  local i=$1 h=${HOSTS[$1]} n=${NAMES[$1]}
  bin/shoal agent --cluster demo --node.id "$n" --node.data_dir "$DIR/$n" \
    --mysql.addr "$h:3306" --mysql.password_file "$DIR/root.pw" --mysql.repl_password_file "$DIR/repl.pw" \
    --gossip.bind "$h:7946" --gossip.seeds "${HOSTS[0]}:7946,${HOSTS[1]}:7946" --gossip.key_files "$DIR/gossip.key" \
    --raft.bind "$h:7947" --raft.bootstrap_expect 3 \
    --raft.tls.cert_file "$DIR/tls/$n.crt" --raft.tls.key_file "$DIR/tls/$n.key" --raft.tls.ca_file "$DIR/tls/ca.crt" \
    --admin.listen "$h:7948" --admin.token_file "$DIR/admin.token" --dns.listen "$h:8053" --log.format text \
    >>"$DIR/$n.log" 2>&1 &
  AGENT_PID[$n]=$!
  disown "$!" # killing it is part of the show; no job notices from bash
}

wait_primary() { # [not-this-address] -> prints the primary's MySQL address
  local deadline=$((SECONDS + 60)) p
  while ((SECONDS < deadline)); do
    for h in "${HOSTS[@]}"; do
      if p=$(bin/shoal status --addr "$h:7948" -o primary 2>/dev/null) && [ "$p" != "${1:-}" ]; then
        echo "$p"; return 0
      fi
    done
    sleep 0.1
  done
  echo "no primary within 60s; the agents said:" >&2; tail -n 15 "$DIR"/*.log >&2; return 1
}

name_of() { # MySQL address -> member name
  local i
  for i in 0 1 2; do
    if [ "${HOSTS[$i]}" = "${1%:*}" ]; then echo "${NAMES[$i]}"; fi
  done
}

srv() { dig @"$1" -p 8053 SRV "$2" +short +time=1 +tries=1 2>/dev/null || true; }

# wait_dns PRIMARY [REPLICA...]: waits until the DNS of every agent in DNS_HOSTS names PRIMARY,
# alone, as the primary and lists it first and each REPLICA after it, so the answers shown next
# are the settled ones rather than whatever a race with gossip gives.
wait_dns() {
  local p=$1 deadline=$((SECONDS + 60)) h r all ok
  shift
  while ((SECONDS < deadline)); do
    ok=1
    for h in "${DNS_HOSTS[@]}"; do
      all=$(srv "$h" _mysql._tcp.demo.shoal)
      if [ "$(srv "$h" _mysql._tcp.primary.demo.shoal)" != "0 100 3306 $p.demo.shoal." ] ||
        ! grep -Fqx "0 100 3306 $p.demo.shoal." <<<"$all"; then
        ok=0; break
      fi
      for r in "$@"; do
        grep -qE "^10 [0-9]+ 3306 $r\.demo\.shoal\.\$" <<<"$all" || { ok=0; break 2; }
      done
    done
    ((ok)) && return 0
    sleep 0.05
  done
  echo "DNS did not name primary $p and replicas ${*:-none} at every agent within 60s; it said:" >&2
  for h in "${DNS_HOSTS[@]}"; do echo "@$h:" >&2; srv "$h" _mysql._tcp.demo.shoal >&2; done
  tail -n 15 "$DIR"/*.log >&2
  return 1
}

step "Start an agent beside each server: gossip (encrypted), Raft (mutual TLS), the control loop"
for i in 0 1 2; do start_agent "$i"; done
t0=$(now_ms)
primary=$(wait_primary)
echo "primary elected and writable after $(( $(now_ms) - t0 )) ms: $primary"
pname=$(name_of "$primary")
replicas=(); for n in "${NAMES[@]}"; do [ "$n" = "$pname" ] || replicas+=("$n"); done
DNS_HOSTS=("${HOSTS[@]}")
wait_dns "$pname" "${replicas[@]}"
echo "every agent's DNS names $pname primary and lists replicas ${replicas[*]} after $(( $(now_ms) - t0 )) ms"
show bin/shoal status

step "Every agent answers DNS: SRV records with the primary first, replicas weighted by lag"
show dig @"${HOSTS[1]}" -p 8053 SRV _mysql._tcp.demo.shoal +short

step "Write through the primary as the application user"
mysql_cli() { mariadb --protocol=tcp -h "${1%:*}" -P "${1#*:}" -u app -pshoal-app-pw app "${@:2}"; }
show mysql_cli "$primary" -e "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, item VARCHAR(40));
  INSERT INTO orders (item) VALUES ('anchovy'), ('herring'), ('sardine');"

victim_host=${primary%:*}
for i in 0 1 2; do [ "${HOSTS[$i]}" = "$victim_host" ] && victim=$i; done
vname=${NAMES[$victim]}
step "Kill the primary's host ($vname at $victim_host): SIGKILL its mysqld and its agent"
t0=$(now_ms)
bin/rig kill --state "$STATE" "$vname"
kill -9 "${AGENT_PID[$vname]}"; unset "AGENT_PID[$vname]"
new=$(wait_primary "$primary")
t1=$(now_ms)
nname=$(name_of "$new")
DNS_HOSTS=(); rest=()
for i in 0 1 2; do
  [ "$i" = "$victim" ] && continue
  DNS_HOSTS+=("${HOSTS[$i]}")
  [ "${NAMES[$i]}" = "$nname" ] || rest+=("${NAMES[$i]}")
done
wait_dns "$nname"
t2=$(now_ms)
until mysql_cli "$new" -e "INSERT INTO orders (item) VALUES ('after failover')" 2>/dev/null; do sleep 0.05; done
t3=$(now_ms)
echo "new primary $new: published after $((t1 - t0)) ms, in every surviving agent's DNS after $((t2 - t0)) ms," \
  "first write acknowledged after $((t3 - t0)) ms"
wait_dns "$nname" "${rest[@]}"
echo "replica ${rest[*]} listed by every surviving agent's DNS after $(( $(now_ms) - t0 )) ms"
show bin/shoal status --addr "${DNS_HOSTS[0]}:7948"
for h in "${DNS_HOSTS[@]}"; do show dig @"$h" -p 8053 SRV _mysql._tcp.primary.demo.shoal +short; done
show dig @"${DNS_HOSTS[-1]}" -p 8053 SRV _mysql._tcp.demo.shoal +short
show mysql_cli "$new" -e "SELECT * FROM orders"

step "Bring the old host back: it rejoins as a replica of the new primary"
bin/rig restart --state "$STATE" "$vname"
start_agent "$victim"
deadline=$((SECONDS + 60))
until bin/shoal status --addr "$victim_host:7948" -o json 2>/dev/null | grep -q '"role": "replica"'; do
  ((SECONDS < deadline)) || { echo "old primary did not rejoin" >&2; exit 1; }
  sleep 0.2
done
DNS_HOSTS=("${HOSTS[@]}")
wait_dns "$nname" "${rest[@]}" "$vname"
show bin/shoal status
show dig @"$victim_host" -p 8053 SRV _mysql._tcp.demo.shoal +short

step "Cleaning up"
