"""Each controller after converge: keepalived from Debian running and enabled, its
configuration valid (and the validator refusing a broken one), the HAProxy check
running as an unprivileged user without warnings, unicast peers and priorities
derived from the group."""

import pytest
from conftest import HOSTS, INSTANCE, KEEPALIVED, VARS, VIP, other, sh

testinfra_hosts = [f"podman://{h}" for h in HOSTS]

CHECK = "/usr/local/lib/monoscape/keepalived-check-config"
CONF = "/etc/keepalived/keepalived.conf"


def name(host) -> str:
    return host.backend.get_hostname()


def test_keepalived_running_and_enabled(host):
    assert host.package("keepalived").is_installed
    assert host.package("keepalived").version.startswith("1:2.2")
    svc = host.service("keepalived")
    assert svc.is_running
    assert svc.is_enabled


def test_configuration_root_only_and_valid(host):
    conf = host.file(CONF)
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o600)
    out = host.run(f"{CHECK} {CONF}")
    assert out.rc == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("s/^\\(\\s*\\)rise /\\1rize /", "Unknown keyword 'rize'"),
        ("s/priority [0-9]*/priority 300/", "outside range"),
        ("s/interface eth0/interface eth9/", "doesn't exist"),
    ],
)
def test_validator_refuses_a_broken_configuration(host, change, message):
    out = host.run(f"t=$(mktemp); sed '{change}' {CONF} > $t; {CHECK} $t; rc=$?; rm -f $t; exit $rc")
    assert out.rc == 1, out.stdout + out.stderr
    assert message in out.stderr


def test_check_runs_unprivileged_without_warnings(host):
    user = host.user(KEEPALIVED["keepalived_script_user"])
    assert user.exists
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"
    log = host.check_output("journalctl -t Keepalived -t Keepalived_vrrp -o cat --no-pager")
    assert f"VRRP_Script({INSTANCE}_haproxy) succeeded" in log
    bad = [
        line
        for line in log.splitlines()
        if any(w in line.lower() for w in ("warning", "security", "disabling", "unable", "error", "notice"))
    ]
    assert not bad, bad


def test_unicast_peer_and_priority_derived_from_the_group(host):
    me = name(host)
    conf = host.file(CONF).content_string
    peer = sh(other(me), "ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -n 1").strip()
    assert f"unicast_peer {{\n        {peer}\n    }}" in conf
    assert f"priority {150 - 10 * HOSTS.index(me)}\n" in conf
    assert f"virtual_router_id {VARS['keepalived_virtual_router_id']}\n" in conf
    assert f"{VIP}/{KEEPALIVED['keepalived_virtual_prefix']} dev eth0" in conf
    assert "state BACKUP\n    nopreempt\n" in conf
