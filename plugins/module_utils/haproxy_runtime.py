# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""HAProxy's Runtime API (the ``stats socket`` at ``level admin``) and the
persisted server block of a backend's configuration fragment.

Facts this relies on, measured with HAProxy 2.6 (Debian 12):

- ``add server`` needs a backend with a dynamic balance algorithm; a new server
  starts in maintenance with health checks off (``enable health`` turns them on).
  The ``enabled`` keyword must never be used on ``add server``.
- ``default-server`` lines are not inherited by runtime-added servers: every
  option is spelled out on the ``add server`` line.
- ``del server`` needs the server in maintenance with no session attached.
- A reload forgets runtime-added servers: the membership is also written to the
  backend's fragment, between the markers below, so a reload keeps it.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import os
import re
import socket
import time
from dataclasses import dataclass, field

from ansible_collections.monoscape.paas.plugins.module_utils.monoscape_package import HAPROXY_NAME_MAX_LEN

MIN_VERSION = (2, 6)
DEFAULT_SOCKET = "/run/haproxy/admin.sock"

# srv_admin_state bits (include/haproxy/server-t.h)
ADMF_FMAINT = 0x01
ADMF_MAINT = 0x23  # forced, inherited or resolution maintenance
ADMF_DRAIN = 0x18  # forced or inherited drain
# srv_check_state bits (include/haproxy/check-t.h)
CHK_ST_CONFIGURED = 0x02
CHK_ST_ENABLED = 0x04

BLOCK_BEGIN = "# BEGIN servers managed by monoscape.paas.haproxy_backend (Runtime API; do not edit)"
BLOCK_END = "# END servers managed by monoscape.paas.haproxy_backend"

# HAProxy's names of backends and servers (app.<tenant>.<app>, <host>-<n>): not the
# tenant and app name rule (monoscape_package.NAME_PATTERN), a wider one. Its length
# limit is monoscape_package's, which bounds a tenant and an app together by it.
HAPROXY_NAME_CHAR_CLASS = "A-Za-z0-9_.:-"
HAPROXY_NAME_RE = re.compile(rf"[{HAPROXY_NAME_CHAR_CLASS}]{{1,{HAPROXY_NAME_MAX_LEN}}}")
HAPROXY_NAME_CHAR_RE = re.compile(rf"[{HAPROXY_NAME_CHAR_CLASS}]")
SECTION_RE = re.compile(
    r"^\s*(global|defaults|frontend|backend|listen|peers|resolvers|userlist|program|http-errors|ring|mailers|cache)"
    r"(?:\s+(\S+))?\s*(?:#.*)?$"
)
SERVER_LINE_RE = re.compile(r"^\s*server\s+(?P<name>\S+)\s+(?P<addr>\S+)(?P<opts>.*)$")
HEALTHY_CHECKS = ("L4OK", "L6OK", "L7OK", "L7OKC")


class HAProxyError(Exception):
    """Something the caller must fix; the message says what."""


# server keywords the module sets itself, with the number of values each takes
MANAGED_KEYWORDS = {"weight": 1, "check": 0, "inter": 1, "fall": 1, "rise": 1, "disabled": 0, "enabled": 0}


@dataclass
class CheckSettings:
    """Health-check options of a server line (``check inter 2s fall 2 rise 1``), then
    the backend's other server keywords (``options``: its ``default-server`` line,
    e.g. ``fastinter 500ms observe layer4 on-error mark-down slowstart 5s``)."""

    enabled: bool = True
    inter: str = "2s"
    fall: int = 2
    rise: int = 1
    options: tuple[str, ...] = ()

    def words(self) -> list[str]:
        checks = ["check", "inter", self.inter, "fall", str(self.fall), "rise", str(self.rise)] if self.enabled else []
        return checks + list(self.options)


def strip_managed(words: list[str]) -> tuple[str, ...]:
    """``words`` of a server or default-server line without the keywords the module
    sets itself (weight, check, inter, fall, rise, disabled, enabled) and their values."""
    kept: list[str] = []
    index = 0
    while index < len(words):
        arity = MANAGED_KEYWORDS.get(words[index])
        if arity is None:
            kept.append(words[index])
            index += 1
        else:
            index += 1 + arity
    return tuple(kept)


