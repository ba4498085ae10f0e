"""haproxy_backend against a fake Runtime API socket (tests/unit/fake_haproxy.py):
the commands it sends and in which order, what it persists, check mode, diff,
idempotence and its errors. The real HAProxy is exercised by the lb_deploy
molecule scenario."""

from __future__ import annotations

import json
import pathlib
import socket
import time

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.monoscape.paas.plugins.module_utils import haproxy_runtime as hr
from ansible_collections.monoscape.paas.plugins.modules import haproxy_backend

from .fake_haproxy import FakeHAProxy

BACKEND = "app.demo.hello"
HEADER = "backend app.demo.hello\n    balance roundrobin\n    option httpchk\n"


@pytest.fixture(autouse=True)
def fast_sleep(monkeypatch):
    real_sleep = time.sleep
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        real_sleep(min(seconds, 0.01))

    monkeypatch.setattr(time, "sleep", sleep)
    return slept


@pytest.fixture
def lb(tmp_path):
    with FakeHAProxy(str(tmp_path / "admin.sock")) as fake:
        yield fake


@pytest.fixture
def fragment(tmp_path):
    conf = tmp_path / "conf.d"
    conf.mkdir()
    path = conf / f"50-{BACKEND}.cfg"
    path.write_text(HEADER)
    return path


def run(capsys, lb, fragment, check_mode=False, diff=False, **params):
    args = {"backend": BACKEND, "socket": lb.path, "config_file": str(fragment), "timeout": 2, **params}
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        haproxy_backend.main()
    result = json.loads(capsys.readouterr().out)
    result["rc"] = exc.value.code
    return result


def srv(name, addr="10.0.0.11", port=9081, weight=10, state="ready"):
    return {"name": name, "address": addr, "port": port, "weight": weight, "state": state}


def test_adds_servers_with_health_checks_then_enables_them(capsys, lb, fragment):
    result = run(capsys, lb, fragment, servers=[srv("n1"), srv("n2", addr="10.0.0.12")])
    assert result["rc"] == 0, result
    assert result["changed"] and result["config_changed"]
    assert lb.writes() == [
        f"add server {BACKEND}/n1 10.0.0.11:9081 weight 10 check inter 2s fall 2 rise 1",
        f"enable health {BACKEND}/n1",
        f"add server {BACKEND}/n2 10.0.0.12:9081 weight 10 check inter 2s fall 2 rise 1",
        f"enable health {BACKEND}/n2",
        f"set server {BACKEND}/n1 state ready",
        f"set server {BACKEND}/n2 state ready",
    ]
    assert lb.violations == []  # never `enabled` on add server
    assert [s["status"] for s in result["servers"]] == ["UP", "UP"]
    text = fragment.read_text()
    assert text.startswith(HEADER)
    assert "    server n1 10.0.0.11:9081 weight 10 check inter 2s fall 2 rise 1\n" in text
    assert "    server n2 10.0.0.12:9081 weight 10 check inter 2s fall 2 rise 1\n" in text
    assert hr.BLOCK_BEGIN in text and hr.BLOCK_END in text


def test_second_run_changes_nothing(capsys, lb, fragment):
    run(capsys, lb, fragment, servers=[srv("n1")])
    lb.commands.clear()
    before = fragment.read_text()
    result = run(capsys, lb, fragment, servers=[srv("n1")])
    assert result["rc"] == 0
    assert not result["changed"]
    assert result["actions"] == []
    assert lb.writes() == []
    assert fragment.read_text() == before


def test_check_mode_only_reads_and_predicts(capsys, lb, fragment):
    lb.add(BACKEND, "old", "10.0.0.9", 9081, admin=0, check_configured=True, check_enabled=True)
    result = run(capsys, lb, fragment, check_mode=True, diff=True, purge=True, servers=[srv("n1")])
    assert result["rc"] == 0
    assert result["changed"]
    assert lb.writes() == []
    assert fragment.read_text() == HEADER
    assert result["actions"] == ["add n1 10.0.0.11:9081 weight 10", "ready n1", "delete old"]
    assert [s["name"] for s in result["servers"]] == ["n1"]
    assert result["diff"]["before"] == HEADER
    assert "server n1 10.0.0.11:9081" in result["diff"]["after"]
    assert "old" not in result["diff"]["after"]


def test_weight_and_address_changes_need_no_reload_or_re_add(capsys, lb, fragment):
    run(capsys, lb, fragment, servers=[srv("n1")])
    lb.commands.clear()
    result = run(capsys, lb, fragment, servers=[srv("n1", addr="10.0.0.21", port=9082, weight=50)])
    assert result["rc"] == 0, result
    assert lb.writes() == [
        f"set server {BACKEND}/n1 addr 10.0.0.21 port 9082",
        f"set weight {BACKEND}/n1 50",
    ]
    assert "server n1 10.0.0.21:9082 weight 50 check" in fragment.read_text()


