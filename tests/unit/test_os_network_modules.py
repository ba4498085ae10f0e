"""os_network, os_subnet and os_router against the in-memory cloud
(tests/unit/os_fake_cloud.py, whose Neutron answers 400/404/409 like Neutron):
created once, idempotent, check mode changes nothing, updates show a diff, what
Neutron cannot change fails before anything changes, and "in use" refusals name
what uses the resource."""

import pytest

from ansible_collections.monoscape.paas.plugins.modules import os_network, os_router, os_server, os_subnet

from .os_fake_cloud import NoCloud, new_id, run_module
from .test_os_modules import assert_check_mode_changes_nothing, assert_idempotent, assert_refused, ok

NET = {"name": "acme-net", "description": "acme deployment"}
SUBNET = {"name": "acme-subnet", "network": "acme-net", "cidr": "10.20.0.0/24"}
ROUTER = {"name": "acme-router", "external_network": "public", "interfaces": ["acme-subnet"]}


@pytest.fixture
def refuses_before_any_call(monkeypatch):
    """Run a module against a connection that fails the test when used at all."""

    def _run(module, args, *fragments):
        result = run_module(monkeypatch, module, args, NoCloud())
        assert result["failed"], result
        for fragment in fragments:
            assert fragment in result["msg"], result["msg"]
        assert "nothing was changed" in result["msg"]
        return result

    return _run


@pytest.fixture
def stack(run, cloud):
    """acme-net, acme-subnet (10.20.0.0/24) and acme-router (gateway on public, interface on the subnet)."""
    ok(run(os_network, NET), changed=True)
    ok(run(os_subnet, SUBNET), changed=True)
    ok(run(os_router, ROUTER), changed=True)
    cloud.calls.clear()
    return cloud


def network_named(cloud, name):
    return cloud.network.find_network(name, project_id=cloud.project_id)


def subnet_named(cloud, name):
    return cloud.network.find_subnet(name, project_id=cloud.project_id)


def router_ports(cloud, router_id):
    return sorted(p.device_owner for p in cloud.network.ports_.values() if p.device_id == router_id)


def network_named_any(cloud, name):
    return cloud.network.find_network(name)


def floating_ip_on(cloud, subnet="acme-subnet"):
    """A server port on the subnet with a floating IP from public (through acme-router)."""
    network = cloud.network
    port = network.create_port(
        network_id=subnet_named(cloud, subnet).network_id, device_owner="compute:nova", device_id=new_id()
    )
    fip = network.create_ip(floating_network_id=network_named_any(cloud, "public").id, port_id=port.id)
    cloud.calls.clear()
    return fip


# ---------------------------------------------------------------------- os_network


def test_network_create_idempotent(run, cloud):
    args = dict(NET, mtu=1400, port_security_enabled=False)
    check = assert_check_mode_changes_nothing(run, cloud, os_network, args)
    assert network_named(cloud, "acme-net") is None
    first, second = assert_idempotent(run, cloud, os_network, args)
    network = first["network"]
    assert network == dict(check["network"], id=network["id"])  # check mode showed what was made
    assert network["id"] == network_named(cloud, "acme-net").id
    assert network["mtu"] == 1400
    assert network["port_security_enabled"] is False
    assert network["router_external"] is False
    assert network["shared"] is False
    assert network["project_id"] == cloud.project_id
    assert second["network"] == network


def test_network_update_shows_a_diff_and_changes_only_what_is_asked(run, cloud):
    run(os_network, dict(NET, mtu=1400))
    cloud.calls.clear()
    check = run(os_network, {"name": "acme-net", "description": "new"}, check_mode=True, diff=True)
    ok(check, changed=True)
    assert check["network"]["description"] == "new"
    assert cloud.calls.mutations() == []
    assert network_named(cloud, "acme-net").description == "acme deployment"
    result = ok(run(os_network, {"name": "acme-net", "description": "new", "port_security_enabled": False}, diff=True))
    assert result["changed"]
    assert result["diff"]["before"]["description"] == "acme deployment"
    assert result["diff"]["after"]["description"] == "new"
    assert result["diff"]["before"]["port_security_enabled"] is True
    assert result["diff"]["after"]["port_security_enabled"] is False
    assert result["network"]["mtu"] == 1400  # not given: left alone
    assert cloud.calls == ["update_network"]


