"""os_deployment_info against the in-memory cloud (tests/unit/os_fake_cloud.py), in a
project shared by two deployments and another team: each deployment sees only its
own servers, images, network resources and floating IPs, with one server list call
whatever else the project holds."""

import pytest

from ansible_collections.monoscape.paas.plugins.modules import os_deployment_info

TAG = "monoscape_deployment"


def boot(cloud, name, network, deployment=None, role=None, *, tagged=True, image="image"):
    nets = [{"uuid": cloud.network.find_network(network).id}]
    flavor = cloud.compute.find_flavor("m1.tiny")
    metadata = {}
    if deployment:
        metadata[TAG] = deployment
    if role:
        metadata["monoscape_role"] = role
    tags = [f"{TAG}={deployment}"] if deployment and tagged else []
    return cloud.compute.create_server(
        name=name, flavor_id=flavor.id, image_id=image, networks=nets, metadata=metadata, tags=tags
    )


@pytest.fixture
def shared(cloud):
    """Deployment prod (controller with a floating IP, a node, a node made before tags, an
    image, its network, router and groups), deployment staging (a node, an image, a floating IP
    kept detached), and another team's 20 servers - all in one project."""
    network = cloud.network
    network.add_network("prod-net")
    network.add_router("prod-net", gateway="public", interfaces=["prod-net"])
    network.add_network("staging-net")
    network.add_network("team-net", cidr="10.99.0.0/22")
    network.add_router("team-router", gateway="public", interfaces=["team-net"])
    for name in ("prod-lb", "prod-node", "staging-node", "team-web"):
        network.create_security_group(name)
    network.security_groups(project_id=cloud.project_id)  # Neutron's default group appears on a look
    network.create_security_group("default")
    controller = boot(cloud, "prod-controller", "prod-net", "prod", "controller")
    boot(cloud, "prod-node-1", "prod-net", "prod", "node")
    boot(cloud, "prod-node-2", "prod-net", "prod", "node", tagged=False)
    boot(cloud, "staging-node-1", "staging-net", "staging", "node")
    for index in range(20):
        boot(cloud, f"team-{index}", "team-net")
    public = network.find_network("public").id
    port = next(p for p in network.ports_.values() if p.device_id == controller.id)
    network.create_ip(floating_network_id=public, port_id=port.id, description=f"{TAG}=prod")
    network.create_ip(floating_network_id=public, description=f"{TAG}=staging")
    team_port = next(
        p
        for p in network.ports_.values()
        if p.device_owner == "compute:nova" and p.network_id == network.find_network("team-net").id
    )
    network.create_ip(floating_network_id=public, port_id=team_port.id)
    cloud.image.add("monoscape-node-prod", monoscape_role="node", monoscape_deployment="prod")
    cloud.image.add("monoscape-node-staging", monoscape_role="node", monoscape_deployment="staging")
    cloud.image.add("team-image")
    cloud.calls.clear()
    return cloud


PROD = {
    "deployment": "prod",
    "security_groups": ["prod-lb", "prod-node"],
    "networks": ["prod-net"],
    "routers": ["prod-net"],
}


def test_only_the_deployments_tagged_servers_with_one_filtered_call(run, shared):
    result = run(os_deployment_info, {"deployment": "prod"})
    assert not result["changed"]
    assert [s["name"] for s in result["servers"]] == ["prod-controller", "prod-node-1"]
    assert all(s["tagged"] for s in result["servers"])
    assert [c for c in shared.calls if c.startswith("list servers")] == ["list servers tags=monoscape_deployment=prod"]
    assert result["others"] == [] and result["others_count"] == 0
    # without names, no network resource is the deployment's - the project's are never counted
    assert result["security_groups"] == [] and result["networks"] == [] and result["routers"] == []
    assert [i["name"] for i in result["images"]] == ["monoscape-node-prod"]


def test_a_tagged_server_whose_metadata_names_another_deployment_is_not_ours(run, shared):
    stray = next(s for s in shared.compute.servers_.values() if s.name == "staging-node-1")
    stray.tags.append(f"{TAG}=prod")
    result = run(os_deployment_info, {"deployment": "prod"})
    assert "staging-node-1" not in [s["name"] for s in result["servers"]]


