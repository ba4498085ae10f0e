"""The self-service web app's login and authorisation (selfservice/monoscape_selfservice),
against a Keystone stand-in on the loopback (tests/unit/selfservice_helpers.py), so
keystone.authenticate is exercised over HTTP; the Flask app runs through its test
client (fixtures in tests/unit/conftest.py)."""

import datetime
import json
import pathlib
import socket

import pytest
from monoscape_selfservice import app as webapp
from monoscape_selfservice.keystone import KeystoneUnavailable, LoginRefused, authenticate
from monoscape_selfservice.settings import Settings

from .selfservice_helpers import PROJECT, FakeKeystone, api_login, audit, cookie, login_form


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
    assert response.status_code == 303 and response.headers["Location"].endswith("/apps")
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(webapp.SESSION_COOKIE + "="))
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Secure" not in header
    page = client.get("/apps")
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
    response = client.get("/apps")
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


@pytest.mark.parametrize("hops, seen", [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_the_client_address_comes_from_the_trusted_proxy_only(settings, clock, hops, seen):
    """Behind nginx (proxy_hops 1) the client is the address nginx forwards; without a proxy a
    client's own X-Forwarded-For is ignored (it would dodge the failed-login limit)."""
    app = webapp.create_app(Settings(**{**settings.__dict__, "proxy_hops": hops}), clock=clock)
    client = app.test_client()
    response = client.post(
        "/api/login", json={"username": "dev", "password": "wrong"}, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert response.status_code == 401
    assert audit(settings)[-1]["client"] == seen
