"""os_network_info against the in-memory cloud: a network's subnets and the
routers that connect it to external networks, as the tenant step checks the way
out of a network it did not make."""

from ansible_collections.monoscape.paas.plugins.modules import os_network_info


def test_a_routed_network_names_its_external_network(run, cloud):
    cloud.network.add_network("acme-net", cidr="10.20.0.0/24")
    cloud.network.add_router("acme-router", gateway="public", interfaces=["acme-net"])
    result = run(os_network_info, {"name": "acme-net"})
    assert not result["failed"], result
    assert result["changed"] is False
    network = result["network"]
    assert network["own"] is True
    assert [s["cidr"] for s in network["subnets"]] == ["10.20.0.0/24"]
    assert [(r["name"], r["external_network"]) for r in network["routers"]] == [("acme-router", "public")]
    assert network["external_networks"] == ["public"]
    assert cloud.calls.mutations() == []


def test_a_network_without_router_has_no_way_out(run, cloud):
    cloud.network.add_network("lonely", cidr="10.21.0.0/24")
    cloud.network.add_router("no-gateway", interfaces=["lonely"])
    network = run(os_network_info, {"name": "lonely"})["network"]
    assert network["routers"] == [
        {
            "id": network["routers"][0]["id"],
            "name": "no-gateway",
            "external_network_id": None,
            "external_network": None,
        }
    ]
    assert network["external_networks"] == []


def test_another_projects_network_says_so(run, cloud):
    """The shared `private` network belongs to the cloud's infrastructure project:
    its routers may be invisible, which `own: false` tells."""
    network = run(os_network_info, {"name": "private"})["network"]
    assert network["own"] is False
    assert network["shared"] is True


def test_an_unknown_network_is_not_an_error(run):
    result = run(os_network_info, {"name": "no-such-net"})
    assert not result["failed"], result
    assert result["network"] is None


def test_a_bad_name_is_refused(run):
    result = run(os_network_info, {"name": " padded "})
    assert result["failed"]
    assert "leading or trailing whitespace" in result["msg"]
