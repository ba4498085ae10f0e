"""The self-service pages as a browser uses them (through Flask's test client; the lab
tests drive the real browser): the apps page, an app's page with its releases, upload
form and actions (for a member; a reader sees no form), a hostile upload answered on
the page with the rule's message, a deploy that leads to the job page, which loads its
log through static/job.js (no inline script: the Content-Security-Policy)."""

import io
import re

import pytest

from . import zip_corpus as zc
from .selfservice_helpers import USERS, login_form


def signed_in(app, user):
    client = app.test_client()
    token = login_form(client)
    response = client.post("/login", data={"csrf_token": token, "username": user, "password": USERS[user][0]})
    assert response.status_code == 303
    return client


def csrf_of(html):
    return re.search(rb'name="csrf_token" value="([^"]+)"', html).group(1).decode()


def upload(client, page_html, data, version, *, tenant="demo", app_name="hello"):
    return client.post(
        "/releases",
        data={
            "csrf_token": csrf_of(page_html),
            "tenant": tenant,
            "app": app_name,
            "version": version,
            "package": (io.BytesIO(data), f"{app_name}-{version}.zip"),
        },
        content_type="multipart/form-data",
    )


@pytest.fixture
def member(app):
    return signed_in(app, "dev")


def test_the_apps_page_links_each_app(member):
    html = member.get("/apps").data
    assert b'<a href="/apps/demo/hello">hello</a>' in html and b"1.0.0" in html
    assert b'action="/releases"' in html  # a member may start a new app


def test_upload_then_deploy_from_the_pages(member, app):
    page = member.get("/apps/demo/hello")
    assert page.status_code == 200 and b"no release uploaded" in page.data
    response = upload(member, page.data, zc.site(zc.entry("v.txt", b"2")), "2.0.0")
    assert response.status_code == 200 and b"2.0.0 uploaded (sha256 " in response.data
    assert b"<button>Deploy 2.0.0</button>" in response.data
    response = member.post(
        "/apps/demo/hello/jobs", data={"csrf_token": csrf_of(response.data), "action": "deploy", "version": "2.0.0"}
    )
    assert response.status_code == 303
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    job = member.get(f"/jobs/{job_id}")
    assert f'data-job="{job_id}"'.encode() in job.data and b'<script src="/static/job.js"></script>' in job.data
    assert b"<script>" not in job.data
    assert b"fetch(`/api/jobs/" in member.get("/static/job.js").data
    # the app's page lists the job; a second deploy while it is queued is answered on the page
    response = member.post("/apps/demo/hello/jobs", data={"csrf_token": csrf_of(job.data), "action": "rollback"})
    assert response.status_code == 409 and f"has job {job_id} (deploy) queued".encode() in response.data
    assert app.extensions["monoscape"].jobs.get(job_id)["state"] == "queued"


def test_a_hostile_upload_is_answered_on_the_page_and_kept_nowhere(member, app):
    name, data, _, message = next(c for c in zc.corpus() if "slip" in c[0])
    page = member.get("/apps/demo/hello")
    response = upload(member, page.data, data, "6.6.6")
    assert response.status_code == 422, name
    assert message.encode() in response.data.replace(b"&#39;", b"'").replace(b"&#34;", b'"')
    assert app.extensions["monoscape"].releases.list("demo", "hello") == []


def test_a_new_app_is_started_from_the_apps_page(member):
    response = upload(member, member.get("/apps").data, zc.site(), "0.1.0", app_name="fresh")
    assert response.status_code == 200 and b"<h1>demo/fresh</h1>" in response.data


def test_a_reader_sees_the_app_but_no_form_and_forms_need_the_token(app, member):
    reader = signed_in(app, "viewer")
    html = reader.get("/apps/demo/hello").data
    assert b"Upload a release" not in html and b"<button>Roll back" not in html
    assert (
        reader.post("/apps/demo/hello/jobs", data={"csrf_token": csrf_of(html), "action": "rollback"}).status_code
        == 403
    )
    assert member.post("/apps/demo/hello/jobs", data={"action": "rollback"}).status_code == 403


def test_names_in_urls_follow_the_routing_rule(member):
    response = member.get("/apps/demo/Hello%20World")
    assert response.status_code == 400 and b"app name" in response.data
