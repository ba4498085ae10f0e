#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_deployment_info
short_description: Everything a Monoscape deployment owns in an OpenStack cloud
description:
  - Lists the resources of one Monoscape deployment, which may share its project with other
    deployments and other teams - its servers (Nova tag C(monoscape_deployment=<deployment>) and the
    metadata of the same name), its images (property C(monoscape_deployment)), the security groups,
    networks and routers it names, the subnets and ports of those networks, the ports of its servers
    and routers and the ports described C(monoscape_deployment=<deployment>) (the load balancer's
    virtual IP), the floating IPs on those ports or described C(monoscape_deployment=<deployment>),
    the key pairs and EC2 credentials of its user, and the project and user themselves.
  - Nothing else in the project is listed or counted, unless asked for with O(others).
  - Servers are found with one API call filtered by the tag; O(untagged) or O(others) read the
    project's server list once instead.
  - The status playbook reads it (as the tenant user) and the teardown playbook uses it (as an admin,
    with O(all_projects=true)) to prove that nothing of the deployment is left.
  - Names and ids only - never a secret. Never changes anything; check mode is supported.
version_added: 0.1.0
author: Monoscape developers
options:
  all_projects:
    description:
      - Look at the resources of every project (needs an admin account), so that resources left
        behind by a deleted project or user are found too. With C(false), only what the connection's
        own project and user can see is listed.
    type: bool
    default: false
  deployment:
    description:
      - The deployment's name, the value of the C(monoscape_deployment) metadata and image property.
    type: str
    required: true
  networks:
    description:
      - Names of the networks the deployment made; their subnets, ports and router interfaces are
        the deployment's too. Networks it only uses (shared, or another team's) are not listed here.
    type: list
    elements: str
    default: []
  others:
    description:
      - Also list the project's servers that are not the deployment's (RV(others), RV(others_count)),
        for example to tell whether the project can go. They never count in RV(total).
      - Reads the project's whole server list once, so the deployment's untagged servers are found
        too, as with O(untagged).
    type: bool
    default: false
  project:
    description:
      - Name or id of the deployment's project. Defaults to the connection's project unless
        O(all_projects=true). A project that does not exist (any more) is not an error.
    type: str
  project_domain:
    description:
      - Domain of O(project) when it is given by name.
    type: str
    default: default
  routers:
    description:
      - Names of the routers the deployment made.
    type: list
    elements: str
    default: []
  security_groups:
    description:
      - Names of the security groups the deployment made (never the project's C(default) group, see
        RV(default_security_groups)).
    type: list
    elements: str
    default: []
  untagged:
    description:
      - Also find the deployment's servers that carry the metadata C(monoscape_deployment) but not
        yet the Nova tag (made by an older version, or tagged by hand), reading the project's whole
        server list once. Teardown uses it so that nothing of the deployment is missed.
    type: bool
    default: false
  user:
    description:
      - Name or id of the deployment's user, whose key pairs and EC2 credentials belong to the
        deployment. Defaults to the connection's user unless O(all_projects=true). A user that does
        not exist (any more) is not an error.
    type: str
  user_domain:
    description:
      - Domain of O(user) when it is given by name.
    type: str
    default: default
extends_documentation_fragment:
  - monoscape.paas.openstack
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: What does the deployment run? (as the tenant user)
  monoscape.paas.os_deployment_info:
    cloud: "{{ tenant_cloud }}"
    deployment: monoscape
  register: deployment

- name: After teardown nothing is left, in any project (as an admin)
  monoscape.paas.os_deployment_info:
    cloud: lab-admin
    deployment: monoscape
    project: monoscape
    user: monoscape
    all_projects: true
    untagged: true
    security_groups: [monoscape-lb, monoscape-node]
    networks: [monoscape-net]
    routers: [monoscape-net]
  register: leftovers
  failed_when: leftovers.total > 0
"""

RETURN = r"""
project:
  description: The project (C(id), C(name)), or null when it does not exist.
  returned: always
  type: dict
user:
  description: The user (C(id), C(name)), or null when it does not exist.
  returned: always
  type: dict
