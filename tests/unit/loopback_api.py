"""A loopback OpenStack API for unit tests that need real HTTP (timeouts, paging, auth):
JSON replies, Keystone's version document and token bodies. Subclass JsonHandler and
route do_GET/do_POST; the server gives `base` (its http://127.0.0.1:<port>)."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler


def endpoint(service_type, name, url):
    """A catalog entry with one public endpoint in RegionOne."""
    return {
        "type": service_type,
        "name": name,
        "id": service_type,
        "endpoints": [
            {
                "id": f"{service_type}-public",
                "interface": "public",
                "region": "RegionOne",
                "region_id": "RegionOne",
                "url": url,
            }
        ],
    }


def token(user, project, role, catalog):
    """A Keystone v3 password token body (never expires) for `user` on `project`."""
    return {
        "token": {
            "methods": ["password"],
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "issued_at": "2026-01-01T00:00:00.000000Z",
            "user": {"id": user["id"], "name": user["name"], "domain": {"id": "default", "name": "Default"}},
            "project": {"id": project, "name": project, "domain": {"id": "default", "name": "Default"}},
            "roles": [{"id": role, "name": role}],
            "catalog": catalog,
        }
    }


class JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def reply_identity_version(self):
        """Keystone's answer to GET /v3 (version discovery)."""
        links = [{"rel": "self", "href": f"{self.server.base}/v3/"}]
        self.reply(200, {"version": {"id": "v3.14", "status": "stable", "links": links}})


@contextlib.contextmanager
def serving(server):
    """Serve `server` from a thread for the block, then shut it down and close it."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
