# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Monoscape application packages: a zip of a compiled ASP.NET site with
``web.config`` at its root (checked case-insensitively, as the original
Monoscape did).

Used by the package-building tool (scripts/monoscape_package.py) and by the
modules that validate a package before any host is touched, so both apply the
same rules.
"""

from __future__ import annotations

import hashlib
import re
import string
import zipfile

NAME_ALLOWED = frozenset(string.ascii_lowercase + string.digits + "-_")
NAME_CHARS = "lower-case letters, digits, '-' or '_'"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class PackageError(ValueError):
    """A package or name that Monoscape cannot deploy; the message says why."""


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it can be routed as /<tenant>/<app>/, else raise
    PackageError naming the first offending character."""
    if not isinstance(value, str) or value == "":
        raise PackageError(f"{kind} name must not be empty (use {NAME_CHARS})")
    if len(value) > 63:
        raise PackageError(f"{kind} name {value!r} is {len(value)} characters long; the limit is 63")
    for pos, char in enumerate(value):
        if char not in NAME_ALLOWED:
            raise PackageError(
                f"{kind} name {value!r} has {char!r} at position {pos + 1}; a routable name uses only {NAME_CHARS}"
            )
    if not value[0].isalnum():
        raise PackageError(f"{kind} name {value!r} must start with a letter or digit")
    return value


def _unsafe_member(name: str) -> str | None:
    """Why a zip member name would escape the release directory, or None."""
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    if re.match(r"^[A-Za-z]:", name):
        return "starts with a drive letter"
    if any(part == ".." for part in name.split("/")):
        return "contains a '..' component"
    if "\x00" in name:
        return "contains a NUL byte"
    return None


def _digest(path: str) -> tuple[str, int]:
    try:
        with open(path, "rb") as handle:
            digest = hashlib.sha256()
            size = 0
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise PackageError(f"cannot read package {path}: {exc.strerror}") from exc
    return digest.hexdigest(), size


def _members(path: str) -> list[zipfile.ZipInfo]:
    if not zipfile.is_zipfile(path):
        raise PackageError(f"package {path} is not a zip file")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise PackageError(f"package {path} is not a readable zip file: {exc}") from exc
    if bad is not None:
        raise PackageError(f"package {path} is corrupt: CRC check failed for {bad!r}")
    return members


def _check_member(path: str, member: zipfile.ZipInfo) -> None:
    reason = _unsafe_member(member.filename)
    if reason is None and (member.external_attr >> 16) & 0o170000 == 0o120000:
        reason = "is a symbolic link"
    if reason:
        raise PackageError(f"package {path}: entry {member.filename!r} {reason}; refusing to extract it")


def inspect(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """Validate a Monoscape package and describe it.

    Raises PackageError with a message that says what to fix.
    Returns ``{"sha256", "size", "files", "uncompressed_size", "web_config"}``.
    """
    sha256, size = _digest(path)
    if size > max_bytes:
        raise PackageError(f"package {path} is {size} bytes; the limit is {max_bytes} bytes")
    members = _members(path)
    for member in members:
        _check_member(path, member)
    files = [m for m in members if not m.is_dir()]
    web_config = next((m.filename for m in files if m.filename.lower() == "web.config"), None)
    if web_config is None:
        raise PackageError(
            f"package {path} has no web.config at its root; build the zip from inside the site "
            f"folder so that web.config is a top-level entry"
        )
    uncompressed = sum(m.file_size for m in files)
    if uncompressed > 8 * max_bytes:
        raise PackageError(f"package {path} expands to {uncompressed} bytes, more than 8x the size limit")
    return {
        "sha256": sha256,
        "size": size,
        "files": len(files),
        "uncompressed_size": uncompressed,
        "web_config": web_config,
    }
