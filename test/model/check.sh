#!/usr/bin/env bash
# Runs spin on test/model/failover.pml and reports what it explored.
#   check.sh pass|fail full|bitstate [-DNAME[=VALUE]...]
# pass: the search must find no violation; fail: it must find one (a mutation), and the
# counterexample's events are printed (the full trail stays in the work directory).
set -euo pipefail

expect=$1 search=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/shoal-model.XXXXXX)
trap 'if [ "$expect" = pass ]; then rm -rf "$work"; fi' EXIT
cp "$here/failover.pml" "$work/"
cd "$work"

label="failover.pml ${*:-(defaults)}"
spin "$@" -a failover.pml >/dev/null
cflags=(-O2 -w -DSAFETY -DMEMLIM=20000)
run=(-m1000000 -E)
case $search in
full) cflags+=(-DCOLLAPSE) ;;
# 2^30 bits (128 MB) unless SHOAL_MODEL_BITS says otherwise: a search that ends within minutes.
bitstate) cflags+=(-DBITSTATE) run+=(-w"${SHOAL_MODEL_BITS:-30}") ;;
*) echo "search must be full or bitstate" >&2; exit 2 ;;
esac
gcc "${cflags[@]}" -o pan pan.c

start=$EPOCHREALTIME
./pan "${run[@]}" >pan.out 2>&1 || true
secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')
errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out)
states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.out)
transitions=$(sed -n 's/^ *\([0-9.e+]*\) transitions.*/\1/p' pan.out)
printf 'MODEL %s: %s search, %s states, %s transitions, %.1f s, %s errors\n' \
  "$label" "$search" "$states" "$transitions" "$secs" "${errors:-?}"
if [ "${errors:-1}" = 0 ] && grep -q "Search not completed\|max search depth too small" pan.out; then
  echo "the search did not complete:" >&2
  grep -i "depth\|memory\|error" pan.out >&2
  exit 1
fi

case $expect in
pass)
  if [ "${errors:-1}" != 0 ]; then
    echo "violation found; trail in $work" >&2
    grep "assertion violated" pan.out >&2
    spin "$@" -t failover.pml 2>&1 | grep -E "FAULT|HEAL|CALM|EVENT|assert" | grep -v "time unit" >&2 || true
    trap - EXIT
    exit 1
  fi ;;
fail)
  if [ "${errors:-0}" = 0 ]; then
    echo "expected a counterexample for $label, found none" >&2
    exit 1
  fi
  grep "assertion violated" pan.out
  echo "counterexample (trail in $work/failover.pml.trail):"
  spin "$@" -t failover.pml 2>&1 | grep -E "FAULT|HEAL|CALM|EVENT|assert" | grep -v "time unit" | sed 's/^ */  /' ;;
*) echo "expect must be pass or fail" >&2; exit 2 ;;
esac
