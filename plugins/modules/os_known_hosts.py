#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_known_hosts
short_description: Pin the SSH host keys of servers, read from their console logs, in a known_hosts file
description:
  - Writes the SSH host keys of servers into a known_hosts file, so SSH can run with strict host key
    checking from the first connection on - never trust on first use.
  - The keys come from each server's console log, read through the OpenStack API (what a careful
    operator does with C(openstack console log show)). cloud-init prints them there at the server's
    first boot, between C(-----BEGIN SSH HOST KEY KEYS-----) and C(-----END SSH HOST KEY KEYS-----);
    the last complete block is taken (a log may hold several boots), and every key is checked against
    the fingerprints printed before it (C(-----BEGIN SSH HOST KEY FINGERPRINTS-----)) - a key whose
    fingerprint is not there fails the task.
  - "Each server gets one line per key type: C(<server name> <key type> <base64 key> monoscape-server-id=<server id>).
    The host field is the server's name: connect with C(ssh -o HostKeyAlias=<server name>
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile=<path>). Lines of other hosts are kept as they
    are; a comment line at the top says the file is managed by this module."
  - A server already pinned under its name with the same server id is left alone, without reading its
    console log. When every server is given as C({name, id}) and pinned with that id, the task does
    not even connect to the cloud.
  - A server pinned under its name with another server id (it was re-created) whose keys are the same
    only gets its id updated. If the keys differ, the task fails, naming the server, the old and new
    fingerprints and server ids, and the command that re-pins it on purpose - unless O(repin=true).
  - The file is written atomically (a temporary file renamed over it) with mode 0600; C(changed) only
    when its content changes. It is read again and written under a lock on its folder, so tasks that
    pin into the same file at once (one per host, delegated to the control node) keep each other's
    lines.
  - Check mode (nothing written) and C(--diff) (the file's lines before and after) supported.
version_added: 0.1.0
author: Monoscape developers
options:
  console_timeout:
    description:
      - Seconds to wait for the keys to appear in the console log of a server that has just booted
        (cloud-init prints them late in the first boot). All servers are waited for together.
      - With O(wait=false) each console log is read once. (O(timeout) does not apply to this module.)
    type: int
    default: 120
  path:
    description:
      - The known_hosts file on the control node. Created with mode 0600 when missing; its folder must
        exist.
    type: path
    required: true
  repin:
    description:
      - Replace the pins of servers whose keys differ from the pinned ones (a server re-created on
        purpose) instead of failing. The replaced fingerprints are reported in a warning and in
        RV(pinned[].previous).
      - Only for servers you know were replaced; a changed host key can also mean someone else answers
        for the server.
    type: bool
    default: false
  servers:
    description:
      - The servers, each the server's name or id, or a dictionary with its C(name) and C(id) (as the
        inventory knows it; a dictionary may give only one of them). Other keys of a dictionary are
        ignored, so the inventory plugin's C(openstack) host variables can be given as they are.
      - Names and ids that need a look-up are resolved together, with one server list call.
      - With O(state=absent), the names whose lines are removed (an id removes the pin that records it;
        the cloud is not asked).
    type: list
    elements: raw
    required: true
  state:
    description:
      - C(present) pins the servers' keys, C(absent) removes their lines.
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
notes:
  - A server whose console log shows no host keys (an image without cloud-init, or a log that no longer
    holds the first boot) cannot be pinned by this module; the failure message says how to pin it by
    hand.
  - The console log is read with the account of the connection; Nova's default policy lets the
    server's project members read it.
seealso:
  - module: monoscape.paas.os_floating_ip
"""

EXAMPLES = r"""
- name: Pin the host keys of the deployment's servers
  monoscape.paas.os_known_hosts:
    cloud: monoscape
    path: "{{ playbook_dir }}/../build/acme/known_hosts"
    servers:
      - acme-controller
      - name: acme-node-1
        id: 0f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f
  register: pinned

- name: SSH to the controller's floating IP, checked against its pinned keys
  ansible.builtin.command:
    argv:
      - ssh
      - -o
      - StrictHostKeyChecking=yes
      - -o
      - UserKnownHostsFile={{ playbook_dir }}/../build/acme/known_hosts
      - -o
      - HostKeyAlias=acme-controller
      - root@203.0.113.25
      - "true"
  changed_when: false

- name: A node was re-created on purpose - take its new keys
  monoscape.paas.os_known_hosts:
    cloud: monoscape
    path: "{{ playbook_dir }}/../build/acme/known_hosts"
    servers: [acme-node-1]
    repin: true

- name: Forget deleted servers (no cloud call)
  monoscape.paas.os_known_hosts:
    path: "{{ playbook_dir }}/../build/acme/known_hosts"
    servers: [acme-node-7, acme-node-8]
    state: absent
