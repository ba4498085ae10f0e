"""The lab cloud's network, as strict as a production cloud's.

What Neutron's L2 agent, firewall driver and L3 agent do on a real cloud, done
here for instances that are podman containers on this one machine:

* L2: one Linux bridge per tenant network (`mslb-<network id>`), all of them in
  one network namespace, the fabric (`mslab-fabric`), never in the host's own
  stack: the host has no address on a tenant network and no route into one, so
  the operator's view is that of a machine outside the cloud. Each instance has
  its own namespace (`mslab-vm-<instance uuid>`) holding `eth<n>` with the
  port's MAC and fixed address; the other end, `tap<port id>`, sits on the
  bridge (the compute driver plugs it, as os-vif does).
* security groups, enforced on every port (nftables in the fabric): a `bridge`
  table marks each frame with its ingress and egress port and drops spoofed
  MAC/IP/ARP sources; an `inet` table (bridged IPv4 reaches it through
  br_netfilter, with conntrack) applies the groups' egress rules of the sending
  port and ingress rules of the receiving one: protocol, port range, remote IP
  prefix, remote group (its members' addresses), the default group included;
  `port_security_enabled: false` and `allowed_address_pairs` honoured.
  Established connections are re-checked in their original direction, so a
  removed rule cuts them too. Unknown ports are isolated; IPv6 is dropped.
* L3: one namespace per router (`mslab-r-<router id>`) with a leg on each of
  its subnets (`qr-`, the gateway address) and one on the external network
  (`qg-`): source NAT of the subnets behind it, floating IPs as DNAT/SNAT, and
  nothing routed from the outside to a fixed address.
* the external network exists on the host: a bridge `mslx-<network id>` holding
  the external subnet's gateway address (203.0.113.1 in the lab), so the host
  is a machine on the external network; traffic from it to the rest of the
  world is masqueraded (apt works on instances behind a router, and only there).

The agent (`python -m monoscape_labnet agent --config FILE`, the lab service
`lab-network`) polls the Neutron database (a cheap digest twice a second, the
whole model when it changed, and every `resync` seconds anyway), renders the
wanted state and applies what differs; it marks floating IPs ACTIVE once they
route, as an L3 agent reports them. Rendering is pure (model -> text) and
unit-tested; applying uses `ip`, `nft` and `sysctl`.

Standard library only (PyMySQL when reading the database), so labctl (Debian's
python3) and the lab venv (the compute driver, the agent) share this file: the
venv gets a copy named monoscape_labnet.py.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

FABRIC_NS = "mslab-fabric"
VM_NS_PREFIX = "mslab-vm-"
ROUTER_NS_PREFIX = "mslab-r-"
NETNS_DIR = pathlib.Path("/run/netns")
TABLE = "monoscape_lab"
ROUTE_PROTO = "242"  # marks the host routes the lab adds (ip route ... proto 242)
LEAK_GUARD_METRIC = "4242"
MARK_IN = 0x0000FFFF
MARK_OUT = 0xFFFF0000
COMPUTE_OWNER = "compute:"
ROUTER_INTERFACE = "network:router_interface"
ROUTER_GATEWAY = "network:router_gateway"
FLOATINGIP_OWNER = "network:floatingip"
PORTED = {"tcp", "udp", "sctp", "udplite", "dccp"}
PROTOCOL_NUMBERS = {"1": "icmp", "6": "tcp", "17": "udp", "132": "sctp", "58": "ipv6-icmp", "icmpv6": "ipv6-icmp"}


# ---------------------------------------------------------------- names
def bridge_name(network_id):
    return f"mslb-{network_id[:10]}"


def ext_bridge_name(network_id):
    return f"mslx-{network_id[:10]}"


def tap_name(port_id):
    return f"tap{port_id[:11]}"


def qr_name(port_id):
    return f"qr-{port_id[:11]}"


def qg_name(port_id):
    return f"qg-{port_id[:11]}"


def ext_peer_name(port_id):
    """The host end of a router's gateway leg, on the external bridge."""
    return f"mslg{port_id[:11]}"


def vm_ns(instance_uuid):
    return f"{VM_NS_PREFIX}{instance_uuid}"


def router_ns(router_id):
    return f"{ROUTER_NS_PREFIX}{router_id}"


# ---------------------------------------------------------------- model
@dataclasses.dataclass
class Subnet:
    id: str
    network_id: str
    cidr: str
    gateway_ip: str | None
    ip_version: int


@dataclasses.dataclass
class Network:
    id: str
    mtu: int
    external: bool
    admin_up: bool = True
    subnets: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Port:
    id: str
    network_id: str
    mac: str
    device_owner: str
    device_id: str
    host: str = ""
    admin_up: bool = True
    port_security: bool = True
    fixed_ips: list = dataclasses.field(default_factory=list)  # [(ip, subnet_id)]
    security_groups: list = dataclasses.field(default_factory=list)
    allowed_pairs: list = dataclasses.field(default_factory=list)  # [(mac or None, ip or cidr)]

    @property
    def ipv4(self):
        return [ip for ip, _ in self.fixed_ips if ":" not in ip]


@dataclasses.dataclass
class Rule:
    id: str
    direction: str
    ethertype: str
    protocol: str | None
    port_min: int | None
    port_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None


@dataclasses.dataclass
class Router:
    id: str
    admin_up: bool
    gw_port_id: str | None
    enable_snat: bool
    interface_port_ids: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FloatingIP:
    id: str
    address: str
    network_id: str
    port_id: str | None
    fixed_ip: str | None
    router_id: str | None
    status: str = "DOWN"


