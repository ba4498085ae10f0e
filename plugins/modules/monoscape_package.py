#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.monoscape.paas.plugins.module_utils.monoscape_package import (
    LIMITS_ARGUMENT_SPEC,
    PackageError,
    check_app_identity,
    check_health_path,
    check_name,
    check_version,
    inspect,
    limits,
)

DOCUMENTATION = r"""
---
module: monoscape_package
short_description: Validate a Monoscape application package before it is deployed
version_added: "0.1.0"
description:
  - Checks a Monoscape package (a zip of a compiled ASP.NET site) and the names it is deployed under,
    with the same rules as C(scripts/monoscape_package.py check), and describes it.
  - "The package must be a readable zip (CRC checked) with C(web.config) at its root (case-insensitive),
    no larger than I(max_bytes), with at most I(max_entries) entries that unpack to at most I(max_unpacked)
    bytes and at most I(max_ratio) times the package's size."
  - "Each entry must be a plain file or folder (no link, device, pipe or socket), neither encrypted nor
    compressed otherwise than stored or deflate, with a name that stays inside the release (no absolute path,
    drive letter, backslash, C(.) or C(..) component), has no control or invisible format character
    (newline, right-to-left override, ...) and no component starting with C(-), and that no other entry
    has (names compared case-insensitively after Unicode normalisation)."
  - Every refusal is a one-line message naming the entry (control characters shown escaped).
  - monoscape.paas.monoscape_unpack applies the same rules again on each node, against the I(sha256) this
    module returns, before it unpacks anything.
  - I(tenant) and I(app) must be routable as C(/<tenant>/<app>/) (lower-case letters, digits, C(-), C(_));
    the error names the first offending character and its position.
  - Given both, I(tenant) and I(app) must also fit the names derived from them on the hosts - app instances
    C(<tenant>.<app>.<n>) and the HAProxy backend C(app.<tenant>.<app>) - so at most 58 characters together.
  - I(version) names the release folder on the nodes (letters, digits, C(.), C(_), C(+), C(-); the whole
    value must match, so a trailing newline is refused).
  - I(health_path), when given, must be a file of the package (case-insensitive), so that a deployment
    whose health check would ask for a page the package does not have fails before any host changes.
  - Run it where the package is, before any host is touched (C(delegate_to) or a play on C(localhost)).
    It never changes anything.
author:
  - Monoscape developers
extends_documentation_fragment:
  - monoscape.paas.package_limits
options:
  app:
    description: App name, checked to be routable.
    type: str
  health_path:
    description:
      - Health-check page below C(/<tenant>/<app>/), checked to be a file of the package.
      - Empty (the default) means the app's root URL, which needs no file.
    type: str
    default: ""
  path:
    description: The package (zip file).
    type: path
    required: true
  tenant:
    description: Tenant name, checked to be routable.
    type: str
  version:
    description: Release version, checked to be usable as a folder name.
    type: str
notes:
  - Check mode and diff mode are supported (the module only reads).
seealso:
  - name: scripts/monoscape_package.py
    description: Builds packages and checks them from the command line with the same rules.
    link: https://example.invalid/monoscape/paas/blob/main/scripts/monoscape_package.py
"""

EXAMPLES = r"""
- name: Check the package before touching any host
  monoscape.paas.monoscape_package:
    path: build/packages/hello-2.0.0.zip
    tenant: demo
    app: hello
    version: 2.0.0
  delegate_to: localhost
  run_once: true
  register: package

- name: Check the package has the page the health check asks for, with lower limits
  monoscape.paas.monoscape_package:
    path: build/packages/hello-2.0.0.zip
    health_path: health.aspx
    max_unpacked: 33554432
    max_entries: 2000
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
app:
  description: The app name, as checked.
  returned: when given
  type: str
  sample: hello
entries:
  description: Number of entries (files and folders) in the package.
  returned: success
  type: int
  sample: 5
files:
  description: Number of files in the package.
  returned: success
  type: int
  sample: 4
path:
  description: Absolute path of the package.
  returned: success
  type: str
  sample: /home/op/build/packages/hello-2.0.0.zip
sha256:
  description: SHA-256 of the package file.
  returned: success
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
size:
  description: Size of the package in bytes.
  returned: success
  type: int
  sample: 2835
tenant:
  description: The tenant name, as checked.
  returned: when given
  type: str
  sample: demo
uncompressed_size:
  description: Total size of the package's files once extracted, in bytes.
  returned: success
  type: int
  sample: 5120
version:
  description: The release version, as checked.
  returned: when given
  type: str
  sample: 2.0.0
web_config:
  description: Name of the root web.config entry, as spelled in the zip.
  returned: success
  type: str
  sample: web.config
"""


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str"},
            "health_path": {"type": "str", "default": ""},
            **LIMITS_ARGUMENT_SPEC,
            "path": {"type": "path", "required": True},
            "tenant": {"type": "str"},
            "version": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    result = {"changed": False}
    try:
        for kind in ("tenant", "app"):
            if p[kind] is not None:
                result[kind] = check_name(kind, p[kind])
        if p["tenant"] is not None and p["app"] is not None:
            check_app_identity(p["tenant"], p["app"])
        if p["version"] is not None:
            result["version"] = check_version(p["version"])
        info = inspect(
            p["path"],
            **limits(p),
            health_path=check_health_path(p["health_path"] or ""),
        )
    except PackageError as exc:
        module.fail_json(msg=str(exc), **result)
    result.update(info, path=p["path"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
