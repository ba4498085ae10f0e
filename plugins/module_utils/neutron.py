# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Neutron rules shared by os_network, os_subnet, os_router, os_port and os_floating_ip:
which ports are router interfaces, which ones Neutron removes by itself, what holds a
port (so a refusal to delete names the server or router to remove first), and whether
a name is an id."""

from __future__ import annotations

import uuid

ROUTER_INTERFACE_OWNERS = frozenset(
    {
        "network:router_interface",
        "network:router_interface_distributed",
        "network:ha_router_replicated_interface",
    }
)
ROUTER_GATEWAY_OWNER = "network:router_gateway"
# ports Neutron deletes by itself with their network (neutron_lib AUTO_DELETE_PORT_OWNERS)
AUTO_DELETED_OWNERS = frozenset({"network:dhcp", "network:distributed", "network:floatingip_agent_gateway"})
USERS_LIMIT = 10


def is_id(text):
    """Whether ``text`` has the form of a Neutron id (a UUID, with or without dashes)."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def port_ips(port, subnet_id=None):
    """The port's IP addresses (on ``subnet_id`` only, when given)."""
    return [
        ip.get("ip_address")
        for ip in getattr(port, "fixed_ips", None) or []
        if subnet_id is None or ip.get("subnet_id") == subnet_id
    ]


def router_interfaces(ports):
    """[{subnet_id, port_id, ip_address}] of a router's interface ports, one per
    fixed IP, sorted by subnet."""
    found = [
        {"subnet_id": ip.get("subnet_id"), "port_id": port.id, "ip_address": ip.get("ip_address")}
        for port in ports
        if getattr(port, "device_owner", None) in ROUTER_INTERFACE_OWNERS
        for ip in port.fixed_ips or []
    ]
    return sorted(found, key=lambda i: (i["subnet_id"] or "", i["port_id"]))


def floating_ip_text(fip):
    """'203.0.113.5 (to 10.0.0.7)' for a floating IP."""
    text = fip.floating_ip_address or fip.id
    return f"{text} (to {fip.fixed_ip_address})" if getattr(fip, "fixed_ip_address", None) else text


def _name(module, getter, resource_id):
    """A resource's name for a message, else its id (it may be another project's)."""
    try:
        found = module.call(getter, resource_id)
    except Exception:  # only for a message: a lookup that fails leaves the id
        return resource_id
    return getattr(found, "name", None) or resource_id


def port_users(module, ports, subnet_id=None):
    """One phrase per thing holding one of ``ports`` (DHCP and other ports Neutron
    removes by itself left out): "router 'r1' (interface 10.0.0.1)",
    "server 'web-1' (10.0.0.7, port 7f3a...)"."""
    users = []
    for port in ports:
        owner = getattr(port, "device_owner", None) or ""
        if owner in AUTO_DELETED_OWNERS:
            continue
        ips = ", ".join(port_ips(port, subnet_id)) or "no address"
        device = getattr(port, "device_id", None) or ""
        if owner in ROUTER_INTERFACE_OWNERS:
            name = _name(module, module.conn.network.get_router, device)
            users.append(f"router {name!r} (interface {ips})")
        elif owner == ROUTER_GATEWAY_OWNER:
            name = _name(module, module.conn.network.get_router, device)
            users.append(f"router {name!r} (external gateway {ips})")
        elif owner.startswith("compute:") and device:
            name = _name(module, module.conn.compute.get_server, device)
            users.append(f"server {name!r} ({ips}, port {port.id})")
        elif owner == "network:floatingip":
            users.append(f"floating IP {ips}")
        elif not owner and not device:
            users.append(f"unattached port {getattr(port, 'name', None) or port.id} ({ips})")
        else:
            users.append(f"port {port.id} of {owner or 'device'} {device or '?'} ({ips})")
    users = sorted(set(users))
    if len(users) > USERS_LIMIT:
        users = [*users[:USERS_LIMIT], f"… and {len(users) - USERS_LIMIT} more"]
    return users


def port_holder(module, port):
    """What a bound port (device_id set) belongs to, for a message: "server 'web-1'
    (device_id 0f1e...)", "router 'r1' (device_id 1a2b..., network:router_interface)",
    else "device 9c8d... (device_owner X)"."""
    owner = getattr(port, "device_owner", None) or ""
    device = getattr(port, "device_id", None) or ""
    if owner.startswith("compute:"):
        return f"server {_name(module, module.conn.compute.get_server, device)!r} (device_id {device})"
    if owner in ROUTER_INTERFACE_OWNERS or owner == ROUTER_GATEWAY_OWNER:
        return f"router {_name(module, module.conn.network.get_router, device)!r} (device_id {device}, {owner})"
    return f"device {device} (device_owner {owner or 'not set'})"
