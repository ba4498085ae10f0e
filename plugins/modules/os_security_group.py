#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_security_group
short_description: Neutron security group with a declarative rule set
description:
  - Makes sure a security group exists with exactly the listed rules (rules not listed are removed,
    unless O(purge_rules=false)), or is absent.
  - Rules are compared after normalisation (protocol numbers and names, C(0.0.0.0/0) = any address,
    host addresses as /32 or /128, a single port as a range), so a rule written differently but
    meaning the same is not recreated.
  - Neutron's default "allow all egress" rules are kept unless O(keep_default_egress=false).
  - Missing rules are added before extra ones are removed, so access is never narrower than both
    the old and the new rule set while the task runs.
  - Check mode and C(--diff) (rules as readable lines) supported.
version_added: 0.1.0
author: Monoscape developers
options:
  description:
    description:
      - Description of the group. Left unchanged when not given (empty on create).
    type: str
  keep_default_egress:
    description:
      - Treat Neutron's default egress rules (IPv4 and IPv6, any protocol, any address) as wanted,
        so they are neither removed nor need listing.
    type: bool
    default: true
  name:
    description:
      - Security group name, 1 to 255 characters, unique within the project.
    type: str
    required: true
  project:
    description:
      - Name or id of the project that owns the group (needs the C(admin) role).
        Defaults to the project of the connection.
    type: str
  purge_rules:
    description:
      - Remove rules that are not in O(rules). With C(false), O(rules) are only added.
    type: bool
    default: true
  rules:
    description:
      - The rules the group must have. When omitted, the rules are left as they are.
    type: list
    elements: dict
    suboptions:
      description:
        description:
          - Description of the rule (not compared).
        type: str
      direction:
        description:
          - Traffic direction.
        type: str
        choices: [egress, ingress]
        default: ingress
      ethertype:
        description:
          - IP version. Defaults to the version of O(rules[].remote_ip_prefix), else C(IPv4).
        type: str
        choices: [IPv4, IPv6]
      port:
        description:
          - One port (C(22)) or a range (C(8000-8100)); shorthand for
            O(rules[].port_range_min) and O(rules[].port_range_max).
        type: str
      port_range_max:
        description:
          - Highest port (ICMP code for ICMP). Defaults to O(rules[].port_range_min).
        type: int
      port_range_min:
        description:
          - Lowest port (ICMP type for ICMP). Without ports a rule covers all ports.
        type: int
      protocol:
        description:
          - C(tcp), C(udp), C(icmp), C(icmpv6), C(sctp), another IP protocol name or number, or C(any).
        type: str
        default: tcp
      remote_group:
        description:
          - Name or id of the security group whose members are allowed, or C(self) for this group.
            Mutually exclusive with O(rules[].remote_ip_prefix).
        type: str
      remote_ip_prefix:
        description:
          - CIDR allowed (C(203.0.113.0/24), C(10.0.0.5) means /32). Omitted means any address.
        type: str
  state:
    description:
      - C(present) creates or updates the group, C(absent) deletes it.
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
"""

EXAMPLES = r"""
- name: Load balancer group - HTTP from anywhere, SSH from the operator only
  monoscape.paas.os_security_group:
    cloud: monoscape
    name: monoscape-lb
    description: Monoscape load balancer
    rules:
      - port: 80
        remote_ip_prefix: 0.0.0.0/0
      - port: 22
        remote_ip_prefix: 198.51.100.7

- name: Nodes - app ports only from the load balancer's group, ICMP echo from members
  monoscape.paas.os_security_group:
    cloud: monoscape
    name: monoscape-node
    rules:
      - port: 9000-9100
        remote_group: monoscape-lb
      - protocol: icmp
        port_range_min: 8
        remote_group: self
"""

RETURN = r"""
security_group:
  description: The group after the task (as it would be, in check mode).
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: Group id (empty in check mode when the group would be created).
      type: str
      sample: 5c1e2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b
    name:
      description: Group name.
      type: str
      sample: monoscape-lb
    description:
      description: Group description.
      type: str
      sample: Monoscape load balancer
    project_id:
      description: Owning project.
      type: str
      sample: 0c4e939acacf4376bdcd1129f1a054ad
    rules:
      description: The rules, one readable line each, sorted.
      type: list
      elements: str
      sample: ["ingress IPv4 tcp 80 from 0.0.0.0/0"]
rules_added:
  description: Rules added (or that would be added), readable lines.
  returned: when O(state=present)
  type: list
  elements: str
  sample: ["ingress IPv4 tcp 22 from 198.51.100.7/32"]
rules_removed:
  description: Rules removed (or that would be removed), readable lines.
  returned: when O(state=present)
  type: list
  elements: str
  sample: []