def test_network_of_another_project_with_the_name_is_not_ours(run, cloud):
    cloud.network._add_network(name="acme-net", project_id="o" * 32)
    result = ok(run(os_network, NET), changed=True)
    assert result["network"]["project_id"] == cloud.project_id
    assert len([n for n in cloud.network.networks_.values() if n.name == "acme-net"]) == 2


def test_network_in_another_project_for_an_admin(run, cloud):
    acme = cloud.identity.create_project(name="acme")
    result = ok(run(os_network, dict(NET, project="acme")), changed=True)
    assert result["network"]["project_id"] == acme.id
    assert ok(run(os_network, dict(NET, project="acme")), changed=False)
    assert network_named(cloud, "acme-net") is None  # not in the admin's own project


def test_network_absent_idempotent_and_takes_its_subnets(run, cloud):
    run(os_network, NET)
    run(os_subnet, SUBNET)
    cloud.calls.clear()
    ok(run(os_network, {"name": "acme-net", "state": "absent"}, check_mode=True), changed=True)
    assert cloud.calls.mutations() == []
    result = ok(run(os_network, {"name": "acme-net", "state": "absent"}, diff=True), changed=True)
    assert result["diff"]["before"]["name"] == "acme-net"
    assert result["diff"]["after"] == {}
    assert network_named(cloud, "acme-net") is None
    assert subnet_named(cloud, "acme-subnet") is None
    cloud.calls.clear()
    ok(run(os_network, {"name": "acme-net", "state": "absent"}), changed=False)
    assert cloud.calls.mutations() == []


def test_network_in_use_names_the_router_and_the_server(run, stack, monkeypatch):
    cloud = stack
    cloud.image.add("debian-12")
    server = {"name": "web-1", "image": "debian-12", "flavor": "m1.tiny", "networks": ["acme-net"]}
    ok(run(os_server, dict(server, availability_zone="fake")), changed=True)
    cloud.calls.clear()
    result = run(os_network, {"name": "acme-net", "state": "absent"})
    assert result["failed"]
    assert result["status_code"] == 409
    msg = result["msg"]
    assert "network 'acme-net' is still in use" in msg
    assert "There are one or more ports still in use" in msg  # Neutron's own words
    assert "router 'acme-router' (interface 10.20.0.1)" in msg
    assert "server 'web-1' (10.20.0.2, port " in msg
    assert "Remove those first" in msg
    assert network_named(cloud, "acme-net") is not None
    assert set(cloud.calls) == {"delete_network"}  # Neutron said no (409 retried as for any conflict)


def test_network_with_only_a_dhcp_port_is_deleted(run, cloud):
    run(os_network, NET)
    run(os_subnet, dict(SUBNET, enable_dhcp=True))
    network = network_named(cloud, "acme-net")
    cloud.network.create_port(network_id=network.id, device_owner="network:dhcp", device_id="dhcp-host")
    ok(run(os_network, {"name": "acme-net", "state": "absent"}), changed=True)
    assert not cloud.network.ports_


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        ({"name": "acme-net", "mtu": 40}, ["mtu 40 is too small", "at least 68"]),
        ({"name": " acme-net"}, ["leading or trailing whitespace"]),
        ({"name": "x" * 256}, ["at most 255"]),
    ],
)
def test_network_bad_input_refused_before_any_call(refuses_before_any_call, args, fragments):
    refuses_before_any_call(os_network, args, *fragments)


