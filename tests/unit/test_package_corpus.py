"""The hostile-package corpus (tests/unit/zip_corpus.py) against the package
rules on the control node (inspect) and on a node (extract, against the sha256
recorded on the control node): every case is refused with a one-line message
naming what is wrong, and the extractor leaves nothing behind."""

from __future__ import annotations

import os
import stat
import zlib

import pytest

from ansible_collections.monoscape.paas.plugins.module_utils import monoscape_package as pkg

from . import zip_corpus as zc

CORPUS = zc.corpus()
IDS = [case[0] for case in CORPUS]
LYING = "declared sizes lie (1 KiB declared, 300 MB inside)"


@pytest.fixture
def write(tmp_path):
    def _write(data: bytes, name: str = "app.zip") -> str:
        path = tmp_path / "pkg" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return str(path)

    return _write


@pytest.fixture
def releases(tmp_path):
    path = tmp_path / "releases"
    path.mkdir()
    return path


def refused(call) -> str:
    with pytest.raises(pkg.PackageError) as exc:
        call()
    message = str(exc.value)
    assert "\n" not in message and "\r" not in message, f"not one line: {message!r}"
    return message


def test_the_corpus_is_large_enough():
    assert len(CORPUS) + len(zc.NAMES) >= 25


@pytest.mark.parametrize("hostile", CORPUS, ids=IDS)
def test_control_node_refuses_with_a_one_line_message(write, hostile):
    case, data, kwargs, message = hostile
    assert message in refused(lambda: pkg.inspect(write(data), **kwargs)), case


@pytest.mark.parametrize("hostile", CORPUS, ids=IDS)
def test_node_refuses_the_same_package_and_leaves_nothing(write, releases, hostile):
    case, data, kwargs, message = hostile
    if "health_path" in kwargs:
        pytest.skip("the health page is named on the control node only; the package itself is sound")
    path = write(data)
    text = refused(lambda: pkg.extract(path, str(releases / "1.0.0"), zc.sha256(data), **kwargs))
    if case == LYING:
        # the rules pass (the declared sizes are small); streaming stops at the declared size, the CRC fails
        assert "could not be unpacked (Bad CRC-32 for file 'zeros.bin'); nothing was unpacked" in text
    else:
        assert message in text, case
    assert os.listdir(releases) == []


@pytest.mark.parametrize(("case", "kind", "value", "message"), zc.NAMES, ids=[n[0] for n in zc.NAMES])
def test_names_versions_and_health_paths_are_full_matches(case, kind, value, message):
    check = {"version": pkg.check_version, "health_path": pkg.check_health_path}.get(
        kind, lambda v: pkg.check_name(kind, v)
    )
    assert message in refused(lambda: check(value)), case


@pytest.mark.parametrize("value", ["", "health.aspx", "status/ping.aspx", "Health.ashx"])
def test_health_paths_accepted(value):
    assert pkg.check_health_path(value) == value


def test_health_page_found_case_insensitively(write):
    path = write(zc.site(zc.entry("Status/Health.ASPX", b"ok")))
    assert pkg.inspect(path, health_path="status/health.aspx")["files"] == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_unpacked": 10}, "the limit is 10 bytes"),
        ({"max_ratio": 0}, "max_ratio must be a positive integer"),
        ({"max_entries": -1}, "max_entries must be a positive integer"),
    ],
)
def test_limits_can_be_lowered_and_must_be_positive(write, kwargs, message):
    assert message in refused(lambda: pkg.inspect(write(zc.site()), **kwargs))


def test_limits_can_be_raised(write):
    data = zc.raw_zip([zc.entry("web.config", b"x"), *[zc.Entry(f"f{i}") for i in range(20)]])
    with pytest.raises(pkg.PackageError):
        pkg.inspect(write(data), max_entries=20)
    assert pkg.inspect(write(data), max_entries=21)["entries"] == 21


# --- the extractor -----------------------------------------------------------------------
GOOD = zc.raw_zip(
    [
        zc.entry("bin/"),
        zc.entry("web.config", b"<configuration/>\n"),
        zc.entry("Default.aspx", b"hello " * 100, method=8),
        zc.entry("bin/HelloApp.dll", b"MZ" + bytes(100), mode=0o100755),
        zc.entry("Content/css/site.css", b"body{}", mode=0o100600),
    ]
)


