#!/usr/bin/python3
"""Render the Monoscape dashboard (index.html + dashboard.json).

Inputs:
  - the status document the bundle pushes (playbooks/status.yml): IaaS
    authentication, images, nodes, apps (JSON, see roles/dashboard/README.md);
  - live backend health from HAProxy's stats (Runtime API socket, `show stat`).
Output: a static page served by nginx; a systemd timer re-renders it, so
backend health is never older than the timer interval.

usage: monoscape-dashboard.py --status FILE --socket SOCK --out DIR [--title T]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import html
import io
import json
import os
import socket
import sys
import tempfile

STAT_FIELDS = ("pxname", "svname", "status", "check_status", "weight", "scur", "addr", "lastchg")


def read_haproxy_stats(path: str, timeout: float = 2.0) -> tuple[list[dict], str | None]:
    """Servers of every backend from `show stat`; (rows, error)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"show stat\n")
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except OSError as exc:
        return [], f"HAProxy stats unavailable at {path}: {exc}"
    text = b"".join(chunks).decode("utf-8", "replace").lstrip("# ")
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("svname") in ("FRONTEND", "BACKEND") or not row.get("pxname"):
            continue
        rows.append({key: row.get(key, "") for key in STAT_FIELDS})
    return rows, None


def _cell(value) -> str:
    if value is True:
        return '<td class="ok">yes</td>'
    if value is False:
        return '<td class="bad">no</td>'
    text = "" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    state = ""
    upper = text.upper()
    if upper in ("ACTIVE", "UP", "L7OK", "OK", "ACTIVE (RUNNING)", "RUNNING", "STARTED"):
        state = ' class="ok"'
    elif upper.startswith(("DOWN", "ERROR", "MAINT", "L4CON", "L7STS", "L4TOUT", "L7TOUT", "FAILED")):
        state = ' class="bad"'
    elif upper.startswith(("DRAIN", "NOLB", "BUILD", "SHUTOFF")):
        state = ' class="warn"'
    return f"<td{state}>{html.escape(text)}</td>"


def _table(title: str, columns: list[tuple[str, str]], rows: list[dict], empty: str) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    if not rows:
        body = f'<tr><td colspan="{len(columns)}" class="empty">{html.escape(empty)}</td></tr>'
    else:
        body = "".join("<tr>" + "".join(_cell(row.get(key)) for key, _ in columns) + "</tr>" for row in rows)
    slug = title.lower().replace(" ", "-")
    return f'<section id="{slug}"><h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table></section>'


def _image_rows(images: list[dict]) -> list[dict]:
    """Images with their content hash (the node image's monoscape_node_hash property)."""
    rows = []
    for image in images:
        properties = image.get("properties") or {}
        rows.append(dict(image, content_hash=image.get("content_hash") or properties.get("monoscape_node_hash", "")))
    return rows


def _node_rows(nodes: list[dict], images: list[dict]) -> list[dict]:
    """Servers with their addresses and the name of the image they were booted from."""
    names = {image.get("id"): image.get("name", "") for image in images}
    rows = []
    for node in nodes:
        image_id = node.get("image_id") or ""
        rows.append(
            dict(
                node,
                address=node.get("address") or ", ".join(node.get("addresses") or []),
                image=node.get("image") or names.get(image_id) or image_id,
            )
        )
    return rows


def _reconcile_rows(entries: list[dict]) -> list[dict]:
    """Self-healing runs that acted (playbooks/reconcile.yml), newest first."""
    return [
        {
            "at": entry.get("at", ""),
            "booted": entry.get("booted") or [],
            "started": entry.get("started") or [],
            "deployed": entry.get("deployed") or [],
        }
        for entry in reversed(entries)
    ]


def _app_rows(apps: list[dict]) -> list[dict]:
    rows = []
    for app in apps:
        instances = app.get("instances") or []
        rows.append(
            {
                "url": app.get("url", ""),
                "tenant": app.get("tenant", ""),
                "app": app.get("app", ""),
                "version": app.get("version", ""),
                "instances": len(instances),
                "where": ", ".join(f"{i.get('node', '?')}:{i.get('port', '?')}" for i in instances),
            }
        )
    return rows