"""

import contextlib
import ipaddress
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.openstack import (
    ModuleFailure,
    OpenStackModule,
    check_text,
    sdk_exc,
)

PROTOCOL_NAMES = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp", "132": "sctp", "icmpv6": "ipv6-icmp"}
PORTED = {"tcp", "udp", "sctp", "udplite", "dccp"}
ICMP = {"icmp", "ipv6-icmp"}
ANY = {None, "", "any", "-1"}


def norm_protocol(value):
    value = None if value is None else str(value).lower()
    if value in ANY:
        return None
    return PROTOCOL_NAMES.get(value, value)


def norm_prefix(value, ethertype):
    """Normalised CIDR; 'any address' is None."""
    if value in (None, ""):
        return None
    network = ipaddress.ip_network(value, strict=False)
    if ethertype and f"IPv{network.version}" != ethertype:
        raise ValueError(f"remote_ip_prefix {value} is IPv{network.version} but ethertype is {ethertype}")
    return None if network.prefixlen == 0 else str(network)


def describe(rule):
    """'ingress IPv4 tcp 22 from 10.0.0.0/24' for a normalised rule tuple."""
    direction, ethertype, protocol, low, high, prefix, group = rule
    text = f"{direction} {ethertype} {protocol or 'any'}"
    if low is not None:
        text += f" {low}" if high in (None, low) else f" {low}-{high}"
    peer = f"group {group}" if group else prefix or ("0.0.0.0/0" if ethertype == "IPv4" else "::/0")
    return f"{text} {'from' if direction == 'ingress' else 'to'} {peer}"


def existing_key(rule):
    """The normalised tuple of a Neutron rule (an SDK SecurityGroupRule)."""
    ethertype = getattr(rule, "ether_type", None)
    protocol = norm_protocol(rule.protocol)
    if protocol == "icmp" and ethertype == "IPv6":
        protocol = "ipv6-icmp"
    low, high = rule.port_range_min, rule.port_range_max
    if protocol in PORTED and low is not None and high is None:
        high = low
    return (
        rule.direction,
        ethertype,
        protocol,
        low,
        high,
        norm_prefix(rule.remote_ip_prefix, None),
        rule.remote_group_id,
    )


def parse_port(text):
    text = str(text).strip()
    low, sep, high = text.partition("-")
    try:
        low_i = int(low)
        high_i = int(high) if sep else low_i
    except ValueError:
        raise ValueError(f"port {text!r} must be a number or a range like 8000-8100") from None
    return low_i, high_i


def check_ports(protocol, rule):
    """(low, high) of a rule's ports, validated for its protocol; ValueError says what is wrong."""
    low, high = rule["port_range_min"], rule["port_range_max"]
    if rule["port"] is not None:
        low, high = parse_port(rule["port"])
    if high is not None and low is None:
        raise ValueError("port_range_max needs port_range_min")
    if low is None:
        return None, None
    if protocol in PORTED:
        high = low if high is None else high
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"ports must satisfy 1 <= min <= max <= 65535, got {low}-{high}")
    elif protocol in ICMP:
        if not 0 <= low <= 255 or (high is not None and not 0 <= high <= 255):
            raise ValueError("ICMP type (port_range_min) and code (port_range_max) must be 0-255")
    else:
        raise ValueError(f"ports need protocol tcp, udp, sctp or icmp (got {protocol or 'any'})")
    return low, high


