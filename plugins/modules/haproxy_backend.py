#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

from __future__ import annotations

import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.monoscape.paas.plugins.module_utils.haproxy_runtime import (
    HEALTHY_CHECKS,
    CheckSettings,
    HAProxyError,
    RuntimeAPI,
    Server,
    check_address,
    check_haproxy_name,
    default_server_options,
    parse_block,
    parse_time,
    render_config,
    server_line,
)
from ansible_collections.monoscape.paas.plugins.module_utils.locking import locked

DOCUMENTATION = r"""
---
module: haproxy_backend
short_description: Manage the servers of an HAProxy backend through the Runtime API, persisted to its config fragment
version_added: "0.1.0"
description:
  - Makes the membership of one HAProxy backend what is asked for, without a reload, through HAProxy's
    Runtime API (the C(stats socket) at C(level admin)). It adds servers with health checks, changes weights
    and addresses, drains a server and waits until it has no session left, puts it in maintenance, deletes it.
  - Writes the resulting membership to the backend's configuration fragment (between marker lines) so that
    a later reload keeps it; the fragment is validated with I(validate) before it is written.
    Servers in C(drain) or C(maint) are persisted as C(disabled).
  - Never reloads HAProxy. A new server is added in maintenance, its health checks are enabled, and it is
    set ready only then; with I(wait) the module returns once HAProxy's checks see it UP.
  - The C(enabled) keyword is never used on C(add server) (on HAProxy 2.6 such a server looks UP but gets
    no traffic, and deleting it corrupts the backend).
  - Servers not listed are left alone unless I(purge=true).
  - HAProxy applies a backend's C(default-server) line only to the servers of its configuration files, not
    to servers added at run time. The module reads the C(default-server) keywords of the backend's section in
    I(config_file) (failover settings such as C(fastinter), C(downinter), C(observe), C(error-limit),
    C(on-error), C(on-marked-down), C(slowstart)) and gives them to every server it adds, and writes them on
    the persisted server lines. C(weight), C(check), C(inter), C(fall) and C(rise) come from the module's own
    options. A server running with other keywords than the current ones is drained, deleted and added again,
    as for changed check settings.
  - Several tasks may run at once against the same load balancer, e.g. nodes of a rolling batch
    delegating to it. Writes to the fragment are serialised with a lock on its folder, and each write
    reflects what HAProxy runs at that moment.
  - Needs HAProxy 2.6 or later (dynamic servers with health checks); fails with a clear message otherwise,
    and when the socket is missing, refuses connections or is not at C(level admin).
author:
  - Monoscape developers
options:
  backend:
    description:
      - Name of the backend (HAProxy proxy). It must already be loaded by HAProxy, with a dynamic balance
        algorithm (C(roundrobin), C(leastconn), C(first), C(random)).
      - The module waits up to I(timeout) seconds for it to appear, e.g. right after a reload.
    type: str
    required: true
  check:
    description:
      - Health-check new servers (C(check) on the server line, then C(enable health)). The check itself
        (C(option httpchk), C(http-check ...)) comes from the backend's configuration.
      - A server whose check settings differ from the ones asked for is drained, deleted and added again.
    type: bool
    default: true
  check_fall:
    description: Consecutive failed checks that mark a server DOWN.
    type: int
    default: 2
  check_inter:
    description: Interval between two health checks (HAProxy time format, e.g. C(2s), C(500ms)).
    type: str
    default: 2s
  check_rise:
    description: Consecutive successful checks that mark a server UP.
    type: int
    default: 1
  config_file:
    description:
      - The backend's configuration fragment. It must exist and declare C(backend <backend>); the module
        owns the lines between its marker comments, and appends them at the end of the file the first time
        (so C(backend <backend>) must then be the file's last section).
    type: path
    required: true
  purge:
    description:
      - Remove (drain, then delete) servers of the backend that are not in I(servers).
      - With C(false), only the listed servers are touched, which is what a rolling update of one node needs.
    type: bool
    default: false
  servers:
    description: The servers wanted in the backend.
    type: list
    elements: dict
    default: []
    suboptions:
      address:
        description:
          - IP address of the server. Names are refused, since the Runtime API does not resolve them.
          - Required unless I(state=absent).
        type: str
      name:
        description: Server name, unique in the backend (letters, digits, C(-), C(_), C(.), C(:)).
        type: str
        required: true
      port:
        description: TCP port of the server. Required unless I(state=absent).
        type: int
      state:
        description:
          - C(ready) takes traffic (with I(wait), the module waits until health checks see it UP).
          - C(drain) takes no new traffic; with I(wait), the module waits until no session is left.
          - C(maint) is drained first (waiting as for C(drain)), then put in maintenance.
          - C(absent) is drained, put in maintenance, its checks disabled, then deleted.
        type: str
        choices: [ready, drain, maint, absent]
        default: ready
      weight:
        description: Weight of the server (0-256).
        type: int
        default: 1
  socket:
    description: Path of HAProxy's Runtime API socket (C(stats socket ... level admin)).
    type: path
    default: /run/haproxy/admin.sock
  timeout:
    description:
      - Seconds to wait, when I(wait) is set, for a drained server to have no session left, for a ready
        server to pass its health checks, and for the backend to appear in HAProxy. The module fails when
        one of these takes longer.
    type: int
    default: 60
  validate:
    description:
      - Command that validates the candidate fragment before it is written; C(%s) is replaced by the
        path of the candidate (in the same folder, with a C(.tmp) suffix HAProxy does not load).
      - The load_balancer role installs C(/usr/local/lib/monoscape/haproxy-check-fragment <fragment> %s),
        which runs C(haproxy -c) on the whole configuration with the candidate in place of the fragment.
      - The candidate is validated before any runtime change, and again before it is written.
    type: str
  wait:
    description: Wait for drains to finish and for ready servers to be UP (see I(timeout)).
    type: bool
    default: true
notes:
  - Check mode is supported; nothing is sent to HAProxy but reads, and the fragment is not written.
  - Diff mode shows the fragment before and after.
  - "Runtime order: new and re-enabled servers first, then weight and address changes, then drains,
    maintenance and deletions, so that capacity never drops more than asked."
seealso:
  - name: HAProxy management guide, Runtime API
    description: The commands this module sends (add server, set server, set weight, del server, ...).
    link: https://docs.haproxy.org/2.6/management.html#9.3
"""

