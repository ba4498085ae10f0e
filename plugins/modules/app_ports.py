#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

from __future__ import annotations

import contextlib
import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.monoscape.paas.plugins.module_utils.locking import locked
from ansible_collections.monoscape.paas.plugins.module_utils.monoscape_package import (
    PackageError,
    check_instance_name,
)

DOCUMENTATION = r"""
---
module: app_ports
short_description: Allocate and release the HTTP ports of app instances on a node
version_added: "0.1.0"
description:
  - Keeps a registry of which app instance owns which port on a node (a JSON file), so that ports
    never collide between apps and are reused once freed.
  - C(state=present) gives every listed instance a port, keeping the one it already has; a new one
    gets the lowest port of the range that is neither recorded nor listening (any address, TCP, IPv4 or
    IPv6). It never releases anything.
  - C(state=absent) releases the ports of the listed instances, or of all the owner's instances when
    none is listed. Release a port only once its instance is stopped.
  - Writers are serialised with a lock on the registry's folder, so that two deployments on the same
    node cannot take the same port.
author:
  - Monoscape developers
options:
  instances:
    description:
      - Instance names (unique on the node), e.g. C(demo.hello.1) - 1 to 63 lower-case letters, digits,
        C(_), C(.) or C(-), starting with a letter or digit (module_utils/monoscape_package.py
        INSTANCE_NAME_PATTERN, the rule the mono_runtime role applies too).
    type: list
    elements: str
    default: []
  owner:
    description:
      - Who the instances belong to, e.g. C(demo/hello). An instance registered to another owner is
        refused rather than taken over.
    type: str
    required: true
  range_end:
    description: Last port that may be allocated.
    type: int
    default: 9999
  range_start:
    description: First port that may be allocated.
    type: int
    default: 9081
  registry:
    description: The registry file (created with its folder when missing).
    type: path
    default: /etc/monoscape/ports.json
  state:
    description: C(present) allocates, C(absent) releases.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Check mode is supported (the ports that would be allocated are returned); diff mode shows the registry.
"""

EXAMPLES = r"""
- name: Ports for two instances of demo/hello
  monoscape.paas.app_ports:
    owner: demo/hello
    instances: [demo.hello.1, demo.hello.2]
  register: ports
  # ports.ports == {"demo.hello.1": 9081, "demo.hello.2": 9082}

- name: Free the second instance's port once it is stopped
  monoscape.paas.app_ports:
    owner: demo/hello
    instances: [demo.hello.2]
    state: absent

- name: Free every port of demo/hello (undeploy)
  monoscape.paas.app_ports:
    owner: demo/hello
    state: absent
"""

RETURN = r"""
ports:
  description: Port of each listed instance (with C(state=absent), of each released one).
  returned: always
  type: dict
  sample: {"demo.hello.1": 9081, "demo.hello.2": 9082}
allocated:
  description: Instances that got a new port.
  returned: always
  type: list
  elements: str
  sample: [demo.hello.2]
released:
  description: Instances whose port was released, with that port.
  returned: always
  type: dict
  sample: {"demo.hello.3": 9083}
owned:
  description: Every instance of I(owner) in the registry after the run, with its port.
  returned: always
  type: dict
  sample: {"demo.hello.1": 9081, "demo.hello.2": 9082}
"""

TCP_LISTEN = "0A"


class PortError(Exception):
    pass


def listening_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[3] == TCP_LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def load(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise PortError(f"port registry {path} is unreadable ({exc}); fix or remove it") from exc
    if not isinstance(data, dict) or not isinstance(data.get("instances", {}), dict):
        raise PortError(f"port registry {path} is not a monoscape.paas.app_ports registry")
    return data.get("instances", {})


def dump(instances: dict) -> str:
    return json.dumps({"instances": instances}, indent=2, sort_keys=True) + "\n"


def plan(p: dict, registry: dict, listening: set[int]) -> tuple[dict, dict, list, dict]:
    """(new registry, ports, allocated, released)"""
    new = {name: dict(entry) for name, entry in registry.items()}
    owner = p["owner"]
    ports, allocated, released = {}, [], {}
    for name in p["instances"]:
        entry = new.get(name)
        if entry is not None and entry.get("owner") != owner:
            raise PortError(
                f"instance {name} is registered to {entry.get('owner')!r}, not {owner!r}; pick another name"
            )
    if p["state"] == "absent":
        names = p["instances"] or [n for n, e in new.items() if e.get("owner") == owner]
        for name in names:
            if name in new:
                released[name] = new.pop(name)["port"]
        return new, dict(released), [], released
    taken = {entry["port"] for entry in new.values()}
    candidates = (
        port for port in range(p["range_start"], p["range_end"] + 1) if port not in taken and port not in listening
    )
    for name in p["instances"]:
        if name in new:
            ports[name] = new[name]["port"]
            continue
        port = next(candidates, None)
        if port is None:
            raise PortError(
                f"no free port left in {p['range_start']}-{p['range_end']} on this node "
                f"({len(taken)} recorded, others listening); widen the range or remove apps"
            )
        new[name] = {"owner": owner, "port": port}
        ports[name] = port
        allocated.append(name)
    return new, ports, allocated, released


def main():
    module = AnsibleModule(
        argument_spec={
            "instances": {"type": "list", "elements": "str", "default": []},
            "owner": {"type": "str", "required": True},
            "range_end": {"type": "int", "default": 9999},
            "range_start": {"type": "int", "default": 9081},
            "registry": {"type": "path", "default": "/etc/monoscape/ports.json"},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        for name in p["instances"]:
            try:
                check_instance_name(name)
            except PackageError as exc:
                raise PortError(str(exc)) from exc
        if len(set(p["instances"])) != len(p["instances"]):
            raise PortError(f"instances are listed twice: {p['instances']}")
        if not 1 <= p["range_start"] <= p["range_end"] <= 65535:
            raise PortError(f"port range {p['range_start']}-{p['range_end']} is not within 1-65535")
        folder = os.path.dirname(p["registry"]) or "."
        if not os.path.isdir(folder) and not module.check_mode:
            os.makedirs(folder, mode=0o755)
        with locked(folder) if os.path.isdir(folder) else contextlib.nullcontext():
            registry = load(p["registry"])
            new, ports, allocated, released = plan(p, registry, listening_ports())
            before, after = dump(registry), dump(new)
            changed = new != registry
            if changed and not module.check_mode:
                fd, tmp = tempfile.mkstemp(prefix=".ports.", dir=folder)
                with os.fdopen(fd, "w") as handle:
                    handle.write(after)
                os.chmod(tmp, 0o644)
                module.atomic_move(tmp, p["registry"])
    except PortError as exc:
        module.fail_json(msg=str(exc))
    owned = {name: entry["port"] for name, entry in sorted(new.items()) if entry.get("owner") == p["owner"]}
    result = {
        "changed": changed,
        "ports": ports,
        "allocated": allocated,
        "released": released,
        "owned": owned,
    }
    if module._diff:
        result["diff"] = {
            "before": before,
            "after": after,
            "before_header": p["registry"],
            "after_header": p["registry"],
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
