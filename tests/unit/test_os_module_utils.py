"""The shared base of the os_* modules: retries, error messages, validation
helpers, connection set-up, and that every module's documentation matches its
argument spec (what ansible-doc shows is what the module accepts)."""

import ast
import contextlib
import os
import pathlib
import socket
import stat
import time
from http.server import ThreadingHTTPServer

import pytest
import yaml
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as sdk_exc

from ansible_collections.monoscape.paas.plugins.module_utils import openstack as base
from ansible_collections.monoscape.paas.plugins.modules import os_image_info, os_keypair, os_project

from .loopback_api import JsonHandler, endpoint, serving, token
from .os_fake_cloud import FakeCloud, Response, run_module

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULES = sorted(p for p in (ROOT / "plugins" / "modules").glob("os_*.py"))


def http_error(status, message="boom"):
    response = Response(status, {"error": {"message": message}})
    try:
        sdk_exc.raise_from_response(response)
    except sdk_exc.HttpException as exc:
        return exc
    raise AssertionError("not an error status")


# ---------------------------------------------------------------------- helpers


@pytest.mark.parametrize(("status", "retriable"), [(409, True), (503, True), (500, True), (404, False), (400, False)])
def test_retriable_statuses(status, retriable):
    assert base.is_retriable(http_error(status)) is retriable


def test_connection_failures_are_retriable():
    assert base.is_retriable(ks_exc.ConnectFailure("refused"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must not be empty"),
        (" web", "leading or trailing whitespace"),
        ("a" * 65, "at most 64"),
        ("we\tb", "control character"),
        (42, "must be a string"),
    ],
)
def test_check_text_refuses(value, message):
    assert message in base.check_text("project name", value, max_len=64)


def test_check_text_accepts_ordinary_names():
    assert base.check_text("server name", "acme-node-1") is None


def test_normalize_metadata_stringifies_scalars_and_refuses_nesting():
    data, problem = base.normalize_metadata("metadata", {"a": True, "b": 3, "c": "x"})
    assert problem is None
    assert data == {"a": "true", "b": "3", "c": "x"}
    _, problem = base.normalize_metadata("metadata", {"a": {"nested": 1}})
    assert "must be a string" in problem
    _, problem = base.normalize_metadata("metadata", {"k": "v" * 256})
    assert "256 characters" in problem


def test_names_hint_is_sorted_and_bounded():
    assert base.names_hint(["b", "a", None, "a"]) == "a, b"
    assert base.names_hint([]) == "none"
    assert base.names_hint([f"n{i:02d}" for i in range(20)], limit=3) == "n00, n01, n02 … and 17 more"


def test_connect_error_is_short():
    exc = ks_exc.ConnectFailure(
        "Unable to establish connection to http://127.0.0.1:5999/v3/auth/tokens: HTTPConnectionPool(host='x'):"
        " Max retries exceeded ([Errno 111] Connection refused)"
    )
    assert (
        base.connect_error(exc)
        == "Unable to establish connection to http://127.0.0.1:5999/v3/auth/tokens (connection refused)"
    )


# ---------------------------------------------------------------------- retries


class Flaky:
    def __init__(self, failures, status=409):
        self.failures = failures
        self.status = status
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise http_error(self.status, "Cannot 'stop' instance while it is in task_state powering-on")
        return "done"


def make_module(monkeypatch, **params):
    """An OpenStackModule instance without AnsibleModule (for call/wait tests)."""
    module = base.OpenStackModule.__new__(base.OpenStackModule)
    module.params = {"api_retries": 3, "timeout": 5, **params}

    class Quiet:
        def log(self, msg):
            pass

    module.ansible = Quiet()
    monkeypatch.setattr(base.OpenStackModule, "retry_delay", 0)
    monkeypatch.setattr(base.OpenStackModule, "poll_interval", 0)
    return module


def test_call_retries_conflicts_with_backoff_then_succeeds(monkeypatch):
    module = make_module(monkeypatch)
    flaky = Flaky(failures=2)
    assert module.call(flaky) == "done"
    assert flaky.calls == 3


