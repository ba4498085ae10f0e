"""The openstack_servers inventory plugin, run by the real `ansible-inventory`
against a stand-in Keystone + Nova served on 127.0.0.1 by this test (token with
catalog, paged /servers/detail, microversion refusal, bad credentials)."""

import json
import os
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from ansible_collections.monoscape.paas.plugins.inventory import openstack_servers as plugin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = 2  # Nova's max_limit in the stand-in, so every project list is paged
GOOD, BAD = "right", "wrong"  # the stand-in Keystone's only password, and another


def address(addr, kind="fixed", version=4):
    return {"addr": addr, "version": version, "OS-EXT-IPS:type": kind, "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}


def server(name, status="ACTIVE", addresses=None, metadata=None, az="fake"):
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "status": status,
        "tenant_id": "p1",
        "OS-EXT-AZ:availability_zone": az,
        "flavor": {"original_name": "m1.tiny", "vcpus": 1, "ram": 256},
        "image": {"id": "img-1"},
        "key_name": "deploy",
        "metadata": metadata or {},
        "addresses": {"private": [address("10.0.0.5")]} if addresses is None else addresses,
        "security_groups": [{"name": "default"}],
        "created": "2026-01-01T00:00:00Z",
        "fault": {"message": "No valid host was found."} if status == "ERROR" else None,
    }


PROJECTS = {
    "alice": [
        server("ctl", metadata={"monoscape_role": "controller", "monoscape_tenant": "acme"}),
        server(
            "node-1",
            addresses={"private": [address("10.0.0.11"), address("203.0.113.11", "floating")]},
            metadata={"monoscape_role": "node", "monoscape_tenant": "acme", "monoscape_app": "hello,blog"},
        ),
        server("broken", status="ERROR", addresses={}, metadata={"monoscape_role": "node"}),
        server("booting", status="BUILD", addresses={}, metadata={"monoscape_role": "node"}),
        server("twin"),
    ],
    "bob": [
        server("twin", metadata={"monoscape_tenant": "Big Corp"}),
        server("v6", addresses={"private": [address("fd00::6", version=6), address("10.0.0.66")]}),
    ],
}


