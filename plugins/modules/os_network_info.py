#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_network_info
short_description: A Neutron network, its subnets and its way out (routers to external networks)
description:
  - Looks up one network by name or id and tells what a deployment on it needs to know - its subnets
    and the routers that connect them to external networks (where a server on the network gets
    outbound traffic and floating IPs from).
  - Only what the connection's account can see counts - a router of another project attached to a
    shared network is not visible to a member of another project. RV(network.external_networks) then
    lists fewer networks than there are; RV(network.own) says whether that may be the case.
  - Never changes anything; a network that does not exist is not an error (RV(network) is null).
version_added: 0.1.0
author: Monoscape developers
options:
  name:
    description:
      - Name or id of the network.
    type: str
    required: true
extends_documentation_fragment:
  - monoscape.paas.openstack
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Can servers on the deployment's network get floating IPs from public?
  monoscape.paas.os_network_info:
    cloud: monoscape
    name: monoscape
  register: net

- name: Stop when there is no way out
  ansible.builtin.assert:
    that: "'public' in net.network.external_networks"
    fail_msg: network monoscape has no router with a gateway on public
"""

RETURN = r"""
network:
  description: The network, or null when there is none of that name (visible to the account).
  returned: always
  type: dict
  contains:
    id:
      description: Network id.
      type: str
    name:
      description: Network name.
      type: str
    project_id:
      description: Owning project.
      type: str
    shared:
      description: Whether the network is shared with other projects.
      type: bool
    own:
      description: Whether the connection's project owns the network (else routers may be invisible).
      type: bool
    subnets:
      description: Its subnets (C(id), C(name), C(cidr), C(gateway_ip)).
      type: list
      elements: dict
    routers:
      description:
        - Routers with an interface on one of its subnets (C(id), C(name), C(external_network_id),
          C(external_network) - the gateway's network name, or null without gateway).
      type: list
      elements: dict
    external_networks:
      description: Names (ids when nameless) of the external networks its routers have gateways on.
      type: list
      elements: str
      sample: [public]
"""

from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.neutron import ROUTER_INTERFACE_OWNERS
from ansible_collections.monoscape.paas.plugins.module_utils.openstack import OpenStackModule, check_text


class NetworkInfoModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "name": {"type": "str", "required": True},
    }

    def run(self):
        problem = check_text("name", self.params["name"])
        if problem:
            self.fail(problem)
        network_api = self.conn.network
        net = self.find("network", network_api.find_network, self.params["name"], required=False)
        if net is None:
            return {"changed": False, "network": None}
        subnets = self.call(lambda: list(network_api.subnets(network_id=net.id)))
        ports = self.call(lambda: list(network_api.ports(network_id=net.id)))
        router_ids = sorted({p.device_id for p in ports if p.device_owner in ROUTER_INTERFACE_OWNERS and p.device_id})
        routers = []
        externals = []
        for router_id in router_ids:
            router = self.call(network_api.get_router, router_id)
            gateway = (router.external_gateway_info or {}).get("network_id")
            gateway_name = None
            if gateway:
                external = self.call(network_api.get_network, gateway)
                gateway_name = external.name or external.id
                externals.append(gateway_name)
            routers.append(
                {"id": router.id, "name": router.name, "external_network_id": gateway, "external_network": gateway_name}
            )
        own = net.project_id == self.conn.current_project_id
        return {
            "changed": False,
            "network": {
                "id": net.id,
                "name": net.name,
                "project_id": net.project_id,
                "shared": bool(net.is_shared),
                "own": own,
                "subnets": [
                    {"id": s.id, "name": s.name, "cidr": s.cidr, "gateway_ip": s.gateway_ip}
                    for s in sorted(subnets, key=lambda s: s.name or s.id)
                ],
                "routers": routers,
                "external_networks": sorted(set(externals)),
            },
        }


def main():
    NetworkInfoModule()()


if __name__ == "__main__":
    main()
