#!/usr/bin/python3
"""Monoscape node status service, behind the node's nginx health server.

GET /health -> 200 "OK" when the node can serve: its configuration names a
               controller and every enabled app instance is active; else 503
               and one reason per line (what a load balancer health check reads).
GET /status -> 200, JSON: node, controller, image, Mono version, instances with
               their unit states, load, uptime, and the same verdict.

It listens on a unix socket (nginx proxies to it), reads the node's config
(node.conf, instances/*.env written by Ansible) and asks systemd for unit states
on every request: nothing is cached, so the answer is never stale.
Standard library only (python3 is on every node, Ansible needs it).
"""

import argparse
import datetime
import http.server
import json
import os
import pathlib
import socket
import socketserver
import subprocess

INSTANCE_UNIT = "monoscape-app@{}.service"


def read_env(path):
    """KEY=VALUE lines (systemd EnvironmentFile syntax, no quoting) -> dict; {} if absent."""
    values = {}
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def list_instances(config_dir):
    """App instances configured on this node: one instances/<name>.env each (mono_runtime)."""
    found = []
    for env_file in sorted(pathlib.Path(config_dir, "instances").glob("*.env")):
        env = read_env(env_file)
        port = env.get("MONOSCAPE_PORT", "")
        found.append(
            {
                "name": env_file.stem,
                "tenant": env.get("MONOSCAPE_TENANT"),
                "app": env.get("MONOSCAPE_APP"),
                "port": int(port) if port.isdigit() else None,
            }
        )
    return found


def systemctl_show(units):
    """{unit: {ActiveState, SubState, UnitFileState}} from one `systemctl show` call."""
    if not units:
        return {}
    proc = subprocess.run(
        ["systemctl", "show", "--property=Id,ActiveState,SubState,UnitFileState", "--", *units],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"systemctl show failed: {proc.stderr.strip() or proc.returncode}")
    states = {}
    for block in proc.stdout.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            states[props["Id"]] = props
    return states


def node_status(config_dir, facts_dir="/etc/ansible/facts.d", show=systemctl_show, hostname=None):
    """The node's status as a dict; status is "ok" or "degraded" with problems listed."""
    node_conf = pathlib.Path(config_dir, "node.conf")
    conf = read_env(node_conf)
    problems = []
    if not conf.get("MONOSCAPE_CONTROLLER_ADDRESS"):
        problems.append(f"{node_conf}: no MONOSCAPE_CONTROLLER_ADDRESS")
    instances = list_instances(config_dir)
    try:
        states = show([INSTANCE_UNIT.format(i["name"]) for i in instances])
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        states = {}
        problems.append(f"unit states unknown: {exc}")
    for inst in instances:
        props = states.get(INSTANCE_UNIT.format(inst["name"]), {})
        inst["active"] = props.get("ActiveState", "unknown")
        inst["sub"] = props.get("SubState", "unknown")
        inst["enabled"] = props.get("UnitFileState") == "enabled"
        if inst["enabled"] and inst["active"] != "active":
            problems.append(f"instance {inst['name']}: {inst['active']} ({inst['sub']})")
    mono = read_json(pathlib.Path(facts_dir, "mono_runtime.fact")) or {}
    with open("/proc/uptime", encoding="ascii") as uptime:
        uptime_s = float(uptime.read().split()[0])
    return {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "node": hostname or socket.gethostname(),
        "controller": {
            "address": conf.get("MONOSCAPE_CONTROLLER_ADDRESS"),
            "lb_url": conf.get("MONOSCAPE_LB_URL"),
            "dashboard_url": conf.get("MONOSCAPE_DASHBOARD_URL"),
        },
        "image": read_json(pathlib.Path(config_dir, "image.json")),
        "mono_version": mono.get("mono_version"),
        "instances": instances,
        "load": list(os.getloadavg()),
        "uptime_s": round(uptime_s, 1),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "monoscape-node-status"
    config_dir = "/etc/monoscape"

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path not in ("/health", "/status"):
            self._send(404, "text/plain", "not found\n")
            return
        status = node_status(self.config_dir)
        if path == "/health":
            ok = status["status"] == "ok"
            body = "OK\n" if ok else "".join(f"{p}\n" for p in status["problems"])
            self._send(200 if ok else 503, "text/plain", body)
        else:
            self._send(200, "application/json", json.dumps(status, indent=2) + "\n")

    def _send(self, code, ctype, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def address_string(self):  # unix socket peers have no address
        return "nginx"

    def log_request(self, code="-", size="-"):
        """nginx keeps the access log; errors still reach the journal (log_error)."""


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="unix socket path to listen on")
    parser.add_argument("--config-dir", default="/etc/monoscape")
    args = parser.parse_args(argv)
    Handler.config_dir = args.config_dir
    sock = pathlib.Path(args.socket)
    sock.unlink(missing_ok=True)
    with Server(str(sock), Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
