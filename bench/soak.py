"""Failover under a bounded load (`make soak`; a measurement, not a test; issue #17).

On the lb_deploy molecule hosts (a controller with HAProxy, two nodes; converged
here unless --no-converge, destroyed at the end unless --keep):

  race   GET the app at 8-way concurrency straight on one instance (node 1's nginx
         port, no load balancer, no retry): every non-2xx answer counts. Mono's
         encoding race showed as HTTP 400 about once per 20,000-60,000 requests.
  soak   GET through the load balancer at 8-way concurrency while a rolling
         update to the next version runs, then an app instance is killed
         (SIGKILL), then node 2's container is killed.

Prints, per phase: requests, errors by kind, p50/p99/max latency. Bounded: each
phase stops at its request limit or its time limit (defaults 200,000 requests /
15 min for race, 300,000 requests / 10 min for soak). Asserts nothing.
"""

from __future__ import annotations

import argparse
import glob
import os
import pathlib
import subprocess
import sys
import time
from collections import Counter

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCENARIO = "lb_deploy"


def molecule(*args: str) -> None:
    subprocess.run(["molecule", *args, "-s", SCENARIO], cwd=ROOT, check=True)


def ephemeral_directory() -> str:
    """The scenario's molecule state folder (where converge.yml wrote ssh-inventory.yml)."""
    found = sorted(
        glob.glob(os.path.expanduser(f"~/.ansible/tmp/molecule.*.{SCENARIO}/ssh-inventory.yml")),
        key=os.path.getmtime,
    )
    if not found:
        sys.exit(f"no converged {SCENARIO} scenario found: run without --no-converge")
    return os.path.dirname(found[-1])


def kinds(failures: list[str]) -> dict[str, int]:
    return dict(Counter(f.split(" ", 1)[0].rstrip(":") for f in failures))


def show(name: str, stream, extra: str = "") -> None:
    lat = sorted(stream.latencies) or [0.0]
    rate = stream.total / max(stream.elapsed, 0.001)
    print(
        f"{name:5} {stream.total} requests in {stream.elapsed:.0f} s ({rate:.0f}/s), "
        f"errors {len(stream.failures)} {kinds(stream.failures) or ''}, "
        f"latency p50 {stream.percentile(0.5) * 1000:.0f} ms, p99 {stream.percentile(0.99) * 1000:.0f} ms, "
        f"max {lat[-1] * 1000:.0f} ms{extra}",
        flush=True,
    )
    for failure in stream.failures[:5]:
        print(f"      {failure[:200]}")


def wait_up(lb, node: str, timeout: float = 180) -> None:
    """Until HAProxy has the node's server in service (running, or starting: slow start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = lb.backend_servers()
        if any(name.startswith(f"{node}-") and s["srv_op_state"] in ("1", "2") for name, s in servers.items()):
            return
        time.sleep(0.5)
    raise SystemExit(f"{node}'s server did not come UP within {timeout} s")


WEB_CONFIG = "/etc/mono/4.5/web.config"


def race(lb, args, baseline: bool = False) -> None:
    """Straight on node 1's instance: every non-2xx is Mono's own. With baseline, first
    with the distribution's web.config (no responseHeaderEncoding), then as deployed."""
    node = lb.NODES[0]
    instance = f"{lb.TENANT}.{lb.APP}.1"
    unit = f"monoscape-app@{instance}.service"
    port = int(lb.sh(node, f"sed -n 's/^MONOSCAPE_PORT=//p' /etc/monoscape/instances/{instance}.env"))
    if baseline:
        lb.sh(
            node,
            f"cp -p {WEB_CONFIG} /root/web.config.deployed && "
            f'sed -i \'s/ responseHeaderEncoding="[^"]*"//\' {WEB_CONFIG} && systemctl restart {unit}',
        )
    try:
        with lb.Stream(args.threads, 0, args.race_requests, target=(lb.address(node), port)) as stream:
            stream.wait(args.race_seconds)
        label = "distribution's web.config" if baseline else "as deployed"
        show("race", stream, f" (one instance, {node}:{port}, no load balancer, {label})")
    finally:
        if baseline:
            lb.sh(node, f"mv /root/web.config.deployed {WEB_CONFIG} && systemctl restart {unit}")


def soak(lb, args) -> None:
    """Through the load balancer: a rolling update, an instance SIGKILL, a node kill."""
    node1, node2 = lb.NODES
    instance = f"{lb.TENANT}.{lb.APP}.1"
    version = lb.VARS["lb_deploy_next_version"]
    events = []
    with lb.Stream(args.threads, 0, args.soak_requests) as stream:
        started = time.monotonic()

        def event(what: str) -> None:
            events.append(f"{time.monotonic() - started:5.1f} s {what}")

        time.sleep(5)
        event(f"rolling update to {version}")
        proc = lb.run_runbook("deploy", "soak-rolling", VERSION=version, PACKAGE=lb.package(version))
        event(f"rolling update done (rc {proc.returncode})")
        time.sleep(5)
        pid = lb.sh(node1, f"systemctl show -P MainPID monoscape-app@{instance}.service").strip()
        lb.sh(node1, f"kill -KILL {pid}")
        event(f"SIGKILL of {instance} on {node1}")
        time.sleep(3)
        wait_up(lb, node1)
        event(f"{node1} UP again")
        time.sleep(5)
        lb.podman("kill", node2)
        event(f"{node2} killed (for good: the soak ends on one node)")
        time.sleep(15)
        budget = min(args.soak_seconds - (time.monotonic() - started), 30)
        if budget > 0:
            event(f"steady load for {budget:.0f} s more at most")
            stream.wait(budget)
    show("soak", stream)
    for line in events:
        print(f"      {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--race-requests", type=int, default=200_000, help="0 skips the race phase")
    parser.add_argument("--race-seconds", type=int, default=900)
    parser.add_argument(
        "--race-baseline", action="store_true", help="race first without the bundle's responseHeaderEncoding"
    )
    parser.add_argument("--soak-requests", type=int, default=300_000)
    parser.add_argument("--soak-seconds", type=int, default=600)
    parser.add_argument("--no-converge", action="store_true", help="use the hosts as they are")
    parser.add_argument("--keep", action="store_true", help="leave the hosts up")
    args = parser.parse_args()
    args.soak_seconds = min(args.soak_seconds, 600)
    args.soak_requests = min(args.soak_requests, 300_000)

    if not args.no_converge:
        molecule("create")
        molecule("converge")
    os.environ["MOLECULE_EPHEMERAL_DIRECTORY"] = ephemeral_directory()
    sys.path.insert(0, str(ROOT / "molecule" / SCENARIO / "tests"))
    import conftest as lb  # noqa: PLC0415 - the scenario's helpers, importable once the path is set

    try:
        if args.race_requests and args.race_baseline:
            race(lb, args, baseline=True)
        if args.race_requests:
            race(lb, args)
        soak(lb, args)
    finally:
        if not args.keep:
            molecule("destroy")


if __name__ == "__main__":
    main()
