"""The node status program of role node_controller: verdicts from config and unit
states, and the HTTP answers over a real unix socket (systemd's answer is the only
thing replaced)."""

import http.client
import importlib.util
import json
import pathlib
import socket
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
_SPEC = importlib.util.spec_from_file_location(
    "monoscape_node_status", ROOT / "roles/node_controller/files/monoscape_node_status.py"
)
status_mod = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(status_mod)


@pytest.fixture
def config_dir(tmp_path):
    (tmp_path / "instances").mkdir()
    (tmp_path / "node.conf").write_text(
        "# managed\nMONOSCAPE_CONTROLLER_ADDRESS=10.0.0.5\nMONOSCAPE_LB_URL=http://10.0.0.5/\n"
    )
    for name, port in (("t1.hello.1", 9081), ("t1.hello.2", 9082)):
        (tmp_path / "instances" / f"{name}.env").write_text(
            f"MONOSCAPE_TENANT=t1\nMONOSCAPE_APP=hello\nMONOSCAPE_PORT={port}\n"
        )
    return tmp_path


def fake_show(states):
    def show(units):
        return {u: {"Id": u, **states[u]} for u in units if u in states}

    return show


RUNNING = {"ActiveState": "active", "SubState": "running", "UnitFileState": "enabled"}


def test_all_enabled_instances_active_is_ok(config_dir):
    show = fake_show({"monoscape-app@t1.hello.1.service": RUNNING, "monoscape-app@t1.hello.2.service": RUNNING})
    doc = status_mod.node_status(config_dir, facts_dir=config_dir, show=show, hostname="n1")
    assert doc["status"] == "ok"
    assert doc["problems"] == []
    assert doc["controller"]["address"] == "10.0.0.5"
    assert [(i["name"], i["port"], i["active"]) for i in doc["instances"]] == [
        ("t1.hello.1", 9081, "active"),
        ("t1.hello.2", 9082, "active"),
    ]


def test_enabled_but_inactive_instance_degrades(config_dir):
    show = fake_show(
        {
            "monoscape-app@t1.hello.1.service": RUNNING,
            "monoscape-app@t1.hello.2.service": {**RUNNING, "ActiveState": "failed", "SubState": "failed"},
        }
    )
    doc = status_mod.node_status(config_dir, facts_dir=config_dir, show=show)
    assert doc["status"] == "degraded"
    assert doc["problems"] == ["instance t1.hello.2: failed (failed)"]


def test_stopped_on_purpose_instance_is_fine(config_dir):
    stopped = {"ActiveState": "inactive", "SubState": "dead", "UnitFileState": "disabled"}
    show = fake_show({"monoscape-app@t1.hello.1.service": RUNNING, "monoscape-app@t1.hello.2.service": stopped})
    assert status_mod.node_status(config_dir, facts_dir=config_dir, show=show)["status"] == "ok"


def test_missing_controller_address_degrades(config_dir):
    (config_dir / "node.conf").unlink()
    doc = status_mod.node_status(config_dir, facts_dir=config_dir, show=fake_show({}))
    assert doc["status"] == "degraded"
    assert "no MONOSCAPE_CONTROLLER_ADDRESS" in doc["problems"][0]


def test_systemd_unreachable_degrades(config_dir):
    def broken(_units):
        raise RuntimeError("systemctl show failed: Failed to connect to bus")

    doc = status_mod.node_status(config_dir, facts_dir=config_dir, show=broken)
    assert doc["status"] == "degraded"
    assert doc["problems"][0] == "unit states unknown: systemctl show failed: Failed to connect to bus"
    assert {i["active"] for i in doc["instances"]} == {"unknown"}


def test_image_and_mono_facts_are_reported(config_dir):
    (config_dir / "image.json").write_text(json.dumps({"hash": "abc123"}))
    (config_dir / "mono_runtime.fact").write_text(json.dumps({"mono_version": "6.8.0.105"}))
    doc = status_mod.node_status(config_dir, facts_dir=config_dir, show=fake_show({}))
    assert doc["image"] == {"hash": "abc123"}
    assert doc["mono_version"] == "6.8.0.105"


def test_read_env_ignores_comments_and_garbage(tmp_path):
    env = tmp_path / "x.env"
    env.write_text("# c\n\nA=1\nnot a pair\nB = two=2\n")
    assert status_mod.read_env(env) == {"A": "1", "B": "two=2"}
    assert status_mod.read_env(tmp_path / "missing") == {}


@pytest.fixture
def server(config_dir, tmp_path, monkeypatch):
    """The real HTTP server on a unix socket in a thread."""
    states = {"monoscape-app@t1.hello.1.service": RUNNING, "monoscape-app@t1.hello.2.service": RUNNING}
    monkeypatch.setattr(status_mod, "systemctl_show", fake_show(states))
    # node_status's default argument was bound at definition: route through the patched name
    real = status_mod.node_status
    monkeypatch.setattr(status_mod, "node_status", lambda d: real(d, facts_dir=d, show=status_mod.systemctl_show))
    status_mod.Handler.config_dir = str(config_dir)
    sock = tmp_path / "s.sock"
    srv = status_mod.Server(str(sock), status_mod.Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield sock, states
    srv.shutdown()
    srv.server_close()


def request(sock, path):
    conn = http.client.HTTPConnection("localhost", timeout=5)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect(str(sock))
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read().decode()


def test_http_health_status_and_404(server):
    sock, states = server
    assert request(sock, "/health") == (200, "OK\n")
    code, body = request(sock, "/status?x=1")
    assert code == 200
    assert json.loads(body)["status"] == "ok"
    assert request(sock, "/other")[0] == 404
    states["monoscape-app@t1.hello.1.service"] = {**RUNNING, "ActiveState": "activating", "SubState": "auto-restart"}
    assert request(sock, "/health") == (503, "instance t1.hello.1: activating (auto-restart)\n")


def test_systemctl_show_parses_blocks(monkeypatch):
    out = (
        "Id=monoscape-app@a.service\nActiveState=active\nSubState=running\nUnitFileState=enabled\n\n"
        "Id=monoscape-app@b.service\nActiveState=inactive\nSubState=dead\nUnitFileState=disabled\n"
    )

    class Proc:
        returncode = 0
        stdout = out
        stderr = ""

    calls = []
    monkeypatch.setattr(status_mod.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or Proc())
    states = status_mod.systemctl_show(["monoscape-app@a.service", "monoscape-app@b.service"])
    assert states["monoscape-app@b.service"]["UnitFileState"] == "disabled"
    assert calls[0][:2] == ["systemctl", "show"]
    assert status_mod.systemctl_show([]) == {}
