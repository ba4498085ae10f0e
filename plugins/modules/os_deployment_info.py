#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_deployment_info
short_description: Everything a Monoscape deployment owns in an OpenStack cloud
description:
  - Lists the resources of one Monoscape deployment - servers tagged with the metadata
    C(monoscape_deployment=<deployment>) or owned by its project, images owned by the project or
    carrying the property C(monoscape_deployment), the project's security groups, floating IPs,
    routers, networks, subnets and ports, the key pairs and EC2 credentials of its user, and the
    project and user themselves.
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
images:
  description:
    - Images of the deployment (C(id), C(name), C(status), C(created_at), C(owner)).
    - C(properties) holds their C(monoscape_*) properties.
  returned: always
  type: list
  elements: dict
security_groups:
  description: Security groups of the project (C(id), C(name)), the C(default) group included.
  returned: always
  type: list
  elements: dict
ports:
  description: Ports owned by the project (C(id), C(device_owner), C(fixed_ips)).
  returned: always
  type: list
  elements: dict
floating_ips:
  description: Floating IPs allocated to the project (C(id), C(floating_ip_address), C(port_id)).
  returned: always
  type: list
  elements: dict
routers:
  description:
    - Routers of the project (C(id), C(name), C(external_network_id) of the gateway, C(interfaces) - the
      subnet ids it has an interface on).
  returned: always
  type: list
  elements: dict
networks:
  description: Networks owned by the project (C(id), C(name)); shared networks of others are not listed.
  returned: always
  type: list
  elements: dict
subnets:
  description: Subnets owned by the project (C(id), C(name), C(cidr), C(network_id)).
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
  description: How many resources were found, the project and the user included.
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


class DeploymentInfoModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "all_projects": {"type": "bool", "default": False},
        "deployment": {"type": "str", "required": True},
        "project": {"type": "str"},
        "project_domain": {"type": "str", "default": "default"},
        "user": {"type": "str"},
        "user_domain": {"type": "str", "default": "default"},
    }

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
        deployment = self.params["deployment"]
        query = {"all_projects": True} if self.params["all_projects"] else {}
        found = []
        for server in self.call(lambda: list(self.conn.compute.servers(details=True, **query))):
            metadata = server.metadata or {}
            if metadata.get(TAG) != deployment and not (project_id and server.project_id == project_id):
                continue
            found.append(
                {
                    "id": server.id,
                    "name": server.name,
                    "status": server.status,
                    "role": metadata.get("monoscape_role"),
                    "addresses": _addresses(server),
                    "image_id": (server.image or {}).get("id"),
                    "availability_zone": server.availability_zone,
                    "project_id": server.project_id,
                }
            )
        return sorted(found, key=lambda s: (s["name"] or "", s["id"]))

    def images(self, project_id):
        deployment = self.params["deployment"]
        params = {"limit": 1000}
        if not self.params["all_projects"] and project_id:
            params["owner"] = project_id
        body = self.glance("get", "/images", params=params).json()
        found = []
        for image in body.get("images", []):
            if image.get(TAG) != deployment and not (project_id and image.get("owner") == project_id):
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

    def network_resources(self, project_id):
        """The project's security groups, floating IPs, routers, networks, subnets and ports."""
        found = {key: [] for key in ("security_groups", "floating_ips", "routers", "networks", "subnets", "ports")}
        if not project_id:
            return found
        network = self.conn.network
        if self.params["all_projects"]:
            # Neutron creates a project's default group when asked for that project's groups:
            # an admin lists them all and filters here, so looking never re-creates one
            listed = self.call(lambda: list(network.security_groups()))
        else:
            listed = self.call(lambda: list(network.security_groups(project_id=project_id)))
        found["security_groups"] = sorted(
            ({"id": g.id, "name": g.name} for g in listed if g.project_id == project_id), key=lambda g: g["name"] or ""
        )
        ports = self.call(lambda: list(network.ports(project_id=project_id)))
        found["ports"] = [
            {
                "id": p.id,
                "device_owner": p.device_owner,
                "fixed_ips": [ip.get("ip_address") for ip in p.fixed_ips or []],
            }
            for p in ports
        ]
        found["floating_ips"] = sorted(
            (
                {"id": f.id, "floating_ip_address": f.floating_ip_address, "port_id": f.port_id}
                for f in self.call(lambda: list(network.ips(project_id=project_id)))
            ),
            key=lambda f: f["floating_ip_address"] or "",
        )
        found["routers"] = sorted(
            (
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
                for r in self.call(lambda: list(network.routers(project_id=project_id)))
            ),
            key=lambda r: r["name"] or "",
        )
        found["networks"] = sorted(
            (
                {"id": n.id, "name": n.name}
                for n in self.call(lambda: list(network.networks(project_id=project_id)))
                if n.project_id == project_id
            ),
            key=lambda n: n["name"] or "",
        )
        found["subnets"] = sorted(
            (
                {"id": n.id, "name": n.name, "cidr": n.cidr, "network_id": n.network_id}
                for n in self.call(lambda: list(network.subnets(project_id=project_id)))
                if n.project_id == project_id
            ),
            key=lambda n: n["name"] or "",
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
        servers = self.servers(project_id)
        images = self.images(project_id)
        network = self.network_resources(project_id)
        keypairs, ec2 = self.user_resources(user_id)
        total = len(servers) + len(images) + sum(map(len, network.values())) + len(keypairs) + len(ec2)
        total += (project is not None) + (user is not None)
        return {
            "changed": False,
            "project": project,
            "user": user,
            "servers": servers,
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