def test_drain_waits_until_no_session_is_left(capsys, lb, fragment):
    run(capsys, lb, fragment, servers=[srv("n1")])
    lb.backends[BACKEND]["n1"].sessions = 3
    lb.commands.clear()
    result = run(capsys, lb, fragment, servers=[srv("n1", state="drain")])
    assert result["rc"] == 0, result
    assert lb.writes() == [f"set server {BACKEND}/n1 state drain"]
    polls = [c for c in lb.commands if c.startswith("show stat")]
    assert len(polls) >= 4  # until the fake's sessions reached 0
    assert lb.backends[BACKEND]["n1"].sessions == 0
    assert result["servers"][0]["state"] == "drain"
    # persisted as disabled: after a reload it gets no traffic until set ready
    assert "server n1 10.0.0.11:9081 weight 10 check inter 2s fall 2 rise 1 disabled" in fragment.read_text()


def test_drain_that_does_not_finish_fails_clearly_and_is_persisted(capsys, lb, fragment):
    run(capsys, lb, fragment, servers=[srv("n1")])
    lb.backends[BACKEND]["n1"].sessions = 10**6
    lb.sessions_drop_per_poll = 0
    result = run(capsys, lb, fragment, servers=[srv("n1", state="maint")], timeout=1)
    assert result["rc"] == 1
    assert result["failed"]
    assert "still have sessions after 1 s of draining (n1: 1000000)" in result["msg"]
    # it stays drained (not in maintenance), and the fragment says so
    assert lb.backends[BACKEND]["n1"].admin == 0x08
    assert "disabled" in fragment.read_text()


def test_maint_drains_first(capsys, lb, fragment):
    run(capsys, lb, fragment, servers=[srv("n1")])
    lb.commands.clear()
    result = run(capsys, lb, fragment, servers=[srv("n1", state="maint")])
    assert result["rc"] == 0
    assert lb.writes() == [f"set server {BACKEND}/n1 state drain", f"set server {BACKEND}/n1 state maint"]
    assert result["actions"] == ["drain n1", "maint n1"]


def test_back_from_maintenance_waits_for_a_fresh_check(capsys, lb, fragment, fast_sleep):
    run(capsys, lb, fragment, servers=[srv("n1", state="maint")], check_inter="3s")
    lb.commands.clear()
    fast_sleep.clear()
    result = run(capsys, lb, fragment, servers=[srv("n1")], check_inter="3s")
    assert result["rc"] == 0, result
    # through drain (checks resume, no traffic) for one check interval, then ready
    assert lb.writes() == [f"set server {BACKEND}/n1 state drain", f"set server {BACKEND}/n1 state ready"]
    assert 3.25 in fast_sleep


def test_unhealthy_new_server_stays_out_of_service(capsys, lb, fragment):
    lb.add(BACKEND, "placeholder", "10.0.0.1", 1, admin=0x01)
    del lb.backends[BACKEND]["placeholder"]
    original = lb.answer

    def answer(line):
        out = original(line)
        if line.startswith("add server"):
            lb.backends[BACKEND]["n1"].healthy = False
        return out

    lb.answer = answer
    result = run(capsys, lb, fragment, servers=[srv("n1")], timeout=1)
    assert result["rc"] == 1
    assert "did not pass its health check within 1 s" in result["msg"]
    assert "L7STS" in result["msg"]
    assert f"set server {BACKEND}/n1 state ready" not in lb.commands
    assert "server n1 10.0.0.11:9081 weight 10 check inter 2s fall 2 rise 1 disabled" in fragment.read_text()


def test_absent_drains_then_deletes_in_haproxy_order(capsys, lb, fragment):
    run(capsys, lb, fragment, servers=[srv("n1"), srv("n2", addr="10.0.0.12")])
    lb.commands.clear()
    result = run(capsys, lb, fragment, servers=[{"name": "n1", "state": "absent"}])
    assert result["rc"] == 0, result
    assert lb.writes() == [
        f"set server {BACKEND}/n1 state drain",
        f"set server {BACKEND}/n1 state maint",
        f"disable health {BACKEND}/n1",
        f"del server {BACKEND}/n1",
    ]
    text = fragment.read_text()
    assert "server n1 " not in text
    assert "server n2 10.0.0.12:9081" in text


def test_purge_removes_unlisted_servers_after_adding_new_ones(capsys, lb, fragment):
    run(capsys, lb, fragment, servers=[srv("old")])
    lb.commands.clear()
    result = run(capsys, lb, fragment, purge=True, servers=[srv("new", addr="10.0.0.12")])
    assert result["rc"] == 0
    writes = lb.writes()
    assert writes.index(f"set server {BACKEND}/new state ready") < writes.index(f"del server {BACKEND}/old")
    assert [s["name"] for s in result["servers"]] == ["new"]


