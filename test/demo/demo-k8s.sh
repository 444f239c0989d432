#!/usr/bin/env bash
# The `make demo-k8s` walk-through: the test rig's real three-node Kubernetes cluster (test/kube:
# kubelets, containerd, kube-proxy, CoreDNS, no Docker), the Helm chart installed with three
# members, a client pod writing through the <release>-primary Service, the primary's pod deleted,
# and the labels, the Service's EndpointSlice and the writes following the new primary while
# the StatefulSet recreates the pod, which rejoins as a replica. Then the primary's node is lost
# (`kube lose-node`: its kubelet, containerd and containers killed, its packets dropped): another
# member takes over, and the agents' Raft leader heals the lost member: it deletes the old pod
# with its claim (the rig's volumes are local), force-deletes the pod stuck Terminating once the
# old primary is provably fenced, and the StatefulSet recreates it on another node, where it
# re-seeds and rejoins as a replica. Times are measured by polling kubectl (a few hundred ms
# apart), so they are upper bounds. FLAVOR=mysql for MySQL 9.7.
# Run through `make demo-k8s`, which builds the rig and its images first (make deps).
set -euo pipefail
cd "$(dirname "$0")/../.."

FLAVOR=${FLAVOR:-mariadb}
case $FLAVOR in
mariadb) IMAGE=shoal.local/mariadb:10.11 CLIENT=(mariadb) ;;
mysql) IMAGE=shoal.local/mysql:9.7 CLIENT=(mysql --get-server-public-key) ;;
*) echo "FLAVOR must be mariadb or mysql, not $FLAVOR" >&2; exit 2 ;;
esac
RELEASE=shoal
SELECTOR=app.kubernetes.io/instance=$RELEASE
DIR=$(mktemp -d /tmp/shoal-demo-k8s.XXXXXX)
go build -o "$DIR/kube" ./test/cmd/kube
PATH=$("$DIR/kube" bindir):$PATH

# One rig per machine: wait for whoever else runs it (tests, another demo).
exec 9>/tmp/shoal-kube.lock
if ! flock -n 9; then
  echo "another run uses the Kubernetes rig (/tmp/shoal-kube.lock); waiting for it"
  flock 9
fi

