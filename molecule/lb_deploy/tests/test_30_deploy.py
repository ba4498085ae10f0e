"""Deployments through the runbook's commands (docs/runbooks/deploy-app.md) on
the scenario's hosts, in order: bad packages change nothing anywhere; a release
whose health check fails is rolled back on the canary and the old version keeps
serving; a rolling update under a steady stream of requests loses none; a
rollback returns to the previous release; undeploy removes the app and frees its
ports. Each playbook's output: build/logs/lb-deploy-*.log, the streams' numbers:
build/logs/lb-deploy-measurements.txt."""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import (
    APP,
    BACKEND,
    CONTROLLERS,
    LOGS,
    NODES,
    PREFIX,
    ROOT,
    TENANT,
    VARS,
    Stream,
    app_record,
    backend_servers,
    fingerprint,
    get,
    package,
    run_runbook,
    runtime,
    served_versions,
    sh,
)

sys.path.insert(0, str(ROOT / "tests" / "unit"))
import zip_corpus as zc  # the hostile-package corpus of the unit tests (tests/unit/zip_corpus.py)

V1 = VARS["lb_deploy_first_version"]
V2 = VARS["lb_deploy_next_version"]
BROKEN = VARS["lb_deploy_broken_version"]
APP_DIR = f"/srv/monoscape/apps/{TENANT}/{APP}"
MIN_REQUESTS = 2000


def output(proc) -> str:
    return re.sub(r"\s+", " ", proc.stdout + proc.stderr)


def worker_pids() -> dict[str, str]:
    """HAProxy's current worker(s) on each load balancer, from the master CLI: a reload starts new ones."""
    pids = {}
    for controller in CONTROLLERS:
        out = sh(controller, "echo 'show proc' | socat stdio /run/haproxy-master.sock")
        pids[controller] = " ".join(sorted(row.split()[0] for row in out.splitlines() if " worker " in row))
    return pids


def haproxy_masters() -> dict[str, str]:
    return {c: sh(c, "systemctl show -p MainPID --value haproxy").strip() for c in CONTROLLERS}


def assert_no_backend_left() -> None:
    """The app's backend is gone from every load balancer: not loaded, no fragment."""
    for controller in CONTROLLERS:
        assert BACKEND not in runtime("show backend", controller).split(), controller
        assert not sh(controller, "ls /etc/haproxy/conf.d").count(BACKEND), controller


@pytest.fixture(autouse=True, scope="module")
def _measurements_file():
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "lb-deploy-measurements.txt").write_text(f"# {os.environ.get('MOLECULE_SCENARIO_NAME', 'lb_deploy')}\n")


def report(name: str, text: str) -> None:
    with (LOGS / "lb-deploy-measurements.txt").open("a") as handle:
        handle.write(f"{name}: {text}\n")


def assert_serves_only(version: str) -> None:
    seen = served_versions(12)
    assert {v for v, _ in seen} == {version}, seen
    assert {h for _, h in seen} == set(NODES), seen


# --- bad packages ------------------------------------------------------------------------
def _zip(path, entries, symlink=None):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink[0])
            info.external_attr = (0o120777 << 16) | 0
            archive.writestr(info, symlink[1])
    return str(path)


def bad_inputs(tmp_path) -> list[tuple[str, dict, str]]:
    good = str(ROOT / package(V1))
    site = [("web.config", "<configuration/>"), ("Default.aspx", "<%@ Page %>")]
    not_zip = tmp_path / "not-a-zip.zip"
    not_zip.write_text("this is not a zip\n")
    big = tmp_path / "too-large.zip"
    with big.open("wb") as handle:  # sparse: 65 MiB that take no disk
        handle.truncate(65 * 1024 * 1024)
    corrupt = tmp_path / "corrupt.zip"
    data = bytearray((ROOT / package(V1)).read_bytes())
    data[400:420] = b"\x00" * 20  # inside bin/HelloApp.dll's deflated data
    corrupt.write_bytes(bytes(data))
    return [
        ("not a zip", {"PACKAGE": str(not_zip)}, "is not a zip file"),
        (
            "web.config not at the root",
            {"PACKAGE": _zip(tmp_path / "nested.zip", [("site/web.config", "<c/>"), ("site/Default.aspx", "x")])},
            "has no web.config at its root",
        ),
        (
            "zip slip",
            {"PACKAGE": _zip(tmp_path / "slip.zip", [*site, ("../../etc/cron.d/evil", "x")])},
            "contains a '..' component",
        ),
        (
            "absolute path",
            {"PACKAGE": _zip(tmp_path / "absolute.zip", [*site, ("/etc/cron.d/evil", "x")])},
            "is an absolute path",
        ),
        (
            "symbolic link",
            {"PACKAGE": _zip(tmp_path / "symlink.zip", site, symlink=("passwd", "/etc/passwd"))},
            "is a symbolic link",
        ),
        ("too large", {"PACKAGE": str(big)}, "the limit is 67108864 bytes"),
        ("corrupt", {"PACKAGE": str(corrupt)}, "is corrupt: CRC check failed"),
        ("unroutable tenant", {"PACKAGE": good, "TENANT": "Demo"}, "tenant name 'Demo' has 'D' at position 1"),
        ("unroutable app", {"PACKAGE": good, "APP": "hello.world"}, "app name 'hello.world' has '.' at position 6"),
        ("bad version", {"PACKAGE": good, "VERSION": "2.0/x"}, "version '2.0/x' has '/' at position 4"),
        *hostile(tmp_path),
    ]


