"""Package uploads to the self-service web app: streamed to disk with a byte budget,
checked with the bundle's package rules (the hostile corpus of tests/unit/zip_corpus.py
included), kept per app with a retention, and audited."""

import io
import json
import pathlib

import pytest
from monoscape_selfservice.releases import Releases, UploadRefused

from . import zip_corpus as zc
from .selfservice_helpers import api_login, audit

GOOD = zc.site()
OTHER = zc.site(zc.entry("extra.txt", b"another build"))


def put(client, csrf, data, *, tenant="demo", app_name="hello", version="1.0.0"):
    return client.put(
        f"/api/apps/{tenant}/{app_name}/releases/{version}",
        data=data,
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/zip"},
    )


@pytest.fixture
def member(app):
    client = app.test_client()
    return client, api_login(client, "dev").json["csrf_token"]


def kept(settings, tenant="demo", app_name="hello"):
    path = pathlib.Path(settings.state_dir, "releases", tenant, app_name)
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def test_a_good_package_is_kept_and_listed(member, settings):
    client, csrf = member
    response = put(client, csrf, GOOD)
    assert response.status_code == 201, response.json
    release = response.json["release"]
    assert release["sha256"] == zc.sha256(GOOD) and release["size"] == len(GOOD) and release["uploaded_by"] == "dev"
    assert kept(settings) == ["1.0.0.json", "1.0.0.zip"]
    assert [r["version"] for r in client.get("/api/apps/demo/hello/releases").json["releases"]] == ["1.0.0"]
    # the same content again: accepted, nothing new; other content under the same version: refused
    assert put(client, csrf, GOOD).status_code == 200
    response = put(client, csrf, OTHER)
    assert response.status_code == 409 and "give the new package a new version" in response.json["error"]
    assert audit(settings)[-1]["result"] == "refused" and audit(settings)[-1]["target"] == "demo/hello 1.0.0"


# the corpus cases refused under the default limits (the others need lowered limits or a health page)
HOSTILE = [(name, data, message) for name, data, kwargs, message in zc.corpus() if not kwargs]


@pytest.mark.parametrize(("case", "data", "message"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_a_hostile_package_gets_the_rules_one_line_message_and_leaves_nothing(member, settings, case, data, message):
    client, csrf = member
    response = put(client, csrf, data)
    assert response.status_code in (413, 422), (case, response.json)
    error = response.json["error"]
    assert "\n" not in error and message in error, (case, error)
    assert settings.state_dir not in error, "a refusal never names where the service keeps uploads"
    assert kept(settings) == []


@pytest.mark.parametrize(
    ("where", "status", "message"),
    [
        ("Demo/hello/1.0.0", 400, "tenant name 'Demo' has 'D' at position 1"),
        ("demo/hello world/1.0.0", 400, "app name 'hello world' has ' ' at position 6"),
        ("demo/hello/1.0.0~rc1", 400, "version"),
        (f"{'t' * 40}/{'a' * 40}/1.0.0", 400, "are together 80 characters"),
    ],
    ids=["tenant-name", "app-name", "version", "pair-too-long"],
)
def test_names_and_versions_are_checked_before_anything_is_kept(member, settings, where, status, message):
    client, csrf = member
    tenant, app_name, version = where.split("/")
    response = put(client, csrf, GOOD, tenant=tenant, app_name=app_name, version=version)
    assert response.status_code == status, response.data
    assert message in response.json["error"]
    assert not pathlib.Path(settings.state_dir, "releases").exists() or kept(settings) == []


def test_too_large_is_cut_off(tmp_path):
    releases = Releases(tmp_path, max_bytes=1000)
    with pytest.raises(UploadRefused, match="larger than the limit, 1000 bytes") as refused:
        releases.receive(io.BytesIO(b"x" * 5000), "demo", "hello", "1.0.0", user="dev")
    assert refused.value.status == 413
    with pytest.raises(UploadRefused, match="5000 bytes; the limit is 1000"):
        releases.receive(io.BytesIO(b""), "demo", "hello", "1.0.0", user="dev", length=5000)
    assert list((tmp_path / "demo" / "hello").iterdir()) == []


def test_a_reader_cannot_upload_and_no_csrf_no_upload(app, settings):
    reader = app.test_client()
    csrf = api_login(reader, "viewer").json["csrf_token"]
    assert put(reader, csrf, GOOD).status_code == 403
    member = app.test_client()
    api_login(member, "dev")
    assert put(member, "", GOOD).status_code == 403
    assert kept(settings) == []


def test_retention_keeps_the_newest_and_the_running_version(member, settings):
    client, csrf = member
    status = json.loads(pathlib.Path(settings.status_file).read_text())
    assert status["apps"][0]["version"] == "1.0.0"  # the running version: always kept
    versions = ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.6.0"]
    for n, version in enumerate(versions):
        data = zc.site(zc.entry("version.txt", version.encode() * (n + 1)))
        assert put(client, csrf, data, version=version).status_code == 201
    listed = [r["version"] for r in client.get("/api/apps/demo/hello/releases").json["releases"]]
    assert listed == ["1.0.0", *versions[-settings.releases_kept :]]


def test_a_refused_upload_is_read_to_its_end_before_the_answer(app):
    """gunicorn closes the connection after answering: unread body bytes would reset it and
    the proxy could lose the refusal. The body of a request refused before reading it is
    drained."""
    client = app.test_client()
    api_login(client, "dev")
    body = io.BytesIO(b"PK" + b"x" * 200_000)
    response = client.put(
        "/api/apps/demo/hello/releases/2.0.1",
        input_stream=body,
        headers={"Content-Length": str(len(body.getvalue())), "Content-Type": "application/zip"},
    )
    assert response.status_code == 403 and "CSRF" in response.json["error"]
    assert body.tell() == len(body.getvalue())
