"""app_info: the apps on a node, read from their records and the port registry."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.monoscape.paas.plugins.modules import app_info


@pytest.fixture
def node(tmp_path):
    root = tmp_path / "apps"
    registry = tmp_path / "ports.json"

    def record(tenant, app, current, versions, raw=None):
        folder = root / tenant / app
        folder.mkdir(parents=True)
        releases = [{"version": v, "sha256": f"sum-{v}"} for v in versions]
        (folder / "app.json").write_text(
            raw if raw is not None else json.dumps({"current": current, "releases": releases})
        )

    registry.write_text(
        json.dumps(
            {
                "instances": {
                    "demo.hello.2": {"owner": "demo/hello", "port": 9082},
                    "demo.hello.1": {"owner": "demo/hello", "port": 9081},
                    "acme.shop.1": {"owner": "acme/shop", "port": 9083},
                }
            }
        )
    )
    return root, registry, record


def run(capsys, root, registry, **params):
    args = {"apps_root": str(root), "registry": str(registry), **params}
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        app_info.main()
    result = json.loads(capsys.readouterr().out)
    result["rc"] = exc.value.code
    return result


def test_every_app_with_its_releases_and_instances(capsys, node):
    root, registry, record = node
    record("demo", "hello", "2.0.0", ["1.0.0", "2.0.0"])
    record("acme", "shop", "1.1", ["1.1"])
    result = run(capsys, root, registry)
    assert result["rc"] == 0 and not result["changed"], result
    assert result["apps"] == [
        {
            "tenant": "acme",
            "app": "shop",
            "current": "1.1",
            "releases": [{"version": "1.1", "sha256": "sum-1.1"}],
            "instances": {"acme.shop.1": 9083},
        },
        {
            "tenant": "demo",
            "app": "hello",
            "current": "2.0.0",
            "releases": [{"version": "1.0.0", "sha256": "sum-1.0.0"}, {"version": "2.0.0", "sha256": "sum-2.0.0"}],
            "instances": {"demo.hello.1": 9081, "demo.hello.2": 9082},
        },
    ]


def test_one_app_and_an_app_not_on_the_node(capsys, node):
    root, registry, record = node
    record("demo", "hello", "2.0.0", ["2.0.0"])
    record("acme", "shop", "1.1", ["1.1"])
    assert [a["app"] for a in run(capsys, root, registry, tenant="demo", app="hello")["apps"]] == ["hello"]
    assert run(capsys, root, registry, tenant="demo", app="other")["apps"] == []
    assert [a["tenant"] for a in run(capsys, root, registry, tenant="acme")["apps"]] == ["acme"]


def test_nothing_deployed_yet(capsys, tmp_path):
    result = run(capsys, tmp_path / "none", tmp_path / "none.json")
    assert result["rc"] == 0 and result["apps"] == [], result


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "cannot be read as JSON"),
        ("[]", "is not a Monoscape app record"),
        ('{"current": "1.0", "releases": [{"version": "../x"}]}', "version '../x'"),
        ('{"current": "1.0", "releases": "1.0"}', "releases must be a list"),
    ],
)
def test_a_bad_record_names_its_file(capsys, node, raw, message):
    root, registry, record = node
    record("demo", "hello", "", [], raw=raw)
    result = run(capsys, root, registry)
    assert result["rc"] == 1 and message in result["msg"] and str(root / "demo" / "hello" / "app.json") in result["msg"]


def test_a_folder_that_is_not_an_app_name_is_refused(capsys, node):
    root, registry, record = node
    record("Demo", "hello", "1.0", ["1.0"])
    result = run(capsys, root, registry)
    assert result["rc"] == 1 and "tenant name 'Demo'" in result["msg"], result


def test_app_needs_its_tenant(capsys, node):
    root, registry, _ = node
    result = run(capsys, root, registry, app="hello")
    assert result["rc"] == 1 and "app needs tenant" in result["msg"]
