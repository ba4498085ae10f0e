"""os_port against the in-memory cloud (tests/unit/os_fake_cloud.py), whose Neutron
allocates addresses, fills in an allowed address pair's MAC, gives new ports the
project's default group and refuses security groups or pairs without port security,
like the real one: created once, idempotent, check mode changes nothing, pairs and
groups declarative, bound ports never changed under their server nor deleted, bad
input refused before any call."""

import pytest

from ansible_collections.monoscape.paas.plugins.modules import os_network, os_port, os_subnet

from .os_fake_cloud import NoCloud, run_module
from .test_os_modules import assert_check_mode_changes_nothing, assert_idempotent, assert_refused, ok

VIP = {
    "name": "acme-lb-vip",
    "network": "acme-net",
    "fixed_ips": [{"subnet": "acme-subnet", "ip_address": "10.20.0.250"}],
    "description": "monoscape_deployment=acme",
}


@pytest.fixture
def net(run, cloud):
    """acme-net with acme-subnet 10.20.0.0/24 and two security groups of the project."""
    ok(run(os_network, {"name": "acme-net"}), changed=True)
    ok(run(os_subnet, {"name": "acme-subnet", "network": "acme-net", "cidr": "10.20.0.0/24"}), changed=True)
    for name in ("acme-lb", "acme-web"):
        cloud.network.create_security_group(name=name)
    cloud.calls.clear()
    return cloud


@pytest.fixture
def refuses_before_any_call(monkeypatch):
    def _run(args, *fragments):
        result = run_module(monkeypatch, os_port, args, NoCloud())
        assert result["failed"], result
        for fragment in fragments:
            assert fragment in result["msg"], result["msg"]
        assert "nothing was changed" in result["msg"]
        return result

    return _run


def group_id(cloud, name):
    return cloud.network.find_security_group(name, project_id=cloud.project_id).id


def subnet_id(cloud, name="acme-subnet"):
    return cloud.network.find_subnet(name, project_id=cloud.project_id).id


def server_port(cloud, name="acme-lb-1", fixed_ip=None):
    """A server on acme-net; its port (bound, unnamed, as Nova makes it)."""
    network = cloud.network.find_network("acme-net", project_id=cloud.project_id)
    flavor = cloud.compute.find_flavor("m1.tiny")
    nets = [{"uuid": network.id, **({"fixed_ip": fixed_ip} if fixed_ip else {})}]
    server = cloud.compute.create_server(name=name, flavor_id=flavor.id, image_id="image", networks=nets)
    port = next(p for p in cloud.network.ports_.values() if p.device_id == server.id)
    cloud.calls.clear()
    return server, port


def stored(cloud, port_id):
    return cloud.network.ports_[port_id]


# ---------------------------------------------------------------------- present


def test_create_idempotent(run, net):
    check = assert_check_mode_changes_nothing(run, net, os_port, VIP)
    assert not net.network.ports(name="acme-lb-vip")
    assert check["port"]["id"] == ""
    assert check["port"]["fixed_ips"] == [{"subnet_id": subnet_id(net), "ip_address": "10.20.0.250"}]
    first, second = assert_idempotent(run, net, os_port, VIP)
    port = first["port"]
    assert port["id"] in net.network.ports_
    assert port["name"] == "acme-lb-vip"
    assert port["network_id"] == net.network.find_network("acme-net").id
    assert port["fixed_ips"] == [{"subnet_id": subnet_id(net), "ip_address": "10.20.0.250"}]
    assert port["description"] == "monoscape_deployment=acme"
    assert port["device_id"] == ""
    assert port["status"] == "DOWN"  # no server uses it
    assert port["mac_address"].startswith("fa:16:3e:")
    assert port["port_security_enabled"] is True
    assert port["security_group_ids"] == [group_id(net, "default")]  # Neutron's default for a new port
    assert port["allowed_address_pairs"] == []
    assert second["port"] == port
    expected = {k: v for k, v in port.items() if k not in ("id", "mac_address", "security_group_ids")}
    assert {k: v for k, v in check["port"].items() if k in expected} == expected


