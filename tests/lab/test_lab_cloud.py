"""The lab cloud works like a cloud: servers are real hosts, reached over SSH as an
operator outside the cloud does (a floating IP, host keys pinned from the console
log); metadata, snapshots, power actions, delete, EC2 credentials; a fake
availability zone for scale. Everything as a member user of a fresh project,
through openstacksdk or the `openstack` CLI."""

import ipaddress
import json
import os
import subprocess
import time

import pytest
from lab_helpers import podman

PODMAN_LABEL_DIR = "monoscape.lab.dir"
# podman's molecule pool (scripts/test-hosts.sh containers.conf)
MOLECULE_POOL = ipaddress.ip_network("10.89.60.0/22")


def container_of(server_id):
    """podman inspect of the server's container, or None."""
    proc = podman("container", "inspect", f"monoscape-lab-{server_id}")
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def fixed_ip(server):
    return next(a["addr"] for addrs in server.addresses.values() for a in addrs if a["OS-EXT-IPS:type"] == "fixed")


def wait_status(conn, server, status, timeout=180):
    return conn.compute.wait_for_server(server, status=status, failures=["ERROR"], interval=0.3, wait=timeout)


@pytest.fixture(scope="module")
def project(lab_project_factory):
    return lab_project_factory("lab-cloud")


@pytest.fixture(scope="module")
def boot(project, lab_ssh, lab_external):
    conn = project.conn
    keypair = conn.compute.create_keypair(name=f"{project.name}-key", public_key=lab_ssh.public_key)
    image = conn.image.find_image("debian-12")
    flavor = conn.compute.find_flavor("m1.small")
    network, ssh_group = project.operator_network(lab_external)

    def boot(name, image_id=None, reachable=True, **kwargs):
        """A server; `reachable`: with a floating IP and its host keys pinned (server.address)."""
        started = time.monotonic()
        server = conn.compute.create_server(
            name=f"{project.name}-{name}",
            image_id=image_id or image.id,
            flavor_id=flavor.id,
            networks=[{"uuid": network.id}],
            security_groups=[{"name": ssh_group.name}, {"name": "default"}],
            key_name=keypair.name,
            **kwargs,
        )
        server = wait_status(conn, server, "ACTIVE")
        server.boot_seconds = time.monotonic() - started
        if reachable:
            server.address = project.floating_ip(server, lab_external)
            lab_ssh.pin(conn, server)
        return server

    return boot


@pytest.fixture(scope="module")
def vm(boot, lab_ssh):
    started = time.monotonic()
    server = boot("vm1")
    lab_ssh.wait(server.address, server.id)
    server.ssh_seconds = time.monotonic() - started
    return server


def ssh(lab_ssh, server, command, **kwargs):
    return lab_ssh.run(server.address, command, server.id, **kwargs)


def test_bootstrap_resources(lab_admin, lab_clouds_yaml):
    assert oct(lab_clouds_yaml.stat().st_mode & 0o777) == "0o600"
    image = lab_admin.image.find_image("debian-12")
    assert image.visibility == "public" and image.status == "active"
    assert image.properties["monoscape_lab_podman_image"].startswith("localhost/monoscape-lab/guest:")
    for flavor in ("m1.tiny", "m1.small"):
        assert lab_admin.compute.find_flavor(flavor).ram <= 1024
    network = lab_admin.network.find_network("private")
    assert network.is_shared
    subnet = lab_admin.network.find_subnet("private-subnet")
    assert not ipaddress.ip_network(subnet.cidr).overlaps(MOLECULE_POOL)
    public = lab_admin.network.find_network("public")
    assert public.is_router_external
    assert lab_admin.network.find_router("lab-router").external_gateway_info["network_id"] == public.id
    zones = {z.name for z in lab_admin.compute.availability_zones()}
    assert {"nova", "fake"} <= zones


def test_server_is_active_and_answers_ssh_at_its_floating_ip(vm, project, lab_ssh):
    ip = fixed_ip(vm)
    port = next(project.conn.network.ports(device_id=vm.id))
    assert port.fixed_ips[0]["ip_address"] == ip
    assert vm.availability_zone == "nova"
    out = ssh(lab_ssh, vm, "hostname; cat /root/.ssh/authorized_keys; ip -4 -o addr show eth0").stdout
    hostname, key, addr = out.splitlines()[:3]
    assert hostname == vm.name
    assert key.strip() == lab_ssh.public_key.strip()
    assert f"inet {ip}/" in addr
    container = container_of(vm.id)
    assert container["State"]["Status"] == "running"
    assert container["Config"]["Labels"][PODMAN_LABEL_DIR]
    print(f"boot: ACTIVE after {vm.boot_seconds:.1f}s, SSH after {vm.ssh_seconds:.1f}s")


def test_metadata_round_trips(vm, project):
    conn = project.conn
    conn.compute.set_server_metadata(vm, monoscape_role="node", monoscape_tenant="t1")
    assert conn.compute.fetch_server_metadata(vm).metadata == {"monoscape_role": "node", "monoscape_tenant": "t1"}
    conn.compute.delete_server_metadata(vm, ["monoscape_tenant"])
    assert conn.compute.get_server(vm.id).metadata == {"monoscape_role": "node"}


def test_console_output_is_the_console(vm, project):
    output = project.conn.compute.get_server_console_output(vm, length=40)["output"]
    assert "Reached target" in output and "ssh.service" in output  # systemd's boot, on the tty
    assert f"root@{vm.name} (ED25519)" in project.conn.compute.get_server_console_output(vm)["output"]


