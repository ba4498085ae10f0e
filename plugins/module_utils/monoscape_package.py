# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Monoscape application packages: a zip of a compiled ASP.NET site with
``web.config`` at its root (checked case-insensitively, as the original
Monoscape did).

One rule set, used by the package tool (scripts/monoscape_package.py), by the
module that checks a package on the control node before any host is touched
(monoscape_package) and by the module that unpacks it on a node
(monoscape_unpack), which applies the same rules again to the copy it received,
against the sha256 recorded on the control node, before anything is written.

Every refusal is a PackageError whose message is one line and names what to fix
(entry names are shown with repr(), so control characters are visible).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib

# The bundle's one tenant and app name rule and its one release version rule: every
# other place (modules, the Jinja tests and filters the roles and templates use)
# takes them from here. Each *_PATTERN is the whole rule as one regular expression
# (Python and PCRE syntax, no anchors: use it with fullmatch or anchor it).
#
# Tenant and app names: routed as /<tenant>/<app>/ (HAProxy backend app.<tenant>.<app>);
# a tenant and an app together: APP_IDENTITY_MAX_LEN below (check_app_identity).
NAME_MAX_LEN = 63
NAME_CHAR_CLASS = "a-z0-9_-"
NAME_CHARS = "lower-case letters, digits, '-' or '_'"
NAME_PATTERN = rf"[a-z0-9][{NAME_CHAR_CLASS}]{{0,{NAME_MAX_LEN - 1}}}"
NAME_RE = re.compile(NAME_PATTERN)
NAME_CHAR_RE = re.compile(rf"[{NAME_CHAR_CLASS}]")
# Release versions: name a release folder (releases/<version>), so never '..'.
VERSION_MAX_LEN = 64
VERSION_CHAR_CLASS = "A-Za-z0-9._+-"
VERSION_CHARS = "letters, digits, '.', '_', '+', '-'"
_VERSION_SHAPE = rf"[A-Za-z0-9][{VERSION_CHAR_CLASS}]{{0,{VERSION_MAX_LEN - 1}}}"
VERSION_PATTERN = rf"(?!.*\.\.){_VERSION_SHAPE}"
VERSION_RE = re.compile(VERSION_PATTERN)
_VERSION_SHAPE_RE = re.compile(_VERSION_SHAPE)  # the rule but '..' (for the message)
VERSION_CHAR_RE = re.compile(rf"[{VERSION_CHAR_CLASS}]")
# App instance names on a node (<tenant>.<app>.<n>: systemd unit monoscape-app@<name>,
# the port registry's keys): not a tenant or app name, they may hold '.'.
INSTANCE_NAME_MAX_LEN = 63
INSTANCE_NAME_PATTERN = rf"[a-z0-9][a-z0-9_.-]{{0,{INSTANCE_NAME_MAX_LEN - 1}}}"
INSTANCE_NAME_RE = re.compile(INSTANCE_NAME_PATTERN)
HEALTH_PATH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,254}")
# <n> counts from 1 to the app's instances per node, at most this many (mono_app's check,
# roles/mono_app/tasks/validate.yml, refuses more).
INSTANCES_PER_NODE_MAX = 50
# HAProxy's names of backends and servers (haproxy_runtime.HAPROXY_NAME_RE takes it from here).
HAPROXY_NAME_MAX_LEN = 63


def instance_name(tenant: str, app: str, index: int | str) -> str:
    """The name of an app's instance on a node (mono_app's mono_app__instance_names)."""
    return f"{tenant}.{app}.{index}"


def backend_name(tenant: str, app: str) -> str:
    """The name of an app's HAProxy backend (the load_balancer role's app.<tenant>.<app>)."""
    return f"app.{tenant}.{app}"


# A tenant and an app together (their lengths' sum): as long as their longest derived
# names allow - the instance of the highest index, and the HAProxy backend.
APP_IDENTITY_MAX_LEN = min(
    INSTANCE_NAME_MAX_LEN - len(instance_name("", "", INSTANCES_PER_NODE_MAX)),
    HAPROXY_NAME_MAX_LEN - len(backend_name("", "")),
)

DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # the package file
DEFAULT_MAX_UNPACKED = 128 * 1024 * 1024  # its files once unpacked (real bytes)
DEFAULT_MAX_RATIO = 100  # unpacked bytes per byte of package, overall
DEFAULT_MAX_ENTRIES = 10_000