def test_network_mtu_refused_by_neutron_says_why(run, cloud):
    result = run(os_network, dict(NET, mtu=9000))
    assert result["failed"]
    assert "Requested MTU is too big, maximum is 1450" in result["msg"]
    assert result["status_code"] == 400


# ---------------------------------------------------------------------- os_subnet


def test_subnet_create_idempotent_with_neutrons_defaults(run, cloud):
    run(os_network, NET)
    cloud.calls.clear()
    check = assert_check_mode_changes_nothing(run, cloud, os_subnet, SUBNET)
    assert subnet_named(cloud, "acme-subnet") is None
    first, second = assert_idempotent(run, cloud, os_subnet, SUBNET)
    subnet = first["subnet"]
    assert subnet == dict(check["subnet"], id=subnet["id"])  # check mode foresaw Neutron's defaults
    assert subnet["gateway_ip"] == "10.20.0.1"
    assert subnet["allocation_pools"] == [{"start": "10.20.0.2", "end": "10.20.0.254"}]
    assert subnet["enable_dhcp"] is False
    assert subnet["network_id"] == network_named(cloud, "acme-net").id
    assert subnet_named(cloud, "acme-subnet").is_dhcp_enabled is False  # Neutron's own default is true
    assert network_named(cloud, "acme-net").subnet_ids == [subnet["id"]]
    assert second["subnet"] == subnet


@pytest.mark.parametrize(
    ("override", "pools"),
    [
        ({}, [("10.20.0.2", "10.20.0.254")]),
        ({"no_gateway": True}, [("10.20.0.1", "10.20.0.254")]),
        ({"gateway_ip": "10.20.0.100"}, [("10.20.0.1", "10.20.0.99"), ("10.20.0.101", "10.20.0.254")]),
        ({"gateway_ip": "10.20.0.254"}, [("10.20.0.1", "10.20.0.253")]),
        ({"gateway_ip": "192.0.2.1"}, [("10.20.0.1", "10.20.0.254")]),  # a gateway outside the subnet
    ],
)
def test_subnet_check_mode_foresees_neutrons_pools(run, cloud, override, pools):
    run(os_network, NET)
    check = ok(run(os_subnet, dict(SUBNET, **override), check_mode=True), changed=True)
    made = ok(run(os_subnet, dict(SUBNET, **override)), changed=True)
    assert [(p["start"], p["end"]) for p in made["subnet"]["allocation_pools"]] == pools
    assert check["subnet"] == dict(made["subnet"], id="")


def test_subnet_ipv6(run, cloud):
    run(os_network, NET)
    args = {"name": "acme-v6", "network": "acme-net", "cidr": "2001:db8:1::/64", "ip_version": 6}
    check = ok(run(os_subnet, args, check_mode=True), changed=True)
    first, _ = assert_idempotent(run, cloud, os_subnet, args)
    assert first["subnet"]["gateway_ip"] == "2001:db8:1::1"
    assert first["subnet"] == dict(check["subnet"], id=first["subnet"]["id"])


def test_subnet_update_in_place_with_a_diff(run, cloud):
    run(os_network, NET)
    run(os_subnet, SUBNET)
    cloud.calls.clear()
    wanted = dict(
        SUBNET,
        description="web tier",
        dns_nameservers=["198.51.100.53", "198.51.100.54"],
        allocation_pools=[{"start": "10.20.0.100", "end": "10.20.0.200"}, {"start": "10.20.0.10", "end": "10.20.0.50"}],
        gateway_ip="10.20.0.254",
        enable_dhcp=True,
    )
    check = ok(run(os_subnet, wanted, check_mode=True, diff=True), changed=True)
    assert cloud.calls.mutations() == []
    assert subnet_named(cloud, "acme-subnet").gateway_ip == "10.20.0.1"
    result = ok(run(os_subnet, wanted, diff=True), changed=True)
    assert result["subnet"] == check["subnet"]
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert before["gateway_ip"] == "10.20.0.1"
    assert after["gateway_ip"] == "10.20.0.254"
    assert after["allocation_pools"] == [
        {"start": "10.20.0.10", "end": "10.20.0.50"},
        {"start": "10.20.0.100", "end": "10.20.0.200"},
    ]
    assert after["dns_nameservers"] == ["198.51.100.53", "198.51.100.54"]
    assert (before["enable_dhcp"], after["enable_dhcp"]) == (False, True)
    assert cloud.calls == ["update_subnet"]
    cloud.calls.clear()
    ok(run(os_subnet, wanted), changed=False)
    assert cloud.calls.mutations() == []