servers:
  description: Servers of the deployment.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Server id.
      type: str
    name:
      description: Server name.
      type: str
    status:
      description: Nova status (C(ACTIVE), C(SHUTOFF), C(ERROR), ...).
      type: str
    role:
      description: The C(monoscape_role) metadata (C(controller), C(node), C(builder), ...).
      type: str
    addresses:
      description: Fixed and floating IPv4/IPv6 addresses.
      type: list
      elements: str
    image_id:
      description: Image the server was booted from.
      type: str
    availability_zone:
      description: Availability zone.
      type: str
    project_id:
      description: Owning project.
      type: str
    tagged:
      description: Whether the server carries the Nova tag (false for servers found by O(untagged) only).
      type: bool
others:
  description:
    - With O(others), the project's servers that are not the deployment's (C(id), C(name), C(status),
      C(deployment) - their C(monoscape_deployment) metadata or null); else empty.
  returned: always
  type: list
  elements: dict
others_count:
  description: How many servers RV(others) lists (0 without O(others)).
  returned: always
  type: int
  sample: 0
images:
  description:
    - Images of the deployment (C(id), C(name), C(status), C(created_at), C(owner)).
    - C(properties) holds their C(monoscape_*) properties.
  returned: always
  type: list
  elements: dict
security_groups:
  description: The project's security groups named in O(security_groups) (C(id), C(name)).
  returned: always
  type: list
  elements: dict
default_security_groups:
  description:
    - The project's C(default) security groups (C(id), C(name)), which Neutron keeps until they are
      deleted after the project. Not counted in RV(total).
  returned: always
  type: list
  elements: dict
ports:
  description:
    - Ports of the deployment (C(id), C(device_owner), C(device_id), C(description), C(fixed_ips)) - on
      its networks, of its servers and of its routers, and those described
      C(monoscape_deployment=<deployment>) (the virtual IP of a highly available load balancer).
  returned: always
  type: list
  elements: dict
floating_ips:
  description:
    - Floating IPs of the deployment (C(id), C(floating_ip_address), C(port_id)) - on its ports, or
      described C(monoscape_deployment=<deployment>) (so a detached one is found too).
  returned: always
  type: list
  elements: dict
routers:
  description:
    - The project's routers named in O(routers) (C(id), C(name), C(external_network_id) of the gateway,
      C(interfaces) - the subnet ids it has an interface on).
  returned: always
  type: list
  elements: dict
networks:
  description: The project's networks named in O(networks) (C(id), C(name)).
  returned: always
  type: list
  elements: dict
subnets:
  description: Subnets of the deployment's networks (C(id), C(name), C(cidr), C(network_id)).
  returned: always
  type: list
  elements: dict
keypairs:
  description: Names of the user's key pairs.
  returned: always
  type: list
  elements: str
ec2_credentials:
  description: Access keys of the user's EC2 credentials (never the secrets).
  returned: always
  type: list
  elements: str
total:
  description:
    - How many resources of the deployment were found, the project and the user included (not
      RV(others), not RV(default_security_groups)).
  returned: always
  type: int
  sample: 0
