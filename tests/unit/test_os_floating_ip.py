"""os_floating_ip against the in-memory cloud (tests/unit/os_fake_cloud.py), whose
Neutron checks what the real one does: the server's network must reach the
external network through a router, one floating IP per fixed address and network,
a lost create answer must not become a second address. The same on a port of its own
(port: a load balancer's virtual IP port, which no server is bound to)."""

import pytest

from ansible_collections.monoscape.paas.plugins.modules import os_floating_ip, os_network, os_port, os_router, os_subnet

from .test_os_modules import assert_check_mode_changes_nothing, assert_idempotent, assert_refused, ok

FIP = {"server": "acme-controller", "network": "public"}


def boot(cloud, name, networks=("private",)):
    nets = [{"uuid": cloud.network.find_network(n).id} for n in networks]
    flavor = cloud.compute.find_flavor("m1.tiny")
    return cloud.compute.create_server(name=name, flavor_id=flavor.id, image_id="image", networks=nets)


@pytest.fixture
def server(cloud):
    """A server on `private`, which a router connects to the external network `public`."""
    cloud.network.add_router("acme-router", gateway="public", interfaces=["private"])
    created = boot(cloud, "acme-controller")
    cloud.calls.clear()
    return created


def fixed_of(cloud, server, network="private"):
    net = cloud.network.find_network(network)
    port = next(p for p in cloud.network.ports_.values() if p.device_id == server.id and p.network_id == net.id)
    return port, port.fixed_ips[0]["ip_address"]


# ---------------------------------------------------------------------- present


def test_allocates_and_associates_once(run, cloud, server):
    check = assert_check_mode_changes_nothing(run, cloud, os_floating_ip, FIP)
    port, fixed = fixed_of(cloud, server)
    assert check["floating_ip"]["fixed_ip_address"] == fixed
    assert check["floating_ip"]["port_id"] == port.id
    assert not cloud.network.ips_
    first, second = assert_idempotent(run, cloud, os_floating_ip, FIP)
    fip = first["floating_ip"]
    assert fip["status"] == "ACTIVE"
    assert fip["fixed_ip_address"] == fixed
    assert fip["port_id"] == port.id
    assert fip["floating_network_id"] == cloud.network.find_network("public").id
    assert fip["router_id"]
    assert second["floating_ip"] == fip
    assert first["server"] == {"id": server.id, "name": "acme-controller"}
    assert len(cloud.network.ips_) == 1
    # Nova lists the address with the server's fixed one
    addresses = cloud.compute.servers_[server.id].addresses["private"]
    assert {"addr": fip["floating_ip_address"], "version": 4, "OS-EXT-IPS:type": "floating"} in addresses


def test_one_create_call_with_port_and_fixed_address(run, cloud, server):
    calls = []
    create = cloud.network.create_ip

    def spy(**attrs):
        calls.append(attrs)
        return create(**attrs)

    cloud.network.create_ip = spy
    run(os_floating_ip, FIP)
    port, fixed = fixed_of(cloud, server)
    assert calls == [
        {"floating_network_id": cloud.network.find_network("public").id, "port_id": port.id, "fixed_ip_address": fixed}
    ]
    assert "update_ip" not in cloud.calls


def test_diff_before_and_after(run, cloud, server):
    result = run(os_floating_ip, FIP, diff=True)
    port, fixed = fixed_of(cloud, server)
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"] == {
        "description": "",
        "floating_ip_address": result["floating_ip"]["floating_ip_address"],
        "fixed_ip_address": fixed,
        "port_id": port.id,
    }
    gone = run(os_floating_ip, dict(FIP, state="absent"), diff=True)
    assert gone["diff"]["before"] == {"floating_ips": [result["diff"]["after"]]}
    assert gone["diff"]["after"] == {"floating_ips": []}


def test_a_lost_create_answer_never_allocates_a_second_address(run, cloud, server):
    cloud.network.lose_next_fip_answer = True
    result = run(os_floating_ip, FIP)
    assert not result["failed"], result["msg"] if result["failed"] else ""
    assert result["changed"]
    assert len(cloud.network.ips_) == 1
    assert cloud.calls.count("create_ip") == 1
    assert result["floating_ip"]["id"] in cloud.network.ips_


