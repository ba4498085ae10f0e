#!/bin/bash
# A stand-in for DevStack's unstack.sh (see stack.sh): stops the devstack@
# units and appends "unstack ok -" to $FAKE_DEVSTACK_STATE/calls.log.
set -o errexit -o nounset -o pipefail

TOP_DIR=$(cd "$(dirname "$0")" && pwd)

if [[ $EUID -eq 0 ]]; then
    echo "You are running this script as root."
    exit 1
fi

# like unstack.sh (through openrc and stackrc): the localrc section
function enable_service { :; }
function disable_service { :; }
function enable_plugin { :; }
# shellcheck disable=SC1091
source "$TOP_DIR/.localrc.auto"

sudo systemctl stop 'devstack@*'
echo "unstack ok -" >>"$FAKE_DEVSTACK_STATE/calls.log"
