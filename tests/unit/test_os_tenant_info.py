"""os_tenant_info against the in-memory cloud: the tenant as its own user sees it, and a
digest that stays the same on a re-read and changes with anything the tenant step
manages (a rule, the key pair, the EC2 pair, the project, a role, the router)."""

import pytest

from ansible_collections.monoscape.paas.plugins.modules import os_tenant_info

from .os_fake_cloud import Res

PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDlVxPj0XBlWf1Uu2lkyP7J3q6J0xs3Jg8v1WZ5Zq9nV alice@example"
ARGS = {
    "keypair": "acme",
    "security_groups": ["acme-controller", "acme-node"],
    "network": "acme",
    "subnet": "acme-subnet",
    "router": "acme",
}


class Access:
    def __init__(self, roles):
        self.role_names = roles


class Auth:
    """The session's token: its roles are what the module reads (a member may not list assignments)."""

    def __init__(self):
        self.roles = ["member", "reader"]

    def get_access(self, session):
        return Access(list(self.roles))


@pytest.fixture
def tenant(cloud):
    """The cloud after a tenant step: the session is the tenant user's, scoped to its project."""
    identity = cloud.identity
    project = Res(id="a" * 32, name="acme", description="PaaS tenant", is_enabled=True, domain_id="default")
    identity.projects[project.id] = project
    user = identity.create_user(name="acme", domain_id="default", default_project_id=project.id)
    cloud.current_user_id = user.id
    cloud.project_id = project.id
    identity.ec2["k1"] = {"user_id": user.id, "tenant_id": project.id, "access": "k1", "secret": "s3cret-ec2"}
    identity.ec2["k2"] = {"user_id": user.id, "tenant_id": "other", "access": "k2", "secret": "s3cret-ec2-2"}
    cloud.compute.create_keypair("acme", PUB)
    for name in ("acme-controller", "acme-node"):
        group = cloud.network.create_security_group(name, f"{name} group", project.id)
        cloud.network.create_security_group_rule(
            security_group_id=group.id, direction="ingress", ether_type="IPv4", protocol="tcp",
            port_range_min=22, port_range_max=22, remote_ip_prefix="0.0.0.0/0",
        )  # fmt: skip
    cloud.network.add_network("acme", cidr="10.50.0.0/24")
    cloud.network.add_router("acme", gateway="public", interfaces=["acme"])
    cloud.session = Res(verify=True, auth=Auth())
    cloud.calls.clear()
    return cloud


def read(run):
    result = run(os_tenant_info, ARGS)
    assert not result["failed"], result["msg"]
    return result


def test_the_tenant_as_its_user_sees_it(run, tenant):
    result = read(run)
    assert result["changed"] is False
    found = result["tenant"]
    assert found["project"]["name"] == "acme" and found["project"]["enabled"] is True
    assert found["user"]["name"] == "acme" and found["user"]["default_project_id"] == "a" * 32
    assert found["roles"] == ["member", "reader"]
    assert found["ec2_access"] == ["k1"], "only the pairs on the tenant's project"
    assert found["keypair"]["name"] == "acme" and found["keypair"]["fingerprint"]
    assert [g["name"] for g in found["security_groups"]] == ["acme-controller", "acme-node"]
    assert {r["port_range_min"] for r in found["security_groups"][0]["rules"]} == {None, 22}
    assert found["network"]["subnets"][0]["cidr"] == "10.50.0.0/24"
    assert found["router"]["interface_subnets"] == [found["network"]["subnets"][0]["id"]]
    assert found["router"]["external_network_id"]
    assert "s3cret" not in str(result), "no EC2 secret in the result"
    assert tenant.calls.mutations() == []


def test_the_digest_is_stable(run, tenant):
    assert read(run)["digest"] == read(run)["digest"]
    assert len(read(run)["digest"]) == 64


def _delete_a_rule(cloud):
    group = cloud.network.find_security_group("acme-node")
    rule = next(r for r in cloud.network.security_group_rules(group.id) if r.port_range_min == 22)
    del cloud.network.rules_[rule.id]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_delete_a_rule, id="a rule deleted"),
        pytest.param(lambda c: c.compute.keypairs_.pop("acme"), id="key pair deleted"),
        pytest.param(lambda c: c.identity.ec2.pop("k1"), id="EC2 pair deleted"),
        pytest.param(lambda c: c.identity.projects["a" * 32].update(description="x"), id="project description"),
        pytest.param(lambda c: c.session.auth.roles.remove("member"), id="role removed"),
        pytest.param(lambda c: c.network.routers_.clear(), id="router deleted"),
        pytest.param(
            lambda c: c.network.groups_.pop(c.network.find_security_group("acme-controller").id),
            id="security group deleted",
        ),
    ],
)
def test_the_digest_changes_with_what_the_tenant_step_manages(run, tenant, change):
    before = read(run)["digest"]
    change(tenant)
    assert read(run)["digest"] != before


def test_a_missing_group_or_network_is_null_not_an_error(run, tenant):
    result = run(os_tenant_info, {**ARGS, "security_groups": ["nope"], "network": "nope", "router": "nope"})
    assert not result["failed"], result["msg"]
    assert result["tenant"]["security_groups"] == [None]
    assert result["tenant"]["network"] is None and result["tenant"]["router"] is None


def test_a_bad_name_is_refused_before_the_cloud_is_asked(run, tenant):
    result = run(os_tenant_info, {**ARGS, "keypair": " padded "})
    assert result["failed"]
    assert "leading or trailing whitespace" in result["msg"]
    assert tenant.calls == []