def test_subnet_gateway_back_needs_room_outside_the_pools(run, cloud):
    run(os_network, NET)
    first = ok(run(os_subnet, dict(SUBNET, no_gateway=True)), changed=True)
    assert first["subnet"]["gateway_ip"] is None
    assert first["subnet"]["allocation_pools"] == [{"start": "10.20.0.1", "end": "10.20.0.254"}]
    ok(run(os_subnet, dict(SUBNET, no_gateway=True)), changed=False)
    cloud.calls.clear()
    # Neutron's default gateway is inside the pool made without one: say what to do
    assert_refused(run, cloud, os_subnet, SUBNET, "10.20.0.1 is inside the allocation pool", "allocation_pools")
    result = ok(run(os_subnet, dict(SUBNET, allocation_pools=[{"start": "10.20.0.2", "end": "10.20.0.254"}])))
    assert result["changed"]
    assert result["subnet"]["gateway_ip"] == "10.20.0.1"


def test_subnet_cidr_cannot_change(run, cloud):
    run(os_network, NET)
    run(os_subnet, SUBNET)
    cloud.calls.clear()
    result = assert_refused(
        run,
        cloud,
        os_subnet,
        dict(SUBNET, cidr="10.30.0.0/24"),
        "has cidr 10.20.0.0/24, not 10.30.0.0/24",
        "cannot change a subnet's CIDR",
        "delete the subnet (state: absent) or use another name",
    )
    assert "nothing was changed" in result["msg"]
    assert subnet_named(cloud, "acme-subnet").cidr == "10.20.0.0/24"


def test_subnet_cannot_move_to_another_network(run, cloud):
    run(os_network, NET)
    run(os_network, {"name": "other-net"})
    run(os_subnet, SUBNET)
    cloud.calls.clear()
    assert_refused(
        run,
        cloud,
        os_subnet,
        dict(SUBNET, network="other-net"),
        "exists on network 'acme-net', not 'other-net'",
        "cannot move a subnet",
    )


