# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""SSH host keys of servers: read from a console log, pinned in a known_hosts file.

Pure functions (no cloud, no Ansible), shared by the ``os_known_hosts`` module
and anything else that needs the pins (the inventory plugin may read them).

Console logs
    cloud-init prints, at a server's first boot, a block of host key
    fingerprints and a block of the public host keys themselves::

        -----BEGIN SSH HOST KEY FINGERPRINTS-----
        256 SHA256:kJd0W8Y5... root@node-1 (ECDSA)
        -----END SSH HOST KEY FINGERPRINTS-----
        -----BEGIN SSH HOST KEY KEYS-----
        ecdsa-sha2-nistp256 AAAAE2VjZHNh... root@node-1
        -----END SSH HOST KEY KEYS-----

    Lines may carry a prefix (``<14>Dec  6 02:12:05 ec2: ``, ``ec2: ``, a
    journal's ``Dec 06 02:12:05 node-1 unit[42]: ``), end in ``\\r``, or hold
    colour escapes; other output (kernel messages) may be interleaved; a log may
    hold several boots. :func:`parse_console` takes the last complete KEYS block
    and checks each key against the FINGERPRINTS block printed before it.

known_hosts
    A pin is one line per key type::

        node-1 ssh-ed25519 AAAAC3... monoscape-server-id=<server id>

    The host field is the server's name (ssh uses it with
    ``-o HostKeyAlias=<name>``); the comment records which server the keys were
    read from, so a server re-created under the same name is noticed.
    :func:`update_known_hosts` replaces or removes the pins of some names and
    keeps every other line of the file as it was.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
import struct

from ansible_collections.monoscape.paas.plugins.module_utils.locking import write_private

HEADER = (
    "# managed by monoscape.paas.os_known_hosts: SSH host keys read from each server's console log"
    " through the OpenStack API; lines of other hosts are kept as they are"
)
SERVER_ID_MARK = "monoscape-server-id="

FINGERPRINTS_BEGIN = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
FINGERPRINTS_END = "-----END SSH HOST KEY FINGERPRINTS-----"
KEYS_BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
KEYS_END = "-----END SSH HOST KEY KEYS-----"