def test_neutron_chooses_the_address_when_fixed_ips_are_not_given(run, net):
    args = {"name": "acme-lb-vip", "network": "acme-net"}
    first, second = assert_idempotent(run, net, os_port, args)
    fixed = first["port"]["fixed_ips"]
    assert len(fixed) == 1
    assert fixed[0]["subnet_id"] == subnet_id(net)
    assert second["port"]["fixed_ips"] == fixed


def test_a_subnet_alone_is_satisfied_by_any_address_on_it(run, net):
    ok(run(os_port, VIP), changed=True)
    net.calls.clear()
    result = ok(run(os_port, dict(VIP, fixed_ips=[{"subnet": "acme-subnet"}])), changed=False)
    assert result["port"]["fixed_ips"][0]["ip_address"] == "10.20.0.250"
    assert net.calls.mutations() == []


def test_an_address_alone_finds_its_subnet(run, net):
    result = ok(run(os_port, dict(VIP, fixed_ips=[{"ip_address": "10.20.0.250"}])), changed=True)
    assert result["port"]["fixed_ips"] == [{"subnet_id": subnet_id(net), "ip_address": "10.20.0.250"}]


def test_diff_before_and_after(run, net):
    created = ok(run(os_port, VIP, diff=True), changed=True)
    assert created["diff"]["before"] == {}
    assert created["diff"]["after"] == created["port"]
    net.calls.clear()
    check = ok(run(os_port, dict(VIP, description="other"), check_mode=True, diff=True), changed=True)
    assert check["diff"]["before"]["description"] == "monoscape_deployment=acme"
    assert check["diff"]["after"]["description"] == "other"
    assert net.calls.mutations() == []
    result = ok(run(os_port, dict(VIP, description="other"), diff=True), changed=True)
    assert result["diff"] == check["diff"]
    assert net.calls.mutations() == ["update_port"]
    gone = ok(run(os_port, dict(VIP, state="absent"), diff=True), changed=True)
    assert gone["diff"] == {"before": result["port"], "after": {}}


def test_a_lost_create_answer_makes_no_second_port(run, net, monkeypatch):
    from openstack import exceptions as sdk_exc  # noqa: PLC0415

    from .os_fake_cloud import Response  # noqa: PLC0415

    create = net.network.create_port
    lost = []

    def create_then_lose(**attrs):
        port = create(**attrs)
        if not lost:
            lost.append(port.id)
            raise sdk_exc.HttpException(message="503 Service Unavailable", response=Response(503))
        return port

    monkeypatch.setattr(net.network, "create_port", create_then_lose)
    result = ok(run(os_port, VIP), changed=True)
    assert result["port"]["id"] == lost[0]
    assert net.calls.count("create_port") == 1
    assert len(net.network.ports(name="acme-lb-vip")) == 1


# ---------------------------------------------------------------------- allowed address pairs


def test_allowed_address_pairs_on_a_servers_port_by_id(run, net):
    server, port = server_port(net)
    args = {"name": port.id, "network": "acme-net", "allowed_address_pairs": [{"ip_address": "10.20.0.250"}]}
    check = assert_check_mode_changes_nothing(run, net, os_port, args)
    first, _ = assert_idempotent(run, net, os_port, args)
    pairs = [{"ip_address": "10.20.0.250", "mac_address": port.mac_address}]  # Neutron's default: the port's MAC
    assert first["port"]["allowed_address_pairs"] == pairs
    assert check["port"]["allowed_address_pairs"] == pairs
    assert first["port"]["device_id"] == server.id
    assert first["port"]["name"] == ""  # found by id, never renamed
    assert stored(net, port.id).allowed_address_pairs == pairs
    # the same address written as /32 is the same pair
    ok(run(os_port, dict(args, allowed_address_pairs=[{"ip_address": "10.20.0.250/32"}])), changed=False)


