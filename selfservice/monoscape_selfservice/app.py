"""The self-service web application (HTML pages and a JSON API under /api/).

Who: a login with OpenStack credentials, checked by the cloud's Keystone
(keystone.authenticate). What: the roles Keystone's token lists on the deployment's
project - a deploy role (member) may change apps, a read role (reader) may only look,
anyone else gets nothing. Every form carries a CSRF token (the API takes it in the
X-CSRF-Token header); failed logins are rate-limited per client address and per user
name, and every login, logout and refusal is in the audit log."""

import functools
import hmac
import json
import secrets
import time

from flask import Flask, current_app, g, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from .audit import AuditLog
from .jobs import Busy
from .keystone import KeystoneUnavailable, LoginRefused, authenticate
from .releases import Releases, UploadRefused
from .store import Store
from .worker import ACTIONS, open_jobs

SESSION_COOKIE = "monoscape_session"
LOGIN_CSRF_COOKIE = "monoscape_login_csrf"
LOGIN_FORM_LIFETIME = 1800
SMALL_BODY = 64 * 1024  # forms and JSON documents (a package upload has its own limit)


class Refused(Exception):
    """A request the service answers with an error (status, message for the user)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def service():
    return current_app.extensions["monoscape"]


def client():
    return request.remote_addr or ""


def wants_json():
    return request.path.startswith("/api/")


def requires(what):
    """The view needs a live session whose roles allow `what` ("look" or "deploy"); a
    change (any method but GET and HEAD) needs the session's CSRF token too."""

    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            session, svc = g.session, service()
            if session is None:
                if wants_json():
                    return jsonify(error="sign in first (POST /api/login)"), 401
                return redirect(url_for("login_form"))
            if request.method not in ("GET", "HEAD"):
                sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
                if not hmac.compare_digest(sent.encode(), session["csrf"].encode()):
                    svc.audit.record(
                        session["user_name"], request.endpoint, "refused", client(), detail="no CSRF token"
                    )
                    raise Refused(403, "the request has no valid CSRF token: reload the page and try again")
            if not svc.may(session, what):
                svc.audit.record(session["user_name"], request.endpoint, "refused", client(), detail=f"may not {what}")
                roles = ", ".join(sorted(session["roles"]))
                raise Refused(403, f"your roles on the project ({roles}) do not allow this")
            return view(*args, **kwargs)

        return wrapped

    return decorate


