#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_tenant_info
short_description: The PaaS tenant as its own user sees it, and a digest of that state
description:
  - Reads, in one authenticated session as the tenant user, everything the tenant step
    (C(playbooks/tenant.yml)) makes - the user and its project (a token scoped to the project is issued,
    so the password works and both are enabled), the user's roles on the project (from the token), the
    access keys of its EC2 credentials on the project, its key pair, the security groups with their
    rules, and the network with its subnets and router (gateway and interfaces).
  - RV(digest) is a SHA-256 of all of it, revision numbers included (Neutron bumps a resource's
    C(revision_number) on every change, a security group's on every rule added or removed). The tenant
    step records it after a complete run and leaves the tenant alone while the digest and its own
    inputs are unchanged; anything changed in the cloud since then changes the digest.
  - Never returns a secret - only names, ids, access keys (not the secret keys) and fingerprints.
    Never changes anything; check mode is supported.
version_added: 0.1.0
author: Monoscape developers
options:
  keypair:
    description:
      - Name of the tenant user's key pair. One that does not exist is not an error (RV(tenant.keypair) is null).
    type: str
    required: true
  network:
    description:
      - Name or id of the deployment's network. Empty for none.
    type: str
    default: ''
  router:
    description:
      - Name or id of the router the tenant step made for O(network). Empty for none.
    type: str
    default: ''
  security_groups:
    description:
      - Names of the security groups of the tenant's project to read (with their rules).
        A group that does not exist is listed as null.
    type: list
    elements: str
    default: []
  subnet:
    description:
      - Name or id of the subnet of O(network) the tenant step made. Empty for all the network's subnets.
    type: str
    default: ''
extends_documentation_fragment:
  - monoscape.paas.openstack
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - O(cloud) is the tenant user's connection (the clouds.yaml entry the tenant step wrote). A password
    that no longer works, a disabled user or project, or an unreachable Keystone fail the task; the
    tenant step then applies its role, which repairs the first ones and names the last.
"""

EXAMPLES = r"""
- name: Read the tenant as its user sees it
  monoscape.paas.os_tenant_info:
    cloud:
      name: monoscape
      clouds_yaml: ~/.config/monoscape/monoscape/clouds.yaml
    keypair: monoscape
    security_groups: [monoscape-controller, monoscape-node]
    network: monoscape
    router: monoscape
  register: tenant_state

- name: Show what changed since the digest was recorded
  ansible.builtin.debug:
    msg: "{{ 'unchanged' if tenant_state.digest == recorded_digest else 'changed' }}"
"""

RETURN = r"""
digest:
  description: SHA-256 (hex) of RV(tenant) as canonical JSON.
  returned: always
  type: str
  sample: 3f0c...e1
tenant:
  description: The tenant's resources as the tenant user sees them.
  returned: always
  type: dict
  contains:
    user:
      description: C(id), C(name), C(domain_id), C(enabled), C(default_project_id), C(description).
      type: dict
    project:
      description: C(id), C(name), C(domain_id), C(enabled), C(description).
      type: dict
    roles:
      description: The names of the user's roles on the project (those in its token), sorted.
      type: list
      elements: str
    ec2_access:
      description: Access keys of the user's EC2 credentials on the project, sorted (never the secrets).
      type: list
      elements: str
    keypair:
      description: C(name), C(fingerprint) and C(type) of the key pair, or null when it does not exist.
      type: dict
    security_groups:
      description:
        - One entry per O(security_groups) name, in that order - C(id), C(name), C(description),
          C(revision_number) and C(rules) (sorted by id) - or null when the group does not exist.
      type: list
      elements: dict
    network:
      description:
        - C(id), C(name), C(revision_number), C(admin_state_up) and C(subnets) (C(id), C(name), C(cidr),
          C(gateway_ip), C(dns_nameservers), C(revision_number)), or null without O(network) or when it
          does not exist.
      type: dict
    router:
      description:
        - C(id), C(name), C(revision_number), C(external_network_id) and C(interface_subnets) (sorted
          subnet ids), or null without O(router) or when it does not exist.
      type: dict
"""

import hashlib
import json
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.neutron import router_interfaces
from ansible_collections.monoscape.paas.plugins.module_utils.openstack import OpenStackModule, check_text

RULE_FIELDS = (
    "id",
    "direction",
    "ether_type",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "description",
)


def digest_of(state):
    """SHA-256 of ``state`` as canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(state, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _rule(rule):
    return {field: getattr(rule, field, None) for field in RULE_FIELDS}


class TenantInfoModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "keypair": {"type": "str", "required": True, "no_log": False},
        "network": {"type": "str", "default": ""},
        "router": {"type": "str", "default": ""},
        "security_groups": {"type": "list", "elements": "str", "default": []},
        "subnet": {"type": "str", "default": ""},
    }

    def check_input(self):
        for option in ("keypair", "network", "router", "subnet"):
            problem = check_text(option, self.params[option], allow_empty=option != "keypair")
            if problem:
                self.fail(problem)
        for name in self.params["security_groups"]:
            problem = check_text("security group", name)
            if problem:
                self.fail(problem)

    def token_roles(self):
        """The role names of the session's token (a member may not list role assignments)."""
        session = self.conn.session
        access = self.call(session.auth.get_access, session)
        return sorted(access.role_names or [])

    def identity(self):
        conn = self.conn
        user_id, project_id = self.call(lambda: (conn.current_user_id, conn.current_project_id))
        user = self.call(conn.identity.get_user, user_id)
        project = self.call(conn.identity.get_project, project_id)
        return {
            "user": {
                "id": user.id,
                "name": user.name,
                "domain_id": user.domain_id,
                "enabled": getattr(user, "is_enabled", None),
                "default_project_id": getattr(user, "default_project_id", None),
                "description": getattr(user, "description", None),
            },
            "project": {
                "id": project.id,
                "name": project.name,
                "domain_id": project.domain_id,
                "enabled": getattr(project, "is_enabled", None),
                "description": getattr(project, "description", None),
            },
            "roles": self.token_roles(),
            "ec2_access": [pair.get("access") or "" for pair in self.ec2_pairs(user_id, project_id)],
        }

    def keypair(self):
        found = self.call(self.conn.compute.find_keypair, self.params["keypair"], ignore_missing=True)
        if found is None:
            return None
        return {"name": found.name, "fingerprint": found.fingerprint, "type": getattr(found, "type", None)}

    def security_groups(self, project_id):
        network_api = self.conn.network
        by_name = {}
        for group in self.call(lambda: list(network_api.security_groups(project_id=project_id))):
            by_name.setdefault(group.name, []).append(group)
        result = []
        for name in self.params["security_groups"]:
            groups = by_name.get(name, [])
            if len(groups) > 1:
                ids = ", ".join(g.id for g in groups)
                self.fail(f"security group name {name!r} is ambiguous in the project: ids {ids}")
            if not groups:
                result.append(None)
                continue
            group = groups[0]
            rules = self.call(lambda g=group: list(network_api.security_group_rules(security_group_id=g.id)))
            result.append(
                {
                    "id": group.id,
                    "name": group.name,
                    "description": group.description,
                    "revision_number": getattr(group, "revision_number", None),
                    "rules": sorted((_rule(r) for r in rules), key=lambda r: r["id"]),
                }
            )
        return result

    def network(self):
        if not self.params["network"]:
            return None
        network_api = self.conn.network
        net = self.find("network", network_api.find_network, self.params["network"], required=False)
        if net is None:
            return None
        subnets = [
            {
                "id": s.id,
                "name": s.name,
                "cidr": s.cidr,
                "gateway_ip": s.gateway_ip,
                "dns_nameservers": sorted(getattr(s, "dns_nameservers", None) or []),
                "revision_number": getattr(s, "revision_number", None),
            }
            for s in self.call(lambda: list(network_api.subnets(network_id=net.id)))
            if not self.params["subnet"] or self.params["subnet"] in (s.id, s.name)
        ]
        return {
            "id": net.id,
            "name": net.name,
            "revision_number": getattr(net, "revision_number", None),
            "admin_state_up": getattr(net, "is_admin_state_up", None),
            "subnets": sorted(subnets, key=lambda s: s["id"]),
        }

    def router(self):
        if not self.params["router"]:
            return None
        network_api = self.conn.network
        router = self.find("router", network_api.find_router, self.params["router"], required=False)
        if router is None:
            return None
        ports = self.call(lambda: list(network_api.ports(device_id=router.id)))
        interfaces = [interface["subnet_id"] or "" for interface in router_interfaces(ports)]
        return {
            "id": router.id,
            "name": router.name,
            "revision_number": getattr(router, "revision_number", None),
            "external_network_id": (router.external_gateway_info or {}).get("network_id"),
            "interface_subnets": interfaces,
        }

    def run(self):
        self.check_input()
        tenant = self.identity()
        tenant["keypair"] = self.keypair()
        tenant["security_groups"] = self.security_groups(tenant["project"]["id"])
        tenant["network"] = self.network()
        tenant["router"] = self.router()
        return {"changed": False, "tenant": tenant, "digest": digest_of(tenant)}


def main():
    TenantInfoModule()()


if __name__ == "__main__":
    main()