def test_wait_for_active_times_out_saying_what_it_saw(run, cloud, server):
    cloud.network.fip_activation_polls = None  # no L3 agent: the address stays DOWN
    result = run(os_floating_ip, dict(FIP, timeout=0))
    assert result["failed"]
    assert "timed out after 0 s waiting for floating IP 203.0.113." in result["msg"]
    assert "of server 'acme-controller' to become ACTIVE" in result["msg"]
    assert "(last seen: DOWN)" in result["msg"]
    # the address is associated: without wait the next run takes it as it is
    no_wait = run(os_floating_ip, dict(FIP, wait=False))
    assert not no_wait["changed"]
    assert no_wait["floating_ip"]["status"] == "DOWN"
    assert len(cloud.network.ips_) == 1


def test_wait_polls_until_active(run, cloud, server):
    cloud.network.fip_activation_polls = 3
    result = run(os_floating_ip, FIP)
    assert result["floating_ip"]["status"] == "ACTIVE"


def test_wait_until_nova_lists_the_address(run, cloud, server):
    """Nova learns the address from Neutron's events a moment later: an inventory read
    right after the task must see it, so wait covers that too."""
    cloud.compute.floating_address_lag = 3
    result = run(os_floating_ip, FIP)
    assert not result["failed"], result["msg"]
    assert cloud.compute.floating_address_lag == 0, "the module asked Nova until it listed the address"
    address = result["floating_ip"]["floating_ip_address"]
    addresses = cloud.compute.get_server(server.id).addresses
    assert address in [e["addr"] for entries in addresses.values() for e in entries]


def test_without_a_router_says_what_is_missing(run, cloud):
    boot(cloud, "acme-controller")
    cloud.calls.clear()
    assert run(os_floating_ip, FIP, check_mode=True)["changed"]
    result = run(os_floating_ip, FIP)
    assert result["failed"]
    assert "needs a router with a gateway on 'public'" in result["msg"]
    assert "the tenant step creates it" in result["msg"]
    assert "Nothing was changed" in result["msg"]
    assert not cloud.network.ips_


def test_a_router_on_another_external_network_is_not_enough(run, cloud):
    cloud.network.add_network("other-public", external=True)
    cloud.network.add_router("r", gateway="other-public", interfaces=["private"])
    boot(cloud, "acme-controller")
    result = run(os_floating_ip, FIP)
    assert "needs a router with a gateway on 'public'" in result["msg"]
    assert not cloud.network.ips_


# ---------------------------------------------------------------------- the router os_router makes


def test_routed_by_the_deployments_own_router(run, cloud):
    """The tenant step's network, subnet and router carry the floating IP; the router then
    keeps what the address needs until it is released."""
    ok(run(os_network, {"name": "acme-net"}))
    ok(run(os_subnet, {"name": "acme-subnet", "network": "acme-net", "cidr": "10.20.0.0/24"}))
    gateway_only = {"name": "acme-router", "external_network": "public", "interfaces": []}
    ok(run(os_router, gateway_only))
    boot(cloud, "acme-controller", networks=("acme-net",))
    result = run(os_floating_ip, FIP)  # a gateway on public, but no interface on the server's subnet
    assert result["failed"]
    assert "needs a router with a gateway on 'public'" in result["msg"]
    assert not cloud.network.ips_
    router = ok(run(os_router, dict(gateway_only, interfaces=["acme-subnet"])))["router"]
    fip = ok(run(os_floating_ip, FIP))["floating_ip"]
    assert fip["router_id"] == router["id"]
    assert fip["fixed_ip_address"] == "10.20.0.2"  # 10.20.0.1 is the router's interface
    refused = run(os_router, {"name": "acme-router", "state": "absent"})
    assert refused["failed"]
    assert f"{fip['floating_ip_address']} (to 10.20.0.2)" in refused["msg"]
    assert cloud.network.ips_[fip["id"]].port_id == fip["port_id"]
    ok(run(os_floating_ip, dict(FIP, state="absent")))
    ok(run(os_router, {"name": "acme-router", "state": "absent"}))
    assert not cloud.network.routers_