cleanup() {
  local rc=$?
  if [ -n "${WRITER:-}" ]; then kill "$WRITER" 2>/dev/null || true; fi
  if ((rc != 0)) && [ -n "${KUBECONFIG:-}" ]; then
    local keep
    keep=$(mktemp /tmp/shoal-demo-k8s-failed.XXXXXX)
    {
      kubectl get pods -o wide -L shoal.io/role
      kubectl get events --sort-by=.lastTimestamp
      kubectl logs --tail -1 -l "$SELECTOR" -c shoal --prefix
      cat "$DIR/writes.log"
    } >"$keep" 2>&1 || true
    echo "demo failed; the cluster was:" >&2
    kubectl get pods -o wide -L shoal.io/role >&2 || true
    echo "pods, events, the agents' logs and the writes are kept in $keep" >&2
  fi
  echo "Stopping the rig and undoing its host changes"
  "$DIR/kube" down || rc=1
  rm -rf "$DIR"
  exit "$rc"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
now_ms() { date +%s%3N; }
secs() { printf '%d.%03d s' $(($1 / 1000)) $(($1 % 1000)); } # ms -> "s.mmm s"

# until_ok LIMIT_S WHAT COMMAND...: runs COMMAND until it succeeds, at most LIMIT_S seconds.
until_ok() {
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then echo "no $what within ${limit}s" >&2; return 1; fi
    sleep 0.2
  done
}

all_ready() {
  [ "$(kubectl get pods -l "$SELECTOR" -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{end}')" = TrueTrueTrue ]
}
node_of() { kubectl get pod "$1" -o jsonpath='{.spec.nodeName}'; }
claim_uid() { kubectl get pvc "data-$1" -o jsonpath='{.metadata.uid}'; }
new_primary() { # OLD: one pod other than OLD is labelled primary
  local p
  p=$(primaries)
  [ -n "$p" ] && [ "$p" = "${p%% *}" ] && [ "$p" != "$1" ]
}
primaries() { kubectl get pods -l "$SELECTOR,shoal.io/role=primary" -o jsonpath='{.items[*].metadata.name}'; }
pod_ip() { kubectl get pod "$1" -o jsonpath='{.status.podIP}'; }
slice_ips() { # the ready addresses of a Service's EndpointSlices
  kubectl get endpointslices -l "kubernetes.io/service-name=$1" \
    -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{" "}{end}'
}
# one_primary [NOT]: exactly one pod labelled primary, not NOT, and the -primary slice names it.
one_primary() {
  new_primary "${1:-}" || return 1
  [ "$(slice_ips "$RELEASE-primary")" = "$(pod_ip "$(primaries)") " ]
}
ready_replica() { # POD OLD_UID: recreated, Ready, labelled replica, in the -replicas slice
  [ "$(kubectl get pod "$1" -o jsonpath='{.metadata.uid}')" != "$2" ] || return 1
  [ "$(kubectl get pod "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.metadata.labels.shoal\.io/role}')" = "True replica" ] || return 1
  [[ " $(slice_ips "$RELEASE-replicas")" == *" $(pod_ip "$1") "* ]]
}
deleted() { # POD UID: the pod with UID is Terminating or gone
  local got
  got=$(kubectl get pod "$1" --ignore-not-found -o jsonpath='{.metadata.uid} {.metadata.deletionTimestamp}') || return 1
  [ "${got%% *}" != "$2" ] || [ -n "${got#* }" ]
}
gone() { # POD UID: no pod with UID is left (the name may be recreated already)
  local got
  got=$(kubectl get pod "$1" --ignore-not-found -o jsonpath='{.metadata.uid}') || return 1
  [ "$got" != "$2" ]
}
moved_replica() { # POD OLD_UID NODE CLAIM_UID: a replica again, on a node other than NODE, on a new claim
  ready_replica "$1" "$2" || return 1
  [ "$(node_of "$1")" != "$3" ] && [ -n "$(claim_uid "$1")" ] && [ "$(claim_uid "$1")" != "$4" ]
}
event_s() { # REASON POD T0: seconds from T0 (ms) to POD's first REASON Event (1 s resolution)
  local at
  at=$(kubectl get events --field-selector "reason=$1,involvedObject.name=$2" -o jsonpath='{.items[0].firstTimestamp}')
  [ -n "$at" ] && echo "$(($(date -d "$at" +%s) - $3 / 1000)) s"
}
# shellcheck disable=SC2016 # awk's fields
first_write() { # SERVER T0: the time (ms) of the first write SERVER acknowledged after T0
  awk -v t="$2" -v p="$1" '$1 > t && $2 == "ok" && $4 == p { print $1; found = 1; exit } END { exit !found }' "$DIR/writes.log"
}
failed_between() { # T0 T1: how many writes failed between T0 and T1 (ms)
  awk -v t="$1" -v w="$2" '$1 > t && $1 < w && $2 == "fail"' "$DIR/writes.log" | wc -l
}
# follow_primary OLD T0: waits for another pod than OLD labelled primary, the -primary Service
# naming it, and its first write acknowledged after T0; sets NEW, t_label, t_slice and t_write.
follow_primary() {
  until_ok 120 "new primary labelled" new_primary "$1"
  t_label=$(now_ms)
  NEW=$(primaries)
  until_ok 120 "the -primary Service following $NEW" one_primary "$1"
  t_slice=$(now_ms)
  until_ok 120 "a write acknowledged by $NEW" first_write "$NEW" "$2"
  t_write=$(first_write "$NEW" "$2")
}
sql() { # [CLIENT FLAGS] SQL: SQL through the -primary Service from the client pod, as the app user
  kubectl exec "$CLIENT_POD" -- env MYSQL_PWD="$APP_PW" "${CLIENT[@]}" -h "$RELEASE-primary" -u app app "$@"
}

step "Start a real three-node Kubernetes cluster on this machine (etcd, apiserver, controllers, CoreDNS, kube-proxy; a kubelet and containerd per node)"
t=$(now_ms)
KUBECONFIG=$("$DIR/kube" up 2>"$DIR/up.log") || { cat "$DIR/up.log" >&2; exit 1; }
export KUBECONFIG
echo "up in $(secs $(($(now_ms) - t)))"
show kubectl get nodes -o wide

# Healing on, for the node-loss scene. Its grace, 45 s, is longer than the first scene's recreated
# pod takes to be a replica again (about 18 s on the rig) and than a lost node takes to be
# NotReady (10-22 s), so the lost member's first deletion takes its claim; the pods' own
# termination grace, 20 s, gives a deleted primary's preStop time to hand its role over and is
# what a pod on a lost node stays Terminating before it may be force-deleted.
HEAL=terminationGracePeriodSeconds=20,heal.enabled=true,heal.grace=45s,heal.minInterval=30s,heal.deleteVolume=true,heal.forceDeleteTerminating=true

step "helm install a three-member $FLAVOR cluster: a StatefulSet, the shoal agent as a sidecar of each server, healing on"
t=$(now_ms)
show helm install "$RELEASE" charts/shoal -f "charts/shoal/ci/test-values-$FLAVOR.yaml" --set "$HEAL" --wait=false
until_ok 240 "three pods Ready" all_ready
until_ok 60 "one primary named by the -primary Service" one_primary
echo "3 pods Ready, one labelled primary and behind $RELEASE-primary $(secs $(($(now_ms) - t))) after helm install"
show kubectl get pods -o wide -L shoal.io/role
show kubectl get endpointslices -l "kubernetes.io/service-name in ($RELEASE-primary,$RELEASE-replicas)"

# start_writer POD FIRST: POD writes through the -primary Service, ids from FIRST on, one INSERT
# per connection every 100 ms, until /tmp/stop exists in it. Each write appends "<ms> ok <id>
# <server>" to writes.log once acknowledged, "<ms> fail <id>" otherwise.
start_writer() {
  CLIENT_POD=$1
  # shellcheck disable=SC2016 # expanded in the pod
  kubectl exec "$1" -- env MYSQL_PWD="$APP_PW" sh -c '
    i=$(($1 - 1))
    shift
    while [ ! -e /tmp/stop ]; do
      i=$((i + 1))
      if host=$(timeout 5 "$@" -h '"$RELEASE"'-primary -u app app -N -B --connect-timeout=2 \
          -e "INSERT INTO demo (id, host) VALUES ($i, @@hostname); SELECT @@hostname" 2>/dev/null); then
        echo "$(date +%s%3N) ok $i $host"
      else
        echo "$(date +%s%3N) fail $i"
      fi
      sleep 0.1
    done' sh "$2" "${CLIENT[@]}" >>"$DIR/writes.log" &
  WRITER=$!
}
stop_writer() {
  kubectl exec "$CLIENT_POD" -- touch /tmp/stop
  wait "$WRITER" || true
  WRITER=
}
# client_pod NAME [NODE]: a pod to run the client in, on NODE if given.
client_pod() {
  local pin=()
  if [ -n "${2:-}" ]; then pin=(--overrides "{\"apiVersion\": \"v1\", \"spec\": {\"nodeName\": \"$2\"}}"); fi
  show kubectl run "$1" --image="$IMAGE" --image-pull-policy=Never --restart=Never "${pin[@]}" --command -- sleep infinity
  until_ok 60 "the client pod $1 Ready" kubectl wait --for=condition=Ready "pod/$1" --timeout=5s
}

step "A client pod writes through the $RELEASE-primary Service, one INSERT per connection, every 100 ms"
APP_PW=$(kubectl get secret "$RELEASE-auth" -o jsonpath='{.data.app-password}' | base64 -d)
client_pod client
CLIENT_POD=client
until_ok 60 "the table created through the Service" sql -e "CREATE TABLE IF NOT EXISTS demo (id INT PRIMARY KEY, host VARCHAR(64), at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP(3))"
start_writer client 1
until_ok 30 "the first acknowledged write" grep -q ' ok ' "$DIR/writes.log"
sleep 3
PRIMARY=$(primaries)
echo "$(grep -c ' ok ' "$DIR/writes.log") writes acknowledged so far, by $PRIMARY"

step "Delete the primary's pod, $PRIMARY: its agent hands the role over, the StatefulSet recreates the pod"
OLD_UID=$(kubectl get pod "$PRIMARY" -o jsonpath='{.metadata.uid}')
t0=$(now_ms)
show kubectl delete pod "$PRIMARY" --wait=false
follow_primary "$PRIMARY" "$t0"
until_ok 240 "$PRIMARY recreated and serving as a replica" ready_replica "$PRIMARY" "$OLD_UID"
t_back=$(now_ms)
failed=$(failed_between "$t0" "$t_write")
echo "after the delete:"
printf '  %-48s %s\n' "$NEW labelled primary" "$(secs $((t_label - t0)))" \
  "$RELEASE-primary's EndpointSlice names it" "$(secs $((t_slice - t0)))" \
  "first write acknowledged by $NEW ($failed failed)" "$(secs $((t_write - t0)))" \
  "$PRIMARY recreated, Ready, replica" "$(secs $((t_back - t0)))"
show kubectl get pods -o wide -L shoal.io/role
show kubectl get endpointslices -l "kubernetes.io/service-name in ($RELEASE-primary,$RELEASE-replicas)"
echo "$ kubectl get events  # the agents' Events about roles"
kubectl get events --sort-by=.lastTimestamp -o custom-columns=OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message |
  grep -E '^OBJECT|Failover|Switchover|Fenced|Rejoined|ErrantGTIDs' || true


step "The primary's node is lost"
until_ok 120 "three pods Ready and one primary" eval 'all_ready && one_primary'
PRIMARY=$(primaries)
NODE=$(node_of "$PRIMARY")
if [ "$(node_of "$CLIENT_POD")" = "$NODE" ]; then
  # The client would go down with the node: the writes move to a client pod on another node.
  other=$(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | grep -vx "$NODE" | head -1)
  echo "$CLIENT_POD runs on $NODE too: the writes move to a client pod on $other first"
  client_pod client-2 "$other"
  stop_writer
  start_writer client-2 "$(awk '$3 > m { m = $3 } END { print m + 1 }' "$DIR/writes.log")"
fi
echo "$PRIMARY is the primary, on $NODE; the client writes from $CLIENT_POD on $(node_of "$CLIENT_POD")"
OLD_UID=$(kubectl get pod "$PRIMARY" -o jsonpath='{.metadata.uid}')
OLD_CLAIM=$(claim_uid "$PRIMARY")
t0=$(now_ms)
show "$DIR/kube" lose-node "$NODE"
follow_primary "$PRIMARY" "$t0"
until_ok 180 "$PRIMARY deleted by the leader" deleted "$PRIMARY" "$OLD_UID"
t_deleted=$(now_ms)
show kubectl get nodes
show kubectl get pods -o wide -L shoal.io/role
until_ok 180 "$PRIMARY force-deleted" gone "$PRIMARY" "$OLD_UID"
t_gone=$(now_ms)
until_ok 300 "$PRIMARY recreated on another node with a new claim, serving as a replica" moved_replica "$PRIMARY" "$OLD_UID" "$NODE" "$OLD_CLAIM"
t_back=$(now_ms)
failed=$(failed_between "$t0" "$t_write")
until_ok 30 "the leader's HealDeleteVolume Event" event_s HealDeleteVolume "$PRIMARY" "$t0"
until_ok 30 "the leader's HealForceDelete Event" event_s HealForceDelete "$PRIMARY" "$t0"
echo "after $NODE was lost:"
printf '  %-48s %s\n' "$NEW labelled primary" "$(secs $((t_label - t0)))" \
  "$RELEASE-primary's EndpointSlice names it" "$(secs $((t_slice - t0)))" \
  "first write acknowledged by $NEW ($failed failed)" "$(secs $((t_write - t0)))" \
  "HealDeleteVolume Event (1 s resolution)" "$(event_s HealDeleteVolume "$PRIMARY" "$t0")" \
  "$PRIMARY Terminating" "$(secs $((t_deleted - t0)))" \
  "HealForceDelete Event (1 s resolution)" "$(event_s HealForceDelete "$PRIMARY" "$t0")" \
  "$PRIMARY force-deleted" "$(secs $((t_gone - t0)))" \
  "$PRIMARY on $(node_of "$PRIMARY"), new claim, Ready, replica" "$(secs $((t_back - t0)))"
show kubectl get pods -o wide -L shoal.io/role
show kubectl get pvc
show kubectl get endpointslices -l "kubernetes.io/service-name in ($RELEASE-primary,$RELEASE-replicas)"
echo "$ kubectl get events  # the agents' Events about the failover and the healing"
kubectl get events --sort-by=.lastTimestamp -o custom-columns=LAST:.lastTimestamp,OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message |
  grep -E '^LAST|Failover|Heal' || true

step "Every acknowledged write is on the new primary"
stop_writer
acked=$(awk '$2 == "ok" { print $3 }' "$DIR/writes.log" | sort -n)
held=$(sql -N -B -e "SELECT id FROM demo ORDER BY id")
missing=$(comm -23 <(echo "$acked" | sort) <(echo "$held" | sort))
show sql -t -e "SELECT host AS server, COUNT(*) AS writes, MIN(at) AS first, MAX(at) AS last FROM demo GROUP BY host ORDER BY first"
if [ -n "$missing" ]; then
  echo "acknowledged writes missing on $NEW: $missing" >&2
  exit 1
fi
echo "$(echo "$acked" | wc -l) writes acknowledged, every one on $NEW; the Service moved with the role"
