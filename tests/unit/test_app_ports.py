"""app_ports: ports allocated per node in a registry, never twice, kept across
releases, freed on undeploy and then reused; check mode, diff, errors."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.monoscape.paas.plugins.modules import app_ports


@pytest.fixture
def listening(monkeypatch):
    ports: set[int] = set()
    monkeypatch.setattr(app_ports, "listening_ports", lambda: ports)
    return ports


def run(capsys, registry, check_mode=False, diff=False, **params):
    args = {"registry": str(registry), **params}
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        app_ports.main()
    result = json.loads(capsys.readouterr().out)
    result["rc"] = exc.value.code
    return result


def registered(registry):
    return {k: v["port"] for k, v in json.loads(registry.read_text())["instances"].items()}


def test_allocates_the_lowest_free_ports_and_creates_the_registry(capsys, tmp_path, listening):
    registry = tmp_path / "etc" / "monoscape" / "ports.json"
    result = run(capsys, registry, owner="demo/hello", instances=["demo.hello.1", "demo.hello.2"])
    assert result["rc"] == 0
    assert result["changed"]
    assert result["ports"] == {"demo.hello.1": 9081, "demo.hello.2": 9082}
    assert result["allocated"] == ["demo.hello.1", "demo.hello.2"]
    assert registered(registry) == result["ports"]
    assert oct(registry.stat().st_mode & 0o777) == "0o644"


def test_keeps_ports_and_is_idempotent(capsys, tmp_path, listening):
    registry = tmp_path / "ports.json"
    run(capsys, registry, owner="demo/hello", instances=["demo.hello.1"])
    listening.add(9081)  # its instance is running now
    result = run(capsys, registry, owner="demo/hello", instances=["demo.hello.1"])
    assert not result["changed"]
    assert result["ports"] == {"demo.hello.1": 9081}
    assert result["allocated"] == []


def test_no_collision_between_apps_nor_with_other_listeners(capsys, tmp_path, listening):
    registry = tmp_path / "ports.json"
    run(capsys, registry, owner="demo/hello", instances=["demo.hello.1"])
    listening.update({9082, 9083})  # something else listens there
    result = run(capsys, registry, owner="demo/shop", instances=["demo.shop.1", "demo.shop.2"])
    assert result["ports"] == {"demo.shop.1": 9084, "demo.shop.2": 9085}
    assert len(set(registered(registry).values())) == 3


def test_released_ports_are_reused(capsys, tmp_path, listening):
    registry = tmp_path / "ports.json"
    run(capsys, registry, owner="demo/hello", instances=["demo.hello.1", "demo.hello.2"])
    run(capsys, registry, owner="demo/shop", instances=["demo.shop.1"])
    result = run(capsys, registry, owner="demo/hello", state="absent")
    assert result["changed"]
    assert result["released"] == {"demo.hello.1": 9081, "demo.hello.2": 9082}
    assert registered(registry) == {"demo.shop.1": 9083}
    result = run(capsys, registry, owner="demo/other", instances=["demo.other.1"])
    assert result["ports"] == {"demo.other.1": 9081}


def test_release_some_instances_only(capsys, tmp_path, listening):
    registry = tmp_path / "ports.json"
    run(capsys, registry, owner="demo/hello", instances=["demo.hello.1", "demo.hello.2"])
    result = run(capsys, registry, owner="demo/hello", instances=["demo.hello.2"], state="absent")
    assert result["released"] == {"demo.hello.2": 9082}
    assert result["owned"] == {"demo.hello.1": 9081}
    again = run(capsys, registry, owner="demo/hello", instances=["demo.hello.2"], state="absent")
    assert not again["changed"]


def test_check_mode_predicts_without_writing(capsys, tmp_path, listening):
    registry = tmp_path / "missing-dir" / "ports.json"
    result = run(capsys, registry, check_mode=True, diff=True, owner="demo/hello", instances=["demo.hello.1"])
    assert result["rc"] == 0
    assert result["changed"]
    assert result["ports"] == {"demo.hello.1": 9081}
    assert '"demo.hello.1"' in result["diff"]["after"]
    assert not registry.parent.exists()


def test_instance_of_another_owner_is_refused(capsys, tmp_path, listening):
    registry = tmp_path / "ports.json"
    run(capsys, registry, owner="demo/hello", instances=["demo.hello.1"])
    result = run(capsys, registry, owner="demo/shop", instances=["demo.hello.1"])
    assert result["rc"] == 1
    assert "registered to 'demo/hello', not 'demo/shop'" in result["msg"]


def test_range_exhausted(capsys, tmp_path, listening):
    registry = tmp_path / "ports.json"
    result = run(
        capsys, registry, owner="demo/hello", instances=["a.b.1", "a.b.2", "a.b.3"], range_start=9000, range_end=9001
    )
    assert result["rc"] == 1
    assert "no free port left in 9000-9001" in result["msg"]
    assert not registry.exists()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"instances": ["Bad Name"]}, "instance name 'Bad Name' must match"),
        ({"instances": ["a.b.1", "a.b.1"]}, "listed twice"),
        ({"instances": ["a.b.1"], "range_start": 70000, "range_end": 70001}, "is not within 1-65535"),
    ],
)
def test_bad_input(capsys, tmp_path, listening, params, message):
    result = run(capsys, tmp_path / "ports.json", owner="demo/hello", **params)
    assert result["rc"] == 1
    assert message in result["msg"]


def test_unreadable_registry(capsys, tmp_path, listening):
    registry = tmp_path / "ports.json"
    registry.write_text("{not json")
    result = run(capsys, registry, owner="demo/hello", instances=["demo.hello.1"])
    assert result["rc"] == 1
    assert "is unreadable" in result["msg"]


def test_listening_ports_reads_proc_net_tcp():
    ports = app_ports.listening_ports()
    assert isinstance(ports, set)
    assert all(0 < p < 65536 for p in ports)