def test_the_router_needs_an_interface_on_the_subnet_of_the_fixed_address(run, cloud):
    """Neutron looks for the subnet of the fixed address, not just its network."""
    ok(run(os_network, {"name": "acme-net"}))
    ok(run(os_subnet, {"name": "acme-subnet", "network": "acme-net", "cidr": "10.20.0.0/24"}))
    ok(run(os_subnet, {"name": "acme-subnet-2", "network": "acme-net", "cidr": "10.21.0.0/24"}))
    router = {"name": "acme-router", "external_network": "public", "interfaces": ["acme-subnet-2"]}
    ok(run(os_router, router))
    server = boot(cloud, "acme-controller", networks=("acme-net",))
    _, fixed = fixed_of(cloud, server, "acme-net")
    assert fixed.startswith("10.20.0.")
    result = run(os_floating_ip, FIP)
    assert result["failed"]
    assert "needs a router with a gateway on 'public' and an interface on the server's subnet" in result["msg"]
    ok(run(os_router, dict(router, interfaces=["acme-subnet", "acme-subnet-2"])))
    assert ok(run(os_floating_ip, FIP))["floating_ip"]["fixed_ip_address"] == fixed


def test_description_is_set_on_allocation_and_updated_in_place(run, cloud, server):
    described = dict(FIP, description="monoscape_deployment=production")
    first = run(os_floating_ip, described)
    assert first["changed"] and first["floating_ip"]["description"] == "monoscape_deployment=production"
    (fip,) = cloud.network.ips_.values()
    assert fip.description == "monoscape_deployment=production"
    assert cloud.calls.count("create_ip") == 1  # set in the same call that allocates

    # an address made before (no description) gets it in place, check mode first
    fip.description = ""
    cloud.calls.clear()
    check = run(os_floating_ip, described, check_mode=True, diff=True)
    assert check["changed"]
    assert cloud.calls.mutations() == []
    assert (check["diff"]["before"]["description"], check["diff"]["after"]["description"]) == (
        "",
        "monoscape_deployment=production",
    )
    _, second = assert_idempotent(run, cloud, os_floating_ip, described)
    assert fip.description == "monoscape_deployment=production"
    assert second["floating_ip"]["id"] == fip.id
    assert "create_ip" not in cloud.calls

    # without the option the description is left alone
    assert not run(os_floating_ip, FIP)["changed"]
    assert fip.description == "monoscape_deployment=production"


def test_a_description_with_a_control_character_is_refused(run, cloud, server):
    result = run(os_floating_ip, dict(FIP, description="prod\nuction"))
    assert result["failed"]
    assert "description 'prod\\nuction' has a control character" in result["msg"]
    assert cloud.network.ips_ == {}


# ---------------------------------------------------------------------- a chosen address


def test_reuses_an_allocated_free_address(run, cloud, server):
    public_id = cloud.network.find_network("public").id
    kept = cloud.network.create_ip(floating_network_id=public_id, floating_ip_address="203.0.113.77")
    cloud.calls.clear()
    args = dict(FIP, floating_ip_address="203.0.113.77")
    check = run(os_floating_ip, args, check_mode=True, diff=True)
    assert check["changed"]
    assert cloud.calls.mutations() == []
    assert check["floating_ip"]["id"] == kept.id
    assert check["diff"]["before"] == {
        "description": "",
        "floating_ip_address": "203.0.113.77",
        "fixed_ip_address": None,
        "port_id": None,
    }
    assert check["diff"]["after"]["port_id"] == fixed_of(cloud, server)[0].id
    first, _ = assert_idempotent(run, cloud, os_floating_ip, args)
    assert first["floating_ip"]["id"] == kept.id
    assert first["floating_ip"]["floating_ip_address"] == "203.0.113.77"
    assert "create_ip" not in cloud.calls
    assert len(cloud.network.ips_) == 1


def test_allocates_the_chosen_address_when_it_does_not_exist(run, cloud, server):
    result = run(os_floating_ip, dict(FIP, floating_ip_address="203.0.113.99"))
    assert result["floating_ip"]["floating_ip_address"] == "203.0.113.99"
    assert cloud.calls.mutations() == ["create_ip"]