def test_call_gives_up_after_api_retries(monkeypatch):
    module = make_module(monkeypatch, api_retries=1)
    flaky = Flaky(failures=5, status=503)
    with pytest.raises(sdk_exc.HttpException):
        module.call(flaky)
    assert flaky.calls == 2


def test_call_does_not_retry_client_errors(monkeypatch):
    module = make_module(monkeypatch)
    flaky = Flaky(failures=5, status=404)
    with pytest.raises(sdk_exc.NotFoundException):
        module.call(flaky)
    assert flaky.calls == 1


def test_call_rechecks_a_create_before_retrying(monkeypatch):
    """A 502 after the create was done must not make a second resource."""
    module = make_module(monkeypatch)
    flaky = Flaky(failures=1, status=502)
    assert module.call(flaky, recheck=lambda: "found it") == "found it"
    assert flaky.calls == 1


def test_wait_for_times_out_saying_what_it_saw(monkeypatch):
    module = make_module(monkeypatch, timeout=0)
    with pytest.raises(base.ModuleFailure, match=r"waiting for server x to become ACTIVE \(last seen: BUILD\)"):
        module.wait_for(type("S", (), {"status": "BUILD"}), lambda s: False, "server x to become ACTIVE")


def test_wait_for_stops_at_a_failure_state(monkeypatch):
    module = make_module(monkeypatch)
    with pytest.raises(base.ModuleFailure, match="failed: went to ERROR"):
        module.wait_for(lambda: "ERROR", lambda s: False, "it", failed=lambda s: "went to ERROR")


# ---------------------------------------------------------------------- errors through a module run


def test_bad_credentials_say_so_without_the_password(monkeypatch):
    cloud = FakeCloud()

    def refuse(*args, **kwargs):
        raise ks_exc.Unauthorized("The request you have made requires authentication. (HTTP 401)")

    monkeypatch.setattr(cloud.identity, "find_domain", refuse)
    result = run_module(monkeypatch, os_project, {"name": "acme"}, cloud)
    assert result["failed"]
    assert "authentication failed" in result["msg"]
    assert "username=admin" in result["msg"]
    assert "password" not in result["msg"].replace("username, password", "")
    assert cloud.calls.mutations() == []


def test_unknown_cloud_lists_the_defined_ones(monkeypatch, tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  lab-admin:\n    auth: {auth_url: 'http://127.0.0.1:1/v3'}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    from ansible.module_utils import basic  # noqa: PLC0415
    from ansible.module_utils.testing import patch_module_args  # noqa: PLC0415

    def fail_json(self, msg, **kwargs):
        raise RuntimeError(msg)

    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    with patch_module_args({"name": "acme", "cloud": "nosuch"}), pytest.raises(RuntimeError) as failure:
        os_project.main()
    assert "cloud 'nosuch' is not defined in clouds.yaml" in str(failure.value)
    assert "lab-admin" in str(failure.value)


def test_cloud_dict_with_separate_auth_is_refused(monkeypatch):
    result = run_module(
        monkeypatch, os_project, {"name": "acme", "cloud": {"auth": {}}, "auth": {"username": "x"}}, FakeCloud()
    )
    assert result["failed"]
    assert "auth must go inside it" in result["msg"]


def test_policy_refusal_names_the_account(monkeypatch):
    cloud = FakeCloud()

    def forbid(**kwargs):
        raise http_error(403, "Policy doesn't allow identity:create_project to be performed.")

    monkeypatch.setattr(cloud.identity, "create_project", forbid)
    result = run_module(monkeypatch, os_project, {"name": "acme"}, cloud)
    assert result["failed"]
    assert "not allowed by the cloud's policy" in result["msg"]
    assert "identity:create_project" in result["msg"]
    assert result["status_code"] == 403


# ---------------------------------------------------------------------- docs match the code


def module_docs(path):
    tree = ast.parse(path.read_text())
    docs = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            docs[target.id] = yaml.safe_load(node.value.value)
    return docs


def fragment_options():
    from ansible_collections.monoscape.paas.plugins.doc_fragments.openstack import ModuleDocFragment  # noqa: PLC0415

    return yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]