class SelfService:
    """The service's state and rules, kept in app.extensions["monoscape"]."""

    def __init__(self, settings, keystone=authenticate, clock=time.time):
        self.settings, self.keystone = settings, keystone
        self.store = Store(f"{settings.state_dir}/selfservice.sqlite", clock=clock)
        self.audit = AuditLog(settings.audit_log)
        self.releases = Releases.from_settings(settings)
        self.jobs = open_jobs(settings, clock=clock)

    @property
    def runs_jobs(self):
        """True when this controller runs the job worker (the settings name the bundle it runs)."""
        return bool(self.settings.bundle_dir)

    def may(self, session, what):
        roles, settings = session["roles"], self.settings
        allowed = set(settings.deploy_roles) if what == "deploy" else set(settings.deploy_roles + settings.read_roles)
        return bool(roles & allowed)

    def set_cookie(self, response, name, value, max_age=None):
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, secure=self.settings.secure_cookies, samesite="Strict"
        )

    def login(self, username, password):
        """A new session (id, csrf token) for these credentials, or Refused."""
        settings, store = self.settings, self.store
        keys = [f"client:{client()}", f"user:{username.lower()}"]
        if max(store.failures(keys, settings.login_failure_window).values()) >= settings.login_failures_allowed:
            self.audit.record(username, "login", "rate-limited", client())
            current_app.logger.warning("login of %r from %s rate-limited", username, client())
            raise Refused(429, f"too many failed logins: try again in {settings.login_failure_window} s")
        try:
            identity = self.keystone(
                settings.keystone_url,
                username,
                password,
                settings.project_id,
                user_domain=settings.user_domain,
                timeout=settings.keystone_timeout,
            )
        except LoginRefused:
            store.record_failure(keys)
            self.audit.record(username, "login", "refused", client(), detail="Keystone issued no token")
            current_app.logger.warning("failed login of %r from %s", username, client())
            raise Refused(401, "wrong user name or password, or no role on this project") from None
        except KeystoneUnavailable as exc:
            self.audit.record(username, "login", "error", client(), detail=str(exc))
            raise Refused(503, f"the cloud's identity service cannot be reached: {exc}") from None
        if not self.may({"roles": identity.roles}, "look"):
            store.record_failure(keys)
            self.audit.record(username, "login", "refused", client(), detail=f"roles {sorted(identity.roles)}")
            raise Refused(403, "your roles on this project allow nothing here")
        store.clear_failures([f"user:{username.lower()}"])
        sid, csrf = store.open_session(identity, settings.session_lifetime)
        self.audit.record(identity.user_name, "login", "ok", client(), detail=f"roles {sorted(identity.roles)}")
        return sid, csrf

    def logout(self):
        self.store.close_session(g.session["id"])
        self.audit.record(g.session["user_name"], "logout", "ok", client())

    def upload(self, stream, tenant, app, version, length=None):
        """Keep an uploaded package (the package rules first); audit either way."""
        user, target = g.session["user_name"], f"{tenant}/{app} {version}"
        try:
            existed = self.releases.record(tenant, app, version) is not None
            record = self.releases.receive(stream, tenant, app, version, user=user, length=length)
        except UploadRefused as exc:
            self.audit.record(user, "upload", "refused", client(), target=target, detail=exc.message)
            raise Refused(exc.status, exc.message) from None
        current = {
            a.get("version")
            for a in self.status().get("apps") or []
            if (a.get("tenant"), a.get("app")) == (tenant, app)
        }
        pruned = self.releases.prune(tenant, app, in_use=current | {version})
        self.audit.record(user, "upload", "ok", client(), target=target, detail=f"sha256 {record['sha256']}")
        return record, existed, pruned

    def submit(self, tenant, app, action, body):
        """Queue a job for an app after checking what it asks for; audited either way."""
        user, target = g.session["user_name"], f"{tenant}/{app}"
        try:
            if not self.runs_jobs:
                raise Refused(503, "this controller runs no job worker: the operator deploys with the bundle for now")
            params = self._params(tenant, app, action, body)
            job = self.jobs.submit(tenant, app, action, params, user)
        except Refused as exc:
            self.audit.record(user, action, "refused", client(), target=target, detail=exc.message)
            raise
        except Busy as exc:
            self.audit.record(user, action, "refused", client(), target=target, detail=str(exc))
            raise Refused(409, f"{exc}: wait for it to end (GET /api/jobs/{exc.job['id']})") from None
        self.audit.record(user, action, "queued", client(), target=target, detail=f"job {job['id']} {params}")
        return job

    def _params(self, tenant, app, action, body):
        if action not in ACTIONS:
            raise Refused(400, f"unknown action {action!r}: one of {', '.join(sorted(ACTIONS))}")
        try:
            self.releases.folder(tenant, app)  # the name rules
        except UploadRefused as exc:
            raise Refused(exc.status, exc.message) from None
        allowed = ACTIONS[action][1]
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise Refused(400, f"{action} takes no {', '.join(unknown)} (it takes: {', '.join(allowed) or 'nothing'})")
        params = {}
        if action in ("deploy", "scale"):
            version = str(body.get("version") or self._running(tenant, app) or "")
            if not version or self.releases.path(tenant, app, version) is None:
                raise Refused(404, f"{tenant}/{app} has no kept release {version!r}: upload the package first")
            params["version"] = version
            count = body.get("instances_per_node", 1)
            if (
                not isinstance(count, int)
                or isinstance(count, bool)
                or not 1 <= count <= self.settings.max_instances_per_node
            ):
                raise Refused(
                    400, f"instances_per_node is a whole number from 1 to {self.settings.max_instances_per_node}"
                )
            params["instances_per_node"] = count
        return params

    def _running(self, tenant, app):
        for found in self.status().get("apps") or []:
            if (found.get("tenant"), found.get("app")) == (tenant, app):
                return found.get("version")
        return None

    def status(self):
        """The status document status.yml published ({} when there is none yet)."""
        try:
            with open(self.settings.status_file) as handle:
                document = json.load(handle)
        except (FileNotFoundError, ValueError):
            return {}
        return document if isinstance(document, dict) else {}


def page(template, title, status=200, error=None, notice=None, **context):
    """A page of templates/ (each extends base.html), with the signed-in user's header."""
    session = g.get("session")
    if session:
        context.setdefault("csrf", session["csrf"])
        context.setdefault("may_deploy", service().may(session, "deploy"))
        context.setdefault("may_run_jobs", context["may_deploy"] and service().runs_jobs)
        context.update(user=session["user_name"], roles=", ".join(sorted(session["roles"])))
    html = render_template(template, title=title, error=error, notice=notice, **context)
    return make_response(html, status)