def test_choosing_a_new_address_needs_admin(run, cloud, server):
    cloud.network.refuse_chosen_fip_address = True
    result = run(os_floating_ip, dict(FIP, floating_ip_address="203.0.113.99"))
    assert result["failed"]
    assert "only an admin choose" in result["msg"]
    assert "Leave floating_ip_address out" in result["msg"]
    assert not cloud.network.ips_


def test_an_address_bound_to_another_server_is_not_taken(run, cloud, server):
    boot(cloud, "acme-node-1")
    taken = run(os_floating_ip, {"server": "acme-node-1", "network": "public"})["floating_ip"]
    cloud.calls.clear()
    result = run(os_floating_ip, dict(FIP, floating_ip_address=taken["floating_ip_address"]))
    assert result["failed"]
    assert f"floating IP {taken['floating_ip_address']} is bound to another port" in result["msg"]
    assert "server 'acme-node-1'" in result["msg"]
    assert cloud.calls.mutations() == []
    assert cloud.network.ips_[taken["id"]].port_id == taken["port_id"]


def test_a_chosen_address_replaces_the_one_the_fixed_address_has(run, cloud, server, module_warnings):
    first = run(os_floating_ip, FIP)["floating_ip"]
    public_id = cloud.network.find_network("public").id
    cloud.network.create_ip(floating_network_id=public_id, floating_ip_address="203.0.113.77")
    check = run(os_floating_ip, dict(FIP, floating_ip_address="203.0.113.77"), check_mode=True)
    assert check["disassociated"] == [first["floating_ip_address"]]
    assert cloud.network.ips_[first["id"]].port_id
    result = run(os_floating_ip, dict(FIP, floating_ip_address="203.0.113.77"), diff=True)
    assert result["changed"]
    assert result["floating_ip"]["floating_ip_address"] == "203.0.113.77"
    assert result["diff"]["before"]["floating_ip_address"] == first["floating_ip_address"]
    assert result["diff"]["after"]["floating_ip_address"] == "203.0.113.77"
    assert result["disassociated"] == [first["floating_ip_address"]]
    assert module_warnings == [
        f"floating IP {first['floating_ip_address']} was taken off server 'acme-controller' for 203.0.113.77;"
        " it stays allocated to the project (release it with state: absent,"
        f" floating_ip_address: {first['floating_ip_address']})"
    ]
    old = cloud.network.ips_[first["id"]]
    assert old.port_id is None, "the old address stays allocated, not bound"


def test_an_address_of_another_network_is_refused(run, cloud, server):
    cloud.network.add_network("other-public", external=True)
    other = cloud.network.create_ip(floating_network_id=cloud.network.find_network("other-public").id)
    cloud.calls.clear()
    result = run(os_floating_ip, dict(FIP, floating_ip_address=other.floating_ip_address))
    assert result["failed"]
    assert "comes from another network" in result["msg"]
    assert cloud.calls.mutations() == []


# ---------------------------------------------------------------------- which port


@pytest.fixture
def two_nets(cloud):
    cloud.network.add_network("acme-net")
    cloud.network.add_router("acme-router", gateway="public", interfaces=["private", "acme-net"])
    created = boot(cloud, "acme-controller", networks=("private", "acme-net"))
    cloud.calls.clear()
    return created


def test_nat_destination_picks_the_port(run, cloud, two_nets):
    port, fixed = fixed_of(cloud, two_nets, "acme-net")
    first, _ = assert_idempotent(run, cloud, os_floating_ip, dict(FIP, nat_destination="acme-net"))
    assert first["floating_ip"]["port_id"] == port.id
    assert first["floating_ip"]["fixed_ip_address"] == fixed


def test_default_is_the_first_port_of_the_server(run, cloud, two_nets):
    port, fixed = fixed_of(cloud, two_nets, "private")
    result = run(os_floating_ip, FIP)
    assert (result["floating_ip"]["port_id"], result["floating_ip"]["fixed_ip_address"]) == (port.id, fixed)
    # an address already on the other port counts: no second one
    assert not run(os_floating_ip, FIP)["changed"]