@dataclasses.dataclass
class Model:
    networks: dict = dataclasses.field(default_factory=dict)
    subnets: dict = dataclasses.field(default_factory=dict)
    ports: dict = dataclasses.field(default_factory=dict)
    groups: dict = dataclasses.field(default_factory=dict)  # sg id -> [Rule]
    routers: dict = dataclasses.field(default_factory=dict)
    floating_ips: dict = dataclasses.field(default_factory=dict)

    def members(self, group_id):
        """IPv4 addresses of the ports in a security group (fixed and allowed pairs)."""
        found = set()
        for port in self.ports.values():
            if group_id in port.security_groups:
                found.update(port.ipv4)
                found.update(ip for _, ip in port.allowed_pairs if ":" not in ip)
        return sorted(found)

    def filtered_ports(self, host):
        """Instance ports on `host` whose traffic the fabric filters (sorted)."""
        return [
            p
            for p in sorted(self.ports.values(), key=lambda p: p.id)
            if p.device_owner.startswith(COMPUTE_OWNER) and p.host == host
        ]

    def router_ports(self):
        return [p for p in sorted(self.ports.values(), key=lambda p: p.id) if p.device_owner == ROUTER_INTERFACE]


# ---------------------------------------------------------------- reading Neutron's database
# a change of any Neutron resource changes one of these (creates: count and max id;
# updates: revision numbers; port bindings have no revision of their own)
DIGEST_SQL = (
    "SELECT (SELECT CONCAT(COUNT(*), '/', COALESCE(MAX(id), 0), '/', COALESCE(SUM(revision_number), 0))"
    " FROM standardattributes),"
    " (SELECT CONCAT(COUNT(*), '/', COALESCE(SUM(CRC32(CONCAT(port_id, host, status))), 0)) FROM ml2_port_bindings)"
)


def _read_networks(model, rows):
    external = {r[0] for r in rows("SELECT network_id FROM externalnetworks")}
    for net_id, mtu, admin_up in rows("SELECT id, mtu, admin_state_up FROM networks"):
        model.networks[net_id] = Network(net_id, int(mtu or 1500), net_id in external, bool(admin_up))
    for sub_id, net_id, cidr, gateway, version in rows(
        "SELECT id, network_id, cidr, gateway_ip, ip_version FROM subnets"
    ):
        subnet = Subnet(sub_id, net_id, cidr, gateway or None, int(version))
        model.subnets[sub_id] = subnet
        if net_id in model.networks:
            model.networks[net_id].subnets.append(subnet)


def _read_ports(model, rows):
    net_security = dict(rows("SELECT network_id, port_security_enabled FROM networksecuritybindings"))
    for port_id, net_id, mac, owner, device, admin_up in rows(
        "SELECT id, network_id, mac_address, device_owner, device_id, admin_state_up FROM ports"
    ):
        model.ports[port_id] = Port(
            port_id,
            net_id,
            mac,
            owner or "",
            device or "",
            admin_up=bool(admin_up),
            port_security=bool(net_security.get(net_id, 1)),
        )
    ports = model.ports
    details = (
        ("SELECT port_id, host FROM ml2_port_bindings WHERE status = 'ACTIVE'", "host"),
        ("SELECT port_id, port_security_enabled FROM portsecuritybindings", "port_security"),
        ("SELECT port_id, ip_address, subnet_id FROM ipallocations ORDER BY ip_address", "fixed_ips"),
        (
            "SELECT port_id, security_group_id FROM securitygroupportbindings ORDER BY security_group_id",
            "security_groups",
        ),
        ("SELECT port_id, mac_address, ip_address FROM allowedaddresspairs ORDER BY ip_address", "allowed_pairs"),
    )
    for sql, field in details:
        for port_id, *values in rows(sql):
            port = ports.get(port_id)
            if port is None:
                continue
            if field == "host":
                port.host = values[0] or ""
            elif field == "port_security":
                port.port_security = bool(values[0])
            elif field == "security_groups":
                port.security_groups.append(values[0])
            elif field == "allowed_pairs":
                port.allowed_pairs.append((values[0] or None, values[1]))
            else:
                port.fixed_ips.append(tuple(values))


def _read_security_groups(model, rows):
    for (group_id,) in rows("SELECT id FROM securitygroups"):
        model.groups[group_id] = []
    for rule in rows(
        "SELECT id, security_group_id, direction, ethertype, protocol, port_range_min, port_range_max,"
        " remote_ip_prefix, remote_group_id FROM securitygrouprules ORDER BY id"
    ):
        rid, group_id, direction, ethertype, protocol, pmin, pmax, prefix, remote = rule
        model.groups.setdefault(group_id, []).append(
            Rule(rid, direction, ethertype, protocol, pmin, pmax, prefix or None, remote or None)
        )


def _read_routers(model, rows):
    for rid, admin_up, gw_port, snat in rows("SELECT id, admin_state_up, gw_port_id, enable_snat FROM routers"):
        model.routers[rid] = Router(rid, bool(admin_up), gw_port or None, bool(snat))
    for rid, port_id in rows(
        f"SELECT router_id, port_id FROM routerports WHERE port_type = '{ROUTER_INTERFACE}' ORDER BY port_id"  # noqa: S608 - a constant
    ):
        if rid in model.routers:
            model.routers[rid].interface_port_ids.append(port_id)
    for fid, address, net_id, port_id, fixed_ip, rid, status in rows(
        "SELECT id, floating_ip_address, floating_network_id, fixed_port_id, fixed_ip_address, router_id, status"
        " FROM floatingips ORDER BY floating_ip_address"
    ):
        model.floating_ips[fid] = FloatingIP(
            fid, address, net_id, port_id or None, fixed_ip or None, rid or None, status
        )


