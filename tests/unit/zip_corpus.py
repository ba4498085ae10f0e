"""Hostile Monoscape packages, built byte by byte (zipfile cannot write most of
them): the corpus the unit tests run against the package rules and the
extractor, and that the lb_deploy scenario sends through deploy_app.yml.

raw_zip() writes exactly what it is told: names with any character, any
compression method number, flags, Unix file types, declared sizes and CRCs that
lie, any number of entries (zip64 end records past 65,535)."""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import zlib

MiB = 1024 * 1024
SITE = [("web.config", b"<configuration/>\n"), ("Default.aspx", b'<%@ Page Language="C#" %>hello\n')]


@dataclasses.dataclass
class Entry:
    name: str | bytes
    data: bytes = b""
    method: int = 0  # 0 stored, 8 deflate; anything else is written as given (data stored as is)
    flags: int = 0
    mode: int = 0o100644  # Unix mode, file type included
    compressed: bytes | None = None  # the compressed stream as written (default: from data and method)
    size: int | None = None  # declared uncompressed size (default: len(data))
    crc: int | None = None  # declared CRC-32 (default: of data)


def entry(name, data=b"", **kwargs) -> Entry:
    if isinstance(data, str):
        data = data.encode()
    if name.endswith("/") and "mode" not in kwargs:
        kwargs["mode"] = 0o40755
    return Entry(name, data, **kwargs)


def deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def zeros(total: int) -> tuple[bytes, int]:
    """A raw deflate stream of `total` zero bytes, built 1 MiB at a time, and its CRC-32."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(MiB)
    out, crc, left = [], 0, total
    while left:
        chunk = block[: min(left, MiB)]
        out.append(packer.compress(chunk))
        crc = zlib.crc32(chunk, crc)
        left -= len(chunk)
    out.append(packer.flush())
    return b"".join(out), crc


def raw_zip(entries: list[Entry]) -> bytes:
    local, central = bytearray(), bytearray()
    for e in entries:
        name = e.name if isinstance(e.name, bytes) else e.name.encode("utf-8")
        flags = e.flags | (0x800 if not name.isascii() else 0)
        if e.compressed is not None:
            payload = e.compressed
        elif e.method == 8:
            payload = deflate(e.data)
        else:
            payload = e.data
        crc = zlib.crc32(e.data) if e.crc is None else e.crc
        size = len(e.data) if e.size is None else e.size
        common = struct.pack("<HHHHHIII", 20, flags, e.method, 0, 0x21, crc, len(payload), size)
        offset = len(local)
        local += struct.pack("<I", 0x04034B50) + common + struct.pack("<HH", len(name), 0) + name + payload
        central += (
            struct.pack("<IH", 0x02014B50, (3 << 8) | 20)
            + common
            + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, (e.mode << 16) & 0xFFFFFFFF, offset)
            + name
        )
    count, cd_offset = len(entries), len(local)
    tail = bytearray()
    if count > 0xFFFF:
        zip64_at = cd_offset + len(central)
        tail += struct.pack(
            "<IQHHIIQQQQ", 0x06064B50, 44, (3 << 8) | 45, 45, 0, 0, count, count, len(central), cd_offset
        )
        tail += struct.pack("<IIQI", 0x07064B50, 0, zip64_at, 1)
        count = 0xFFFF
    tail += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), cd_offset, 0)
    return bytes(local + central + tail)


def many_entries(count: int) -> bytes:
    """web.config and count-1 empty stored files f0, f1, ... (fast: one struct per record)."""
    return raw_zip([entry("web.config", SITE[0][1])] + [Entry(f"f{i}") for i in range(count - 1)])


def site(*extra: Entry) -> bytes:
    return raw_zip([entry(n, d) for n, d in SITE] + list(extra))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def corpus() -> list[tuple[str, bytes, dict, str]]:
    """(case, package bytes, extra inspect() arguments, the message it must give)."""
    bomb, bomb_crc = zeros(200 * MiB)
    ratio, ratio_crc = zeros(20 * MiB)
    lie, lie_crc = zeros(300 * MiB)
    return [
        (
            "zero bomb, 200 MB of zeros",
            raw_zip(
                [
                    entry("web.config", SITE[0][1]),
                    Entry("zeros.bin", method=8, compressed=bomb, size=200 * MiB, crc=bomb_crc),
                ]
            ),
            {},
            "unpacks to 209715217 bytes; the limit is 134217728 bytes",
        ),
        (
            "compression ratio 1000:1 within the size limit",
            raw_zip(
                [
                    entry("web.config", SITE[0][1]),
                    Entry("zeros.bin", method=8, compressed=ratio, size=20 * MiB, crc=ratio_crc),
                ]
            ),
            {},
            "the compression ratio limit is 100:1",
        ),
        (
            "declared sizes lie (1 KiB declared, 300 MB inside)",
            raw_zip(
                [entry("web.config", SITE[0][1]), Entry("zeros.bin", method=8, compressed=lie, size=1024, crc=lie_crc)]
            ),
            {},
            "is corrupt",
        ),
        ("100,001 entries", many_entries(100_001), {}, "has 100001 entries; the limit is 10000"),
        (
            "two different web.config",
            site(entry("web.config", b"<configuration><system.web/></configuration>")),
            {},
            "entry 'web.config' duplicates entry 'web.config'",
        ),
        (
            "web.config twice, other case",
            site(entry("WEB.CONFIG", b"x")),
            {},
            "entry 'WEB.CONFIG' duplicates entry 'web.config'",
        ),
        (
            "same name in NFC and NFD",
            site(entry("caf\u00e9.aspx", b"1"), entry("cafe\u0301.aspx", b"2")),
            {},
            "duplicates entry 'café.aspx'",
        ),
        (
            "file and folder of the same name",
            site(entry("bin", b"x"), entry("bin/App.dll", b"MZ")),
            {},
            "is below 'bin', which is a file",
        ),
        ("encrypted entry", site(entry("secret.aspx", b"x", flags=0x1)), {}, "entry 'secret.aspx' is encrypted"),
        ("WinZip AES entry", site(entry("aes.aspx", b"x", flags=0x1, method=99)), {}, "entry 'aes.aspx' is encrypted"),
        (
            "bzip2 entry",
            site(entry("a.dll", b"BZh9", method=12)),
            {},
            "uses compression method 12 (bzip2); only stored (0) and deflate (8)",
        ),
        ("lzma entry", site(entry("a.dll", b"x", method=14)), {}, "uses compression method 14 (lzma)"),
        ("deflate64 entry", site(entry("a.dll", b"x", method=9)), {}, "uses compression method 9 (deflate64)"),
        (
            "symbolic link",
            site(entry("passwd", b"/etc/passwd", mode=0o120777)),
            {},
            "entry 'passwd' is a symbolic link",
        ),
        ("character device", site(entry("null", mode=0o20666)), {}, "entry 'null' is a character device"),
        ("block device", site(entry("sda", mode=0o60660)), {}, "entry 'sda' is a block device"),
        ("named pipe", site(entry("fifo", mode=0o10644)), {}, "entry 'fifo' is a named pipe"),
        (
            "control character",
            site(entry("a\x07.aspx", b"x")),
            {},
            r"entry 'a\x07.aspx' contains the control character '\x07'",
        ),
        (
            "newline in a name",
            site(entry("evil\n.aspx", b"x")),
            {},
            r"entry 'evil\n.aspx' contains the control character '\n'",
        ),
        ("carriage return", site(entry("x\r.aspx", b"x")), {}, r"contains the control character '\r'"),
        ("DEL", site(entry("x\x7f.aspx", b"x")), {}, r"contains the control character '\x7f'"),
        (
            "NUL byte (zipfile cuts the name there)",
            site(entry("Default.aspx\x00.txt", b"x")),
            {},
            r"contains the control character '\x00'",
        ),
        (
            "right-to-left override",
            site(entry("gpj.\u202eexe.aspx", b"x")),
            {},
            "contains the invisible format character U+202E (RIGHT-TO-LEFT OVERRIDE)",
        ),
        ("bidi isolate", site(entry("a\u2066b.aspx", b"x")), {}, "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
        ("zero-width space", site(entry("Default\u200b.aspx", b"x")), {}, "U+200B (ZERO WIDTH SPACE)"),
        ("leading '-'", site(entry("-rf", b"x")), {}, "entry '-rf' has a component starting with '-'"),
        (
            "leading '-' in a folder",
            site(entry("bin/--help", b"x")),
            {},
            "entry 'bin/--help' has a component starting with '-'",
        ),
        ("absolute path", site(entry("/etc/cron.d/evil", b"x")), {}, "entry '/etc/cron.d/evil' is an absolute path"),
        ("zip slip", site(entry("../../etc/cron.d/evil", b"x")), {}, "contains a '..' component"),
        ("backslash", site(entry("a\\..\\evil", b"x")), {}, "contains a backslash"),
        ("drive letter", site(entry("C:/evil", b"x")), {}, "starts with a drive letter"),
        ("'.' component", site(entry("./x.aspx", b"x")), {}, "has an empty or '.' component"),
        ("no web.config", raw_zip([entry("Default.aspx", b"x")]), {}, "has no web.config at its root"),
        (
            "web.config in a subfolder only",
            raw_zip([entry("site/"), entry("site/web.config", b"x")]),
            {},
            "has no web.config at its root",
        ),
        ("not a zip", b"this is not a zip\n" * 10, {}, "is not a zip file"),
        ("too many entries for a lowered limit", site(), {"max_entries": 1}, "has 2 entries; the limit is 1"),
        (
            "health page not in the package",
            site(),
            {"health_path": "health.aspx"},
            "health page 'health.aspx' is not in package",
        ),
    ]


# names and versions: (case, kind, value, message)
NAMES = [
    ("version with a trailing newline", "version", "1.0\n", r"version '1.0\n' has '\n' at position 4"),
    ("version with a leading '-'", "version", "-1.0", "version '-1.0' must start with a letter or digit"),
    ("version with '..'", "version", "1..0", "version '1..0' must not contain '..'"),
    ("tenant with upper case", "tenant", "Demo", "tenant name 'Demo' has 'D' at position 1"),
    ("app with a trailing newline", "app", "hello\n", r"app name 'hello\n' has '\n' at position 6"),
    ("app with a leading '-'", "app", "-hello", "app name '-hello' must start with a letter or digit"),
    ("health path absolute", "health_path", "/health.aspx", "health path '/health.aspx' must be relative"),
    ("health path with a newline", "health_path", "ok\n", r"health path 'ok\n' must be relative"),
]