def test_fixed_address_picks_the_port(run, cloud, two_nets):
    port, fixed = fixed_of(cloud, two_nets, "acme-net")
    result = run(os_floating_ip, dict(FIP, fixed_address=fixed))
    assert result["floating_ip"]["port_id"] == port.id
    assert not run(os_floating_ip, dict(FIP, fixed_address=fixed))["changed"]


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"nat_destination": "nowhere"}, "unknown network 'nowhere'"),
        ({"fixed_address": "192.0.2.1"}, "has no fixed address 192.0.2.1; its IPv4 addresses: 10.0.0."),
        ({"fixed_address": "2001:db8::1"}, "IPv6; floating IPs are IPv4 only"),
        ({"fixed_address": "not-an-ip"}, "is not an IP address"),
        ({"network": "private"}, "not an external network"),
        ({"network": "internet"}, "unknown network 'internet'; known networks: public"),
        ({"server": "ghost"}, "unknown server 'ghost'; known servers: acme-controller"),
    ],
)
def test_bad_input_changes_nothing(run, cloud, two_nets, override, fragment):
    result = run(os_floating_ip, dict(FIP, **override))
    assert result["failed"]
    assert fragment in result["msg"], result["msg"]
    assert cloud.calls.mutations() == []


def test_server_without_a_port_on_nat_destination(run, cloud, server):
    cloud.network.add_network("acme-net")
    result = run(os_floating_ip, dict(FIP, nat_destination="acme-net"))
    assert result["failed"]
    assert "has no port on network 'acme-net' (nat_destination); its networks: private" in result["msg"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"server": "acme-controller"}, "state is present but all of the following are missing: network"),
        ({"network": "public"}, "state is present but any of the following are missing: server, port"),
        (
            {"state": "absent"},
            "state is absent but any of the following are missing: server, port, floating_ip_address",
        ),
    ],
)
def test_required_options(run, cloud, server, args, fragment):
    result = run(os_floating_ip, args)
    assert result["failed"]
    assert fragment in result["msg"]


# ---------------------------------------------------------------------- absent


def test_absent_releases_the_address(run, cloud, server):
    fip = run(os_floating_ip, FIP)["floating_ip"]
    cloud.calls.clear()
    check = run(os_floating_ip, dict(FIP, state="absent"), check_mode=True)
    assert check["changed"]
    assert check["released"] == [fip["floating_ip_address"]]
    assert cloud.calls.mutations() == []
    assert fip["id"] in cloud.network.ips_
    gone = run(os_floating_ip, dict(FIP, state="absent"))
    assert gone["changed"]
    assert gone["released"] == [fip["floating_ip_address"]]
    assert not cloud.network.ips_
    assert not run(os_floating_ip, dict(FIP, state="absent"))["changed"]


def test_absent_without_release_keeps_the_address_allocated(run, cloud, server):
    fip = run(os_floating_ip, FIP)["floating_ip"]
    args = dict(FIP, state="absent", release=False)
    result = run(os_floating_ip, args)
    assert result["disassociated"] == [fip["floating_ip_address"]]
    assert result["released"] == []
    kept = cloud.network.ips_[fip["id"]]
    assert kept.port_id is None
    assert kept.fixed_ip_address is None
    assert not run(os_floating_ip, args)["changed"]
    # and it can be given back to the server by its address
    again = run(os_floating_ip, dict(FIP, floating_ip_address=fip["floating_ip_address"]))
    assert again["floating_ip"]["id"] == fip["id"]


def test_absent_by_address_alone(run, cloud, server):
    fip = run(os_floating_ip, FIP)["floating_ip"]
    args = {"floating_ip_address": fip["floating_ip_address"], "state": "absent"}
    assert run(os_floating_ip, args)["released"] == [fip["floating_ip_address"]]
    assert not cloud.network.ips_
    assert not run(os_floating_ip, args)["changed"]


def test_absent_only_touches_the_given_network(run, cloud, server):
    run(os_floating_ip, FIP)
    cloud.network.add_network("other-public", external=True)
    result = run(os_floating_ip, dict(FIP, network="other-public", state="absent"))
    assert not result["changed"]
    assert len(cloud.network.ips_) == 1


