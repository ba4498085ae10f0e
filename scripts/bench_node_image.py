#!/usr/bin/env python3
"""Golden image vs provisioning, on the lab cloud (a measurement, not a test).

Boots, alternately, a server from a node image and a server from the base image,
and times each from `server create` to the sample app answering 200 under
/demo/hello/ on the node:
  golden: server create -> SSH -> unpack the app + start one mono_runtime instance
  base:   server create -> SSH -> node_controller (whole node) -> the same app step
Prints each run, the medians and the ratio base/golden (project goal >= 3x).

As the operator outside the cloud: each server boots on --network (routed to the
external network --external) with --security-group (SSH and the app port open to
this machine), gets a floating IP, and is reached with its host keys read from its
console log and checked strictly.

usage: OS_CLIENT_CONFIG_FILE=clouds.yaml scripts/bench_node_image.py --cloud NAME \
           --image NODE_IMAGE --network NET --security-group GROUP [--external public] \
           [--base debian-12] [--runs 1]
Run `make packages` first (build/packages/hello-1.0.0.zip). Creates and deletes
servers, floating IPs and a key pair named monoscape-nc-bench-*."""

import argparse
import json
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import openstack

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".collections"))  # the repository as the monoscape.paas collection

from ansible_collections.monoscape.paas.plugins.module_utils.host_keys import parse_console  # noqa: E402 - after the path set-up

FILES = ROOT / "tests" / "lab" / "files"
SAMPLE = {"name": "demo.hello.1", "tenant": "demo", "app": "hello", "port": 9081}
SAMPLE["root"] = "/srv/monoscape/apps/demo/hello/current"


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - the lab node we booted
            return resp.status == 200
    except OSError:
        return False


def ssh_up(ip):
    try:
        with socket.create_connection((ip, 22), timeout=2) as sock:
            return sock.recv(4).startswith(b"SSH")
    except OSError:
        return False


def pin(conn, server, known_hosts, timeout=120):
    """The server's host keys from its console log, written to known_hosts under its id."""
    deadline = time.monotonic() + timeout
    keys = None
    while not keys and time.monotonic() < deadline:
        keys = parse_console(conn.compute.get_server_console_output(server)["output"])
        if not keys:
            time.sleep(1)
    if not keys:
        raise SystemExit(f"no SSH host keys in the console log of {server.name}")
    known_hosts.write_text("".join(f"{server.id} {k.key_type} {k.key}\n" for k in keys))


def one_run(conn, kind, image, keypair, key, *, args):
    flavor = conn.compute.find_flavor("m1.small")
    network = conn.network.find_network(args.network, ignore_missing=False)
    name = f"monoscape-nc-bench-{kind}-{uuid.uuid4().hex[:4]}"
    started = time.monotonic()
    server = conn.compute.create_server(
        name=name,
        image_id=image.id,
        flavor_id=flavor.id,
        key_name=keypair.name,
        networks=[{"uuid": network.id}],
        security_groups=[{"name": args.security_group}],
        availability_zone="nova",
    )
    fip = None
    try:
        server = conn.compute.wait_for_server(server, wait=300)
        port = next(conn.network.ports(device_id=server.id))
        external = conn.network.find_network(args.external, ignore_missing=False)
        fip = conn.network.create_ip(floating_network_id=external.id, port_id=port.id)
        ip = fip.floating_ip_address
        known_hosts = key.with_name("known_hosts")
        pin(conn, server, known_hosts)
        wait(lambda: ssh_up(ip), 180, f"SSH on {ip}")
        play = FILES / ("node_image_sample_app.yml" if kind == "golden" else "node_controller_sample_app.yml")
        extra = {
            "sample_package": str(ROOT / "build/packages/hello-1.0.0.zip"),
            "sample_release": "/srv/monoscape/apps/demo/hello/releases/1.0.0",
            "sample_instance": SAMPLE,
            "controller_address": "192.0.2.30",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_common_args": (
                f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes -o HostKeyAlias={server.id}"
            ),
        }
        argv = ["ansible-playbook", "-i", f"{ip},", "-u", "root", "--private-key", str(key), str(play)]
        proc = subprocess.run([*argv, "-e", json.dumps(extra)], cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode:
            raise SystemExit(f"{kind}: playbook failed:\n{proc.stdout[-3000:]}")
        url = f"http://{ip}:{SAMPLE['port']}/{SAMPLE['tenant']}/{SAMPLE['app']}/"
        wait(lambda: answers(url), 120, url)
        return time.monotonic() - started
    finally:
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, wait=120)
        if fip is not None:
            conn.network.delete_ip(fip)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cloud", required=True)
    parser.add_argument("--image", required=True, help="node image name or id")
    parser.add_argument("--base", default="debian-12")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--network", required=True, help="a network routed to --external")
    parser.add_argument("--external", default="public", help="the external network of the floating IPs")
    parser.add_argument("--security-group", required=True, help="opens SSH and port 9081 to this machine")
    args = parser.parse_args()
    conn = openstack.connect(cloud=args.cloud)
    images = {"golden": conn.image.find_image(args.image), "base": conn.image.find_image(args.base)}
    with tempfile.TemporaryDirectory() as tmp:
        key = pathlib.Path(tmp) / "id_bench"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        keypair = conn.compute.create_keypair(
            name=f"monoscape-nc-bench-{uuid.uuid4().hex[:4]}", public_key=key.with_suffix(".pub").read_text()
        )
        times = {"golden": [], "base": []}
        try:
            for i in range(args.runs):
                for kind in ("golden", "base"):
                    seconds = one_run(conn, kind, images[kind], keypair, key, args=args)
                    times[kind].append(seconds)
                    print(f"run {i + 1} {kind:6}: server create -> sample app 200 in {seconds:6.1f} s", flush=True)
        finally:
            conn.compute.delete_keypair(keypair)
    golden, base = statistics.median(times["golden"]), statistics.median(times["base"])
    print(f"median golden {golden:.1f} s, base+node_controller {base:.1f} s, ratio {base / golden:.1f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
