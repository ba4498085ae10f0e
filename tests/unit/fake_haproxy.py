"""A fake HAProxy Runtime API on a UNIX socket, for unit tests of the
haproxy_backend module: the commands it sends, answered the way HAProxy 2.6
answers them (measured: /work/shared/notes/app-host-and-haproxy.md), with an
in-memory backend whose servers' health and sessions the test controls."""

from __future__ import annotations

import os
import socketserver
import threading
from dataclasses import dataclass

STATE_HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
    "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port "
    "srv_check_addr srv_agent_addr srv_agent_port"
)
STAT_HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,weight,check_status,check_desc,"


@dataclass
class FakeServer:
    name: str
    addr: str
    port: int
    weight: int = 1
    admin: int = 0x01  # runtime-added servers start in (forced) maintenance
    check_configured: bool = False
    check_enabled: bool = False
    check_words: str = ""
    healthy: bool = True
    sessions: int = 0
    # checks pause when a server is put in maintenance (not for a new server)
    paused: bool = False

    @property
    def running(self) -> bool:
        return not self.check_enabled or self.healthy

    def status(self) -> str:
        if self.admin & 0x23:
            return "MAINT"
        if not self.check_configured:
            return "no check"
        if self.admin & 0x18:
            return "DRAIN" if self.running else "DOWN"
        return "UP" if self.running else "DOWN"

    def check_status(self) -> str:
        if not self.check_enabled or self.paused:
            return ""
        return "L7OK" if self.healthy else "L7STS"


class FakeHAProxy:
    def __init__(self, path: str, version: str = "2.6.12-1+deb12u4", backends=("app.demo.hello",)):
        self.path = path
        self.version = version
        self.backends: dict[str, dict[str, FakeServer]] = {b: {} for b in backends}
        self.commands: list[str] = []
        self.violations: list[str] = []
        self.sessions_drop_per_poll = 1
        self._lock = threading.Lock()
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline().decode().strip()
                with fake._lock:
                    fake.commands.append(line)
                    answer = fake.answer(line)
                self.wfile.write(answer.encode())

        self.server = socketserver.ThreadingUnixStreamServer(path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    # --- helpers for tests ---------------------------------------------------------------
    def add(self, backend: str, name: str, addr: str, port: int, **kwargs) -> FakeServer:
        srv = FakeServer(name, addr, port, **kwargs)
        self.backends[backend][name] = srv
        return srv

    def writes(self) -> list[str]:
        """Commands that change something (everything but show ...)."""
        return [c for c in self.commands if not c.startswith("show ")]

    # --- the CLI -------------------------------------------------------------------------
    def answer(self, line: str) -> str:
        handlers = [
            ("show info", self._show_info),
            ("show servers state ", self._show_servers_state),
            ("show stat ", self._show_stat),
            ("add server ", self._add_server),
            ("enable health ", self._health),
            ("disable health ", self._health),
            ("set weight ", self._set_weight),
            ("del server ", self._del_server),
        ]
        words = line.split()
        for prefix, handler in handlers:
            if line.startswith(prefix):
                return handler(words)
        if line.startswith("set server ") and len(words) > 4 and words[3] == "state":
            return self._set_state(words)
        if line.startswith("set server ") and len(words) > 6 and words[3] == "addr":
            return self._set_addr(words)
        return "Unknown command.\n\n"

    def _show_info(self, words):
        return f"Name: HAProxy\nVersion: {self.version}\nRelease_date: 2026/10/17\n"

    def _show_servers_state(self, words):
        servers = self.backends.get(words[3])
        if servers is None:
            return "Can't find backend.\n\n"
        rows = ["1", STATE_HEADER]
        for i, s in enumerate(servers.values(), 1):
            check_state = (0x02 if s.check_configured else 0) | (0x04 if s.check_enabled else 0)
            rows.append(
                f"4 {words[3]} {i} {s.name} {s.addr} {2 if s.running else 0} {s.admin} {s.weight} {s.weight} "
                f"0 15 3 2 {check_state} 0 0 0 - {s.port} - 0 0 - - 0"
            )
        return "\n".join(rows) + "\n\n"

    def _show_stat(self, words):
        servers = self.backends.get(words[2], {})
        rows = [STAT_HEADER]
        for s in servers.values():
            desc = "Layer7 check passed" if s.check_status() == "L7OK" else ""
            rows.append(f"{words[2]},{s.name},0,0,{s.sessions},0,,0,{s.status()},{s.weight},{s.check_status()},{desc},")
            if s.admin & 0x19 and s.sessions:  # draining: sessions end over time
                s.sessions = max(0, s.sessions - self.sessions_drop_per_poll)
        return "\n".join(rows) + "\n\n"

    def _add_server(self, words):
        backend, name = words[2].split("/")
        if "enabled" in words:
            self.violations.append(" ".join(words))
        servers = self.backends[backend]
        if name in servers:
            return "Already exists a server with the same name in backend.\n\n"
        addr, port = words[3].removeprefix("ipv6@").rsplit(":", 1)
        opts = words[4:]
        weight = int(opts[opts.index("weight") + 1]) if "weight" in opts else 1
        servers[name] = FakeServer(
            name, addr, int(port), weight, check_configured="check" in opts, check_words=" ".join(opts)
        )
        return "New server registered.\n\n"

    def _health(self, words):
        srv = self._server(words[2])
        if srv is None:
            return "No such server.\n\n"
        srv.check_enabled = words[0] == "enable"
        return "\n"

    def _set_state(self, words):
        srv = self._server(words[2])
        if srv is None:
            return "No such server.\n\n"
        srv.admin = {"ready": 0, "drain": 0x08, "maint": 0x01}[words[4]]
        srv.paused = words[4] == "maint"
        return "\n"

    def _set_addr(self, words):
        srv = self._server(words[2])
        old = f"{srv.addr}:{srv.port}"
        srv.addr, srv.port = words[4], int(words[6])
        return f"IP changed from '{old}' to '{srv.addr}', port changed to '{srv.port}' by 'stats socket command'\n"

    def _set_weight(self, words):
        srv = self._server(words[2])
        if srv is None:
            return "No such server.\n\n"
        weight = int(words[3])
        if not 0 <= weight <= 256:
            return "Absolute weight can only be between 0 and 256 inclusive.\n\n"
        srv.weight = weight
        return "\n"

    def _del_server(self, words):
        backend, name = words[2].split("/")
        srv = self.backends[backend].get(name)
        if srv is None:
            return "No such server.\n\n"
        if not srv.admin & 0x01:
            return "Only servers in maintenance mode can be deleted.\n\n"
        if srv.sessions:
            return "Server still has connections attached to it, cannot remove it.\n\n"
        del self.backends[backend][name]
        return "Server deleted.\n\n"

    def _server(self, ref: str) -> FakeServer | None:
        backend, name = ref.split("/")
        return self.backends.get(backend, {}).get(name)
