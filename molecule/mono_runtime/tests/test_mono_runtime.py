"""Verify mono_runtime on the molecule host: the template unit serves the sample
app, really compiled and computed at request time, under /<tenant>/<app>/.

Expectations come from the scenario's vars.yml (the converge input), not from
literals repeated here."""

import hashlib
import json
import pathlib
import uuid

import yaml

VARS = yaml.safe_load((pathlib.Path(__file__).parent.parent / "vars.yml").read_text())
INSTANCE = VARS["mono_runtime_instances"][0]
UNIT = f"monoscape-app@{INSTANCE['name']}.service"
PREFIX = f"/{INSTANCE['tenant']}/{INSTANCE['app']}/"
BASE = f"http://127.0.0.1:{INSTANCE['port']}"


def test_unit_active_and_enabled(host):
    svc = host.service(UNIT)
    assert svc.is_running
    assert svc.is_enabled
    assert host.check_output(f"systemctl show -p Restart --value {UNIT}") == "always"


def test_nginx_listens_on_instance_port(host):
    assert host.socket(f"tcp://0.0.0.0:{INSTANCE['port']}").is_listening
    assert host.file(f"/run/monoscape/{INSTANCE['name']}/fcgi.sock").is_socket


def test_app_serves_computed_content_under_prefix(host):
    nonce = uuid.uuid4().hex
    out = host.check_output(f"curl -sf '{BASE}{PREFIX}?q={nonce}'")
    assert "Hello from Monoscape sample app" in out
    assert "version: 1.0.0" in out
    assert f"path: {PREFIX}" in out
    assert "sha256(q): " + hashlib.sha256(nonce.encode()).hexdigest() in out


def test_counter_changes_between_requests(host):
    pages = [host.check_output(f"curl -sf {BASE}{PREFIX}") for _ in range(2)]
    served = [int(line.split(": ")[1]) for page in pages for line in page.splitlines() if line.startswith("served: ")]
    assert len(served) == 2
    assert served[1] > served[0]


def test_other_prefix_is_not_served(host):
    assert host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' {BASE}/other/app/") == "404"


def test_instance_restarts_after_kill(host):
    pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    host.run(f"kill -9 {pid}")
    out = host.run(f"for i in $(seq 1 60); do curl -sf {BASE}{PREFIX}health.aspx && exit 0; sleep 0.5; done; exit 1")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "OK 1.0.0"
    assert host.check_output(f"systemctl show -p MainPID --value {UNIT}") != pid


def test_mono_version_fact(host):
    fact = json.loads(host.file("/etc/ansible/facts.d/mono_runtime.fact").content_string)
    assert fact["mono_version"].startswith("6.8.0")
