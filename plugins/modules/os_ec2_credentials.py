#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_ec2_credentials
short_description: Keystone EC2-style access/secret key pair of a user on a project
description:
  - Makes sure a user has an EC2 credential (access key + secret key) for a project, like
    C(openstack ec2 credentials create), without making a new pair on every run.
  - O(state=present) reuses an existing pair of the user on the project (the one with the lowest access
    key when several exist); a new pair is created only when there is none. Give O(access) to select
    one pair, and O(access) with O(secret) to make Keystone store a pair you chose.
  - The secret is returned (it is needed to configure clients) but the task result is marked
    C(no_log), so it is never printed or logged; register the result to use it.
  - Check mode and C(--diff) supported (the diff shows access keys only).
  - openstack.cloud has no module for this.
version_added: 0.1.0
author: Monoscape developers
options:
  access:
    description:
      - Access key of the pair to select (O(state=present)) or delete (O(state=absent)).
      - Without it, O(state=present) reuses any pair of the user on the project and
        O(state=absent) deletes all of them.
    type: str
  project:
    description:
      - Name or id of the project the credential is for. Defaults to the project of the connection.
    type: str
  project_domain:
    description:
      - Domain of O(project) when it is given by name.
    type: str
    default: default
  secret:
    description:
      - Secret key to store with O(access) (both required to import a chosen pair).
      - When the pair exists with another secret, the secret is updated.
    type: str
  state:
    description:
      - C(present) makes sure a pair exists and returns it, C(absent) deletes pairs.
    type: str
    choices: [absent, present]
    default: present
  user:
    description:
      - Name or id of the user that owns the credential. Defaults to the user of the connection.
      - Managing other users' credentials needs the C(admin) role; the user needs a role on the project.
    type: str
  user_domain:
    description:
      - Domain of O(user) when it is given by name.
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
- name: The PaaS user has EC2 credentials on its project (same pair on every run)
  monoscape.paas.os_ec2_credentials:
    cloud: monoscape-admin
    user: acme-paas
    project: acme
  register: acme_ec2

- name: Write them for the controller (the secret is not shown)
  ansible.builtin.copy:
    dest: /etc/monoscape/ec2.env
    mode: "0600"
    content: |
      EC2_ACCESS_KEY={{ acme_ec2.credential.access }}
      EC2_SECRET_KEY={{ acme_ec2.credential.secret }}
  no_log: true

- name: Store a pair chosen elsewhere
  monoscape.paas.os_ec2_credentials:
    cloud: monoscape-admin
    user: acme-paas
    project: acme
    access: "{{ vault_acme_access }}"
    secret: "{{ vault_acme_secret }}"

- name: Remove all EC2 credentials of the user on the project
  monoscape.paas.os_ec2_credentials:
    cloud: monoscape-admin
    user: acme-paas
    project: acme
    state: absent
"""

RETURN = r"""
credential:
  description:
    - The pair in use. The task result is marked no_log (by the action plugin of the same name), so it is not displayed.
    - In check mode, when a pair would be created, C(access) and C(secret) are empty.
  returned: when O(state=present)
  type: dict
  contains:
    access:
      description: Access key.
      type: str
      sample: 8b1a9953c4611296a827abf8c47804d7
    secret:
      description: Secret key.
      type: str
      sample: "(hidden)"
    user_id:
      description: Id of the owning user.
      type: str
      sample: 6b4d8a1cc0ff4cb8a2f2c1e0d4b3a291
    project_id:
      description: Id of the project.
      type: str
      sample: 0c4e939acacf4376bdcd1129f1a054ad
deleted:
  description: Access keys deleted (or that would be deleted in check mode).
  returned: when O(state=absent)
  type: list
  elements: str
  sample: [8b1a9953c4611296a827abf8c47804d7]
"""

import hashlib
import json
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.openstack import OpenStackModule, sdk_exc


class Ec2CredentialsModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "access": {"type": "str", "no_log": False},
        "project": {"type": "str"},
        "project_domain": {"type": "str", "default": "default"},
        "secret": {"type": "str", "no_log": True},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
        "user": {"type": "str"},
        "user_domain": {"type": "str", "default": "default"},
    }
    module_kwargs: ClassVar[dict] = {"required_by": {"secret": ["access"]}}

    def api(self, method, path, **kwargs):
        response = self.call(getattr(self.conn.identity, method), path, **kwargs)
        sdk_exc.raise_from_response(response)
        return response

    @staticmethod
    def public(pair, user_id, project_id):
        return {
            "access": pair.get("access", ""),
            "secret": pair.get("secret", ""),
            "user_id": user_id,
            "project_id": project_id,
        }

    def run(self):
        # deleting the credentials of a user or project that is gone is already done
        required = self.params["state"] == "present"
        user_id = self.user_id(self.params["user"], self.params["user_domain"], required)
        project_id = self.project_id(self.params["project"], self.params["project_domain"], required)
        if user_id is None or project_id is None:
            return {"changed": False, "deleted": []}
        access, secret = self.params["access"], self.params["secret"]
        pairs = self.ec2_pairs(user_id, project_id)
        keys = [p["access"] for p in pairs]

        if self.params["state"] == "absent":
            doomed = [k for k in keys if access is None or k == access]
            if doomed and not self.check_mode:
                for key in doomed:
                    self.api("delete", f"/users/{user_id}/credentials/OS-EC2/{key}")
            return {
                "changed": bool(doomed),
                "deleted": doomed,
                "before": {"access_keys": keys},
                "after": {"access_keys": [k for k in keys if k not in doomed]},
            }

        # The result carries the secret on purpose (it is what the caller needs), so the
        # value is not masked inside it; the action plugin of the same name marks the whole
        # result no_log, so callbacks and logs show nothing of it. The echoed arguments
        # keep it masked.
        result = {}
        if secret is not None:
            self.ansible.no_log_values.discard(secret)
            result["invocation"] = {"module_args": {**self.params, "secret": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}}
        before = {"access_keys": keys}
        chosen = next((p for p in pairs if p["access"] == access), None) if access else (pairs[0] if pairs else None)

        if chosen is not None and (secret is None or chosen.get("secret") == secret):
            return dict(result, changed=False, credential=self.public(chosen, user_id, project_id))

        if chosen is None and access and secret is None:
            self.fail(
                f"user {user_id} has no EC2 credential with access key {access!r} on project {project_id};"
                f" existing access keys: {', '.join(keys) or 'none'}. Omit access to reuse or create one,"
                " or give secret too to store that pair"
            )

        after = {"access_keys": sorted({*keys, access or "(new)"})}
        if self.check_mode:
            pair = {"access": access or "", "secret": secret or ""}
            return dict(
                result, changed=True, credential=self.public(pair, user_id, project_id), before=before, after=after
            )

        if access is None:
            body = self.api("post", f"/users/{user_id}/credentials/OS-EC2", json={"tenant_id": project_id}).json()
            pair = body["credential"]
        else:
            blob = json.dumps({"access": access, "secret": secret})
            if chosen is None:
                self.api(
                    "post",
                    "/credentials",
                    json={"credential": {"type": "ec2", "user_id": user_id, "project_id": project_id, "blob": blob}},
                )
            else:
                credential_id = hashlib.sha256(access.encode()).hexdigest()
                self.api("patch", f"/credentials/{credential_id}", json={"credential": {"blob": blob}})
            pair = {"access": access, "secret": secret}
        return dict(result, changed=True, credential=self.public(pair, user_id, project_id), before=before, after=after)


def main():
    Ec2CredentialsModule()()


if __name__ == "__main__":
    main()