def read_model(cursor):
    """The Model from Neutron's tables (a PyMySQL cursor on the neutron database)."""
    model = Model()

    def rows(sql):
        cursor.execute(sql)
        return cursor.fetchall()

    _read_networks(model, rows)
    _read_ports(model, rows)
    _read_security_groups(model, rows)
    _read_routers(model, rows)
    return model


# ---------------------------------------------------------------- rendering: the fabric's filter
def _port_ids(model, host):
    """A stable small number per filtered port (the packet mark), from 1."""
    return {port.id: index for index, port in enumerate(model.filtered_ports(host), start=1)}


def _set_literal(values):
    return "{ " + ", ".join(values) + " }"


def _remote_match(rule, model):
    """The remote side of a rule (source for ingress, destination for egress):
    [] for any address, None when it can match no IPv4 address."""
    side = "saddr" if rule.direction == "ingress" else "daddr"
    if rule.remote_group_id:
        members = model.members(rule.remote_group_id)
        return [f"ip {side} {_set_literal(members)}"] if members else None
    if rule.remote_ip_prefix:
        network = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        if network.version != 4:
            return None
        return [f"ip {side} {network}"] if network.prefixlen else []
    return []


def _protocol_match(rule):
    """The protocol and port (ICMP type/code) part: [] for any, None for IPv6-only."""
    protocol = None if rule.protocol in (None, "", "any") else str(rule.protocol).lower()
    protocol = PROTOCOL_NUMBERS.get(protocol, protocol)
    if protocol is None:
        return []
    if protocol == "ipv6-icmp":
        return None
    parts = [f"meta l4proto {protocol}"]
    if protocol in PORTED and rule.port_min is not None:
        high = rule.port_max if rule.port_max is not None else rule.port_min
        parts.append(f"th dport {rule.port_min}" if high == rule.port_min else f"th dport {rule.port_min}-{high}")
    elif protocol == "icmp" and rule.port_min is not None:
        parts.append(f"icmp type {rule.port_min}")
        if rule.port_max is not None:
            parts.append(f"icmp code {rule.port_max}")
    return parts


def _rule_match(rule, model):
    """The nft match of one security-group rule (IPv4), or None when it never
    matches IPv4 traffic."""
    if (rule.ethertype or "IPv4") != "IPv4":
        return None
    remote, protocol = _remote_match(rule, model), _protocol_match(rule)
    if remote is None or protocol is None:
        return None
    parts = remote + protocol
    return " ".join(parts) if parts else "meta nfproto ipv4"


def _port_rules(port, model, direction):
    matches = []
    for group_id in port.security_groups:
        for rule in model.groups.get(group_id, []):
            if rule.direction == direction:
                match = _rule_match(rule, model)
                if match is not None and match not in matches:
                    matches.append(match)
    return matches


def _allowed_sources(port):
    ips = list(port.ipv4) + [ip for _, ip in port.allowed_pairs if ":" not in ip]
    macs = [port.mac] + [mac for mac, ip in port.allowed_pairs if mac and mac != port.mac]
    return sorted(set(ips)), list(dict.fromkeys(m.lower() for m in macs))


def _chain(name, body):
    return [f"  chain {name} {{", *(f"    {line}" for line in body), "  }"]


def _from_port(port, number):
    """Bridge chain of the frames a port sends: anti-spoofing, then the port's mark."""
    if not port.admin_up:
        return ["drop"]
    if not port.port_security:
        return ["accept"]
    ips, macs = _allowed_sources(port)
    body = [f"ether saddr != {_set_literal(macs)} drop"]
    if ips:
        body += [
            f"ether type arp arp saddr ip != {_set_literal(ips)} drop",
            f"ether type ip ip saddr != {_set_literal(ips)} drop",
        ]
    else:
        body.append("ether type { arp, ip } drop")
    return [*body, "ether type ip6 drop", f"meta mark set {number:#x} accept"]


def _to_port(port, number):
    """Bridge verdict (or chain) of the frames sent to a port: its mark."""
    if not port.admin_up:
        return "drop", None
    if not port.port_security:
        return "accept", None
    return None, ["ether type ip6 drop", f"meta mark set meta mark or {number << 16:#x} accept"]


def _bridge_table(model, host, ids):
    """Marks every frame with its ingress (low 16 bits) and egress (high) port;
    anti-spoofing; ports the agent does not know pass nothing."""
    ports = {p.id: p for p in model.filtered_ports(host)}
    chains, port_in, port_out = [], [], []
    for port_id, number in ids.items():
        port, short, tap = ports[port_id], port_id[:11], tap_name(port_id)
        chains += _chain(f"from_{short}", _from_port(port, number))
        port_in.append(f'"{tap}" : jump from_{short}')
        verdict, body = _to_port(port, number)
        if body is None:
            port_out.append(f'"{tap}" : {verdict}')
        else:
            chains += _chain(f"to_{short}", body)
            port_out.append(f'"{tap}" : jump to_{short}')
    for port in model.router_ports():
        port_in.append(f'"{tap_name(port.id)}" : accept')
        port_out.append(f'"{tap_name(port.id)}" : accept')
    prerouting = ["type filter hook prerouting priority -300; policy accept;", "meta mark set 0x0"]
    forward = ["type filter hook forward priority -10; policy accept;"]
    if port_in:
        prerouting.append(f"iifname vmap {_set_literal(port_in)}")
        forward.append(f"oifname vmap {_set_literal(port_out)}")
    prerouting.append('iifname "tap*" drop')
    forward.append('oifname "tap*" drop')
    return [
        f"table bridge {TABLE} {{",
        *chains,
        *_chain("prerouting", prerouting),
        *_chain("forward", forward),
        "}",
    ]