# The limits as module options (documented by the monoscape.paas.package_limits doc fragment).
LIMITS_ARGUMENT_SPEC = {
    "max_bytes": {"type": "int", "default": DEFAULT_MAX_BYTES},
    "max_entries": {"type": "int", "default": DEFAULT_MAX_ENTRIES},
    "max_ratio": {"type": "int", "default": DEFAULT_MAX_RATIO},
    "max_unpacked": {"type": "int", "default": DEFAULT_MAX_UNPACKED},
}


def limits(params: dict) -> dict:
    """The limits of a module's parameters, as keyword arguments of inspect() and extract()."""
    return {name: params[name] for name in LIMITS_ARGUMENT_SPEC}


FILE_MODE = 0o644
DIR_MODE = 0o755
CHUNK = 64 * 1024

SUPPORTED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
METHOD_NAMES = {
    1: "shrink",
    6: "implode",
    9: "deflate64",
    12: "bzip2",
    14: "lzma",
    93: "zstd",
    95: "xz",
    98: "ppmd",
    99: "WinZip AES",
}
FILE_TYPES = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
}


class PackageError(ValueError):
    """A package or name that Monoscape cannot deploy; the message says why."""


# --- names ---------------------------------------------------------------------------------
def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a tenant or app name (NAME_PATTERN: it can be routed as
    /<tenant>/<app>/), else raise PackageError naming the first offending character."""
    if not isinstance(value, str) or value == "":
        raise PackageError(f"{kind} name must not be empty (use {NAME_CHARS})")
    if len(value) > NAME_MAX_LEN:
        raise PackageError(f"{kind} name {value!r} is {len(value)} characters long; the limit is {NAME_MAX_LEN}")
    for pos, char in enumerate(value):
        if not NAME_CHAR_RE.fullmatch(char):
            raise PackageError(
                f"{kind} name {value!r} has {char!r} at position {pos + 1}; a routable name uses only {NAME_CHARS}"
            )
    if not NAME_RE.fullmatch(value):
        raise PackageError(f"{kind} name {value!r} must start with a letter or digit")
    return value


def check_app_identity(tenant: str, app: str) -> tuple[str, str]:
    """Return ``(tenant, app)`` if each is a tenant or app name (check_name) and the names
    derived from both - ``<tenant>.<app>.<n>`` (instances) and ``app.<tenant>.<app>``
    (HAProxy backend) - are within their limits, else raise PackageError saying which."""
    check_name("tenant", tenant)
    check_name("app", app)
    total = len(tenant) + len(app)
    if total > APP_IDENTITY_MAX_LEN:
        raise PackageError(
            f"tenant {tenant!r} and app {app!r} are together {total} characters; their derived names "
            f"({instance_name('<tenant>', '<app>', '<n>')}, {backend_name('<tenant>', '<app>')}) allow at most "
            f"{APP_IDENTITY_MAX_LEN}: shorten one or both by {total - APP_IDENTITY_MAX_LEN}"
        )
    return tenant, app


def check_version(version: str) -> str:
    """Return ``version`` if it can name a release folder (VERSION_PATTERN), else raise
    PackageError saying why."""
    if isinstance(version, str) and VERSION_RE.fullmatch(version):
        return version
    if isinstance(version, str) and _VERSION_SHAPE_RE.fullmatch(version):
        raise PackageError(f"version {version!r} must not contain '..'")
    text = version if isinstance(version, str) else str(version)
    bad = next(((pos, c) for pos, c in enumerate(text) if not VERSION_CHAR_RE.fullmatch(c)), None)
    if bad:
        why = f"has {bad[1]!r} at position {bad[0] + 1}"
    elif not text:
        why = "is empty"
    elif len(text) > VERSION_MAX_LEN:
        why = f"is {len(text)} characters long (at most {VERSION_MAX_LEN})"
    else:
        why = "must start with a letter or digit"
    raise PackageError(f"version {text!r} {why}; a release version uses {VERSION_CHARS}")


def check_instance_name(value: str) -> str:
    """Return ``value`` if it is an app instance name (INSTANCE_NAME_PATTERN), else raise PackageError."""
    if not isinstance(value, str) or not INSTANCE_NAME_RE.fullmatch(value):
        raise PackageError(
            f"instance name {value!r} must match {INSTANCE_NAME_PATTERN} "
            f"(1-{INSTANCE_NAME_MAX_LEN} lower-case letters, digits, '_', '.', '-', starting with a letter or digit)"
        )
    return value


def check_health_path(path: str) -> str:
    """Return the health-check path below /<tenant>/<app>/ ('' = the app's root URL)."""
    if path == "":
        return path
    if not isinstance(path, str) or not HEALTH_PATH_RE.fullmatch(path) or ".." in path.split("/"):
        raise PackageError(
            f"health path {path!r} must be relative to the app (letters, digits, '_', '.', '/', '-'; "
            f"no leading '/', '-' or '.', no '..'), or empty for the app's root URL"
        )
    return path


# --- entries -------------------------------------------------------------------------------
def _odd_character(name: str) -> str | None:
    for char in name:
        category = unicodedata.category(char)
        if category == "Cc":
            return f"contains the control character {char!r}"
        if category == "Cf":  # bidi overrides and isolates (U+202A-U+202E, U+2066-U+2069), zero-width ...
            return f"contains the invisible format character U+{ord(char):04X} ({unicodedata.name(char, '?')})"
    return None


_NAME_RULES = (  # (rule on the name and its components, why it is refused), in this order
    (lambda name, parts: "\\" in name, "contains a backslash"),
    (lambda name, parts: name.startswith("/"), "is an absolute path"),
    (lambda name, parts: re.match(r"[A-Za-z]:", name) is not None, "starts with a drive letter"),
    (lambda name, parts: ".." in parts, "contains a '..' component"),
    (lambda name, parts: "" in parts or "." in parts, "has an empty or '.' component"),
    (lambda name, parts: any(p.startswith("-") for p in parts), "has a component starting with '-'"),
    (lambda name, parts: any(len(p.encode("utf-8")) > 255 for p in parts), "has a component longer than 255 bytes"),
)


def _unsafe_name(name: str) -> str | None:
    """Why a zip entry name is refused, or None."""
    parts = name.rstrip("/").split("/")
    return _odd_character(name) or next((why for rule, why in _NAME_RULES if rule(name, parts)), None)


def _unsafe_type(member: zipfile.ZipInfo) -> str | None:
    """Why the entry's file type (Unix mode in the external attributes) is refused, or None."""
    kind = stat.S_IFMT(member.external_attr >> 16)
    if kind in FILE_TYPES:
        return f"is {FILE_TYPES[kind]}"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"has an unknown file type {kind:#o}"
    if kind == stat.S_IFDIR and not member.is_dir():
        return "is a folder without a trailing '/'"
    if member.is_dir() and member.file_size:
        return "is a folder entry with content"
    return None


def _unsupported(member: zipfile.ZipInfo) -> str | None:
    """Why the entry cannot be read (encryption, compression), or None."""
    if member.flag_bits & 0x41:  # traditional (bit 0) or strong (bit 6) encryption
        return "is encrypted"
    if member.flag_bits & 0x20:
        return "is compressed patched data (unsupported)"
    if member.compress_type not in SUPPORTED_METHODS:
        method = METHOD_NAMES.get(member.compress_type, "unknown")
        return (
            f"uses compression method {member.compress_type} ({method}); only stored (0) and deflate (8) are supported"
        )
    return None


def _unsafe_entry(member: zipfile.ZipInfo) -> str | None:
    # the name as stored: zipfile cuts .filename at a NUL byte
    return _unsafe_name(member.orig_filename) or _unsafe_type(member) or _unsupported(member)


def _key(name: str) -> str:
    """What two entry names that would land on the same file have in common."""
    return unicodedata.normalize("NFC", name.rstrip("/")).casefold()


def _check_entries(where: str, members: list[zipfile.ZipInfo]) -> None:
    files: dict[str, str] = {}
    dirs: dict[str, str] = {}
    for member in members:
        reason = _unsafe_entry(member)
        if reason:
            raise PackageError(f"{where}: entry {member.orig_filename!r} {reason}; refusing to unpack it")
        key = _key(member.filename)
        if key in files:
            raise PackageError(
                f"{where}: entry {member.filename!r} duplicates entry {files[key]!r} "
                f"(names compared case-insensitively)"
            )
        if key in dirs and not member.is_dir():
            raise PackageError(f"{where}: entry {member.filename!r} is a file where {dirs[key]!r} needs a folder")
        (dirs if member.is_dir() else files)[key] = member.filename
        parts = key.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in files:
                raise PackageError(f"{where}: entry {member.filename!r} is below {files[parent]!r}, which is a file")
            dirs.setdefault(parent, member.filename)


# --- the package ---------------------------------------------------------------------------
def _limits(max_bytes: int, max_unpacked: int, max_ratio: int, max_entries: int) -> None:
    for label, value in (
        ("max_bytes", max_bytes),
        ("max_unpacked", max_unpacked),
        ("max_ratio", max_ratio),
        ("max_entries", max_entries),
    ):
        if not isinstance(value, int) or value < 1:
            raise PackageError(f"{label} must be a positive integer, not {value!r}")


def _open(path: str, follow: bool = True):
    try:
        fd = os.open(path, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW))
    except OSError as exc:
        raise PackageError(f"cannot read package {path}: {exc.strerror}") from exc
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise PackageError(f"package {path} is not a regular file")
    return handle