def module_spec(path):
    import importlib  # noqa: PLC0415

    module = importlib.import_module(f"ansible_collections.monoscape.paas.plugins.modules.{path.stem}")
    classes = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, base.OpenStackModule) and v is not base.OpenStackModule
    ]
    assert len(classes) == 1
    return classes[0].argument_spec


def compare(options, spec, where):
    assert sorted(options) == sorted(spec), f"{where}: documented {sorted(options)} vs spec {sorted(spec)}"
    for name, doc in options.items():
        code = spec[name]
        assert doc.get("type", "str") == code.get("type", "str"), f"{where}.{name} type"
        assert doc.get("default") == code.get("default"), f"{where}.{name} default"
        assert sorted(doc.get("choices") or []) == sorted(code.get("choices") or []), f"{where}.{name} choices"
        assert bool(doc.get("required")) == bool(code.get("required")), f"{where}.{name} required"
        assert sorted(doc.get("aliases") or []) == sorted(code.get("aliases") or []), f"{where}.{name} aliases"
        if code.get("elements") or doc.get("elements"):
            assert doc.get("elements") == code.get("elements"), f"{where}.{name} elements"
        if "options" in code:
            compare(doc["suboptions"], code["options"], f"{where}.{name}")


def test_common_options_are_documented_once():
    compare(fragment_options(), base.COMMON_ARGUMENT_SPEC, "doc_fragments/openstack")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_documentation_matches_argument_spec(path):
    docs = module_docs(path)
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    assert "monoscape.paas.openstack" in docs["DOCUMENTATION"]["extends_documentation_fragment"]
    assert docs["DOCUMENTATION"]["attributes"]["check_mode"]["support"] == "full"
    compare(docs["DOCUMENTATION"]["options"], module_spec(path), path.stem)
    spec = module_spec(path)
    assert list(spec) == sorted(spec), f"{path.stem}: argument_spec is not sorted"
    tasks = [t for task in docs["EXAMPLES"] for t in [task, *task.get("block", [])]]
    actions = [k for t in tasks for k in t if k.count(".") == 2]
    assert f"monoscape.paas.{path.stem}" in actions, f"{path.stem}: no example uses the module"
    for task in tasks:
        assert "name" in task, f"{path.stem}: an example task has no name"


def test_action_group_lists_every_module():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    assert runtime["action_groups"]["openstack"] == sorted(p.stem for p in MODULES)


def test_secrets_inside_a_cloud_dictionary_are_no_log():
    cloud = {
        "auth": {"auth_url": "http://keystone", "username": "u", "password": "s3cret-pw", "project_name": "p"},
        "region_name": "RegionOne",
        "extra": [{"token": "tok-123"}],
    }
    assert base.secret_values(cloud) == {"s3cret-pw", "tok-123"}
    assert base.secret_values("lab-admin") == set()


# ---------------------------------------------------------------------- a hung API