def _inet_table(model, host, ids):
    """The security groups (bridged IPv4 through br_netfilter, with conntrack):
    egress rules of the sending port return to let the receiving port's ingress
    rules decide. Replies pass; a connection's original direction is checked on
    every packet, so a rule removed cuts what it allowed."""
    ports = {p.id: p for p in model.filtered_ports(host)}
    chains, egress, ingress = [], [], []
    for port_id, number in ids.items():
        port, short = ports[port_id], port_id[:11]
        if not port.port_security or not port.admin_up:
            continue
        chains += _chain(f"egress_{short}", [*(f"{m} return" for m in _port_rules(port, model, "egress")), "drop"])
        chains += _chain(f"ingress_{short}", [*(f"{m} accept" for m in _port_rules(port, model, "ingress")), "drop"])
        egress.append(f"{number:#x} : jump egress_{short}")
        ingress.append(f"{number << 16:#x} : jump ingress_{short}")
    forward = [
        "type filter hook forward priority 0; policy accept;",
        "meta nfproto ipv6 meta mark != 0x0 drop",
        "ct state invalid drop",
        "ct state related accept",
        "ct state established ct direction reply accept",
    ]
    if egress:
        forward.append(f"meta mark and {MARK_IN:#x} vmap {_set_literal(egress)}")
        forward.append(f"meta mark and {MARK_OUT:#x} vmap {_set_literal(ingress)}")
    return [f"table inet {TABLE} {{", *chains, *_chain("forward", forward), "}"]


