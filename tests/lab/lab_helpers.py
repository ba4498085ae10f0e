"""Helpers shared by the lab tests and their fixtures (importable as
`lab_helpers` from tests in tests/lab/)."""

import contextlib
import os
import pathlib
import shlex
import signal
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
LABCTL = ROOT / "lab" / "labctl"
ADMIN_CLOUD = "lab-admin"
CONTAINERS_CONF = os.path.expanduser("~/.cache/monoscape/containers.conf")


def labctl(*args, env=None, timeout=900):
    """Run lab/labctl; returns the CompletedProcess (text)."""
    return subprocess.run([str(LABCTL), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def parse_exports(text):
    """`export KEY=value` lines (as printed by `labctl env`) -> dict."""
    values = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            values[key] = shlex.split(value)[0] if value else ""
    return values


def podman(*args, check=False):
    env = dict(os.environ, CONTAINERS_CONF=os.environ.get("CONTAINERS_CONF", CONTAINERS_CONF))
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=env, check=check)


def crash_instance(server_id):
    """The instance dies as a VM whose hypervisor process is killed: its container is
    SIGKILLed (no shutdown, no goodbye) and its network goes with it. The lab keeps an
    instance's network namespace (the compute driver's, `mslab-vm-<id>`) after the
    container ends, and the kernel would go on answering for the addresses in it - ARP
    for a virtual IP keepalived had added, a TCP reset for each connection to it -
    where a dead VM's tap disappears with its QEMU process: the namespace's links go
    down right after the kill."""
    podman("kill", "--signal", "KILL", f"monoscape-lab-{server_id}", check=True)
    netns = f"mslab-vm-{server_id}"
    links = subprocess.run(["ip", "-n", netns, "-o", "link", "show"], capture_output=True, text=True, check=True)
    for line in links.stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name != "lo":
            subprocess.run(["ip", "-n", netns, "link", "set", name, "down"], check=True)


def instance_exec(server_id, command, timeout=30):
    """Run a shell command inside an instance, as the hypervisor can (podman exec):
    for tests that need a view from inside the cloud (one instance connecting to
    another). The bundle itself never does this."""
    env = dict(os.environ, CONTAINERS_CONF=os.environ.get("CONTAINERS_CONF", CONTAINERS_CONF))
    return subprocess.run(
        ["podman", "exec", f"monoscape-lab-{server_id}", "bash", "-c", command],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def wait_until(predicate, timeout, interval=0.2):
    """Seconds until predicate() is true, or None after timeout."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(interval)


def console_host_keys(console):
    """["<type> <base64>", ...] of the last SSH HOST KEY KEYS block a console log
    shows (cloud-init's format), read by the bundle's own parser."""
    from ansible_collections.monoscape.paas.plugins.module_utils.host_keys import parse_console  # noqa: PLC0415

    return [f"{key.key_type} {key.key}" for key in parse_console(console) or []]


SERVICES = (  # the lab's services, as `labctl status` names them
    "mariadb",
    "memcached",
    "rabbitmq",
    "keystone",
    "glance-api",
    "placement-api",
    "nova-api",
    "neutron-api",
    "nova-conductor",
    "nova-scheduler",
    "nova-compute-podman",
    "nova-compute-fake",
)


def status():
    """{service: (state, [pids])} from `labctl status`."""
    out = labctl("status").stdout
    rows = {}
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] in SERVICES:
            pids = fields[-1]
            rows[fields[0]] = (fields[1], [int(p) for p in pids.split(",")] if pids != "-" else [])
    return rows


def kill_service(name, sig=signal.SIGKILL):
    """Signal every process of a lab service; wait until `labctl status` shows none (20 s)."""
    _, pids = status()[name]
    assert pids, f"{name} has no processes"
    for pid in pids:
        os.kill(pid, sig)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and status()[name][1]:
        time.sleep(0.2)
    return pids


def power_cut():
    """SIGKILL every process of the lab at once, like a power cut of the control plane
    (pid files stay behind; instance containers keep running)."""
    for _, pids in status().values():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
