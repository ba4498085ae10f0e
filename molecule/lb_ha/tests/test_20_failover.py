"""The virtual address between the two controllers: exactly one holds it, HAProxy
answers through it, and it moves to the other host within lb_ha_failover_limit
seconds when HAProxy or keepalived stops on its holder (measured, printed and
written to build/logs/lb-ha-measurements.txt); it does not move back when the
service returns (nopreempt). Every test leaves both hosts healthy."""

from __future__ import annotations

import time

import pytest
from conftest import (
    HOSTS,
    LIMIT,
    MONITOR_URI,
    VIP,
    failover,
    holders,
    http_status,
    other,
    record,
    sh,
    vrrp_state,
    wait_for,
)

URL = f"http://{VIP}{MONITOR_URI}"


def settled() -> tuple[str, str] | None:
    """(master, backup) when one host holds the address as MASTER and the other is BACKUP."""
    held = holders()
    if len(held) != 1:
        return None
    master, backup = held[0], other(held[0])
    if vrrp_state(master) == "MASTER" and vrrp_state(backup) == "BACKUP":
        return master, backup
    return None


def restore():
    for host in HOSTS:
        sh(host, "systemctl start haproxy keepalived")
    return wait_for(settled, 20, "one MASTER holding the address and one BACKUP")


@pytest.fixture
def pair():
    """(master, backup), settled; both hosts restored afterwards."""
    try:
        yield wait_for(settled, 20, "one MASTER holding the address and one BACKUP")
    finally:
        restore()


def test_exactly_one_host_holds_the_address(pair):
    master, _ = pair
    assert holders() == [master]


def test_monitor_uri_answers_through_the_address(pair):
    master, backup = pair
    assert http_status(backup, URL) == "200"
    assert http_status(master, URL) == "200"


def stays_with(host: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert holders() == [host], f"the address left {host}"
        time.sleep(0.3)


@pytest.mark.parametrize(
    ("what", "stop", "start"),
    [
        ("HAProxy stopped", "systemctl stop haproxy", "systemctl start haproxy"),
        ("keepalived stopped", "systemctl stop keepalived", "systemctl start keepalived"),
    ],
)
def test_failover_and_no_way_back(pair, what, stop, start):
    old, new = pair
    took, acted = failover(old, stop)
    record(
        f"{what} on {old} (`{stop}` returned after {acted:.2f} s): "
        f"{VIP} on {new} after {took:.2f} s (limit {LIMIT:.0f} s)"
    )
    assert took <= LIMIT
    assert holders() == [new]
    assert http_status(old, URL) == "200", f"HAProxy on {new} does not answer through {VIP}"

    # back: the old holder becomes BACKUP and leaves the address where it is
    sh(old, start)
    returned = time.monotonic()
    wait_for(lambda: vrrp_state(old) == "BACKUP", 15, f"{old} BACKUP again")
    record(f"{what} on {old}, then started again: {old} BACKUP after {time.monotonic() - returned:.2f} s")
    stays_with(new, 4)
    assert vrrp_state(new) == "MASTER"