def render_fabric(model, host):
    """nft script (one atomic transaction) of the fabric namespace."""
    ids = _port_ids(model, host)
    lines = [
        f"table bridge {TABLE}",
        f"delete table bridge {TABLE}",
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        *_bridge_table(model, host, ids),
        *_inet_table(model, host, ids),
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- rendering: routers
@dataclasses.dataclass
class RouterPlan:
    """What one router namespace holds."""

    router_id: str
    gateway: tuple | None  # (qg ifname, host peer ifname, external bridge, mac, "ip/len", default gw)
    interfaces: list  # [(qr ifname, fabric tap, bridge, mac, "ip/len", mtu)]
    floating: list  # [(floating ip, fixed ip)]
    snat: str | None  # the gateway address inside SNAT goes out as
    inside: list  # CIDRs of the subnets behind the router


def plan_router(model, router):
    interfaces = []
    inside = []
    for port_id in router.interface_port_ids:
        port = model.ports.get(port_id)
        if port is None:
            continue
        network = model.networks.get(port.network_id)
        for ip, subnet_id in port.fixed_ips:
            subnet = model.subnets.get(subnet_id)
            if subnet is None or subnet.ip_version != 4:
                continue
            prefix = ipaddress.ip_network(subnet.cidr).prefixlen
            interfaces.append(
                (
                    qr_name(port_id),
                    tap_name(port_id),
                    bridge_name(port.network_id),
                    port.mac,
                    f"{ip}/{prefix}",
                    network.mtu if network else 1500,
                )
            )
            inside.append(subnet.cidr)
    gateway = None
    snat = None
    gw_port = model.ports.get(router.gw_port_id) if router.gw_port_id else None
    if gw_port is not None:
        for ip, subnet_id in gw_port.fixed_ips:
            subnet = model.subnets.get(subnet_id)
            if subnet is None or subnet.ip_version != 4:
                continue
            prefix = ipaddress.ip_network(subnet.cidr).prefixlen
            gateway = (
                qg_name(gw_port.id),
                ext_peer_name(gw_port.id),
                ext_bridge_name(gw_port.network_id),
                gw_port.mac,
                f"{ip}/{prefix}",
                subnet.gateway_ip,
            )
            snat = ip if router.enable_snat else None
            break
    floating = []
    if gateway is not None:
        for fip in sorted(model.floating_ips.values(), key=lambda f: f.address):
            if fip.router_id == router.id and fip.port_id and fip.fixed_ip and fip.port_id in model.ports:
                floating.append((fip.address, fip.fixed_ip))
    return RouterPlan(router.id, gateway, sorted(interfaces), floating, snat, sorted(set(inside)))


def render_router(plan):
    """nft script (atomic) of a router namespace: NAT and the external filter."""
    lines = [f"table ip {TABLE}", f"delete table ip {TABLE}", f"table ip {TABLE} {{"]
    qg = plan.gateway[0] if plan.gateway else None
    lines.append("  chain prerouting {")
    lines.append("    type nat hook prerouting priority dstnat; policy accept;")
    lines.extend(f"    ip daddr {fip} dnat to {fixed}" for fip, fixed in plan.floating)
    lines.append("  }")
    lines.append("  chain output {")
    lines.append("    type nat hook output priority -100; policy accept;")
    lines.extend(f"    ip daddr {fip} dnat to {fixed}" for fip, fixed in plan.floating)
    lines.append("  }")
    lines.append("  chain postrouting {")
    lines.append("    type nat hook postrouting priority srcnat; policy accept;")
    if qg:
        lines.extend(f'    oifname "{qg}" ip saddr {fixed} snat to {fip}' for fip, fixed in plan.floating)
        if plan.snat and plan.inside:
            lines.append(f'    oifname "{qg}" ip saddr {_set_literal(plan.inside)} snat to {plan.snat}')
    # an instance reaching another one's floating IP: the answer must come back through here
    lines.append('    iifname "qr-*" oifname "qr-*" ct status dnat masquerade')
    lines.append("  }")
    lines.append("  chain forward {")
    lines.append("    type filter hook forward priority 0; policy accept;")
    if qg:
        lines.append(f'    iifname "{qg}" ct status dnat accept')
        lines.append(f'    iifname "{qg}" ct state established,related accept')
        lines.append(f'    iifname "{qg}" drop')
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- rendering: the host
def external_bridges(model):
    """{bridge: ("gateway/len", cidr, mtu)} of the external networks."""
    found = {}
    for network in sorted(model.networks.values(), key=lambda n: n.id):
        if not network.external:
            continue
        for subnet in network.subnets:
            if subnet.ip_version == 4 and subnet.gateway_ip:
                prefix = ipaddress.ip_network(subnet.cidr).prefixlen
                found[ext_bridge_name(network.id)] = (f"{subnet.gateway_ip}/{prefix}", subnet.cidr, network.mtu)
                break
    return found


def render_host(model, published=()):
    """nft script (atomic) of the host: the external networks' way out, and the cloud's
    public API endpoints as the external networks reach them: `published` TCP ports,
    listening on the host's loopback, answer on each external gateway address (as a
    production cloud's public endpoints answer its instances). Nothing else of the
    host's loopback is reachable from an external network."""
    bridges = external_bridges(model)
    lines = [f"table ip {TABLE}", f"delete table ip {TABLE}", f"table ip {TABLE} {{"]
    lines.append("  chain prerouting {")
    lines.append("    type nat hook prerouting priority dstnat; policy accept;")
    for bridge, (address, _, _) in bridges.items():
        gateway = address.split("/")[0]
        for port in sorted({int(p) for p in published}):
            lines.append(f'    iifname "{bridge}" ip daddr {gateway} tcp dport {port} dnat to 127.0.0.1:{port}')
    lines.append("  }")
    lines.append("  chain input {")
    lines.append("    type filter hook input priority filter; policy accept;")
    # route_localnet is on for the external bridges (the DNAT above needs it): only what
    # was published may reach the loopback from them
    lines.append('    iifname "mslx-*" ip daddr 127.0.0.0/8 ct status dnat accept')
    lines.append('    iifname "mslx-*" ip daddr 127.0.0.0/8 drop')
    lines.append("  }")
    lines.append("  chain forward {")
    lines.append("    type filter hook forward priority -5; policy accept;")
    for bridge, (_, cidr, _) in bridges.items():
        # what leaves an external network is from it (routers NAT), nothing else
        lines.append(f'    iifname "{bridge}" ip saddr != {cidr} drop')
        lines.append(f'    iifname "{bridge}" oifname "{bridge}" accept')
    lines.append("  }")
    lines.append("  chain postrouting {")
    lines.append("    type nat hook postrouting priority srcnat; policy accept;")
    for bridge, (_, cidr, _) in bridges.items():
        lines.append(f'    ip saddr {cidr} oifname != "{bridge}" oifname != "mslx-*" masquerade')
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def external_cidr_clash(cidr, needed_hosts=()):
    """What the host would lose if `cidr` were on a local bridge: an address it
    holds or routes to (not the lab's own), a name server, or the address of a
    host it needs (registries, the apt mirror). None when there is nothing."""
    net = ipaddress.ip_network(cidr, strict=False)
    for route in ip_json("route", "show"):
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("dev", "").startswith("mslx-") or route.get("protocol") == ROUTE_PROTO:
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.ip_network(dst, strict=False).overlaps(net):
                return f"the route to {dst} (dev {route.get('dev')})"
    names = list(needed_hosts)
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/etc/apt/sources.list.d/debian.sources").read_text().splitlines():
            if line.startswith("URIs:"):
                names += [u.split("/")[2] for u in line.split()[1:] if "://" in u]
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/etc/resolv.conf").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                names.append(parts[1])
    for name in dict.fromkeys(names):
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)}
        except OSError:
            continue
        for address in sorted(addresses):
            if ipaddress.ip_address(address) in net:
                return f"{name} ({address})"
    return None


def leak_guard(model):
    """CIDRs of tenant subnets the host answers `unreachable` for: the host is
    outside the cloud, and its traffic to a fixed address must never leave the
    machine by the default route."""
    cidrs = set()
    for subnet in model.subnets.values():
        network = model.networks.get(subnet.network_id)
        if network is None or network.external or subnet.ip_version != 4:
            continue
        net = ipaddress.ip_network(subnet.cidr, strict=False)
        if net.prefixlen >= 8:
            cidrs.add(str(net))
    return sorted(cidrs)


# ---------------------------------------------------------------- applying: commands
class CommandError(RuntimeError):
    pass


