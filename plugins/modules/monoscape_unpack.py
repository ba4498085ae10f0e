#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.monoscape.paas.plugins.module_utils.monoscape_package import (
    LIMITS_ARGUMENT_SPEC,
    PackageError,
    extract,
    limits,
)

DOCUMENTATION = r"""
---
module: monoscape_unpack
short_description: Unpack a Monoscape application package on a node, after checking it again
version_added: "0.2.0"
description:
  - Unpacks a Monoscape package (a zip of a compiled ASP.NET site) that was copied to the node into a new
    release folder I(dest).
  - "Before anything is written, the package must have the I(sha256) recorded on the control node by
    monoscape.paas.monoscape_package, and pass the same rules again: plain files and folders only, no
    encrypted entry, stored or deflate compression only, safe names (no absolute path, C(..), backslash,
    control or invisible format character, component starting with C(-)), no duplicate names, C(web.config)
    at the root, and the limits I(max_bytes), I(max_entries), I(max_unpacked) and I(max_ratio)."
  - "Entries are streamed into a fresh folder next to I(dest) that only its owner can enter: the real bytes are
    counted against the sizes the zip declares and the limits, files are created with C(O_EXCL|O_NOFOLLOW)
    with mode 0644 and folders with mode 0755 whatever the zip says, and no link, device or special file is
    ever created or followed. The complete folder is then renamed to I(dest)."
  - On any failure the partial folder is removed, so nothing is left behind, and the module fails with a
    one-line message naming what was wrong.
  - Not for C(unzip) or M(ansible.builtin.unarchive), which create symbolic links and trust the sizes the
    zip declares.
author:
  - Monoscape developers
extends_documentation_fragment:
  - monoscape.paas.package_limits
options:
  dest:
    description:
      - The release folder to create. Its parent must exist; I(dest) itself must not (a package is only
        unpacked into a new folder, the module fails when I(dest) exists).
    type: path
    required: true
  sha256:
    description: SHA-256 of the package, as recorded on the control node (the C(sha256) that
      monoscape.paas.monoscape_package returned). Another package is refused.
    type: str
    required: true
  src:
    description: The package on the node (a regular file, not reached through a symbolic link).
    type: path
    required: true
notes:
  - Check mode is supported; it checks the package (sha256 and rules) and writes nothing.
  - The files belong to the user the module runs as (root with C(become)).
seealso:
  - module: monoscape.paas.monoscape_package
    description: Checks the package on the control node with the same rules and returns its sha256.
"""

EXAMPLES = r"""
- name: Check the package on the control node
  monoscape.paas.monoscape_package:
    path: build/packages/hello-2.0.0.zip
    version: 2.0.0
  delegate_to: localhost
  run_once: true
  register: package

- name: Copy the package to the node
  ansible.builtin.copy:
    src: build/packages/hello-2.0.0.zip
    dest: /srv/monoscape/apps/demo/hello/releases/.2.0.0.zip
    owner: root
    group: root
    mode: "0600"

- name: Unpack it as a new release (checked again against the recorded sha256)
  monoscape.paas.monoscape_unpack:
    src: /srv/monoscape/apps/demo/hello/releases/.2.0.0.zip
    dest: /srv/monoscape/apps/demo/hello/releases/2.0.0
    sha256: "{{ package.sha256 }}"
"""

RETURN = r"""
dest:
  description: Absolute path of the release folder.
  returned: always
  type: str
  sample: /srv/monoscape/apps/demo/hello/releases/2.0.0
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
sha256:
  description: SHA-256 of the package, as checked.
  returned: success
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
size:
  description: Size of the package in bytes.
  returned: success
  type: int
  sample: 2835
uncompressed_size:
  description: Total size of the package's files as the zip declares it, in bytes.
  returned: success
  type: int
  sample: 5120
unpacked_bytes:
  description: Bytes actually written (0 in check mode).
  returned: success
  type: int
  sample: 5120
web_config:
  description: Name of the root web.config entry, as spelled in the zip.
  returned: success
  type: str
  sample: web.config
"""


def main():
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True},
            **LIMITS_ARGUMENT_SPEC,
            "sha256": {"type": "str", "required": True},
            "src": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        info = extract(
            p["src"],
            p["dest"],
            p["sha256"],
            **limits(p),
            check_only=module.check_mode,
        )
    except PackageError as exc:
        module.fail_json(msg=str(exc), dest=p["dest"])
    module.exit_json(changed=True, dest=p["dest"], **info)


if __name__ == "__main__":
    main()