HOSTILE = [  # cases of the unit tests' corpus (tests/unit/zip_corpus.py) sent through the runbook
    "zero bomb, 200 MB of zeros",
    "two different web.config",
    "encrypted entry",
    "bzip2 entry",
    "newline in a name",
    "right-to-left override",
    "leading '-'",
]


def hostile(tmp_path) -> list[tuple[str, dict, str]]:
    cases = []
    for name, data, kwargs, message in zc.corpus():
        if name in HOSTILE and not kwargs:
            path = tmp_path / ("hostile-" + re.sub(r"\W+", "-", name) + ".zip")
            path.write_bytes(data)
            # Ansible shows the message as JSON/YAML text: compare the part before any escaped character
            cases.append((name, {"PACKAGE": str(path)}, message.split("\\")[0]))
    assert len(cases) == len(HOSTILE)
    return cases


def test_bad_packages_leave_every_host_unchanged(tmp_path):
    hosts = [*CONTROLLERS, *NODES]
    before = {h: fingerprint(h) for h in hosts}
    cases = bad_inputs(tmp_path)

    def attempt(case):
        name, variables, _ = case
        variables = {"VERSION": "9.9.9", **variables}
        return run_runbook("deploy", "bad-" + re.sub(r"\W+", "-", name), **variables)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(attempt, cases))
    for (name, _, message), proc in zip(cases, results, strict=True):
        assert proc.returncode != 0, f"{name}: deployment did not fail"
        text = output(proc).replace("''", "'")  # YAML single-quoted messages double their quotes
        assert message in text, f"{name}: {message!r} not in the output:\n{text[-1500:]}"
        # stopped on the control node, before any host was contacted
        assert "PLAY [Declare the app's backend" not in text, name
    after = {h: fingerprint(h) for h in hosts}
    for h in hosts:
        assert after[h] == before[h], f"{h} changed"
    assert_serves_only(V1)


# --- a release that fails its health check -----------------------------------------------
def test_failed_health_check_rolls_the_canary_back_and_v1_keeps_serving():
    untouched = fingerprint(NODES[1])
    with Stream(threads=2, pause=0.05) as stream:
        proc = run_runbook("deploy", "broken", VERSION=BROKEN, PACKAGE=package(BROKEN))
    report("failed release", f"{stream.summary()}; playbook {proc.elapsed:.0f} s")
    text = output(proc)
    assert proc.returncode != 0, text[-2000:]
    assert f"{TENANT}/{APP} {BROKEN} failed on {NODES[0]}" in text, text[-2000:]
    assert f"The node is back on {V1}" in text
    assert "500" in text  # the reason: the health check's answer (the app's root URL)
    # the canary is back on v1, without the broken release; the other node was not touched
    assert sh(NODES[0], f"readlink {APP_DIR}/current").strip() == f"releases/{V1}"
    assert sh(NODES[0], f"ls {APP_DIR}/releases").split() == [V1]
    assert app_record(NODES[0])["current"] == V1
    assert [r["version"] for r in app_record(NODES[0])["releases"]] == [V1]
    assert fingerprint(NODES[1]) == untouched
    # nothing failed meanwhile, only v1 answered, and both nodes serve again
    assert stream.failures == [], stream.summary()
    assert set(stream.versions) == {V1}, stream.summary()
    for controller in CONTROLLERS:
        servers = backend_servers(controller)
        assert len(servers) == 2, (controller, servers)
        # running (2), or starting (1: back in service, its traffic ramping up over load_balancer_slowstart)
        assert all(
            s["srv_op_state"] in ("1", "2") and int(s["srv_admin_state"]) & 0x23 == 0 for s in servers.values()
        ), (controller, servers)
    assert_serves_only(V1)


# --- rolling update under load -----------------------------------------------------------
def test_rolling_update_under_load_loses_no_request():
    workers = worker_pids()
    with Stream(threads=4, pause=0.02) as stream:
        proc = run_runbook("deploy", "rolling", VERSION=V2, PACKAGE=package(V2))
    report("rolling update", f"{stream.summary()}; playbook {proc.elapsed:.0f} s")
    assert proc.returncode == 0, output(proc)[-2000:]
    assert stream.failures == [], stream.summary()
    assert stream.total >= MIN_REQUESTS, stream.summary()
    assert set(stream.versions) == {V1, V2}, stream.summary()
    assert_serves_only(V2)
    # membership changed through the Runtime API only: no reload, same workers
    assert worker_pids() == workers
    for node in NODES:
        record = app_record(node)
        assert record["current"] == V2
        assert [r["version"] for r in record["releases"]] == [V1, V2]
        assert sh(node, f"readlink {APP_DIR}/current").strip() == f"releases/{V2}"


