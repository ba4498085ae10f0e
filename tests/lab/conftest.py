"""Fixtures for tests against the lab cloud (`lab/labctl up`; see lab/README.md).

Session fixtures:
  lab_env            `labctl env` as a dict (OS_CLIENT_CONFIG_FILE, MONOSCAPE_LAB_DIR, ...)
  lab_clouds_yaml    path of the lab's clouds.yaml (mode 0600)
  lab_admin_cloud    name of the admin cloud in it: "lab-admin"
  lab_admin          openstack.connection.Connection as the lab admin
  lab_project_factory  make(prefix) -> LabProject: a new project + member user,
                     deleted (with the servers, images, key pairs, networks and
                     security groups left in it) at the end of the session
  lab_project        one LabProject per test, deleted after the test
  lab_ssh            SSH into instances with a key pair generated per session
  lab_external       the external network: cidr, the lab host's address on it, its bridge
  lab_outsider       a network namespace on the external network with another address
                     (another machine outside the cloud), made and removed by the tests

The lab must already be up (or coming up: `labctl up` running in the background,
as scripts/test.sh does): the fixtures wait for it and FAIL, never skip, when it
is not up. Name every resource with a unique prefix: other tests use the same cloud.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import secrets
import subprocess
import time

import openstack
import openstack.config
import pytest
from lab_helpers import ADMIN_CLOUD, console_host_keys, labctl, parse_exports


def connect(clouds_yaml, cloud):
    config = openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


@pytest.fixture(scope="session")
def lab_env():
    timeout = os.environ.get("MONOSCAPE_LAB_WAIT", "1800")
    proc = labctl("wait", "--timeout", timeout, timeout=float(timeout) + 60)
    if proc.returncode:
        pytest.fail(f"the lab cloud is not up: {proc.stderr.strip()}", pytrace=False)
    proc = labctl("env")
    if proc.returncode:
        pytest.fail(f"labctl env failed: {proc.stderr.strip()}", pytrace=False)
    return parse_exports(proc.stdout)


@pytest.fixture(scope="session")
def lab_clouds_yaml(lab_env):
    return pathlib.Path(lab_env["OS_CLIENT_CONFIG_FILE"])


@pytest.fixture(scope="session")
def lab_admin_cloud():
    return ADMIN_CLOUD


@pytest.fixture(scope="session")
def lab_admin(lab_clouds_yaml, lab_admin_cloud):
    conn = connect(lab_clouds_yaml, lab_admin_cloud)
    yield conn
    conn.close()


@dataclasses.dataclass
class LabProject:
    """A project with one member user, for tests that must not run as admin."""

    name: str
    project_id: str
    user_id: str
    password: str
    cloud: dict  # a clouds.yaml entry for the member user
    conn: openstack.connection.Connection
    _operator: tuple | None = None

    def operator_network(self, external):
        """(network, ssh group) of this project made once: a network behind a router
        with a gateway on the external network, and a security group that lets
        the lab host (the operator) in on 22. Servers booted on it with that group
        and given a floating IP (floating_ip) are reachable as on a real cloud."""
        if self._operator is None:
            conn = self.conn
            index = len(self.name) % 200  # a /24 of its own per project, for readable addresses
            network = conn.network.create_network(name=f"{self.name}-net")
            subnet = conn.network.create_subnet(
                network_id=network.id,
                name=f"{self.name}-subnet",
                ip_version=4,
                cidr=f"10.70.{index}.0/24",
                is_dhcp_enabled=False,
            )
            public = conn.network.find_network(external.network_id)
            router = conn.network.create_router(
                name=f"{self.name}-router", external_gateway_info={"network_id": public.id}
            )
            conn.network.add_interface_to_router(router, subnet_id=subnet.id)
            group = conn.network.create_security_group(name=f"{self.name}-ssh")
            conn.network.create_security_group_rule(
                security_group_id=group.id,
                direction="ingress",
                ethertype="IPv4",
                protocol="tcp",
                port_range_min=22,
                port_range_max=22,
                remote_ip_prefix=f"{external.host_address}/32",
            )
            self._operator = (network, group)
        return self._operator

    def floating_ip(self, server, external, timeout=30):
        """A floating IP for the server's first port, once it routes (ACTIVE)."""
        conn = self.conn
        port = next(conn.network.ports(device_id=server.id))
        fip = conn.network.create_ip(floating_network_id=external.network_id, port_id=port.id)
        deadline = time.monotonic() + timeout
        while conn.network.get_ip(fip).status != "ACTIVE":
            assert time.monotonic() < deadline, f"floating IP {fip.floating_ip_address} not ACTIVE in {timeout}s"
            time.sleep(0.3)
        return fip.floating_ip_address

    def clouds_yaml(self, path, cloud_name=None):
        """Write a clouds.yaml (0600) with this project's cloud; returns its path."""
        path = pathlib.Path(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"clouds": {cloud_name or self.name: self.cloud}}, f, indent=2)
        return path


