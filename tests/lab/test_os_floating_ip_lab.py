"""os_floating_ip and os_known_hosts against the lab cloud, through real
ansible-playbook runs, as the member user of a fresh project: the project's own
network, subnet and router (gateway on the external network `public`) made with
openstacksdk here, a server on it (a podman host: it has a real console log),
then a floating IP given twice (changed, then not; the first run waits until it
routes) and released, and the server's SSH host keys pinned from its console log
and used by a strict ssh from this machine (outside the cloud) at the floating IP."""

import ipaddress
import secrets
import subprocess

import pytest
from os_play import Play, failed, ok

pytestmark = pytest.mark.lab

CHECK = {"check_mode": True}
CIDRS = ipaddress.ip_network("10.201.0.0/16")


@pytest.fixture
def play(tmp_path, lab_clouds_yaml):
    return Play(tmp_path, lab_clouds_yaml)


@pytest.fixture
def tenant_network(lab_project, lab_external):
    """network + subnet + router with its gateway on `public`, made by the member user;
    a second network without a router. All deleted with the project."""
    conn = lab_project.conn
    public = conn.network.find_network("public")
    assert public is not None, "the lab has no external network 'public'"
    subnets = list(CIDRS.subnets(new_prefix=24))
    cidr = subnets[secrets.randbelow(len(subnets) - 1)]
    net = conn.network.create_network(name=f"{lab_project.name}-net")
    subnet = conn.network.create_subnet(
        name=f"{lab_project.name}-subnet",
        network_id=net.id,
        ip_version=4,
        cidr=str(cidr),
        gateway_ip=str(next(cidr.hosts())),
        is_dhcp_enabled=False,
    )
    router = conn.network.create_router(
        name=f"{lab_project.name}-router", external_gateway_info={"network_id": public.id}
    )
    conn.network.add_interface_to_router(router, subnet_id=subnet.id)
    lonely = conn.network.create_network(name=f"{lab_project.name}-lonely")
    lonely_cidr = subnets[-1] if cidr != subnets[-1] else subnets[0]
    conn.network.create_subnet(
        name=f"{lab_project.name}-lonely-subnet",
        network_id=lonely.id,
        ip_version=4,
        cidr=str(lonely_cidr),
        is_dhcp_enabled=False,
    )
    return net, lonely, public, lab_external


def boot(conn, name, network, zone, *, key_name=None, groups=("default",)):
    server = conn.compute.create_server(
        name=name,
        image_id=conn.image.find_image("debian-12").id,
        flavor_id=conn.compute.find_flavor("m1.tiny").id,
        networks=[{"uuid": network.id}],
        availability_zone=zone,
        security_groups=[{"name": g} for g in groups],
        **({"key_name": key_name} if key_name else {}),
    )
    return conn.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], interval=0.5, wait=300)


def test_floating_ip_and_host_keys(play, lab_project, tenant_network, lab_ssh, tmp_path):
    conn, cloud = lab_project.conn, lab_project.cloud
    net, lonely, public, lab_external = tenant_network
    key = conn.compute.create_keypair(name=f"{lab_project.name}-key", public_key=lab_ssh.public_key)
    ssh_group = conn.network.create_security_group(name=f"{lab_project.name}-ssh")
    conn.network.create_security_group_rule(
        security_group_id=ssh_group.id,
        direction="ingress",
        ethertype="IPv4",
        protocol="tcp",
        port_range_min=22,
        port_range_max=22,
        remote_ip_prefix=f"{lab_external.host_address}/32",
    )
    # a podman host: a real console log
    server = boot(conn, "fip-node-1", net, "nova", key_name=key.name, groups=(ssh_group.name,))
    boot(conn, "no-router-1", lonely, "fake")
    fixed = server.addresses[net.name][0]["addr"]
    known_hosts = tmp_path / "known_hosts"

    fip = {"server": "fip-node-1", "network": "public"}
    pin = {"path": str(known_hosts), "servers": ["fip-node-1"], "console_timeout": 180}

    # check mode allocates nothing
    results, _ = play(cloud, [("fip", {"monoscape.paas.os_floating_ip": fip, **CHECK})])
    ok(results["fip"], changed=True)
    assert results["fip"]["floating_ip"]["fixed_ip_address"] == fixed
    assert list(conn.network.ips(project_id=lab_project.project_id)) == []

    # twice: changed, then not; keys pinned, then left alone; no router: a message that says so
    results, _ = play(
        cloud,
        [
            ("fip_1", {"monoscape.paas.os_floating_ip": fip}),
            ("fip_2", {"monoscape.paas.os_floating_ip": fip}),
            ("pin_1", {"monoscape.paas.os_known_hosts": pin}),
            ("pin_2", {"monoscape.paas.os_known_hosts": pin}),
            ("norouter", {"monoscape.paas.os_floating_ip": {**fip, "server": "no-router-1"}}),
        ],
    )
    first = ok(results["fip_1"], changed=True)["floating_ip"]
    assert ok(results["fip_2"], changed=False)["floating_ip"]["id"] == first["id"]
    assert ipaddress.ip_address(first["floating_ip_address"]) in ipaddress.ip_network(lab_external.cidr)
    assert first["status"] == "ACTIVE"  # it routes: the first run waited for it
    assert first["fixed_ip_address"] == fixed
    assert first["floating_network_id"] == public.id
    port = next(conn.network.ports(device_id=server.id))
    assert [f.id for f in conn.network.ips(port_id=port.id)] == [first["id"]]
    failed(results["norouter"], "needs a router with a gateway on 'public'", "the tenant step creates it")
    assert len(list(conn.network.ips(project_id=lab_project.project_id))) == 1

    pinned = ok(results["pin_1"], changed=True)["pinned"][0]
    ok(results["pin_2"], changed=False)
    assert pinned["id"] == server.id
    assert pinned["fingerprints"]
    # the pinned keys are the server's own: a strict ssh from outside, at the floating IP, succeeds
    strict = subprocess.run(
        [
            "ssh",
            "-i",
            str(lab_ssh.key),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "HostKeyAlias=fip-node-1",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            f"root@{first['floating_ip_address']}",
            "cat /etc/ssh/ssh_host_ed25519_key.pub",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert strict.returncode == 0, strict.stderr
    assert strict.stdout.split()[1] in known_hosts.read_text()
    assert known_hosts.stat().st_mode & 0o777 == 0o600

    # absent releases the address (twice: the second changes nothing)
    absent = {"server": "fip-node-1", "network": "public", "state": "absent"}
    results, _ = play(
        cloud,
        [
            ("gone_check", {"monoscape.paas.os_floating_ip": absent, **CHECK}),
            ("gone_1", {"monoscape.paas.os_floating_ip": absent}),
            ("gone_2", {"monoscape.paas.os_floating_ip": absent}),
        ],
    )
    assert ok(results["gone_check"], changed=True)["released"] == [first["floating_ip_address"]]
    assert ok(results["gone_1"], changed=True)["released"] == [first["floating_ip_address"]]
    ok(results["gone_2"], changed=False)
    assert list(conn.network.ips(project_id=lab_project.project_id)) == []