@pytest.fixture(scope="module")
def clone(vm, boot, project, lab_ssh):
    """A server booted from a snapshot of vm1 taken after a file was written on it."""
    ssh(lab_ssh, vm, "echo provisioned-on-vm1 > /root/marker && sync")
    conn = project.conn
    started = time.monotonic()
    image = conn.compute.create_server_image(vm, name=f"{project.name}-snap", wait=True, timeout=180)
    image = conn.image.wait_for_status(image, "active", failures=["killed"], interval=0.3, wait=180)
    image.snapshot_seconds = time.monotonic() - started
    server = boot("clone", image_id=image.id)
    lab_ssh.wait(server.address, server.id)
    server.snapshot = image
    return server


def test_file_survives_snapshot_and_boot_from_snapshot(clone, vm, lab_ssh):
    assert ssh(lab_ssh, clone, "cat /root/marker").stdout.strip() == "provisioned-on-vm1"
    assert ssh(lab_ssh, clone, "hostname").stdout.strip() == clone.name
    # sysprep: a clone has its own identity (and printed its own host keys at its first boot)
    ids = {ssh(lab_ssh, s, "cat /etc/machine-id; cat /etc/ssh/ssh_host_ed25519_key.pub").stdout for s in (vm, clone)}
    assert len(ids) == 2
    assert clone.snapshot.properties["monoscape_lab_podman_image"].endswith(clone.snapshot.id)
    print(f"snapshot active after {clone.snapshot.snapshot_seconds:.1f}s")


PING = """python3 - {ip} <<'EOF'
import socket, struct, sys
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); return ~(s + (s >> 16)) & 0xffff
body = struct.pack('!HH', 7, 1) + b'monoscape'
pkt = struct.pack('!BBH', 8, 0, csum(struct.pack('!BBH', 8, 0, 0) + body + b'\\0')) + body
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(3)
s.sendto(pkt, (sys.argv[1], 0))
while True:
    data, addr = s.recvfrom(1500)
    if addr[0] == sys.argv[1] and data[20] == 0:
        print('echo reply from', addr[0]); break
EOF"""


def test_two_servers_reach_each_other(vm, clone, lab_ssh):
    """Both are in the default group: its members reach each other, any protocol."""
    for src, dst in ((vm, clone), (clone, vm)):
        banner = ssh(lab_ssh, src, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{fixed_ip(dst)}/22; head -c 4 <&3'").stdout
        assert banner == "SSH-"
        assert f"echo reply from {fixed_ip(dst)}" in ssh(lab_ssh, src, PING.format(ip=fixed_ip(dst))).stdout


def test_stop_and_start(clone, project, lab_ssh):
    conn = project.conn
    started = time.monotonic()
    conn.compute.stop_server(clone)
    server = wait_status(conn, clone, "SHUTOFF", timeout=60)
    assert container_of(clone.id)["State"]["Status"] == "exited"
    assert server.power_state == 4  # shutdown
    conn.compute.start_server(clone)
    wait_status(conn, clone, "ACTIVE", timeout=60)
    lab_ssh.wait(clone.address, clone.id, timeout=60)
    assert ssh(lab_ssh, clone, "cat /root/marker").stdout.strip() == "provisioned-on-vm1"
    print(f"stop + start + SSH: {time.monotonic() - started:.1f}s")


def test_reboot(vm, project, lab_ssh):
    conn = project.conn
    pid1_start = "cut -d' ' -f22 /proc/1/stat"  # start time of PID 1 (systemd), in ticks
    before = ssh(lab_ssh, vm, pid1_start).stdout
    conn.compute.reboot_server(vm, "SOFT")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        server = conn.compute.get_server(vm.id)
        if server.status == "ACTIVE" and not server.task_state:
            break
        time.sleep(0.3)
    lab_ssh.wait(vm.address, vm.id, timeout=60)
    assert ssh(lab_ssh, vm, pid1_start).stdout != before  # PID 1 started again


def test_delete_removes_container_and_port(clone, project):
    conn = project.conn
    ports = [p.id for p in conn.network.ports(device_id=clone.id)]
    assert ports and container_of(clone.id)
    conn.compute.delete_server(clone)
    conn.compute.wait_for_delete(clone, interval=0.3, wait=60)
    assert container_of(clone.id) is None
    assert not list(conn.network.ports(device_id=clone.id))
    for port in ports:
        assert conn.network.find_port(port) is None


def test_fake_zone_server_costs_no_container(boot, project, lab_admin):
    server = boot("fake1", reachable=False, availability_zone="fake")
    assert server.availability_zone == "fake"
    assert lab_admin.compute.get_server(server.id).hypervisor_hostname == "lab-fake"
    assert container_of(server.id) is None
    project.conn.compute.delete_server(server)
    project.conn.compute.wait_for_delete(server, interval=0.3, wait=60)


def test_ec2_credentials_create_with_the_openstack_cli(lab_project, lab_env, tmp_path):
    clouds = lab_project.clouds_yaml(tmp_path / "clouds.yaml", "member")
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD="member")
    cli = lab_env["MONOSCAPE_LAB_OPENSTACK"]
    created = subprocess.run(
        [cli, "ec2", "credentials", "create", "-f", "json"], capture_output=True, text=True, env=env, check=False
    )
    assert created.returncode == 0, created.stderr
    cred = json.loads(created.stdout)
    assert len(cred["access"]) == 32 and cred["secret"]
    assert cred["project_id"] == lab_project.project_id
    listed = subprocess.run(
        [cli, "ec2", "credentials", "list", "-f", "json"], capture_output=True, text=True, env=env, check=True
    )
    assert cred["access"] in {c["Access"] for c in json.loads(listed.stdout)}
