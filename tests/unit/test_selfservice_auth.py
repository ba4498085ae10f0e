"""The self-service web app's login and authorisation (selfservice/monoscape_selfservice):
a Keystone stand-in on the loopback answers /v3/auth/tokens as Keystone does (a token
scoped to the project with the user's roles there, or 401), so keystone.authenticate
is exercised over HTTP; the Flask app runs through its test client."""

import datetime
import http.server
import json
import pathlib
import socket
import threading

import pytest
from monoscape_selfservice import app as webapp
from monoscape_selfservice.keystone import KeystoneUnavailable, LoginRefused, authenticate
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


@pytest.fixture(scope="module")
def keystone_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKeystone)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def settings(tmp_path, keystone_url):
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
    )


@pytest.fixture
def app(settings, clock):
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


# ---------------------------------------------------------------------- Keystone
def test_authenticate_returns_the_tokens_identity(keystone_url):
    identity = authenticate(keystone_url, "dev", "dev-secret-1", PROJECT)
    assert identity.user_name == "dev" and identity.user_id == "id-dev" and identity.project_id == PROJECT
    assert identity.roles == {"member", "reader"}
    assert identity.expires_at > datetime.datetime.now(datetime.UTC)


@pytest.mark.parametrize(("user", "password"), [("dev", "wrong"), ("nobody", "x"), ("stranger", "stranger-secret-3")])
def test_authenticate_refuses_what_keystone_refuses(keystone_url, user, password):
    with pytest.raises(LoginRefused):
        authenticate(keystone_url, user, password, PROJECT)


def test_authenticate_refuses_a_token_of_another_project(keystone_url, monkeypatch):
    monkeypatch.setattr(FakeKeystone, "scoped_to", "another-project")
    with pytest.raises(LoginRefused, match="not scoped"):
        authenticate(keystone_url, "dev", "dev-secret-1", PROJECT)


def test_authenticate_names_an_unreachable_keystone():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(KeystoneUnavailable, match=f"127.0.0.1:{port}"):
        authenticate(f"http://127.0.0.1:{port}/v3", "dev", "dev-secret-1", PROJECT, timeout=2)


# ---------------------------------------------------------------------- login and session
def test_browser_login_sets_a_strict_http_only_session_cookie(app, settings):
    client = app.test_client()
    token = login_form(client)
    response = client.post("/login", data={"csrf_token": token, "username": "dev", "password": "dev-secret-1"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/")
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(webapp.SESSION_COOKIE + "="))
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Secure" not in header
    page = client.get("/")
    assert page.status_code == 200
    assert b"hello" in page.data and b"Signed in as <b>dev</b>" in page.data
    assert audit(settings)[-1] | {"at": ""} == {
        "at": "",
        "user": "dev",
        "client": "127.0.0.1",
        "action": "login",
        "target": "",
        "result": "ok",
        "detail": "roles ['member', 'reader']",
    }


def test_the_session_cookie_is_secure_under_tls(settings, clock):
    app = webapp.create_app(Settings(**{**settings.__dict__, "secure_cookies": True}), clock=clock)
    response = api_login(app.test_client(), "dev")
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_login_form_without_its_csrf_token_is_refused(app, settings):
    client = app.test_client()
    login_form(client)
    response = client.post("/login", data={"csrf_token": "forged", "username": "dev", "password": "dev-secret-1"})
    assert response.status_code == 403
    assert cookie(client, webapp.SESSION_COOKIE) is None
    assert audit(settings)[-1]["result"] == "refused" and audit(settings)[-1]["detail"] == "no CSRF token"


@pytest.mark.parametrize(
    ("user", "password", "status"),
    [("dev", "wrong", 401), ("stranger", None, 401), ("operator", None, 403)],
    ids=["wrong-password", "no-role-on-the-project", "no-monoscape-role"],
)
def test_a_refused_login_opens_no_session(app, settings, user, password, status):
    client = app.test_client()
    response = api_login(client, user, password)
    assert response.status_code == status, response.json
    assert cookie(client, webapp.SESSION_COOKIE) is None
    assert client.get("/api/apps").status_code == 401
    assert audit(settings)[-1]["result"] == "refused"


def test_pages_and_api_need_a_session(app):
    client = app.test_client()
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    response = client.get("/api/apps")
    assert response.status_code == 401 and "sign in first" in response.json["error"]


def test_a_reader_may_look_but_not_deploy(app, settings):
    client = app.test_client()
    csrf = api_login(client, "viewer").json["csrf_token"]
    assert client.get("/api/apps").json["apps"][0]["app"] == "hello"
    assert client.get("/api/session").json["may_deploy"] is False
    response = client.post("/api/probe", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 403 and "reader" in response.json["error"]
    assert audit(settings)[-1] | {"at": ""} == {
        "at": "",
        "user": "viewer",
        "client": "127.0.0.1",
        "action": "probe",
        "target": "",
        "result": "refused",
        "detail": "may not deploy",
    }


def test_a_member_may_deploy_with_the_csrf_token_only(app):
    client = app.test_client()
    csrf = api_login(client, "dev").json["csrf_token"]
    assert client.post("/api/probe").status_code == 403
    assert client.post("/api/probe", headers={"X-CSRF-Token": csrf[:-1] + "x"}).status_code == 403
    assert client.post("/api/probe", headers={"X-CSRF-Token": csrf}).json == {"ok": True}


def test_logout_ends_the_session_for_good(app):
    client = app.test_client()
    csrf = api_login(client, "dev").json["csrf_token"]
    sid = cookie(client, webapp.SESSION_COOKIE)
    assert client.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    other = app.test_client()
    other.set_cookie("localhost", webapp.SESSION_COOKIE, sid)  # the same cookie, replayed
    assert other.get("/api/apps").status_code == 401


def test_a_session_expires(app, clock, settings):
    client = app.test_client()
    api_login(client, "dev")
    clock.now += settings.session_lifetime - 1
    assert client.get("/api/apps").status_code == 200
    clock.now += 2
    assert client.get("/api/apps").status_code == 401


def test_failed_logins_are_rate_limited_and_logged(app, clock, settings, caplog):
    client = app.test_client()
    for _ in range(settings.login_failures_allowed):
        assert api_login(client, "dev", "guess").status_code == 401
    # the right password does not help until the window has passed
    response = api_login(client, "dev")
    assert response.status_code == 429 and "too many failed logins" in response.json["error"]
    assert audit(settings)[-1]["result"] == "rate-limited"
    assert "rate-limited" in caplog.text and "failed login of 'dev'" in caplog.text
    clock.now += settings.login_failure_window + 1
    assert api_login(client, "dev").status_code == 200


def test_no_password_reaches_the_audit_log_or_the_log(app, settings, caplog):
    client = app.test_client()
    api_login(client, "dev", "my-wrong-password")
    api_login(client, "dev")
    text = pathlib.Path(settings.audit_log).read_text() + caplog.text
    assert "my-wrong-password" not in text and "dev-secret-1" not in text


def test_security_headers(app):
    response = app.test_client().get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_settings_refuse_unknown_keys(tmp_path):
    path = tmp_path / "selfservice.json"
    path.write_text(
        json.dumps(
            {
                "keystone_url": "x",
                "project_id": "p",
                "state_dir": "s",
                "audit_log": "a",
                "status_file": "f",
                "keystone_ur": "typo",
            }
        )
    )
    with pytest.raises(ValueError, match="unknown settings keystone_ur"):
        Settings.load(path)