def test_subnet_unknown_network_lists_the_known_ones(run, cloud):
    run(os_network, NET)
    cloud.calls.clear()
    assert_refused(run, cloud, os_subnet, dict(SUBNET, network="acme-nte"), "unknown network 'acme-nte'", "acme-net")


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ({"cidr": "10.20.0.5/24"}, ["cidr 10.20.0.5/24 has host bits set: the network is 10.20.0.0/24"]),
        ({"cidr": "10.20.0.0"}, ["needs a prefix length"]),
        ({"cidr": "10.20.0.0/33"}, ["is not an IP network in CIDR notation"]),
        ({"cidr": "banana/24"}, ["is not an IP network"]),
        ({"cidr": "2001:db8::/64"}, ["is IPv6 but ip_version is 4: set ip_version: 6"]),
        ({"gateway_ip": "10.20.0.0"}, ["is the network address of 10.20.0.0/24", "like 10.20.0.1"]),
        ({"gateway_ip": "10.20.0.255"}, ["is the broadcast address"]),
        ({"gateway_ip": "2001:db8::1"}, ["gateway_ip 2001:db8::1 is IPv6 but cidr 10.20.0.0/24 is IPv4"]),
        ({"gateway_ip": "gw"}, ["gateway_ip 'gw' is not an IP address"]),
        ({"gateway_ip": "10.20.0.1", "no_gateway": True}, ["give gateway_ip or no_gateway: true, not both"]),
        ({"allocation_pools": [{"start": "10.20.0.10", "end": "10.21.0.5"}]}, ["not inside cidr 10.20.0.0/24"]),
        ({"allocation_pools": [{"start": "10.20.0.50", "end": "10.20.0.10"}]}, ["start 10.20.0.50 is after end"]),
        ({"allocation_pools": [{"start": "10.20.0.1", "end": "10.20.0.9"}]}, ["contains the gateway 10.20.0.1"]),
        (
            {
                "allocation_pools": [
                    {"start": "10.20.0.10", "end": "10.20.0.20"},
                    {"start": "10.20.0.15", "end": "10.20.0.30"},
                ]
            },
            ["10.20.0.10-10.20.0.20 and 10.20.0.15-10.20.0.30 overlap"],
        ),
        ({"dns_nameservers": ["dns.example"]}, ["dns_nameservers entry 'dns.example' is not an IP address"]),
        ({"dns_nameservers": ["198.51.100.53", "198.51.100.53"]}, ["lists 198.51.100.53 more than once"]),
        ({"name": "acme\tsubnet"}, ["control character"]),
    ],
)
def test_subnet_bad_input_refused_before_any_call(refuses_before_any_call, override, fragments):
    refuses_before_any_call(os_subnet, dict(SUBNET, **override), *fragments)


def test_subnet_present_needs_cidr_and_network(run, cloud):
    result = run(os_subnet, {"name": "acme-subnet"})
    assert result["failed"]
    assert "cidr, network" in result["msg"]
    assert cloud.calls.mutations() == []


def test_subnet_absent_idempotent_and_in_use_names_the_router(run, stack):
    cloud = stack
    result = run(os_subnet, {"name": "acme-subnet", "state": "absent"})
    assert result["failed"]
    assert "subnet 'acme-subnet' is still in use" in result["msg"]
    assert "One or more ports have an IP allocation from this subnet" in result["msg"]
    assert "router 'acme-router' (interface 10.20.0.1)" in result["msg"]
    assert subnet_named(cloud, "acme-subnet") is not None
    ok(run(os_router, {"name": "acme-router", "state": "absent"}), changed=True)
    cloud.calls.clear()
    ok(run(os_subnet, {"name": "acme-subnet", "state": "absent"}, check_mode=True), changed=True)
    assert cloud.calls.mutations() == []
    ok(run(os_subnet, {"name": "acme-subnet", "state": "absent"}), changed=True)
    assert subnet_named(cloud, "acme-subnet") is None
    cloud.calls.clear()
    ok(run(os_subnet, {"name": "acme-subnet", "state": "absent"}), changed=False)
    assert cloud.calls.mutations() == []


def test_subnet_name_on_two_networks_needs_the_network(run, cloud):
    run(os_network, NET)
    other = run(os_network, {"name": "other-net"})["network"]
    run(os_subnet, SUBNET)
    # made outside the module: the same name on another network
    cloud.network._add_subnet(name="acme-subnet", network_id=other["id"], cidr="10.30.0.0/24")
    cloud.calls.clear()
    assert_refused(
        run, cloud, os_subnet, {"name": "acme-subnet", "state": "absent"}, "is ambiguous", "acme-net, other-net"
    )
    ok(run(os_subnet, SUBNET), changed=False)  # with network it is the one on acme-net
    ok(run(os_subnet, {"name": "acme-subnet", "network": "other-net", "state": "absent"}), changed=True)
    assert subnet_named(cloud, "acme-subnet").cidr == "10.20.0.0/24"


# ---------------------------------------------------------------------- os_router