def test_allowed_address_pairs_are_declarative(run, net):
    _, port = server_port(net)
    base = {"name": port.id, "network": "acme-net"}
    two = [{"ip_address": "10.20.0.250"}, {"ip_address": "10.20.0.240/28", "mac_address": "FA:16:3E:AA:BB:CC"}]
    result = ok(run(os_port, dict(base, allowed_address_pairs=two)), changed=True)
    assert result["port"]["allowed_address_pairs"] == [
        {"ip_address": "10.20.0.240/28", "mac_address": "fa:16:3e:aa:bb:cc"},
        {"ip_address": "10.20.0.250", "mac_address": port.mac_address},
    ]
    ok(run(os_port, dict(base, allowed_address_pairs=two)), changed=False)
    # omitted: left alone
    ok(run(os_port, base), changed=False)
    assert len(stored(net, port.id).allowed_address_pairs) == 2
    # one fewer: removed
    result = ok(run(os_port, dict(base, allowed_address_pairs=two[:1]), diff=True), changed=True)
    assert [p["ip_address"] for p in result["diff"]["before"]["allowed_address_pairs"]] == [
        "10.20.0.240/28",
        "10.20.0.250",
    ]
    assert [p["ip_address"] for p in result["port"]["allowed_address_pairs"]] == ["10.20.0.250"]
    # another MAC for the same address is another pair
    other_mac = [{"ip_address": "10.20.0.250", "mac_address": "fa:16:3e:00:00:01"}]
    ok(run(os_port, dict(base, allowed_address_pairs=other_mac)), changed=True)
    assert stored(net, port.id).allowed_address_pairs == [other_mac[0]]
    # [] removes every pair
    ok(run(os_port, dict(base, allowed_address_pairs=[])), changed=True)
    assert stored(net, port.id).allowed_address_pairs == []
    ok(run(os_port, dict(base, allowed_address_pairs=[])), changed=False)


def test_the_vip_port_and_its_pairs_in_one_play(run, net):
    """The load balancer pattern: a VIP port, and two servers' ports allowed to carry its address."""
    vip = ok(run(os_port, VIP), changed=True)["port"]
    address = vip["fixed_ips"][0]["ip_address"]
    ports = [server_port(net, name)[1] for name in ("acme-lb-1", "acme-lb-2")]
    for port in ports:
        args = {"name": port.id, "network": "acme-net", "allowed_address_pairs": [{"ip_address": address}]}
        ok(run(os_port, args), changed=True)
        ok(run(os_port, args), changed=False)
    assert [stored(net, p.id).allowed_address_pairs[0]["ip_address"] for p in ports] == [address, address]
    assert stored(net, vip["id"]).device_id == ""


def test_a_servers_port_found_by_server_name(run, net):
    """server instead of name: the server's port on the network, never created, its name unchanged."""
    vip = ok(run(os_port, VIP), changed=True)["port"]
    address = vip["fixed_ips"][0]["ip_address"]
    server, port = server_port(net)
    args = {"server": "acme-lb-1", "network": "acme-net", "allowed_address_pairs": [{"ip_address": address}]}
    check = assert_check_mode_changes_nothing(run, net, os_port, args)
    first, _ = assert_idempotent(run, net, os_port, args)
    assert first["port"]["id"] == check["port"]["id"] == port.id
    assert first["port"]["device_id"] == server.id
    assert first["port"]["name"] == ""
    assert stored(net, port.id).allowed_address_pairs[0]["ip_address"] == address
    ok(run(os_port, dict(args, server=server.id)), changed=False)


def test_a_server_without_a_port_on_the_network_is_refused(run, net):
    server_port(net)
    ok(run(os_network, {"name": "other-net"}), changed=True)
    net.calls.clear()
    args = {"server": "acme-lb-1", "network": "other-net", "allowed_address_pairs": []}
    assert_refused(
        run, net, os_port, args, "server 'acme-lb-1' has no port on network 'other-net'", "nothing was changed"
    )
    result = run(os_port, {"server": "acme-lb-9", "network": "acme-net"})
    assert result["failed"], result
    assert "acme-lb-9" in result["msg"]


def test_name_and_server_together_are_refused(run, net):
    result = run(os_port, {"name": "x", "server": "acme-lb-1", "network": "acme-net"})
    assert result["failed"]
    assert "mutually exclusive" in result["msg"]
    result = run(os_port, {"server": "acme-lb-1", "network": "acme-net", "state": "absent"})
    assert result["failed"]
    assert "name" in result["msg"]


