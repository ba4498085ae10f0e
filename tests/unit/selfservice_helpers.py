"""Stand-ins and helpers of the self-service web app's unit tests: a Keystone on the
loopback that answers /v3/auth/tokens as Keystone does (a token scoped to the project
with the user's roles there, or 401), a settable clock, and the test client's calls."""

import datetime
import http.server
import json
import threading

from monoscape_selfservice import app as webapp
from monoscape_selfservice.settings import Settings

PROJECT = "4f0c1d2e3b4a59687766554433221100"
USERS = {
    # name: (password, roles on PROJECT; None: no role there, Keystone refuses a scoped token)
    "dev": ("dev-secret-1", ["member", "reader"]),
    "viewer": ("viewer-secret-2", ["reader"]),
    "stranger": ("stranger-secret-3", None),
    "operator": ("operator-secret-4", ["load-balancer_observer"]),
}


class FakeKeystone(http.server.BaseHTTPRequestHandler):
    scoped_to = None  # set: the token names this project whatever was asked (a broken or hostile answer)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["auth"]["identity"]["password"]["user"]
        scope = body["auth"]["scope"]["project"]["id"]
        known = USERS.get(user["name"])
        if self.path != "/v3/auth/tokens?nocatalog" or not known or known[0] != user["password"] or known[1] is None:
            self.send_response(401)
            self.end_headers()
            self.wfile.write(
                b'{"error": {"code": 401, "message": "The request you have made requires authentication."}}'
            )
            return
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        token = {
            "user": {"id": f"id-{user['name']}", "name": user["name"]},
            "project": {"id": self.scoped_to or scope},
            "roles": [{"id": f"r-{r}", "name": r} for r in known[1]],
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        }
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"token": token}).encode())

    def log_message(self, *args):
        pass


def start_keystone():
    """(url, stop) of a Keystone stand-in on the loopback."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKeystone)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_address[1]}", server.shutdown


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def make_settings(tmp_path, keystone_url):
    status = tmp_path / "status.json"
    status.write_text(
        json.dumps({"apps": [{"tenant": "demo", "app": "hello", "version": "1.0.0", "url": "http://lb/demo/hello/"}]})
    )
    return Settings(
        keystone_url=keystone_url,
        project_id=PROJECT,
        state_dir=str(tmp_path),
        audit_log=str(tmp_path / "audit.log"),
        status_file=str(status),
        session_lifetime=600,
        bundle_dir=str(tmp_path / "bundle"),  # the jobs' runner is a stand-in unless a test gives one
    )


def make_app(settings, clock):
    made = webapp.create_app(settings, clock=clock)
    made.testing = True
    # a route that needs the deploy role, as the actions of the next slice do
    made.add_url_rule("/api/probe", "probe", webapp.requires("deploy")(lambda: {"ok": True}), methods=["POST"])
    return made


def cookie(client, name):
    """The client's cookie `name` (Werkzeug 2.2, Debian 12's, has no get_cookie)."""
    return next((c.value for c in client.cookie_jar if c.name == name), None)


def audit(settings):
    with open(settings.audit_log) as handle:
        return [json.loads(line) for line in handle]


def login_form(client):
    response = client.get("/login")
    assert response.status_code == 200
    return cookie(client, webapp.LOGIN_CSRF_COOKIE)


def api_login(client, user, password=None):
    return client.post("/api/login", json={"username": user, "password": password or USERS[user][0]})
