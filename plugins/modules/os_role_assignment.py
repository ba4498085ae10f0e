#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_role_assignment
short_description: Grant or revoke a Keystone role on a project or domain
description:
  - Makes sure a user or a group has (or does not have) a role on a project or on a domain.
  - Idempotent (the assignment is looked up first); check mode and C(--diff) supported.
  - Unlike the SDK's assign helpers, a refused assignment fails the task instead of passing silently.
  - Needs an account allowed to manage role assignments (the C(admin) role).
version_added: 0.1.0
author: Monoscape developers
options:
  domain:
    description:
      - Name or id of the domain to grant the role on (a domain-scoped assignment).
      - Exactly one of O(project) and O(domain) is required.
    type: str
  group:
    description:
      - Name or id of the group that gets the role. Exactly one of O(user) and O(group) is required.
    type: str
  project:
    description:
      - Name or id of the project to grant the role on.
    type: str
  project_domain:
    description:
      - Domain of O(project) when it is given by name.
    type: str
    default: default
  role:
    description:
      - Name or id of the role, for example C(member), C(reader) or C(admin).
    type: str
    required: true
  state:
    description:
      - C(present) grants the role, C(absent) revokes it.
    type: str
    choices: [absent, present]
    default: present
  user:
    description:
      - Name or id of the user that gets the role.
    type: str
  user_domain:
    description:
      - Domain of O(user) or O(group) when given by name.
    type: str
    default: default
extends_documentation_fragment:
  - monoscape.paas.openstack
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: The tenant user is a member of the tenant project
  monoscape.paas.os_role_assignment:
    cloud: monoscape-admin
    user: acme-paas
    project: acme
    role: member

- name: Revoke it
  monoscape.paas.os_role_assignment:
    cloud: monoscape-admin
    user: acme-paas
    project: acme
    role: member
    state: absent
"""

RETURN = r"""
assignment:
  description: The assignment that is wanted, with resolved ids.
  returned: always
  type: dict
  contains:
    role_id:
      description: Role id.
      type: str
      sample: 9fe2ff9ee4384b1894a90878d3e92bab
    user_id:
      description: User id (null for a group assignment).
      type: str
      sample: 6b4d8a1cc0ff4cb8a2f2c1e0d4b3a291
    group_id:
      description: Group id (null for a user assignment).
      type: str
      sample: null
    project_id:
      description: Project id (null for a domain assignment).
      type: str
      sample: 0c4e939acacf4376bdcd1129f1a054ad
    domain_id:
      description: Domain id (null for a project assignment).
      type: str
      sample: null
"""

from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.openstack import OpenStackModule, sdk_exc


class RoleAssignmentModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "domain": {"type": "str"},
        "group": {"type": "str"},
        "project": {"type": "str"},
        "project_domain": {"type": "str", "default": "default"},
        "role": {"type": "str", "required": True},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
        "user": {"type": "str"},
        "user_domain": {"type": "str", "default": "default"},
    }
    module_kwargs: ClassVar[dict] = {
        "mutually_exclusive": [("user", "group"), ("project", "domain")],
        "required_one_of": [("user", "group"), ("project", "domain")],
    }

    def request(self, method, path):
        response = self.call(getattr(self.conn.identity, method), path)
        sdk_exc.raise_from_response(response)

    def run(self):
        identity = self.conn.identity
        # revoking from something that does not exist is already done
        required = self.params["state"] == "present"
        ids = {"role_id": None, "user_id": None, "group_id": None, "project_id": None, "domain_id": None}
        role = self.find("role", identity.find_role, self.params["role"], listing=identity.roles, required=required)
        if self.params["user"]:
            ids["user_id"] = self.user_id(self.params["user"], self.params["user_domain"], required)
            actor = f"users/{ids['user_id']}"
        else:
            domain_id = self.domain_id(self.params["user_domain"], required)
            group = domain_id and self.find(
                "group", identity.find_group, self.params["group"], required=required, domain_id=domain_id
            )
            ids["group_id"] = group.id if group else None
            actor = f"groups/{ids['group_id']}"
        if self.params["project"]:
            ids["project_id"] = self.project_id(self.params["project"], self.params["project_domain"], required)
            target = f"projects/{ids['project_id']}"
        else:
            ids["domain_id"] = self.domain_id(self.params["domain"], required)
            target = f"domains/{ids['domain_id']}"
        if role is None or not (ids["user_id"] or ids["group_id"]) or not (ids["project_id"] or ids["domain_id"]):
            return {"changed": False, "assignment": ids}
        ids["role_id"] = role.id

        query = {"role_id": role.id}
        query["user_id" if ids["user_id"] else "group_id"] = ids["user_id"] or ids["group_id"]
        query["scope_project_id" if ids["project_id"] else "scope_domain_id"] = ids["project_id"] or ids["domain_id"]
        exists = bool(self.call(lambda: list(identity.role_assignments(**query))))

        label = {"role": role.name, "actor": self.params["user"] or self.params["group"], "on": target}
        want = self.params["state"] == "present"
        if exists == want:
            return {"changed": False, "assignment": ids}
        if not self.check_mode:
            self.request("put" if want else "delete", f"/{target}/{actor}/roles/{role.id}")
        before, after = ({}, label) if want else (label, {})
        return {"changed": True, "assignment": ids, "before": before, "after": after}


def main():
    RoleAssignmentModule()()


if __name__ == "__main__":
    main()