class HungCompute(ThreadingHTTPServer):
    """Keystone on loopback that issues tokens, with a compute endpoint that never answers
    in time (it sleeps ``hang`` seconds): what a hung nova-api looks like from a client."""

    daemon_threads = True
    hang = 4.0

    def __init__(self):
        super().__init__(("127.0.0.1", 0), HungHandler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests = []


class HungHandler(JsonHandler):
    def do_GET(self):
        server = self.server
        server.requests.append(("GET", self.path))
        if self.path.startswith("/compute"):
            time.sleep(server.hang)
            with contextlib.suppress(OSError):
                if "/os-keypairs/" in self.path:
                    self.reply(404, {"itemNotFound": {"code": 404, "message": "Keypair not found"}})
                else:
                    self.reply(200, {"keypairs": []})
            return
        self.reply_identity_version()

    def do_POST(self):
        server = self.server
        server.requests.append(("POST", self.path))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        catalog = [
            endpoint("identity", "keystone", f"{server.base}/v3"),
            endpoint("compute", "nova", f"{server.base}/compute/v2.1"),
        ]
        self.reply(201, token({"id": "u1", "name": "admin"}, "admin", "admin", catalog), {"X-Subject-Token": "token-1"})


@pytest.fixture
def hung_cloud():
    with serving(HungCompute()) as server:
        yield server


def run_module_main(monkeypatch, module, auth_url, **args):
    """A module's main against auth_url (no retries unless api_retries is given): its failure message."""
    from ansible.module_utils import basic  # noqa: PLC0415 - only these tests run a module's main
    from ansible.module_utils.testing import patch_module_args  # noqa: PLC0415

    def fail_json(self, msg, **kwargs):
        raise RuntimeError(msg)

    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    auth = {"auth_url": auth_url, "username": "admin", "password": "pw", "project_name": "admin"}  # a fixture
    auth.update(user_domain_name="Default", project_domain_name="Default")
    args = {"api_retries": 0, **args, "cloud": {"auth": auth, "region_name": "RegionOne"}}
    with patch_module_args(args), pytest.raises(RuntimeError) as failure:
        module.main()
    return str(failure.value)


def test_a_hung_api_fails_in_api_timeout_naming_the_service(monkeypatch, hung_cloud):
    started = time.monotonic()
    # api_retries 3: a timeout is still not tried again
    auth_url = f"{hung_cloud.base}/v3"
    message = run_module_main(monkeypatch, os_keypair, auth_url, name="deploy", api_timeout=1, api_retries=3)
    elapsed = time.monotonic() - started
    assert "the compute (Nova) API of cloud (inline cloud) did not answer within 1 s" in message, message
    assert f"{hung_cloud.base}/compute" in message
    assert "is that service hung" in message
    assert elapsed < hung_cloud.hang - 0.5  # the timeout, not the hang, ended it; no retries
    assert len([r for r in hung_cloud.requests if r[1].startswith("/compute")]) <= 2  # discovery + the call


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RefusedService(HungCompute):
    """Keystone issues tokens whose catalog sends one service (`service_type`) to a port
    nothing listens on: that service stopped."""

    def __init__(self, service_type):
        super().__init__()
        self.RequestHandlerClass = RefusedHandler
        self.service_type = service_type
        self.refused = f"http://127.0.0.1:{closed_port()}/{service_type}"


class RefusedHandler(HungHandler):
    def do_POST(self):
        server = self.server
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        catalog = [
            endpoint("identity", "keystone", f"{server.base}/v3"),
            endpoint(server.service_type, server.service_type, server.refused),
        ]
        self.reply(201, token({"id": "u1", "name": "admin"}, "admin", "admin", catalog), {"X-Subject-Token": "token-1"})


def test_a_stopped_keystone_is_named(monkeypatch):
    message = run_module_main(monkeypatch, os_keypair, f"http://127.0.0.1:{closed_port()}/v3", name="deploy")
    assert message.startswith("cannot reach the identity (Keystone) API of cloud (inline cloud):"), message
    assert "connection refused" in message and "Is the identity (Keystone) service running?" in message


def test_a_stopped_service_whose_versions_cannot_be_discovered_is_named(monkeypatch):
    """The SDK's version discovery of a stopped glance-api finds nothing ("exists but does
    not have any supported versions"): the message says the service does not answer."""
    server = RefusedService("image")
    with serving(server):
        message = run_module_main(monkeypatch, os_image_info, f"{server.base}/v3")
    assert message.startswith("cannot reach the image (Glance) API of cloud (inline cloud):"), message
    assert "connection refused" in message and "Is the image (Glance) service running?" in message


def test_a_stopped_service_of_the_catalog_is_named(monkeypatch):
    server = RefusedService("compute")
    with serving(server):
        message = run_module_main(monkeypatch, os_keypair, f"{server.base}/v3", name="deploy")
    assert message.startswith("cannot reach the compute (Nova) API of cloud (inline cloud):"), message
    assert server.refused in message and "Is the compute (Nova) service running?" in message


class KeystoneGone(HungCompute):
    """Keystone issues a token, then stops answering (503, as behind a proxy); nova-api
    is up but cannot check the token: keystonemiddleware's 503."""

    def __init__(self):
        super().__init__()
        self.issued = False


class KeystoneGoneHandler(HungHandler):
    def do_GET(self):
        server = self.server
        if server.issued and self.path.startswith("/v3"):
            self.reply(503, {"error": "keystone is down"})
        elif self.path.startswith("/compute"):
            message = "The server is currently unavailable. Please try again at a later time."
            self.reply(503, {"error": {"code": 503, "title": "Service Unavailable", "message": message}})
        else:
            self.reply_identity_version()

    def do_POST(self):
        super().do_POST()
        self.server.issued = True


def test_a_service_that_cannot_check_tokens_names_keystone(monkeypatch):
    server = KeystoneGone()
    server.RequestHandlerClass = KeystoneGoneHandler
    with serving(server):
        message = run_module_main(monkeypatch, os_keypair, f"{server.base}/v3", name="deploy")
    assert message.startswith("OpenStack API error 503:"), message
    assert f"The identity (Keystone) API of cloud (inline cloud) does not answer (HTTP 503 from {server.base}/v3)" in (
        message
    )
    assert "Is the identity (Keystone) service running?" in message


def test_api_timeout_has_a_default_and_zero_means_none():
    assert base.COMMON_ARGUMENT_SPEC["api_timeout"]["default"] == base.DEFAULT_API_TIMEOUT == 60
    module = base.OpenStackModule.__new__(base.OpenStackModule)
    module.params = {"cloud": "lab", "api_timeout": 0, "interface": "public"}
    assert "api_timeout" not in module.connection_kwargs()
    module.params["api_timeout"] = 5
    assert module.connection_kwargs()["api_timeout"] == 5


def test_timeouts_are_not_retried():
    assert not base.is_retriable(ks_exc.ConnectTimeout("Request to http://127.0.0.1:8774/v2.1/servers timed out"))
    assert base.request_url(ks_exc.ConnectTimeout("Request to http://x:1/v2.1 timed out")) == "http://x:1/v2.1"


# ---------------------------------------------------------------------- the token cache

FIXTURE_PW, OTHER_PW = "pw", "other"  # fixtures, not real credentials


def keypair_absent(monkeypatch, cloud_server, cache, user_pw=None):
    """Run os_keypair (state absent: one compute look-up) against the loopback cloud."""
    from ansible.module_utils import basic  # noqa: PLC0415 - only these tests run a module's main
    from ansible.module_utils.testing import patch_module_args  # noqa: PLC0415

    from ansible_collections.monoscape.paas.plugins.modules import os_keypair  # noqa: PLC0415

    def exit_json(self, **kwargs):
        raise SystemExit(0)

    def fail_json(self, msg, **kwargs):
        raise RuntimeError(msg)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    cloud = {
        "auth": {
            "auth_url": f"{cloud_server.base}/v3",
            "username": "admin",
            "password": user_pw or FIXTURE_PW,
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": "RegionOne",
    }
    args = {"name": "deploy", "state": "absent", "cloud": cloud, "token_cache": str(cache)}
    with patch_module_args(args), pytest.raises(SystemExit):
        os_keypair.main()
    return len([r for r in cloud_server.requests if r == ("POST", "/v3/auth/tokens")])


def test_the_token_cache_authenticates_once_per_credentials(monkeypatch, hung_cloud, tmp_path):
    hung_cloud.hang = 0
    cache = tmp_path / "tokens"
    assert keypair_absent(monkeypatch, hung_cloud, cache) == 1
    assert keypair_absent(monkeypatch, hung_cloud, cache) == 1  # the second task reuses the token
    assert keypair_absent(monkeypatch, hung_cloud, cache) == 1
    (token_file,) = cache.iterdir()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "token-1" in token_file.read_text()
    assert FIXTURE_PW not in token_file.name
    # other credentials never get this token
    assert keypair_absent(monkeypatch, hung_cloud, cache, OTHER_PW) == 2
    assert len(list(cache.iterdir())) == 2


def test_a_cache_others_can_read_is_not_used(monkeypatch, hung_cloud, tmp_path):
    hung_cloud.hang = 0
    cache = tmp_path / "tokens"
    keypair_absent(monkeypatch, hung_cloud, cache)
    cache.chmod(0o755)
    assert keypair_absent(monkeypatch, hung_cloud, cache) == 2
    cache.chmod(0o700)
    (token_file,) = cache.iterdir()
    token_file.chmod(0o644)
    assert keypair_absent(monkeypatch, hung_cloud, cache) == 3


def test_an_expired_token_is_replaced(monkeypatch, hung_cloud, tmp_path):
    hung_cloud.hang = 0
    cache = tmp_path / "tokens"
    keypair_absent(monkeypatch, hung_cloud, cache)
    (token_file,) = cache.iterdir()
    token_file.write_text(token_file.read_text().replace("2099-01-01", "2001-01-01"))
    assert keypair_absent(monkeypatch, hung_cloud, cache) == 2
    assert "2099-01-01" in token_file.read_text()


def test_cached_tokens_unused_for_a_day_are_removed(tmp_path):
    folder = tmp_path / "tokens"
    folder.mkdir(mode=0o700)
    old, fresh = folder / "old.json", folder / "fresh.json"
    for path in (old, fresh):
        path.write_text("{}")
    os.utime(old, (time.time() - base.TOKEN_CACHE_MAX_AGE - 60,) * 2)
    base.TokenCache(str(folder), {"auth": {}}, object()).prune()
    assert sorted(p.name for p in folder.iterdir()) == ["fresh.json"]


# ---------------------------------------------------------------------- a cloud by reference


def test_a_cloud_entry_by_reference_keeps_the_password_out_of_the_arguments(monkeypatch, hung_cloud, tmp_path):
    hung_cloud.hang = 0
    clouds = tmp_path / "clouds.yaml"
    entry = {
        "auth": {
            "auth_url": f"{hung_cloud.base}/v3",
            "username": "admin",
            "password": FIXTURE_PW,
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": "RegionOne",
    }
    clouds.write_text(yaml.safe_dump({"clouds": {"acme": entry}}))
    clouds.chmod(0o600)
    # the playbooks point OS_CLIENT_CONFIG_FILE at the admin's clouds.yaml: the reference reads only its file
    admin_clouds = tmp_path / "admin-clouds.yaml"
    admin_clouds.write_text(yaml.safe_dump({"clouds": {"lab-admin": entry}}))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(admin_clouds))
    from ansible.module_utils import basic  # noqa: PLC0415 - only this test runs a module's main
    from ansible.module_utils.testing import patch_module_args  # noqa: PLC0415

    from ansible_collections.monoscape.paas.plugins.modules import os_keypair  # noqa: PLC0415

    results = []

    def exit_json(self, **kwargs):
        results.append(kwargs)
        raise SystemExit(0)

    def fail_json(self, msg, **kwargs):
        raise RuntimeError(msg)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    reference = {"name": "acme", "clouds_yaml": str(clouds)}
    with patch_module_args({"name": "deploy", "state": "absent", "cloud": reference}), pytest.raises(SystemExit):
        os_keypair.main()
    assert results == [{"changed": False}]
    assert ("POST", "/v3/auth/tokens") in hung_cloud.requests  # the entry's credentials were used

    clouds.chmod(0o644)
    with (
        patch_module_args({"name": "deploy", "state": "absent", "cloud": reference}),
        pytest.raises(RuntimeError) as bad,
    ):
        os_keypair.main()
    assert f"others can read it (or it is not this user's): chmod 600 {clouds}" in str(bad.value)
    clouds.chmod(0o600)
    other = {"name": "nosuch", "clouds_yaml": str(clouds)}
    with patch_module_args({"name": "deploy", "state": "absent", "cloud": other}), pytest.raises(RuntimeError) as bad:
        os_keypair.main()
    assert f"cloud 'nosuch' is not defined in {clouds}; defined clouds: acme" in str(bad.value)
    missing = {"name": "acme", "clouds_yaml": str(tmp_path / "gone.yaml")}
    with patch_module_args({"name": "deploy", "state": "absent", "cloud": missing}), pytest.raises(RuntimeError) as bad:
        os_keypair.main()
    assert "does not exist (the tenant step, playbooks/tenant.yml, writes it)" in str(bad.value)