def run(argv, check=True, stdin=None):
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode:
        raise CommandError(f"{' '.join(argv)}: rc={proc.returncode}: {proc.stderr.strip()}")
    return proc


def ip(*args, ns=None, check=True):
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    return run(argv, check=check)


def ip_json(*args, ns=None):
    proc = ip("-j", *args, ns=ns, check=False)
    if proc.returncode or not proc.stdout.strip():
        return []
    return json.loads(proc.stdout)


def nft(script, ns=None):
    argv = ["ip", "netns", "exec", ns, "nft", "-f", "-"] if ns else ["nft", "-f", "-"]
    run(argv, stdin=script)


def sysctl(key, value, ns=None):
    argv = ["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"] if ns else ["sysctl", "-qw", f"{key}={value}"]
    run(argv, check=False)


def namespaces():
    """Names of the network namespaces (named ones, /run/netns)."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def ensure_ns(name):
    if not (NETNS_DIR / name).exists():
        proc = ip("netns", "add", name, check=False)
        if proc.returncode and "File exists" not in proc.stderr:
            raise CommandError(f"ip netns add {name}: {proc.stderr.strip()}")
        ip("link", "set", "lo", "up", ns=name)
        sysctl("net.ipv6.conf.all.disable_ipv6", "1", ns=name)
        sysctl("net.ipv6.conf.default.disable_ipv6", "1", ns=name)
        return True
    return False


def delete_ns(name):
    ip("netns", "delete", name, check=False)


def links(ns=None):
    """{ifname: link} in a namespace."""
    return {link["ifname"]: link for link in ip_json("link", "show", ns=ns)}


def link_exists(name, ns=None):
    return ip("link", "show", "dev", name, ns=ns, check=False).returncode == 0


CLOSED_FABRIC = f"""table bridge {TABLE}
delete table bridge {TABLE}
table bridge {TABLE} {{
  chain prerouting {{
    type filter hook prerouting priority -300; policy accept;
    iifname "tap*" drop
  }}
}}
"""


def ensure_fabric():
    """The fabric namespace. A new one starts closed: its ports pass nothing
    until the agent has written their rules."""
    if ensure_ns(FABRIC_NS):
        nft(CLOSED_FABRIC, ns=FABRIC_NS)
    # br_netfilter is per namespace: without it bridged IPv4 would skip the inet table
    sysctl("net.bridge.bridge-nf-call-iptables", "1", ns=FABRIC_NS)


def _ensure_bridge(name, mtu, ns=None):
    if not link_exists(name, ns=ns):
        proc = ip("link", "add", name, "type", "bridge", ns=ns, check=False)
        if proc.returncode and "File exists" not in proc.stderr:
            raise CommandError(f"creating bridge {name}: {proc.stderr.strip()}")
    ip("link", "set", name, "mtu", str(mtu), "up", ns=ns)
    return name


def ensure_bridge(network_id, mtu=1500):
    """The tenant network's bridge in the fabric (idempotent; the compute driver
    and the agent may both ask)."""
    ensure_fabric()
    return _ensure_bridge(bridge_name(network_id), mtu, ns=FABRIC_NS)


def _addresses(name, ns=None):
    return {
        f"{a['local']}/{a['prefixlen']}"
        for link in ip_json("addr", "show", "dev", name, ns=ns)
        for a in link.get("addr_info", [])
        if a.get("family") == "inet"
    }


def _sync_addresses(name, wanted, ns=None):
    have = _addresses(name, ns=ns)
    for address in sorted(set(wanted) - have):
        ip("addr", "add", address, "dev", name, ns=ns)
    for address in sorted(have - set(wanted)):
        ip("addr", "del", address, "dev", name, ns=ns, check=False)


def _veth(inner, inner_ns, outer, outer_ns):
    """A veth pair `inner` (in inner_ns) <-> `outer` (in outer_ns, None = the host),
    made anew unless `inner` exists."""
    if link_exists(inner, ns=inner_ns):
        return
    ip("link", "del", outer, ns=outer_ns, check=False)  # a half left by an earlier attempt
    ip("link", "add", inner, "type", "veth", "peer", "name", outer, "netns", outer_ns or "1", ns=inner_ns)


def plug_vm_port(instance_uuid, index, *, port_id, mac, mtu, network_id, addresses, gateway=None):
    """The compute driver's VIF plug: eth<index> in the instance's namespace with
    the port's MAC and addresses (["ip/len"]), the tap end on the network's
    bridge. Idempotent; returns the namespace name."""
    ns = vm_ns(instance_uuid)
    ensure_ns(ns)
    bridge = ensure_bridge(network_id, mtu)
    ifname = f"eth{index}"
    tap = tap_name(port_id)
    _veth(ifname, ns, tap, FABRIC_NS)
    ip("link", "set", ifname, "address", mac, "mtu", str(mtu), ns=ns)
    ip("link", "set", tap, "mtu", str(mtu), "master", bridge, "up", ns=FABRIC_NS)
    _sync_addresses(ifname, addresses, ns=ns)
    ip("link", "set", ifname, "up", ns=ns)
    if gateway:
        ip("route", "replace", "default", "via", gateway, "dev", ifname, ns=ns, check=False)
    return ns


def unplug_vm(instance_uuid):
    """Remove the instance's namespace: its eth ends and, with them, the taps."""
    delete_ns(vm_ns(instance_uuid))


