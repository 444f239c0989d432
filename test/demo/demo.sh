#!/usr/bin/env bash
# The `make demo` walk-through: three real servers on their own loopback addresses, wired into a
# lossless semi-sync primary and two replicas with `shoal mysql` commands, shown, then removed.
# Run through `make demo`, which installs the servers and builds bin/shoal and bin/rig first.
set -euo pipefail
cd "$(dirname "$0")/../.."

FLAVOR=${FLAVOR:-mariadb}
HOSTS=(127.0.0.11 127.0.0.12 127.0.0.13)
PORT=${PORT:-3306}
ADDRS=("${HOSTS[@]/%/:$PORT}")
DIR=$(mktemp -d /tmp/shoal-demo.XXXXXX)
STATE="$DIR/rig.json"

cleanup() {
  bin/rig down --state "$STATE" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "Start three $FLAVOR servers on ${HOSTS[*]} (each read-only, as shoal requires)"
bin/rig up --flavor "$FLAVOR" --n 3 --port "$PORT" --hosts "$(IFS=,; echo "${HOSTS[*]}")" --state "$STATE"

printf '%s\n' shoal-root-pw >"$DIR/root.pw"
head -c 18 /dev/urandom | base64 >"$DIR/repl.pw"
chmod 600 "$DIR"/*.pw
auth=(--password-file "$DIR/root.pw")
repl=(--repl-password-file "$DIR/repl.pw")

show bin/shoal mysql status "${auth[@]}" "${ADDRS[@]}"

step "Promote ${ADDRS[0]}: lossless semi-sync (AFTER_SYNC, 1 ack, never falls back to async), then writes on"
show bin/shoal mysql promote "${auth[@]}" "${repl[@]}" "${ADDRS[0]}"

step "Point the other two at it with GTID auto-position (each checked for errant GTIDs first)"
for addr in "${ADDRS[@]:1}"; do
  show bin/shoal mysql replicate "${auth[@]}" "${repl[@]}" --from "${ADDRS[0]}" "$addr"
done

step "Write through the primary as the application user"
client=(mariadb --protocol=tcp -h "${HOSTS[0]}" -P "$PORT" -u app -pshoal-app-pw app)
show "${client[@]}" -e "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, item VARCHAR(40));
  INSERT INTO orders (item) VALUES ('anchovy'), ('herring'), ('sardine');"
sleep 1

step "Cluster status: one writable primary, two replicas acking semi-sync"
show bin/shoal mysql status "${auth[@]}" "${ADDRS[@]}"

step "A write reaching a replica is refused (read-only fence)"
if mariadb --protocol=tcp -h "${HOSTS[1]}" -P "$PORT" -u app -pshoal-app-pw app \
     -e "INSERT INTO orders (item) VALUES ('stray')" 2>"$DIR/err"; then
  echo "unexpected: the replica accepted a write"; exit 1
fi
cat "$DIR/err"

step "Errant-GTID check of each replica against the primary"
for addr in "${ADDRS[@]:1}"; do
  show bin/shoal mysql errant "${auth[@]}" --primary "${ADDRS[0]}" "$addr"
done

step "Cleaning up"
