"""Package rules shared by the package tool and the deploy validation."""

import hashlib
import pathlib
import re
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.monoscape.paas.plugins.module_utils import monoscape_package as pkg


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return str(path)


@pytest.mark.parametrize("name", ["demo", "t1", "hello-world", "my_app", "a" * 63, "0app"])
def test_routable_names_accepted(name):
    assert pkg.check_name("app", name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("My App", "'M' at position 1"),
        ("my app", "' ' at position 3"),
        ("tenant.x", "'.' at position 7"),
        ("café", "'é' at position 4"),
        ("-app", "must start with a letter or digit"),
        ("a" * 64, "the limit is 63"),
    ],
)
def test_unroutable_names_rejected_with_the_offending_character(name, message):
    with pytest.raises(pkg.PackageError, match=re.escape(message)):
        pkg.check_name("tenant", name)


def test_valid_package(tmp_path):
    path = make_zip(tmp_path / "ok.zip", [("bin/", b""), ("web.config", b"<configuration/>"), ("Default.aspx", b"x")])
    info = pkg.inspect(path)
    assert info["web_config"] == "web.config"
    assert info["files"] == 2
    assert info["sha256"] == hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def test_web_config_matched_case_insensitively(tmp_path):
    path = make_zip(tmp_path / "ok.zip", [("Web.Config", b"<configuration/>")])
    assert pkg.inspect(path)["web_config"] == "Web.Config"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("site/web.config", b"x")], "no web.config at its root"),
        ([("web.config", b"x"), ("../evil", b"x")], "'..' component"),
        ([("web.config", b"x"), ("a/../../evil", b"x")], "'..' component"),
        ([("web.config", b"x"), ("/etc/passwd", b"x")], "absolute path"),
        ([("web.config", b"x"), ("C:/evil", b"x")], "drive letter"),
        ([("web.config", b"x"), ("a\\..\\evil", b"x")], "backslash"),
    ],
)
def test_invalid_packages_rejected(tmp_path, entries, message):
    path = make_zip(tmp_path / "bad.zip", entries)
    with pytest.raises(pkg.PackageError, match=message):
        pkg.inspect(path)


def test_symlink_entry_rejected(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("web.config", b"x")
        info = zipfile.ZipInfo("evil")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/shadow")
    with pytest.raises(pkg.PackageError, match="symbolic link"):
        pkg.inspect(str(path))


def test_not_a_zip(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(b"PK but not really a zip" * 10)
    with pytest.raises(pkg.PackageError, match="not a zip file"):
        pkg.inspect(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(pkg.PackageError, match="cannot read package"):
        pkg.inspect(str(tmp_path / "nope.zip"))


def test_size_limit(tmp_path):
    path = make_zip(tmp_path / "big.zip", [("web.config", b"x" * 4096)])
    with pytest.raises(pkg.PackageError, match="the limit is 100 bytes"):
        pkg.inspect(path, max_bytes=100)


def test_corrupt_member(tmp_path):
    path = tmp_path / "crc.zip"
    make_zip(path, [("web.config", b"hello world" * 20)])
    data = bytearray(path.read_bytes())
    offset = data.index(b"hello world")
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(pkg.PackageError, match=r"CRC check failed|not a readable zip"):
        pkg.inspect(str(path))


def test_package_tool_builds_a_compiled_package(tmp_path, root):
    out = tmp_path / "hello.zip"
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "scripts" / "monoscape_package.py"),
            "build",
            str(root / "apps" / "hello"),
            "--version",
            "9.9.9",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert archive.read("VERSION") == b"9.9.9\n"
        dll = archive.read("bin/HelloApp.dll")
    assert "web.config" in names
    assert names.index("bin/") < names.index("web.config"), "directory entries come first"
    assert dll[:2] == b"MZ", "bin/HelloApp.dll is a compiled .NET assembly"
    assert b"9.9.9" in dll.replace(b"\x00", b"")


def test_package_tool_check_reports_errors(tmp_path, root):
    bad = make_zip(tmp_path / "bad.zip", [("index.html", b"x")])
    proc = subprocess.run(
        [sys.executable, str(root / "scripts" / "monoscape_package.py"), "check", bad],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "no web.config at its root" in proc.stderr
