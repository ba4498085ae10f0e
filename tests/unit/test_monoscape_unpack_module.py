"""The monoscape_unpack module: module_utils/monoscape_package.extract (tested
with the hostile corpus in test_package_corpus.py) as an Ansible task on a node:
check mode only checks, a wrong sha256 or a hostile package fails with the
one-line message and leaves nothing behind."""

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.monoscape.paas.plugins.modules import monoscape_unpack as module

from . import zip_corpus as zc

GOOD = zc.site(zc.entry("bin/"), zc.entry("bin/HelloApp.dll", b"MZ"))


def run(capsys, check_mode=False, **params):
    with patch_module_args({"_ansible_check_mode": check_mode, **params}), pytest.raises(SystemExit) as exc:
        module.main()
    result = json.loads(capsys.readouterr().out)
    result["rc"] = exc.value.code
    return result


@pytest.fixture
def releases(tmp_path):
    (tmp_path / "releases").mkdir()
    return tmp_path / "releases"


def package(tmp_path, data):
    path = tmp_path / ".1.0.0.zip"
    path.write_bytes(data)
    return str(path)


def test_unpacks_a_new_release(capsys, tmp_path, releases):
    result = run(capsys, src=package(tmp_path, GOOD), dest=str(releases / "1.0.0"), sha256=zc.sha256(GOOD))
    assert result["rc"] == 0, result
    assert result["changed"]
    assert result["files"] == 3
    assert sorted(os.listdir(releases / "1.0.0")) == ["Default.aspx", "bin", "web.config"]


def test_check_mode_checks_and_writes_nothing(capsys, tmp_path, releases):
    src = package(tmp_path, GOOD)
    result = run(capsys, check_mode=True, src=src, dest=str(releases / "1.0.0"), sha256=zc.sha256(GOOD))
    assert result["rc"] == 0 and result["changed"] and result["unpacked_bytes"] == 0
    assert os.listdir(releases) == []
    result = run(capsys, check_mode=True, src=src, dest=str(releases / "1.0.0"), sha256="1" * 64)
    assert result["rc"] == 1
    assert "not " + "1" * 64 + " as checked on the control node" in result["msg"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (zc.site(zc.entry("passwd", b"/etc/passwd", mode=0o120777)), "entry 'passwd' is a symbolic link"),
        (zc.site(zc.entry("web.config", b"other")), "entry 'web.config' duplicates entry 'web.config'"),
        (zc.many_entries(30), "has 30 entries; the limit is 20"),
    ],
)
def test_hostile_package_fails_and_leaves_nothing(capsys, tmp_path, releases, data, message):
    src = package(tmp_path, data)
    result = run(capsys, src=src, dest=str(releases / "1.0.0"), sha256=zc.sha256(data), max_entries=20)
    assert result["rc"] == 1
    assert message in result["msg"]
    assert "\n" not in result["msg"]
    assert os.listdir(releases) == []


def test_existing_release_is_not_overwritten(capsys, tmp_path, releases):
    (releases / "1.0.0").mkdir()
    result = run(capsys, src=package(tmp_path, GOOD), dest=str(releases / "1.0.0"), sha256=zc.sha256(GOOD))
    assert result["rc"] == 1
    assert "exists; a package is only unpacked into a new folder" in result["msg"]