class SecurityGroupModule(OpenStackModule):
    owner_id = None
    argument_spec: ClassVar[dict] = {
        "description": {"type": "str"},
        "keep_default_egress": {"type": "bool", "default": True},
        "name": {"type": "str", "required": True},
        "project": {"type": "str"},
        "purge_rules": {"type": "bool", "default": True},
        "rules": {
            "type": "list",
            "elements": "dict",
            "options": {
                "description": {"type": "str"},
                "direction": {"type": "str", "default": "ingress", "choices": ["egress", "ingress"]},
                "ethertype": {"type": "str", "choices": ["IPv4", "IPv6"]},
                "port": {"type": "str"},
                "port_range_max": {"type": "int"},
                "port_range_min": {"type": "int"},
                "protocol": {"type": "str", "default": "tcp"},
                "remote_group": {"type": "str"},
                "remote_ip_prefix": {"type": "str"},
            },
            "mutually_exclusive": [("remote_group", "remote_ip_prefix"), ("port", "port_range_min")],
        },
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
    }

    def wanted_key(self, index, rule, self_id):
        """The normalised rule tuple of ``rules[index]``; invalid rules fail before any change."""
        where = f"rules[{index}]"
        try:
            prefix_version = None
            if rule["remote_ip_prefix"]:
                prefix_version = f"IPv{ipaddress.ip_network(rule['remote_ip_prefix'], strict=False).version}"
            ethertype = rule["ethertype"] or prefix_version or "IPv4"
            prefix = norm_prefix(rule["remote_ip_prefix"], ethertype)
            protocol = norm_protocol(rule["protocol"])
            if protocol == "icmp" and ethertype == "IPv6":
                protocol = "ipv6-icmp"
            low, high = check_ports(protocol, rule)
        except ValueError as exc:
            raise ModuleFailure(f"{where}: {exc}; nothing was changed") from None
        group = None
        if rule["remote_group"] == "self":
            group = self_id or "self"
        elif rule["remote_group"]:
            group = self.find(
                "security group",
                self.conn.network.find_security_group,
                rule["remote_group"],
                hint=f" (in {where}.remote_group)",
                project_id=self.owner_id,
            ).id
        return (rule["direction"], ethertype, protocol, low, high, prefix, group)

    def run(self):
        name = self.params["name"]
        problem = check_text("security group name", name)
        if problem:
            self.fail(f"{problem}; nothing was changed")
        # always scoped: an admin sees every project's groups (and a "default" in each)
        self.owner_id = self.conn.current_project_id
        if self.params["project"]:
            self.owner_id = self.project_id(self.params["project"])
        group = self.call(self.conn.network.find_security_group, name, ignore_missing=True, project_id=self.owner_id)
        if self.params["state"] == "absent":
            if group is None:
                return {"changed": False}
            before = self.view(group, self.rule_keys(group))
            if not self.check_mode:
                self.call(self.conn.network.delete_security_group, group.id, ignore_missing=True)
            return {"changed": True, "before": before, "after": {}}

        wanted = None
        if self.params["rules"] is not None:
            wanted = {}
            for index, rule in enumerate(self.params["rules"]):
                wanted.setdefault(self.wanted_key(index, rule, group.id if group else None), rule.get("description"))
        if group is None:
            group, current, before, description = self.create_group(name)
            changed = True
            if wanted is not None:  # "self" can only be resolved once the group exists
                wanted = {self.resolve_self(k, group): d for k, d in wanted.items()}
        else:
            current = self.rule_keys(group)
            before = self.view(group, current)
            group, description, changed = self.update_description(group)
        added, removed, current = self.sync_rules(group, wanted, current)
        after = {
            "id": group.id if group is not None else "",
            "name": name,
            "description": description,
            "project_id": getattr(group, "project_id", None) or self.owner_id,
            "rules": sorted(describe(k) for k in current),
        }
        return {
            "changed": changed or bool(added or removed),
            "security_group": after,
            "rules_added": sorted(describe(k) for k in added),
            "rules_removed": sorted(describe(k) for k in removed),
            "before": before,
            "after": after,
        }

    def create_group(self, name):
        """(group or None in check mode, its rules, before, description) of a new group."""
        network = self.conn.network
        description = self.params["description"] or ""
        # Neutron gives a new group the default egress rules
        current = dict.fromkeys(("egress", v, None, None, None, None, None) for v in ("IPv4", "IPv6"))
        group = None
        if not self.check_mode:
            group = self.call(
                network.create_security_group,
                name=name,
                description=description,
                project_id=self.owner_id,
                recheck=lambda: network.find_security_group(name, ignore_missing=True, project_id=self.owner_id),
            )
            current = self.rule_keys(group)
        return group, current, {}, description

    def update_description(self, group):
        description = self.params["description"]
        if description is None or description == (group.description or ""):
            return group, group.description or "", False
        if not self.check_mode:
            group = self.call(self.conn.network.update_security_group, group.id, description=description)
        return group, description, True

    def sync_rules(self, group, wanted, current):
        """Add missing rules, then remove extra ones; returns (added, removed, rules now)."""
        if wanted is None:
            return [], [], current
        target = dict(wanted)
        if self.params["keep_default_egress"]:
            for version in ("IPv4", "IPv6"):
                target.setdefault(("egress", version, None, None, None, None, None), None)
        added = [k for k in target if k not in current]
        removed = [k for k in current if k not in target] if self.params["purge_rules"] else []
        if not (added or removed):
            return added, removed, current
        if self.check_mode:
            now = {k: v for k, v in current.items() if k not in removed}
            now.update(dict.fromkeys(added))
            return added, removed, now
        for key in added:
            self.create_rule(group, key, target[key])
        for key in removed:
            self.call(self.conn.network.delete_security_group_rule, current[key], ignore_missing=True)
        return added, removed, self.rule_keys(group)

    @staticmethod
    def resolve_self(key, group):
        if key[6] == "self" and group is not None:
            return (*key[:6], group.id)
        return key

    def rule_keys(self, group):
        """{normalised rule: rule id} of the group, read fresh."""
        rules = self.call(lambda: list(self.conn.network.security_group_rules(security_group_id=group.id)))
        return {existing_key(rule): rule.id for rule in rules}

    def view(self, group, current):
        return {
            "id": group.id,
            "name": group.name,
            "description": group.description or "",
            "project_id": group.project_id,
            "rules": sorted(describe(k) for k in current),
        }

    def create_rule(self, group, key, description):
        direction, ethertype, protocol, low, high, prefix, remote = key
        attrs = {
            "security_group_id": group.id,
            "direction": direction,
            "ether_type": ethertype,
            "protocol": protocol,
            "port_range_min": low,
            "port_range_max": high,
            "remote_ip_prefix": prefix,
            "remote_group_id": group.id if remote == "self" else remote,
        }
        if description:
            attrs["description"] = description
        attrs = {k: v for k, v in attrs.items() if v is not None}
        if getattr(group, "project_id", None):
            attrs["project_id"] = group.project_id
        # a conflict means the rule is there already (a retried create whose first answer was lost)
        with contextlib.suppress(sdk_exc.ConflictException):
            self.call(self.conn.network.create_security_group_rule, **attrs)


def main():
    SecurityGroupModule()()


if __name__ == "__main__":
    main()
