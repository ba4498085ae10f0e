#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_floating_ip
short_description: The floating IP of one server or one port
description:
  - Makes sure a server - or a port given by O(port), such as the virtual IP port of a highly available
    load balancer, which no server is bound to - has a floating IP from an external network on one of
    its fixed addresses (O(state=present)), or has none (O(state=absent)).
  - "O(state=present): when a port of the server (on O(nat_destination), if given), or the port O(port),
    already has a floating IP from O(network) - the address O(floating_ip_address), when given, on
    O(fixed_address), when given - nothing changes. Otherwise O(floating_ip_address) is associated
    (allocated first when it does not exist yet), or a new address is allocated and associated in one
    call."
  - Allocation is retried safely - a create whose answer was lost is looked up (a floating IP on that
    port) before it is retried, so a server or port never ends up with two addresses.
  - With O(wait=true) (the default), O(state=present) waits until Neutron reports the floating IP
    C(ACTIVE) - the address is then routed to the port (the router's NAT is in place) - and, for a
    O(server), until Nova lists it among the server's addresses (what an inventory reads next); it fails
    after O(timeout) seconds with what it saw last. With O(wait=false) the task returns as soon as the
    address is associated (its status may still be C(DOWN)).
  - A floating IP that O(floating_ip_address) names but which is bound to another port fails the task;
    nothing is taken from another server or port.
  - When O(floating_ip_address) replaces another address of O(network) on the same fixed address, the
    old address is disassociated (and stays allocated to the project; a warning names it).
  - Neutron can only associate an address when the network of the server's port (or of O(port)) is
    attached to a router whose gateway is on O(network). When it is not, the task fails saying so (the
    tenant step of the deployment creates that router).
  - "O(state=absent): every floating IP from O(network) (from any network when O(network) is not given)
    on the server's ports, or on O(port) - or only O(floating_ip_address) - is released (deleted, given
    back to the pool) or, with O(release=false), only disassociated."
  - Check mode and C(--diff) (before/after of the address, its fixed address and port) supported.
version_added: 0.1.0
author: Monoscape developers
options:
  description:
    description:
      - Description of the floating IP (at most 255 characters). Set when the address is allocated or
        associated, and updated in place when an existing one differs. The Monoscape playbooks write
        C(monoscape_deployment=<deployment>) there, so that teardown finds the deployment's addresses
        in a project shared with others. Omitted means left alone.
    type: str
  fixed_address:
    description:
      - Which fixed IPv4 address of the server (or of O(port)) gets the floating IP, when it has several.
      - Default - the first IPv4 fixed address of the server's first port (on O(nat_destination) when
        given), in the order Nova lists the server's addresses; with O(port), the port's first IPv4 fixed
        address.
    type: str
  floating_ip_address:
    description:
      - A specific floating address to use. It is associated when it is allocated to the project and
        free; allocated from O(network) when it does not exist (Neutron's default policy lets only an
        admin choose the address of a new floating IP).
      - With O(state=absent) and neither O(server) nor O(port), the address to release (or disassociate)
        wherever it is.
    type: str
  nat_destination:
    description:
      - Name or id of the server's network whose port gets the address (the server must have a port on
        it). Default - any of the server's networks.
      - With O(port), the network the port is on - the port is then looked up by name on that network
        only. Default - any network of the project.
    type: str
  network:
    description:
      - Name or id of the external network the address comes from (for example C(public)).
      - Required with O(state=present). With O(state=absent) it limits what is removed to addresses
        from this network.
    type: str
  port:
    description:
      - Name or id of a port of the connection's project that gets the floating IP instead of a server's
        port, for example the virtual IP port C(<deployment>-lb-vip) (made with M(monoscape.paas.os_port)),
        whose address keepalived moves between two servers. The port needs no device (a virtual IP port is
        bound to none).
      - Two ports with the name (on O(nat_destination), when given) fail the task, naming their ids;
        nothing is taken at random.
      - Mutually exclusive with O(server). With O(state=absent), a port that does not exist has nothing
        to remove (not a failure).
    type: str
  release:
    description:
      - With O(state=absent), delete the floating IP (give the address back to the pool). With
        C(false) the address is only disassociated and stays allocated to the project, so it can be
        given to a server or port again with O(floating_ip_address).
    type: bool
    default: true
  server:
    description:
      - Name or id of the server.
      - O(state=present) needs O(server) or O(port); O(state=absent) needs O(server), O(port) or
        O(floating_ip_address).
      - With O(state=absent), a server that does not exist has nothing to remove (not a failure).
      - Mutually exclusive with O(port).
    type: str
  state:
    description:
      - C(present) gives the server (or port) a floating IP, C(absent) removes it.
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
  - Floating IPs are IPv4 only; O(fixed_address) must be an IPv4 address of the server or port.
  - Only the server's ports (or O(port)) are looked at; the router between their network and O(network)
    is not managed here.
