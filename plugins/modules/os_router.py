#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_router
short_description: Neutron router with its external gateway and subnet interfaces, declaratively
description:
  - Makes sure a router exists with the given external gateway and exactly the listed subnet interfaces
    (interfaces on other subnets are removed, unless O(purge_interfaces=false)), or is absent.
  - The gateway is declarative too - without O(external_network) the router has no gateway, and an
    existing one is cleared.
  - Missing interfaces are added before extra ones are removed, so a deployment moving to a new subnet is
    never left without a route while the task runs.
  - Everything is checked before anything changes - unknown networks and subnets (with the names that do
    exist), subnets without a gateway address, and floating IPs that still need an interface or the
    gateway the task would remove (Neutron refuses those with HTTP 409; the task names the floating IPs).
  - O(state=absent) removes every interface of the router, clears its gateway and deletes it; it is safe
    to run again after a partial teardown.
  - Check mode and C(--diff) supported.
version_added: 0.2.0
author: Monoscape developers
options:
  description:
    description:
      - Description of the router. Left unchanged when not given (empty on create).
    type: str
  enable_snat:
    description:
      - Whether the router translates its subnets' addresses to its gateway address (SNAT).
        Left as Neutron decides when not given (on by default).
      - Needs O(external_network). Neutron's default policy lets only admins set it.
    type: bool
  external_network:
    description:
      - Name or id of the external network (C(router:external)) that is the router's gateway, its path out.
      - When not given the router has no gateway (an existing one is cleared).
    type: str
  interfaces:
    description:
      - Names or ids of the subnets the router must have an interface on. Names are looked up in the
        router's project; give an id for a subnet of another project.
      - Each interface takes its subnet's gateway address, so each subnet needs a gateway.
      - When not given the interfaces are left as they are; C([]) removes them all
        (with O(purge_interfaces=true)).
    type: list
    elements: str
  name:
    description:
      - Router name, 1 to 255 characters, unique within the project.
    type: str
    required: true
  project:
    description:
      - Name or id of the project that owns the router (needs the C(admin) role).
        Defaults to the project of the connection.
    type: str
  purge_interfaces:
    description:
      - Remove interfaces on subnets that are not in O(interfaces). With C(false), O(interfaces) are only added.
    type: bool
    default: true
  state:
    description:
      - C(present) creates or updates the router, C(absent) removes its interfaces and gateway and deletes it.
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
  - module: monoscape.paas.os_network
  - module: monoscape.paas.os_subnet
"""

EXAMPLES = r"""
- name: The deployment's way out - gateway on the external network, one interface on its subnet
  monoscape.paas.os_router:
    cloud: monoscape
    name: monoscape-router
    external_network: public
    interfaces:
      - monoscape-subnet

- name: Also route a second subnet, keeping whatever else is attached
  monoscape.paas.os_router:
    cloud: monoscape
    name: monoscape-router
    external_network: public
    interfaces: [monoscape-backend]
    purge_interfaces: false

- name: Teardown - interfaces, gateway, router (before the subnets and the network)
  monoscape.paas.os_router:
    cloud: monoscape
    name: monoscape-router
    state: absent
"""

RETURN = r"""
router:
  description: The router after the task (as it would be, in check mode).
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: Router id (empty in check mode when the router would be created).
      type: str
      sample: 3a7c9e1f-2b4d-4f6a-8c0e-1d3f5a7b9c2e
    name:
      description: Router name.
      type: str
      sample: monoscape-router
    description:
      description: Router description.
      type: str
      sample: ""
    status:
      description: Neutron's status of the router.
      type: str
      sample: ACTIVE
    project_id:
      description: Owning project.
      type: str
      sample: 0c4e939acacf4376bdcd1129f1a054ad
    external_gateway_info:
      description:
        - The gateway as Neutron shows it (C(network_id), C(enable_snat), C(external_fixed_ips)); null without one.
        - In check mode C(external_fixed_ips) of a gateway not yet set is empty.
      type: dict
      sample:
        network_id: 5e2b7c1d-9a3f-4b6e-8d0c-2f4a6b8c0d1e
        enable_snat: true
        external_fixed_ips: [{"subnet_id": "9f1c3e5a-7b9d-4f1a-8c3e-5a7b9d1f3a5c", "ip_address": "203.0.113.12"}]
    interfaces:
      description:
        - The router's subnet interfaces, one per address, sorted by subnet id.
        - C(port_id) is empty in check mode for an interface that would be added.
      type: list
      elements: dict
      sample:
        - subnet_id: 1c9a4e0b-7d2f-4e3a-8b5c-6d7e8f9a0b1c
          port_id: 7d2f4e3a-8b5c-4d7e-9f0a-1b2c3d4e5f6a
          ip_address: 10.20.0.1
