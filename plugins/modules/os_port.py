#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_port
short_description: One Neutron port
description:
  - Makes sure a port exists on a network with the given fixed IPs, allowed address pairs, port
    security setting, security groups, description and device owner, or is absent.
  - Made for a highly available address - a virtual-IP port that no server is bound to holds a fixed
    address that keepalived moves between two servers - and for the servers' own ports, which must then
    allow that address (O(allowed_address_pairs)).
  - The port is looked up by O(name) on O(network), among the ports of the connection's project. O(name)
    may also be the id of an existing port (a server's port, whose name Nova leaves empty); such a port
    is only ever found, never created.
  - Or, with O(server) instead of O(name), the port is that server's port on O(network) (found, never
    created; a server with no port or several ports there fails the task, naming them).
  - Two ports with the name on the network fail the task, naming their ids; nothing is taken at random.
  - Every address, CIDR, MAC address and name is checked (addresses with Python's C(ipaddress)) before
    the cloud is asked anything; a bad input fails the task and changes nothing.
  - Attributes that are not given are left as they are (Neutron's defaults on create). O(allowed_address_pairs)
    and O(security_groups), when given, are declarative - the port ends up with exactly those.
  - O(fixed_ips) are changed in place (Neutron keeps the listed addresses, releases the others and
    allocates the new ones) only on a port no device is bound to. A bound port (a server's, a router's)
    whose fixed IPs differ fails the task, saying how they differ; so does a different O(device_owner).
  - Neutron keeps security groups and allowed address pairs only on ports with port security. A task
    that would leave a port without port security but with either fails before anything changes,
    saying what to give (C(security_groups=[]), C(allowed_address_pairs=[])).
  - "O(state=absent): the port is deleted. A port bound to a device (a server) is never deleted: the
    task fails naming the server (its device_id); remove the port from the server first. Floating IPs
    on a deleted port stay allocated to the project (a warning names them)."
  - Check mode and C(--diff) supported.
version_added: 0.1.0
author: Monoscape developers
options:
  allowed_address_pairs:
    description:
      - Addresses other than its fixed IPs the port may send from and receive for (port security drops
        them otherwise), for example a virtual IP that keepalived may move to this port's server.
      - The port gets exactly these pairs; C([]) removes every pair. Omitted means left alone (none on create).
      - They need port security on the port.
    type: list
    elements: dict
    suboptions:
      ip_address:
        description:
          - An IPv4 address (C(10.20.0.250)) or network in CIDR notation without host bits
            (C(10.20.0.0/28)). C(10.20.0.250/32) is the same as C(10.20.0.250).
        type: str
        required: true
      mac_address:
        description:
          - MAC address the pair allows (C(fa:16:3e:12:34:56)). Default - the port's own MAC address
            (what keepalived uses for a virtual IP).
        type: str
  description:
    description:
      - Description of the port (at most 255 characters). The Monoscape playbooks write
        C(monoscape_deployment=<deployment>) there. Left unchanged when not given (empty on create).
    type: str
  device_owner:
    description:
      - What the port belongs to, as Neutron records it (at most 255 characters; for example the name of
        the service that manages a virtual IP). Left unchanged when not given (empty on create).
      - Changed in place on an unbound port only.
    type: str
  fixed_ips:
    description:
      - The port's fixed IPs. Each entry gives a subnet (the next free address there), an address, or
        both; an address alone is placed on the subnet of O(network) that holds it.
      - Compared on every run - the port ends up with exactly these addresses (an entry with only a
        subnet is satisfied by any address of the port on that subnet). C([]) means no address.
      - Omitted means Neutron's choice on create (one address from a subnet of the network) and the
        addresses are not compared.
      - Changed in place on an unbound port only; a bound port whose addresses differ fails the task.
    type: list
    elements: dict
    suboptions:
      ip_address:
        description:
          - A fixed address (IPv4 or IPv6). It must be free - an address another port holds fails the
            task naming that port.
        type: str
      subnet:
        description:
          - Name or id of a subnet of O(network).
        type: str
  name:
    description:
      - Port name, 1 to 255 characters, unique on O(network) within the project.
      - Or the id of an existing port; a port id that is not found fails (it is never a new port's name).
      - Required unless O(server) is given (exactly one of them).
    type: str
  network:
    description:
      - Name or id of the port's network (a name is looked up in the project first, then among the
        networks shared with it).
      - Required with O(state=present). With O(state=absent) it says on which network the port is;
        without it, the port is looked up by name in the whole project.
    type: str
  port_security_enabled:
    description:
      - Whether the port has port security (security groups and anti-spoofing). Left unchanged when not
        given; on create Neutron takes the network's setting.
      - C(false) needs O(security_groups) and O(allowed_address_pairs) empty (or, on a port that has
        none, omitted).
    type: bool
  server:
    description:
      - Name or id of a server of the project - the port managed is its port on O(network), for example to
        let a load balancer's port carry a virtual IP (O(allowed_address_pairs)). Only with O(state=present).
    type: str
  security_groups:
    description:
      - Names or ids of the project's security groups of the port. The port gets exactly these; C([])
        removes every group.
      - Omitted means left alone; on create Neutron then gives a port with port security the project's
        C(default) group.
      - Must be empty when port security is off.
    type: list
    elements: str
  state:
    description:
      - C(present) creates or updates the port, C(absent) deletes it (never a port bound to a server).
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
notes:
  - O(allowed_address_pairs) are IPv4 only (the load balancer's virtual IP is IPv4).
  - Neutron limits the number of allowed address pairs per port (C(max_allowed_address_pair), 10 by default).
seealso:
  - module: monoscape.paas.os_network
  - module: monoscape.paas.os_subnet
  - module: monoscape.paas.os_floating_ip
"""

EXAMPLES = r"""
- name: The load balancer's virtual IP - a port no server is bound to
  monoscape.paas.os_port:
    cloud: monoscape
    name: acme-lb-vip
    network: acme-net
    fixed_ips:
      - subnet: acme-subnet
        ip_address: 10.20.0.250
    security_groups: [acme-lb]
    description: monoscape_deployment=acme
  register: vip

- name: Each load balancer's own port may carry the virtual IP (keepalived moves it)
  monoscape.paas.os_port:
    cloud: monoscape
    server: "{{ item }}"
    network: acme-net
    allowed_address_pairs:
      - ip_address: "{{ vip.port.fixed_ips[0].ip_address }}"
  loop: [acme-lb-1, acme-lb-2]

- name: Gone (fails while a server holds it)
  monoscape.paas.os_port:
    cloud: monoscape
    name: acme-lb-vip
    network: acme-net
    state: absent
"""

RETURN = r"""
port:
  description:
    - The port after the task (as it would be, in check mode; values Neutron chooses - the id, MAC
      address and addresses it allocates - are then empty).
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: Port id.
      type: str
      sample: 3f0c1a2b-4d5e-4f60-8a9b-0c1d2e3f4a5b
    name:
      description: Port name.
      type: str
      sample: acme-lb-vip
    network_id:
      description: Id of the port's network.
      type: str
      sample: 8d3f1c2a-5b6e-4f70-9a1b-2c3d4e5f6a7b
    fixed_ips:
      description: The port's fixed IPs (C(subnet_id), C(ip_address)), in Neutron's order.
      type: list
      elements: dict
      sample: [{"subnet_id": "1c9a4e0b-7d2f-4e3a-8b5c-6d7e8f9a0b1c", "ip_address": "10.20.0.250"}]
    allowed_address_pairs:
      description: Allowed address pairs (C(ip_address), C(mac_address)), sorted.
      type: list
      elements: dict
      sample: [{"ip_address": "10.20.0.250", "mac_address": "fa:16:3e:12:34:56"}]
    port_security_enabled:
      description: Whether the port has port security.
      type: bool
      sample: true
    security_group_ids:
      description: Ids of the port's security groups, sorted.
      type: list
      elements: str
      sample: ["5c1e2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"]
    mac_address:
      description: The port's MAC address.
      type: str
      sample: fa:16:3e:12:34:56
    device_id:
      description: Id of the device (server, router) the port is bound to; empty when unbound.
      type: str
      sample: ""
    device_owner:
      description: The port's device owner (C(compute:nova) for a server's port).
      type: str
      sample: ""
    status:
      description: Neutron's status of the port (C(DOWN) while no device uses it).
      type: str
      sample: DOWN
    description:
      description: Port description.
      type: str
      sample: monoscape_deployment=acme
"""

import dataclasses
import ipaddress
import re
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.neutron import is_id, port_holder
from ansible_collections.monoscape.paas.plugins.module_utils.openstack import (
    ModuleFailure,
    OpenStackModule,
    check_text,
    names_hint,
)

MAC = re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}", re.IGNORECASE)
INVALID_MACS = frozenset({"00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"})  # neutron_lib refuses them


class Invalid(ValueError):
    """An option value that cannot work; the message says what to fix."""


@dataclasses.dataclass
class Wanted:
    """What the task asks for, each None when not given: fixed IPs ([{subnet_id,
    ip_address or None}] once resolved), allowed address pairs ([(address, MAC or None)])
    and security group ids; ``names`` maps subnet ids to names for messages."""

    fixed: list | None
    pairs: list | None
    group_ids: list | None
    names: dict = dataclasses.field(default_factory=dict)


def pair_address(text):
    """An allowed address pair's address as compared: '10.0.0.5' for a host (also
    given as /32), '10.0.0.0/24' for a network. Invalid says what to fix."""
    text = str(text).strip()
    try:
        network = ipaddress.ip_network(text)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise Invalid(f"{text!r} is not an IPv4 address or CIDR (like 10.20.0.250 or 10.20.0.0/28)") from None
        host = text.split("/", 1)[0]
        raise Invalid(f"{text} has host bits set: write the network {loose}, or the address {host} alone") from None
    if network.version != 4:
        raise Invalid(f"{text} is IPv6; allowed address pairs are IPv4 only here")
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def existing_pair_address(text):
    """A pair's address as Neutron returns it, compared like pair_address."""
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return text
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def mac_address(text):
    text = str(text).strip()
    if not MAC.fullmatch(text):
        raise Invalid(f"mac_address {text!r} is not a MAC address (like fa:16:3e:12:34:56)")
    mac = text.lower().replace("-", ":")
    if mac in INVALID_MACS:
        raise Invalid(f"mac_address {mac} cannot be used (Neutron refuses it)")
    return mac


def fixed_view(fixed_ips):
    return [{"subnet_id": ip.get("subnet_id"), "ip_address": ip.get("ip_address") or ""} for ip in fixed_ips or []]


def pairs_view(pairs):
    found = [{"ip_address": p.get("ip_address"), "mac_address": p.get("mac_address") or ""} for p in pairs or []]
    return sorted(found, key=lambda p: (p["ip_address"], p["mac_address"]))


def pair_keys(pairs, port_mac):
    """{(address, MAC)} of pairs, the MAC defaulting to the port's, as Neutron fills it in."""
    return {(existing_pair_address(p["ip_address"]), (p.get("mac_address") or port_mac or "").lower()) for p in pairs}


def view(port):
    return {
        "id": port.id,
        "name": port.name or "",
        "network_id": port.network_id,
        "fixed_ips": fixed_view(port.fixed_ips),
        "allowed_address_pairs": pairs_view(port.allowed_address_pairs),
        "port_security_enabled": port.is_port_security_enabled,
        "security_group_ids": sorted(port.security_group_ids or []),
        "mac_address": port.mac_address or "",
        "device_id": port.device_id or "",
        "device_owner": port.device_owner or "",
        "status": port.status,
        "description": port.description or "",
    }


class PortModule(OpenStackModule):
    owner_id = None
    argument_spec: ClassVar[dict] = {
        "allowed_address_pairs": {
            "type": "list",
            "elements": "dict",
            "options": {"ip_address": {"type": "str", "required": True}, "mac_address": {"type": "str"}},
        },
        "description": {"type": "str"},
        "device_owner": {"type": "str"},
        "fixed_ips": {
            "type": "list",
            "elements": "dict",
            "options": {"ip_address": {"type": "str"}, "subnet": {"type": "str"}},
        },
        "name": {"type": "str"},
        "network": {"type": "str"},
        "port_security_enabled": {"type": "bool"},
        "security_groups": {"type": "list", "elements": "str"},
        "server": {"type": "str"},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
    }
    module_kwargs: ClassVar[dict] = {
        "mutually_exclusive": [("name", "server")],
        "required_if": [("state", "present", ("network",)), ("state", "absent", ("name",))],
        "required_one_of": [("name", "server")],
    }

    # ------------------------------------------------------------------ inputs (no API call)
    def check_inputs(self):
        """Every option checked without asking the cloud; returns (fixed_ips, pairs, groups),
        each None when not given. Raises Invalid."""
        params = self.params
        for option, kind, allow_empty in (
            ("name", "port name", False),
            ("network", "network", False),
            ("server", "server", False),
            ("description", "description", True),
            ("device_owner", "device_owner", True),
        ):
            if params[option] is not None:
                problem = check_text(kind, params[option], allow_empty=allow_empty)
                if problem:
                    raise Invalid(problem)
        fixed = None if params["fixed_ips"] is None else self.parse_fixed_ips(params["fixed_ips"])
        pairs = None if params["allowed_address_pairs"] is None else self.parse_pairs(params["allowed_address_pairs"])
        groups = None
        if params["security_groups"] is not None:
            groups = []
            for group in params["security_groups"]:
                problem = check_text("security_groups entry", group)
                if problem:
                    raise Invalid(problem)
                if group not in groups:
                    groups.append(group)
        if params["port_security_enabled"] is False:
            if groups:
                raise Invalid(
                    f"security_groups {', '.join(groups)} need port security, but port_security_enabled is false:"
                    " give security_groups: [] (or port_security_enabled: true)"
                )
            if pairs:
                raise Invalid(
                    "allowed_address_pairs need port security, but port_security_enabled is false: give"
                    " allowed_address_pairs: [] (or port_security_enabled: true)"
                )
        return fixed, pairs, groups

    @staticmethod
    def parse_fixed_ips(entries):
        """[(subnet name or id or None, canonical address or None)]."""
        parsed = []
        for index, entry in enumerate(entries):
            where = f"fixed_ips[{index}]"
            subnet, address = entry["subnet"], entry["ip_address"]
            if subnet is None and address is None:
                raise Invalid(f"{where} needs subnet, ip_address or both")
            if subnet is not None:
                problem = check_text(f"{where}.subnet", subnet)
                if problem:
                    raise Invalid(problem)
            if address is not None:
                try:
                    address = str(ipaddress.ip_address(str(address).strip()))
                except ValueError:
                    raise Invalid(f"{where}.ip_address {address!r} is not an IP address") from None
                if any(address == a for _, a in parsed):
                    raise Invalid(f"fixed_ips lists {address} more than once")
            parsed.append((subnet, address))
        return parsed

    @staticmethod
    def parse_pairs(entries):
        """[(canonical address or CIDR, MAC or None)], without duplicates."""
        parsed = []
        for index, entry in enumerate(entries):
            where = f"allowed_address_pairs[{index}]"
            try:
                pair = (
                    pair_address(entry["ip_address"]),
                    None if entry["mac_address"] is None else mac_address(entry["mac_address"]),
                )
            except Invalid as exc:
                raise Invalid(f"{where}: {exc}") from None
            if pair in parsed:
                raise Invalid(f"allowed_address_pairs lists {pair[0]}{f' ({pair[1]})' if pair[1] else ''} twice")
            parsed.append(pair)
        return parsed

    # ------------------------------------------------------------------ lookups
    def network_of(self, required):
        """The network option's network: the project's own first, then one shared with it."""
        name = self.params["network"]
        if not name:
            return None
        api = self.conn.network
        found = self.find("network", api.find_network, name, required=False, project_id=self.owner_id)
        if found is None:
            found = self.find("network", api.find_network, name, required=required, listing=api.networks)
        return found

    def lookup(self, network):
        """The project's port of this name (or id) on ``network`` (anywhere, when None)."""
        name = self.params["name"]
        api = self.conn.network
        query = {"project_id": self.owner_id}
        if network is not None:
            query["network_id"] = network.id
        found = [p for p in self.call(lambda: list(api.ports(name=name, **query))) if p.name == name]
        if not found and is_id(name):
            found = self.call(lambda: list(api.ports(id=name, **query)))
        if len(found) > 1:
            where = f"on network {network.name!r}" if network is not None else "in the project"
            which = "" if network is not None else " (give network to say which)"
            self.fail(
                f"{len(found)} ports are named {name!r} {where}: {', '.join(sorted(p.id for p in found))}{which};"
                " delete the extra ones (by id), or give the id of the one to manage as name; nothing was changed"
            )
        return found[0] if found else None

    def server_port(self, network):
        """The server option's port on ``network``; the name option then names it (messages)."""
        compute = self.conn.compute
        server = self.find("server", compute.find_server, self.params["server"], listing=compute.servers)
        found = self.call(lambda: list(self.conn.network.ports(device_id=server.id, network_id=network.id)))
        if len(found) != 1:
            which = (
                f": {', '.join(sorted(p.id for p in found))}; give the id of the one to manage as name" if found else ""
            )
            self.fail(
                f"server {server.name!r} has {f'{len(found)} ports' if found else 'no port'} on network"
                f" {network.name!r}{which}; nothing was changed"
            )
        self.params["name"] = found[0].id
        return found[0]

    def resolve_fixed_ips(self, network, fixed):
        """[{subnet_id, ip_address or None}] of the fixed_ips option, checked against the
        network's subnets; and {subnet id: name} for messages."""
        subnets = self.call(lambda: list(self.conn.network.subnets(network_id=network.id)))
        names = {s.id: s.name or s.id for s in subnets}
        resolved = []
        for index, (subnet_name, address) in enumerate(fixed):
            where = f"fixed_ips[{index}]"
            subnet = None
            if subnet_name is not None:
                matches = [s for s in subnets if subnet_name == s.id] or [s for s in subnets if subnet_name == s.name]
                if not matches:
                    self.fail(
                        f"{where}: network {network.name!r} has no subnet {subnet_name!r}; its subnets:"
                        f" {names_hint(names.values())}; nothing was changed"
                    )
                if len(matches) > 1:
                    self.fail(
                        f"{where}: subnet name {subnet_name!r} is ambiguous on network {network.name!r}"
                        f" ({', '.join(sorted(s.id for s in matches))}); use the id; nothing was changed"
                    )
                subnet = matches[0]
            if address is not None:
                ip = ipaddress.ip_address(address)
                holders = [s for s in subnets if ip in ipaddress.ip_network(s.cidr, strict=False)]
                if subnet is not None and subnet not in holders:
                    self.fail(
                        f"{where}.ip_address {address} is not inside subnet {names[subnet.id]!r} ({subnet.cidr});"
                        " nothing was changed"
                    )
                if subnet is None:
                    if not holders:
                        cidrs = names_hint(f"{s.name or s.id} {s.cidr}" for s in subnets)
                        self.fail(
                            f"{where}.ip_address {address} is in none of the subnets of network {network.name!r}"
                            f" ({cidrs}); nothing was changed"
                        )
                    subnet = holders[0]
            resolved.append({"subnet_id": subnet.id, "ip_address": address})
        return resolved, names

    def group_ids(self, groups):
        api = self.conn.network
        ids = []
        for group in groups:
            found = self.find(
                "security group",
                api.find_security_group,
                group,
                listing=lambda: api.security_groups(project_id=self.owner_id),
                hint=" (in security_groups)",
                project_id=self.owner_id,
            )
            if found.id not in ids:
                ids.append(found.id)
        return ids

    def check_free(self, network, port, requests):
        """Fail (before any change) when an address asked for is held by another port."""
        own = {ip.get("ip_address") for ip in (port.fixed_ips if port is not None else [])}
        for entry in requests:
            address = entry["ip_address"]
            if not address or address in own:
                continue
            query = [f"ip_address={address}", f"subnet_id={entry['subnet_id']}"]
            holders = self.call(lambda q=query: list(self.conn.network.ports(network_id=network.id, fixed_ips=q)))
            holders = [h for h in holders if port is None or h.id != port.id]
            if holders:
                self.fail(
                    f"ip_address {address} is already used on network {network.name!r} by"
                    f" {self.describe_port(holders[0])}; choose another address or free that one first;"
                    " nothing was changed"
                )

    def describe_port(self, port):
        if getattr(port, "device_id", None):
            return f"port {port.id} of {port_holder(self, port)}"
        return f"port {port.name!r} ({port.id})" if port.name else f"port {port.id}"

    # ------------------------------------------------------------------ main
    def run(self):
        try:
            fixed, pairs, groups = self.check_inputs()
        except Invalid as exc:
            self.fail(f"{exc}; nothing was changed")
        self.owner_id = self.conn.current_project_id
        present = self.params["state"] == "present"
        network = self.network_of(required=present)
        if not present:
            return self.absent(network)
        port = self.lookup(network) if self.params["server"] is None else self.server_port(network)
        if port is None and is_id(self.params["name"]):
            self.fail(
                f"no port with id {self.params['name']} on network {network.name!r} in the project; a port id as"
                " name only finds that port (give a name to create one); nothing was changed"
            )
        wanted = Wanted(None, pairs, None if groups is None else self.group_ids(groups))
        if fixed is not None:
            wanted.fixed, wanted.names = self.resolve_fixed_ips(network, fixed)
        self.check_port_security(network, port, wanted)
        if port is None:
            self.check_free(network, None, wanted.fixed or [])
            return self.create(network, wanted)
        return self.update(network, port, wanted)

    def check_port_security(self, network, port, wanted_now):
        """Neutron's rules, checked before any change: security groups and allowed address
        pairs only with port security, security groups only on a port with an address."""
        fixed, pairs, group_ids = wanted_now.fixed, wanted_now.pairs, wanted_now.group_ids
        wanted = self.params["port_security_enabled"]
        if port is not None:
            secured = port.is_port_security_enabled if wanted is None else wanted
            where = f"port {self.params['name']!r} has port security disabled"
        else:
            secured = network.is_port_security_enabled if wanted is None else wanted
            where = f"network {network.name!r} gives new ports no port security"
        if secured is False:
            if group_ids:
                self.fail(
                    f"security groups need port security, but {where}: set port_security_enabled: true, or"
                    " give security_groups: []; nothing was changed"
                )
            if pairs:
                self.fail(
                    f"allowed address pairs need port security, but {where}: set port_security_enabled: true, or"
                    " give allowed_address_pairs: []; nothing was changed"
                )
            if port is not None and port.is_port_security_enabled:  # being switched off
                name = self.params["name"]
                if port.security_group_ids and group_ids is None:
                    self.fail(
                        f"port {name!r} has security groups ({', '.join(sorted(port.security_group_ids))}), which"
                        " Neutron keeps only with port security: to switch it off give security_groups: [] too;"
                        " nothing was changed"
                    )
                if port.allowed_address_pairs and pairs is None:
                    shown = ", ".join(p["ip_address"] for p in pairs_view(port.allowed_address_pairs))
                    self.fail(
                        f"port {name!r} has allowed address pairs ({shown}), which Neutron keeps only with port"
                        " security: to switch it off give allowed_address_pairs: [] too; nothing was changed"
                    )
        has_address = bool(fixed) if fixed is not None else (port is None or bool(port.fixed_ips))
        if group_ids and not has_address:
            self.fail("security groups need the port to have an IP address (fixed_ips is empty); nothing was changed")

    # ------------------------------------------------------------------ create
    def create(self, network, wanted):
        fixed, pairs, group_ids = wanted.fixed, wanted.pairs, wanted.group_ids
        api = self.conn.network
        name, params = self.params["name"], self.params
        attrs = {"name": name, "network_id": network.id}
        if params["description"] is not None:
            attrs["description"] = params["description"]
        if params["device_owner"] is not None:
            attrs["device_owner"] = params["device_owner"]
        if fixed is not None:
            attrs["fixed_ips"] = [{k: v for k, v in entry.items() if v} for entry in fixed]
        if pairs is not None:
            attrs["allowed_address_pairs"] = [
                {"ip_address": ip, "mac_address": mac} if mac else {"ip_address": ip} for ip, mac in pairs
            ]
        if params["port_security_enabled"] is not None:
            attrs["is_port_security_enabled"] = params["port_security_enabled"]
        if group_ids is not None:
            attrs["security_group_ids"] = group_ids
        if self.check_mode:
            after = self.planned(network, fixed, pairs, group_ids)
        else:
            created = self.call(api.create_port, recheck=lambda: self.lookup(network), **attrs)
            after = view(created)
        return {"changed": True, "port": after, "before": {}, "after": after}

    def planned(self, network, fixed, pairs, group_ids):
        """The port a create would make (check mode): what Neutron chooses is left empty."""
        params = self.params
        secured = params["port_security_enabled"]
        if secured is None:
            secured = network.is_port_security_enabled
        if group_ids is None:  # Neutron gives a port with port security and an address the default group
            group_ids = []
            if secured and fixed != []:
                default = self.find(
                    "security group",
                    self.conn.network.find_security_group,
                    "default",
                    required=False,
                    project_id=self.owner_id,
                )
                group_ids = [default.id] if default is not None else []
        return {
            "id": "",
            "name": params["name"],
            "network_id": network.id,
            "fixed_ips": fixed_view(fixed),
            "allowed_address_pairs": pairs_view({"ip_address": ip, "mac_address": mac} for ip, mac in pairs or []),
            "port_security_enabled": secured,
            "security_group_ids": sorted(group_ids),
            "mac_address": "",
            "device_id": "",
            "device_owner": params["device_owner"] or "",
            "status": "DOWN",
            "description": params["description"] or "",
        }

    # ------------------------------------------------------------------ update
    def update(self, network, port, wanted_now):
        fixed, names, pairs, group_ids = wanted_now.fixed, wanted_now.names, wanted_now.pairs, wanted_now.group_ids
        params = self.params
        before = view(port)
        bound = bool(port.device_id)
        attrs, simulated = {}, {}
        for option, attribute in (
            ("description", "description"),
            ("device_owner", "device_owner"),
            ("port_security_enabled", "is_port_security_enabled"),
        ):
            if params[option] is not None and params[option] != before[option]:
                attrs[attribute], simulated[option] = params[option], params[option]
        if "device_owner" in attrs and bound:
            self.fail(
                f"port {port.name or port.id!r} ({port.id}) is bound to {port_holder(self, port)} with device_owner"
                f" {before['device_owner']!r}, not {params['device_owner']!r}; the device owner of a bound port is"
                " its device's: leave device_owner out (or give it as it is); nothing was changed"
            )
        if fixed is not None:
            request = self.fixed_request(port, fixed)
            if request is not None:
                if bound:
                    self.fail(
                        f"port {port.name or port.id!r} ({port.id}) is bound to {port_holder(self, port)} and has"
                        f" fixed IPs {self.fixed_text(port.fixed_ips, names)}, not"
                        f" {self.fixed_text(fixed, names)}; fixed IPs are changed in place on unbound ports only (an"
                        " address moved under a running server breaks its network): change them on the server's"
                        " side, or give fixed_ips as the port has them; nothing was changed"
                    )
                self.check_free(network, port, request)
                attrs["fixed_ips"] = [{k: v for k, v in entry.items() if v} for entry in request]
                simulated["fixed_ips"] = fixed_view(request)
        if pairs is not None:
            wanted = {(ip, mac or port.mac_address) for ip, mac in pairs}
            if wanted != pair_keys(port.allowed_address_pairs or [], port.mac_address):
                attrs["allowed_address_pairs"] = [
                    {"ip_address": ip, "mac_address": mac} if mac else {"ip_address": ip} for ip, mac in pairs
                ]
                simulated["allowed_address_pairs"] = pairs_view(
                    {"ip_address": ip, "mac_address": mac} for ip, mac in wanted
                )
        if group_ids is not None and set(group_ids) != set(port.security_group_ids or []):
            attrs["security_group_ids"] = group_ids
            simulated["security_group_ids"] = sorted(group_ids)
        after = dict(before, **simulated)
        if attrs and not self.check_mode:
            after = view(self.call(self.conn.network.update_port, port.id, **attrs))
        return {"changed": bool(attrs), "port": after, "before": before, "after": after}

    @staticmethod
    def fixed_request(port, fixed):
        """The fixed_ips to PUT so the port has exactly ``fixed`` (its matching addresses kept,
        in the order asked), or None when it has them already."""
        remaining = [dict(ip) for ip in port.fixed_ips or []]
        chosen = [None] * len(fixed)
        # addresses first, so that an entry with only a subnet never takes an address asked for by name
        order = sorted(range(len(fixed)), key=lambda i: fixed[i]["ip_address"] is None)
        for index in order:
            entry = fixed[index]
            for ip in remaining:
                same_subnet = ip.get("subnet_id") == entry["subnet_id"]
                if same_subnet and entry["ip_address"] in (None, ip.get("ip_address")):
                    chosen[index] = {"subnet_id": ip.get("subnet_id"), "ip_address": ip.get("ip_address")}
                    remaining.remove(ip)
                    break
        if not remaining and all(chosen):
            return None
        return [found or dict(entry) for found, entry in zip(chosen, fixed, strict=True)]

    @staticmethod
    def fixed_text(entries, names):
        shown = [
            f"{e['ip_address']} ({names.get(e['subnet_id'], e['subnet_id'])})"
            if e.get("ip_address")
            else f"an address on {names.get(e['subnet_id'], e['subnet_id'])}"
            for e in entries
        ]
        return "[" + ", ".join(shown) + "]"

    # ------------------------------------------------------------------ absent
    def absent(self, network):
        if network is None and self.params["network"]:
            return {"changed": False}  # no network, no port on it
        port = self.lookup(network)
        if port is None:
            return {"changed": False}
        name = port.name or port.id
        if port.device_id:
            raise ModuleFailure(
                f"port {name!r} ({port.id}) is bound to {port_holder(self, port)}; deleting it would take the"
                " address away under it. This module never detaches a port: delete the server (or detach the"
                " port from it) first, then run again; nothing was changed"
            )
        for fip in self.call(lambda: list(self.conn.network.ips(port_id=port.id))):
            self.warn(
                f"floating IP {fip.floating_ip_address} is associated with port {name!r}; deleting the port"
                " disassociates it, and it stays allocated to the project (release it with os_floating_ip,"
                " state: absent)"
            )
        before = view(port)
        if not self.check_mode:
            self.call(self.conn.network.delete_port, port.id, ignore_missing=True)
        return {"changed": True, "before": before, "after": {}}


def main():
    PortModule()()


if __name__ == "__main__":
    main()