def _digest(handle) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    handle.seek(0)
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
        size += len(chunk)
    handle.seek(0)
    return digest.hexdigest(), size


def _check(
    handle,
    path: str,
    *,
    sha256: str | None,
    max_bytes: int,
    max_unpacked: int,
    max_ratio: int,
    max_entries: int,
    health_path: str | None,
    crc: bool,
) -> tuple[dict, zipfile.ZipFile]:
    """The rules, on an open package: returns its description and the open zip."""
    _limits(max_bytes, max_unpacked, max_ratio, max_entries)
    digest, size = _digest(handle)
    if sha256 is not None and digest != sha256.strip().lower():
        raise PackageError(
            f"package {path} has sha256 {digest}, not {sha256} as checked on the control node; refusing to unpack it"
        )
    if size > max_bytes:
        raise PackageError(f"package {path} is {size} bytes; the limit is {max_bytes} bytes")
    if not zipfile.is_zipfile(handle):
        raise PackageError(f"package {path} is not a zip file")
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise PackageError(f"package {path} is not a readable zip file: {exc}") from exc
    try:
        info = _check_members(
            archive,
            path,
            size,
            max_unpacked=max_unpacked,
            max_ratio=max_ratio,
            max_entries=max_entries,
            health_path=health_path,
            crc=crc,
        )
    except BaseException:
        archive.close()
        raise
    return {"sha256": digest, "size": size, **info}, archive