def test_absent_of_a_server_that_is_gone_is_a_no_op(run, cloud, server):
    result = run(os_floating_ip, {"server": "ghost", "network": "public", "state": "absent"})
    assert not result["failed"]
    assert not result["changed"]
    assert cloud.calls.mutations() == []


# ---------------------------------------------------------------------- a port of its own (port)

VIP_FIP = {"port": "acme-lb-vip", "network": "public"}


@pytest.fixture
def vip(run, cloud):
    """The HA load balancer's virtual IP port acme-lb-vip (10.20.0.250, no server bound to it) on
    acme-net, which acme-router connects to public, and a controller on acme-net with its own
    floating IP (its SSH address)."""
    cloud.network.add_network("acme-net", cidr="10.20.0.0/24")
    cloud.network.add_router("acme-router", gateway="public", interfaces=["acme-net"])
    port = ok(
        run(os_port, {"name": "acme-lb-vip", "network": "acme-net", "fixed_ips": [{"ip_address": "10.20.0.250"}]})
    )
    boot(cloud, "acme-controller", networks=("acme-net",))
    ok(run(os_floating_ip, dict(FIP, nat_destination="acme-net")), changed=True)
    cloud.calls.clear()
    return port["port"]


def controller_fip(cloud):
    (server,) = cloud.compute.servers_.values()
    (fip,) = (f for f in cloud.network.ips_.values() if cloud.network.ports_[f.port_id].device_id == server.id)
    return fip


def test_port_gets_a_floating_ip_once(run, cloud, vip):
    ssh = controller_fip(cloud)
    check = assert_check_mode_changes_nothing(run, cloud, os_floating_ip, VIP_FIP)
    assert (check["floating_ip"]["port_id"], check["floating_ip"]["fixed_ip_address"]) == (vip["id"], "10.20.0.250")
    assert check["port"] == {"id": vip["id"], "name": "acme-lb-vip"}
    first, second = assert_idempotent(run, cloud, os_floating_ip, VIP_FIP)
    fip = first["floating_ip"]
    assert (fip["port_id"], fip["fixed_ip_address"], fip["status"]) == (vip["id"], "10.20.0.250", "ACTIVE")
    assert fip["router_id"] == cloud.network.find_router("acme-router").id
    assert first["port"] == {"id": vip["id"], "name": "acme-lb-vip"}
    assert "server" not in first
    assert second["floating_ip"] == fip
    # the controller keeps its own address, and its re-run changes nothing
    assert len(cloud.network.ips_) == 2
    assert cloud.network.ips_[ssh.id].port_id == ssh.port_id
    ok(run(os_floating_ip, dict(FIP, nat_destination="acme-net")), changed=False)


def test_port_by_id_and_on_its_network(run, cloud, vip):
    fip = ok(run(os_floating_ip, dict(VIP_FIP, port=vip["id"])), changed=True)["floating_ip"]
    assert fip["port_id"] == vip["id"]
    for args in (VIP_FIP, dict(VIP_FIP, nat_destination="acme-net")):
        assert ok(run(os_floating_ip, args), changed=False)["floating_ip"]["id"] == fip["id"]


def test_port_diff_and_description(run, cloud, vip):
    described = dict(VIP_FIP, description="monoscape_deployment=acme")
    result = ok(run(os_floating_ip, described, diff=True), changed=True)
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"] == {
        "description": "monoscape_deployment=acme",
        "floating_ip_address": result["floating_ip"]["floating_ip_address"],
        "fixed_ip_address": "10.20.0.250",
        "port_id": vip["id"],
    }
    cloud.network.ips_[result["floating_ip"]["id"]].description = ""  # made before, without one
    cloud.calls.clear()
    check = run(os_floating_ip, described, check_mode=True, diff=True)
    assert check["changed"]
    assert cloud.calls.mutations() == []
    assert (check["diff"]["before"]["description"], check["diff"]["after"]["description"]) == (
        "",
        "monoscape_deployment=acme",
    )
    updated = ok(run(os_floating_ip, described), changed=True)
    assert updated["floating_ip"]["id"] == result["floating_ip"]["id"]
    assert cloud.network.ips_[updated["floating_ip"]["id"]].description == "monoscape_deployment=acme"
    assert "create_ip" not in cloud.calls


