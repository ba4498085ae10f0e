#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_subnet
short_description: One subnet of a Neutron network
description:
  - Makes sure a subnet exists on a network with the given CIDR, gateway, DHCP setting, DNS servers and
    allocation pools, or is absent.
  - Every address is checked (with Python's C(ipaddress)) before the cloud is asked anything. A CIDR with
    host bits set, a gateway of the other address family, a pool outside the CIDR or around the gateway
    fail with a message that says what to fix.
  - Neutron cannot change a subnet's CIDR or move it to another network. When the subnet exists with
    another CIDR or on another network the task fails, saying to delete the subnet or use another name;
    it never ignores the difference.
  - Subnet names are taken as unique within the project (routers name their interfaces by subnet name).
  - Description, DNS servers, allocation pools, gateway and DHCP are updated in place.
  - Check mode and C(--diff) supported.
version_added: 0.2.0
author: Monoscape developers
options:
  allocation_pools:
    description:
      - Ranges Neutron allocates port addresses from. They must lie inside O(cidr), not overlap and
        leave out the gateway.
      - Left unchanged when not given; on create Neutron uses the whole CIDR except the gateway
        (and, for IPv4, the network and broadcast addresses).
    type: list
    elements: dict
    suboptions:
      end:
        description:
          - Last address of the range.
        type: str
        required: true
      start:
        description:
          - First address of the range.
        type: str
        required: true
  cidr:
    description:
      - The subnet's network in CIDR notation (C(10.20.0.0/24), C(2001:db8:1::/64)), without host bits.
      - Required with O(state=present). Cannot be changed once the subnet exists.
    type: str
  description:
    description:
      - Description of the subnet. Left unchanged when not given (empty on create).
    type: str
  dns_nameservers:
    description:
      - DNS server addresses handed to instances, in order. Left unchanged when not given (none on create).
    type: list
    elements: str
  enable_dhcp:
    description:
      - Whether Neutron serves DHCP on the subnet.
      - Default C(false) because the bundle's lab cloud has no DHCP agent (its compute driver gives each
        instance the fixed IP of its Neutron port directly), so a DHCP subnet would promise what nothing
        serves. Set C(true) on a cloud that runs a DHCP agent and whose images configure their network
        by DHCP.
    type: bool
    default: false
  gateway_ip:
    description:
      - Gateway address of the subnet (a router interface on the subnet takes it).
      - Default is Neutron's own, the first address after the network address (C(10.20.0.1) for
        C(10.20.0.0/24)). Compared on every run, so a gateway changed by hand is put back.
      - Mutually exclusive with O(no_gateway=true).
    type: str
  ip_version:
    description:
      - IP version of the subnet; must match O(cidr).
    type: int
    choices: [4, 6]
    default: 4
  name:
    description:
      - Subnet name, 1 to 255 characters, unique within the project.
    type: str
    required: true
  network:
    description:
      - Name or id of the network the subnet belongs to (a name is looked up in the subnet's project).
      - Required with O(state=present). With O(state=absent) it only says which subnet is meant when
        several have the name.
    type: str
  no_gateway:
    description:
      - C(true) for a subnet without a gateway (no router can then be attached to it by subnet).
    type: bool
    default: false
  project:
    description:
      - Name or id of the project that owns the subnet (needs the C(admin) role).
        Defaults to the project of the connection.
    type: str
  state:
    description:
      - C(present) creates or updates the subnet, C(absent) deletes it.
      - Neutron refuses to delete a subnet that ports still have addresses on (a router interface, a server);
        the task then fails naming them.
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
  - module: monoscape.paas.os_router
"""

EXAMPLES = r"""
- name: The deployment's subnet (gateway 10.20.0.1, no DHCP)
  monoscape.paas.os_subnet:
    cloud: monoscape
    name: monoscape-subnet
    network: monoscape-net
    cidr: 10.20.0.0/24
    dns_nameservers: [198.51.100.53]

- name: Addresses for servers only from .10 to .200; DHCP on a cloud that has an agent
  monoscape.paas.os_subnet:
    cloud: monoscape
    name: monoscape-subnet
    network: monoscape-net
    cidr: 10.20.0.0/24
    enable_dhcp: true
    allocation_pools:
      - start: 10.20.0.10
        end: 10.20.0.200

- name: An isolated subnet without a gateway
  monoscape.paas.os_subnet:
    cloud: monoscape
    name: monoscape-backend
    network: monoscape-net
    cidr: 10.21.0.0/24
    no_gateway: true

- name: Gone (after the router's interface on it)
  monoscape.paas.os_subnet:
    cloud: monoscape
    name: monoscape-subnet
    state: absent
"""

RETURN = r"""
subnet:
  description: The subnet after the task (as it would be, in check mode).
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: Subnet id (empty in check mode when the subnet would be created).
      type: str
      sample: 1c9a4e0b-7d2f-4e3a-8b5c-6d7e8f9a0b1c
    name:
      description: Subnet name.
      type: str
      sample: monoscape-subnet
    description:
      description: Subnet description.
      type: str
      sample: ""
    network_id:
      description: Id of the subnet's network.
      type: str
      sample: 8d3f1c2a-5b6e-4f70-9a1b-2c3d4e5f6a7b
    cidr:
      description: The subnet's CIDR.
      type: str
      sample: 10.20.0.0/24
    ip_version:
      description: 4 or 6.
      type: int
      sample: 4
    gateway_ip:
      description: Gateway address (null without a gateway).
      type: str
      sample: 10.20.0.1
    enable_dhcp:
      description: Whether DHCP is on.
      type: bool
      sample: false
    dns_nameservers:
      description: DNS servers, in order.
      type: list
      elements: str
      sample: ["198.51.100.53"]
    allocation_pools:
      description: Allocation ranges, sorted.
      type: list
      elements: dict
      sample: [{"start": "10.20.0.2", "end": "10.20.0.254"}]
    project_id:
      description: Owning project.
      type: str
      sample: 0c4e939acacf4376bdcd1129f1a054ad
"""

import dataclasses
import ipaddress
import itertools
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.neutron import port_ips, port_users
from ansible_collections.monoscape.paas.plugins.module_utils.openstack import (
    ModuleFailure,
    OpenStackModule,
    check_text,
    error_details,
    names_hint,
    sdk_exc,
)

# option -> SDK attribute, for what can be updated in place
UPDATABLE = {
    "allocation_pools": "allocation_pools",
    "description": "description",
    "dns_nameservers": "dns_nameservers",
    "enable_dhcp": "is_dhcp_enabled",
    "gateway_ip": "gateway_ip",
}


@dataclasses.dataclass
class Wanted:
    """The subnet a task asks for, checked before the cloud is asked anything."""

    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    pools: list | None  # sorted (start, end) pairs, None when not given
    attrs: dict  # compared values by option name


class Invalid(ValueError):
    """An option value that cannot work; the message says what to fix."""


def parse_cidr(text, ip_version):
    text = (text or "").strip()
    if "/" not in text:
        raise Invalid(f"cidr {text!r} needs a prefix length, like 10.20.0.0/24 or 2001:db8::/64")
    try:
        network = ipaddress.ip_network(text)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise Invalid(f"cidr {text!r} is not an IP network in CIDR notation (like 10.20.0.0/24)") from None
        raise Invalid(f"cidr {text} has host bits set: the network is {loose}") from None
    if network.version != ip_version:
        raise Invalid(
            f"cidr {network} is IPv{network.version} but ip_version is {ip_version}: set ip_version: {network.version}"
        )
    return network


def parse_address(what, text, network):
    try:
        address = ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise Invalid(f"{what} {text!r} is not an IP address") from None
    if network is not None and address.version != network.version:
        raise Invalid(f"{what} {address} is IPv{address.version} but cidr {network} is IPv{network.version}")
    return address


def first_host(network):
    """Neutron's default gateway: the address after the network address."""
    return network.network_address + 1 if network.num_addresses > 1 else None


def parse_gateway(params, network):
    if params["no_gateway"]:
        if params["gateway_ip"]:
            raise Invalid("give gateway_ip or no_gateway: true, not both")
        return None
    if not params["gateway_ip"]:
        return first_host(network)
    gateway = parse_address("gateway_ip", params["gateway_ip"], network)
    # Neutron's check_gateway_invalid_in_subnet
    if gateway in network and (
        gateway == network.network_address or (network.version == 4 and gateway == network.broadcast_address)
    ):
        kind = "network" if gateway == network.network_address else "broadcast"
        raise Invalid(
            f"gateway_ip {gateway} is the {kind} address of {network}; use a host address like {first_host(network)}"
        )
    return gateway


def parse_pools(pools, network, gateway):
    """Allocation pools as sorted (start, end) address pairs, checked like Neutron does."""
    ranges = []
    for index, pool in enumerate(pools):
        where = f"allocation_pools[{index}]"
        start = parse_address(f"{where}.start", pool["start"], network)
        end = parse_address(f"{where}.end", pool["end"], network)
        if start > end:
            raise Invalid(f"{where}: start {start} is after end {end}")
        if start not in network or end not in network:
            raise Invalid(f"{where} {start}-{end} is not inside cidr {network}")
        if gateway is not None and start <= gateway <= end:
            raise Invalid(f"{where} {start}-{end} contains the gateway {gateway}; leave it out of the pools")
        ranges.append((start, end))
    ranges.sort()
    for (start_a, end_a), (start_b, end_b) in itertools.pairwise(ranges):
        if start_b <= end_a:
            raise Invalid(f"allocation pools {start_a}-{end_a} and {start_b}-{end_b} overlap")
    return ranges


def default_pools(network, gateway):
    """Neutron's generate_pools: the CIDR without the network address (and the IPv4
    broadcast address) and the gateway."""
    first, last = int(network.network_address), int(network.broadcast_address)
    if first == last:
        return [(network.network_address, network.network_address)]
    low, high = first + 1, last - (network.version == 4)
    if low >= high:
        return []
    address = type(network.network_address)
    if gateway is None or not low <= int(gateway) <= high:
        return [(address(low), address(high))]
    return [(address(a), address(b)) for a, b in ((low, int(gateway) - 1), (int(gateway) + 1, high)) if a <= b]


def pools_view(ranges):
    return [{"start": str(start), "end": str(end)} for start, end in ranges]


def existing_pools(subnet):
    pools = []
    for pool in subnet.allocation_pools or []:
        pools.append((ipaddress.ip_address(pool["start"]), ipaddress.ip_address(pool["end"])))
    return sorted(pools)


def view(subnet):
    return {
        "id": subnet.id,
        "name": subnet.name,
        "description": subnet.description or "",
        "network_id": subnet.network_id,
        "cidr": subnet.cidr,
        "ip_version": subnet.ip_version,
        "gateway_ip": subnet.gateway_ip or None,
        "enable_dhcp": bool(subnet.is_dhcp_enabled),
        "dns_nameservers": list(subnet.dns_nameservers or []),
        "allocation_pools": pools_view(existing_pools(subnet)),
        "project_id": subnet.project_id,
    }


class SubnetModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "allocation_pools": {
            "type": "list",
            "elements": "dict",
            "options": {"end": {"type": "str", "required": True}, "start": {"type": "str", "required": True}},
        },
        "cidr": {"type": "str"},
        "description": {"type": "str"},
        "dns_nameservers": {"type": "list", "elements": "str"},
        "enable_dhcp": {"type": "bool", "default": False},
        "gateway_ip": {"type": "str"},
        "ip_version": {"type": "int", "default": 4, "choices": [4, 6]},
        "name": {"type": "str", "required": True},
        "network": {"type": "str"},
        "no_gateway": {"type": "bool", "default": False},
        "project": {"type": "str"},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
    }
    module_kwargs: ClassVar[dict] = {"required_if": [("state", "present", ("cidr", "network"))]}

    def parse_options(self):
        """The subnet the task asks for (a Wanted), checked without asking the cloud."""
        params = self.params
        network = parse_cidr(params["cidr"], params["ip_version"])
        gateway = parse_gateway(params, network)
        wanted = {
            "enable_dhcp": params["enable_dhcp"],
            "gateway_ip": None if gateway is None else str(gateway),
        }
        if params["description"] is not None:
            wanted["description"] = params["description"]
        if params["dns_nameservers"] is not None:
            servers = [str(parse_address("dns_nameservers entry", s, None)) for s in params["dns_nameservers"]]
            duplicates = sorted({s for s in servers if servers.count(s) > 1})
            if duplicates:
                raise Invalid(f"dns_nameservers lists {', '.join(duplicates)} more than once")
            wanted["dns_nameservers"] = servers
        pools = None
        if params["allocation_pools"] is not None:
            pools = parse_pools(params["allocation_pools"], network, gateway)
            wanted["allocation_pools"] = pools_view(pools)
        return Wanted(network, gateway, pools, wanted)

    def run(self):
        name = self.params["name"]
        problem = check_text("subnet name", name)
        present = self.params["state"] == "present"
        if not problem and present:
            try:
                options = self.parse_options()
            except Invalid as exc:
                problem = str(exc)
        if problem:
            self.fail(f"{problem}; nothing was changed")

        network_api = self.conn.network
        owner_id = self.project_id(self.params["project"])
        network = None
        if self.params["network"]:
            network = self.find(
                "network",
                network_api.find_network,
                self.params["network"],
                required=present,
                listing=lambda: network_api.networks(project_id=owner_id),
                project_id=owner_id,
            )
        subnet = self.lookup(name, owner_id, network)
        if present and subnet is None:
            return self.create(name, owner_id, network, options)
        if present:
            return self.update(subnet, network, options)
        if subnet is None:
            return {"changed": False}
        before = view(subnet)
        if not self.check_mode:
            self.delete(subnet)
        return {"changed": True, "before": before, "after": {}}

    def create(self, name, owner_id, network, wanted):
        network_api = self.conn.network
        cidr = wanted.cidr
        after = {
            "id": "",
            "name": name,
            "description": "",
            "network_id": network.id,
            "cidr": str(cidr),
            "ip_version": cidr.version,
            "dns_nameservers": [],
            "allocation_pools": pools_view(default_pools(cidr, wanted.gateway)),
            "project_id": owner_id,
            **wanted.attrs,
        }
        if not self.check_mode:
            attrs = {UPDATABLE[opt]: value for opt, value in wanted.attrs.items()}
            if self.params["project"]:
                attrs["project_id"] = owner_id
            created = self.call(
                network_api.create_subnet,
                name=name,
                network_id=network.id,
                cidr=str(cidr),
                ip_version=cidr.version,
                recheck=lambda: network_api.find_subnet(
                    name, ignore_missing=True, project_id=owner_id, network_id=network.id
                ),
                **attrs,
            )
            after = view(created)
        return {"changed": True, "subnet": after, "before": {}, "after": after}

    def update(self, subnet, network, wanted):
        before = view(subnet)
        self.check_fixed(subnet, network, wanted.cidr)
        update = {opt: value for opt, value in wanted.attrs.items() if before[opt] != value}
        gateway = wanted.gateway
        if "gateway_ip" in update and wanted.pools is None and gateway is not None:
            for start, end in existing_pools(subnet):
                if start <= gateway <= end:
                    self.fail(
                        f"gateway_ip {gateway} is inside the allocation pool {start}-{end} of subnet {subnet.name!r};"
                        " give allocation_pools that leave it out; nothing was changed"
                    )
        after = dict(before, **update)
        if update and not self.check_mode:
            attrs = {UPDATABLE[opt]: value for opt, value in update.items()}
            after = view(self.call(self.conn.network.update_subnet, subnet.id, **attrs))
        return {"changed": bool(update), "subnet": after, "before": before, "after": after}

    def lookup(self, name, owner_id, network):
        """The project's subnet of this name (or id); with several, the one on ``network``."""
        network_api = self.conn.network
        try:
            return self.call(network_api.find_subnet, name, ignore_missing=True, project_id=owner_id)
        except sdk_exc.DuplicateResource:
            pass
        same = self.call(lambda: list(network_api.subnets(project_id=owner_id, name=name)))
        if network is not None:
            on_network = [s for s in same if s.network_id == network.id]
            if len(on_network) == 1:
                return on_network[0]
        nets = names_hint(self.network_name(s.network_id) for s in same)
        raise ModuleFailure(
            f"subnet name {name!r} is ambiguous: {len(same)} subnets of the project have it (on networks {nets});"
            " give network to say which, or delete the extra ones (by id)"
        )

    def network_name(self, network_id):
        try:
            return self.call(self.conn.network.get_network, network_id).name or network_id
        except sdk_exc.SDKException:
            return network_id

    def check_fixed(self, subnet, network, cidr):
        """Fail (before any change) when the subnet differs in what Neutron cannot change."""
        name = subnet.name
        if subnet.network_id != network.id:
            self.fail(
                f"subnet {name!r} exists on network {self.network_name(subnet.network_id)!r}, not"
                f" {network.name!r}; Neutron cannot move a subnet to another network: delete the subnet"
                " (state: absent) or use another name; nothing was changed"
            )
        if ipaddress.ip_network(subnet.cidr, strict=False) != cidr:
            self.fail(
                f"subnet {name!r} has cidr {subnet.cidr}, not {cidr}; Neutron cannot change a subnet's CIDR:"
                " delete the subnet (state: absent) or use another name; nothing was changed"
            )

    def delete(self, subnet):
        """Delete the subnet; Neutron's "in use" refusal becomes a list of what uses it."""
        network_api = self.conn.network
        try:
            self.call(network_api.delete_subnet, subnet.id, ignore_missing=True)
        except sdk_exc.ConflictException as exc:
            ports = self.call(lambda: list(network_api.ports(network_id=subnet.network_id)))
            users = port_users(self, [p for p in ports if port_ips(p, subnet.id)], subnet.id)
            if not users:
                raise
            self.fail(
                f"subnet {subnet.name!r} is still in use, so Neutron refused to delete it ({error_details(exc)})."
                f" Used by: {'; '.join(users)}. Remove those first (os_router without this subnet in"
                " interfaces, or state: absent; delete the servers), then run again",
                status_code=409,
            )


def main():
    SubnetModule()()


if __name__ == "__main__":
    main()
