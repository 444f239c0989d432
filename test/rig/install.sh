#!/usr/bin/env bash
# Installs everything the tests and the demo need on a Debian 12 machine, as root.
# Idempotent: each step checks a stamp or the installed state first, so a warm run takes seconds.
# Built and downloaded things live under SHOAL_CACHE (outside the repo), keyed by version.
set -euo pipefail

CACHE=${SHOAL_CACHE:-/var/cache/shoal-test}
MYSQL_ROOT="$CACHE/mysql-9.7-root"
STATICCHECK_VERSION=v0.8.2
mkdir -p "$CACHE/bin"

log() { printf '[install] %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "must run as root (apt-get, debootstrap and chroot need it)"; exit 1
  fi
}

apt_packages=(mariadb-server mariadb-client mariadb-backup debootstrap iptables iproute2 spin gcc bind9-dnsutils zstd curl)

install_apt() {
  local missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  # Keep package scripts from starting the system MariaDB: the harness runs its own servers.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created=1; fi
  trap '[ $created = 1 ] && rm -f /usr/sbin/policy-rc.d' RETURN
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The Debian mirror already configured on this machine, so no host is hard-coded here.
debian_mirror() {
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || { log "no Debian mirror found in /etc/apt sources"; exit 1; }
  printf '%s' "$uri"
}

install_mysql_root() {
  [ -f "$MYSQL_ROOT/.shoal-ready" ] && return 0
  log "debootstrap sid with mysql-server-core into $MYSQL_ROOT (about a minute)"
  rm -rf "$MYSQL_ROOT.tmp"
  debootstrap --variant=minbase --include=mysql-server-core,mysql-client-core sid "$MYSQL_ROOT.tmp" "$(debian_mirror)" >"$CACHE/debootstrap.log" 2>&1 \
    || { log "debootstrap failed; see $CACHE/debootstrap.log"; tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  chroot "$MYSQL_ROOT.tmp" mysqld --version >/dev/null
  mkdir -p "$MYSQL_ROOT.tmp/var/lib/mysql-files" "$MYSQL_ROOT.tmp/srv/shoal"
  rm -rf "$MYSQL_ROOT"
  mv "$MYSQL_ROOT.tmp" "$MYSQL_ROOT"
  touch "$MYSQL_ROOT/.shoal-ready"
}

install_staticcheck() {
  local bin="$CACHE/bin/staticcheck-$STATICCHECK_VERSION"
  [ -x "$bin" ] && return 0
  log "building staticcheck $STATICCHECK_VERSION"
  local tmp; tmp=$(mktemp -d)
  GOBIN="$tmp" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
  mv "$tmp/staticcheck" "$bin"; rm -rf "$tmp"
}

# Kubernetes test rig (test/kube): control plane, node and client binaries built from the wrapper
# modules under test/kube/build (kept out of the main go.mod), cached by version. Each binary is built
# into a temporary name and renamed, so an interrupted build is redone, never half-used.
KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
KUBE_BIN="$CACHE/kube-$KUBE_VERSION/bin"
KUBE_BUILD="$(cd "$(dirname "$0")/../kube/build" && pwd)"

kube_build_one() { # module-dir output package [ldflags]
  local dir=$1 out=$KUBE_BIN/$2 pkg=$3 ldflags=${4:-}
  [ -x "$out" ] && return 0
  log "building $2 from $pkg (minutes on 2 cores)"
  local start=$SECONDS
  (cd "$KUBE_BUILD/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  log "built $2 in $((SECONDS - start)) s"
}

install_kube_control_plane() {
  mkdir -p "$KUBE_BIN"
  local v=${KUBE_VERSION#v} ld=""
  local major=${v%%.*} minor=${v#*.}; minor=${minor%%.*}
  # A plain go build reports v0.0.0-master; kubelet and kubectl compare versions with the apiserver.
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  kube_build_one etcd etcd go.etcd.io/etcd/server/v3
  kube_build_one k8s kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$ld"
}

need_root
case "${1:-all}" in
  apt) install_apt ;;
  mysql) install_apt; install_mysql_root ;;
  staticcheck) install_staticcheck ;;
  kube-control-plane) install_kube_control_plane ;;
  all) install_apt; install_mysql_root; install_staticcheck ;;
  *) log "usage: $0 [all|apt|mysql|staticcheck]"; exit 2 ;;
esac
