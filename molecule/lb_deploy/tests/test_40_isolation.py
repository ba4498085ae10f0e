"""Tenants apart on a shared node (issue #14): the sample app of tenant demo and a
hostile app of another tenant (files/intruder: its page makes each attempt from
inside its own instance and reports it) are deployed with the runbook's command on
both nodes. From the intruder's process, reading demo's web.config, listing its
folders, writing into its release, reading its instance state, signalling its
process and connecting to its FastCGI socket are all denied, while the intruder
reads its own files. Each app runs as its own account, in the systemd sandbox,
with the role's limits; `systemd-analyze security` of the unit is reported
(build/logs/lb-deploy-measurements.txt) and must be <= 3.0. Undeploying both
removes their accounts."""

from __future__ import annotations

import json
import re
import urllib.parse
import zipfile

import pytest
import yaml
from conftest import APP, NODES, ROOT, SCENARIO, TENANT, VARS, package, run_runbook, sh
from test_30_deploy import output, report

RUNTIME = yaml.safe_load((ROOT / "roles" / "mono_runtime" / "defaults" / "main.yml").read_text())
OTHER_TENANT, OTHER_APP, OTHER_VERSION = "mallory", "intruder", "1.0.0"
V1 = VARS["lb_deploy_first_version"]
EXPOSURE_TARGET = 3.0


def instance(tenant: str, app: str) -> str:
    return f"{tenant}.{app}.1"


def app_dir(tenant: str, app: str) -> str:
    return f"/srv/monoscape/apps/{tenant}/{app}"


def state_dir(tenant: str, app: str) -> str:
    return f"{RUNTIME['mono_runtime_state_dir']}/instances/{instance(tenant, app)}"


APPS = ((TENANT, APP), (OTHER_TENANT, OTHER_APP))