def _wait_gone(fetch, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not fetch():
            return True
        time.sleep(0.5)
    return False


def delete_project(admin, project):
    """Delete a project, its member user and what was left in it; return what remains."""
    pid = project.project_id
    servers = list(admin.compute.servers(all_projects=True, project_id=pid))
    for server in servers:
        admin.compute.delete_server(server, ignore_missing=True)
    _wait_gone(lambda: list(admin.compute.servers(all_projects=True, project_id=pid)))
    for image in admin.image.images(owner=pid):
        with contextlib.suppress(openstack.exceptions.NotFoundException):
            admin.image.delete_image(image)
    with contextlib.suppress(openstack.exceptions.SDKException):
        for keypair in project.conn.compute.keypairs():
            project.conn.compute.delete_keypair(keypair)
    for fip in admin.network.ips(project_id=pid):  # before the routers: they hold their interfaces
        admin.network.delete_ip(fip, ignore_missing=True)
    for router in admin.network.routers(project_id=pid):
        for port in admin.network.ports(device_id=router.id, device_owner="network:router_interface"):
            with contextlib.suppress(openstack.exceptions.SDKException):
                admin.network.remove_interface_from_router(router, port_id=port.id)
        admin.network.delete_router(router, ignore_missing=True)
    for port in admin.network.ports(project_id=pid):
        if not port.device_owner.startswith("network:dhcp"):
            admin.network.delete_port(port, ignore_missing=True)
    for net in admin.network.networks(project_id=pid):
        admin.network.delete_network(net, ignore_missing=True)
    for group in admin.network.security_groups(project_id=pid):
        admin.network.delete_security_group(group, ignore_missing=True)
    project.conn.close()
    admin.identity.delete_user(project.user_id, ignore_missing=True)
    admin.identity.delete_project(pid, ignore_missing=True)
    return [s.id for s in admin.compute.servers(all_projects=True, project_id=pid)]


class LabProjectFactory:
    """`factory(prefix)` -> LabProject; `factory.delete(project)`; the rest is
    deleted at the end of the session."""

    def __init__(self, admin):
        self.admin = admin
        self.made = []

    def __call__(self, prefix="t"):
        name = f"{prefix}-{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(16)
        identity = self.admin.identity
        project = identity.create_project(name=name, domain_id="default", description="test project")
        user = identity.create_user(name=name, password=password, domain_id="default", default_project_id=project.id)
        identity.assign_project_role_to_user(project, user, identity.find_role("member"))
        cloud = {
            "region_name": "RegionOne",
            "identity_api_version": 3,
            "auth": {
                "auth_url": "http://127.0.0.1:5000/v3",
                "username": name,
                "password": password,
                "project_name": name,
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
        }
        conn = openstack.connection.Connection(config=openstack.config.get_cloud_region(**cloud))
        made = LabProject(name, project.id, user.id, password, cloud, conn)
        self.made.append(made)
        return made

    def delete(self, project):
        self.made.remove(project)
        return delete_project(self.admin, project)


@pytest.fixture(scope="session")
def lab_project_factory(lab_admin):
    factory = LabProjectFactory(lab_admin)
    yield factory
    leftovers = {p.name: factory.delete(p) for p in list(factory.made)}
    leftovers = {k: v for k, v in leftovers.items() if v}
    assert not leftovers, f"servers left behind after deleting test projects: {leftovers}"


@pytest.fixture
def lab_project(lab_project_factory, request):
    project = lab_project_factory(request.node.name[:20].replace("[", "-").replace("]", "").replace("_", "-"))
    yield project
    left = lab_project_factory.delete(project)
    assert not left, f"servers left in {project.name}: {left}"


class LabSSH:
    """SSH into the lab's instances as the operator does: at a floating IP, as
    root with the session's key, host keys pinned from the console log (read
    through the API) and checked strictly."""

    def __init__(self, key):
        self.key = key
        self.public_key = pathlib.Path(f"{key}.pub").read_text()
        self.known_hosts = pathlib.Path(f"{key}.known_hosts")
        self.known_hosts.touch(mode=0o600)

    def pin(self, conn, server, timeout=90):
        """Add the server's host keys (from its console log) under its id."""
        deadline = time.monotonic() + timeout
        while True:
            keys = console_host_keys(conn.compute.get_server_console_output(server)["output"])
            if keys or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert keys, f"no SSH host keys in the console log of {server.name}"
        lines = [ln for ln in self.known_hosts.read_text().splitlines() if not ln.startswith(f"{server.id} ")]
        lines += [f"{server.id} {key}" for key in keys]
        self.known_hosts.write_text("\n".join(lines) + "\n")
        return keys

    def argv(self, ip, command, alias, connect_timeout=3):
        return [
            "ssh",
            "-i",
            str(self.key),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            f"HostKeyAlias={alias}",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            f"root@{ip}",
            command,
        ]

    def run(self, ip, command, alias, timeout=60, check=True):
        proc = subprocess.run(
            self.argv(ip, command, alias), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode:
            raise AssertionError(f"ssh {ip} {command!r} -> {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def wait(self, ip, alias, timeout=120):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.run(ip, "true", alias, timeout=15, check=False)
                if last.returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.3)
        raise AssertionError(f"no SSH to {ip} within {timeout}s: {last.stderr.strip() if last else ''}")


@pytest.fixture(scope="session")
def lab_ssh(tmp_path_factory):
    key = tmp_path_factory.mktemp("lab-ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab-tests", "-f", str(key)], check=True)
    return LabSSH(key)


@dataclasses.dataclass
class External:
    """The lab's external network as the operator (this machine) sees it."""

    network_id: str
    cidr: str
    host_address: str  # the lab host's address on it (the public subnet's gateway)
    bridge: str


@pytest.fixture(scope="session")
def lab_external(lab_admin):
    network = lab_admin.network.find_network("public")
    subnet = lab_admin.network.find_subnet("public-subnet")
    return External(network.id, subnet.cidr, subnet.gateway_ip, f"mslx-{network.id[:10]}")


class Outsider:
    """A machine on the external network at another address than the lab host:
    a network namespace with a veth on the external bridge."""

    def __init__(self, external, last_octet=250):
        self.ns = f"mslab-test-out-{secrets.token_hex(2)}"
        self.veth = f"msto{secrets.token_hex(3)}"
        base = external.cidr.rsplit(".", 1)[0]
        self.address = f"{base}.{last_octet}"
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        subprocess.run(
            ["ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.ns], check=True
        )
        subprocess.run(["ip", "link", "set", self.veth, "master", external.bridge, "up"], check=True)
        for argv in (
            ["addr", "add", f"{self.address}/24", "dev", "eth0"],
            ["link", "set", "eth0", "up"],
            ["link", "set", "lo", "up"],
            ["route", "add", "default", "via", external.host_address],
        ):
            subprocess.run(["ip", "-n", self.ns, *argv], check=True)

    def connects(self, address, port, timeout=3):
        """True if a TCP connection from this machine to address:port is accepted."""
        code = (
            "import socket,sys\n"
            "try:\n"
            f"    socket.create_connection(({address!r}, {port}), timeout={timeout}).close()\n"
            "except OSError:\n"
            "    sys.exit(1)\n"
        )
        proc = subprocess.run(
            ["ip", "netns", "exec", self.ns, "python3", "-c", code],
            capture_output=True,
            timeout=timeout + 10,
            check=False,
        )
        return proc.returncode == 0

    def close(self):
        subprocess.run(["ip", "netns", "delete", self.ns], check=False)
        subprocess.run(["ip", "link", "delete", self.veth], check=False)


@pytest.fixture(scope="session")
def lab_outsider(lab_external):
    outsider = Outsider(lab_external)
    yield outsider
    outsider.close()