# ---------------------------------------------------------------------- security groups and port security


def test_security_groups_are_declarative(run, net):
    args = dict(VIP, security_groups=["acme-lb"])
    first, _ = assert_idempotent(run, net, os_port, args)
    assert first["port"]["security_group_ids"] == [group_id(net, "acme-lb")]
    both = ok(run(os_port, dict(VIP, security_groups=["acme-lb", group_id(net, "acme-web")])), changed=True)
    assert both["port"]["security_group_ids"] == sorted([group_id(net, "acme-lb"), group_id(net, "acme-web")])
    ok(run(os_port, dict(VIP, security_groups=["acme-web", "acme-lb"])), changed=False)  # order does not matter
    ok(run(os_port, VIP), changed=False)  # omitted: left alone
    result = ok(run(os_port, dict(VIP, security_groups=["acme-web"])), changed=True)
    assert result["port"]["security_group_ids"] == [group_id(net, "acme-web")]
    ok(run(os_port, dict(VIP, security_groups=[])), changed=True)
    assert stored(net, result["port"]["id"]).security_group_ids == []


def test_an_unknown_security_group_is_named_before_any_change(run, net):
    result = assert_refused(run, net, os_port, dict(VIP, security_groups=["acme-lb", "nope"]), "'nope'")
    assert "acme-lb" in result["msg"]  # the known ones are listed
    assert not net.network.ports(name="acme-lb-vip")


def test_port_security_off_with_groups_is_refused(run, net):
    ok(run(os_port, dict(VIP, security_groups=["acme-lb"])), changed=True)
    net.calls.clear()
    result = assert_refused(run, net, os_port, dict(VIP, port_security_enabled=False), "security_groups: []")
    assert group_id(net, "acme-lb") in result["msg"]
    assert "nothing was changed" in result["msg"]
    # with the groups emptied in the same task: one update
    result = ok(run(os_port, dict(VIP, port_security_enabled=False, security_groups=[])), changed=True)
    assert result["port"]["port_security_enabled"] is False
    assert result["port"]["security_group_ids"] == []
    assert net.calls.mutations() == ["update_port"]
    net.calls.clear()
    # groups on a port without port security
    assert_refused(run, net, os_port, dict(VIP, security_groups=["acme-lb"]), "has port security disabled")


def test_port_security_off_with_pairs_is_refused(run, net):
    ok(run(os_port, dict(VIP, allowed_address_pairs=[{"ip_address": "10.20.0.251"}])), changed=True)
    net.calls.clear()
    args = dict(VIP, port_security_enabled=False, security_groups=[])
    assert_refused(run, net, os_port, args, "allowed address pairs (10.20.0.251)", "allowed_address_pairs: []")
    ok(run(os_port, dict(args, allowed_address_pairs=[])), changed=True)


def test_a_network_without_port_security_gives_new_ports_none(run, net):
    ok(run(os_network, {"name": "acme-net", "port_security_enabled": False}), changed=True)
    net.calls.clear()
    assert_refused(run, net, os_port, dict(VIP, security_groups=["acme-lb"]), "gives new ports no port security")
    result = ok(run(os_port, VIP), changed=True)
    assert result["port"]["port_security_enabled"] is False
    assert result["port"]["security_group_ids"] == []


# ---------------------------------------------------------------------- fixed IPs


def test_fixed_ips_of_an_unbound_port_change_in_place(run, net):
    port_id = ok(run(os_port, VIP), changed=True)["port"]["id"]
    moved = dict(VIP, fixed_ips=[{"subnet": "acme-subnet", "ip_address": "10.20.0.251"}])
    check = ok(run(os_port, moved, check_mode=True), changed=True)
    assert check["port"]["fixed_ips"] == [{"subnet_id": subnet_id(net), "ip_address": "10.20.0.251"}]
    assert stored(net, port_id).fixed_ips[0]["ip_address"] == "10.20.0.250"
    net.calls.clear()
    result = ok(run(os_port, moved), changed=True)
    assert result["port"]["id"] == port_id
    assert result["port"]["fixed_ips"] == [{"subnet_id": subnet_id(net), "ip_address": "10.20.0.251"}]
    assert net.calls.mutations() == ["update_port"]
    # one address more: the first is kept, a second allocated
    more = dict(VIP, fixed_ips=[{"ip_address": "10.20.0.251"}, {"subnet": "acme-subnet"}])
    result = ok(run(os_port, more), changed=True)
    addresses = [ip["ip_address"] for ip in result["port"]["fixed_ips"]]
    assert addresses[0] == "10.20.0.251"
    assert len(addresses) == 2
    ok(run(os_port, more), changed=False)