def login_page(status=200, error=None):
    token = secrets.token_urlsafe(32)
    response = page("login.html", "Sign in", status=status, error=error, csrf=token)
    service().set_cookie(response, LOGIN_CSRF_COOKIE, token, max_age=LOGIN_FORM_LIFETIME)
    return response


# ---------------------------------------------------------------------- pages
def login_form():
    return login_page()


def login():
    cookie, sent = request.cookies.get(LOGIN_CSRF_COOKIE) or "", request.form.get("csrf_token") or ""
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        service().audit.record(request.form.get("username", ""), "login", "refused", client(), detail="no CSRF token")
        return login_page(403, "the sign-in form has expired: try again")
    try:
        sid, _ = service().login(request.form.get("username", ""), request.form.get("password", ""))
    except Refused as refused:
        return login_page(refused.status, refused.message)
    response = redirect(url_for("apps_page"), code=303)
    service().set_cookie(response, SESSION_COOKIE, sid)
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@requires("look")
def logout():
    service().logout()
    response = redirect(url_for("login_form"), code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@requires("look")
def apps_page():
    return page("apps.html", "Apps", apps=service().status().get("apps") or [])


@requires("look")
def app_page(tenant, app, status=200, error=None, notice=None):
    svc = service()
    try:
        releases = svc.releases.list(tenant, app)
    except UploadRefused as exc:
        raise Refused(exc.status, exc.message) from None
    running = next((a for a in svc.status().get("apps") or [] if (a.get("tenant"), a.get("app")) == (tenant, app)), {})
    return page(
        "app.html",
        f"{tenant}/{app}",
        status=status,
        error=error,
        notice=notice,
        tenant=tenant,
        app=app,
        running=running.get("version"),
        url=running.get("url"),
        releases=releases,
        jobs=svc.jobs.list(tenant, app, limit=20),
        max_instances=svc.settings.max_instances_per_node,
    )


@requires("deploy")
def upload_form():
    """The browser's upload (multipart, spooled to disk by the server, then the package rules)."""
    tenant, app, version = (request.form.get(k, "") for k in ("tenant", "app", "version"))
    package = request.files.get("package")
    try:
        if package is None:
            raise Refused(400, "choose the package's zip file")
        record, existed, _ = service().upload(package.stream, tenant, app, version)
    except Refused as refused:
        if not tenant or not app:
            raise
        try:
            return app_page.__wrapped__(tenant, app, status=refused.status, error=refused.message)
        except Refused:
            raise refused from None
    notice = f"{version} {'was already uploaded' if existed else 'uploaded'} (sha256 {record['sha256'][:12]})"
    return app_page.__wrapped__(tenant, app, notice=notice)


@requires("deploy")
def submit_form(tenant, app):
    body = {k: v for k, v in request.form.items() if k not in ("csrf_token", "action") and v != ""}
    if str(body.get("instances_per_node", "")).isdigit():
        body["instances_per_node"] = int(body["instances_per_node"])
    try:
        job = service().submit(tenant, app, request.form.get("action", ""), body)
    except Refused as refused:
        return app_page.__wrapped__(tenant, app, status=refused.status, error=refused.message)
    return redirect(f"/jobs/{job['id']}", code=303)


@requires("look")
def job_page(job_id):
    job = service().jobs.get(job_id)
    if job is None:
        raise Refused(404, f"no job {job_id}")
    return page("job.html", f"Job {job_id}", job=job)


# ---------------------------------------------------------------------- JSON API
def api_login():
    if (request.content_length or 0) > SMALL_BODY:
        raise Refused(413, f"a sign-in is a small JSON document (at most {SMALL_BODY} bytes)")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Refused(400, 'send {"username": ..., "password": ...} as JSON')
    sid, csrf = service().login(str(body.get("username", "")), str(body.get("password", "")))
    response = jsonify(csrf_token=csrf)
    service().set_cookie(response, SESSION_COOKIE, sid)
    return response


@requires("look")
def api_logout():
    service().logout()
    response = jsonify(result="signed out")
    response.delete_cookie(SESSION_COOKIE)
    return response


@requires("look")
def api_session():
    session = g.session
    return jsonify(
        user=session["user_name"],
        roles=sorted(session["roles"]),
        may_deploy=service().may(session, "deploy"),
        expires=session["expires"],
        csrf_token=session["csrf"],
    )


@requires("look")
def api_apps():
    return jsonify(apps=service().status().get("apps") or [])


@requires("look")
def api_releases(tenant, app):
    try:
        return jsonify(releases=service().releases.list(tenant, app))
    except UploadRefused as exc:
        raise Refused(exc.status, exc.message) from None


@requires("deploy")
def api_upload(tenant, app, version):
    """PUT the package's zip as the body (streamed to disk, never held in memory)."""
    record, existed, pruned = service().upload(request.stream, tenant, app, version, request.content_length)
    return jsonify(release=record, pruned=pruned), 200 if existed else 201


@requires("deploy")
def api_submit(tenant, app):
    """POST {"action": "deploy", "version": "2.0.0", "instances_per_node": 1}: 202 and the job."""
    if (request.content_length or 0) > SMALL_BODY:
        raise Refused(413, f"a job request is a small JSON document (at most {SMALL_BODY} bytes)")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("action"), str):
        raise Refused(400, 'send {"action": ..., ...} as JSON')
    action = body.pop("action")
    return jsonify(job=service().submit(tenant, app, action, body)), 202


