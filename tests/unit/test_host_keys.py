"""plugins/module_utils/host_keys.py on its own: console logs as cloud-init prints
them (prefixes, \\r, colour escapes, several boots, interleaved output), real keys
made by ssh-keygen whose fingerprints are compared with `ssh-keygen -lf`, and the
known_hosts helpers (pins, updates that keep other lines, atomic 0600 writes)."""

import os
import stat
import subprocess

import pytest

from ansible_collections.monoscape.paas.plugins.module_utils import host_keys
from ansible_collections.monoscape.paas.plugins.module_utils.host_keys import (
    HEADER,
    HostKey,
    HostKeyError,
    parse_console,
    read_pins,
    sha256_fingerprint,
    update_known_hosts,
    write_known_hosts,
)

LABELS = {"ssh-ed25519": "ED25519", "ecdsa-sha2-nistp256": "ECDSA", "ssh-rsa": "RSA"}
SYSLOG = "<14>Dec  6 02:12:05 ec2: "


def keygen(folder, key_type, name):
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "root@node-1", "-f", str(path)], check=True)
    return path


def keygen_fingerprint(pub_path):
    """(bits, 'SHA256:...') as `ssh-keygen -lf` prints them."""
    out = subprocess.run(["ssh-keygen", "-lf", str(pub_path)], capture_output=True, text=True, check=True).stdout
    bits, fingerprint = out.split()[:2]
    return bits, fingerprint


class Server:
    """A server's host keys made by ssh-keygen, and the console blocks cloud-init prints for them."""

    def __init__(self, folder, tag):
        folder.mkdir()
        self.pubs = {}
        for key_type in ("ecdsa", "ed25519", "rsa"):
            self.pubs[key_type] = keygen(folder, key_type, f"{tag}_{key_type}").with_suffix(".pub")
        self.keys = {}
        for path in self.pubs.values():
            key_type, key, _ = path.read_text().split(" ", 2)
            self.keys[key_type] = key

    def key_lines(self):
        return [p.read_text().strip() for p in self.pubs.values()]

    def fingerprint_lines(self):
        lines = []
        for path in self.pubs.values():
            bits, fingerprint = keygen_fingerprint(path)
            lines.append(f"{bits} {fingerprint} root@node-1 ({LABELS[path.read_text().split()[0]]})")
        return lines

    def console(self, prefix=SYSLOG, keys_prefix="", eol="\n", fingerprints=True):
        lines = [f"{prefix}", f"{prefix}{'#' * 61}"]
        if fingerprints:
            lines += [f"{prefix}-----BEGIN SSH HOST KEY FINGERPRINTS-----"]
            lines += [prefix + line for line in self.fingerprint_lines()]
            lines += [f"{prefix}-----END SSH HOST KEY FINGERPRINTS-----", f"{prefix}{'#' * 61}"]
        lines += [f"{keys_prefix}-----BEGIN SSH HOST KEY KEYS-----"]
        lines += [keys_prefix + line for line in self.key_lines()]
        lines += [f"{keys_prefix}-----END SSH HOST KEY KEYS-----"]
        return eol.join(lines) + eol


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    return Server(tmp_path_factory.mktemp("keys") / "node", "node")


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    return Server(tmp_path_factory.mktemp("keys") / "other", "other")


BOOT_NOISE = (
    "[    0.000000] Linux version 6.1.0-18-cloud-amd64\n"
    "\x1b[0;32m  OK  \x1b[0m] Started ssh.service - OpenBSD Secure Shell server.\n"
    "[0;32m  OK  [0m] Reached target cloud-init.target\n"  # Nova strips ESC from console output
    "Cloud-init v. 23.1.1 running 'modules:final' at Wed, 06 Dec 2026 02:12:05 +0000. Up 9.12 seconds.\n"
)


# ---------------------------------------------------------------------- fingerprints


def test_fingerprints_match_ssh_keygen(node):
    for path in node.pubs.values():
        _, key, _ = path.read_text().split(" ", 2)
        assert sha256_fingerprint(key) == keygen_fingerprint(path)[1]


