"""The monoscape_package module: the checks of module_utils/monoscape_package
(tested in test_monoscape_package.py) plus the release version, as an Ansible
task that never changes anything."""

from __future__ import annotations

import json
import zipfile

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.monoscape.paas.plugins.modules import monoscape_package as module


def run(capsys, **params):
    with patch_module_args({"_ansible_check_mode": True, **params}), pytest.raises(SystemExit) as exc:
        module.main()
    result = json.loads(capsys.readouterr().out)
    result["rc"] = exc.value.code
    return result


@pytest.fixture
def package(tmp_path):
    path = tmp_path / "app.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Web.Config", "<configuration/>")
        archive.writestr("Default.aspx", "x")
    return str(path)


def test_valid_package_is_described(capsys, package):
    result = run(capsys, path=package, tenant="demo", app="hello", version="2.0.0-rc.1+b5")
    assert result["rc"] == 0
    assert not result["changed"]
    assert result["web_config"] == "Web.Config"
    assert result["files"] == 2
    assert len(result["sha256"]) == 64
    assert (result["tenant"], result["app"], result["version"]) == ("demo", "hello", "2.0.0-rc.1+b5")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tenant": "Demo"}, "tenant name 'Demo' has 'D' at position 1"),
        ({"app": "my app"}, "app name 'my app' has ' ' at position 3"),
        ({"version": "1.0/x"}, "version '1.0/x' has '/' at position 4"),
        ({"version": "1..0"}, "must not contain '..'"),
        ({"version": "-1"}, "must start with a letter or digit"),
        ({"version": ""}, "is empty"),
        ({"max_bytes": 10}, "the limit is 10 bytes"),
        ({"max_bytes": 0}, "max_bytes must be a positive integer"),
    ],
)
def test_bad_input_says_what_is_wrong(capsys, package, params, message):
    result = run(capsys, path=package, **params)
    assert result["rc"] == 1
    assert message in result["msg"]


def test_missing_package(capsys, tmp_path):
    result = run(capsys, path=str(tmp_path / "nope.zip"))
    assert result["rc"] == 1
    assert "cannot read package" in result["msg"]


def test_health_page_must_be_in_the_package(capsys, package):
    assert run(capsys, path=package, health_path="default.ASPX")["rc"] == 0
    result = run(capsys, path=package, health_path="health.aspx")
    assert result["rc"] == 1
    assert "health page 'health.aspx' is not in package" in result["msg"]


def test_limits_are_options(capsys, package):
    result = run(capsys, path=package, max_entries=1)
    assert result["rc"] == 1
    assert result["msg"].endswith("has 2 entries; the limit is 1")
