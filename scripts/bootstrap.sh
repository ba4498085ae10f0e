#!/usr/bin/env bash
# Control-node toolchain for the bundle, from Debian's packages and PyPI only:
#   - apt: python3-venv, the Mono compiler (sample app packages), curl, zip tools,
#     chromium and chromium-driver (the lab tests' browser)
#   - venv ~/.cache/monoscape/venv-<hash of requirements+constraints>, linked as .venv
#   - containers.podman from PyPI's `ansible` wheel (Galaxy is unreachable) and this
#     repository as the monoscape.paas collection, both under .collections/
# Idempotent: a second run takes about a second.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MONOSCAPE_CACHE:-$HOME/.cache/monoscape}
PY=${MONOSCAPE_PYTHON:-/usr/bin/python3}          # Debian's 3.11: ansible-core 2.19 needs >= 3.11
ANSIBLE_WHEEL_VERSION=12.3.0                      # ships containers.podman
log() { printf '[bootstrap %4ss] %s\n' "$SECONDS" "$*"; }
mkdir -p "$CACHE"

need=()
# systemd: systemd-analyze checks the reconcile timer's units (playbooks/reconciler.yml)
# chromium, chromium-driver: the browser the lab tests drive (Selenium, the system's browser)
for p in python3-venv mono-mcs libmono-system-web4.0-cil curl git openssh-client systemd chromium chromium-driver; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "bootstrap: missing packages ${need[*]}; run as root" >&2; exit 1; }
  log "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

key=$(cat "$ROOT/requirements.txt" "$ROOT/constraints.txt" | sha256sum | cut -c1-12)
venv=$CACHE/venv-$key
if [ ! -x "$venv/bin/ansible-playbook" ] || [ ! -f "$venv/.complete" ]; then
  log "creating $venv (pip install, ~30 s)"
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    -r "$ROOT/requirements.txt" -c "$ROOT/constraints.txt"
  touch "$venv/.complete"
fi
ln -sfn "$venv" "$ROOT/.venv"

coll=$CACHE/collections-ansible-$ANSIBLE_WHEEL_VERSION
if [ ! -f "$coll/ansible_collections/containers/podman/MANIFEST.json" ]; then
  log "extracting containers.podman from ansible==$ANSIBLE_WHEEL_VERSION"
  tmp=$(mktemp -d)
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$tmp" "ansible==$ANSIBLE_WHEEL_VERSION"
  rm -rf "$coll.tmp"
  "$venv/bin/python" - "$tmp"/ansible-*.whl "$coll.tmp" <<'PY'
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as whl:
    names = [n for n in whl.namelist() if n.startswith("ansible_collections/containers/podman/")]
    whl.extractall(sys.argv[2], names)
PY
  rm -rf "$coll" "$tmp"
  mv "$coll.tmp" "$coll"
fi
mkdir -p "$ROOT/.collections/ansible_collections/containers" "$ROOT/.collections/ansible_collections/monoscape"
ln -sfn "$coll/ansible_collections/containers/podman" "$ROOT/.collections/ansible_collections/containers/podman"
# this repository is the monoscape.paas collection (galaxy.yml, meta/runtime.yml, plugins/)
ln -sfn ../../.. "$ROOT/.collections/ansible_collections/monoscape/paas"
log "toolchain ready: $(readlink "$ROOT/.venv")"