def test_md5_fingerprint_format(node):
    path = node.pubs["ed25519"]
    out = subprocess.run(["ssh-keygen", "-E", "md5", "-lf", str(path)], capture_output=True, text=True, check=True)
    assert host_keys.md5_fingerprint(node.keys["ssh-ed25519"]) == out.stdout.split()[1]


# ---------------------------------------------------------------------- console logs


def test_cloud_init_console_with_syslog_prefix(node):
    keys = parse_console(BOOT_NOISE + node.console())
    assert [k.key_type for k in keys] == ["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"]
    assert {k.key_type: k.key for k in keys} == node.keys
    assert keys[1].comment == "root@node-1"
    assert {k.fingerprint for k in keys} == {keygen_fingerprint(p)[1] for p in node.pubs.values()}


@pytest.mark.parametrize(
    ("prefix", "keys_prefix", "eol"),
    [
        ("ec2: ", "ec2: ", "\n"),
        (SYSLOG, "", "\r\n"),  # serial consoles end lines in \r\n
        ("", "", "\n"),
        # the lab's console log is the journal's tail
        ("Dec 06 02:12:05 node-1 cloud-init[612]: ", "Dec 06 02:12:05 node-1 cloud-init[612]: ", "\n"),
        ("\x1b[1;34m", "\x1b[0m", "\n"),
    ],
)
def test_prefixes_carriage_returns_and_escapes(node, prefix, keys_prefix, eol):
    keys = parse_console(node.console(prefix=prefix, keys_prefix=keys_prefix, eol=eol))
    assert {k.key_type: k.key for k in keys} == node.keys
    assert all("\r" not in k.comment for k in keys)


def test_the_last_complete_block_of_several_boots_wins(node, other):
    log = other.console() + BOOT_NOISE + node.console()
    assert {k.key_type: k.key for k in parse_console(log)} == node.keys
    # a boot cut short (KEYS block never ended) does not count
    cut = log + BOOT_NOISE + "-----BEGIN SSH HOST KEY KEYS-----\n" + other.key_lines()[0] + "\n"
    assert {k.key_type: k.key for k in parse_console(cut)} == node.keys


def test_later_boot_without_fingerprints_is_not_checked_against_an_earlier_one(node, other):
    log = other.console() + node.console(fingerprints=False)
    assert {k.key_type: k.key for k in parse_console(log)} == node.keys


def test_interleaved_kernel_messages_are_skipped(node):
    lines = node.console().splitlines()
    begin = lines.index("-----BEGIN SSH HOST KEY KEYS-----")
    lines.insert(begin + 2, "[   12.345678] random: crng init done")
    assert {k.key_type: k.key for k in parse_console("\n".join(lines))} == node.keys


def test_key_not_among_the_printed_fingerprints_fails(node, other):
    """The FINGERPRINTS block of one server and the KEYS of another: the log is inconsistent."""
    mixed = node.console().split("-----BEGIN SSH HOST KEY KEYS-----")[0]
    mixed += "-----BEGIN SSH HOST KEY KEYS-----\n" + other.key_lines()[1] + "\n-----END SSH HOST KEY KEYS-----\n"
    with pytest.raises(HostKeyError, match="inconsistent") as failure:
        parse_console(mixed)
    assert sha256_fingerprint(other.keys["ssh-ed25519"]) in str(failure.value)


def test_garbled_key_fails(node):
    log = node.console().replace(node.keys["ssh-ed25519"], node.keys["ssh-ed25519"][:-7])
    with pytest.raises(HostKeyError):
        parse_console(log)
    swapped = node.console().replace("ssh-ed25519 ", "ssh-rsa ", 1)  # type and blob disagree
    with pytest.raises(HostKeyError, match="not a ssh-rsa key"):
        parse_console(swapped)


def test_two_keys_of_one_type_fail(node, other):
    log = node.console(fingerprints=False).replace(
        "-----END SSH HOST KEY KEYS-----", other.key_lines()[1] + "\n-----END SSH HOST KEY KEYS-----"
    )
    with pytest.raises(HostKeyError, match="two different ssh-ed25519"):
        parse_console(log)