def test_good_package_is_unpacked_with_fixed_modes(write, releases):
    path = write(GOOD)
    dest = releases / "1.0.0"
    info = pkg.extract(path, str(dest), zc.sha256(GOOD))
    assert info["unpacked_bytes"] == info["uncompressed_size"] == 17 + 600 + 102 + 6
    assert os.listdir(releases) == ["1.0.0"]
    assert (dest / "Default.aspx").read_bytes() == b"hello " * 100
    modes = {str(p.relative_to(dest)): stat.S_IMODE(p.lstat().st_mode) for p in [dest, *dest.rglob("*")]}
    assert modes == {
        ".": 0o755,
        "bin": 0o755,
        "bin/HelloApp.dll": 0o644,
        "web.config": 0o644,
        "Default.aspx": 0o644,
        "Content": 0o755,
        "Content/css": 0o755,
        "Content/css/site.css": 0o644,
    }
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_check_only_writes_nothing(write, releases):
    info = pkg.extract(write(GOOD), str(releases / "1.0.0"), zc.sha256(GOOD), check_only=True)
    assert info["files"] == 4 and info["unpacked_bytes"] == 0
    assert os.listdir(releases) == []


def test_wrong_sha256_is_refused_before_anything_is_unpacked(write, releases):
    other = "0" * 64
    text = refused(lambda: pkg.extract(write(GOOD), str(releases / "1.0.0"), other))
    assert f"has sha256 {zc.sha256(GOOD)}, not {other} as checked on the control node" in text
    assert os.listdir(releases) == []


def test_sha256_is_required(write, releases):
    assert "sha256" in refused(lambda: pkg.extract(write(GOOD), str(releases / "1.0.0"), ""))


def test_existing_destination_is_left_alone(write, releases):
    (releases / "1.0.0").mkdir()
    (releases / "1.0.0" / "keep").write_text("x")
    assert "exists; a package is only unpacked into a new folder" in refused(
        lambda: pkg.extract(write(GOOD), str(releases / "1.0.0"), zc.sha256(GOOD))
    )
    assert os.listdir(releases / "1.0.0") == ["keep"]


def test_package_reached_through_a_link_is_refused_on_the_node(write, releases, tmp_path):
    link = tmp_path / "link.zip"
    link.symlink_to(write(GOOD))
    assert "cannot read package" in refused(lambda: pkg.extract(str(link), str(releases / "1.0.0"), zc.sha256(GOOD)))
    assert os.listdir(releases) == []


def test_lying_size_with_a_forged_crc_writes_only_the_declared_bytes(write, releases):
    """The CRC matches the first KiB: the rules pass, and only that KiB is written
    (the rest of the 300 MB stream is never inflated)."""
    stream, _ = zc.zeros(300 * zc.MiB)
    data = zc.raw_zip(
        [
            zc.entry("web.config", b"x"),
            zc.Entry("zeros.bin", method=8, compressed=stream, size=1024, crc=zlib.crc32(bytes(1024))),
        ]
    )
    dest = releases / "1.0.0"
    info = pkg.extract(write(data), str(dest), zc.sha256(data))
    assert info["unpacked_bytes"] == 1025
    assert (dest / "zeros.bin").stat().st_size == 1024


def test_entry_shorter_than_declared_is_refused_and_nothing_left(write, releases):
    data = zc.raw_zip([zc.entry("web.config", b"x"), zc.entry("a.dll", b"short", size=5000)])
    text = refused(lambda: pkg.extract(write(data), str(releases / "1.0.0"), zc.sha256(data)))
    assert "entry 'a.dll' holds 5 bytes, not the 5000 it declares; nothing was unpacked" in text
    assert os.listdir(releases) == []


def test_real_bytes_are_counted_against_the_limit(write, releases, monkeypatch):
    """Declared sizes within the limit, real bytes beyond it: stopped while streaming."""
    data = zc.raw_zip([zc.entry("web.config", b"x"), zc.entry("a.bin", bytes(200_000), method=8)])
    monkeypatch.setattr(pkg, "_check", _declaring_less(pkg._check))
    text = refused(lambda: pkg.extract(write(data), str(releases / "1.0.0"), zc.sha256(data), max_unpacked=100_000))
    assert "entry 'a.bin' goes beyond the unpacked size limit; stopped; nothing was unpacked" in text
    assert os.listdir(releases) == []


def _declaring_less(check):
    def wrapper(*args, **kwargs):
        limit = kwargs["max_unpacked"]
        kwargs["max_unpacked"] = kwargs["max_ratio"] = 1 << 40  # let the declared-size rules pass
        info, archive = check(*args, **kwargs)
        kwargs["max_unpacked"] = limit
        return info, archive

    return wrapper


def test_no_link_is_followed_inside_the_release(write, releases, monkeypatch):
    """Even a link planted in the staging folder is not followed (O_NOFOLLOW)."""
    outside = releases.parent / "outside"
    outside.mkdir()
    real_mkdtemp = pkg.tempfile.mkdtemp

    def planted(**kwargs):
        path = real_mkdtemp(**kwargs)
        os.symlink(outside, os.path.join(path, "bin"))
        return path

    monkeypatch.setattr(pkg.tempfile, "mkdtemp", planted)
    text = refused(lambda: pkg.extract(write(GOOD), str(releases / "1.0.0"), zc.sha256(GOOD)))
    assert "could not be unpacked" in text
    assert os.listdir(outside) == []
    assert os.listdir(releases) == []