class Cloud(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests = []
        self.refuse_microversion = False
        self.base = f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
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

    def do_GET(self):
        cloud = self.server
        url = urlparse(self.path)
        cloud.requests.append(("GET", url.path))
        if url.path.rstrip("/") == "/v3":
            self.reply(
                200,
                {
                    "version": {
                        "id": "v3.14",
                        "status": "stable",
                        "links": [{"rel": "self", "href": f"{cloud.base}/v3/"}],
                    }
                },
            )
            return
        if url.path == "/compute/v2.1/servers/detail":
            user = self.headers.get("X-Auth-Token", "").removeprefix("token-")
            if cloud.refuse_microversion and self.headers.get("OpenStack-API-Version"):
                self.reply(406, {"computeFault": {"message": "Version 2.47 is not supported by the API."}})
                return
            query = parse_qs(url.query)
            servers = PROJECTS[user]
            start = int(query.get("marker_index", ["0"])[0])
            page = servers[start : start + PAGE]
            body = {"servers": page}
            if start + PAGE < len(servers):
                body["servers_links"] = [
                    {"rel": "next", "href": f"{cloud.base}/compute/v2.1/servers/detail?marker_index={start + PAGE}"}
                ]
            self.reply(200, body)
            return
        self.reply(404, {"error": {"message": f"no route {url.path}"}})

    def do_POST(self):
        cloud = self.server
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        cloud.requests.append(("POST", self.path))
        identity = body["auth"]["identity"]["password"]["user"]
        if identity["password"] != GOOD:
            self.reply(401, {"error": {"code": 401, "message": "The request you have made requires authentication."}})
            return
        token = {
            "methods": ["password"],
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "issued_at": "2026-01-01T00:00:00.000000Z",
            "user": {"id": identity["name"], "name": identity["name"], "domain": {"id": "default", "name": "Default"}},
            "project": {"id": "p1", "name": "p1", "domain": {"id": "default", "name": "Default"}},
            "roles": [{"id": "r", "name": "member"}],
            "catalog": [
                {
                    "type": "compute",
                    "name": "nova",
                    "id": "c",
                    "endpoints": [
                        {
                            "id": "e",
                            "interface": "public",
                            "region": "RegionOne",
                            "region_id": "RegionOne",
                            "url": f"{cloud.base}/compute/v2.1",
                        }
                    ],
                }
            ],
        }
        self.reply(201, {"token": token}, {"X-Subject-Token": f"token-{identity['name']}"})


@pytest.fixture(scope="module")
def cloud():
    server_ = Cloud()
    thread = threading.Thread(target=server_.serve_forever, daemon=True)
    thread.start()
    yield server_
    server_.shutdown()
    server_.server_close()


@pytest.fixture
def workdir(tmp_path, cloud):
    def entry(user, password=GOOD, url=None):
        return {
            "auth": {
                "auth_url": url or f"{cloud.base}/v3",
                "username": user,
                "password": password,
                "project_name": "p1",
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": "RegionOne",
            "identity_api_version": 3,
        }

    clouds = {
        "clouds": {
            "alpha": entry("alice"),
            "beta": entry("bob"),
            "badpass": entry("alice", BAD),
            "down": entry("alice", url="http://127.0.0.1:9/v3"),
            # a region list needs openstacksdk's loader (the slow, complete path)
            "gamma": {**entry("bob"), "regions": ["RegionOne"]},
        }
    }
    (tmp_path / "clouds.yaml").write_text(json.dumps(clouds))
    cloud.refuse_microversion = False
    return tmp_path


def plain(value):
    """ansible-inventory marks plugin-made strings as {"__ansible_unsafe": ...} (2.19 legacy profile)."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def inventory(workdir, config, *args):
    path = workdir / "openstack_servers.yml"
    path.write_text(json.dumps({"plugin": "monoscape.paas.openstack_servers", **config}))
    env = dict(
        os.environ,
        OS_CLIENT_CONFIG_FILE=str(workdir / "clouds.yaml"),
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        NO_COLOR="1",
        ANSIBLE_NOCOLOR="1",
    )
    proc = subprocess.run(
        ["ansible-inventory", "-i", str(path), "--list", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    data = plain(json.loads(proc.stdout)) if proc.returncode == 0 else None
    return proc, data


def members(data, group):
    return sorted(data.get(group, {}).get("hosts", []))


def test_groups_hostvars_and_addresses(workdir, cloud):
    config = {
        "clouds": ["alpha", "beta"],
        "keyed_groups": [{"key": "openstack.availability_zone", "prefix": "az"}],
        "compose": {"monoscape_role": "openstack.metadata.monoscape_role | default('none')"},
    }
    before = len(cloud.requests)
    proc, data = inventory(workdir, config)
    assert proc.returncode == 0, proc.stderr
    # one token and one list call per cloud and page: alice has 5 servers (3 pages), bob 2 (1)
    calls = cloud.requests[before:]
    assert len([c for c in calls if c[1].endswith("/servers/detail")]) == 4
    assert len([c for c in calls if c[0] == "POST"]) == 2
    hostvars = data["_meta"]["hostvars"]
    twins = sorted(h for h in hostvars if h.startswith("twin-"))
    assert len(twins) == 2, "servers sharing a name are both listed, with an id suffix"
    assert "several servers are named twin" in proc.stderr
    assert sorted(hostvars) == sorted(["ctl", "node-1", "broken", "booting", "v6", *twins])
    # metadata groups; comma-separated values; sanitised names
    assert members(data, "role_controller") == ["ctl"]
    assert members(data, "role_node") == ["node-1"]
    assert members(data, "tenant_acme") == ["ctl", "node-1"]
    assert members(data, "app_hello") == members(data, "app_blog") == ["node-1"]
    assert len(members(data, "tenant_Big_Corp")) == 1
    # servers that cannot be reached go to explicit groups, not to role groups
    assert members(data, "openstack_error") == ["broken"]
    assert members(data, "openstack_no_address") == ["booting"]
    assert hostvars["broken"]["openstack"]["fault"] == "No valid host was found."
    # cloud groups and Constructable options
    assert len(members(data, "cloud_alpha")) == 5
    assert len(members(data, "cloud_beta")) == 2
    assert "ctl" in members(data, "az_fake")
    assert hostvars["node-1"]["monoscape_role"] == "node"
    # ansible_host: floating first, else fixed IPv4
    assert hostvars["node-1"]["ansible_host"] == "203.0.113.11"
    assert hostvars["ctl"]["ansible_host"] == "10.0.0.5"
    assert hostvars["v6"]["ansible_host"] == "10.0.0.66"
    assert "ansible_host" not in hostvars["booting"]
    assert hostvars["ctl"]["openstack"]["flavor"] == "m1.tiny"
    assert hostvars["ctl"]["openstack"]["cloud"] == "alpha"


def test_private_and_ids(workdir, cloud):
    proc, data = inventory(workdir, {"clouds": ["alpha"], "private": True, "hostname": "id"})
    assert proc.returncode == 0, proc.stderr
    by_name = {v["openstack"]["name"]: v for v in data["_meta"]["hostvars"].values()}
    assert by_name["node-1"]["ansible_host"] == "10.0.0.11"
    assert all(len(h) == 36 for h in data["_meta"]["hostvars"])


def test_a_failing_cloud_fails_the_inventory(workdir, cloud):
    proc, _ = inventory(workdir, {"clouds": ["alpha", "badpass", "down", "nosuch"]})
    assert proc.returncode != 0
    assert "cloud badpass: authentication failed" in proc.stderr
    assert "cloud down: cannot reach the API" in proc.stderr
    assert "cloud nosuch: not defined in clouds.yaml" in proc.stderr


def test_partial_results_when_asked(workdir, cloud):
    proc, data = inventory(workdir, {"clouds": ["alpha", "down"], "allow_partial": True})
    assert proc.returncode == 0, proc.stderr
    assert "skipped - cloud down" in proc.stderr
    assert len(members(data, "cloud_alpha")) == 5


def test_openstacksdk_loader_and_old_compute_api(workdir, cloud):
    """An entry with a region list goes through openstacksdk's loader; a Nova that refuses
    microversion 2.47 gets the plain request."""
    cloud.refuse_microversion = True
    proc, data = inventory(workdir, {"clouds": ["gamma"]})
    assert proc.returncode == 0, proc.stderr
    assert len(members(data, "cloud_gamma")) == 2


def test_cache_serves_without_calling_the_cloud(workdir, cloud):
    config = {
        "clouds": ["alpha", "beta"],
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(workdir / "cache"),
    }
    proc, first = inventory(workdir, config)
    assert proc.returncode == 0, proc.stderr
    before = len(cloud.requests)
    proc, second = inventory(workdir, config)
    assert proc.returncode == 0, proc.stderr
    assert len(cloud.requests) == before, "a cached run must not call the cloud"
    assert second == first
    proc, _ = inventory(workdir, config, "--flush-cache")
    assert len(cloud.requests) > before


# ---------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("name", "safe"), [("acme", "acme"), ("Big Corp", "Big_Corp"), ("9lives", "_9lives"), ("a-b.c", "a_b_c")]
)
def test_safe_group(name, safe):
    assert plugin.safe_group(name) == safe


def test_pick_address_options():
    nova = {"net": [address("fd00::1", version=6), address("10.0.0.1"), address("198.51.100.1", "floating")]}
    lean = plugin.lean_server({"addresses": nova}, "c", "r")
    assert lean["networks"] == {"net": ["fd00::1", "10.0.0.1", "198.51.100.1"]}
    assert plugin.pick_address(lean) == ("198.51.100.1", "10.0.0.1", "198.51.100.1")
    assert plugin.pick_address(lean, private=True)[0] == "10.0.0.1"
    only_v6 = plugin.lean_server({"addresses": {"net": [address("fd00::1", version=6)]}}, "c", "r")
    assert plugin.pick_address(only_v6)[0] == "fd00::1"
    assert plugin.pick_address(only_v6, only_ipv4=True)[0] is None
    assert "fault" not in lean


def test_plain_clouds_yaml_entries_skip_openstacksdk():
    entry = {
        "auth": {"auth_url": "http://127.0.0.1:5000/v3", "username": "u", "password": GOOD, "tenant-name": "p"},
        "region_name": "RegionOne",
        "identity_api_version": 3,
        "interface": "internal",
    }
    target = plugin.fast_target("c", entry)
    assert (target.name, target.region_name, target.interface) == ("c", "RegionOne", "internal")
    session = target.session()
    assert type(session.auth).__module__ == "keystoneauth1.identity.v3.password"
    assert session.auth.project_name == "p"


@pytest.mark.parametrize(
    "entry",
    [
        {"profile": "vexxhost", "auth": {"username": "u"}},
        {"auth": {"auth_url": "http://x/v3"}, "regions": ["a", "b"]},
        {"auth": {"auth_url": "http://x/v3"}, "auth_type": "v3oidcpassword"},
        {"auth": {"auth_url": "http://x/v2.0"}, "auth_type": "v3applicationcredential", "identity_api_version": 2},
        {"region_name": "r"},
    ],
)
def test_other_entries_go_through_openstacksdk(entry):
    assert plugin.fast_target("c", entry) is None