# ---------------------------------------------------------------- applying: the topology
class Applier:
    """Applies models; remembers the nft text it last loaded in each namespace
    so that an unchanged ruleset is not reloaded (a `full` pass reloads all)."""

    def __init__(self, host, still_gone=None, published=()):
        self.host = host
        self.published = tuple(published)  # TCP ports of the host's loopback the external networks reach
        self.loaded = {}
        # still_gone(ifname) -> True when the network or port an interface is named after
        # does not exist now (None: trust the model)
        self.still_gone = still_gone

    def nft(self, script, ns=None, full=False):
        key = (ns, _ns_inode(ns))
        if not full and self.loaded.get(key) == script:
            return
        nft(script, ns=ns)
        self.loaded[key] = script

    def external_bridges(self, model):
        bridges = external_bridges(model)
        have = {name for name in links() if name.startswith("mslx-")}
        for name, (address, _, mtu) in bridges.items():
            _ensure_bridge(name, mtu)
            _sync_addresses(name, [address])
            if self.published:
                sysctl(f"net.ipv4.conf.{name}.route_localnet", "1")
        for name in sorted(have - set(bridges)):
            ip("link", "del", name, check=False)
        if bridges:
            sysctl("net.ipv4.ip_forward", "1")
        return bridges

    def host_rules(self, model, full):
        self.nft(render_host(model, self.published), full=full)
        wanted = set(leak_guard(model))
        present = {route.get("dst") for route in ip_json("route", "show", "proto", ROUTE_PROTO)}
        for cidr in sorted(wanted - present):
            ip("route", "replace", "unreachable", cidr, "metric", LEAK_GUARD_METRIC, "proto", ROUTE_PROTO, check=False)
        for cidr in sorted(present - wanted):
            ip("route", "del", "unreachable", cidr, "metric", LEAK_GUARD_METRIC, "proto", ROUTE_PROTO, check=False)

    def fabric(self, model, full):
        ensure_fabric()
        wanted = {}
        for port in model.filtered_ports(self.host) + model.router_ports():
            network = model.networks.get(port.network_id)
            if network is not None and not network.external:
                wanted[bridge_name(network.id)] = network.mtu
        for name, mtu in sorted(wanted.items()):
            _ensure_bridge(name, mtu, ns=FABRIC_NS)
        # leftovers: bridges of deleted networks, taps of deleted ports. The model may be
        # older than a plug the compute driver just made, so each is checked again in the
        # database (by its name's id prefix) right before it goes
        known = {bridge_name(n) for n in model.networks}
        ports = {tap_name(p) for p in model.ports}
        here = links(ns=FABRIC_NS)
        stale = [n for n in here if n.startswith("mslb-") and n not in known]
        stale += [n for n in here if n.startswith("tap") and n not in ports]
        for name in sorted(stale):
            if self.still_gone is None or self.still_gone(name):
                ip("link", "del", name, ns=FABRIC_NS, check=False)
        self.nft(render_fabric(model, self.host), ns=FABRIC_NS, full=full)

    def router(self, plan, full):
        ns = router_ns(plan.router_id)
        ensure_ns(ns)
        sysctl("net.ipv4.ip_forward", "1", ns=ns)
        here = links(ns=ns)
        wanted = set()
        for qr, tap, bridge, mac, address, mtu in plan.interfaces:
            wanted.add(qr)
            _veth(qr, ns, tap, FABRIC_NS)
            ip("link", "set", qr, "address", mac, "mtu", str(mtu), "up", ns=ns)
            _ensure_bridge(bridge, mtu, ns=FABRIC_NS)
            ip("link", "set", tap, "mtu", str(mtu), "master", bridge, "up", ns=FABRIC_NS)
            _sync_addresses(qr, [address], ns=ns)
        if plan.gateway:
            qg, peer, bridge, mac, address, default = plan.gateway
            wanted.add(qg)
            _veth(qg, ns, peer, None)
            ip("link", "set", qg, "address", mac, "up", ns=ns)
            ip("link", "set", peer, "master", bridge, "up", check=False)
            _sync_addresses(qg, [address] + [f"{fip}/32" for fip, _ in plan.floating], ns=ns)
            if default:
                ip("route", "replace", "default", "via", default, "dev", qg, ns=ns, check=False)
        for name in here:
            if name.startswith(("qr-", "qg-")) and name not in wanted:
                ip("link", "del", name, ns=ns, check=False)
        self.nft(render_router(plan), ns=ns, full=full)

    def apply(self, model, full=False):
        """Make the machine match the model. Returns the ids of the floating IPs that route."""
        self.external_bridges(model)
        self.fabric(model, full)
        plans = [plan_router(model, r) for r in sorted(model.routers.values(), key=lambda r: r.id) if r.admin_up]
        for plan in plans:
            self.router(plan, full)
        wanted_ns = {router_ns(plan.router_id) for plan in plans}
        for name in namespaces():
            if name.startswith(ROUTER_NS_PREFIX) and name not in wanted_ns:
                delete_ns(name)
        peers = {plan.gateway[1] for plan in plans if plan.gateway}
        for name in links():
            if name.startswith("mslg") and name not in peers:
                ip("link", "del", name, check=False)
        self.host_rules(model, full)
        self.loaded = {key: text for key, text in self.loaded.items() if key[0] is None or key[0] in namespaces()}
        routed = {(plan.router_id, fip) for plan in plans for fip, _ in plan.floating}
        return {f.id for f in model.floating_ips.values() if (f.router_id, f.address) in routed}