@requires("look")
def api_jobs(tenant, app):
    return jsonify(jobs=service().jobs.list(tenant, app))


@requires("look")
def api_job(job_id):
    job = service().jobs.get(job_id)
    if job is None:
        raise Refused(404, f"no job {job_id}")
    return jsonify(job=job)


@requires("look")
def api_job_log(job_id):
    """The job's log from byte `offset` on (at most 1 MiB): poll with the returned offset."""
    job = service().jobs.get(job_id)
    if job is None:
        raise Refused(404, f"no job {job_id}")
    offset = request.args.get("offset", 0, type=int)
    try:
        with open(service().jobs.log_path(job_id), "rb") as handle:
            handle.seek(max(offset, 0))
            chunk = handle.read(1024 * 1024)
    except FileNotFoundError:
        chunk = b""
    return jsonify(
        text=chunk.decode(errors="replace"),
        offset=max(offset, 0) + len(chunk),
        state=job["state"],
        tasks_done=job["tasks_done"],
        tasks_total=job["tasks_total"],
    )


ROUTES = [
    ("/login", login_form, ["GET"]),
    ("/login", login, ["POST"]),
    ("/logout", logout, ["POST"]),
    ("/apps", apps_page, ["GET"]),
    ("/apps/<tenant>/<app>", app_page, ["GET"]),
    ("/apps/<tenant>/<app>/jobs", submit_form, ["POST"]),
    ("/releases", upload_form, ["POST"]),
    ("/jobs/<int:job_id>", job_page, ["GET"]),
    ("/api/login", api_login, ["POST"]),
    ("/api/logout", api_logout, ["POST"]),
    ("/api/session", api_session, ["GET"]),
    ("/api/apps", api_apps, ["GET"]),
    ("/api/apps/<tenant>/<app>/releases", api_releases, ["GET"]),
    ("/api/apps/<tenant>/<app>/releases/<version>", api_upload, ["PUT"]),
    ("/api/apps/<tenant>/<app>/jobs", api_submit, ["POST"]),
    ("/api/apps/<tenant>/<app>/jobs", api_jobs, ["GET"]),
    ("/api/jobs/<int:job_id>", api_job, ["GET"]),
    ("/api/jobs/<int:job_id>/log", api_job_log, ["GET"]),
]


def load_session():
    g.session = service().store.session(request.cookies.get(SESSION_COOKIE))


def drain_body(response):
    """Read what is left of the request body before answering. gunicorn closes the
    connection after the answer, and unread bytes make the kernel reset it: nginx could
    lose the answer to a request refused before its body was read (no CSRF token, a
    reader's upload). Bodies over the upload limit are not read (413 ends them anyway)."""
    length = request.content_length or 0
    if 0 < length <= current_app.config["MAX_CONTENT_LENGTH"]:
        while request.stream.read(64 * 1024):
            pass
    return response


def security_headers(response):
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'")
    return response


def refused(error):
    if wants_json():
        return jsonify(error=error.message), error.status
    return page("refused.html", "Refused", status=error.status, error=error.message)


def create_app(settings, keystone=authenticate, clock=time.time):
    app = Flask(__name__)
    # the largest body is a package (Releases counts its bytes again while streaming it)
    app.config.update(MAX_CONTENT_LENGTH=settings.upload_max_bytes + 64 * 1024)
    app.extensions["monoscape"] = SelfService(settings, keystone, clock)
    app.before_request(load_session)
    app.after_request(security_headers)
    app.after_request(drain_body)
    app.register_error_handler(Refused, refused)
    for rule, view, methods in ROUTES:
        app.add_url_rule(rule, view.__name__, view, methods=methods)
    if settings.proxy_hops:
        # behind nginx on a unix socket the peer has no address: the client's is the one the
        # trusted proxy (and only it) put in X-Forwarded-For; the failed-login limit and the
        # audit log count on it
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)
    return app