def test_router_create_idempotent(run, cloud):
    run(os_network, NET)
    run(os_subnet, SUBNET)
    cloud.calls.clear()
    check = assert_check_mode_changes_nothing(run, cloud, os_router, ROUTER)
    assert not cloud.network.routers_
    first, second = assert_idempotent(run, cloud, os_router, ROUTER)
    router = first["router"]
    subnet = subnet_named(cloud, "acme-subnet")
    public = network_named_any(cloud, "public")
    assert router["external_gateway_info"]["network_id"] == public.id
    assert router["external_gateway_info"]["enable_snat"] is True
    assert router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"].startswith("203.0.113.")
    assert [(i["subnet_id"], i["ip_address"]) for i in router["interfaces"]] == [(subnet.id, "10.20.0.1")]
    assert first["interfaces_added"] == [subnet.id]
    assert router_ports(cloud, router["id"]) == ["network:router_gateway", "network:router_interface"]
    # check mode foresaw all of it but the ids Neutron gives
    assert [(i["subnet_id"], i["ip_address"], i["port_id"]) for i in check["router"]["interfaces"]] == [
        (subnet.id, "10.20.0.1", "")
    ]
    assert check["router"]["external_gateway_info"]["network_id"] == public.id
    assert second["router"] == router
    assert second["interfaces_added"] == second["interfaces_removed"] == []


def test_router_interfaces_added_before_removed(run, stack):
    cloud = stack
    ok(run(os_subnet, dict(SUBNET, name="acme-subnet-2", cidr="10.21.0.0/24")), changed=True)
    old, new = subnet_named(cloud, "acme-subnet").id, subnet_named(cloud, "acme-subnet-2").id
    cloud.calls.clear()
    check = ok(run(os_router, dict(ROUTER, interfaces=["acme-subnet-2"]), check_mode=True, diff=True), changed=True)
    assert cloud.calls.mutations() == []
    result = ok(run(os_router, dict(ROUTER, interfaces=["acme-subnet-2"]), diff=True), changed=True)
    assert cloud.calls == ["add_interface_to_router", "remove_interface_from_router"]
    assert (result["interfaces_added"], result["interfaces_removed"]) == ([new], [old])
    assert (check["interfaces_added"], check["interfaces_removed"]) == ([new], [old])
    assert [i["subnet_id"] for i in result["diff"]["before"]["interfaces"]] == [old]
    assert [(i["subnet_id"], i["ip_address"]) for i in result["diff"]["after"]["interfaces"]] == [(new, "10.21.0.1")]
    assert [(i["subnet_id"], i["ip_address"]) for i in check["router"]["interfaces"]] == [(new, "10.21.0.1")]


def test_router_without_purge_only_adds(run, stack):
    cloud = stack
    run(os_subnet, dict(SUBNET, name="acme-subnet-2", cidr="10.21.0.0/24"))
    cloud.calls.clear()
    args = dict(ROUTER, interfaces=["acme-subnet-2"], purge_interfaces=False)
    result = ok(run(os_router, args), changed=True)
    assert len(result["router"]["interfaces"]) == 2
    assert cloud.calls == ["add_interface_to_router"]
    ok(run(os_router, args), changed=False)
    # interfaces not given: left as they are
    ok(run(os_router, {"name": "acme-router", "external_network": "public"}), changed=False)


def test_router_gateway_is_declarative(run, stack):
    cloud = stack
    no_gateway = {"name": "acme-router", "interfaces": ["acme-subnet"]}
    check = ok(run(os_router, no_gateway, check_mode=True), changed=True)
    assert check["router"]["external_gateway_info"] is None
    assert cloud.calls.mutations() == []
    result = ok(run(os_router, no_gateway, diff=True), changed=True)
    assert result["diff"]["before"]["external_gateway_info"]["network_id"]
    assert result["router"]["external_gateway_info"] is None
    assert cloud.calls == ["update_router"]
    router_id = result["router"]["id"]
    assert router_ports(cloud, router_id) == ["network:router_interface"]
    ok(run(os_router, no_gateway), changed=False)
    ok(run(os_router, ROUTER), changed=True)
    result = ok(run(os_router, dict(ROUTER, enable_snat=False)), changed=True)
    assert result["router"]["external_gateway_info"]["enable_snat"] is False
    ok(run(os_router, dict(ROUTER, enable_snat=False)), changed=False)
    ok(run(os_router, ROUTER), changed=False)  # enable_snat not given: as Neutron has it