def test_fixed_ips_of_a_bound_port_are_never_changed(run, net):
    server, port = server_port(net, fixed_ip="10.20.0.7")
    same = {"name": port.id, "network": "acme-net", "fixed_ips": [{"ip_address": "10.20.0.7"}]}
    ok(run(os_port, same), changed=False)
    net.calls.clear()
    result = assert_refused(
        run, net, os_port, dict(same, fixed_ips=[{"ip_address": "10.20.0.8"}]), "server 'acme-lb-1'", server.id
    )
    assert "10.20.0.7 (acme-subnet)" in result["msg"]
    assert "10.20.0.8 (acme-subnet)" in result["msg"]
    assert "unbound ports only" in result["msg"]
    assert stored(net, port.id).fixed_ips[0]["ip_address"] == "10.20.0.7"
    assert_refused(run, net, os_port, dict(same, device_owner="monoscape:vip"), "device_owner")


def test_an_address_in_use_names_its_port(run, net):
    server, _ = server_port(net, fixed_ip="10.20.0.250")
    result = assert_refused(run, net, os_port, VIP, "10.20.0.250 is already used", "server 'acme-lb-1'", server.id)
    assert "nothing was changed" in result["msg"]


def test_subnet_and_address_are_checked_against_the_network(run, net):
    assert_refused(run, net, os_port, dict(VIP, fixed_ips=[{"subnet": "nope"}]), "has no subnet 'nope'", "acme-subnet")
    assert_refused(
        run, net, os_port, dict(VIP, fixed_ips=[{"subnet": "acme-subnet", "ip_address": "10.30.0.5"}]), "not inside"
    )
    assert_refused(run, net, os_port, dict(VIP, fixed_ips=[{"ip_address": "10.30.0.5"}]), "10.20.0.0/24")
    assert not net.network.ports(name="acme-lb-vip")


# ---------------------------------------------------------------------- lookups


def test_two_ports_of_one_name_are_refused_naming_their_ids(run, net):
    network = net.network.find_network("acme-net")
    ids = sorted(net.network.create_port(network_id=network.id, name="acme-lb-vip").id for _ in range(2))
    net.calls.clear()
    for args in (VIP, dict(VIP, state="absent"), {"name": "acme-lb-vip", "state": "absent"}):
        result = assert_refused(run, net, os_port, args, "2 ports are named 'acme-lb-vip'", *ids)
        assert "nothing was changed" in result["msg"]
    assert len(net.network.ports(name="acme-lb-vip")) == 2


def test_a_port_of_the_name_on_another_network_is_another_port(run, net):
    net.network.add_network("other-net")
    ok(run(os_port, dict(VIP, network="other-net", fixed_ips=None)), changed=True)
    ok(run(os_port, VIP), changed=True)
    assert len(net.network.ports(name="acme-lb-vip")) == 2


def test_a_port_id_that_is_not_found_is_not_a_name(run, net):
    missing = "0123456789abcdef0123456789abcdef"
    assert_refused(run, net, os_port, {"name": missing, "network": "acme-net"}, f"no port with id {missing}")


def test_an_unknown_network_is_named(run, net):
    assert_refused(run, net, os_port, dict(VIP, network="nope"), "unknown network 'nope'", "acme-net")


# ---------------------------------------------------------------------- absent


