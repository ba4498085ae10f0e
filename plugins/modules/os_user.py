#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_user
short_description: Create, update or delete a Keystone user
description:
  - Makes sure a user exists with the given attributes, or is absent. Idempotent by name within the domain.
  - With O(update_password=always) the password is checked by authenticating as the user, so the task
    reports a change only when the password really differs (Keystone never returns passwords).
  - Check mode and C(--diff) supported; the password never appears in results or diffs.
  - Prefer O(password_file) to O(password) - ansible-core writes a module's arguments to the
    C(-vvv) output (and, unless C(no_target_syslog), the system log) before the module can mask them.
  - Needs an account allowed to manage users (the C(admin) role).
version_added: 0.1.0
author: Monoscape developers
options:
  default_project:
    description:
      - Name or id of the user's default project (in O(domain)). Left unchanged when not given.
    type: str
  description:
    description:
      - Free-text description. Left unchanged when not given.
    type: str
  domain:
    description:
      - Name or id of the domain the user (and O(default_project)) belongs to.
    type: str
    default: default
  email:
    description:
      - E-mail address stored with the user. Left unchanged when not given.
    type: str
  enabled:
    description:
      - Whether the user is enabled.
    type: bool
    default: true
  name:
    description:
      - User name, 1 to 255 characters, unique within the domain.
    type: str
    required: true
  password:
    description:
      - The user's password. Required (or O(password_file)) to create a user that can log in.
      - Mutually exclusive with O(password_file).
    type: str
  password_file:
    description:
      - Path, on the host the module runs on (the control node), of a file holding the user's
        password (the file's whole content, without a trailing newline). The password is read by
        the module and is never an argument of the task.
      - In check mode a file that does not exist yet means a password would be set; otherwise a
        missing or empty file fails the task and changes nothing.
      - Mutually exclusive with O(password).
    type: path
    version_added: 0.4.0
  state:
    description:
      - C(present) creates or updates the user, C(absent) deletes it.
    type: str
    choices: [absent, present]
    default: present
  update_password:
    description:
      - C(on_create) sets the password (O(password) or O(password_file)) only when the user is created.
      - C(always) also makes an existing user's password equal to it; it is verified by
        authenticating as the user first, and set only when that fails (a disabled user is always set).
    type: str
    choices: [always, on_create]
    default: on_create
extends_documentation_fragment:
  - monoscape.paas.openstack
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: The tenant's service user exists with this password
  monoscape.paas.os_user:
    cloud: monoscape-admin
    name: acme-paas
    password: "{{ vault_acme_password }}"
    update_password: always
    default_project: acme
    email: ops@acme.example
  no_log: true

- name: The same, the password read from a 0600 file on the control node (never a task argument)
  monoscape.paas.os_user:
    cloud: monoscape-admin
    name: acme-paas
    password_file: /etc/monoscape/acme/password
    update_password: always
    default_project: acme

- name: The user is gone
  monoscape.paas.os_user:
    cloud: monoscape-admin
    name: acme-paas
    state: absent
"""

RETURN = r"""
user:
  description: The user as it is after the task (as it would be, in check mode). Never contains the password.
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: User id (empty in check mode when the user would be created).
      type: str
      sample: 9b4e4c4d8e2f4c3f8a3c1c2d3e4f5a6b
    name:
      description: User name.
      type: str
      sample: acme-paas
    domain_id:
      description: Id of the user's domain.
      type: str
      sample: default
    default_project_id:
      description: Id of the default project, if any.
      type: str
      sample: 0c4e939acacf4376bdcd1129f1a054ad
    description:
      description: Description.
      type: str
      sample: PaaS service user
    email:
      description: E-mail address.
      type: str
      sample: ops@acme.example
    is_enabled:
      description: Whether the user is enabled.
      type: bool
      sample: true
password_changed:
  description: Whether the password was (or, in check mode, would be) set by this task.
  returned: when O(state=present)
  type: bool
  sample: false
"""

from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.openstack import OpenStackModule, check_text

# check mode, password file not written yet: a password would be set
PENDING = object()

FIELDS = ("id", "name", "domain_id", "default_project_id", "description", "email", "is_enabled")


def view(user):
    if isinstance(user, dict):
        return {key: user.get(key) for key in FIELDS}
    return {key: getattr(user, key, None) for key in FIELDS}


class UserModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "default_project": {"type": "str"},
        "description": {"type": "str"},
        "domain": {"type": "str", "default": "default"},
        "email": {"type": "str"},
        "enabled": {"type": "bool", "default": True},
        "name": {"type": "str", "required": True},
        "password": {"type": "str", "no_log": True},
        "password_file": {"type": "path", "no_log": False},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
        "update_password": {"type": "str", "default": "on_create", "choices": ["always", "on_create"], "no_log": False},
    }
    module_kwargs: ClassVar[dict] = {
        "mutually_exclusive": [("password", "password_file")],
        "required_if": [("update_password", "always", ("password", "password_file"), True)],
    }

    def password(self):
        """The password to set: O(password), or the content of O(password_file); None when
        neither is given. In check mode a password file that does not exist yet gives
        PENDING (a password would be set)."""
        path = self.params["password_file"]
        if path is None:
            return self.params["password"]
        try:
            with open(path, encoding="utf-8") as handle:
                password = handle.read().rstrip("\n")
        except FileNotFoundError:
            if self.check_mode:
                return PENDING
            self.fail(
                f"password_file {path} does not exist: write the user's password there (0600); nothing was changed"
            )
        except (OSError, UnicodeDecodeError) as exc:
            self.fail(f"password_file {path} cannot be read ({exc}); nothing was changed")
        if not password:
            self.fail(f"password_file {path} is empty: write the user's password there; nothing was changed")
        return password

    def password_works(self, user_id, password):
        """True if Keystone accepts ``password`` for the user (an unscoped token)."""
        from keystoneauth1 import exceptions as ks_exc  # noqa: PLC0415 - only needed for this check
        from keystoneauth1 import session as ks_session  # noqa: PLC0415
        from keystoneauth1.identity import v3  # noqa: PLC0415

        auth_url = (self.conn.config.config.get("auth") or {}).get("auth_url")
        if not auth_url:
            return False
        plugin = v3.Password(auth_url=auth_url, user_id=user_id, password=password)
        session = ks_session.Session(auth=plugin, verify=self.conn.session.verify)
        try:
            session.get_token()
        except ks_exc.Unauthorized:
            return False
        return True

    def run(self):
        name = self.params["name"]
        problem = check_text("user name", name)
        if problem:
            self.fail(f"{problem}; nothing was changed")
        domain_id = self.domain_id(self.params["domain"])
        user = self.call(self.conn.identity.find_user, name, ignore_missing=True, domain_id=domain_id)
        if self.params["state"] == "absent":
            return self.absent(user)
        wanted = {"is_enabled": self.params["enabled"]}
        for option in ("description", "email"):
            if self.params[option] is not None:
                wanted[option] = self.params[option]
        if self.params["default_project"]:
            wanted["default_project_id"] = self.project_id(self.params["default_project"], self.params["domain"])
        if user is None:
            return self.create(name, domain_id, wanted)
        return self.update(user, wanted)

    def absent(self, user):
        if user is None:
            return {"changed": False}
        if not self.check_mode:
            self.call(self.conn.identity.delete_user, user.id, ignore_missing=True)
        return {"changed": True, "before": view(user), "after": {}}

    def create(self, name, domain_id, wanted):
        identity = self.conn.identity
        password = self.password()
        after = dict(dict.fromkeys(FIELDS), id="", name=name, domain_id=domain_id, **wanted)
        if not self.check_mode:
            attrs = dict(wanted, name=name, domain_id=domain_id)
            if password is not None:  # never PENDING: that is check mode only
                attrs["password"] = password
            created = self.call(
                identity.create_user,
                recheck=lambda: identity.find_user(name, ignore_missing=True, domain_id=domain_id),
                **attrs,
            )
            after = view(created)
        changed_password = password is not None
        return {"changed": True, "user": after, "password_changed": changed_password, "before": {}, "after": after}

    def update(self, user, wanted):
        before = view(user)
        update = {key: value for key, value in wanted.items() if before.get(key) != value}
        after = dict(before, **update)
        # Keystone never returns passwords: check it by logging in as the user
        verify = self.params["update_password"] == "always"  # noqa: S105 - an option choice, not a password
        password = self.password() if verify else None
        password_changed = verify and (
            password is PENDING or not (user.is_enabled and self.password_works(user.id, password))
        )
        if password_changed and password is not PENDING:  # PENDING: check mode, no file yet
            update["password"] = password
        if update and not self.check_mode:
            after = view(self.call(self.conn.identity.update_user, user.id, **update))
        diff_after = dict(after, password_changed=True) if password_changed else after
        return {
            "changed": bool(update) or password_changed,
            "user": after,
            "password_changed": password_changed,
            "before": before,
            "after": diff_after,
        }


def main():
    UserModule()()


if __name__ == "__main__":
    main()