def test_untagged_finds_older_servers_and_others_lists_the_rest(run, shared):
    result = run(os_deployment_info, dict(PROD, untagged=True, others=True))
    ours = {s["name"]: s["tagged"] for s in result["servers"]}
    assert ours == {"prod-controller": True, "prod-node-1": True, "prod-node-2": False}
    others = {s["name"]: s["deployment"] for s in result["others"]}
    assert others["staging-node-1"] == "staging"
    assert others["team-3"] is None
    assert result["others_count"] == 21
    assert len([c for c in shared.calls if c.startswith("list servers")]) == 1  # one whole list, read once


def test_network_resources_are_those_the_deployment_names_and_uses(run, shared):
    result = run(os_deployment_info, PROD)
    assert [g["name"] for g in result["security_groups"]] == ["prod-lb", "prod-node"]
    assert [g["name"] for g in result["default_security_groups"]] == ["default"]
    assert [n["name"] for n in result["networks"]] == ["prod-net"]
    assert [s["name"] for s in result["subnets"]] == ["prod-net-subnet"]
    (router,) = result["routers"]
    assert router["name"] == "prod-net"
    assert router["interfaces"] == [result["subnets"][0]["id"]]
    prod_net = shared.network.find_network("prod-net").id
    ports = {p.id: p for p in shared.network.ports_.values()}
    assert {ports[p["id"]].network_id for p in result["ports"]} <= {prod_net, shared.network.find_network("public").id}
    assert len(result["ports"]) == 3 + 1  # controller, node-1, router interface; the router gateway port
    # the controller's address (on its port, described) - not staging's, not the team's
    (fip,) = result["floating_ips"]
    assert fip["port_id"] in ports
    assert ports[fip["port_id"]].device_id == result["servers"][0]["id"]
    # project, user, 2 servers, 1 image, 2 groups, 1 network, 1 subnet, 1 router, 4 ports, 1 floating IP
    assert result["total"] == 1 + 1 + 2 + 1 + 2 + 1 + 1 + 1 + 4 + 1


def test_an_unbound_port_described_for_the_deployment_is_ours(run, shared):
    """The highly available load balancer's virtual IP: a port bound to no server, found
    by its description (teardown.yml deletes it), also when it is on no network the call
    names; another deployment's and the team's unbound ports are not."""
    network = shared.network
    vip = network.create_port(
        network_id=network.find_network("team-net").id, name="prod-lb-vip", description=f"{TAG}=prod"
    )
    network.create_port(
        network_id=network.find_network("staging-net").id, name="staging-lb-vip", description=f"{TAG}=staging"
    )
    network.create_port(network_id=network.find_network("team-net").id, name="team-vip")
    result = run(os_deployment_info, PROD)
    (found,) = [p for p in result["ports"] if p["device_id"] == ""]
    assert found["id"] == vip.id
    assert found["description"] == f"{TAG}=prod"
    assert found["fixed_ips"] == [vip.fixed_ips[0]["ip_address"]]
    assert len(result["ports"]) == 3 + 1 + 1
    assert "prod-controller" in [s["name"] for s in result["servers"]]
    controller_port = next(p for p in result["ports"] if p["device_owner"] == "compute:nova")
    assert controller_port["device_id"] in [s["id"] for s in result["servers"]]


def test_a_detached_floating_ip_is_found_by_its_description(run, shared):
    result = run(os_deployment_info, {"deployment": "staging"})
    (fip,) = result["floating_ips"]
    assert fip["port_id"] is None
    assert [s["name"] for s in result["servers"]] == ["staging-node-1"]
    assert [i["name"] for i in result["images"]] == ["monoscape-node-staging"]


def test_the_cost_does_not_grow_with_the_projects_other_servers(run, shared):
    run(os_deployment_info, PROD)
    calls_before = len(shared.calls)
    for index in range(20, 300):
        boot(shared, f"team-{index}", "team-net")
    shared.calls.clear()
    result = run(os_deployment_info, PROD)
    assert len(shared.calls) == calls_before
    assert [s["name"] for s in result["servers"]] == ["prod-controller", "prod-node-1"]


def test_admin_view_of_one_project_and_of_a_project_that_is_gone(run, shared):
    args = dict(PROD, all_projects=True, project=shared.project_id, untagged=True)
    result = run(os_deployment_info, args)
    assert len(result["servers"]) == 3
    assert "list servers" in shared.calls  # whole list of that project (untagged), no tag filter
    for server in list(shared.compute.servers_.values()):
        shared.compute.delete_server(server.id)
    shared.identity.projects.pop(shared.project_id)
    gone = run(os_deployment_info, args)
    assert gone["project"] is None
    assert gone["servers"] == []