def _check_members(
    archive: zipfile.ZipFile,
    path: str,
    size: int,
    *,
    max_unpacked: int,
    max_ratio: int,
    max_entries: int,
    health_path: str | None,
    crc: bool,
) -> dict:
    members = archive.infolist()
    if len(members) > max_entries:
        raise PackageError(f"package {path} has {len(members)} entries; the limit is {max_entries}")
    _check_entries(f"package {path}", members)
    files = [m for m in members if not m.is_dir()]
    web_config = next((m.filename for m in files if m.filename.lower() == "web.config"), None)
    if web_config is None:
        raise PackageError(
            f"package {path} has no web.config at its root; build the zip from inside the site "
            f"folder so that web.config is a top-level entry"
        )
    unpacked = sum(m.file_size for m in files)
    if unpacked > max_unpacked:
        raise PackageError(f"package {path} unpacks to {unpacked} bytes; the limit is {max_unpacked} bytes")
    if unpacked > max_ratio * size:
        raise PackageError(
            f"package {path} unpacks to {unpacked} bytes from {size} ({unpacked // size}:1); "
            f"the compression ratio limit is {max_ratio}:1"
        )
    if health_path:
        check_health_path(health_path)
        if not any(_key(m.filename) == _key(health_path) for m in files):
            raise PackageError(
                f"health page {health_path!r} is not in package {path} (compared case-insensitively); "
                f"name a page the package has, or leave the health path empty to check the app's root URL"
            )
    if crc:
        try:
            bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise PackageError(f"package {path} is corrupt: {exc}") from exc
        if bad is not None:
            raise PackageError(f"package {path} is corrupt: CRC check failed for {bad!r}")
    return {"entries": len(members), "files": len(files), "uncompressed_size": unpacked, "web_config": web_config}