EXAMPLES = r"""
- name: Two app instances behind the app's backend
  monoscape.paas.haproxy_backend:
    backend: app.demo.hello
    config_file: /etc/haproxy/conf.d/50-app.demo.hello.cfg
    validate: /usr/local/lib/monoscape/haproxy-check-fragment /etc/haproxy/conf.d/50-app.demo.hello.cfg %s
    purge: true
    servers:
      - {name: node1-1, address: 10.0.0.11, port: 9081, weight: 10}
      - {name: node2-1, address: 10.0.0.12, port: 9081, weight: 10}

- name: Drain one node's instance before restarting it (rolling update, delegated to the load balancer)
  monoscape.paas.haproxy_backend:
    backend: app.demo.hello
    config_file: /etc/haproxy/conf.d/50-app.demo.hello.cfg
    servers:
      - {name: node1-1, address: 10.0.0.11, port: 9081, weight: 10, state: maint}
    timeout: 120
  delegate_to: lb1

- name: Put it back once it is healthy
  monoscape.paas.haproxy_backend:
    backend: app.demo.hello
    config_file: /etc/haproxy/conf.d/50-app.demo.hello.cfg
    servers:
      - {name: node1-1, address: 10.0.0.11, port: 9081, weight: 10, state: ready}
  delegate_to: lb1

- name: Empty the backend (undeploy)
  monoscape.paas.haproxy_backend:
    backend: app.demo.hello
    config_file: /etc/haproxy/conf.d/50-app.demo.hello.cfg
    servers: []
    purge: true
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, would be done), in order.
  returned: always
  type: list
  elements: str
  sample: ["add node1-1 10.0.0.11:9081 weight 10", "enable health node1-1", "ready node1-1", "drain node2-1"]
backend:
  description: The backend.
  returned: always
  type: str
  sample: app.demo.hello
config_changed:
  description: Whether the fragment was (or would be) rewritten.
  returned: always
  type: bool
haproxy_version:
  description: Version of the HAProxy behind the socket.
  returned: always
  type: str
  sample: 2.6.12-1+deb12u4
server_options:
  description:
    - Keywords of the backend's C(default-server) line given to the servers the module adds (see the
      description), less those set by the module's own options.
  returned: always
  type: list
  elements: str
  sample: [fastinter, 500ms, downinter, 1s, observe, layer4, error-limit, "3", on-error, mark-down]
servers:
  description: Every server of the backend after the run (predicted in check mode), sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Server name.
      type: str
    address:
      description: IP address.
      type: str
    port:
      description: Port.
      type: int
    weight:
      description: Current weight.
      type: int
    state:
      description: Administrative state, C(ready), C(drain) or C(maint).
      type: str
    status:
      description: HAProxy's status (C(UP), C(DOWN), C(MAINT), C(DRAIN), C(no check), ...).
      type: str
    check_status:
      description: Result of the last health check (C(L7OK), C(L4CON), C(L7STS), ...).
      type: str
    health_checks:
      description: Whether health checks are enabled.
      type: bool
    sessions:
      description: Current sessions on the server.
      type: int
  sample:
    - {name: node1-1, address: 10.0.0.11, port: 9081, weight: 10, state: ready, status: UP,
       check_status: L7OK, health_checks: true, sessions: 0}
"""


