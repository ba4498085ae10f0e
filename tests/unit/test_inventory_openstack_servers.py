"""The openstack_servers inventory plugin, run by the real `ansible-inventory`
against a stand-in Keystone + Nova served on 127.0.0.1 by this test (token with
catalog, paged /servers/detail, microversion refusal, bad credentials)."""

import json
import os
import pathlib
import shlex
import subprocess
import uuid
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlparse

import pytest
import yaml
from ansible.errors import AnsibleParserError
from ansible.plugins.connection import ConnectionBase

from ansible_collections.monoscape.paas.plugins.inventory import openstack_servers as plugin

from .loopback_api import JsonHandler, endpoint, serving, token

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
        # the bundle tags what it makes with its deployment (Nova filters on tags, not metadata)
        "tags": [f"monoscape_deployment={metadata['monoscape_deployment']}"]
        if (metadata or {}).get("monoscape_deployment")
        else [],
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


def tenant_net(*addresses):
    return {"tenant": list(addresses)}


def tagged(deployment, role, **extra):
    return {"monoscape_deployment": deployment, "monoscape_role": role, **extra}


FIP = "203.0.113.10"  # the floating IP of deployment monoscape's controller
# carol's project holds several deployments and servers of other teams
PROJECTS["carol"] = [
    server(
        "monoscape-controller",
        addresses=tenant_net(address("10.1.0.10"), address(FIP, "floating")),
        metadata=tagged("monoscape", "controller"),
    ),
    server("monoscape-node-1", addresses=tenant_net(address("10.1.0.21")), metadata=tagged("monoscape", "node")),
    server("monoscape-node-2", addresses=tenant_net(address("10.1.0.22")), metadata=tagged("monoscape", "node")),
    server("monoscape-builder", addresses=tenant_net(address("10.1.0.30")), metadata=tagged("monoscape", "builder")),
    server(
        "monoscape-node-3",
        status="ERROR",
        addresses=tenant_net(address("10.1.0.23")),
        metadata=tagged("monoscape", "node"),
    ),
    server("monoscape-node-4", status="BUILD", addresses={}, metadata=tagged("monoscape", "node")),
    # deployment other: its old controller is shut off, so the running one is the bastion
    server(
        "other-controller",
        addresses=tenant_net(address("10.2.0.10"), address("203.0.113.20", "floating")),
        metadata=tagged("other", "controller"),
    ),
    server(
        "other-controller-old",
        status="SHUTOFF",
        addresses=tenant_net(address("10.2.0.11")),
        metadata=tagged("other", "controller"),
    ),
    server("other-node-1", addresses=tenant_net(address("10.2.0.21")), metadata=tagged("other", "node")),
    # deployment twoctl: two running controllers with a floating IP each (a highly available load
    # balancer), listed b first: the first by name, a, is the bastion
    server(
        "twoctl-controller-b",
        addresses=tenant_net(address("10.3.0.11"), address("203.0.113.31", "floating")),
        metadata=tagged("twoctl", "controller"),
    ),
    server(
        "twoctl-controller-a",
        addresses=tenant_net(address("10.3.0.10"), address("203.0.113.30", "floating")),
        metadata=tagged("twoctl", "controller"),
    ),
    server("twoctl-node-1", addresses=tenant_net(address("10.3.0.21")), metadata=tagged("twoctl", "node")),
    # deployment halffip: two running controllers, only the second by name has a floating IP
    server(
        "halffip-controller-a", addresses=tenant_net(address("10.5.0.10")), metadata=tagged("halffip", "controller")
    ),
    server(
        "halffip-controller-b",
        addresses=tenant_net(address("10.5.0.11"), address("203.0.113.51", "floating")),
        metadata=tagged("halffip", "controller"),
    ),
    server("halffip-node-1", addresses=tenant_net(address("10.5.0.21")), metadata=tagged("halffip", "node")),
    # deployment nofips: two running controllers, neither with a floating IP
    server("nofips-controller-a", addresses=tenant_net(address("10.6.0.10")), metadata=tagged("nofips", "controller")),
    server("nofips-controller-b", addresses=tenant_net(address("10.6.0.11")), metadata=tagged("nofips", "controller")),
    server("nofips-node-1", addresses=tenant_net(address("10.6.0.21")), metadata=tagged("nofips", "node")),
    # deployment nofip: its controller has no floating IP
    server("nofip-controller", addresses=tenant_net(address("10.4.0.10")), metadata=tagged("nofip", "controller")),
    server("nofip-node-1", addresses=tenant_net(address("10.4.0.21")), metadata=tagged("nofip", "node")),
    # other teams' servers: no Monoscape metadata (one named like a Monoscape node)
    server("monoscape-node-2", addresses=tenant_net(address("10.9.0.2"))),
    server("jenkins", addresses=tenant_net(address("10.9.0.3"), address("203.0.113.90", "floating"))),
]
MONOSCAPE = [
    "monoscape-builder",
    "monoscape-controller",
    "monoscape-node-1",
    "monoscape-node-2",
    "monoscape-node-3",
    "monoscape-node-4",
]