def default_server_options(text: str, backend: str) -> tuple[str, ...]:
    """Keywords of the ``default-server`` line(s) of section ``backend <backend>`` in
    ``text``, less those the module manages. HAProxy applies default-server only to
    the servers of its configuration files, not to servers added at run time: the
    module passes them itself, so both kinds of server get the same settings."""
    words: list[str] = []
    inside = False
    for row in text.splitlines():
        section = SECTION_RE.match(row)
        if section:
            inside = section.group(1) == "backend" and section.group(2) == backend
            continue
        if inside and row.split("#", 1)[0].split()[:1] == ["default-server"]:
            words.extend(row.split("#", 1)[0].split()[1:])
    return strip_managed(words)


@dataclass
class Server:
    """A server as HAProxy runs it (or as it is wanted)."""

    name: str
    address: str
    port: int
    weight: int = 1
    state: str = "ready"  # ready | drain | maint
    check_configured: bool = False
    check_enabled: bool = False
    status: str = ""  # show stat: UP, DOWN, MAINT, DRAIN, no check, UP 1/2 ...
    check_status: str = ""
    check_desc: str = ""
    sessions: int = 0
    queued: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def up(self) -> bool:
        """In service as far as health checks go (UP, or not checked)."""
        return self.status.startswith("UP") or self.status == "no check"

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "weight": self.weight,
            "state": self.state,
            "status": self.status,
            "check_status": self.check_status,
            "health_checks": self.check_enabled,
            "sessions": self.sessions,
        }


def parse_version(text: str) -> tuple[int, int]:
    match = re.match(r"^(\d+)\.(\d+)", text)
    if not match:
        raise HAProxyError(f"cannot parse the HAProxy version {text!r}")
    return int(match.group(1)), int(match.group(2))