def inspect(
    path: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    max_unpacked: int = DEFAULT_MAX_UNPACKED,
    max_ratio: int = DEFAULT_MAX_RATIO,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    health_path: str | None = None,
    sha256: str | None = None,
) -> dict:
    """Validate a Monoscape package and describe it (reads it, writes nothing).

    Raises PackageError with a one-line message that says what to fix.
    Returns ``{"sha256", "size", "entries", "files", "uncompressed_size", "web_config"}``.
    """
    with _open(path) as handle:
        info, archive = _check(
            handle,
            path,
            sha256=sha256,
            max_bytes=max_bytes,
            max_unpacked=max_unpacked,
            max_ratio=max_ratio,
            max_entries=max_entries,
            health_path=health_path,
            crc=True,
        )
        archive.close()
    return info


# --- unpacking -----------------------------------------------------------------------------
def _directory(root_fd: int, parts: list[str]) -> int:
    """Open (creating as needed) root/parts... without following any link; a new fd."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                os.mkdir(part, DIR_MODE, dir_fd=fd)
                created = True
            except FileExistsError:
                created = False
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
            if created:
                os.fchmod(fd, DIR_MODE)  # whatever the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write(archive: zipfile.ZipFile, member: zipfile.ZipInfo, dir_fd: int, name: str, budget: int) -> int:
    """Stream one entry into a new file (never through a link); the real bytes written."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE, dir_fd=dir_fd)
    written = 0
    with os.fdopen(fd, "wb") as out, archive.open(member) as source:
        os.fchmod(fd, FILE_MODE)
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > member.file_size:
                raise PackageError(
                    f"entry {member.filename!r} holds more than the {member.file_size} bytes it declares; stopped"
                )
            if written > budget:
                raise PackageError(f"entry {member.filename!r} goes beyond the unpacked size limit; stopped")
            out.write(chunk)
    if written != member.file_size:
        raise PackageError(f"entry {member.filename!r} holds {written} bytes, not the {member.file_size} it declares")
    return written


def extract(
    path: str,
    dest: str,
    sha256: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    max_unpacked: int = DEFAULT_MAX_UNPACKED,
    max_ratio: int = DEFAULT_MAX_RATIO,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    check_only: bool = False,
) -> dict:
    """Check the package at ``path`` (its sha256 must be ``sha256``) with the rules
    of inspect(), then unpack it into the new folder ``dest``.

    Entries are streamed into a fresh folder next to ``dest`` (mode 0700 until it
    is complete), counting the real bytes against the declared sizes and the
    limits; files are created with O_EXCL|O_NOFOLLOW (mode 0644), folders 0755,
    and no link, device or other special file is ever created. The folder is then
    renamed to ``dest``; on any failure it is removed, so nothing is left behind.
    With ``check_only`` nothing is written. Returns inspect()'s description plus
    ``unpacked_bytes`` (0 with ``check_only``).
    """
    if not sha256:
        raise PackageError("the package's sha256 (recorded on the control node) is required to unpack it")
    dest = os.path.abspath(dest)
    parent = os.path.dirname(dest)
    if os.path.lexists(dest):
        raise PackageError(f"{dest} exists; a package is only unpacked into a new folder")
    if not os.path.isdir(parent):
        raise PackageError(f"cannot unpack into {dest}: {parent} is not a folder")
    with _open(path, follow=False) as handle:
        info, archive = _check(
            handle,
            path,
            sha256=sha256,
            max_bytes=max_bytes,
            max_unpacked=max_unpacked,
            max_ratio=max_ratio,
            max_entries=max_entries,
            health_path=None,
            crc=False,  # checked while streaming
        )
        with archive:
            if check_only:
                return {**info, "unpacked_bytes": 0}
            budget = min(max_unpacked, max_ratio * info["size"])
            staging = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.unpacking-", dir=parent)
            try:
                root_fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
                try:
                    total = 0
                    for member in archive.infolist():
                        parts = member.filename.rstrip("/").split("/")
                        if member.is_dir():
                            os.close(_directory(root_fd, parts))
                            continue
                        dir_fd = _directory(root_fd, parts[:-1])
                        try:
                            total += _write(archive, member, dir_fd, parts[-1], budget - total)
                        finally:
                            os.close(dir_fd)
                finally:
                    os.close(root_fd)
                os.chmod(staging, DIR_MODE)
                os.rename(staging, dest)
            except PackageError as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise PackageError(f"package {path}: {exc}; nothing was unpacked") from exc
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error, RuntimeError, NotImplementedError) as exc:
                shutil.rmtree(staging, ignore_errors=True)
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise PackageError(f"package {path} could not be unpacked ({reason}); nothing was unpacked") from exc
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    return {**info, "unpacked_bytes": total}