def test_absent_idempotent(run, net):
    port_id = ok(run(os_port, VIP), changed=True)["port"]["id"]
    net.calls.clear()
    absent = dict(VIP, state="absent")
    ok(run(os_port, absent, check_mode=True), changed=True)
    assert port_id in net.network.ports_
    assert net.calls.mutations() == []
    ok(run(os_port, absent), changed=True)
    assert port_id not in net.network.ports_
    net.calls.clear()
    ok(run(os_port, absent), changed=False)
    ok(run(os_port, {"name": "acme-lb-vip", "state": "absent"}), changed=False)
    ok(run(os_port, dict(absent, network="gone-net")), changed=False)
    assert net.calls.mutations() == []


def test_a_bound_port_is_never_deleted(run, net):
    server, port = server_port(net)
    for args in ({"name": port.id, "network": "acme-net", "state": "absent"}, {"name": port.id, "state": "absent"}):
        result = assert_refused(run, net, os_port, args, "server 'acme-lb-1'", f"device_id {server.id}")
        assert "never detaches" in result["msg"]
        assert "nothing was changed" in result["msg"]
    assert port.id in net.network.ports_


def test_absent_names_the_floating_ip_it_disassociates(run, net, module_warnings):
    net.network.add_router("acme-router", gateway="public", interfaces=["acme-net"])
    port_id = ok(run(os_port, VIP), changed=True)["port"]["id"]
    fip = net.network.create_ip(floating_network_id=net.network.find_network("public").id, port_id=port_id)
    ok(run(os_port, dict(VIP, state="absent")), changed=True)
    assert any(fip.floating_ip_address in w and "stays allocated" in w for w in module_warnings), module_warnings
    assert net.network.ips_[fip.id].port_id is None


# ---------------------------------------------------------------------- bad input, before any call


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        ({"name": " acme-lb-vip"}, ["leading or trailing whitespace"]),
        ({"name": "x" * 256}, ["at most 255"]),
        ({"description": "a\nb"}, ["control character"]),
        ({"device_owner": "x" * 256}, ["device_owner", "at most 255"]),
        ({"fixed_ips": [{}]}, ["fixed_ips[0] needs subnet, ip_address or both"]),
        ({"fixed_ips": [{"ip_address": "10.20.0.300"}]}, ["fixed_ips[0].ip_address '10.20.0.300' is not an IP"]),
        ({"fixed_ips": [{"ip_address": "10.20.0.5"}, {"ip_address": "10.20.0.5"}]}, ["10.20.0.5 more than once"]),
        ({"allowed_address_pairs": [{"ip_address": "10.20.0.x"}]}, ["allowed_address_pairs[0]", "not an IPv4"]),
        ({"allowed_address_pairs": [{"ip_address": "10.20.0.5/24"}]}, ["host bits", "10.20.0.0/24"]),
        ({"allowed_address_pairs": [{"ip_address": "2001:db8::5"}]}, ["IPv6", "IPv4 only"]),
        (
            {"allowed_address_pairs": [{"ip_address": "10.20.0.5", "mac_address": "fa:16:3e:00:00"}]},
            ["not a MAC address"],
        ),
        (
            {"allowed_address_pairs": [{"ip_address": "10.20.0.5", "mac_address": "00:00:00:00:00:00"}]},
            ["cannot be used"],
        ),
        (
            {"allowed_address_pairs": [{"ip_address": "10.20.0.5"}, {"ip_address": "10.20.0.5/32"}]},
            ["lists 10.20.0.5 twice"],
        ),
        ({"security_groups": [""]}, ["security_groups entry must not be empty"]),
        (
            {"port_security_enabled": False, "security_groups": ["acme-lb"]},
            ["need port security", "security_groups: []"],
        ),
        (
            {"port_security_enabled": False, "allowed_address_pairs": [{"ip_address": "10.20.0.250"}]},
            ["need port security", "allowed_address_pairs: []"],
        ),
    ],
)
def test_bad_input_refused_before_any_call(refuses_before_any_call, args, fragments):
    refuses_before_any_call(dict(VIP, **args), *fragments)


def test_network_is_required_for_present(monkeypatch):
    result = run_module(monkeypatch, os_port, {"name": "acme-lb-vip"}, NoCloud())
    assert result["failed"]
    assert "network" in result["msg"]