def _ns_inode(ns):
    """Identity of a namespace (a re-made one has another inode)."""
    if ns is None:
        return 0
    with contextlib.suppress(OSError):
        return (NETNS_DIR / ns).stat().st_ino
    return -1


def purge(vm_namespaces=True):
    """Remove everything this module ever made on the machine."""
    for name in namespaces():
        if name == FABRIC_NS or name.startswith(ROUTER_NS_PREFIX) or (vm_namespaces and name.startswith(VM_NS_PREFIX)):
            delete_ns(name)
    for name in links():
        if name.startswith(("mslx-", "mslg")):
            ip("link", "del", name, check=False)
    run(["nft", "delete", "table", "ip", TABLE], check=False)
    for route in ip_json("route", "show", "proto", ROUTE_PROTO):
        ip("route", "del", route.get("type", "unicast"), route["dst"], "proto", ROUTE_PROTO, check=False)


# ---------------------------------------------------------------- the agent
class Agent:
    """The lab-network service: polls Neutron's database, applies what changed."""

    def __init__(self, config):
        self.config = config
        self.applier = Applier(
            config["podman_host"], still_gone=self.still_gone, published=config.get("published_ports", ())
        )
        self.status_file = pathlib.Path(config["status_file"])
        self.interval = float(config.get("interval", 0.5))
        self.resync = float(config.get("resync", 30))
        self.db = None
        self.digest = None
        self.fabric = None
        self.applied_at = 0.0
        self.failing = False

    def cursor(self):
        if self.db is None:
            import pymysql  # noqa: PLC0415 - only the agent reads the database

            db = self.config["db"]
            self.db = pymysql.connect(
                host=db["host"],
                port=int(db["port"]),
                user=db["user"],
                password=db["password"],
                database=db["database"],
                autocommit=True,
                connect_timeout=5,
                read_timeout=30,
            )
        return self.db.cursor()

    def still_gone(self, ifname):
        """Is the network (bridge mslb-<id>) or port (tap<id>) an interface is named after
        absent from the database now?"""
        table, prefix = ("networks", ifname[5:]) if ifname.startswith("mslb-") else ("ports", ifname[3:])
        cursor = self.cursor()
        cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE id LIKE %s", [prefix.replace("%", "") + "%"])  # noqa: S608 - a constant table name
        return cursor.fetchone()[0] == 0

    def write_status(self, synced, **extra):
        data = {"time": time.time(), "synced": synced, "pid": os.getpid(), "digest": self.digest, **extra}
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data) + "\n")
        tmp.replace(self.status_file)

    @staticmethod
    def report_floating_ips(cursor, model, routing):
        """Floating IPs that route are ACTIVE, the others DOWN (as an L3 agent reports)."""
        for status, ids in (
            ("ACTIVE", sorted(f.id for f in model.floating_ips.values() if f.id in routing and f.status != "ACTIVE")),
            ("DOWN", sorted(f.id for f in model.floating_ips.values() if f.id not in routing and f.status != "DOWN")),
        ):
            if ids:
                marks = ", ".join(["%s"] * len(ids))
                cursor.execute(f"UPDATE floatingips SET status = %s WHERE id IN ({marks})", [status, *ids])  # noqa: S608 - placeholders only

    def step(self):
        """One pass; True when something was applied."""
        cursor = self.cursor()
        cursor.execute(DIGEST_SQL)
        digest = "|".join(map(str, cursor.fetchone()))
        fabric = _ns_inode(FABRIC_NS)
        full = time.monotonic() - self.applied_at > self.resync
        if digest == self.digest and fabric == self.fabric and not full and not self.failing:
            return False
        started = time.monotonic()
        model = read_model(cursor)
        routing = self.applier.apply(model, full=full)
        self.report_floating_ips(cursor, model, routing)
        self.digest, self.fabric, self.failing = digest, _ns_inode(FABRIC_NS), False
        if full:
            self.applied_at = time.monotonic()
        self.write_status(True, took=round(time.monotonic() - started, 3), ports=len(model.ports))
        return True

    def loop(self):
        last_status = 0.0
        while True:
            try:
                if self.step():
                    print(f"{time.strftime('%F %T')} applied (digest {self.digest})", flush=True)
                    last_status = time.monotonic()
            except Exception as exc:  # keep going: the next pass starts again from the database
                self.failing = True
                error = f"{type(exc).__name__}: {exc}"
                print(f"{time.strftime('%F %T')} sync failed: {error}", flush=True)
                self.write_status(False, error=error)
                with contextlib.suppress(Exception):
                    self.db.close()
                self.db = None
                time.sleep(2)
                continue
            if time.monotonic() - last_status > 5:
                self.write_status(True)
                last_status = time.monotonic()
            time.sleep(self.interval)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="monoscape_labnet", description="The lab cloud's network agent.")
    sub = parser.add_subparsers(dest="command", required=True)
    agent = sub.add_parser("agent", help="keep the machine in line with Neutron (the lab-network service)")
    agent.add_argument("--config", required=True)
    once = sub.add_parser("sync", help="apply Neutron's state once")
    once.add_argument("--config", required=True)
    sub.add_parser("purge", help="remove every namespace, bridge, rule and route the lab network made")
    args = parser.parse_args(argv)
    if args.command == "purge":
        purge()
        return 0
    config = json.loads(pathlib.Path(args.config).read_text())
    worker = Agent(config)
    if args.command == "sync":
        worker.step()
        return 0
    worker.loop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
