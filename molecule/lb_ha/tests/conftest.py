"""Shared by the lb_ha verify tests: the scenario's inputs (molecule.yml, vars.yml,
the roles' defaults), commands in the containers with `podman exec`, who holds the
virtual address, each host's VRRP state, and a stopwatch for failovers."""

from __future__ import annotations

import ipaddress
import pathlib
import subprocess
import time

import yaml

SCENARIO = pathlib.Path(__file__).resolve().parent.parent
ROOT = SCENARIO.parent.parent
VARS = yaml.safe_load((SCENARIO / "vars.yml").read_text())
PLATFORMS = yaml.safe_load((SCENARIO / "molecule.yml").read_text())["platforms"]
HOSTS = [p["name"] for p in PLATFORMS]
NETWORK = PLATFORMS[0]["network"]
KEEPALIVED = yaml.safe_load((ROOT / "roles" / "keepalived" / "defaults" / "main.yml").read_text())
LOAD_BALANCER = yaml.safe_load((ROOT / "roles" / "load_balancer" / "defaults" / "main.yml").read_text())
INSTANCE = KEEPALIVED["keepalived_instance_name"]
MONITOR_URI = LOAD_BALANCER["load_balancer_monitor_uri"]
LIMIT = float(VARS["lb_ha_failover_limit"])
MEASUREMENTS = ROOT / "build" / "logs" / "lb-ha-measurements.txt"


def podman(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, f"podman {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def sh(host: str, script: str, check: bool = True) -> str:
    return podman("exec", host, "sh", "-c", script, check=check)


def _vip() -> str:
    """Host number lb_ha_vip_host of the scenario's network (what converge.yml computes)."""
    subnet = podman("network", "inspect", NETWORK, "--format", "{{range .Subnets}}{{.Subnet}}{{end}}").strip()
    return str(ipaddress.ip_network(subnet)[VARS["lb_ha_vip_host"]])


VIP = _vip()


def holders() -> list[str]:
    return [h for h in HOSTS if f" {VIP}/" in sh(h, "ip -4 -o addr show")]


def other(host: str) -> str:
    return next(h for h in HOSTS if h != host)


def vrrp_state(host: str) -> str:
    """MASTER, BACKUP or FAULT from keepalived's data dump (SIGUSR1), STOPPED if it does not run."""
    out = sh(
        host,
        "systemctl is-active --quiet keepalived || { echo STOPPED; exit 0; }; "
        "rm -f /tmp/keepalived.data; systemctl kill -s USR1 --kill-whom=main keepalived; "
        "for i in $(seq 50); do [ -s /tmp/keepalived.data ] && break; sleep 0.02; done; "
        "sed -n '/VRRP Instance = " + INSTANCE + "$/,/State = /p' /tmp/keepalived.data",
    )
    if out.strip() == "STOPPED":
        return "STOPPED"
    states = [line.split("=", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("State =")]
    return states[-1] if states else "?"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.2)


def http_status(client: str, url: str) -> str:
    return sh(client, f"curl -s -o /dev/null -m 2 -w '%{{http_code}}' {url}", check=False).strip()


def failover(old: str, action: str) -> tuple[float, float]:
    """Run `action` on `old` (which holds the address): seconds from just before it
    is sent until the other host holds the address, seen from inside that host
    (checked every 20 ms; the containers share the machine's clock), and seconds
    the action took (podman exec included)."""
    new = other(old)
    watcher = subprocess.Popen(
        [
            "podman",
            "exec",
            new,
            "sh",
            "-c",
            f"echo watching; until ip -4 -o addr show | grep -q ' {VIP}/'; do sleep 0.02; done; date +%s.%N",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout.readline().strip() == "watching"
    started = time.time()
    sh(old, action)
    acted = time.time() - started
    try:
        out, _ = watcher.communicate(timeout=LIMIT + 10)
    except subprocess.TimeoutExpired:
        watcher.kill()
        raise AssertionError(f"{new} did not take {VIP} within {LIMIT + 10} s after `{action}` on {old}") from None
    return float(out.strip()) - started, acted


def record(line: str) -> None:
    """Print a measurement (molecule verify shows it) and keep it in build/logs."""
    print(f"\n[lb_ha] {line}")
    MEASUREMENTS.parent.mkdir(parents=True, exist_ok=True)
    with MEASUREMENTS.open("a") as out:
        out.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
