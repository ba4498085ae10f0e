#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

from __future__ import annotations

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.monoscape.paas.plugins.module_utils.monoscape_package import (
    PackageError,
    check_name,
    check_version,
)

DOCUMENTATION = r"""
---
module: app_info
short_description: Read the Monoscape apps deployed on a node
version_added: "0.5.0"
description:
  - Reads, on a node, the deployment record of each app (C(<apps_root>/<tenant>/<app>/app.json), written by
    the mono_app role) and the ports of its instances (the registry of the app_ports module), and returns
    them as one list. The only reader of those files outside the mono_app role that writes them.
  - A record that is not valid JSON, or names a tenant, app or version Monoscape would not deploy, fails
    the task with the file's path.
  - Changes nothing; runs in check mode.
author:
  - Monoscape developers
options:
  app:
    description: Only this app (with I(tenant)). Default, every app of the node.
    type: str
  apps_root:
    description: Where the apps' folders are (mono_app_apps_root).
    type: path
    default: /srv/monoscape/apps
  registry:
    description: The port registry (app_ports' I(registry)). A missing file means no instance.
    type: path
    default: /etc/monoscape/ports.json
  tenant:
    description: Only this tenant's apps. Default, every tenant's.
    type: str
notes:
  - Supports check mode (it only reads).
"""

EXAMPLES = r"""
- name: What does this node serve?
  monoscape.paas.app_info:
  register: node_apps

- name: One app's record (empty list when it is not on the node)
  monoscape.paas.app_info:
    tenant: demo
    app: hello
  register: hello_on_node
"""

RETURN = r"""
apps:
  description: The apps on the node, sorted by tenant and app.
  returned: always
  type: list
  elements: dict
  contains:
    tenant:
      description: Tenant name.
      type: str
    app:
      description: App name.
      type: str
    current:
      description: The release the node serves.
      type: str
    releases:
      description: The releases kept on the node (activation order, current last), each C(version), C(sha256).
      type: list
      elements: dict
    instances:
      description: The app's instances on the node and their HTTP ports (from the port registry).
      type: dict
  sample:
    - tenant: demo
      app: hello
      current: 2.0.0
      releases: [{version: 1.0.0, sha256: 740b...}, {version: 2.0.0, sha256: 9c1e...}]
      instances: {demo.hello.1: 9081}
"""


class RecordError(Exception):
    """A record the module cannot read; the message names the file."""


def read_json(path: str, default):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path} cannot be read as JSON: {exc}") from exc


def read_record(path: str, tenant: str, app: str) -> dict:
    record = read_json(path, None)
    if not isinstance(record, dict):
        raise RecordError(f"{path} is not a Monoscape app record (a JSON object with current and releases)")
    releases = record.get("releases")
    current = record.get("current")
    try:
        check_name("tenant", tenant)
        check_name("app", app)
        if not isinstance(releases, list) or not all(isinstance(r, dict) for r in releases):
            raise PackageError("releases must be a list of {version, sha256}")
        for release in releases:
            check_version(release.get("version"))
        if current:
            check_version(current)
    except PackageError as exc:
        raise RecordError(f"{path}: {exc}") from exc
    return {
        "tenant": tenant,
        "app": app,
        "current": current or "",
        "releases": [{"version": r["version"], "sha256": r.get("sha256", "")} for r in releases],
    }


def find_records(root: str, tenant: str | None, app: str | None) -> list[tuple[str, str, str]]:
    """(tenant, app, path) of every app.json two levels below root (within the filters)."""
    found = []
    tenants = [tenant] if tenant else sorted(os.listdir(root)) if os.path.isdir(root) else []
    for ten in tenants:
        folder = os.path.join(root, ten)
        if not os.path.isdir(folder) or os.path.islink(folder):
            continue
        for name in [app] if app else sorted(os.listdir(folder)):
            path = os.path.join(folder, name, "app.json")
            if os.path.isfile(path):
                found.append((ten, name, path))
    return found


def run(params: dict) -> list[dict]:
    if bool(params["app"]) and not params["tenant"]:
        raise RecordError("app needs tenant (an app name is unique within its tenant only)")
    registry = read_json(params["registry"], {})
    instances = registry.get("instances", {}) if isinstance(registry, dict) else {}
    if not isinstance(instances, dict):
        raise RecordError(f"{params['registry']} is not a port registry (instances must be an object)")
    apps = []
    for tenant, app, path in find_records(params["apps_root"], params["tenant"], params["app"]):
        entry = read_record(path, tenant, app)
        owner = f"{tenant}/{app}"
        entry["instances"] = {
            name: value.get("port")
            for name, value in sorted(instances.items())
            if isinstance(value, dict) and value.get("owner") == owner
        }
        apps.append(entry)
    return apps


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str"},
            "apps_root": {"type": "path", "default": "/srv/monoscape/apps"},
            "registry": {"type": "path", "default": "/etc/monoscape/ports.json"},
            "tenant": {"type": "str"},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(changed=False, apps=run(module.params))
    except RecordError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