# colour escapes: with ESC, or without it (Nova strips control characters from console output)
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\[[0-9;]*m")
_KEY_TYPE = r"(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-[a-z0-9-]+@openssh\.com)"
# a public key anywhere in a line (after any prefix): type, base64 blob, optional comment
_KEY_RE = re.compile(rf"(?:^|\s)({_KEY_TYPE})\s+(AAAA[A-Za-z0-9+/]+={{0,3}})(?:\s+(.*?))?\s*$")
# "256 SHA256:abc... root@node-1 (ED25519)" (or an MD5 fingerprint of old ssh-keygen versions)
_FINGERPRINT_RE = re.compile(
    r"(?:^|\s)\d+\s+(SHA256:[A-Za-z0-9+/]+=*|MD5:[0-9a-f]{2}(?::[0-9a-f]{2}){15}|[0-9a-f]{2}(?::[0-9a-f]{2}){15})"
    r"\s+.*\(([A-Za-z0-9-]+)\)\s*$"
)
# characters that cannot be in a plain known_hosts host name (separators, patterns, markers)
_BAD_HOST_CHARS = re.compile(r"[\s,*?!|#@\[\]]")


class HostKeyError(ValueError):
    """A console log or known_hosts line that cannot be trusted or used."""


def key_blob(key_type, key_b64):
    """The decoded key blob of ``key_b64``; HostKeyError when it is not base64 or
    is not a key of ``key_type`` (the blob starts with its own type name)."""
    try:
        blob = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        raise HostKeyError(f"{key_type} key {key_b64[:20]}... is not valid base64") from None
    try:
        (length,) = struct.unpack(">I", blob[:4])
        inner = blob[4 : 4 + length].decode("ascii")
    except (struct.error, UnicodeDecodeError):
        inner = None
    if inner != key_type:
        raise HostKeyError(f"{key_type} key {key_b64[:20]}... is not a {key_type} key (truncated or garbled)")
    return blob


def sha256_fingerprint(key_b64):
    """'SHA256:<base64 without padding>' of a base64 public key, as ``ssh-keygen -l`` prints it."""
    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def md5_fingerprint(key_b64):
    """'MD5:aa:bb:...' of a base64 public key (``ssh-keygen -l -E md5``)."""
    digest = hashlib.md5(base64.b64decode(key_b64), usedforsecurity=False).hexdigest()
    return "MD5:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


@dataclasses.dataclass(frozen=True)
class HostKey:
    """One public host key: type (``ssh-ed25519``), base64 blob, comment."""

    key_type: str
    key: str
    comment: str = ""

    @property
    def fingerprint(self):
        return sha256_fingerprint(self.key)

    def line(self, host, server_id):
        """The known_hosts line that pins this key for ``host``."""
        return f"{host} {self.key_type} {self.key} {SERVER_ID_MARK}{server_id}"


def clean_line(line):
    """A console line without its trailing ``\\r`` and colour escapes."""
    return _ANSI_RE.sub("", line.replace("\r", ""))


def parse_public_key(line):
    """The HostKey in a console or file line (prefixes ignored), or None if the
    line holds none. HostKeyError when it looks like a key but is not one."""
    match = _KEY_RE.search(clean_line(line))
    if not match:
        return None
    key_type, key, comment = match.groups()
    key_blob(key_type, key)
    return HostKey(key_type, key, (comment or "").strip())


def _blocks(lines, begin, end):
    """(first line index, last line index, inner lines) of every complete block."""
    found, start = [], None
    for index, line in enumerate(lines):
        if begin in line:
            start = index  # a BEGIN without END (a boot cut short) is dropped by the next BEGIN
        elif end in line and start is not None:
            found.append((start, index, lines[start + 1 : index]))
            start = None
    return found


def _fingerprints(lines):
    prints = set()
    for line in lines:
        match = _FINGERPRINT_RE.search(line)
        if match:
            value = match.group(1)
            prints.add(value if value.startswith(("SHA256:", "MD5:")) else "MD5:" + value)
    return prints


def parse_console(text):
    """The host keys of the last complete KEYS block of a console log, sorted by
    type; None when the log has no complete KEYS block (yet).

    Every key is checked against the FINGERPRINTS block printed between the
    previous KEYS block and this one (when there is one): a key whose
    fingerprint is not there, or two different keys of one type, raise
    HostKeyError (the log is inconsistent: garbled or tampered with)."""
    lines = [clean_line(line) for line in (text or "").splitlines()]
    key_blocks = _blocks(lines, KEYS_BEGIN, KEYS_END)
    if not key_blocks:
        return None
    start, _, inner = key_blocks[-1]
    previous_end = key_blocks[-2][1] if len(key_blocks) > 1 else -1
    keys = {}
    for line in inner:
        key = parse_public_key(line)  # other output interleaved in the block is skipped
        if key is None:
            continue
        if key.key_type in keys and keys[key.key_type].key != key.key:
            raise HostKeyError(f"the console log lists two different {key.key_type} host keys in one block")
        keys[key.key_type] = key
    printed = [b for b in _blocks(lines, FINGERPRINTS_BEGIN, FINGERPRINTS_END) if previous_end < b[0] < start]
    if printed:
        prints = _fingerprints(printed[-1][2])
        for key in keys.values():
            if key.fingerprint not in prints and md5_fingerprint(key.key) not in prints:
                raise HostKeyError(
                    f"the console log is inconsistent: {key.key_type} key {key.fingerprint} is not among the"
                    f" fingerprints printed before it ({', '.join(sorted(prints)) or 'none'})"
                )
    return [keys[t] for t in sorted(keys)]


# ---------------------------------------------------------------------- known_hosts


@dataclasses.dataclass
class Pin:
    """The keys pinned for one host name in a known_hosts file."""

    name: str
    server_id: str | None  # None: lines without (or with differing) monoscape-server-id marks
    keys: dict  # key type -> base64

    @property
    def fingerprints(self):
        return [sha256_fingerprint(self.keys[t]) for t in sorted(self.keys)]


def check_host_name(name):
    """None if ``name`` can be a known_hosts host name, else what is wrong with it."""
    if not name:
        return "an empty name cannot be pinned"
    if _BAD_HOST_CHARS.search(name):
        return (
            f"server name {name!r} cannot be a known_hosts host name"
            " (no whitespace, ',', '*', '?', '!', '|', '#', '@', '[' or ']')"
        )
    return None


def _split(line):
    """(host names, key type, key, comment) of a plain known_hosts line, or None
    for comments, blank lines, @marker lines, hashed names and anything unparsable."""
    stripped = line.strip()
    if not stripped or stripped.startswith(("#", "@", "|")):
        return None
    parts = stripped.split(None, 3)
    if len(parts) < 3:
        return None
    return parts[0].split(","), parts[1], parts[2], parts[3] if len(parts) > 3 else ""


def _server_id(comment):
    for word in comment.split():
        if word.startswith(SERVER_ID_MARK):
            return word[len(SERVER_ID_MARK) :]
    return None


def read_pins(text):
    """{host name: Pin} of every plain line of a known_hosts text (each name of a
    comma-separated host field; ports and hashed names are not pins)."""
    pins = {}
    ids = {}
    for line in (text or "").splitlines():
        parts = _split(line)
        if parts is None:
            continue
        names, key_type, key, comment = parts
        for name in names:
            pin = pins.setdefault(name, Pin(name, None, {}))
            pin.keys[key_type] = key
            ids.setdefault(name, set()).add(_server_id(comment))
    for name, found in ids.items():
        pins[name].server_id = found.pop() if len(found) == 1 else None
    return pins


def pin_lines(name, server_id, keys):
    """known_hosts lines pinning ``keys`` (HostKeys, or {type: base64}) for ``name``, sorted by type."""
    if isinstance(keys, dict):
        keys = [HostKey(t, k) for t, k in keys.items()]
    return [k.line(name, server_id) for k in sorted(keys, key=lambda k: k.key_type)]


def update_known_hosts(text, pins=None, remove=()):
    """The known_hosts text with ``pins`` ({name: (server id, keys)}) written and
    the lines of the names in ``remove`` dropped. A name's new lines take the
    place of its first old line (new names go at the end); lines of other hosts,
    comments and blank lines are kept as they were; the header comment is added
    when missing. A host field naming several hosts loses only the names dropped."""
    pins = dict(pins or {})
    dropped = set(remove) | set(pins)
    out, placed = [], set()
    lines = (text or "").splitlines()
    if HEADER not in lines:
        out.append(HEADER)
    for line in lines:
        parts = _split(line)
        if parts is None or not dropped.intersection(parts[0]):
            out.append(line)
            continue
        names, key_type, key, comment = parts
        for name in names:
            if name in pins and name not in placed:
                out.extend(pin_lines(name, *pins[name]))
                placed.add(name)
        kept = [n for n in names if n not in dropped]
        if kept:
            out.append(" ".join([",".join(kept), key_type, key, comment]).rstrip())
    for name in pins:
        if name not in placed:
            out.extend(pin_lines(name, *pins[name]))
    return "\n".join(out) + "\n"


def read_known_hosts(path):
    """The text of a known_hosts file, '' when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def write_known_hosts(path, text):
    """Write ``text`` to ``path`` atomically (0600, flushed, renamed over the file)."""
    write_private(path, text)