@pytest.mark.parametrize(
    "log",
    [
        "",
        BOOT_NOISE,
        # fingerprints only, or a KEYS block still being printed
        "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 SHA256:abc root@n (ED25519)\n"
        "-----END SSH HOST KEY FINGERPRINTS-----\n",
        "-----BEGIN SSH HOST KEY KEYS-----\n",
    ],
)
def test_no_complete_keys_block_is_none(log):
    assert parse_console(log) is None


def test_md5_fingerprints_of_old_images_are_accepted(node):
    log = node.console()
    for key in node.keys.values():
        log = log.replace(sha256_fingerprint(key), host_keys.md5_fingerprint(key)[4:])
    assert "SHA256:" not in log
    assert {k.key_type: k.key for k in parse_console(log)} == node.keys


# ---------------------------------------------------------------------- known_hosts


def test_pin_lines_and_read_back(node):
    keys = [HostKey(t, k) for t, k in node.keys.items()]
    text = update_known_hosts("", {"node-1": ("id-1", keys)})
    lines = text.splitlines()
    assert lines[0] == HEADER
    assert lines[1:] == [f"node-1 {t} {node.keys[t]} monoscape-server-id=id-1" for t in sorted(node.keys)]
    pins = read_pins(text)
    assert set(pins) == {"node-1"}
    assert pins["node-1"].server_id == "id-1"
    assert pins["node-1"].keys == node.keys
    assert pins["node-1"].fingerprints == [sha256_fingerprint(node.keys[t]) for t in sorted(node.keys)]


def test_update_keeps_other_lines_and_replaces_in_place(node, other):
    old = [HostKey(t, k) for t, k in other.keys.items()]
    new = [HostKey(t, k) for t, k in node.keys.items()]
    theirs = [
        "# my own comment",
        "|1|c2FsdA==|aGFzaA== ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2U=",
        "@cert-authority *.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2U=",
        "",
        "github.com,140.82.121.3 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    ]
    text = "\n".join(theirs[:3]) + "\n" + "\n".join(f"node-1 {k.key_type} {k.key}" for k in old)
    text += "\n" + "\n".join(theirs[3:]) + "\n"
    updated = update_known_hosts(text, {"node-1": ("id-2", new), "node-2": ("id-3", new[:1])})
    lines = updated.splitlines()
    assert lines[0] == HEADER
    assert [line for line in lines if "node-" not in line and line != HEADER] == theirs
    # node-1's new lines where its old ones were, node-2 at the end
    assert lines[4:7] == [k.line("node-1", "id-2") for k in sorted(new, key=lambda k: k.key_type)]
    assert lines[-1] == new[0].line("node-2", "id-3")
    assert read_pins(updated)["node-1"].keys == node.keys
    # nothing but the header changes when nothing is asked; removing drops only that name
    assert update_known_hosts(updated) == updated
    removed = update_known_hosts(updated, remove=["node-1"])
    assert set(read_pins(removed)) == {"node-2", "github.com", "140.82.121.3"}


def test_a_shared_host_field_loses_only_the_removed_name():
    text = "node-1,10.0.0.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2U= comment\n"
    assert update_known_hosts(text, remove=["node-1"]).splitlines()[1:] == [
        "10.0.0.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2U= comment"
    ]


def test_lines_without_the_server_id_mark_are_pins_of_unknown_server():
    text = "node-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2U=\nnode-2 ssh-rsa AAAAB3Nza monoscape-server-id=x\n"
    pins = read_pins(text)
    assert pins["node-1"].server_id is None
    assert pins["node-2"].server_id == "x"


@pytest.mark.parametrize("name", ["node 1", "a,b", "web*", "", "#x", "[node]"])
def test_names_that_cannot_be_host_names(name):
    assert host_keys.check_host_name(name)


def test_write_is_atomic_and_0600(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    write_known_hosts(str(path), "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["known_hosts"], "no temporary file left"
    assert host_keys.read_known_hosts(str(tmp_path / "missing")) == ""


def test_failed_write_leaves_the_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "known_hosts"
    path.write_text("old\n")

    def broken(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)  # the shared atomic writer (module_utils/locking.py)
    with pytest.raises(OSError, match="No space"):
        write_known_hosts(str(path), "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["known_hosts"]
