#!/usr/bin/env bash
# `make demo`: the main job on the embedded lab. Starts the lab cloud (installs
# it on first use), runs the whole runbook (playbooks/site.yml with inventory/lab)
# and prints the app's and the dashboard's URLs. A second run changes nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH=$ROOT/.venv/bin:$PATH
export CONTAINERS_CONF=${CONTAINERS_CONF:-$HOME/.cache/monoscape/containers.conf}
echo "demo: starting the lab cloud (lab/labctl up; the first time installs it, several minutes)"
lab/labctl up
echo "demo: running playbooks/site.yml on the lab"
started=$SECONDS
ansible-playbook -i inventory/lab playbooks/site.yml
elapsed=$((SECONDS - started))
echo
echo "demo: site.yml took ${elapsed} s"
# one inventory read: the controller's address and the deployment's apps (group_vars)
ansible-inventory -i inventory/lab --list 2>/dev/null | python3 -c '
import json, sys


def plain(value):  # ansible-inventory marks unsafe strings as {"__ansible_unsafe": ...}
    return value.get("__ansible_unsafe", "") if isinstance(value, dict) else value


inventory = json.load(sys.stdin)
hostvars = inventory.get("_meta", {}).get("hostvars", {})
name = (inventory.get("monoscape_controller", {}).get("hosts") or [""])[0]
controller = plain(hostvars.get(name, {}).get("ansible_host", ""))
for app in hostvars.get("localhost", {}).get("monoscape_apps", []):
    print("demo: app        https://%s/%s/%s/  (curl --cacert ~/.config/monoscape/monoscape/tls/lb-ca.pem; http:// too)" % (controller, app["tenant"], app["app"]))
print("demo: dashboard  http://%s:8080/" % controller)'
echo "demo: status     ansible-playbook playbooks/status.yml;  teardown: ansible-playbook playbooks/teardown.yml"
