#!/usr/bin/env bash
# `make demo`: the main job on the embedded lab. Starts the lab cloud (installs
# it on first use), runs the whole runbook (playbooks/site.yml with inventory/lab)
# and prints the app's and the dashboard's URLs. A second run changes nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH=$ROOT/.venv/bin:$PATH
export CONTAINERS_CONF=${CONTAINERS_CONF:-$HOME/.cache/monoscape/containers.conf}
mkdir -p build/logs
echo "demo: starting the lab cloud (lab/labctl up; the first time installs it, several minutes)"
lab/labctl up
echo "demo: running playbooks/site.yml on the lab"
started=$SECONDS
ansible-playbook -i inventory/lab playbooks/site.yml
elapsed=$((SECONDS - started))
controller=$(ansible-inventory -i inventory/lab --list 2>/dev/null | python3 -c '
import json, sys
inventory = json.load(sys.stdin)
name = (inventory.get("monoscape_controller", {}).get("hosts") or [""])[0]
host = inventory.get("_meta", {}).get("hostvars", {}).get(name, {}).get("ansible_host", "")
print(host.get("__ansible_unsafe", "") if isinstance(host, dict) else host)')
apps=$(ansible-inventory -i inventory/lab --host localhost 2>/dev/null | python3 -c '
import json, sys
print(" ".join("/%s/%s/" % (a["tenant"], a["app"]) for a in json.load(sys.stdin).get("monoscape_apps", [])))')
echo
echo "demo: site.yml took ${elapsed} s"
for app in $apps; do echo "demo: app        http://${controller}${app}"; done
echo "demo: dashboard  http://${controller}:8080/"
echo "demo: status     ansible-playbook playbooks/status.yml;  teardown: ansible-playbook playbooks/teardown.yml"