"""

RETURN = r"""
path:
  description: The known_hosts file.
  returned: always
  type: str
  sample: /srv/monoscape/build/acme/known_hosts
pinned:
  description: The servers pinned, in the order given.
  returned: when O(state=present)
  type: list
  elements: dict
  contains:
    name:
      description: Server name (the host name of its lines).
      type: str
      sample: acme-node-1
    id:
      description: Server id recorded with the keys.
      type: str
      sample: 0f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f
    fingerprints:
      description: SHA256 fingerprints of the pinned keys, sorted by key type.
      type: list
      elements: str
      sample: ["SHA256:kJd0W8Y5nq3V0xk1mUo6oM6x0wq2mS1Vv3ZcQy5Jm2E"]
    changed:
      description: Whether this server's lines were (or would be) written.
      type: bool
      sample: true
    previous:
      description: The pin that was replaced, when keys were replaced with O(repin=true).
      returned: when keys were replaced
      type: dict
      sample: {"id": "5a4b3c2d-1e0f-4968-8776-0f1e2d3c4b5a", "fingerprints": ["SHA256:Qm3..."]}
removed:
  description: Names whose lines were (or would be) removed.
  returned: when O(state=absent)
  type: list
  elements: str
  sample: [acme-node-7]
"""

import os
import time
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.host_keys import (
    HostKeyError,
    check_host_name,
    read_known_hosts,
    read_pins,
    sha256_fingerprint,
    update_known_hosts,
    write_known_hosts,
)
from ansible_collections.monoscape.paas.plugins.module_utils.host_keys import (
    parse_console as parse_console_keys,
)
from ansible_collections.monoscape.paas.plugins.module_utils.locking import locked
from ansible_collections.monoscape.paas.plugins.module_utils.openstack import (
    ModuleFailure,
    OpenStackModule,
    error_details,
    names_hint,
    sdk_exc,
)

REPIN_COMMAND = "ansible-playbook playbooks/host_keys.yml -e monoscape_repin={name}"
REGEX_SPECIAL = set(".^$*+?()[]{}|\\")


def exact_names_regex(names):
    """One Nova name filter (a regular expression) matching exactly these names."""
    escaped = ["".join("\\" + c if c in REGEX_SPECIAL else c for c in n) for n in sorted(names)]
    return "^(" + "|".join(escaped) + ")$"


class Wanted:
    """One item of the servers option: what is known of the server."""

    def __init__(self, index, name=None, server_id=None, text=None):
        self.index = index
        self.name, self.id = name, server_id
        self.text = text  # a string item that may be a name or an id, until resolved
        self.keys = None  # HostKeys read from the console

    @property
    def known(self):
        return bool(self.name and self.id)


class KnownHostsModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "console_timeout": {"type": "int", "default": 120},
        "path": {"type": "path", "required": True},
        "repin": {"type": "bool", "default": False},
        "servers": {"type": "list", "elements": "raw", "required": True},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
    }

    # ------------------------------------------------------------------ inputs
    def wanted(self, pins):
        """The servers option as Wanted items. An id that a pin records gets that
        pin's name (ids are never reused, so no look-up is needed)."""
        by_id = {p.server_id: p.name for p in pins.values() if p.server_id}
        items = []
        for index, item in enumerate(self.params["servers"]):
            where = f"servers[{index}]"
            if isinstance(item, str):
                text = item.strip()
                if not text:
                    self.fail(f"{where} is empty; give a server name or id")
                items.append(Wanted(index, by_id[text], text) if text in by_id else Wanted(index, text=text))
                continue
            if (
                not isinstance(item, dict)
                or not any(isinstance(item.get(k), str) and item[k].strip() for k in ("name", "id"))
                or any(item.get(k) is not None and not isinstance(item[k], str) for k in ("name", "id"))
            ):
                shown = {k: item.get(k) for k in ("name", "id")} if isinstance(item, dict) else item
                self.fail(f"{where} must be a server name or id, or a dictionary with name and/or id; got {shown!r}")
            name, server_id = (item.get("name") or "").strip() or None, (item.get("id") or "").strip() or None
            if not name and server_id in by_id:
                name = by_id[server_id]
            items.append(Wanted(index, name, server_id))
        for wanted in items:
            problem = check_host_name(wanted.name) if wanted.name else None
            if problem:
                self.fail(f"servers[{wanted.index}]: {problem}; nothing was changed")
        return items

    def file_text(self):
        path = self.params["path"]
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            self.fail(f"the folder of path {path} does not exist; create it first (nothing was written)")
        if os.path.isdir(path):
            self.fail(f"path {path} is a folder; give the known_hosts file in it")
        try:
            return read_known_hosts(path)
        except (OSError, UnicodeDecodeError) as exc:
            self.fail(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        return ""  # pragma: no cover - fail raises

    # ------------------------------------------------------------------ cloud
    def resolve(self, items):
        """Find the server of every item that lacks its name or id, with one
        server list call (filtered by name when every item is a name)."""
        if not items:
            return
        compute = self.conn.compute
        lookups = [w.text or w.name or w.id for w in items]
        # Nova filters by name (a regular expression); ids can only be matched in the full listing
        by_name = all((w.name or (w.text and not looks_like_id(w.text))) and not w.id for w in items)
        query = {"name": exact_names_regex(lookups)} if by_name else {}
        servers = self.call(lambda: list(compute.servers(**query)))
        servers = [s for s in servers if getattr(s, "status", None) != "DELETED"]
        for wanted, lookup in zip(items, lookups, strict=True):
            if wanted.id:
                matches = [s for s in servers if s.id == wanted.id]
            elif wanted.name:
                matches = [s for s in servers if s.name == wanted.name]
            else:
                matches = [s for s in servers if s.id == lookup] or [s for s in servers if s.name == lookup]
            if not matches:
                known = "" if by_name else f"; known servers: {names_hint(s.name for s in servers)}"
                self.fail(f"servers[{wanted.index}]: unknown server {lookup!r}{known}; nothing was changed")
            if len(matches) > 1:
                self.fail(
                    f"servers[{wanted.index}]: {len(matches)} servers are named {lookup!r}; give the one to pin"
                    " as {name, id}; nothing was changed"
                )
            wanted.name, wanted.id = matches[0].name, matches[0].id
            problem = check_host_name(wanted.name)
            if problem:
                self.fail(f"servers[{wanted.index}]: {problem}; nothing was changed")

    def console(self, wanted):
        """The console log of a server, and why it is empty when it is."""
        try:
            answer = self.call(self.conn.compute.get_server_console_output, wanted.id)
        except sdk_exc.NotFoundException:
            self.fail(
                f"servers[{wanted.index}]: server {wanted.name!r} with id {wanted.id} does not exist;"
                " refresh the inventory; nothing was changed"
            )
        except sdk_exc.ConflictException as exc:  # still building: no console yet
            return "", f"Nova answered 409: {error_details(exc)}"
        return (answer or {}).get("output") or "", None

    def read_keys(self, items):
        """Read the keys of every item from its console log, waiting for all
        together up to console_timeout."""
        timeout = max(0, self.params["console_timeout"]) if self.params["wait"] else 0
        deadline = time.monotonic() + timeout
        interval = self.poll_interval
        pending = list(items)
        seen = {}
        while True:
            for wanted in list(pending):
                text, reason = self.console(wanted)
                try:
                    keys = parse_console_keys(text)
                except HostKeyError as exc:
                    self.fail(
                        f"cannot pin server {wanted.name!r} ({wanted.id}): {exc}. Look at its console log"
                        f" (openstack console log show {wanted.id}); nothing was changed"
                    )
                if keys:
                    wanted.keys = keys
                    pending.remove(wanted)
                else:
                    seen[wanted.id] = reason or ("an empty log" if not text.strip() else "no complete KEYS block")
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise ModuleFailure(self.no_keys_message(pending, seen, timeout))
            time.sleep(interval)
            interval = min(interval * 1.5, 5.0)

    def no_keys_message(self, pending, seen, timeout):
        path = self.params["path"]
        parts = []
        for wanted in pending:
            parts.append(
                f"the console log of server {wanted.name!r} ({wanted.id}) shows no SSH host keys after"
                f" {timeout} s ({seen.get(wanted.id)}); cloud-init prints them at first boot, so its key cannot"
                " be pinned from here"
            )
        return (
            "; ".join(parts) + f". To pin by hand, read /etc/ssh/ssh_host_*_key.pub on the server through a"
            f" channel you trust (its console, or the image build) and add one line per key to {path}:"
            " '<server name> <key type> <base64 key> monoscape-server-id=<server id>'. Nothing was changed"
        )

    # ------------------------------------------------------------------ main
    def run(self):
        text = self.file_text()
        pins = read_pins(text)
        items = self.wanted(pins)
        if self.params["state"] == "absent":
            return self.update(lambda current: self.unpin(current, items))

        self.resolve([w for w in items if not up_to_date(w, pins) and not w.known])
        todo, ids = [], {}
        for wanted in items:
            if ids.setdefault(wanted.name, wanted.id) != wanted.id:
                self.fail(
                    f"servers[{wanted.index}]: two servers to pin are named {wanted.name!r} ({ids[wanted.name]} and"
                    f" {wanted.id}); one name can pin only one server; nothing was changed"
                )
            if not up_to_date(wanted, pins) and all(w.name != wanted.name for w in todo):
                todo.append(wanted)
        self.read_keys(todo)
        read = {w.name: w for w in todo}
        return self.update(lambda current: self.pin(current, items, read))

    def update(self, plan):
        """Apply ``plan(text) -> (new text, result)`` to the file. The file is read
        again under a lock on its folder (the slow console reads stay outside it),
        so tasks writing the same file at once (one per host, delegated to the
        control node) never lose each other's lines."""
        path = self.params["path"]
        if self.check_mode:
            text = self.file_text()
            return self.finish(text, *plan(text))
        with locked(os.path.dirname(os.path.abspath(path))):
            text = self.file_text()
            new_text, result = plan(text)
            if new_text != text:
                try:
                    write_known_hosts(path, new_text)
                except OSError as exc:
                    self.fail(f"cannot write {path}: {exc.strerror or exc}; the file was left as it was")
        return self.finish(text, new_text, result)

    def pin(self, text, items, read):
        """(new text, result) pinning the keys ``read`` ({name: Wanted with keys}) in ``text``."""
        pins = read_pins(text)
        updates, conflicts, previous = {}, [], {}
        for name, wanted in read.items():
            new = {k.key_type: k.key for k in wanted.keys}
            pin = pins.get(name)
            if pin is not None and pin.keys != new:
                if not self.params["repin"]:
                    conflicts.append((wanted, pin, new))
                    continue
                previous[name] = {"id": pin.server_id, "fingerprints": pin.fingerprints}
            if pin is None or pin.keys != new or pin.server_id != wanted.id:
                updates[name] = (wanted.id, wanted.keys)
        if conflicts:
            self.fail(self.conflict_message(conflicts))
        pinned = []
        for wanted in items:
            if wanted.name in updates:
                server_id, keys = updates[wanted.name]
                fingerprints = [k.fingerprint for k in keys]
            elif wanted.name in read or up_to_date(wanted, pins):
                pin = pins[wanted.name]
                server_id, fingerprints = pin.server_id, pin.fingerprints
            else:  # pinned at the start of the task, pinned otherwise now
                self.fail(
                    f"the pin of server {wanted.name!r} in {self.params['path']} was changed by someone else while"
                    " this task ran; run it again. Nothing was changed"
                )
            entry = {"name": wanted.name, "id": server_id, "fingerprints": fingerprints}
            entry["changed"] = wanted.name in updates
            if wanted.name in previous:
                entry["previous"] = previous[wanted.name]
                self.warn(
                    f"re-pinned server {wanted.name!r}: keys {', '.join(previous[wanted.name]['fingerprints'])}"
                    f" (server id {previous[wanted.name]['id']}) replaced by {', '.join(fingerprints)}"
                    f" (server id {server_id})"
                )
            pinned.append(entry)
        new_text = update_known_hosts(text, updates) if updates else text
        return new_text, {"pinned": pinned}

    def conflict_message(self, conflicts):
        parts = []
        for wanted, pin, new in conflicts:
            old_prints = ", ".join(pin.fingerprints) or "none"
            new_prints = ", ".join(sha256_fingerprint(new[t]) for t in sorted(new))
            parts.append(
                f"the SSH host keys of server {wanted.name!r} differ from the keys pinned in"
                f" {self.params['path']}: pinned {old_prints} (server id {pin.server_id or 'not recorded'}),"
                f" now {new_prints} (server id {wanted.id})"
            )
        names = [w.name for w, _, _ in conflicts]
        commands = "; ".join(REPIN_COMMAND.format(name=n) for n in names)
        return (
            "; ".join(parts) + ". If the server was re-created on purpose, re-pin it: " + commands + "."
            " If not, someone else may be answering for it: do not connect. Nothing was changed"
        )

    def unpin(self, text, items):
        """(new text, result) without the lines of the names (or pinned ids) in ``items``."""
        pins = read_pins(text)
        by_id = {p.server_id: p.name for p in pins.values() if p.server_id}
        names = []
        for wanted in items:
            name = wanted.name or by_id.get(wanted.id) or wanted.text
            if name in pins and name not in names:
                names.append(name)
        new_text = update_known_hosts(text, remove=names) if names else text
        return new_text, {"removed": names}

    def finish(self, text, new_text, result):
        path = self.params["path"]
        changed = new_text != text
        result.update(changed=changed, path=path)
        if self.ansible._diff and changed:
            result["diff"] = {"before": text, "after": new_text, "before_header": path, "after_header": path}
        return result


def up_to_date(wanted, pins):
    """Pinned under its name with the same server id: nothing to do, no API call."""
    return wanted.known and wanted.name in pins and pins[wanted.name].server_id == wanted.id


def looks_like_id(text):
    """True for a UUID (with or without dashes), the form of Nova server ids."""
    hexed = (text or "").replace("-", "")
    return len(hexed) == 32 and all(c in "0123456789abcdefABCDEF" for c in hexed)


def main():
    KnownHostsModule()()


if __name__ == "__main__":
    main()