def render(status: dict, backends: list[dict], backend_error: str | None, title: str, refresh: int) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    iaas = status.get("iaas") or {}
    iaas_rows = [
        {"what": "cloud", "value": iaas.get("cloud", "unknown")},
        {"what": "tenant", "value": iaas.get("project", "unknown")},
        {"what": "user", "value": iaas.get("user", "unknown")},
        {"what": "token issued", "value": iaas.get("authenticated")},
        {"what": "EC2 credentials present", "value": iaas.get("ec2_credentials")},
        {"what": "EC2 signature accepted (ec2tokens)", "value": iaas.get("ec2_verified")},
        {"what": "checked at", "value": iaas.get("checked_at", "never")},
    ]
    if iaas.get("error"):
        iaas_rows.append({"what": "error", "value": iaas["error"]})
    if iaas.get("ec2_error"):
        iaas_rows.append({"what": "EC2 error", "value": iaas["ec2_error"]})
    sections = [
        _table("IaaS authentication", [("what", "check"), ("value", "result")], iaas_rows, "no data"),
        _table(
            "Images",
            [("name", "name"), ("status", "status"), ("content_hash", "content hash"), ("created_at", "created")],
            _image_rows(status.get("images") or []),
            "no node image built yet",
        ),
        _table(
            "Nodes",
            [("name", "name"), ("status", "status"), ("address", "address"), ("image", "image"), ("role", "role")],
            _node_rows(status.get("nodes") or [], status.get("images") or []),
            "no nodes",
        ),
        _table(
            "Apps",
            [
                ("tenant", "tenant"),
                ("app", "app"),
                ("version", "version"),
                ("instances", "instances"),
                ("where", "node:port"),
                ("url", "url"),
            ],
            _app_rows(status.get("apps") or []),
            "no apps deployed",
        ),
        _table(
            "Backends",
            [
                ("pxname", "backend"),
                ("svname", "server"),
                ("addr", "address"),
                ("status", "status"),
                ("check_status", "check"),
                ("weight", "weight"),
                ("scur", "sessions"),
            ],
            backends,
            backend_error or "no backend servers",
        ),
        _table(
            "Self-healing",
            [("at", "at"), ("booted", "nodes booted"), ("started", "nodes started"), ("deployed", "apps deployed on")],
            _reconcile_rows(status.get("reconcile") or []),
            "no repair needed so far",
        ),
    ]
    generated = html.escape(str(status.get("generated_at", "never")))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{int(refresh)}">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; min-width: 40em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }}
th {{ background: #eee; }} .ok {{ color: #060; font-weight: bold; }}
.bad {{ color: #a00; font-weight: bold; }} .warn {{ color: #a60; }} .empty {{ color: #888; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Page rendered {now}; cloud status collected {generated}; backends live from HAProxy.</p>
{"".join(sections)}
</body></html>
"""


def write_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--status", required=True, help="status document pushed by the bundle (JSON)")
    parser.add_argument("--socket", required=True, help="HAProxy Runtime API socket")
    parser.add_argument("--out", required=True, help="folder served by nginx")
    parser.add_argument("--title", default="Monoscape dashboard")
    parser.add_argument("--refresh", type=int, default=10, help="browser refresh interval (s)")
    args = parser.parse_args(argv)
    try:
        with open(args.status) as handle:
            status = json.load(handle)
    except FileNotFoundError:
        status = {}
    except (OSError, ValueError) as exc:
        print(f"monoscape-dashboard: cannot read {args.status}: {exc}", file=sys.stderr)
        status = {"iaas": {"error": f"status document unreadable: {exc}"}}
    backends, error = read_haproxy_stats(args.socket)
    page = render(status, backends, error, args.title, args.refresh)
    write_atomic(os.path.join(args.out, "index.html"), page)
    nodes = _node_rows(status.get("nodes") or [], status.get("images") or [])
    document = dict(status, nodes=nodes, backends=backends, backends_error=error)
    write_atomic(os.path.join(args.out, "dashboard.json"), json.dumps(document, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