def test_port_wait_is_for_active_only(run, cloud, vip, monkeypatch):
    """No server, no Nova address list to wait for: only Neutron's ACTIVE."""

    def no_nova(server_id):
        raise AssertionError(f"the module waited for Nova (server {server_id}) on the port path")

    monkeypatch.setattr(cloud.compute, "get_server", no_nova)
    cloud.network.fip_activation_polls = 3
    result = ok(run(os_floating_ip, VIP_FIP), changed=True)
    assert result["floating_ip"]["status"] == "ACTIVE"
    cloud.network.fip_activation_polls = None  # no L3 agent: the address stays DOWN
    ok(run(os_floating_ip, dict(VIP_FIP, state="absent")), changed=True)
    failed = run(os_floating_ip, dict(VIP_FIP, timeout=0))
    assert failed["failed"]
    assert "of port 'acme-lb-vip' to become ACTIVE" in failed["msg"]


def test_port_without_a_router_says_what_is_missing(run, cloud, vip):
    cloud.network.add_network("other-net")
    ok(run(os_port, {"name": "other-vip", "network": "other-net"}), changed=True)
    result = run(os_floating_ip, dict(VIP_FIP, port="other-vip"))
    assert result["failed"]
    assert "port 'other-vip' cannot get a floating IP from 'public'" in result["msg"]
    assert "the port's network needs a router" in result["msg"]
    assert "an interface on the port's subnet" in result["msg"]


def test_a_chosen_address_replaces_the_ports_own(run, cloud, vip, module_warnings):
    first = ok(run(os_floating_ip, VIP_FIP))["floating_ip"]
    cloud.network.create_ip(
        floating_network_id=cloud.network.find_network("public").id, floating_ip_address="203.0.113.77"
    )
    result = ok(run(os_floating_ip, dict(VIP_FIP, floating_ip_address="203.0.113.77")), changed=True)
    assert result["disassociated"] == [first["floating_ip_address"]]
    assert module_warnings == [
        f"floating IP {first['floating_ip_address']} was taken off port 'acme-lb-vip' for 203.0.113.77;"
        " it stays allocated to the project (release it with state: absent,"
        f" floating_ip_address: {first['floating_ip_address']})"
    ]


def test_unknown_port_lists_the_project_s_ports(run, cloud, vip):
    assert_refused(
        run,
        cloud,
        os_floating_ip,
        dict(VIP_FIP, port="acme-lb-vipp"),
        "unknown port 'acme-lb-vipp'",
        "in the project; known ports: acme-lb-vip",
    )
    assert_refused(
        run,
        cloud,
        os_floating_ip,
        dict(VIP_FIP, nat_destination="private"),
        "unknown port 'acme-lb-vip' on network 'private'; known ports: none",
    )
    assert_refused(run, cloud, os_floating_ip, dict(VIP_FIP, nat_destination="nowhere"), "unknown network 'nowhere'")


