"""os_image_info against a small in-memory Glance (list with query filters and
pagination, get by id) and Nova server list: filters by name, id, properties and
owner, newest first, servers per image, read-only in check mode, clear errors."""

import copy

import pytest

from ansible_collections.monoscape.paas.plugins.modules import os_image_info

from .os_fake_cloud import Res, Response, run_module

PROJECT = "p" * 32
OTHER = "o" * 32


class Glance:
    """GET /images with name/owner/custom-property filters, `limit`/`marker` pages;
    GET /images/<id>. Records every call; it has no way to change anything."""

    def __init__(self):
        self.images = []
        self.calls = []

    def add(self, name, owner=PROJECT, status="active", created="2026-01-01T00:00:00Z", **props):
        image = {
            "id": f"{len(self.images) + 1:08x}-0000-4000-8000-000000000000",
            "name": name,
            "owner": owner,
            "status": status,
            "visibility": "private",
            "created_at": created,
            "updated_at": created,
            "size": 4096,
            "protected": False,
            "checksum": "x",
            "tags": [],
            **props,
        }
        self.images.append(image)
        return image

    def get(self, path, params=None, **kwargs):
        self.calls.append(("get", path, dict(params or {})))
        if path == "/images":
            params = dict(params)
            limit, marker = params.pop("limit"), params.pop("marker", None)
            found = [i for i in self.images if all(i.get(k) == v for k, v in params.items())]
            if marker:
                found = found[[i["id"] for i in found].index(marker) + 1 :]
            page = copy.deepcopy(found[:limit])
            body = {"images": page}
            if len(found) > limit:
                body["next"] = "/v2/images?marker=" + page[-1]["id"]
            return Response(200, body)
        for image in self.images:
            if image["id"] == path.rsplit("/", 1)[-1]:
                return Response(200, copy.deepcopy(image))
        return Response(404, {"message": "not found"})


class Compute:
    def __init__(self):
        self.servers_ = []
        self.queries = []

    def servers(self, details=True, image=None, **query):
        """Nova's list, filtered by image as Nova does."""
        self.queries.append(dict(query, image=image))
        return [Res(s) for s in self.servers_ if image is None or (s.get("image") or {}).get("id") == image]


class Cloud:
    def __init__(self):
        self.image = Glance()
        self.compute = Compute()
        self.current_project_id = PROJECT
        self.config = Res(config={"auth": {}})


@pytest.fixture
def cloud():
    c = Cloud()
    c.image.add("debian-12", owner=OTHER, visibility="public")
    c.image.add("monoscape-node-aaa", created="2026-01-01T00:00:01Z", monoscape_role="node", monoscape_node_hash="a")
    c.image.add("monoscape-node-bbb", created="2026-01-01T00:00:02Z", monoscape_role="node", monoscape_node_hash="b")
    c.image.add("monoscape-node-ccc", owner=OTHER, created="2026-01-01T00:00:03Z", monoscape_role="node")
    c.image.add("half", status="queued")
    return c


@pytest.fixture
def run(monkeypatch, cloud):
    def _run(args, check_mode=False):
        return run_module(monkeypatch, os_image_info, args, cloud, check_mode=check_mode)

    return _run


def test_by_name_sees_public_images(run):
    result = run({"name": "debian-12"})
    assert not result["failed"]
    assert not result["changed"]
    [image] = result["images"]
    assert image["name"] == "debian-12"
    assert image["owner"] == OTHER
    assert image["properties"] == {}


def test_by_id(run, cloud):
    wanted = cloud.image.images[1]
    [image] = run({"name": wanted["id"]})["images"]
    assert image["name"] == "monoscape-node-aaa"
    assert image["properties"] == {"monoscape_role": "node", "monoscape_node_hash": "a"}


def test_unknown_name_is_an_empty_list(run):
    result = run({"name": "nope"})
    assert not result["failed"]
    assert result["images"] == []


def test_properties_and_own_newest_first(run):
    images = run({"properties": {"monoscape_role": "node"}, "own": True})["images"]
    assert [i["name"] for i in images] == ["monoscape-node-bbb", "monoscape-node-aaa"]
    everyone = run({"properties": {"monoscape_role": "node"}})["images"]
    assert [i["name"] for i in everyone] == ["monoscape-node-ccc", "monoscape-node-bbb", "monoscape-node-aaa"]


def test_servers_using_each_image(run, cloud):
    used = cloud.image.images[1]["id"]
    cloud.compute.servers_ = [
        {"id": "s1", "name": "node-1", "image": {"id": used}},
        {"id": "s2", "name": "node-0", "image": {"id": used}},
        {"id": "s3", "name": "volume-booted", "image": {}},
    ]
    images = {i["name"]: i for i in run({"own": True, "servers": True})["images"]}
    assert images["monoscape-node-aaa"]["servers"] == [{"id": "s2", "name": "node-0"}, {"id": "s1", "name": "node-1"}]
    assert images["monoscape-node-bbb"]["servers"] == []
    # Nova is asked per image found, never for the project's whole server list
    assert all(q["image"] for q in cloud.compute.queries)
    assert len(cloud.compute.queries) == len(images)
    assert "servers" not in run({"own": True})["images"][0]


def test_pages_are_followed(run, cloud, monkeypatch):
    monkeypatch.setattr(os_image_info, "PAGE", 2)
    for n in range(5):
        cloud.image.add(f"many-{n}", monoscape_role="many")
    images = run({"properties": {"monoscape_role": "many"}})["images"]
    assert len(images) == 5
    assert sum(1 for call in cloud.image.calls if call[1] == "/images") == 3


def test_check_mode_reads_only(run, cloud):
    result = run({"properties": {"monoscape_role": "node"}}, check_mode=True)
    assert not result["changed"]
    assert len(result["images"]) == 3
    assert {call[0] for call in cloud.image.calls} == {"get"}


def test_bad_property_value_fails_clearly(run):
    result = run({"properties": {"monoscape_role": ["a", "list"]}})
    assert result["failed"]
    assert "properties value of 'monoscape_role' must be a string" in result["msg"]
