#!/usr/bin/env bash
# Podman test hosts on a Debian 12 machine without systemd as PID 1 and without a
# container registry: apt packages, the project's containers.conf, and the Debian 12
# systemd base image built with debootstrap (cached as .tar.zst, keyed by version).
#
#   scripts/test-hosts.sh            # idempotent; a second call takes seconds
#   scripts/test-hosts.sh --print-env
#
# Knobs (environment): MONOSCAPE_CACHE (default ~/.cache/monoscape),
# MONOSCAPE_DEBIAN_MIRROR (default: the host's apt mirror).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/versions.sh
. "$HERE/versions.sh"

CACHE=${MONOSCAPE_CACHE:-$HOME/.cache/monoscape}
CONF=$CACHE/containers.conf
TARBALL=$CACHE/images/debian-systemd-12-$MONOSCAPE_IMAGE_VERSION.tar.zst
IMAGE=$MONOSCAPE_IMAGE

log() { printf '[test-hosts %4ss] %s\n' "$SECONDS" "$*"; }
die() { printf 'test-hosts: %s\n' "$*" >&2; exit 1; }

if [ "${1:-}" = --print-env ]; then
  printf 'export CONTAINERS_CONF=%q\n' "$CONF"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "run as root: rootful podman is required (systemd in containers, bridge networks)"
mkdir -p "$CACHE/images"

# 1. packages ------------------------------------------------------------------
need=()
for p in podman runc conmon netavark aardvark-dns fuse-overlayfs slirp4netns uidmap iptables debootstrap zstd; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null
fi

# 2. containers.conf for this kind of machine -------------------------------------
# - root lacks CAP_SYS_RESOURCE: podman's rootful rlimits (1048576) make the OCI
#   runtime fail in setrlimit -> cap them at the hard limits we really have.
# - cgroup v1 "hybrid": crun 1.8.1 refuses it, runc works; no systemd -> cgroupfs.
# - molecule's podman driver schema rejects `subnet:`: pin the default pool.
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] && nproc=1048576
[ "$nproc" -gt 32768 ] && nproc=32768
tmp=$(mktemp)
cat > "$tmp" <<CONF
# written by scripts/test-hosts.sh -- use with: export CONTAINERS_CONF=$CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
default_subnet_pools = [{"base" = "10.89.60.0/22", "size" = 24}]
CONF
if cmp -s "$tmp" "$CONF"; then rm -f "$tmp"; else mv "$tmp" "$CONF"; log "wrote $CONF"; fi
export CONTAINERS_CONF=$CONF

# 3. base image: debootstrap -> .tar.zst (cached) -> podman import -----------------
if ! podman image exists "$IMAGE"; then
  if [ ! -s "$TARBALL" ]; then
    mirror=${MONOSCAPE_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$CACHE/images/rootfs.tmp
    rm -rf "$rootfs"
    log "debootstrap bookworm from $mirror (1-2 min)"
    debootstrap --variant=minbase \
      --include=systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,sudo,iproute2,procps,ca-certificates,curl \
      bookworm "$rootfs" "$mirror" > "$CACHE/images/debootstrap.log" 2>&1 \
      || die "debootstrap failed, see $CACHE/images/debootstrap.log"
    "$HERE/prepare-rootfs.sh" "$rootfs" "$mirror"
    tar --numeric-owner -C "$rootfs" -c . | zstd -q -T0 -o "$TARBALL.tmp"
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$rootfs"
    log "cached $TARBALL"
  fi
  log "podman import $IMAGE"
  podman import --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' \
    "$TARBALL" "$IMAGE" > /dev/null
fi
log "ready: export CONTAINERS_CONF=$CONF; image $IMAGE"
