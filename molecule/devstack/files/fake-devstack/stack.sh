#!/bin/bash
# A stand-in for DevStack's stack.sh, for the devstack role's molecule
# scenario (the real one clones OpenStack from the internet). It behaves the
# way the role relies on: refuses root, reads the [[local|localrc]] section of
# local.conf with bash (set -u: a variable used before its definition fails),
# logs to LOGFILE.<timestamp> with LOGFILE pointing at it, uses sudo like
# DevStack does, and creates devstack@ systemd units (one answers Keystone's
# and Horizon's URLs on HOST_IP:80), the public bridge's gateway address and
# the NAT rule for the floating range.
#
# Each call is appended to $FAKE_DEVSTACK_STATE/calls.log as
# "stack <ok|fail> <sha256 of local.conf>". A number in
# $FAKE_DEVSTACK_STATE/fail-stack makes that many calls fail.
set -o errexit -o nounset -o pipefail

TOP_DIR=$(cd "$(dirname "$0")" && pwd)

if [[ $EUID -eq 0 ]]; then
    echo "You are running this script as root."
    exit 1
fi

# like stackrc: defaults, then the localrc section of local.conf
DEST=/opt/stack
ENABLED_SERVICES=key,horizon
PLUGINS=()
function enable_service { local s; for s in "$@"; do ENABLED_SERVICES+=",$s"; done; }
function disable_service { local s; for s in "$@"; do ENABLED_SERVICES=${ENABLED_SERVICES//,$s/}; done; }
function enable_plugin { PLUGINS+=("$1"); }
awk '/^\[\[.+\|.*\]\]/ { in_rc = ($0 == "[[local|localrc]]"); next } in_rc { print }' \
    "$TOP_DIR/local.conf" >"$TOP_DIR/.localrc.auto"
# shellcheck disable=SC1091
source "$TOP_DIR/.localrc.auto"

STATE=$FAKE_DEVSTACK_STATE
LOCAL_CONF_SHA=$(sha256sum <"$TOP_DIR/local.conf" | cut -d' ' -f1)

if [[ -n ${LOGFILE:-} ]]; then
    LATEST_LOG=$LOGFILE
    LOGFILE=$LOGFILE.$(date +%F-%H%M%S)
    mkdir -p "${LOGFILE%/*}"
    exec 3>&1 >>"$LOGFILE" 2>&1
    ln -sf "$LOGFILE" "$LATEST_LOG"
fi
echo "fake stack.sh: local.conf $LOCAL_CONF_SHA"

fail=$(cat "$STATE/fail-stack" 2>/dev/null || echo 0)
if (( fail > 0 )); then
    echo $((fail - 1)) >"$STATE/fail-stack"
    echo "stack fail $LOCAL_CONF_SHA" >>"$STATE/calls.log"
    echo "fake stack.sh: failing as told by $STATE/fail-stack (FAKE-STACK-FAILURE)"
    echo "stack.sh failed: full log in ${LOGFILE:-(no LOGFILE)}"
    exit 1
fi

# what the variables resolved to, for the tests
for name in $(grep -oE '^[A-Za-z_][A-Za-z0-9_]*=' "$TOP_DIR/.localrc.auto" | tr -d =); do
    printf '%s=%s\n' "$name" "${!name}"
done >"$STATE/localrc.resolved"
printf 'ENABLED_SERVICES=%s\nPLUGINS=%s\n' "$ENABLED_SERVICES" "${PLUGINS[*]}" >>"$STATE/localrc.resolved"

# the public bridge: OVS keeps the bridge across reboots, not its address
sudo tee /etc/systemd/system/fake-ovs-bridge.service >/dev/null <<UNIT
[Unit]
Description=Fake Open vSwitch: recreate $PUBLIC_BRIDGE at boot, without an address
Before=multi-user.target

[Service]
Type=oneshot
RemainAfterExit=true
ExecStart=/bin/sh -c 'ip link show dev $PUBLIC_BRIDGE >/dev/null 2>&1 || ip link add $PUBLIC_BRIDGE type bridge'

[Install]
WantedBy=multi-user.target
UNIT
ip link show dev "$PUBLIC_BRIDGE" >/dev/null 2>&1 || sudo ip link add "$PUBLIC_BRIDGE" type bridge
if ! ip -4 -o address show dev "$PUBLIC_BRIDGE" | grep -q " $PUBLIC_NETWORK_GATEWAY/"; then
    sudo ip address add "$PUBLIC_NETWORK_GATEWAY/${FLOATING_RANGE#*/}" dev "$PUBLIC_BRIDGE"
fi
sudo ip link set dev "$PUBLIC_BRIDGE" up
default_dev=$(ip -4 route show default | awk '{ print $5; exit }')
sudo iptables -t nat -C POSTROUTING -o "$default_dev" -s "$FLOATING_RANGE" -j MASQUERADE 2>/dev/null ||
    sudo iptables -t nat -A POSTROUTING -o "$default_dev" -s "$FLOATING_RANGE" -j MASQUERADE

# devstack@ units, as DevStack writes them (User=, Restart=)
sudo tee /etc/systemd/system/devstack@fake-web.service >/dev/null <<UNIT
[Unit]
Description = Devstack devstack@fake-web.service (fake Keystone and Horizon)

[Service]
User = $USER
ExecStart = /usr/bin/python3 $TOP_DIR/fake-web.py $HOST_IP 80
AmbientCapabilities = CAP_NET_BIND_SERVICE
Restart = always
RestartSec = 1

[Install]
WantedBy = multi-user.target
UNIT
sudo tee /etc/systemd/system/devstack@fake-worker.service >/dev/null <<UNIT
[Unit]
Description = Devstack devstack@fake-worker.service

[Service]
User = $USER
ExecStart = /bin/sleep infinity

[Install]
WantedBy = multi-user.target
UNIT
sudo systemctl daemon-reload
sudo systemctl enable --quiet fake-ovs-bridge.service devstack@fake-web.service
# fake-worker is started but left disabled, like a unit disabled by hand: the
# role must enable it
sudo systemctl restart devstack@fake-web.service devstack@fake-worker.service

echo "stack ok $LOCAL_CONF_SHA" >>"$STATE/calls.log"
echo "fake stack.sh: done"
