#!/usr/bin/env bash
# Installs everything the tests and the demo need on a Debian 12 machine, as root.
# Idempotent: each step checks a stamp or the installed state first, so a warm run takes seconds.
# Built and downloaded things live under SHOAL_CACHE (outside the repo), keyed by version.
set -euo pipefail

CACHE=${SHOAL_CACHE:-/var/cache/shoal-test}
MYSQL_ROOT="$CACHE/mysql-9.7-root"
STATICCHECK_VERSION=v0.8.2
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
mkdir -p "$CACHE/bin"

log() { printf '[install] %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "must run as root (apt-get, debootstrap and chroot need it)"; exit 1
  fi
}

apt_packages=(mariadb-server mariadb-client mariadb-backup debootstrap iptables iproute2 spin gcc bind9-dnsutils zstd curl containerd runc containernetworking-plugins rclone)

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

# MinIO, the S3 server the backup tests run against, built from the Go module proxy (minutes cold).
install_minio() {
  local bin="$CACHE/bin/minio-$MINIO_VERSION"
  [ -x "$bin" ] && return 0
  log "building minio $MINIO_VERSION (a few minutes)"
  local tmp; tmp=$(mktemp -d)
  GOBIN="$tmp" go install "github.com/minio/minio@$MINIO_VERSION"
  mv "$tmp/minio" "$bin"; rm -rf "$tmp"
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

install_kube_nodes() {
  install_kube_control_plane
  local v=${KUBE_VERSION#v} ld=""
  local major=${v%%.*} minor=${v#*.}; minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  local c
  for c in kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    kube_build_one k8s "$c" "k8s.io/kubernetes/cmd/$c" "$ld"
  done
  kube_build_one coredns coredns github.com/coredns/coredns
  kube_build_one helm helm helm.sh/helm/v3/cmd/helm
}

# kube-image is our own small tool: rebuilt whenever its sources change (the hash is its stamp).
install_kube_image_tool() {
  local sum; sum=$(cd "$KUBE_BUILD/images" && cat go.mod go.sum main.go pause/main.go | sha256sum | cut -c1-16)
  if [ "$(cat "$KUBE_BIN/kube-image.src" 2>/dev/null)" != "$sum" ]; then
    rm -f "$KUBE_BIN/kube-image"
    kube_build_one images kube-image .
    echo "$sum" >"$KUBE_BIN/kube-image.src"
  fi
  KUBE_IMAGE_SUM=$sum
}

# Images the rig's nodes import (docker-save tarballs, one layer each); the names are the ones the
# chart's test values use. The shoal image is built by test/kube from the current binary.
KUBE_IMAGES="$CACHE/kube-$KUBE_VERSION/images"

install_kube_images() {
  install_kube_image_tool
  mkdir -p "$KUBE_IMAGES"
  local img=$KUBE_BIN/kube-image stage
  local pause="$KUBE_IMAGES/pause-3.10-$KUBE_IMAGE_SUM.tar"
  if [ ! -f "$pause" ]; then
    log "building image shoal.local/pause:3.10"
    stage=$(mktemp -d)
    (cd "$KUBE_BUILD/images" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$stage/pause" ./pause)
    "$img" -root "$stage" -root-owned -tag shoal.local/pause:3.10 -out "$pause" -entrypoint /pause -user 65535:65535
    rm -rf "$stage"
  fi
  ln -sfn "$(basename "$pause")" "$KUBE_IMAGES/pause.tar"

  # MariaDB 10.11 from Debian 12. The mysql user gets uid/gid 999 (as in the official images)
  # before the packages' scripts would pick a system uid, and nothing is started in the chroot.
  local mariadb="$KUBE_IMAGES/mariadb-10.11-bookworm.tar"
  if [ ! -f "$mariadb" ]; then
    log "debootstrapping Debian 12 with mariadb-server for image shoal.local/mariadb:10.11 (a few minutes)"
    stage="$CACHE/mariadb-10.11-bookworm-root.tmp"
    rm -rf "$stage"
    debootstrap --variant=minbase bookworm "$stage" "$(debian_mirror)" >"$CACHE/debootstrap-mariadb.log" 2>&1 \
      || { log "debootstrap failed; see $CACHE/debootstrap-mariadb.log"; tail -20 "$CACHE/debootstrap-mariadb.log" >&2; exit 1; }
    printf '#!/bin/sh\nexit 101\n' >"$stage/usr/sbin/policy-rc.d"; chmod +x "$stage/usr/sbin/policy-rc.d"
    chroot "$stage" groupadd --system --gid 999 mysql
    chroot "$stage" useradd --system --uid 999 --gid 999 --home-dir /var/lib/mysql --shell /usr/sbin/nologin mysql
    chroot "$stage" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      mariadb-server mariadb-client mariadb-backup ca-certificates >>"$CACHE/debootstrap-mariadb.log" 2>&1 \
      || { log "apt-get in the MariaDB root failed; see $CACHE/debootstrap-mariadb.log"; exit 1; }
    chroot "$stage" apt-get clean
    rm -f "$stage/usr/sbin/policy-rc.d"
    rm -rf "$stage/var/lib/mysql/"* "$stage/var/lib/apt/lists/"*
    kube_db_dirs "$stage"
    chroot "$stage" mariadbd --version >/dev/null
    "$img" -root "$stage" -tag shoal.local/mariadb:10.11 -out "$mariadb" -user 999:999 -entrypoint mariadbd
    rm -rf "$stage"
  fi

  # MySQL 9.7 from the sid root install_mysql_root made; copied, because the harness uses that root.
  local mysql="$KUBE_IMAGES/mysql-9.7-sid-$(stat -c %Y "$MYSQL_ROOT/.shoal-ready").tar"
  if [ ! -f "$mysql" ]; then
    log "building image shoal.local/mysql:9.7 from $MYSQL_ROOT"
    stage="$CACHE/mysql-9.7-image-root.tmp"
    rm -rf "$stage"; mkdir -p "$stage"
    # Tests write into that root while this runs (/tmp, /srv): leave those out, and let tar
    # tolerate files that vanish under it (its exit status 1).
    { tar -C "$MYSQL_ROOT" --one-file-system --warning=no-file-changed --warning=no-file-removed \
        --exclude=./tmp/* --exclude=./srv/* --exclude=./var/lib/mysql/* --exclude=./.shoal-ready \
        -cf - . || [ $? = 1 ]; } | tar -C "$stage" -xpf -
    mkdir -p "$stage/tmp"; chmod 1777 "$stage/tmp"
    grep -q '^mysql:' "$stage/etc/group" || chroot "$stage" groupadd --system --gid 999 mysql
    grep -q '^mysql:' "$stage/etc/passwd" || chroot "$stage" useradd --system --uid 999 --gid 999 --home-dir /var/lib/mysql --shell /usr/sbin/nologin mysql
    kube_db_dirs "$stage"
    "$img" -root "$stage" -tag shoal.local/mysql:9.7 -out "$mysql" -user 999:999 -entrypoint mysqld
    rm -rf "$stage"
    find "$KUBE_IMAGES" -name 'mysql-9.7-sid-*.tar' ! -path "$mysql" -delete
  fi
  ln -sfn "$(basename "$mariadb")" "$KUBE_IMAGES/mariadb.tar"
  ln -sfn "$(basename "$mysql")" "$KUBE_IMAGES/mysql.tar"
}

# The directories a MySQL or MariaDB container writes: owned by mysql, and the socket directory
# open to any uid so a pod may run the server under another securityContext.
# /var/run is an absolute symlink to /run in these roots: always name /run, never through it.
kube_db_dirs() {
  local r=$1
  mkdir -p "$r/var/lib/mysql" "$r/run/mysqld" "$r/var/lib/mysql-files" "$r/var/log/mysql"
  chown 999:999 "$r/var/lib/mysql" "$r/run/mysqld" "$r/var/lib/mysql-files" "$r/var/log/mysql"
  chmod 1777 "$r/run/mysqld"
  [ -L "$r/var/run" ] || [ -d "$r/var/run" ] || ln -s /run "$r/var/run"
}

install_kube() {
  install_kube_nodes
  install_kube_images
}

need_root
case "${1:-all}" in
  apt) install_apt ;;
  mysql) install_apt; install_mysql_root ;;
  staticcheck) install_staticcheck ;;
  minio) install_minio ;;
  kube-control-plane) install_kube_control_plane ;;
  kube) install_apt; install_mysql_root; install_kube ;;
  kube-images) install_mysql_root; install_kube_images ;;
  all) install_apt; install_mysql_root; install_staticcheck; install_minio; install_kube ;;
  *) log "usage: $0 [all|apt|mysql|staticcheck|minio|kube-control-plane|kube|kube-images]"; exit 2 ;;
esac