"""

import contextlib
import json
import re
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.openstack import OpenStackModule, sdk_exc

TAG = "monoscape_deployment"
KEYSTONE_ID = re.compile(r"^[0-9a-f]{32}$")


def _addresses(server):
    return [a.get("addr") for net in (server.addresses or {}).values() for a in net if a.get("addr")]


def _by_name(items):
    return sorted(items, key=lambda i: (i["name"] or "", i["id"]))


class DeploymentInfoModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "all_projects": {"type": "bool", "default": False},
        "deployment": {"type": "str", "required": True},
        "networks": {"type": "list", "elements": "str", "default": []},
        "others": {"type": "bool", "default": False},
        "project": {"type": "str"},
        "project_domain": {"type": "str", "default": "default"},
        "routers": {"type": "list", "elements": "str", "default": []},
        "security_groups": {"type": "list", "elements": "str", "default": []},
        "untagged": {"type": "bool", "default": False},
        "user": {"type": "str"},
        "user_domain": {"type": "str", "default": "default"},
    }

    @property
    def tag(self):
        return f"{TAG}={self.params['deployment']}"

    def identity(self):
        """(project, user) as {id, name} or None."""
        everywhere = self.params["all_projects"]
        project = user = None
        if self.params["project"] or not everywhere:
            project_id = self.project_id(self.params["project"], self.params["project_domain"], required=False)
            if project_id:
                name = self.params["project"] if self.params["project"] != project_id else None
                with contextlib.suppress(sdk_exc.ForbiddenException, sdk_exc.NotFoundException):
                    name = self.call(self.conn.identity.get_project, project_id).name
                project = {"id": project_id, "name": name}
        if self.params["user"] or not everywhere:
            user_id = self.user_id(self.params["user"], self.params["user_domain"], required=False)
            if user_id:
                name = self.params["user"] if self.params["user"] != user_id else None
                with contextlib.suppress(sdk_exc.ForbiddenException, sdk_exc.NotFoundException):
                    name = self.call(self.conn.identity.get_user, user_id).name
                user = {"id": user_id, "name": name}
        return project, user

    def servers(self, project_id):
        """(the deployment's servers, the project's other servers): one list call - filtered by the
        deployment's tag, or the project's whole list when untagged servers or others are wanted."""
        deployment = self.params["deployment"]
        query = {}
        if self.params["all_projects"]:
            query["all_projects"] = True
            if project_id:
                query["project_id"] = project_id
        whole = self.params["untagged"] or (self.params["others"] and (project_id or not self.params["all_projects"]))
        if not whole:
            query["tags"] = self.tag
        ours, others = [], []
        for server in self.call(lambda: list(self.conn.compute.servers(details=True, **query))):
            if server.status == "DELETED":
                continue
            metadata = server.metadata or {}
            tagged = self.tag in (server.tags or [])
            if metadata.get(TAG) == deployment and (tagged or whole):
                ours.append(
                    {
                        "id": server.id,
                        "name": server.name,
                        "status": server.status,
                        "role": metadata.get("monoscape_role"),
                        "addresses": _addresses(server),
                        "image_id": (server.image or {}).get("id"),
                        "availability_zone": server.availability_zone,
                        "project_id": server.project_id,
                        "tagged": tagged,
                    }
                )
            elif self.params["others"] and whole:
                others.append(
                    {"id": server.id, "name": server.name, "status": server.status, "deployment": metadata.get(TAG)}
                )
        return _by_name(ours), _by_name(others)

    def images(self, project_id):
        """The deployment's images: one Glance list filtered by the property (a deployment keeps a few)."""
        deployment = self.params["deployment"]
        params = {"limit": 1000, TAG: deployment}
        if not self.params["all_projects"] and project_id:
            params["owner"] = project_id
        found = []
        for image in self.glance("get", "/images", params=params).json().get("images", []):
            if image.get(TAG) != deployment:  # a Glance that ignored the filter must not widen the answer
                continue
            found.append(
                {
                    "id": image["id"],
                    "name": image.get("name"),
                    "status": image.get("status"),
                    "created_at": image.get("created_at"),
                    "owner": image.get("owner"),
                    "properties": {k: v for k, v in image.items() if k.startswith("monoscape_")},
                }
            )
        return sorted(found, key=lambda i: (i["created_at"] or "", i["id"]))

    def named(self, listing, kind, project_id):
        """The project's resources of ``kind`` whose names the task gives (one list call)."""
        names = set(self.params[kind])
        if not names:
            return []
        return [
            r
            for r in self.call(lambda: list(listing(project_id=project_id)))
            if r.project_id == project_id and r.name in names
        ]

    def network_resources(self, project_id, server_ids):
        """The deployment's security groups, networks, subnets, routers, ports and floating IPs."""
        keys = ("security_groups", "default_security_groups", "floating_ips", "routers", "networks", "subnets", "ports")
        found = {key: [] for key in keys}
        if not project_id:
            return found
        network = self.conn.network
        if self.params["all_projects"]:
            # Neutron creates a project's default group when asked for that project's groups:
            # an admin lists them all and filters here, so looking never re-creates one
            groups = self.call(lambda: list(network.security_groups()))
        else:
            groups = self.call(lambda: list(network.security_groups(project_id=project_id)))
        groups = [g for g in groups if g.project_id == project_id]
        found["security_groups"] = _by_name(
            {"id": g.id, "name": g.name} for g in groups if g.name in set(self.params["security_groups"])
        )
        found["default_security_groups"] = _by_name({"id": g.id, "name": g.name} for g in groups if g.name == "default")
        networks = self.named(network.networks, "networks", project_id)
        network_ids = {n.id for n in networks}
        found["networks"] = _by_name({"id": n.id, "name": n.name} for n in networks)
        routers = self.named(network.routers, "routers", project_id)
        router_ids = {r.id for r in routers}
        if network_ids:
            subnets = self.call(lambda: list(network.subnets(project_id=project_id)))
            found["subnets"] = _by_name(
                {"id": n.id, "name": n.name, "cidr": n.cidr, "network_id": n.network_id}
                for n in subnets
                if n.network_id in network_ids
            )
        ports = [
            p
            for p in self.call(lambda: list(network.ports(project_id=project_id)))
            if p.network_id in network_ids
            or p.device_id in server_ids
            or p.device_id in router_ids
            or (getattr(p, "description", None) or "") == self.tag
        ]
        found["ports"] = [
            {
                "id": p.id,
                "device_owner": p.device_owner,
                "device_id": p.device_id or "",
                "description": getattr(p, "description", None) or "",
                "fixed_ips": [ip.get("ip_address") for ip in p.fixed_ips or []],
            }
            for p in ports
        ]
        port_ids = {p.id for p in ports}
        found["floating_ips"] = sorted(
            (
                {"id": f.id, "floating_ip_address": f.floating_ip_address, "port_id": f.port_id}
                for f in self.call(lambda: list(network.ips(project_id=project_id)))
                if f.port_id in port_ids or (getattr(f, "description", None) or "") == self.tag
            ),
            key=lambda f: f["floating_ip_address"] or "",
        )
        found["routers"] = _by_name(
            {
                "id": r.id,
                "name": r.name,
                "external_network_id": (r.external_gateway_info or {}).get("network_id"),
                "interfaces": sorted(
                    ip.get("subnet_id")
                    for p in ports
                    if p.device_id == r.id and p.device_owner == "network:router_interface"
                    for ip in p.fixed_ips or []
                ),
            }
            for r in routers
        )
        return found

    def user_resources(self, user_id):
        if not user_id:
            return [], []
        own = user_id == self.conn.current_user_id
        query = {} if own else {"user_id": user_id}
        keypairs = sorted(k.name for k in self.call(lambda: list(self.conn.compute.keypairs(**query))))
        credentials = self.call(lambda: list(self.conn.identity.credentials(user_id=user_id, type="ec2")))
        access = []
        for credential in credentials:
            blob = credential.blob
            if isinstance(blob, str):
                with contextlib.suppress(ValueError):
                    blob = json.loads(blob)
            access.append(blob.get("access") if isinstance(blob, dict) else credential.id)
        return keypairs, sorted(a for a in access if a)

    @staticmethod
    def _bare_id(value):
        return value if value and KEYSTONE_ID.match(value) else None

    def run(self):
        project, user = self.identity()
        # a deleted project or user given by id still names what it left behind
        project_id = project["id"] if project else self._bare_id(self.params["project"])
        user_id = user["id"] if user else self._bare_id(self.params["user"])
        servers, others = self.servers(project_id)
        images = self.images(project_id)
        network = self.network_resources(project_id, {s["id"] for s in servers})
        keypairs, ec2 = self.user_resources(user_id)
        counted = [v for k, v in network.items() if k != "default_security_groups"]
        total = len(servers) + len(images) + sum(map(len, counted)) + len(keypairs) + len(ec2)
        total += (project is not None) + (user is not None)
        return {
            "changed": False,
            "project": project,
            "user": user,
            "servers": servers,
            "others": others,
            "others_count": len(others),
            "images": images,
            **network,
            "keypairs": keypairs,
            "ec2_credentials": ec2,
            "total": total,
        }


def main():
    DeploymentInfoModule()()


if __name__ == "__main__":
    main()