def test_router_description_update(run, stack):
    cloud = stack
    result = ok(run(os_router, dict(ROUTER, description="way out"), diff=True), changed=True)
    assert result["diff"]["after"]["description"] == "way out"
    assert cloud.calls == ["update_router"]


def test_router_absent_removes_interfaces_first(run, stack):
    cloud = stack
    run(os_subnet, dict(SUBNET, name="acme-subnet-2", cidr="10.21.0.0/24"))
    run(os_router, dict(ROUTER, interfaces=["acme-subnet", "acme-subnet-2"]))
    router_id = cloud.network.find_router("acme-router").id
    cloud.calls.clear()
    absent = {"name": "acme-router", "state": "absent"}
    ok(run(os_router, absent, check_mode=True), changed=True)
    assert cloud.calls.mutations() == []
    result = ok(run(os_router, absent, diff=True), changed=True)
    assert cloud.calls == [
        "remove_interface_from_router",
        "remove_interface_from_router",
        "update_router",
        "delete_router",
    ]
    assert len(result["diff"]["before"]["interfaces"]) == 2
    assert result["diff"]["after"] == {}
    assert not cloud.network.routers_
    assert not [p for p in cloud.network.ports_.values() if p.device_id == router_id]
    cloud.calls.clear()
    ok(run(os_router, absent), changed=False)
    assert cloud.calls.mutations() == []


def test_router_absent_after_a_partial_teardown(run, stack):
    cloud = stack
    router = cloud.network.find_router("acme-router")
    cloud.network.remove_interface_from_router(router.id, subnet_named(cloud, "acme-subnet").id)
    cloud.calls.clear()
    ok(run(os_router, {"name": "acme-router", "state": "absent"}), changed=True)
    assert cloud.calls == ["update_router", "delete_router"]


def test_router_interface_removed_meanwhile_is_fine(run, stack, monkeypatch):
    """An interface gone between the look and the removal (Neutron's 404) is what was wanted."""
    cloud = stack
    router = cloud.network.find_router("acme-router")
    real_ports = cloud.network.ports

    def ports_then_gone(**query):
        found = real_ports(**query)
        for port in list(cloud.network.ports_.values()):
            if port.device_id == router.id and port.device_owner == "network:router_interface":
                del cloud.network.ports_[port.id]
        return found

    monkeypatch.setattr(cloud.network, "ports", ports_then_gone)
    ok(run(os_router, {"name": "acme-router", "state": "absent"}), changed=True)
    assert not cloud.network.routers_


def test_teardown_order_leaves_no_port(run, stack):
    cloud = stack
    for module, name in ((os_router, "acme-router"), (os_subnet, "acme-subnet"), (os_network, "acme-net")):
        ok(run(module, {"name": name, "state": "absent"}), changed=True)
    assert not cloud.network.ports_
    assert not cloud.network.routers_
    assert network_named(cloud, "acme-net") is None


