#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

from __future__ import annotations

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.monoscape.paas.plugins.module_utils.monoscape_package import (
    DEFAULT_MAX_BYTES,
    PackageError,
    check_name,
    inspect,
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
    no absolute path, drive letter, backslash or C(..) entry (zip slip), no symbolic link, and be no larger
    than I(max_bytes) (and expand to no more than 8 times that)."
  - I(tenant) and I(app) must be routable as C(/<tenant>/<app>/) (lower-case letters, digits, C(-), C(_));
    the error names the first offending character and its position.
  - I(version) names the release folder on the nodes (letters, digits, C(.), C(_), C(+), C(-)).
  - Run it where the package is, before any host is touched (C(delegate_to) or a play on C(localhost)).
    It never changes anything.
author:
  - Monoscape developers
options:
  app:
    description: App name, checked to be routable.
    type: str
  max_bytes:
    description: Largest accepted package, in bytes.
    type: int
    default: 67108864
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
"""

RETURN = r"""
app:
  description: The app name, as checked.
  returned: when given
  type: str
  sample: hello
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

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


def check_version(version: str) -> str:
    if not VERSION_RE.match(version):
        bad = next(
            ((pos, c) for pos, c in enumerate(version) if not re.match(r"[A-Za-z0-9._+-]", c)),
            None,
        )
        if bad:
            why = f"has {bad[1]!r} at position {bad[0] + 1}"
        elif not version:
            why = "is empty"
        elif len(version) > 64:
            why = f"is {len(version)} characters long (at most 64)"
        else:
            why = "must start with a letter or digit"
        raise PackageError(f"version {version!r} {why}; a release version uses letters, digits, '.', '_', '+', '-'")
    if ".." in version:
        raise PackageError(f"version {version!r} must not contain '..'")
    return version


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str"},
            "max_bytes": {"type": "int", "default": DEFAULT_MAX_BYTES},
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
        if p["version"] is not None:
            result["version"] = check_version(p["version"])
        if p["max_bytes"] < 1:
            raise PackageError(f"max_bytes must be positive, not {p['max_bytes']}")
        info = inspect(p["path"], p["max_bytes"])
    except PackageError as exc:
        module.fail_json(msg=str(exc), **result)
    result.update(info, path=p["path"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
