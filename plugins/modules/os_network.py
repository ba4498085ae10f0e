#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_network
short_description: One Neutron network of a deployment
description:
  - Makes sure a Neutron network exists with the given description, MTU and port security setting,
    or is absent.
  - The network is looked up by name in its project only (an admin sees every project's networks).
  - Attributes that are not given are left as they are (Neutron's defaults on create).
  - Deleting a network deletes its subnets too (Neutron does). When Neutron refuses because ports still
    use the network (HTTP 409 NetworkInUse), the task fails naming the servers and routers behind those
    ports, so you know what to remove first.
  - Check mode and C(--diff) supported.
version_added: 0.2.0
author: Monoscape developers
options:
  description:
    description:
      - Description of the network. Left unchanged when not given (empty on create).
    type: str
  mtu:
    description:
      - MTU of the network, 68 or more. Left unchanged when not given; on create Neutron derives it from
        the network type (for example 1450 on VXLAN).
      - Neutron refuses an MTU larger than its network type allows, with a message giving the maximum.
    type: int
  name:
    description:
      - Network name, 1 to 255 characters, unique within the project.
    type: str
    required: true
  port_security_enabled:
    description:
      - Whether new ports on the network get port security (security groups, anti-spoofing).
        Left unchanged when not given (Neutron's default on create is C(true)).
    type: bool
  project:
    description:
      - Name or id of the project that owns the network (needs the C(admin) role).
        Defaults to the project of the connection.
    type: str
  state:
    description:
      - C(present) creates or updates the network, C(absent) deletes it with its subnets.
    type: str
    choices: [absent, present]
    default: present
extends_documentation_fragment:
  - monoscape.paas.openstack
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
seealso:
  - module: monoscape.paas.os_subnet
  - module: monoscape.paas.os_router
"""

EXAMPLES = r"""
- name: The deployment's own network
  monoscape.paas.os_network:
    cloud: monoscape
    name: monoscape-net
    description: Monoscape deployment network

- name: A tenant's network, made by the cloud admin
  monoscape.paas.os_network:
    cloud: monoscape-admin
    name: monoscape-net
    project: acme
    mtu: 1400
    port_security_enabled: true

- name: Gone, with its subnets (fails naming what still uses it)
  monoscape.paas.os_network:
    cloud: monoscape
    name: monoscape-net
    state: absent
"""

RETURN = r"""
network:
  description: The network after the task (as it would be, in check mode).
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: Network id (empty in check mode when the network would be created).
      type: str
      sample: 8d3f1c2a-5b6e-4f70-9a1b-2c3d4e5f6a7b
    name:
      description: Network name.
      type: str
      sample: monoscape-net
    description:
      description: Network description.
      type: str
      sample: Monoscape deployment network
    status:
      description: Neutron's status of the network.
      type: str
      sample: ACTIVE
    subnets:
      description: Ids of the network's subnets, sorted.
      type: list
      elements: str
      sample: ["1c9a4e0b-7d2f-4e3a-8b5c-6d7e8f9a0b1c"]
    project_id:
      description: Owning project.
      type: str
      sample: 0c4e939acacf4376bdcd1129f1a054ad
    port_security_enabled:
      description: Port security default of the network's ports.
      type: bool
      sample: true
    mtu:
      description: MTU (null in check mode when Neutron would choose it).
      type: int
      sample: 1450
    router_external:
      description: Whether the network is external (a router gateway network).
      type: bool
      sample: false
    shared:
      description: Whether the network is shared with every project.
      type: bool
      sample: false
"""

from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.neutron import port_users
from ansible_collections.monoscape.paas.plugins.module_utils.openstack import (
    OpenStackModule,
    check_text,
    error_details,
    sdk_exc,
)

MIN_MTU = 68  # the IPv4 minimum; Neutron refuses less
# option -> SDK attribute, for the attributes the module compares
ATTRIBUTES = {"description": "description", "mtu": "mtu", "port_security_enabled": "is_port_security_enabled"}


def view(network):
    return {
        "id": network.id,
        "name": network.name,
        "description": network.description or "",
        "status": network.status,
        "subnets": sorted(network.subnet_ids or []),
        "project_id": network.project_id,
        "port_security_enabled": network.is_port_security_enabled,
        "mtu": network.mtu,
        "router_external": bool(network.is_router_external),
        "shared": bool(network.is_shared),
    }


class NetworkModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "description": {"type": "str"},
        "mtu": {"type": "int"},
        "name": {"type": "str", "required": True},
        "port_security_enabled": {"type": "bool"},
        "project": {"type": "str"},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
    }

    def run(self):
        name = self.params["name"]
        problem = check_text("network name", name)
        if problem:
            self.fail(f"{problem}; nothing was changed")
        if self.params["mtu"] is not None and self.params["mtu"] < MIN_MTU:
            self.fail(f"mtu {self.params['mtu']} is too small: Neutron needs at least {MIN_MTU}; nothing was changed")
        network_api = self.conn.network
        # always scoped: an admin sees every project's networks
        owner_id = self.project_id(self.params["project"])
        network = self.find("network", network_api.find_network, name, required=False, project_id=owner_id)

        if self.params["state"] == "absent":
            if network is None:
                return {"changed": False}
            before = view(network)
            if not self.check_mode:
                self.delete(network)
            return {"changed": True, "before": before, "after": {}}

        wanted = {opt: self.params[opt] for opt in ATTRIBUTES if self.params[opt] is not None}
        if network is None:
            after = {
                "id": "",
                "name": name,
                "description": wanted.get("description", ""),
                "status": "ACTIVE",
                "subnets": [],
                "project_id": owner_id,
                "port_security_enabled": wanted.get("port_security_enabled", True),
                "mtu": wanted.get("mtu"),
                "router_external": False,
                "shared": False,
            }
            if not self.check_mode:
                attrs = {ATTRIBUTES[opt]: value for opt, value in wanted.items()}
                if self.params["project"]:
                    attrs["project_id"] = owner_id
                created = self.call(
                    network_api.create_network,
                    name=name,
                    recheck=lambda: network_api.find_network(name, ignore_missing=True, project_id=owner_id),
                    **attrs,
                )
                after = view(created)
            return {"changed": True, "network": after, "before": {}, "after": after}

        before = view(network)
        update = {opt: value for opt, value in wanted.items() if before[opt] != value}
        after = dict(before, **update)
        if update and not self.check_mode:
            attrs = {ATTRIBUTES[opt]: value for opt, value in update.items()}
            after = view(self.call(network_api.update_network, network.id, **attrs))
        return {"changed": bool(update), "network": after, "before": before, "after": after}

    def delete(self, network):
        """Delete the network; Neutron's "in use" refusal becomes a list of what uses it."""
        network_api = self.conn.network
        try:
            self.call(network_api.delete_network, network.id, ignore_missing=True)
        except sdk_exc.ConflictException as exc:
            ports = self.call(lambda: list(network_api.ports(network_id=network.id)))
            users = port_users(self, ports)
            if not users:
                raise
            self.fail(
                f"network {network.name!r} is still in use, so Neutron refused to delete it"
                f" ({error_details(exc)}). Used by: {'; '.join(users)}. Remove those first (delete the servers;"
                " os_router without the network's subnets in interfaces, or state: absent), then run again",
                status_code=409,
            )


def main():
    NetworkModule()()


if __name__ == "__main__":
    main()