interfaces_added:
  description: Ids of the subnets an interface was (or would be) added on, in the order of O(interfaces).
  returned: when O(state=present)
  type: list
  elements: str
  sample: ["1c9a4e0b-7d2f-4e3a-8b5c-6d7e8f9a0b1c"]
interfaces_removed:
  description: Ids of the subnets whose interface was (or would be) removed.
  returned: when O(state=present)
  type: list
  elements: str
  sample: []
"""

import contextlib
import ipaddress
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.neutron import floating_ip_text, router_interfaces
from ansible_collections.monoscape.paas.plugins.module_utils.openstack import (
    OpenStackModule,
    check_text,
    error_details,
    sdk_exc,
)


def gateway_view(info):
    if not info or not info.get("network_id"):
        return None
    return {
        "network_id": info.get("network_id"),
        "enable_snat": info.get("enable_snat"),
        "external_fixed_ips": [dict(ip) for ip in info.get("external_fixed_ips") or []],
    }


def view(router, interfaces):
    return {
        "id": router.id,
        "name": router.name,
        "description": router.description or "",
        "status": router.status,
        "project_id": router.project_id,
        "external_gateway_info": gateway_view(router.external_gateway_info),
        "interfaces": interfaces,
    }


def unique(items):
    return list(dict.fromkeys(items))


class RouterModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "description": {"type": "str"},
        "enable_snat": {"type": "bool"},
        "external_network": {"type": "str"},
        "interfaces": {"type": "list", "elements": "str"},
        "name": {"type": "str", "required": True},
        "project": {"type": "str"},
        "purge_interfaces": {"type": "bool", "default": True},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
    }

    # ------------------------------------------------------------------ checks
    def check_options(self):
        """Problems found without asking the cloud, or None."""
        params = self.params
        problem = check_text("router name", params["name"])
        if problem:
            return problem
        if params["state"] == "absent":
            return None
        if params["enable_snat"] is not None and not params["external_network"]:
            return "enable_snat needs external_network (SNAT happens on the gateway)"
        for index, item in enumerate(params["interfaces"] or []):
            problem = check_text(f"interfaces[{index}]", item)
            if problem:
                return problem
        return None

    def wanted_subnets(self, owner_id):
        """{subnet id: subnet} of the interfaces option, in its order; None when not given."""
        if self.params["interfaces"] is None:
            return None
        network_api = self.conn.network
        subnets = {}
        for index, item in enumerate(self.params["interfaces"]):
            subnet = self.find(
                "subnet",
                network_api.find_subnet,
                item,
                listing=lambda: network_api.subnets(project_id=owner_id),
                hint=f" (in interfaces[{index}])",
                project_id=owner_id,
            )
            subnets.setdefault(subnet.id, subnet)
        return subnets

    def wanted_gateway(self):
        """external_gateway_info to set ({} for none)."""
        if not self.params["external_network"]:
            return {}
        network_api = self.conn.network
        network = self.find(
            "external network",
            network_api.find_network,
            self.params["external_network"],
            listing=lambda: network_api.networks(is_router_external=True),
            hint=" (external_network must be a router:external network)",
            is_router_external=True,
        )
        info = {"network_id": network.id}
        if self.params["enable_snat"] is not None:
            info["enable_snat"] = self.params["enable_snat"]
        return info

    def check_gateways(self, subnets):
        for subnet in subnets:
            if not subnet.gateway_ip:
                self.fail(
                    f"subnet {subnet.name!r} has no gateway_ip, and a router interface takes its subnet's gateway"
                    " address: give the subnet one (os_subnet without no_gateway: true); nothing was changed"
                )

    def floating_ips(self, router):
        return self.call(lambda: list(self.conn.network.ips(router_id=router.id)))

    def fips_on_subnet(self, fips, subnet_id):
        """The floating IPs whose fixed address lies in the subnet (Neutron's RouterInterfaceInUseByFloatingIP rule)."""
        try:
            cidr = ipaddress.ip_network(self.call(self.conn.network.get_subnet, subnet_id).cidr, strict=False)
        except sdk_exc.SDKException:  # another project's subnet: Neutron will tell
            return []
        return [f for f in fips if f.fixed_ip_address and ipaddress.ip_address(f.fixed_ip_address) in cidr]

    def subnet_label(self, subnet_id):
        try:
            subnet = self.call(self.conn.network.get_subnet, subnet_id)
        except sdk_exc.SDKException:
            return subnet_id
        return f"{subnet.name} ({subnet.cidr})" if subnet.name else subnet.cidr

    def check_removals(self, router, removed, gateway_dropped):
        """Fail, before any change, when floating IPs still need what the task would remove."""
        if not removed and not gateway_dropped:
            return
        fips = self.floating_ips(router)
        if not fips:
            return
        for subnet_id in removed:
            users = self.fips_on_subnet(fips, subnet_id)
            if users:
                self.fail(
                    f"router {router.name!r} cannot drop its interface on subnet {self.subnet_label(subnet_id)}:"
                    f" floating IPs {', '.join(floating_ip_text(f) for f in users)} reach their servers through it."
                    " Disassociate or delete those floating IPs first, or keep the subnet in interfaces;"
                    " nothing was changed"
                )
        if gateway_dropped:
            users = [f for f in fips if f.floating_network_id == gateway_dropped]
            if users:
                self.fail(
                    f"router {router.name!r} cannot change or clear its external gateway: floating IPs"
                    f" {', '.join(floating_ip_text(f) for f in users)} on that network use it."
                    " Disassociate or delete them first; nothing was changed"
                )

    # ------------------------------------------------------------------ reading
    def interfaces(self, router):
        return router_interfaces(self.call(lambda: list(self.conn.network.ports(device_id=router.id))))

    # ------------------------------------------------------------------ run
    def run(self):
        problem = self.check_options()
        if problem:
            self.fail(f"{problem}; nothing was changed")
        name = self.params["name"]
        network_api = self.conn.network
        # always scoped: an admin sees every project's routers
        owner_id = self.project_id(self.params["project"])
        router = self.find("router", network_api.find_router, name, required=False, project_id=owner_id)
        if self.params["state"] == "absent":
            return self.absent(router)
        gateway = self.wanted_gateway()
        subnets = self.wanted_subnets(owner_id)
        if router is None:
            return self.create(name, owner_id, gateway, subnets)
        return self.update(router, gateway, subnets)

    def create(self, name, owner_id, gateway, subnets):
        network_api = self.conn.network
        subnets = subnets or {}
        self.check_gateways(subnets.values())
        added = list(subnets)
        attrs = {"name": name, "description": self.params["description"] or ""}
        if gateway:
            attrs["external_gateway_info"] = gateway
        if self.params["project"]:
            attrs["project_id"] = owner_id
        if self.check_mode:
            after = {
                "id": "",
                "name": name,
                "description": attrs["description"],
                "status": "ACTIVE",
                "project_id": owner_id,
                "external_gateway_info": self.simulated_gateway(gateway),
                "interfaces": self.simulated_interfaces([], [], subnets),
            }
        else:
            router = self.call(
                network_api.create_router,
                recheck=lambda: network_api.find_router(name, ignore_missing=True, project_id=owner_id),
                **attrs,
            )
            for subnet_id in added:
                self.call(network_api.add_interface_to_router, router.id, subnet_id)
            after = view(self.call(network_api.get_router, router.id), self.interfaces(router))
        return {
            "changed": True,
            "router": after,
            "interfaces_added": added,
            "interfaces_removed": [],
            "before": {},
            "after": after,
        }

    def update(self, router, gateway, subnets):
        network_api = self.conn.network
        current = self.interfaces(router)
        before = view(router, current)
        current_ids = unique(i["subnet_id"] for i in current)
        added, removed = [], []
        if subnets is not None:
            added = [s for s in subnets if s not in current_ids]
            if self.params["purge_interfaces"]:
                removed = [s for s in current_ids if s not in subnets]

        changes = {}
        description = self.params["description"]
        if description is not None and description != before["description"]:
            changes["description"] = description
        now = gateway_view(router.external_gateway_info)
        if self.gateway_differs(now, gateway):
            changes["external_gateway_info"] = gateway
        # a gateway moved to another network (or cleared) leaves that network's floating IPs behind
        old_network = now["network_id"] if now else None
        dropped = old_network if old_network and old_network != gateway.get("network_id") else None
        self.check_gateways(subnets[s] for s in added)
        self.check_removals(router, removed, dropped if "external_gateway_info" in changes else None)

        changed = bool(changes or added or removed)
        if not changed:
            after = before
        elif self.check_mode:
            after = dict(before, **changes)
            if "external_gateway_info" in changes:
                after["external_gateway_info"] = self.simulated_gateway(gateway)
            after["interfaces"] = self.simulated_interfaces(current, removed, {s: subnets[s] for s in added})
        else:
            if changes:
                self.call(network_api.update_router, router.id, **changes)
            for subnet_id in added:
                self.call(network_api.add_interface_to_router, router.id, subnet_id)
            for subnet_id in removed:
                self.remove_interface(router, subnet_id=subnet_id)
            after = view(self.call(network_api.get_router, router.id), self.interfaces(router))
        return {
            "changed": changed,
            "router": after,
            "interfaces_added": added,
            "interfaces_removed": removed,
            "before": before,
            "after": after,
        }

    def absent(self, router):
        if router is None:
            return {"changed": False}
        network_api = self.conn.network
        current = self.interfaces(router)
        before = view(router, current)
        fips = self.floating_ips(router)
        if fips:
            self.fail(
                f"router {router.name!r} still routes floating IPs {', '.join(floating_ip_text(f) for f in fips)};"
                " Neutron refuses to remove the interfaces they use. Disassociate or delete them first;"
                " nothing was changed"
            )
        if not self.check_mode:
            for port_id in unique(i["port_id"] for i in current):
                self.remove_interface(router, port_id=port_id)
            if before["external_gateway_info"]:
                self.call(network_api.update_router, router.id, external_gateway_info={})
            self.call(network_api.delete_router, router.id, ignore_missing=True)
        return {"changed": True, "before": before, "after": {}}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def gateway_differs(now, wanted):
        if not wanted:
            return now is not None
        if now is None or now["network_id"] != wanted["network_id"]:
            return True
        return "enable_snat" in wanted and now["enable_snat"] != wanted["enable_snat"]

    @staticmethod
    def simulated_gateway(gateway):
        if not gateway:
            return None
        return {
            "network_id": gateway["network_id"],
            "enable_snat": gateway.get("enable_snat", True),
            "external_fixed_ips": [],
        }

    @staticmethod
    def simulated_interfaces(current, removed, added):
        kept = [i for i in current if i["subnet_id"] not in removed]
        new = [{"subnet_id": s.id, "port_id": "", "ip_address": s.gateway_ip} for s in added.values()]
        return sorted(kept + new, key=lambda i: (i["subnet_id"] or "", i["port_id"]))

    def remove_interface(self, router, subnet_id=None, port_id=None):
        """Remove one interface (by subnet or by port); one already gone is fine; a floating IP
        refusal names the floating IPs."""
        network_api = self.conn.network
        try:
            with contextlib.suppress(sdk_exc.NotFoundException):
                # positional: the SDK renamed subnet_id/port_id to subnet/port
                self.call(network_api.remove_interface_from_router, router.id, subnet_id, port_id)
        except sdk_exc.ConflictException as exc:
            subnet_ids = [subnet_id] if subnet_id else self.port_subnets(port_id)
            fips = self.floating_ips(router)
            users = [f for s in subnet_ids for f in self.fips_on_subnet(fips, s)]
            if not users:
                raise
            self.fail(
                f"Neutron refused to remove the interface of router {router.name!r} on subnet"
                f" {', '.join(self.subnet_label(s) for s in subnet_ids)} ({error_details(exc)}): floating IPs"
                f" {', '.join(floating_ip_text(f) for f in users)} still use it. Disassociate or delete them first,"
                " then run again",
                status_code=409,
            )

    def port_subnets(self, port_id):
        try:
            port = self.call(self.conn.network.get_port, port_id)
        except sdk_exc.SDKException:
            return []
        return unique(ip.get("subnet_id") for ip in port.fixed_ips or [])


def main():
    RouterModule()()


if __name__ == "__main__":
    main()