"""

EXAMPLES = r"""
- name: The controller gets a public address (the SSH bastion of the deployment)
  monoscape.paas.os_floating_ip:
    cloud: monoscape
    server: acme-controller
    network: public
  register: controller_fip

- name: Its address
  ansible.builtin.debug:
    msg: "{{ controller_fip.floating_ip.floating_ip_address }}"

- name: Keep a known address across re-creations of the server (allocated once to the project)
  monoscape.paas.os_floating_ip:
    cloud: monoscape
    server: acme-controller
    network: public
    floating_ip_address: 203.0.113.25
    nat_destination: acme-net

- name: Take the address away but keep it allocated to the project
  monoscape.paas.os_floating_ip:
    cloud: monoscape
    server: acme-controller
    network: public
    state: absent
    release: false

- name: Give an address back to the pool, whichever server has it
  monoscape.paas.os_floating_ip:
    cloud: monoscape
    floating_ip_address: 203.0.113.25
    state: absent

- name: The load balancer's public address on its virtual IP port
  monoscape.paas.os_floating_ip:
    cloud: monoscape
    port: acme-lb-vip
    nat_destination: acme-net
    network: public
    description: monoscape_deployment=acme
  register: lb_fip

- name: Release the load balancer's public address
  monoscape.paas.os_floating_ip:
    cloud: monoscape
    port: acme-lb-vip
    network: public
    state: absent
