"""os_network, os_subnet and os_router against the lab cloud's real Neutron,
through ansible-playbook runs, as the member user of a fresh project (no admin
rights): a network, a subnet and a router with its gateway on the lab's external
network `public` and an interface on the subnet; the second run changes nothing;
check mode changes nothing; Neutron's refusals (in use, floating IPs) come back
naming what to remove; the teardown order (router, subnet, network) leaves no
port behind. Five playbook runs in all: each costs seconds of Ansible start-up."""

import pytest
from os_play import Play, assert_idempotent, failed, ok, twice

pytestmark = pytest.mark.lab

CHECK = {"check_mode": True}
NET, SUBNET, ROUTER = "tenant-net", "tenant-subnet", "tenant-router"
CIDR = "10.97.0.0/24"


def network_task(**args):
    return {"monoscape.paas.os_network": {"name": NET, "description": "deployment network", **args}}


def subnet_task(**args):
    return {"monoscape.paas.os_subnet": {"name": SUBNET, "network": NET, "cidr": CIDR, **args}}


def router_task(**args):
    return {"monoscape.paas.os_router": {"name": ROUTER, "external_network": "public", "interfaces": [SUBNET], **args}}


def absent_task(module, name, **args):
    return {f"monoscape.paas.{module}": {"name": name, "state": "absent", **args}}


STACK = [("network", network_task()), ("subnet", subnet_task()), ("router", router_task())]
TEARDOWN = [
    ("router", absent_task("os_router", ROUTER)),
    ("subnet", absent_task("os_subnet", SUBNET)),
    ("network", absent_task("os_network", NET)),
]


@pytest.fixture
def play(tmp_path, lab_clouds_yaml):
    return Play(tmp_path, lab_clouds_yaml)


def project_ports(admin, project_id):
    """Every port of the project (admin's view)."""
    return [(p.device_owner, p.fixed_ips) for p in admin.network.ports(project_id=project_id)]


def test_network_stack_as_a_member(play, lab_project, lab_admin):
    cloud, conn, project_id = lab_project.cloud, lab_project.conn, lab_project.project_id
    # check mode first (of the network: the subnet and router look it up), then twice for real
    results, _ = play(cloud, [("netcheck", {**network_task(), **CHECK}), *twice(STACK)])
    ok(results["netcheck"], changed=True)
    assert_idempotent(results, STACK)  # network_1 changed: check mode had created nothing

    network = conn.network.find_network(NET, project_id=project_id)
    subnet = conn.network.find_subnet(SUBNET, project_id=project_id)
    router = conn.network.find_router(ROUTER, project_id=project_id)
    public = conn.network.find_network("public", is_router_external=True)
    assert results["network_2"]["network"]["id"] == network.id
    assert results["network_2"]["network"]["subnets"] == [subnet.id]
    assert (subnet.cidr, subnet.gateway_ip, subnet.is_dhcp_enabled) == (CIDR, "10.97.0.1", False)
    assert router.external_gateway_info["network_id"] == public.id
    interfaces = results["router_2"]["router"]["interfaces"]
    assert [(i["subnet_id"], i["ip_address"]) for i in interfaces] == [(subnet.id, "10.97.0.1")]
    ports = list(conn.network.ports(device_id=router.id, device_owner="network:router_interface"))
    assert [p.id for p in ports] == [interfaces[0]["port_id"]]

    # check mode of changes and of the teardown: the same stack is still a no-op after them;
    # then the teardown in its order, twice
    results, _ = play(
        cloud,
        [
            ("nointerface", {**router_task(interfaces=[]), **CHECK}),
            ("nogateway", {**router_task(external_network=None), **CHECK}),
            ("dns", {**subnet_task(dns_nameservers=["198.51.100.53"]), **CHECK}),
            *[(f"{name}_check", {**task, **CHECK}) for name, task in TEARDOWN],
            *[(f"{name}_again", task) for name, task in STACK],
            *twice(TEARDOWN),
        ],
    )
    ok(results["nointerface"], changed=True)
    assert results["nointerface"]["interfaces_removed"] == [subnet.id]
    assert results["nointerface"]["router"]["interfaces"] == []
    ok(results["nogateway"], changed=True)
    assert results["nogateway"]["router"]["external_gateway_info"] is None
    ok(results["dns"], changed=True)
    assert results["dns"]["subnet"]["dns_nameservers"] == ["198.51.100.53"]
    for name, _ in TEARDOWN:
        ok(results[f"{name}_check"], changed=True)
        ok(results[f"{name}_again"], changed=False)
    assert_idempotent(results, TEARDOWN)
    assert conn.network.find_router(ROUTER, project_id=project_id) is None
    assert conn.network.find_network(NET, project_id=project_id) is None
    assert list(lab_admin.network.ports(device_id=router.id)) == []  # gateway port included
    assert project_ports(lab_admin, project_id) == []