class Cloud(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests = []
        self.queries = []  # the query of each server list call
        self.refuse_microversion = False
        self.page = PAGE
        self.base = f"http://127.0.0.1:{self.server_address[1]}"


class Handler(JsonHandler):
    def do_GET(self):
        cloud = self.server
        url = urlparse(self.path)
        cloud.requests.append(("GET", url.path))
        if url.path.rstrip("/") == "/v3":
            self.reply_identity_version()
            return
        if url.path == "/compute/v2.1/servers/detail":
            user = self.headers.get("X-Auth-Token", "").removeprefix("token-")
            if cloud.refuse_microversion and self.headers.get("OpenStack-API-Version"):
                self.reply(406, {"computeFault": {"message": "Version 2.47 is not supported by the API."}})
                return
            query = parse_qs(url.query)
            cloud.queries.append(query)
            if "metadata" in query:  # as Nova answers an admin (a member's is dropped)
                self.reply(400, {"badRequest": {"code": 400, "message": "Invalid filter field: metadata."}})
                return
            servers = PROJECTS[user]
            if "tags" in query:  # every tag of the comma-separated list
                wanted = set(query["tags"][0].split(","))
                servers = [s for s in servers if wanted <= set(s["tags"])]
            start = int(query.get("marker_index", ["0"])[0])
            page = servers[start : start + cloud.page]
            body = {"servers": page}
            if start + cloud.page < len(servers):
                next_url = f"{cloud.base}/compute/v2.1/servers/detail?marker_index={start + cloud.page}"
                if "tags" in query:  # Nova's next link carries the filters
                    next_url += f"&tags={quote(query['tags'][0])}"
                body["servers_links"] = [{"rel": "next", "href": next_url}]
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
        user = {"id": identity["name"], "name": identity["name"]}
        body = token(user, "p1", "member", [endpoint("compute", "nova", f"{cloud.base}/compute/v2.1")])
        self.reply(201, body, {"X-Subject-Token": f"token-{identity['name']}"})


@pytest.fixture(scope="module")
def cloud():
    with serving(Cloud()) as server_:
        yield server_


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
            "delta": entry("carol"),
            "monoscape": entry("carol"),  # the name inventory/openstack.example.yml reads
            "badpass": entry("alice", BAD),
            "down": entry("alice", url="http://127.0.0.1:9/v3"),
            # a region list: openstacksdk's loader reads the first region
            "gamma": {**entry("bob"), "regions": ["RegionOne"]},
        }
    }
    (tmp_path / "clouds.yaml").write_text(json.dumps(clouds))
    cloud.refuse_microversion = False
    cloud.page = PAGE
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