class BackendMembership:
    def __init__(self, module: AnsibleModule, api: RuntimeAPI):
        self.module = module
        self.api = api
        p = module.params
        self.backend = p["backend"]
        self.config_file = p["config_file"]
        self.wait = p["wait"]
        self.timeout = p["timeout"]
        self.check = CheckSettings(p["check"], p["check_inter"], p["check_fall"], p["check_rise"])
        self.actions: list[str] = []
        self.desired = self._desired(p["servers"])
        self.purge = p["purge"]

    # --- input --------------------------------------------------------------------------
    def _desired(self, servers: list[dict]) -> dict[str, dict]:
        check_haproxy_name("backend", self.backend)
        parse_time(self.check.inter)
        if self.check.fall < 1 or self.check.rise < 1:
            raise HAProxyError("check_fall and check_rise must be at least 1")
        result = {}
        for item in servers:
            name = check_haproxy_name("server", item["name"])
            if name in result:
                raise HAProxyError(f"server {name!r} is listed twice in servers")
            if item["state"] != "absent":
                for key in ("address", "port"):
                    if item.get(key) in (None, ""):
                        raise HAProxyError(f"server {name!r} needs {key} (required unless state is absent)")
                check_address(item["address"])
                if not 0 < item["port"] < 65536:
                    raise HAProxyError(f"server {name!r}: port {item['port']} is not in 1-65535")
            if not 0 <= item["weight"] <= 256:
                raise HAProxyError(f"server {name!r}: weight {item['weight']} is not in 0-256")
            result[name] = dict(item)
        return result

    # --- plan ---------------------------------------------------------------------------
    def plan(self, current: dict[str, Server], persisted: dict[str, dict]) -> list[tuple]:
        """Steps as tuples (kind, name, *args), in the order they run: re-creations'
        deletions, additions, address/weight/health updates, servers made ready, then
        drains, maintenance and deletions -- capacity first, removals last."""
        recreate, adds, updates, readies, drains = [], [], [], [], []
        wanted = dict(self.desired)
        if self.purge:
            for name in current:
                wanted.setdefault(name, {"name": name, "state": "absent", "weight": 0})
        for name, want in sorted(wanted.items()):
            cur = current.get(name)
            if want["state"] == "absent":
                if cur is not None:
                    drains.append(("remove", name, cur.state, cur.check_enabled))
                continue
            target = Server(name, want["address"], want["port"], want["weight"], want["state"])
            if cur is not None and self._needs_recreate(cur, persisted.get(name)):
                recreate.append(("remove", name, cur.state, cur.check_enabled))
                cur = None
            if cur is None:
                adds.append(("add", name, target))
                if target.state == "ready":
                    readies.append(("state", name, "new", "ready"))
                continue
            if (cur.address, cur.port) != (target.address, target.port):
                updates.append(("addr", name, target.address, target.port))
            if cur.weight != target.weight:
                updates.append(("weight", name, cur.weight, target.weight))
            if self.check.enabled and not cur.check_enabled:
                updates.append(("health", name))
            if cur.state != target.state:
                step = ("state", name, cur.state, target.state)
                (readies if target.state == "ready" else drains).append(step)
        return recreate + adds + updates + readies + drains

    def _needs_recreate(self, cur: Server, persisted: dict | None) -> bool:
        if cur.check_configured != self.check.enabled:
            return True
        return persisted is not None and persisted["check"] != self.check

    # --- simulate (check mode) ---------------------------------------------------------
    def simulate(self, current: dict[str, Server], steps: list[tuple]) -> dict[str, Server]:
        servers = {n: Server(**vars(s)) for n, s in current.items()}
        for step in steps:
            kind, name = step[0], step[1]
            self.actions.append(self.describe(step))
            if kind == "remove":
                servers.pop(name, None)
            elif kind == "add":
                srv = Server(**vars(step[2]))
                srv.state = "maint" if srv.state == "ready" else srv.state
                srv.check_configured = srv.check_enabled = self.check.enabled
                servers[name] = srv
            elif kind == "addr":
                servers[name].address, servers[name].port = step[2], step[3]
            elif kind == "weight":
                servers[name].weight = step[3]
            elif kind == "health":
                servers[name].check_enabled = True
            elif kind == "state":
                servers[name].state = step[3]
        return servers

    def describe(self, step: tuple) -> str:
        kind, name = step[0], step[1]
        if kind == "add":
            srv = step[2]
            return f"add {name} {srv.address}:{srv.port} weight {srv.weight}"
        if kind == "remove":
            return f"delete {name}"
        if kind == "addr":
            return f"address {name} {step[2]}:{step[3]}"
        if kind == "weight":
            return f"weight {name} {step[2]} -> {step[3]}"
        if kind == "health":
            return f"enable health {name}"
        return f"{step[3]} {name}"

    # --- apply --------------------------------------------------------------------------
    def apply(self, steps: list[tuple]) -> None:
        be = self.backend
        readies = [s for s in steps if s[0] == "state" and s[3] == "ready"]
        removes = [s for s in steps if s[0] == "remove"]
        recreated = {s[1] for s in steps if s[0] == "add"} & {s[1] for s in removes}
        # 1. deletions of servers that are added again with other check settings
        self._remove([s for s in removes if s[1] in recreated])
        # 2. additions (in maintenance, health checks on), 3. updates
        for step in steps:
            kind, name = step[0], step[1]
            if kind == "add":
                srv = step[2]
                self.api.add_server(be, srv, self.check)
                self.actions.append(self.describe(step))
                if self.check.enabled:
                    self.api.health(be, name, True)
                if srv.state == "drain":
                    self.api.set_state(be, name, "drain")
                    self.actions.append(f"drain {name}")
            elif kind == "addr":
                self.api.set_addr(be, name, step[2], step[3])
                self.actions.append(self.describe(step))
            elif kind == "weight":
                self.api.set_weight(be, name, step[3])
                self.actions.append(self.describe(step))
            elif kind == "health":
                self.api.health(be, name, True)
                self.actions.append(self.describe(step))
        # 4. servers that take traffic again
        if readies:
            self._ready([s[1] for s in readies], paused=[s[1] for s in readies if s[2] == "maint"])
        # 5. drains, maintenance, deletions
        drains = [s for s in steps if s[0] == "state" and s[3] != "ready"]
        for _, name, before, target in drains:
            if before == "ready" or target == "drain":
                self.api.set_state(be, name, "drain")
                self.actions.append(f"drain {name}")
        self._remove([s for s in removes if s[1] not in recreated], also_wait=[s[1] for s in drains])
        for _, name, _, target in drains:
            if target == "maint":
                self.api.set_state(be, name, "maint")
                self.actions.append(f"maint {name}")

    def _remove(self, steps: list[tuple], also_wait: tuple | list = ()) -> None:
        be = self.backend
        for _, name, state, _ in steps:
            if state == "ready":
                self.api.set_state(be, name, "drain")
                self.actions.append(f"drain {name}")
        names = [s[1] for s in steps] + list(also_wait)
        if names and self.wait:
            self._wait_sessions(names)
        for _, name, _, check_enabled in steps:
            self.api.set_state(be, name, "maint")
            if check_enabled:
                self.api.health(be, name, False)
            self.api.del_server(be, name, self.timeout)
            self.actions.append(f"delete {name}")

    def _ready(self, names: list[str], paused: list[str]) -> None:
        """Put servers in service. HAProxy counts a server UP as soon as it leaves
        maintenance, before any check ran, so wait for a passed check first. Checks
        are paused in maintenance and the result shown on leaving it is stale: a
        paused server spends one check interval in drain (checked, no traffic)."""
        if self.wait and self.check.enabled:
            for name in paused:
                self.api.set_state(self.backend, name, "drain")
            if paused:
                time.sleep(parse_time(self.check.inter) + 0.25)
            self._wait_all(names, lambda srv: srv.check_status in HEALTHY_CHECKS, "pass its health check")
        for name in names:
            self.api.set_state(self.backend, name, "ready")
            self.actions.append(f"ready {name}")
        if self.wait:
            self._wait_all(names, lambda srv: srv.up, "come UP")

    def _wait_all(self, names: list[str], done, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            servers = self.api.servers(self.backend)
            pending = [n for n in names if n not in servers or not done(servers[n])]
            if not pending:
                return
            if time.monotonic() >= deadline:
                detail = "; ".join(
                    f"{n}: {servers[n].status}, last check {servers[n].check_status} {servers[n].check_desc}".strip()
                    if n in servers
                    else f"{n}: gone"
                    for n in pending
                )
                raise HAProxyError(
                    f"backend {self.backend}: server(s) did not {what} within {self.timeout} s ({detail}); "
                    "they get no traffic until their health checks pass"
                )
            time.sleep(0.25)

    def _wait_sessions(self, names: list[str]) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            servers = self.api.servers(self.backend)
            busy = {n: servers[n].sessions + servers[n].queued for n in names if n in servers}
            busy = {n: count for n, count in busy.items() if count}
            if not busy:
                return
            if time.monotonic() >= deadline:
                detail = ", ".join(f"{n}: {c}" for n, c in sorted(busy.items()))
                raise HAProxyError(
                    f"servers of backend {self.backend} still have sessions after {self.timeout} s of draining "
                    f"({detail}); raise timeout, or find the long-lived connections"
                )
            time.sleep(0.5)

    # --- persistence --------------------------------------------------------------------
    def render(self, text: str, servers: dict[str, Server], persisted: dict[str, dict]) -> str:
        lines = []
        for name in sorted(servers):
            keep = name not in self.desired and name in persisted
            check = persisted[name]["check"] if keep else self.check
            lines.append(server_line(servers[name], check))
        return render_config(text, self.backend, lines, self.config_file)

    def validate(self, content: str) -> None:
        command = self.module.params["validate"]
        if not command:
            return
        directory = os.path.dirname(self.config_file) or "."
        fd, candidate = tempfile.mkstemp(prefix=".haproxy_backend.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            if "%s" not in command:
                raise HAProxyError(f"validate must contain %s (the candidate's path): {command!r}")
            rc, out, err = self.module.run_command(command % candidate)
            if rc != 0:
                detail = (out + err).strip()
                raise HAProxyError(
                    f"the new {self.config_file} fails validation ({command % candidate}, rc={rc}): {detail}"
                )
        finally:
            if os.path.exists(candidate):
                os.unlink(candidate)

    def write(self, content: str) -> None:
        directory = os.path.dirname(self.config_file) or "."
        fd, tmp = tempfile.mkstemp(prefix=".haproxy_backend.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        self.module.atomic_move(tmp, self.config_file)


def read_file(path: str) -> str:
    if not os.path.isfile(path):
        raise HAProxyError(
            f"config_file {path} does not exist: write the backend's fragment (with `backend ...`) and reload "
            "HAProxy first (load_balancer role, tasks_from: backend)"
        )
    with open(path) as handle:
        return handle.read()


def run(module: AnsibleModule) -> dict:
    p = module.params
    api = RuntimeAPI(p["socket"], timeout=10.0)
    version = api.require_version()
    job = BackendMembership(module, api)
    current = api.wait_backend(job.backend, float(p["timeout"]))
    text = read_file(job.config_file)
    job.check.options = default_server_options(text, job.backend)
    persisted = parse_block(text)
    steps = job.plan(current, persisted)

    predicted = job.simulate(current, steps)
    candidate = job.render(text, predicted, persisted)
    result = {
        "backend": job.backend,
        "haproxy_version": version,
        "server_options": list(job.check.options),
        "changed": bool(steps) or candidate != text,
        "config_changed": candidate != text,
    }
    if module._diff:
        result["diff"] = {"before": text, "after": candidate, "before_header": job.config_file}
        result["diff"]["after_header"] = job.config_file
    if module.check_mode:
        result["actions"] = job.actions
        result["servers"] = [predicted[n].as_dict() for n in sorted(predicted)]
        return result
    if candidate != text:
        job.validate(candidate)  # refuse before touching the runtime

    job.actions = []
    error = None
    try:
        job.apply(steps)
    except HAProxyError as exc:
        error = exc
    # persist what HAProxy really runs now (also after a failure half-way)
    with locked(os.path.dirname(job.config_file) or "."):
        final = api.servers(job.backend)
        text_now = read_file(job.config_file)
        persisted_now = parse_block(text_now)
        content = job.render(text_now, final, persisted_now)
        if content != text_now:
            job.validate(content)
            job.write(content)
    result.update(
        actions=job.actions,
        changed=bool(job.actions) or content != text_now,
        config_changed=content != text_now or candidate != text,
        servers=[final[n].as_dict() for n in sorted(final)],
    )
    if module._diff:
        result["diff"]["after"] = content
    if error is not None:
        raise _Failed(str(error), result)
    return result


class _Failed(Exception):
    def __init__(self, msg: str, result: dict):
        super().__init__(msg)
        self.result = result


def main():
    server_spec = {
        "address": {"type": "str"},
        "name": {"type": "str", "required": True},
        "port": {"type": "int"},
        "state": {"type": "str", "default": "ready", "choices": ["ready", "drain", "maint", "absent"]},
        "weight": {"type": "int", "default": 1},
    }
    module = AnsibleModule(
        argument_spec={
            "backend": {"type": "str", "required": True},
            "check": {"type": "bool", "default": True},
            "check_fall": {"type": "int", "default": 2},
            "check_inter": {"type": "str", "default": "2s"},
            "check_rise": {"type": "int", "default": 1},
            "config_file": {"type": "path", "required": True},
            "purge": {"type": "bool", "default": False},
            "servers": {"type": "list", "elements": "dict", "default": [], "options": server_spec},
            "socket": {"type": "path", "default": "/run/haproxy/admin.sock"},
            "timeout": {"type": "int", "default": 60},
            "validate": {"type": "str"},
            "wait": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except _Failed as exc:
        module.fail_json(msg=str(exc), **exc.result)
    except HAProxyError as exc:
        module.fail_json(msg=str(exc), changed=False)


if __name__ == "__main__":
    main()