def test_network_refusals_as_a_member(play, lab_project, lab_admin):
    """Neutron's "in use" answers named; what Neutron cannot change refused; bad input refused."""
    cloud, conn, project_id = lab_project.cloud, lab_project.conn, lab_project.project_id
    results, _ = play(cloud, STACK)
    for name, _ in STACK:
        ok(results[name], changed=True)
    # a port on the subnet with a floating IP from public, which reaches the port through the router
    subnet = conn.network.find_subnet(SUBNET, project_id=project_id)
    port = conn.network.create_port(network_id=subnet.network_id, fixed_ips=[{"subnet_id": subnet.id}])
    public = conn.network.find_network("public", is_router_external=True)
    fip = conn.network.create_ip(floating_network_id=public.id, port_id=port.id)
    try:
        results, _ = play(
            cloud,
            [
                # api_retries 0: a conflict is otherwise retried with back-off (seconds) before it is explained
                ("network_in_use", absent_task("os_network", NET, api_retries=0)),
                ("subnet_in_use", absent_task("os_subnet", SUBNET, api_retries=0)),
                ("interface_fip", router_task(interfaces=[])),
                ("router_fip", absent_task("os_router", ROUTER)),
                ("cidr", subnet_task(cidr="10.98.0.0/24")),
                ("hostbits", subnet_task(name="bad", cidr="10.99.0.7/24")),
                ("pubic", router_task(external_network="pubic")),
            ],
        )
    finally:
        conn.network.delete_ip(fip, ignore_missing=True)
        conn.network.delete_port(port, ignore_missing=True)
    failed(results["network_in_use"], f"network '{NET}' is still in use", f"router '{ROUTER}' (interface 10.97.0.1)")
    failed(results["subnet_in_use"], f"subnet '{SUBNET}' is still in use", f"router '{ROUTER}'")
    fip_text = f"{fip.floating_ip_address} (to {fip.fixed_ip_address})"
    failed(results["interface_fip"], "cannot drop its interface", fip_text, "nothing was changed")
    failed(results["router_fip"], "still routes floating IPs", fip_text)
    failed(
        results["cidr"], f"has cidr {CIDR}, not 10.98.0.0/24", "delete the subnet (state: absent) or use another name"
    )
    failed(results["hostbits"], "host bits set: the network is 10.99.0.0/24", "nothing was changed")
    failed(results["pubic"], "unknown external network 'pubic'", "public")
    assert conn.network.find_subnet("bad", project_id=project_id) is None
    router = conn.network.find_router(ROUTER, project_id=project_id)
    assert len(list(conn.network.ports(device_id=router.id, device_owner="network:router_interface"))) == 1

    # the floating IP gone, the teardown goes through
    results, _ = play(cloud, TEARDOWN)
    for name, _ in TEARDOWN:
        ok(results[name], changed=True)
    assert project_ports(lab_admin, project_id) == []