def parse_time(value: str) -> float:
    """Seconds in an HAProxy time value (``2s``, ``500ms``, ``1m``; a bare number is milliseconds)."""
    match = re.match(r"^(\d+)(us|ms|s|m|h|d)?$", value.strip())
    if not match:
        raise HAProxyError(f"{value!r} is not an HAProxy time (e.g. 2s, 500ms, 1m)")
    scale = {"us": 1e-6, "ms": 1e-3, None: 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return int(match.group(1)) * scale


def format_address(address: str, port: int) -> str:
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        return f"ipv6@{address}:{port}"
    return f"{address}:{port}"


def check_address(address: str) -> str:
    try:
        ipaddress.ip_address(address)
    except ValueError as exc:
        raise HAProxyError(
            f"server address {address!r} is not an IP address; HAProxy's Runtime API does not resolve names, "
            "give the node's IP address"
        ) from exc
    return address


def check_haproxy_name(kind: str, value: str) -> str:
    """`value` if HAProxy accepts it as the name of a backend or server (not the Monoscape
    tenant and app rule, which is monoscape_package.check_name)."""
    if not HAPROXY_NAME_RE.fullmatch(value or ""):
        bad = next((c for c in value if not HAPROXY_NAME_CHAR_RE.fullmatch(c)), None) if value else None
        what = f"has {bad!r}; " if bad else ""
        raise HAProxyError(
            f"{kind} name {value!r} {what}HAProxy names use 1-{HAPROXY_NAME_MAX_LEN} "
            "letters, digits, '-', '_', '.' or ':'"
        )
    return value


class RuntimeAPI:
    """One command per connection to HAProxy's stats socket (non-interactive mode)."""

    def __init__(self, path: str = DEFAULT_SOCKET, timeout: float = 10.0):
        self.path = path
        self.timeout = timeout
        self.log: list[str] = []

    def command(self, line: str) -> str:
        if not os.path.exists(self.path):
            raise HAProxyError(
                f"HAProxy Runtime API socket {self.path} does not exist: is HAProxy running on this host, and does "
                f"its global section declare `stats socket {self.path} level admin`? (the load_balancer role does)"
            )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except PermissionError as exc:
            raise HAProxyError(
                f"permission denied on HAProxy Runtime API socket {self.path}: run as root (become: true) "
                "or as a member of the socket's group (haproxy)"
            ) from exc
        except ConnectionRefusedError as exc:
            raise HAProxyError(
                f"HAProxy Runtime API socket {self.path} refuses connections: HAProxy is not running (stale socket)"
            ) from exc
        except OSError as exc:
            raise HAProxyError(f"HAProxy Runtime API socket {self.path}: {exc}") from exc
        finally:
            sock.close()
        self.log.append(line)
        return b"".join(chunks).decode(errors="replace").strip()

    # --- reads -------------------------------------------------------------------------
    def version(self) -> str:
        out = self.command("show info")
        for row in out.splitlines():
            key, _, value = row.partition(":")
            if key.strip() == "Version":
                return value.strip()
        if "Permission denied" in out or "Unknown command" in out:
            raise HAProxyError(f"HAProxy Runtime API socket {self.path} is not at `level admin`: {out}")
        raise HAProxyError(f"unexpected answer to `show info` on {self.path}: {out[:200]!r}")

    def require_version(self) -> str:
        version = self.version()
        if parse_version(version) < MIN_VERSION:
            need = ".".join(map(str, MIN_VERSION))
            raise HAProxyError(
                f"HAProxy {version} is too old: managing backend membership needs HAProxy {need} or later "
                "(dynamic servers with health checks through the Runtime API); Debian 12 ships 2.6"
            )
        return version

    def servers(self, backend: str) -> dict[str, Server]:
        """The backend's servers; raises HAProxyError('Can't find backend') if it is not loaded."""
        state = self.command(f"show servers state {backend}")
        if "Can't find backend" in state:
            raise BackendNotFound(backend)
        lines = [row for row in state.splitlines() if row.strip()]
        header = next((row for row in lines if row.startswith("# ")), None)
        if header is None:
            raise HAProxyError(f"unexpected answer to `show servers state {backend}`: {state[:200]!r}")
        names = header[2:].split()
        result: dict[str, Server] = {}
        for row in lines[lines.index(header) + 1 :]:
            values = dict(zip(names, row.split(), strict=False))
            admin = int(values.get("srv_admin_state", "0"))
            check_state = int(values.get("srv_check_state", "0"))
            if admin & ADMF_MAINT:
                admin_state = "maint"
            elif admin & ADMF_DRAIN:
                admin_state = "drain"
            else:
                admin_state = "ready"
            srv = Server(
                name=values["srv_name"],
                address=values.get("srv_addr", ""),
                port=int(values.get("srv_port", "0") or 0),
                weight=int(values.get("srv_uweight", "1")),
                state=admin_state,
                check_configured=bool(check_state & CHK_ST_CONFIGURED),
                check_enabled=bool(check_state & CHK_ST_ENABLED),
            )
            result[srv.name] = srv
        stat = self.command(f"show stat {backend} 4 -1")
        text = stat.lstrip("# ")
        for row in csv.DictReader(io.StringIO(text)):
            srv = result.get(row.get("svname", ""))
            if srv is None or row.get("pxname") != backend:
                continue
            srv.status = row.get("status", "")
            srv.check_status = row.get("check_status", "")
            srv.check_desc = row.get("check_desc", "")
            srv.sessions = int(row.get("scur") or 0)
            srv.queued = int(row.get("qcur") or 0)
        return result

    def wait_backend(self, backend: str, timeout: float) -> dict[str, Server]:
        """Servers of a backend, waiting up to ``timeout`` s for it to appear (right after a reload)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.servers(backend)
            except BackendNotFound:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    # --- writes ------------------------------------------------------------------------
    def _expect(self, line: str, ok: tuple[str, ...] = ("",)) -> str:
        out = self.command(line)
        if out in ok or any(o and out.startswith(o) for o in ok):
            return out
        raise HAProxyError(f"HAProxy refused `{line}`: {out}")

    def add_server(self, backend: str, srv: Server, check: CheckSettings) -> None:
        words = [
            "add server",
            f"{backend}/{srv.name}",
            format_address(srv.address, srv.port),
            "weight",
            str(srv.weight),
            *check.words(),
        ]
        # never `enabled`: the server would look UP but get no traffic (see module docs)
        self._expect(" ".join(words), ("New server registered.",))

    def del_server(self, backend: str, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            out = self.command(f"del server {backend}/{name}")
            if out == "Server deleted.":
                return
            if "still has connections" in out and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise HAProxyError(f"HAProxy refused `del server {backend}/{name}`: {out}")

    def set_state(self, backend: str, name: str, state: str) -> None:
        self._expect(f"set server {backend}/{name} state {state}")

    def set_weight(self, backend: str, name: str, weight: int) -> None:
        self._expect(f"set weight {backend}/{name} {weight}")

    def set_addr(self, backend: str, name: str, address: str, port: int) -> None:
        # HAProxy answers with what it changed (e.g. "IP changed from ... to ...")
        out = self.command(f"set server {backend}/{name} addr {address} port {port}")
        if "changed from" not in out and "no need to change" not in out:
            raise HAProxyError(f"HAProxy refused `set server {backend}/{name} addr {address} port {port}`: {out}")

    def health(self, backend: str, name: str, enable: bool) -> None:
        self._expect(f"{'enable' if enable else 'disable'} health {backend}/{name}")


class BackendNotFound(HAProxyError):
    def __init__(self, backend: str):
        super().__init__(
            f"backend {backend!r} is not loaded in HAProxy: write its configuration fragment and reload HAProxy "
            "first (load_balancer role, tasks_from: backend)"
        )
        self.backend = backend


# --- the persisted block -----------------------------------------------------------------
def server_line(srv: Server, check: CheckSettings) -> str:
    words = ["server", srv.name, format_address(srv.address, srv.port), "weight", str(srv.weight), *check.words()]
    if srv.state != "ready":
        # drain and maint are persisted as maintenance: after a reload the server
        # gets no traffic until it is set ready again
        words.append("disabled")
    return "    " + " ".join(words)


def parse_block(text: str) -> dict[str, dict]:
    """Servers persisted in the managed block: name -> {address, port, weight, check, disabled}."""
    lines = text.splitlines()
    try:
        start = _find_marker(lines, BLOCK_BEGIN)
        end = _find_marker(lines, BLOCK_END, start)
    except ValueError:
        return {}
    result = {}
    for row in lines[start + 1 : end]:
        match = SERVER_LINE_RE.match(row)
        if not match:
            continue
        opts = match.group("opts").split()
        address, _, port = match.group("addr").removeprefix("ipv6@").rpartition(":")
        check = CheckSettings(enabled="check" in opts, options=strip_managed(opts))
        for key in ("inter", "fall", "rise"):
            if key in opts and opts.index(key) + 1 < len(opts):
                value = opts[opts.index(key) + 1]
                setattr(check, key, value if key == "inter" else int(value))
        weight = int(opts[opts.index("weight") + 1]) if "weight" in opts else 1
        result[match.group("name")] = {
            "address": address,
            "port": int(port) if port.isdigit() else 0,
            "weight": weight,
            "check": check,
            "disabled": "disabled" in opts,
        }
    return result


def _find_marker(lines: list[str], marker: str, start: int = 0) -> int:
    for index in range(start, len(lines)):
        if lines[index].strip() == marker:
            return index
    raise ValueError(marker)


def render_config(text: str, backend: str, server_lines: list[str], path: str) -> str:
    """``text`` with the managed block of ``backend`` set to ``server_lines``.

    The block must sit in the ``backend <name>`` section: if the markers are
    missing, the backend must be the file's last section and the block is
    appended."""
    lines = text.splitlines()
    sections = [(i, m.group(1), m.group(2)) for i, row in enumerate(lines) if (m := SECTION_RE.match(row))]
    try:
        start = _find_marker(lines, BLOCK_BEGIN)
        end = _find_marker(lines, BLOCK_END, start)
    except ValueError:
        start = end = None
    anchor = start if start is not None else len(lines)
    owner = [s for s in sections if s[0] < anchor]
    if not owner or owner[-1][1] != "backend" or owner[-1][2] != backend:
        where = f"before the line {BLOCK_BEGIN!r}" if start is not None else "as the last section of the file"
        raise HAProxyError(f"{path} must declare `backend {backend}` {where} (it is the backend's config fragment)")
    block = [BLOCK_BEGIN, *server_lines, BLOCK_END]
    new = lines[:start] + block + lines[end + 1 :] if start is not None else lines + block
    return "\n".join(new) + "\n"