@pytest.fixture(scope="module")
def two_tenants(tmp_path_factory):
    """demo/hello 1.0.0 and mallory/intruder on both nodes; both undeployed at the end."""
    intruder = tmp_path_factory.mktemp("intruder") / f"intruder-{OTHER_VERSION}.zip"
    with zipfile.ZipFile(intruder, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((SCENARIO / "files" / "intruder").iterdir()):
            archive.write(path, path.name)
    deployed = []
    try:
        for tenant, app, version, pkg in (
            (TENANT, APP, V1, package(V1)),
            (OTHER_TENANT, OTHER_APP, OTHER_VERSION, str(intruder)),
        ):
            proc = run_runbook("deploy", f"isolation-{app}", TENANT=tenant, APP=app, VERSION=version, PACKAGE=pkg)
            assert proc.returncode == 0, output(proc)[-3000:]
            deployed.append((tenant, app))
        yield
    finally:
        for tenant, app in reversed(deployed):
            proc = run_runbook("undeploy", f"isolation-undeploy-{app}", TENANT=tenant, APP=app)
            assert proc.returncode == 0, output(proc)[-3000:]


def attempt(node: str, **tries: str) -> dict[str, str]:
    """GET the intruder's page on NODE with the attempts as query parameters: {what: line}."""
    ports = json.loads(sh(node, "cat /etc/monoscape/ports.json"))["instances"]
    port = ports[instance(OTHER_TENANT, OTHER_APP)]["port"]
    query = urllib.parse.urlencode(tries)
    body = sh(node, f"curl -s -m 30 'http://127.0.0.1:{port}/{OTHER_TENANT}/{OTHER_APP}/?{query}'")
    lines = dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
    ran_as = re.search(r"^intruder ran as (\S+)$", body, re.M)
    assert ran_as, body
    lines["ran as"] = ran_as.group(1)
    return lines


def owner(node: str, path: str) -> str:
    return sh(node, f"stat -c %U {path}").strip()


@pytest.mark.parametrize("node", NODES)
def test_another_tenants_app_cannot_reach_this_one(two_tenants, node):
    victim = instance(TENANT, APP)
    victim_dir = app_dir(TENANT, APP)
    pid = sh(node, f"systemctl show -p MainPID --value monoscape-app@{victim}").strip()
    config_before = sh(node, f"sha256sum {victim_dir}/current/web.config")
    found = attempt(
        node,
        read=f"{victim_dir}/current/web.config",
        list=victim_dir,
        write=f"{victim_dir}/current/written-by-another-tenant.txt",
        signal=pid,
        connect=f"/run/monoscape/{victim}/fcgi.sock",
    )
    state = attempt(node, list=state_dir(TENANT, APP))
    report(f"isolation on {node}", json.dumps({**found, "state": state["list"]}))
    for what in ("read", "list", "write", "signal", "connect"):
        assert found[what].startswith("denied"), (what, found[what])
    assert state["list"].startswith("denied"), state
    # nothing of demo changed: same process, same web.config, no file written
    assert sh(node, f"systemctl show -p MainPID --value monoscape-app@{victim}").strip() == pid
    assert sh(node, f"sha256sum {victim_dir}/current/web.config") == config_before
    written = f"{victim_dir}/current/written-by-another-tenant.txt"
    assert sh(node, f"test -e {written} && echo yes || echo no").strip() == "no"
    # the page itself works: the intruder reads its own release, as its own account
    own = attempt(node, read=f"{app_dir(OTHER_TENANT, OTHER_APP)}/current/web.config")
    assert own["read"].startswith("allowed"), own
    assert own["ran as"] == owner(node, state_dir(OTHER_TENANT, OTHER_APP))
    assert own["ran as"] != owner(node, state_dir(TENANT, APP))


@pytest.mark.parametrize("node", NODES)
def test_each_app_has_its_account_folders_and_limits(two_tenants, node):
    accounts = set()
    for tenant, app in APPS:
        unit = f"monoscape-app@{instance(tenant, app)}.service"
        shown = sh(node, f"systemctl show -p User -p Group -p MemoryMax -p TasksMax -p CPUQuotaPerSecUSec {unit}")
        props = dict(line.split("=", 1) for line in shown.splitlines())
        account = props["User"]
        accounts.add(account)
        assert props["Group"] == account
        assert account.startswith("ms-")
        assert f"Monoscape app {tenant}/{app}" in sh(node, f"getent passwd {account}")
        # the release: root's, readable by the app's group only; instance state: the account's only
        assert sh(node, f"stat -c '%U %G %a' {app_dir(tenant, app)}").split() == ["root", account, "750"]
        assert sh(node, f"stat -c '%U %G %a' {state_dir(tenant, app)}").split() == [account, account, "700"]
        assert int(props["MemoryMax"]) == parse_size(RUNTIME["mono_runtime_memory_max"])
        assert props["TasksMax"] == str(RUNTIME["mono_runtime_tasks_max"])
        # CPUQuota=N% is N/100 s of CPU per second ("1s", "500ms")
        assert span_ms(props["CPUQuotaPerSecUSec"]) == int(RUNTIME["mono_runtime_cpu_quota"].rstrip("%")) * 10
        # nginx reaches the socket through the app's group
        assert account in sh(node, f"id -nG {RUNTIME['mono_runtime_nginx_user']}").split()
    assert len(accounts) == 2, accounts


def span_ms(text: str) -> int:
    """A systemd time span as `systemctl show` prints it (1s, 500ms, 1s 500ms) in ms."""
    units = {"s": 1000, "ms": 1}
    return sum(int(value) * units[unit] for value, unit in re.findall(r"(\d+)(ms|s)\b", text))


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def test_systemd_exposure_score(two_tenants):
    unit = f"monoscape-app@{instance(TENANT, APP)}.service"
    text = sh(NODES[0], f"systemd-analyze security --no-pager {unit} | tail -1")
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", text).group(1))
    report("systemd-analyze security exposure", f"{unit}: {score}")
    assert score <= EXPOSURE_TARGET, text


def test_undeploy_removes_the_accounts(two_tenants):
    """Last: undeploying both apps removes their accounts and groups from both nodes
    (the fixture's own undeploy then finds nothing to do)."""
    accounts = {node: [owner(node, state_dir(*app)) for app in APPS] for node in NODES}
    for tenant, app in reversed(APPS):
        proc = run_runbook("undeploy", f"isolation-undeploy-{app}", TENANT=tenant, APP=app)
        assert proc.returncode == 0, output(proc)[-3000:]
    for node, names in accounts.items():
        for name in names:
            assert sh(node, f"getent passwd {name} || echo gone").strip() == "gone", (node, name)
            assert sh(node, f"getent group {name} || echo gone").strip() == "gone", (node, name)