def test_two_ports_of_the_name_are_named_by_id(run, cloud, vip):
    network = cloud.network.find_network("acme-net")
    extra = cloud.network.create_port(network_id=network.id, name="acme-lb-vip")
    cloud.calls.clear()
    ids = sorted([vip["id"], extra.id])
    assert_refused(
        run,
        cloud,
        os_floating_ip,
        VIP_FIP,
        "2 ports are named 'acme-lb-vip' in the project",
        ", ".join(ids),
        "(give nat_destination",
    )
    assert_refused(
        run,
        cloud,
        os_floating_ip,
        dict(VIP_FIP, nat_destination="acme-net"),
        "2 ports are named 'acme-lb-vip' on network 'acme-net'",
        *ids,
    )
    assert_refused(run, cloud, os_floating_ip, dict(VIP_FIP, state="absent"), "2 ports are named 'acme-lb-vip'")
    # the same name on another network: nat_destination says which
    cloud.network.delete_port(extra.id)
    cloud.network.add_network("other-net")
    cloud.network.create_port(network_id=cloud.network.find_network("other-net").id, name="acme-lb-vip")
    cloud.calls.clear()
    assert_refused(run, cloud, os_floating_ip, VIP_FIP, "2 ports are named 'acme-lb-vip' in the project")
    fip = ok(run(os_floating_ip, dict(VIP_FIP, nat_destination="acme-net")), changed=True)["floating_ip"]
    assert fip["port_id"] == vip["id"]


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        (
            {"fixed_address": "10.20.0.9"},
            "port 'acme-lb-vip' has no fixed address 10.20.0.9; its IPv4 addresses: 10.20.0.250",
        ),
        (
            {"fixed_address": "10.20.0.9", "nat_destination": "acme-net"},
            "has no fixed address 10.20.0.9 on network 'acme-net'",
        ),
        ({"server": "acme-controller"}, "parameters are mutually exclusive: port|server"),
        ({"server": "acme-controller", "state": "absent"}, "parameters are mutually exclusive: port|server"),
    ],
)
def test_port_bad_input_changes_nothing(run, cloud, vip, override, fragment):
    assert_refused(run, cloud, os_floating_ip, dict(VIP_FIP, **override), fragment)


def test_fixed_address_of_the_port(run, cloud, vip):
    fip = ok(run(os_floating_ip, dict(VIP_FIP, fixed_address="10.20.0.250")), changed=True)["floating_ip"]
    assert fip["fixed_ip_address"] == "10.20.0.250"
    ok(run(os_floating_ip, dict(VIP_FIP, fixed_address="10.20.0.250")), changed=False)


def test_a_router_port_cannot_have_one(run, cloud, vip):
    (interface,) = (p for p in cloud.network.ports_.values() if p.device_owner == "network:router_interface")
    assert_refused(
        run, cloud, os_floating_ip, dict(VIP_FIP, port=interface.id), "is Neutron's own (network:router_interface)"
    )


def test_absent_by_port_releases_only_the_port_s_address(run, cloud, vip):
    ssh = controller_fip(cloud)
    fip = ok(run(os_floating_ip, VIP_FIP))["floating_ip"]
    cloud.calls.clear()
    args = dict(VIP_FIP, state="absent")
    check = run(os_floating_ip, args, check_mode=True, diff=True)
    assert check["changed"]
    assert check["released"] == [fip["floating_ip_address"]]
    assert check["port"] == {"id": vip["id"], "name": "acme-lb-vip"}
    assert check["diff"]["before"]["floating_ips"][0]["port_id"] == vip["id"]
    assert cloud.calls.mutations() == []
    gone = ok(run(os_floating_ip, args), changed=True)
    assert gone["released"] == [fip["floating_ip_address"]]
    assert set(cloud.network.ips_) == {ssh.id}, "the controller's own address stays"
    ok(run(os_floating_ip, args), changed=False)


def test_absent_by_port_without_release_keeps_the_address(run, cloud, vip):
    fip = ok(run(os_floating_ip, VIP_FIP))["floating_ip"]
    args = dict(VIP_FIP, state="absent", release=False)
    result = ok(run(os_floating_ip, args), changed=True)
    assert (result["disassociated"], result["released"]) == ([fip["floating_ip_address"]], [])
    kept = cloud.network.ips_[fip["id"]]
    assert (kept.port_id, kept.fixed_ip_address) == (None, None)
    ok(run(os_floating_ip, args), changed=False)
    # given back to the port by its address
    again = ok(run(os_floating_ip, dict(VIP_FIP, floating_ip_address=fip["floating_ip_address"])), changed=True)
    assert (again["floating_ip"]["id"], again["floating_ip"]["port_id"]) == (fip["id"], vip["id"])


def test_absent_of_a_port_that_is_gone_is_a_no_op(run, cloud, vip):
    for args in (
        {"port": "ghost", "state": "absent"},
        {"port": "acme-lb-vip", "nat_destination": "nowhere", "state": "absent"},
    ):
        result = ok(run(os_floating_ip, args), changed=False)
        assert "port" not in result
    assert cloud.calls.mutations() == []