def test_purge_with_no_servers_empties_the_backend(capsys, lb, fragment):
    run(capsys, lb, fragment, servers=[srv("n1"), srv("n2", addr="10.0.0.12")])
    result = run(capsys, lb, fragment, purge=True, servers=[])
    assert result["rc"] == 0
    assert result["servers"] == []
    assert lb.backends[BACKEND] == {}
    assert "server " not in fragment.read_text()


def test_other_check_settings_recreate_the_server(capsys, lb, fragment):
    run(capsys, lb, fragment, servers=[srv("n1")])
    lb.commands.clear()
    result = run(capsys, lb, fragment, servers=[srv("n1")], check_inter="1s", check_fall=3)
    assert result["rc"] == 0, result
    writes = lb.writes()
    assert writes.index(f"del server {BACKEND}/n1") < writes.index(
        f"add server {BACKEND}/n1 10.0.0.11:9081 weight 10 check inter 1s fall 3 rise 1"
    )
    assert "check inter 1s fall 3 rise 1" in fragment.read_text()


def test_servers_the_task_does_not_manage_keep_their_persisted_line(capsys, lb, fragment):
    run(capsys, lb, fragment, servers=[srv("n1")], check_inter="5s")
    result = run(capsys, lb, fragment, servers=[srv("n2", addr="10.0.0.12")])
    assert result["rc"] == 0
    text = fragment.read_text()
    assert "server n1 10.0.0.11:9081 weight 10 check inter 5s fall 2 rise 1" in text
    assert "server n2 10.0.0.12:9081 weight 10 check inter 2s fall 2 rise 1" in text


FAILOVER = "fastinter 500ms downinter 1s observe layer4 error-limit 3 on-error mark-down slowstart 5s"


def test_default_server_keywords_go_to_added_servers_and_their_lines(capsys, lb, fragment):
    """HAProxy applies default-server to servers of the files only: the module passes
    the backend's keywords on `add server` itself (less weight/check/inter/fall/rise)."""
    fragment.write_text(HEADER + f"    default-server inter 9s {FAILOVER}  # failover\n")
    result = run(capsys, lb, fragment, servers=[srv("n1")])
    assert result["rc"] == 0, result
    assert result["server_options"] == FAILOVER.split()
    assert f"add server {BACKEND}/n1 10.0.0.11:9081 weight 10 check inter 2s fall 2 rise 1 {FAILOVER}" in lb.writes()
    assert f"server n1 10.0.0.11:9081 weight 10 check inter 2s fall 2 rise 1 {FAILOVER}" in fragment.read_text()
    lb.commands.clear()
    again = run(capsys, lb, fragment, servers=[srv("n1")])
    assert again["rc"] == 0 and not again["changed"] and lb.writes() == [], again


def test_changed_default_server_keywords_recreate_the_servers(capsys, lb, fragment):
    run(capsys, lb, fragment, servers=[srv("n1")])
    lb.commands.clear()
    text = fragment.read_text().replace(HEADER, HEADER + f"    default-server {FAILOVER}\n")
    fragment.write_text(text)
    result = run(capsys, lb, fragment, servers=[srv("n1")])
    assert result["rc"] == 0, result
    writes = lb.writes()
    assert writes.index(f"del server {BACKEND}/n1") < writes.index(
        f"add server {BACKEND}/n1 10.0.0.11:9081 weight 10 check inter 2s fall 2 rise 1 {FAILOVER}"
    )


def test_default_server_of_another_section_is_ignored():
    text = f"backend other\n    default-server slowstart 9s\n{HEADER}    default-server observe layer4 weight 5 check\n"
    assert hr.default_server_options(text, BACKEND) == ("observe", "layer4")
    assert hr.default_server_options(text, "other") == ("slowstart", "9s")


def test_refuses_too_old_haproxy(capsys, tmp_path, fragment):
    with FakeHAProxy(str(tmp_path / "old.sock"), version="2.4.22-0+deb12u1") as old:
        result = run(capsys, old, fragment, servers=[srv("n1")])
    assert result["rc"] == 1
    assert "HAProxy 2.4.22-0+deb12u1 is too old" in result["msg"]
    assert "2.6 or later" in result["msg"]
    assert old.writes() == []


def test_missing_socket_says_what_to_check(capsys, tmp_path, fragment):
    class Missing:
        path = str(tmp_path / "nope.sock")

    result = run(capsys, Missing, fragment, servers=[srv("n1")])
    assert result["rc"] == 1
    assert f"socket {Missing.path} does not exist" in result["msg"]
    assert "stats socket" in result["msg"]


def test_stale_socket_is_reported(capsys, tmp_path, fragment):
    path = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()  # the file stays, nobody listens

    class Stale:
        pass

    Stale.path = str(path)
    result = run(capsys, Stale, fragment, servers=[srv("n1")])
    assert result["rc"] == 1
    assert "refuses connections" in result["msg"]