def test_redeploying_the_current_release_leaves_healthy_nodes_alone_and_repairs_the_other():
    """The same release again: the node whose instance was stopped goes through the
    rollout and serves again; the healthy node is left out of it (nothing changes there)."""
    untouched = fingerprint(NODES[0])
    sh(NODES[1], f"systemctl stop monoscape-app@{TENANT}.{APP}.1.service")
    proc = run_runbook("deploy", "redeploy-current", VERSION=V2, PACKAGE=package(V2))
    assert proc.returncode == 0, output(proc)[-2000:]
    recap = dict(re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout, re.M))
    assert recap[NODES[0]] == "0" and recap[NODES[1]] != "0", recap
    assert fingerprint(NODES[0]) == untouched
    assert sh(NODES[1], f"systemctl is-active monoscape-app@{TENANT}.{APP}.1.service").strip() == "active"
    assert_serves_only(V2)


def test_same_version_from_another_package_is_refused():
    before = {n: fingerprint(n) for n in NODES}
    proc = run_runbook("deploy", "other-package", VERSION=V2, PACKAGE=package(V1))
    assert proc.returncode != 0
    assert "give the new package a new version" in output(proc)
    assert {n: fingerprint(n) for n in NODES} == before


# --- rollback ----------------------------------------------------------------------------
def test_rollback_returns_to_the_previous_release():
    with Stream(threads=2, pause=0.05) as stream:
        proc = run_runbook("rollback", "rollback")
    report("rollback", f"{stream.summary()}; playbook {proc.elapsed:.0f} s")
    assert proc.returncode == 0, output(proc)[-2000:]
    assert stream.failures == [], stream.summary()
    assert_serves_only(V1)
    for node in NODES:
        assert app_record(node)["current"] == V1
        assert sh(node, f"ls {APP_DIR}/releases").split() == [V1]
    # nothing left to roll back to: refused, nothing changed
    proc = run_runbook("rollback", "rollback-again")
    assert proc.returncode != 0
    assert "has no previous release to roll back to" in output(proc)


# --- undeploy ----------------------------------------------------------------------------
def test_undeploy_removes_the_app_and_frees_its_ports():
    ports = {n: json.loads(sh(n, "cat /etc/monoscape/ports.json"))["instances"] for n in NODES}
    assert all(ports.values())
    masters = haproxy_masters()
    workers = worker_pids()
    proc = run_runbook("undeploy", "undeploy")
    assert proc.returncode == 0, output(proc)[-2000:]
    # the backend's removal is a configuration change: a reload (new workers), never a restart (same master)
    assert haproxy_masters() == masters
    after = worker_pids()
    assert all(after[c] != workers[c] for c in CONTROLLERS), (workers, after)
    status, body = get(PREFIX)
    assert status == 404
    assert "no app here" in body
    assert_no_backend_left()
    for node in NODES:
        # freed: out of the registry (app_ports hands them out again, see tests/unit/test_app_ports.py)
        # and nothing listens on them any more
        assert json.loads(sh(node, "cat /etc/monoscape/ports.json"))["instances"] == {}
        listening = sh(node, "ss -Hltn | awk '{print $4}'")
        for instance in ports[node].values():
            assert f":{instance['port']}\n" not in listening + "\n", (node, instance, listening)
        assert sh(node, f"test -e {APP_DIR} && echo present || echo gone").strip() == "gone"
        units = sh(node, "systemctl list-units --all --no-legend --plain 'monoscape-app@*'")
        assert f"{TENANT}.{APP}" not in units
        assert not sh(node, "ls /etc/nginx/monoscape.d /etc/monoscape/instances").count(f"{TENANT}.{APP}")
        assert_nothing_left(node)


def assert_nothing_left(node):
    """No folder of the app or of its tenant (its only app here), no log of its instances."""
    assert sh(node, f"test -e /srv/monoscape/apps/{TENANT} && echo present || echo gone").strip() == "gone"
    assert not sh(node, "ls -A /var/log/monoscape").count(f"{TENANT}.{APP}.")


def test_a_failed_first_release_leaves_nothing_behind():
    """The app's very first release fails its health check on the canary: the app is
    removed from it and from the load balancer (its URL answers 404 as for any unknown app,
    not 503), the other node was never touched, and no folder, port or log is left."""
    untouched = fingerprint(NODES[1])
    proc = run_runbook("deploy", "broken-first", VERSION=BROKEN, PACKAGE=package(BROKEN))
    text = output(proc)
    assert proc.returncode != 0, text[-2000:]
    assert "it was its first release: the app was removed from it" in text, text[-2000:]
    status, body = get(PREFIX)
    assert status == 404, (status, body[:200])
    assert "no app here" in body
    assert_no_backend_left()
    assert json.loads(sh(NODES[0], "cat /etc/monoscape/ports.json"))["instances"] == {}
    assert_nothing_left(NODES[0])
    assert fingerprint(NODES[1]) == untouched
