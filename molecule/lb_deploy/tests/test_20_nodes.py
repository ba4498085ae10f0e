"""The nodes after converge: the release layout, the instance under systemd on
the port recorded for it, and nothing served outside the app's prefix."""

import json

import yaml
from conftest import APP, NODES, PREFIX, ROOT, TENANT, VARS

DEFAULTS = yaml.safe_load((ROOT / "roles" / "mono_app" / "defaults" / "main.yml").read_text())

testinfra_hosts = [f"podman://{node}" for node in NODES]
APP_DIR = f"/srv/monoscape/apps/{TENANT}/{APP}"


def test_release_layout(host):
    version = VARS["lb_deploy_first_version"]
    current = host.file(f"{APP_DIR}/current")
    assert current.is_symlink
    assert current.linked_to == f"{APP_DIR}/releases/{version}"
    assert host.file(f"{APP_DIR}/releases/{version}/web.config").is_file
    record = json.loads(host.file(f"{APP_DIR}/app.json").content_string)
    assert record["current"] == version
    assert [r["version"] for r in record["releases"]] == [version]
    assert len(record["releases"][0]["sha256"]) == 64


def test_instance_runs_on_its_recorded_port(host):
    ports = json.loads(host.file("/etc/monoscape/ports.json").content_string)["instances"]
    name = f"{TENANT}.{APP}.1"
    assert ports[name]["owner"] == f"{TENANT}/{APP}"
    port = ports[name]["port"]
    assert DEFAULTS["mono_app_port_range_start"] <= port <= DEFAULTS["mono_app_port_range_end"]
    svc = host.service(f"monoscape-app@{name}")
    assert svc.is_running
    assert svc.is_enabled
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening
    out = host.check_output(f"curl -sf http://127.0.0.1:{port}{PREFIX}health.aspx")
    assert out.strip() == f"OK {VARS['lb_deploy_first_version']}"


def test_nothing_served_outside_the_prefix(host):
    ports = json.loads(host.file("/etc/monoscape/ports.json").content_string)["instances"]
    port = ports[f"{TENANT}.{APP}.1"]["port"]
    for path in ("/web.config", "/bin/", "/Default.aspx"):
        code = host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}{path}")
        assert code == "404", path