"""

RETURN = r"""
floating_ip:
  description:
    - The floating IP of the server (or of O(port)) after the task (as it would be, in check mode; C(id)
      and, for a new address, C(floating_ip_address) are then empty).
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: Floating IP id.
      type: str
      sample: 7b1c3d6e-2f4a-4b8c-9d0e-1f2a3b4c5d6e
    description:
      description: The floating IP's description.
      type: str
      sample: monoscape_deployment=production
    floating_ip_address:
      description: The public address.
      type: str
      sample: 203.0.113.25
    fixed_ip_address:
      description: The fixed address (of the server's port, or of O(port)) it is associated with.
      type: str
      sample: 10.42.0.12
    port_id:
      description: The port it is associated with (the server's, or O(port)).
      type: str
      sample: 3f0c1a2b-4d5e-4f60-8a9b-0c1d2e3f4a5b
    floating_network_id:
      description: Id of the external network the address comes from.
      type: str
      sample: 9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d
    status:
      description: C(ACTIVE) when routed, C(DOWN) while not (yet).
      type: str
      sample: ACTIVE
    router_id:
      description: The router that does the address translation (empty until associated).
      type: str
      sample: 1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d
disassociated:
  description:
    - Floating addresses taken off the server (or port) and kept allocated to the project (O(state=absent)
      with O(release=false), or an address replaced by O(floating_ip_address)).
  returned: always
  type: list
  elements: str
  sample: []
port:
  description: The port that O(port) names (the one that has, or had, the floating IP).
  returned: when O(port) is given and the port exists
  type: dict
  contains:
    id:
      description: Port id.
      type: str
      sample: 5c4b3a29-1807-4f6e-9d5c-4b3a29180706
    name:
      description: Port name.
      type: str
      sample: acme-lb-vip
released:
  description: Floating addresses deleted (given back to the pool) with O(state=absent).
  returned: always
  type: list
  elements: str
  sample: [203.0.113.25]
server:
  description: The server.
  returned: when O(server) is given and the server exists
  type: dict
  contains:
    id:
      description: Server id.
      type: str
      sample: 0f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f
    name:
      description: Server name.
      type: str
      sample: acme-controller
"""

import ipaddress
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.neutron import is_id
from ansible_collections.monoscape.paas.plugins.module_utils.openstack import (
    ModuleFailure,
    OpenStackModule,
    check_text,
    error_details,
    names_hint,
    sdk_exc,
)

UNREACHABLE = "is not reachable from subnet"


def view(fip):
    """What --diff compares: the address, where it points, and its description."""
    if fip is None:
        return {}
    return {
        "description": getattr(fip, "description", None) or "",
        "floating_ip_address": fip.floating_ip_address,
        "fixed_ip_address": fip.fixed_ip_address,
        "port_id": fip.port_id,
    }


def public(fip):
    return {
        "id": fip.id,
        "description": getattr(fip, "description", None) or "",
        "floating_ip_address": fip.floating_ip_address,
        "fixed_ip_address": fip.fixed_ip_address,
        "port_id": fip.port_id,
        "floating_network_id": fip.floating_network_id,
        "status": fip.status,
        "router_id": getattr(fip, "router_id", None),
    }


def ipv4_addresses(port):
    found = []
    for entry in getattr(port, "fixed_ips", None) or []:
        address = entry.get("ip_address")
        try:
            if address and ipaddress.ip_address(address).version == 4:
                found.append(address)
        except ValueError:
            continue
    return found


def all_addresses(port):
    return [e.get("ip_address") for e in getattr(port, "fixed_ips", None) or [] if e.get("ip_address")]


def port_subject(port):
    """The port option's port in messages: "port 'acme-lb-vip'", or "port <id>" when it has no name."""
    return f"port {port.name!r}" if port.name else f"port {port.id}"


class FloatingIpModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "description": {"type": "str"},
        "fixed_address": {"type": "str"},
        "floating_ip_address": {"type": "str"},
        "nat_destination": {"type": "str"},
        "network": {"type": "str"},
        "port": {"type": "str"},
        "release": {"type": "bool", "default": True},
        "server": {"type": "str"},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
    }
    module_kwargs: ClassVar[dict] = {
        "mutually_exclusive": [("port", "server")],
        "required_if": [
            ("state", "present", ("network",)),
            ("state", "present", ("server", "port"), True),
            ("state", "absent", ("server", "port", "floating_ip_address"), True),
        ],
    }
    #: what gets the address, in messages: "server 'acme-controller'" or "port 'acme-lb-vip'"
    subject = ""

    # ------------------------------------------------------------------ inputs
    def check_inputs(self):
        if self.params["description"] is not None:
            problem = check_text("description", self.params["description"], allow_empty=True)
            if problem:
                self.fail(f"{problem}; nothing was changed")
        for option in ("fixed_address", "floating_ip_address"):
            value = self.params[option]
            if value is None:
                continue
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                self.fail(f"{option} {value!r} is not an IP address; nothing was changed")
            if address.version != 4:
                self.fail(f"{option} {value} is IPv6; floating IPs are IPv4 only; nothing was changed")

    def external_network(self):
        """The network of the network option (None when not given)."""
        name = self.params["network"]
        if not name:
            return None
        network = self.conn.network
        found = self.find(
            "network",
            network.find_network,
            name,
            listing=lambda: [n for n in network.networks() if getattr(n, "is_router_external", False)],
            hint="; floating IPs come from an external network (router:external), such as public",
        )
        if getattr(found, "is_router_external", None) is False:
            self.fail(
                f"network {name!r} is not an external network (router:external), so it has no floating IPs;"
                " give the external network, such as public"
            )
        return found

    def nat_network(self, required=True):
        """The network of the nat_destination option (None when not given, or not found and not required)."""
        wanted = self.params["nat_destination"]
        if not wanted:
            return None
        network = self.conn.network
        return self.find("network", network.find_network, wanted, listing=network.networks, required=required)

    def server_ports(self, server):
        """The server's ports (on nat_destination, when given), in the order of the server's addresses."""
        network = self.conn.network
        ports = self.call(lambda: list(network.ports(device_id=server.id)))
        if not ports:
            self.fail(f"{self.subject} has no port (no fixed address) to give a floating IP to")
        wanted = self.params["nat_destination"]
        if wanted:
            net = self.nat_network()
            on_net = [p for p in ports if p.network_id == net.id]
            if not on_net:
                nets = {p.network_id for p in ports}
                names = [n.name for n in self.call(lambda: list(network.networks())) if n.id in nets] or nets
                self.fail(
                    f"{self.subject} has no port on network {wanted!r} (nat_destination);"
                    f" its networks: {names_hint(names)}"
                )
            ports = on_net
        order = {}
        for entries in (getattr(server, "addresses", None) or {}).values():
            for entry in entries:
                order.setdefault(entry.get("addr"), len(order))
        return sorted(ports, key=lambda p: (min([order.get(a, len(order)) for a in all_addresses(p)] or [0]), p.id))

    def port_of_option(self, required=True):
        """The project's port named (or with the id) of the port option, on nat_destination when
        given; None when there is none and it is not required. Two with the name fail the task."""
        name = self.params["port"]
        network = self.conn.network
        query = {"project_id": self.conn.current_project_id}
        net = self.nat_network(required=required)
        if self.params["nat_destination"]:
            if net is None:
                return None  # no network, no port on it
            query["network_id"] = net.id
        where = f" on network {self.params['nat_destination']!r}" if net is not None else " in the project"
        found = [p for p in self.call(lambda: list(network.ports(name=name, **query))) if p.name == name]
        if not found and is_id(name):
            found = self.call(lambda: list(network.ports(id=name, **query)))
        if len(found) > 1:
            which = "" if net is not None else " (give nat_destination to say on which network)"
            self.fail(
                f"{len(found)} ports are named {name!r}{where}: {', '.join(sorted(p.id for p in found))}{which};"
                " delete the extra ones (by id), or give the id of the one to use as port; nothing was changed"
            )
        if not found:
            if not required:
                return None
            known = names_hint(p.name for p in self.call(lambda: list(network.ports(**query))))
            self.fail(f"unknown port {name!r}{where}; known ports: {known}")
        return found[0]

    def target(self, ports):
        """(port, fixed address) that gets the floating IP."""
        fixed = self.params["fixed_address"]
        if fixed:
            for port in ports:
                if fixed in all_addresses(port):
                    return port, fixed
            where = f" on network {self.params['nat_destination']!r}" if self.params["nat_destination"] else ""
            known = [a for p in ports for a in ipv4_addresses(p)]
            self.fail(f"{self.subject} has no fixed address {fixed}{where}; its IPv4 addresses: {names_hint(known)}")
        for port in ports:
            addresses = ipv4_addresses(port)
            if addresses:
                return port, addresses[0]
        self.fail(f"{self.subject} has no IPv4 fixed address; floating IPs are IPv4 only")
        return None  # pragma: no cover - fail raises

    # ------------------------------------------------------------------ lookups
    def ips_on(self, ports, ext):
        """Floating IPs on these ports (from ``ext``, when given), in port order."""
        found = []
        for port in ports:
            query = {"port_id": port.id}
            if ext is not None:
                query["floating_network_id"] = ext.id
            found.extend(self.call(lambda q=query: list(self.conn.network.ips(**q))))
        return found

    def ip_by_address(self, address):
        found = self.call(lambda: list(self.conn.network.ips(floating_ip_address=address)))
        found = [f for f in found if f.floating_ip_address == address]
        return found[0] if found else None

    # ------------------------------------------------------------------ main
    def run(self):
        self.check_inputs()
        if self.params["state"] == "absent":
            return self.absent()
        return self.present()

    def present(self):
        wanted_address, wanted_fixed = self.params["floating_ip_address"], self.params["fixed_address"]
        ext = self.external_network()
        result = {"released": [], "disassociated": []}
        if self.params["port"]:
            server = None
            port = self.port_of_option()
            self.subject = port_subject(port)
            owner = getattr(port, "device_owner", None) or ""
            if owner.startswith("network:"):  # a router's, DHCP's or floating IP's own port
                self.fail(
                    f"{self.subject} ({port.id}) is Neutron's own ({owner}) and cannot have a floating IP; give a"
                    " server's port or an unbound one such as a virtual IP's; nothing was changed"
                )
            ports = [port]
            result["port"] = {"id": port.id, "name": port.name}
        else:
            compute = self.conn.compute
            server = self.find("server", compute.find_server, self.params["server"], listing=compute.servers)
            self.subject = f"server {server.name!r}"
            ports = self.server_ports(server)
            result["server"] = {"id": server.id, "name": server.name}

        existing = [
            f
            for f in self.ips_on(ports, ext)
            if (wanted_fixed is None or f.fixed_ip_address == wanted_fixed)
            and (wanted_address is None or f.floating_ip_address == wanted_address)
        ]
        if existing:
            fip = self.settle(existing[0], server)
            before = view(fip)
            changed = self.describe(fip)
            if changed and not self.check_mode:
                fip = self.call(self.conn.network.get_ip, fip.id)
            after = dict(before, description=self.params["description"]) if changed else before
            shown = dict(public(fip), description=after["description"])
            return dict(result, changed=changed, floating_ip=shown, before=before, after=after)

        port, fixed = self.target(ports)
        given = self.ip_by_address(wanted_address) if wanted_address else None
        if given is not None:
            self.check_reusable(given, ext, port)
        # another address of this network on the same fixed address: Neutron allows one per network
        replaced = [f for f in self.ips_on([port], ext) if f.fixed_ip_address == fixed]
        # the diff: the address the fixed address had, else the reused address as it was (free)
        before = view(replaced[0]) if replaced else view(given)
        if self.check_mode:
            description = self.params["description"]
            if description is None:
                description = getattr(given, "description", None) or "" if given is not None else ""
            after = {
                "description": description,
                "floating_ip_address": wanted_address or "",
                "fixed_ip_address": fixed,
                "port_id": port.id,
            }
            simulated = {
                "id": given.id if given is not None else "",
                "floating_network_id": ext.id,
                "status": "DOWN",
                "router_id": "",
                **after,
            }
            result["disassociated"] = [f.floating_ip_address for f in replaced]
            return dict(result, changed=True, floating_ip=simulated, before=before, after=after)

        for old in replaced:
            self.disassociate(old)
            result["disassociated"].append(old.floating_ip_address)
            self.warn(
                f"floating IP {old.floating_ip_address} was taken off {self.subject} for {wanted_address};"
                f" it stays allocated to the project (release it with state: absent,"
                f" floating_ip_address: {old.floating_ip_address})"
            )
        if given is not None:
            fip = self.associate(given, port, fixed)
        else:
            fip = self.allocate(ext, port, fixed, wanted_address)
        fip = self.settle(fip, server)
        return dict(result, changed=True, floating_ip=public(fip), before=before, after=view(fip))

    def describe(self, fip):
        """Set the wanted description on an existing floating IP; whether it changed (or would)."""
        wanted = self.params["description"]
        if wanted is None or (getattr(fip, "description", None) or "") == wanted:
            return False
        if not self.check_mode:
            self.call(self.conn.network.update_ip, fip.id, description=wanted)
        return True

    def check_reusable(self, fip, ext, port):
        address = fip.floating_ip_address
        if fip.floating_network_id != ext.id:
            self.fail(
                f"floating IP {address} comes from another network ({fip.floating_network_id}), not from"
                f" {self.params['network']!r}; nothing was changed"
            )
        if fip.port_id and fip.port_id != port.id:
            owner = self.port_owner(fip.port_id)
            self.fail(
                f"floating IP {address} is bound to another port ({fip.port_id}{owner}, fixed address"
                f" {fip.fixed_ip_address}); take it off there first (state: absent with release: false) or"
                " choose another address; nothing was changed"
            )

    def port_owner(self, port_id):
        """', server NAME' of a port, when it can be told (best effort, only for messages)."""
        try:
            port = self.conn.network.get_port(port_id)
            server = self.conn.compute.find_server(port.device_id, ignore_missing=True) if port.device_id else None
        except Exception:  # the hint is optional
            return ""
        return f", server {server.name!r}" if server is not None else ""

    def unreachable(self, exc):
        """A ModuleFailure for Neutron's 'External network ... is not reachable from subnet ...', else None."""
        if UNREACHABLE not in error_details(exc):
            return None
        nat = self.params["nat_destination"]
        which = f"network {nat!r}" if nat else "network"
        kind = "port" if self.params["port"] else "server"
        return ModuleFailure(
            f"{self.subject} cannot get a floating IP from {self.params['network']!r}: the"
            f" {kind}'s {which} needs a router with a gateway on {self.params['network']!r} and an interface on"
            f" the {kind}'s subnet (the tenant step creates it); Neutron said: {error_details(exc)}."
            " Nothing was changed"
        )

    def allocate(self, ext, port, fixed, address):
        """One create call that allocates and associates; a lost answer is found on the port."""
        network = self.conn.network
        attrs = {"floating_network_id": ext.id, "port_id": port.id, "fixed_ip_address": fixed}
        if self.params["description"] is not None:
            attrs["description"] = self.params["description"]
        if address:
            attrs["floating_ip_address"] = address

        def recheck():
            found = [
                f
                for f in network.ips(port_id=port.id, floating_network_id=ext.id)
                if f.fixed_ip_address == fixed and (not address or f.floating_ip_address == address)
            ]
            return found[0] if found else None

        try:
            return self.call(network.create_ip, recheck=recheck, **attrs)
        except sdk_exc.NotFoundException as exc:
            raise self.unreachable(exc) or exc from None
        except sdk_exc.ForbiddenException as exc:
            if not address:
                raise
            raise ModuleFailure(
                f"not allowed to allocate the chosen address {address} ({error_details(exc)}): Neutron's default"
                " policy lets only an admin choose a new floating IP's address. Leave floating_ip_address out"
                " to get any address, or have an admin allocate this one to the project first"
            ) from None

    def associate(self, fip, port, fixed):
        attrs = {"port_id": port.id, "fixed_ip_address": fixed}
        if self.params["description"] is not None:
            attrs["description"] = self.params["description"]
        try:
            return self.call(self.conn.network.update_ip, fip.id, **attrs)
        except sdk_exc.NotFoundException as exc:
            raise self.unreachable(exc) or exc from None

    def disassociate(self, fip):
        return self.call(self.conn.network.update_ip, fip.id, port_id=None)

    def settle(self, fip, server):
        """With wait, the floating IP once Neutron reports it ACTIVE (routed) and, for a
        server (None with the port option), Nova lists it among the server's addresses
        (its network cache is updated from Neutron's events a moment later: an inventory
        read in between would not see it)."""
        if not self.params["wait"] or self.check_mode:
            return fip
        network = self.conn.network
        if fip.status != "ACTIVE":
            fip = self.wait_for(
                lambda: network.get_ip(fip.id),
                ready=lambda f: f.status == "ACTIVE",
                failed=lambda f: "Neutron reports status ERROR" if f.status == "ERROR" else None,
                what=(
                    f"floating IP {fip.floating_ip_address} of {self.subject} to become ACTIVE"
                    " (routed by the router's NAT)"
                ),
            )
        if server is None:
            return fip
        address = fip.floating_ip_address
        self.wait_for(
            lambda: self.conn.compute.get_server(server.id),
            ready=lambda s: any(
                entry.get("addr") == address for entries in (s.addresses or {}).values() for entry in entries
            ),
            what=f"Nova to list floating IP {address} among the addresses of {self.subject}",
        )
        return fip

    # ------------------------------------------------------------------ absent
    def absent(self):
        ext = self.external_network()
        result = {"released": [], "disassociated": []}
        fips = self.removable(ext, result)
        release = self.params["release"]
        todo = [f for f in fips if release or f.port_id]
        if not todo:
            return dict(result, changed=False)
        before = {"floating_ips": [view(f) for f in todo]}
        after = {"floating_ips": [] if release else [dict(view(f), fixed_ip_address=None, port_id=None) for f in todo]}
        for fip in todo:
            if not self.check_mode:
                if release:
                    self.call(self.conn.network.delete_ip, fip.id, ignore_missing=True)
                else:
                    self.disassociate(fip)
            result["released" if release else "disassociated"].append(fip.floating_ip_address)
        return dict(result, changed=True, before=before, after=after)

    def removable(self, ext, result):
        """The floating IPs (from ``ext``, when given) that state=absent removes: those on the port
        option's port, or on the server's ports (on nat_destination, when given) - only
        floating_ip_address, when given - or floating_ip_address wherever it is. Sets the
        result's port or server when it exists."""
        address = self.params["floating_ip_address"]
        if self.params["port"]:
            port = self.port_of_option(required=False)
            if port is None:
                return []
            result["port"] = {"id": port.id, "name": port.name}
            ports = [port]
        elif self.params["server"]:
            compute = self.conn.compute
            server = self.find("server", compute.find_server, self.params["server"], required=False)
            if server is None:
                return []
            result["server"] = {"id": server.id, "name": server.name}
            ports = self.call(lambda: list(self.conn.network.ports(device_id=server.id)))
            if self.params["nat_destination"]:
                net = self.nat_network(required=False)
                ports = [p for p in ports if net is not None and p.network_id == net.id]
        else:
            fip = self.ip_by_address(address)
            return [fip] if fip is not None and (ext is None or fip.floating_network_id == ext.id) else []
        return [f for f in self.ips_on(ports, ext) if not address or f.floating_ip_address == address]


def main():
    FloatingIpModule()()


if __name__ == "__main__":
    main()
