#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_project
short_description: Create, update or delete a Keystone project
description:
  - Makes sure a project (tenant) exists with the given description and enabled flag, or is absent.
  - Idempotent by name within the domain; check mode and C(--diff) supported.
  - Needs an account allowed to manage projects (the C(admin) role).
version_added: 0.1.0
author: Monoscape developers
options:
  description:
    description:
      - Free-text description. Left unchanged when not given.
    type: str
  domain:
    description:
      - Name or id of the domain the project belongs to.
    type: str
    default: default
  enabled:
    description:
      - Whether the project is enabled.
    type: bool
    default: true
  name:
    description:
      - Project name, 1 to 64 characters, unique within the domain.
    type: str
    required: true
  state:
    description:
      - C(present) creates or updates the project, C(absent) deletes it.
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
- name: The tenant's project exists
  monoscape.paas.os_project:
    cloud: monoscape-admin
    name: acme
    description: Monoscape tenant acme

- name: Several calls share one cloud setting
  module_defaults:
    group/monoscape.paas.openstack:
      cloud: monoscape-admin
  block:
    - name: Disable the project
      monoscape.paas.os_project:
        name: acme
        enabled: false

- name: The project is gone
  monoscape.paas.os_project:
    cloud: monoscape-admin
    name: acme
    state: absent
"""

RETURN = r"""
project:
  description: The project as it is after the task (as it would be, in check mode). Absent when O(state=absent).
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: Project id (empty in check mode when the project would be created).
      type: str
      sample: 0c4e939acacf4376bdcd1129f1a054ad
    name:
      description: Project name.
      type: str
      sample: acme
    description:
      description: Project description.
      type: str
      sample: Monoscape tenant acme
    domain_id:
      description: Id of the project's domain.
      type: str
      sample: default
    is_enabled:
      description: Whether the project is enabled.
      type: bool
      sample: true
"""

from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.openstack import OpenStackModule, check_text

FIELDS = ("id", "name", "description", "domain_id", "is_enabled")


def view(project):
    return {key: getattr(project, key, None) if not isinstance(project, dict) else project.get(key) for key in FIELDS}


class ProjectModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "description": {"type": "str"},
        "domain": {"type": "str", "default": "default"},
        "enabled": {"type": "bool", "default": True},
        "name": {"type": "str", "required": True},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
    }

    def run(self):
        name = self.params["name"]
        problem = check_text("project name", name, max_len=64)
        if problem:
            self.fail(f"{problem}; nothing was changed")
        domain_id = self.domain_id(self.params["domain"])
        identity = self.conn.identity
        project = self.call(identity.find_project, name, ignore_missing=True, domain_id=domain_id)

        if self.params["state"] == "absent":
            if project is None:
                return {"changed": False}
            if not self.check_mode:
                self.call(identity.delete_project, project.id, ignore_missing=True)
            return {"changed": True, "before": view(project), "after": {}}

        wanted = {"is_enabled": self.params["enabled"]}
        if self.params["description"] is not None:
            wanted["description"] = self.params["description"]

        if project is None:
            after = {"id": "", "name": name, "domain_id": domain_id, "description": "", **wanted}
            if not self.check_mode:
                created = self.call(
                    identity.create_project,
                    name=name,
                    domain_id=domain_id,
                    recheck=lambda: identity.find_project(name, ignore_missing=True, domain_id=domain_id),
                    **wanted,
                )
                after = view(created)
            return {"changed": True, "project": after, "before": {}, "after": after}

        before = view(project)
        update = {key: value for key, value in wanted.items() if before.get(key) != value}
        after = dict(before, **update)
        if update and not self.check_mode:
            after = view(self.call(identity.update_project, project.id, **update))
        return {"changed": bool(update), "project": after, "before": before, "after": after}


def main():
    ProjectModule()()


if __name__ == "__main__":
    main()