def test_router_floating_ip_blocks_removing_its_interface(run, stack):
    cloud = stack
    fip = floating_ip_on(cloud)
    label = f"{fip.floating_ip_address} (to {fip.fixed_ip_address})"
    run(os_subnet, dict(SUBNET, name="acme-subnet-2", cidr="10.21.0.0/24"))
    cloud.calls.clear()
    # checked before anything changes: the new interface is not added either
    result = assert_refused(run, cloud, os_router, dict(ROUTER, interfaces=["acme-subnet-2"]), label)
    assert "cannot drop its interface on subnet acme-subnet (10.20.0.0/24)" in result["msg"]
    assert "Disassociate or delete those floating IPs first" in result["msg"]
    assert "nothing was changed" in result["msg"]
    result = assert_refused(run, cloud, os_router, {"name": "acme-router", "state": "absent"}, label)
    assert "still routes floating IPs" in result["msg"]
    result = assert_refused(run, cloud, os_router, {"name": "acme-router", "interfaces": ["acme-subnet"]}, label)
    assert "cannot change or clear its external gateway" in result["msg"]
    # check mode foresees the same refusal
    assert run(os_router, {"name": "acme-router", "state": "absent"}, check_mode=True)["failed"]
    cloud.network.update_ip(fip.id, port_id=None)
    ok(run(os_router, {"name": "acme-router", "state": "absent"}), changed=True)


def test_router_floating_ip_refusal_from_neutron_names_them(run, stack, monkeypatch):
    """A floating IP associated after the module looked: Neutron's 409 becomes a message naming it."""
    cloud = stack
    fip = floating_ip_on(cloud)
    real_ips = cloud.network.ips
    looks = []

    def ips_late(**query):
        looks.append(query)
        return [] if len(looks) == 1 else real_ips(**query)

    monkeypatch.setattr(cloud.network, "ips", ips_late)
    result = run(os_router, {"name": "acme-router", "state": "absent"})
    assert result["failed"]
    assert result["status_code"] == 409
    assert "Neutron refused to remove the interface of router 'acme-router'" in result["msg"]
    assert "required by one or more floating IPs" in result["msg"]
    assert f"{fip.floating_ip_address} (to {fip.fixed_ip_address})" in result["msg"]
    assert "delete_router" not in cloud.calls
    assert cloud.network.find_router("acme-router") is not None


def test_router_unknown_names_list_the_known_ones(run, cloud):
    run(os_network, NET)
    run(os_subnet, SUBNET)
    cloud.calls.clear()
    assert_refused(
        run,
        cloud,
        os_router,
        dict(ROUTER, external_network="pubic"),
        "unknown external network 'pubic'; known external networks: public",
    )
    assert_refused(
        run,
        cloud,
        os_router,
        dict(ROUTER, interfaces=["acme-subnet", "acme-subnt"]),
        "unknown subnet 'acme-subnt'; known subnets: acme-subnet (in interfaces[1])",
    )
    # a network that is not external is not a gateway
    assert_refused(run, cloud, os_router, dict(ROUTER, external_network="acme-net"), "unknown external network")
    assert not cloud.network.routers_


def test_router_interface_on_a_subnet_without_gateway_is_refused(run, cloud):
    run(os_network, NET)
    run(os_subnet, dict(SUBNET, no_gateway=True))
    cloud.calls.clear()
    assert_refused(run, cloud, os_router, ROUTER, "subnet 'acme-subnet' has no gateway_ip", "nothing was changed")
    assert not cloud.network.routers_


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"name": "acme-router", "enable_snat": True}, "enable_snat needs external_network"),
        ({"name": "acme-router", "interfaces": ["acme-subnet", " x"]}, "interfaces[1] ' x' has leading"),
        ({"name": ""}, "router name must not be empty"),
    ],
)
def test_router_bad_input_refused_before_any_call(refuses_before_any_call, args, fragment):
    refuses_before_any_call(os_router, args, fragment)


def test_router_in_another_project_for_an_admin(run, cloud):
    acme = cloud.identity.create_project(name="acme")
    run(os_network, dict(NET, project="acme"))
    run(os_subnet, dict(SUBNET, project="acme"))
    result = ok(run(os_router, dict(ROUTER, project="acme")), changed=True)
    assert result["router"]["project_id"] == acme.id
    ok(run(os_router, dict(ROUTER, project="acme")), changed=False)
    # the admin's own project has no such subnet
    assert run(os_router, ROUTER)["failed"]