def inventory(workdir, config, *args, env=None, cwd=ROOT):
    """ansible-inventory on `config`, with the workdir's clouds.yaml as OS_CLIENT_CONFIG_FILE
    (env: other variables; None removes one) and no other OS_* variable of the caller's."""
    path = workdir / "openstack_servers.yml"
    path.write_text(json.dumps({"plugin": "monoscape.paas.openstack_servers", **config}))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OS_")},
        "OS_CLIENT_CONFIG_FILE": str(workdir / "clouds.yaml"),
        "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"),
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
        **(env or {}),
    }
    env = {k: v for k, v in env.items() if v is not None}
    proc = subprocess.run(
        ["ansible-inventory", "-i", str(path), "--list", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    data = plain(json.loads(proc.stdout)) if proc.returncode == 0 else None
    return proc, data


def members(data, group):
    return sorted(data.get(group, {}).get("hosts", []))


def grouped_hosts(data):
    """Every host that is in some group."""
    return {host for name, group in data.items() if name != "_meta" for host in group.get("hosts", [])}


def warnings(proc):
    """stderr with its line wrapping undone."""
    return " ".join(proc.stderr.split())


def ssh_argv(hostvars):
    """ansible_ssh_common_args as the ssh connection plugin splits it into ssh's arguments."""
    return ConnectionBase._split_ssh_args(hostvars["ansible_ssh_common_args"])


def proxy_argv(argv):
    """The bastion hop's command line, from a host's ssh arguments."""
    proxies = [a for a in argv if a.startswith("ProxyCommand=")]
    assert len(proxies) == 1, argv
    assert argv[argv.index(proxies[0]) - 1] == "-o"
    return shlex.split(proxies[0].removeprefix("ProxyCommand="))


def strict(known_hosts, alias):
    return ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes", "-o", f"HostKeyAlias={alias}"]


SSH_VARIABLES = ("ansible_user", "ansible_ssh_private_key_file", "ansible_ssh_common_args", "monoscape_bastion")


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
    # plain password entries: openstacksdk's loader picks keystoneauth's generic plugin, which reads
    # Keystone's version document before the token
    assert calls.count(("GET", "/v3")) == 2
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
    # the groups the playbooks target
    assert members(data, "monoscape_controller") == ["ctl"]
    assert members(data, "monoscape_nodes") == ["node-1"]
    assert "monoscape_builders" not in data
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
    # no SSH option given, no deployment metadata: no SSH variable (group_vars keep their say)
    assert not [(h, v) for h, hv in hostvars.items() for v in SSH_VARIABLES if v in hv]


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
    clouds = "alpha, badpass, beta, delta, down, gamma, monoscape"
    assert f"cloud nosuch: not defined in clouds.yaml {workdir / 'clouds.yaml'} (defined: {clouds})" in warnings(proc)


def test_partial_results_when_asked(workdir, cloud):
    proc, data = inventory(workdir, {"clouds": ["alpha", "down"], "allow_partial": True})
    assert proc.returncode == 0, proc.stderr
    assert "skipped - cloud down" in proc.stderr
    assert len(members(data, "cloud_alpha")) == 5


def test_region_list_and_old_compute_api(workdir, cloud):
    """An entry with a region list (openstacksdk's loader reads its first region); a Nova that
    refuses microversion 2.47 gets the plain request."""
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


# ---------------------------------------------------------------------- deployments, SSH, bastion


def test_deployment_keeps_only_its_servers(workdir, cloud):
    cloud.page = 100  # one page: the count below is the number of list calls
    before, queries = len(cloud.requests), len(cloud.queries)
    proc, data = inventory(workdir, {"clouds": ["delta"], "deployment": "monoscape"})
    assert proc.returncode == 0, proc.stderr
    calls = cloud.requests[before:]
    assert [c[1] for c in calls if c[0] == "GET" and "/servers" in c[1]] == ["/compute/v2.1/servers/detail"]
    assert len([c for c in calls if c[0] == "POST"]) == 1
    assert all("metadata" not in q for q in cloud.queries[queries:])
    # Nova is asked for the deployment's tag only: the project's other servers never cross the wire
    assert [q.get("tags") for q in cloud.queries[queries:]] == [["monoscape_deployment=monoscape"]]
    hostvars = data["_meta"]["hostvars"]
    # other deployments and other teams' servers are nowhere; the other team's monoscape-node-2 does
    # not rename ours
    assert sorted(hostvars) == MONOSCAPE
    assert sorted(grouped_hosts(data)) == MONOSCAPE
    assert "several servers are named" not in proc.stderr
    assert members(data, "monoscape_controller") == ["monoscape-controller"]
    assert members(data, "monoscape_nodes") == ["monoscape-node-1", "monoscape-node-2"]
    assert members(data, "monoscape_builders") == ["monoscape-builder"]
    assert members(data, "role_node") == ["monoscape-node-1", "monoscape-node-2"]
    # an ERROR server (even with an address) and one without an address stay out of the role groups
    assert members(data, "openstack_error") == ["monoscape-node-3"]
    assert members(data, "openstack_no_address") == ["monoscape-node-4"]
    assert len(members(data, "cloud_delta")) == 6
    # no ssh_* options: no user, key or known_hosts; the bastion still applies
    assert not [
        (h, v) for h, hv in hostvars.items() for v in ("ansible_user", "ansible_ssh_private_key_file") if v in hv
    ]
    assert "ansible_ssh_common_args" not in hostvars["monoscape-controller"]
    assert proxy_argv(ssh_argv(hostvars["monoscape-node-1"]))[-3:] == ["-W", "%h:%p", FIP]
    assert hostvars["monoscape-node-1"]["monoscape_bastion"] == "monoscape-controller"


def test_a_server_made_before_tags_needs_deployment_tag_false(workdir, cloud):
    old = server("monoscape-node-9", addresses=tenant_net(address("10.1.0.29")), metadata=tagged("monoscape", "node"))
    old["tags"] = []
    PROJECTS["carol"].append(old)
    try:
        proc, data = inventory(workdir, {"clouds": ["delta"], "deployment": "monoscape"})
        assert proc.returncode == 0, proc.stderr
        assert "monoscape-node-9" not in data["_meta"]["hostvars"]
        queries = len(cloud.queries)
        config = {"clouds": ["delta"], "deployment": "monoscape", "deployment_tag": False}
        proc, data = inventory(workdir, config)
        assert proc.returncode == 0, proc.stderr
        assert "tags" not in cloud.queries[queries]
        assert members(data, "monoscape_nodes") == ["monoscape-node-1", "monoscape-node-2", "monoscape-node-9"]
        assert "other-node-1" not in data["_meta"]["hostvars"]  # metadata still decides
    finally:
        PROJECTS["carol"].remove(old)


def test_role_groups_can_be_renamed(workdir, cloud):
    config = {"clouds": ["delta"], "deployment": "monoscape", "role_groups": {"node": "app hosts"}}
    proc, data = inventory(workdir, config)
    assert proc.returncode == 0, proc.stderr
    assert members(data, "app_hosts") == ["monoscape-node-1", "monoscape-node-2"]
    assert "monoscape_controller" not in data
    assert "monoscape_nodes" not in data


def test_ssh_variables_and_the_bastion(workdir, cloud):
    key = workdir / "key dir" / "id_ed25519"  # a space: quoting matters
    known_hosts = workdir / "state" / "known_hosts"
    config = {
        "clouds": ["delta"],
        "deployment": "monoscape",
        "ssh_user": "root",
        "ssh_private_key_file": "~/key dir/id_ed25519",
        "ssh_known_hosts_file": "~/state/known_hosts",
    }
    proc, data = inventory(workdir, config, env={"HOME": str(workdir)})
    assert proc.returncode == 0, proc.stderr
    assert "StrictHostKeyChecking=no" not in proc.stdout
    hostvars = data["_meta"]["hostvars"]
    for name in MONOSCAPE:
        assert hostvars[name]["ansible_user"] == "root"
        assert hostvars[name]["ansible_ssh_private_key_file"] == str(key)
    # the controller (the bastion) is reached at its floating IP, checked under its name
    controller = hostvars["monoscape-controller"]
    assert controller["ansible_host"] == FIP
    assert ssh_argv(controller) == strict(known_hosts, "monoscape-controller")
    assert "monoscape_bastion" not in controller
    # a node: its own host key, and the hop through the controller as ONE -o argument
    node = hostvars["monoscape-node-1"]
    assert node["ansible_host"] == "10.1.0.21"
    argv = ssh_argv(node)
    assert argv == shlex.split(node["ansible_ssh_common_args"])
    assert argv[:6] == strict(known_hosts, "monoscape-node-1")
    assert len(argv) == 8
    assert argv[6:8] == ["-o", argv[7]] and argv[7].startswith("ProxyCommand=ssh ")
    assert f"-W %h:%p root@{FIP}" in argv[7]
    assert "HostKeyAlias=monoscape-controller" in argv[7]
    assert proxy_argv(argv) == [
        "ssh",
        "-i",
        str(key),
        *strict(known_hosts, "monoscape-controller"),
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-W",
        "%h:%p",
        f"root@{FIP}",
    ]
    assert node["monoscape_bastion"] == "monoscape-controller"
    for name in ("monoscape-node-2", "monoscape-builder"):
        assert proxy_argv(ssh_argv(hostvars[name])) == proxy_argv(argv)
        assert hostvars[name]["monoscape_bastion"] == "monoscape-controller"
    # no address, no ProxyCommand (but its host key is still checked strictly)
    assert ssh_argv(hostvars["monoscape-node-4"]) == strict(known_hosts, "monoscape-node-4")


@pytest.mark.parametrize("option", [{"private": True}, {"bastion": False}])
def test_no_bastion_when_private_or_off(workdir, cloud, option):
    config = {"clouds": ["delta"], "deployment": "monoscape", "ssh_known_hosts_file": "/kh", **option}
    proc, data = inventory(workdir, config)
    assert proc.returncode == 0, proc.stderr
    hostvars = data["_meta"]["hostvars"]
    for name in MONOSCAPE:
        assert "ProxyCommand" not in hostvars[name]["ansible_ssh_common_args"]
        assert "monoscape_bastion" not in hostvars[name]
    assert ssh_argv(hostvars["monoscape-node-1"]) == strict("/kh", "monoscape-node-1")
    if option.get("private"):
        assert hostvars["monoscape-controller"]["ansible_host"] == "10.1.0.10"


def test_host_key_alias_is_the_server_name(workdir, cloud):
    """known_hosts names servers by name, whatever the inventory host name is."""
    config = {"clouds": ["delta"], "deployment": "monoscape", "hostname": "id", "ssh_known_hosts_file": "/kh"}
    proc, data = inventory(workdir, config)
    assert proc.returncode == 0, proc.stderr
    by_name = {hv["openstack"]["name"]: (h, hv) for h, hv in data["_meta"]["hostvars"].items()}
    controller_id, controller = by_name["monoscape-controller"]
    assert ssh_argv(controller) == strict("/kh", "monoscape-controller")
    _, node = by_name["monoscape-node-1"]
    assert ssh_argv(node)[:6] == strict("/kh", "monoscape-node-1")
    assert strict("/kh", "monoscape-controller") == proxy_argv(ssh_argv(node))[1:7]
    assert node["monoscape_bastion"] == controller_id


def test_bastion_of_each_deployment_and_warnings(workdir, cloud):
    """No deployment set: every deployment of the project gets its own bastion, or a warning."""
    proc, data = inventory(workdir, {"clouds": ["delta"], "ssh_user": "root"})
    assert proc.returncode == 0, proc.stderr
    hostvars = data["_meta"]["hostvars"]
    stderr = warnings(proc)
    # monoscape and other: each through its own running controller (not the shut-off one)
    assert proxy_argv(ssh_argv(hostvars["monoscape-node-1"]))[-1] == f"root@{FIP}"
    other = proxy_argv(ssh_argv(hostvars["other-node-1"]))
    assert other[-3:] == ["-W", "%h:%p", "root@203.0.113.20"]
    assert "-i" not in other and not [a for a in other if a.startswith(("UserKnownHostsFile", "HostKeyAlias"))]
    assert hostvars["other-node-1"]["monoscape_bastion"] == "other-controller"
    # the controllers with a floating IP never go through a bastion
    for name in ("monoscape-controller", "other-controller", "twoctl-controller-a", "twoctl-controller-b"):
        assert "ansible_ssh_common_args" not in hostvars[name], name
    # a controller without a floating IP: no bastion, a warning saying so
    assert "ansible_ssh_common_args" not in hostvars["nofip-node-1"]
    assert "the controller nofip-controller of deployment nofip (cloud delta) has no floating IP" in stderr
    for name in ("other", "monoscape", "twoctl", "halffip"):
        assert f"deployment {name} " not in stderr, name
    # servers without deployment metadata get no bastion
    untagged = [h for h, hv in hostvars.items() if not hv["openstack"]["metadata"]]
    assert len(untagged) == 2
    assert all("ansible_ssh_common_args" not in hostvars[h] for h in untagged)
    # without a deployment the role groups mix the deployments: what deployment is for
    assert "other-controller" in members(data, "monoscape_controller")


def test_several_controllers_the_first_by_name_is_the_bastion(workdir, cloud):
    """A highly available load balancer: two ACTIVE controllers, each with a floating IP. The
    first by name is the bastion, whatever order Nova lists them in; no warning."""
    proc, data = inventory(workdir, {"clouds": ["delta"], "deployment": "twoctl", "ssh_user": "root"})
    assert proc.returncode == 0, proc.stderr
    hostvars = data["_meta"]["hostvars"]
    listed = [s["name"] for s in PROJECTS["carol"] if s["name"].startswith("twoctl-controller-")]
    assert listed == ["twoctl-controller-b", "twoctl-controller-a"], "the stand-in Nova lists b first"
    # the group lists them by name too (groups['monoscape_controller'][0] is the first controller
    # whatever order Nova answers in: node_image hashes its address)
    assert data["monoscape_controller"]["hosts"] == ["twoctl-controller-a", "twoctl-controller-b"]
    node = hostvars["twoctl-node-1"]
    assert node["monoscape_bastion"] == "twoctl-controller-a"
    assert proxy_argv(ssh_argv(node))[-1] == "root@203.0.113.30"
    # each controller is reached at its own floating IP
    assert hostvars["twoctl-controller-a"]["ansible_host"] == "203.0.113.30"
    assert hostvars["twoctl-controller-b"]["ansible_host"] == "203.0.113.31"
    for name in listed:
        assert "monoscape_bastion" not in hostvars[name]
    assert "twoctl" not in warnings(proc)


def test_the_first_controller_with_a_floating_ip_is_the_bastion(workdir, cloud):
    """The first controller by name has no floating IP: the second, which has one, is the bastion
    (of the first too, reached at its fixed address)."""
    proc, data = inventory(workdir, {"clouds": ["delta"], "deployment": "halffip", "ssh_user": "root"})
    assert proc.returncode == 0, proc.stderr
    hostvars = data["_meta"]["hostvars"]
    for name in ("halffip-node-1", "halffip-controller-a"):
        assert hostvars[name]["monoscape_bastion"] == "halffip-controller-b", name
        assert proxy_argv(ssh_argv(hostvars[name]))[-1] == "root@203.0.113.51", name
    assert "monoscape_bastion" not in hostvars["halffip-controller-b"]
    assert "halffip" not in warnings(proc)


def test_no_bastion_when_no_controller_has_a_floating_ip(workdir, cloud):
    proc, data = inventory(workdir, {"clouds": ["delta"], "deployment": "nofips", "ssh_user": "root"})
    assert proc.returncode == 0, proc.stderr
    hostvars = data["_meta"]["hostvars"]
    assert all("monoscape_bastion" not in hv and "ansible_ssh_common_args" not in hv for hv in hostvars.values())
    assert (
        "none of the ACTIVE controller servers of deployment nofips (cloud delta)"
        " (nofips-controller-a, nofips-controller-b) has a floating IP" in warnings(proc)
    )


def test_constructed_options_see_openstack_and_ssh_variables(workdir, cloud):
    config = {
        "clouds": ["delta"],
        "deployment": "monoscape",
        "compose": {"deployment_name": "openstack.metadata.monoscape_deployment"},
        "groups": {"behind_bastion": "monoscape_bastion is defined", "fixed_only": "not openstack.floating_ips"},
        "keyed_groups": [{"key": "openstack.metadata.monoscape_role", "prefix": "kind"}],
    }
    proc, data = inventory(workdir, config)
    assert proc.returncode == 0, proc.stderr
    assert data["_meta"]["hostvars"]["monoscape-node-1"]["deployment_name"] == "monoscape"
    assert members(data, "behind_bastion") == [
        "monoscape-builder",
        "monoscape-node-1",
        "monoscape-node-2",
        "monoscape-node-3",
    ]
    assert "monoscape-controller" not in members(data, "fixed_only")
    assert members(data, "kind_controller") == ["monoscape-controller"]


@pytest.mark.parametrize("source", ["inventory/openstack.example.yml", "inventory/lab/10-openstack.yml"])
def test_shipped_configs_give_the_playbooks_their_groups_and_ssh(workdir, cloud, source):
    """Each config alone (plus clouds.yaml) gives the playbooks their groups and SSH settings."""
    example = yaml.safe_load(pathlib.Path(ROOT, source).read_text())
    example["clouds_yaml_path"] = [str(workdir / "clouds.yaml")]
    proc, data = inventory(workdir, example, env={"HOME": str(workdir)})
    assert proc.returncode == 0, proc.stderr
    hostvars = data["_meta"]["hostvars"]
    assert sorted(hostvars) == MONOSCAPE
    assert members(data, "monoscape_controller") == ["monoscape-controller"]
    assert members(data, "monoscape_nodes") == ["monoscape-node-1", "monoscape-node-2"]
    assert members(data, "monoscape_builders") == ["monoscape-builder"]
    state = workdir / ".config" / "monoscape" / "monoscape"
    node = hostvars["monoscape-node-1"]
    assert node["ansible_user"] == "root"
    assert node["ansible_ssh_private_key_file"] == str(state / "id_ed25519")
    assert ssh_argv(node)[:6] == strict(state / "known_hosts", "monoscape-node-1")
    assert proxy_argv(ssh_argv(node))[-3:] == ["-W", "%h:%p", f"root@{FIP}"]
    assert ssh_argv(hostvars["monoscape-controller"]) == strict(state / "known_hosts", "monoscape-controller")


def test_cache_key_includes_the_deployment(workdir, cloud):
    config = {
        "clouds": ["delta"],
        "deployment": "monoscape",
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(workdir / "cache"),
    }
    proc, first = inventory(workdir, config)
    assert proc.returncode == 0, proc.stderr
    before = len(cloud.requests)
    proc, again = inventory(workdir, config)
    assert len(cloud.requests) == before and again == first
    proc, other = inventory(workdir, {**config, "deployment": "other"})
    assert proc.returncode == 0, proc.stderr
    assert len(cloud.requests) > before, "another deployment is not served from the first one's cache"
    assert sorted(other["_meta"]["hostvars"]) == ["other-controller", "other-controller-old", "other-node-1"]


# ---------------------------------------------------------------------- clouds.yaml: openstacksdk's loader


def clouds_file(path, **entries):
    path.write_text(json.dumps({"clouds": entries}))
    return path


def test_clouds_yaml_search_order(workdir, cloud):
    """The first clouds.yaml that exists wins, in openstacksdk's order: OS_CLIENT_CONFIG_FILE,
    clouds_yaml_path, then the standard locations (the current directory first)."""
    entries = json.loads((workdir / "clouds.yaml").read_text())["clouds"]
    here = workdir / "here"
    here.mkdir()
    clouds_file(here / "clouds.yaml", beta=entries["beta"])
    listed = clouds_file(workdir / "listed.yaml", alpha=entries["alpha"])
    from_env = clouds_file(workdir / "env.yaml", delta=entries["delta"])
    config = {"clouds_yaml_path": [str(workdir / "missing.yaml"), str(listed)]}
    no_env = {"OS_CLIENT_CONFIG_FILE": None}

    def clouds_read(config, env):
        proc, data = inventory(workdir, config, env=env, cwd=here)
        assert proc.returncode == 0, proc.stderr
        return sorted(name for name in data if name.startswith("cloud_"))

    assert clouds_read(config, no_env) == ["cloud_alpha"], "clouds_yaml_path before the standard locations"
    assert clouds_read({}, no_env) == ["cloud_beta"], "the current directory's clouds.yaml"
    assert clouds_read(config, {"OS_CLIENT_CONFIG_FILE": str(from_env)}) == ["cloud_delta"]


def test_secure_yaml_is_merged(workdir, cloud):
    entries = json.loads((workdir / "clouds.yaml").read_text())["clouds"]
    alpha = entries["alpha"]
    clouds_file(workdir / "clouds.yaml", alpha={**alpha, "auth": {**alpha["auth"], "password": BAD}})
    clouds_file(workdir / "secure.yaml", alpha={"auth": {"password": GOOD}})
    proc, data = inventory(workdir, {}, env={"OS_CLIENT_SECURE_FILE": str(workdir / "secure.yaml")})
    assert proc.returncode == 0, proc.stderr
    assert len(members(data, "cloud_alpha")) == 5


def test_the_entry_s_region_chooses_the_endpoint(workdir, cloud):
    """region_name goes from the clouds.yaml entry (through openstacksdk's loader) to the catalog
    lookup: the stand-in's catalog has RegionOne only."""
    entries = json.loads((workdir / "clouds.yaml").read_text())["clouds"]
    clouds_file(workdir / "clouds.yaml", alpha={**entries["alpha"], "region_name": "RegionTwo"})
    proc, _ = inventory(workdir, {"clouds": ["alpha"]})
    assert proc.returncode != 0
    assert "cloud alpha: EndpointNotFound: public endpoint for compute service in RegionTwo region" in warnings(proc)


def test_os_variables_are_the_envvars_cloud(tmp_path, cloud):
    """No clouds.yaml anywhere, OS_* variables set: openstacksdk's cloud `envvars` is read."""
    if any(os.path.exists(path) for path in plugin.sdk_config_loader().CONFIG_FILES):
        pytest.skip("this machine has a clouds.yaml in a standard location")
    variables = {
        "OS_CLIENT_CONFIG_FILE": None,
        "OS_AUTH_URL": f"{cloud.base}/v3",
        "OS_USERNAME": "alice",
        "OS_PASSWORD": GOOD,
        "OS_PROJECT_NAME": "p1",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_REGION_NAME": "RegionOne",
    }
    proc, data = inventory(tmp_path, {}, env=variables, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(members(data, "cloud_envvars")) == 5
    proc, _ = inventory(tmp_path, {}, env={**variables, "OS_PASSWORD": BAD}, cwd=tmp_path)
    assert "cloud envvars: authentication failed" in warnings(proc)


def test_a_cached_run_does_not_import_openstacksdk(workdir, cloud):
    """The loader's import (openstack/__init__.py brings the whole SDK, ~0.1 s) is paid only when
    the clouds are read: `python -X importtime` of a cached run shows no openstack module."""
    config = {
        "clouds": ["alpha"],
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(workdir / "cache"),
    }
    importtime = {"PYTHONPROFILEIMPORTTIME": "1"}

    def sdk_imports(proc):
        return [line for line in proc.stderr.splitlines() if line.startswith("import time:") and "openstack" in line]

    proc, first = inventory(workdir, config, env=importtime)
    assert proc.returncode == 0, proc.stderr
    assert any(line.endswith(" openstack.config.loader") for line in sdk_imports(proc)), "reading the cloud imports it"
    proc, second = inventory(workdir, config, env=importtime)
    assert proc.returncode == 0, proc.stderr
    assert second == first
    assert sdk_imports(proc) == []


@pytest.fixture
def sdk_env(monkeypatch):
    """No OS_* variable of the caller's reaches openstacksdk's loader in this process."""
    for name in [k for k in os.environ if k.startswith("OS_")]:
        monkeypatch.delenv(name)


def test_the_sdk_loader_chooses_the_auth_plugin(tmp_path, sdk_env):
    auth = {"auth_url": "http://127.0.0.1:5000/v3", "username": "u", "password": GOOD, "user_domain_name": "Default"}
    path = clouds_file(
        tmp_path / "clouds.yaml",
        plain={"auth": {**auth, "tenant-name": "p"}, "region_name": "RegionOne", "interface": "internal"},
        v3={
            "auth": {**auth, "project_name": "p", "project_domain_name": "Default"},
            "auth_type": "v3password",
            "regions": ["R2", "R3"],
        },
        appcred={
            "auth": {
                "auth_url": auth["auth_url"],
                "application_credential_id": "i",
                "application_credential_secret": "s",
            },
            "auth_type": "v3applicationcredential",
        },
        broken={"auth": {"auth_url": auth["auth_url"]}, "auth_type": "no-such-plugin"},
    )
    targets, failures = plugin.cloud_targets([], [str(path)])
    assert [name for name, _ in failures] == ["broken"]
    by_name = {target.name: target for target in targets}
    assert sorted(by_name) == ["appcred", "plain", "v3"]
    plain_ = by_name["plain"]
    assert (plain_.region_name, plain_.interface) == ("RegionOne", "internal")
    auth_of = {name: target.session().auth for name, target in by_name.items()}
    assert type(auth_of["plain"]).__module__ == "keystoneauth1.identity.generic.password"
    assert auth_of["plain"]._project_name == "p"  # tenant-name, as openstacksdk reads it
    assert type(auth_of["v3"]).__module__ == "keystoneauth1.identity.v3.password"
    assert (by_name["v3"].region_name, by_name["v3"].interface) == ("R2", "public")
    assert type(auth_of["appcred"]).__module__ == "keystoneauth1.identity.v3.application_credential"


def test_tls_settings_reach_the_session(tmp_path, sdk_env):
    """verify, cacert, cert and key of a clouds.yaml entry are what the SDK's session uses for the
    token and the server list."""
    auth = {"auth_url": "https://127.0.0.1:5000/v3", "username": "u", "password": GOOD, "project_name": "p"}
    path = clouds_file(
        tmp_path / "clouds.yaml",
        default={"auth": auth},
        insecure={"auth": auth, "verify": False},
        private_ca={"auth": auth, "cacert": str(tmp_path / "ca.pem"), "cert": "/c.pem", "key": "/k.pem"},
    )
    targets, failures = plugin.cloud_targets([], [str(path)])
    assert failures == []
    sessions = {target.name: target.session() for target in targets}
    assert {name: session.verify for name, session in sessions.items()} == {
        "default": True,
        "insecure": False,
        "private_ca": str(tmp_path / "ca.pem"),
    }
    assert sessions["private_ca"].cert == ("/c.pem", "/k.pem")
    assert sessions["default"].cert is None


def test_unknown_cloud_names_the_file_and_the_clouds(tmp_path, sdk_env):
    entry = {"auth": {"auth_url": "http://127.0.0.1:5000/v3", "username": "u", "password": GOOD}}
    path = clouds_file(tmp_path / "clouds.yaml", b=entry, a=entry)
    targets, failures = plugin.cloud_targets(["a", "nosuch"], [str(path)])
    assert [target.name for target in targets] == ["a"]
    assert failures == [("nosuch", f"not defined in clouds.yaml {path} (defined: a, b)")]


def test_a_cloud_hidden_by_os_client_config_file_says_so(tmp_path, sdk_env, monkeypatch):
    """openstacksdk reads OS_CLIENT_CONFIG_FILE before the plugin's clouds_yaml_path (an
    operator who sourced another cloud's settings): the warning says why the cloud is missing."""
    entry = {"auth": {"auth_url": "http://127.0.0.1:5000/v3", "username": "u", "password": GOOD}}
    mine = clouds_file(tmp_path / "mine.yaml", deployment=entry)
    other = clouds_file(tmp_path / "other.yaml", admin=entry)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(other))
    targets, failures = plugin.cloud_targets(["deployment"], [str(mine)])
    assert targets == []
    assert failures == [
        (
            "deployment",
            f"not defined in clouds.yaml {other} (OS_CLIENT_CONFIG_FILE: read before clouds_yaml_path;"
            f" unset it to use {mine}) (defined: admin)",
        )
    ]


def test_no_clouds_yaml_at_all(tmp_path, sdk_env):
    if any(os.path.exists(path) for path in plugin.sdk_config_loader().CONFIG_FILES):
        pytest.skip("this machine has a clouds.yaml in a standard location")
    with pytest.raises(AnsibleParserError, match=r"no clouds.yaml found and no OS_\* variables set"):
        plugin.cloud_targets([], [str(tmp_path / "missing.yaml")])
    # named clouds (the deployment's tenant before its first run): skipped, each with the reason
    targets, failures = plugin.cloud_targets(["tenant"], [str(tmp_path / "missing.yaml")])
    assert targets == [] and failures[0][0] == "tenant" and "no clouds.yaml found" in failures[0][1]


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


@pytest.mark.parametrize("text", ["ProxyCommand=ssh -W %h:%p root@x", "a \"quoted\" \\ 'single' $HOME `x`"])
def test_double_quoted_survives_shlex_split(text):
    assert shlex.split(f"-o {plugin.double_quoted(text)}") == ["-o", text]


def test_proxy_command_quotes_paths_and_escapes_percent():
    command = plugin.proxy_command("198.51.100.7", "ctl 1", "ops", "/keys/my key%1", "/kh/it's")
    # the outer ssh expands %-tokens first (%% -> %); what is left is the shell's command line
    expanded = command.replace("%h", "10.0.0.9").replace("%p", "22").replace("%%", "%")
    assert shlex.split(expanded) == [
        "ssh",
        "-i",
        "/keys/my key%%1",  # the bastion hop's ssh expands %-tokens in it again
        "-o",
        "UserKnownHostsFile=/kh/it's",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "HostKeyAlias=ctl 1",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-W",
        "10.0.0.9:22",
        "ops@198.51.100.7",
    ]
    assert plugin.proxy_command("198.51.100.7", "ctl") == (
        "ssh -o BatchMode=yes -o ConnectTimeout=10 -W %h:%p 198.51.100.7"
    )