def test_unknown_backend(capsys, lb, fragment):
    result = run(capsys, lb, fragment, backend="app.other.app", servers=[srv("n1")], timeout=1)
    assert result["rc"] == 1
    assert "backend 'app.other.app' is not loaded in HAProxy" in result["msg"]


@pytest.mark.parametrize(
    ("server", "message"),
    [
        (srv("n1", addr="node1.example.com"), "is not an IP address"),
        (srv("n1", weight=300), "weight 300 is not in 0-256"),
        (srv("n 1"), "has ' '"),
        ({"name": "n1", "state": "ready"}, "needs address"),
    ],
)
def test_bad_server_definitions_are_refused_before_anything_is_sent(capsys, lb, fragment, server, message):
    result = run(capsys, lb, fragment, servers=[server])
    assert result["rc"] == 1
    assert message in result["msg"]
    assert lb.writes() == []


def test_fragment_that_fails_validation_changes_nothing(capsys, lb, fragment, tmp_path):
    validator = tmp_path / "validate.sh"
    validator.write_text('#!/bin/sh\necho "[ALERT] config: $1 is broken" >&2\nexit 1\n')
    validator.chmod(0o755)
    result = run(capsys, lb, fragment, servers=[srv("n1")], validate=f"{validator} %s")
    assert result["rc"] == 1
    assert "fails validation" in result["msg"]
    assert "is broken" in result["msg"]
    assert lb.writes() == []
    assert fragment.read_text() == HEADER
    assert sorted(p.name for p in fragment.parent.iterdir()) == [fragment.name]  # no candidate left


def test_validator_sees_the_candidate(capsys, lb, fragment, tmp_path):
    seen = tmp_path / "seen.cfg"
    validator = tmp_path / "validate.sh"
    validator.write_text(f'#!/bin/sh\ncp "$1" {seen}\n')
    validator.chmod(0o755)
    result = run(capsys, lb, fragment, servers=[srv("n1")], validate=f"{validator} %s")
    assert result["rc"] == 0
    assert seen.read_text() == fragment.read_text()


def test_missing_fragment(capsys, lb, tmp_path):
    result = run(capsys, lb, tmp_path / "absent.cfg", servers=[srv("n1")])
    assert result["rc"] == 1
    assert "does not exist" in result["msg"]
    assert lb.writes() == []


def test_fragment_whose_last_section_is_another_one(capsys, lb, fragment):
    fragment.write_text(HEADER + "backend other\n    balance roundrobin\n")
    result = run(capsys, lb, fragment, servers=[srv("n1")])
    assert result["rc"] == 1
    assert "must declare `backend app.demo.hello` as the last section" in result["msg"]
    assert lb.writes() == []


def test_block_is_kept_in_place_when_settings_follow(capsys, lb, fragment):
    run(capsys, lb, fragment, servers=[srv("n1")])
    text = fragment.read_text().replace(hr.BLOCK_END + "\n", hr.BLOCK_END + "\n    # trailing comment\n")
    fragment.write_text(text)
    run(capsys, lb, fragment, servers=[srv("n1", weight=20)])
    assert fragment.read_text().endswith("    # trailing comment\n")
    assert "weight 20" in fragment.read_text()


def test_parse_block_round_trip():
    lines = [
        hr.server_line(hr.Server("a", "10.0.0.1", 9081, 10, "ready"), hr.CheckSettings(True, "2s", 2, 1)),
        hr.server_line(hr.Server("b", "fd00::5", 9082, 0, "maint"), hr.CheckSettings(False)),
    ]
    text = hr.render_config(HEADER, BACKEND, lines, "x.cfg")
    parsed = hr.parse_block(text)
    assert parsed["a"] == {
        "address": "10.0.0.1",
        "port": 9081,
        "weight": 10,
        "check": hr.CheckSettings(True, "2s", 2, 1),
        "disabled": False,
    }
    assert parsed["b"]["address"] == "fd00::5"
    assert parsed["b"]["disabled"] is True
    assert parsed["b"]["check"].enabled is False
    assert "server b ipv6@fd00::5:9082 weight 0 disabled" in text


@pytest.mark.parametrize(("value", "seconds"), [("2s", 2), ("500ms", 0.5), ("1500", 1.5), ("1m", 60)])
def test_parse_time(value, seconds):
    assert hr.parse_time(value) == pytest.approx(seconds)


def test_documentation_matches_the_argument_spec():
    doc = yaml.safe_load(haproxy_backend.DOCUMENTATION)
    source = pathlib.Path(haproxy_backend.__file__).read_text()
    for option in doc["options"]:
        assert f'"{option}":' in source, option
    assert sorted(doc["options"]) == list(doc["options"])  # sorted, like the spec
