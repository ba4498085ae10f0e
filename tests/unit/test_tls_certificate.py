"""tls_certificate: a self-signed certificate and key in one 0600 PEM file, made once and
kept while it does; a new one when the names change, expiry nears or the key does not
match; a file it did not write is refused; check mode writes nothing; no key in results."""

from __future__ import annotations

import datetime
import json
import os
import ssl
import stat

import pytest
from ansible.module_utils.testing import patch_module_args
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.monoscape.paas.plugins.modules import tls_certificate

NAMES = ["198.51.100.23", "demo.example.org"]


def run(capsys, path, check_mode=False, diff=False, **params):
    args = {"path": str(path), "common_name": "demo load balancer", "subject_alt_names": NAMES, **params}
    args["_ansible_check_mode"] = check_mode
    args["_ansible_diff"] = diff
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        tls_certificate.main()
    result = json.loads(capsys.readouterr().out)
    result["rc"] = exc.value.code
    return result


def on_disk(path):
    pieces = path.read_bytes().split(b"-----END CERTIFICATE-----\n")
    certificate = x509.load_pem_x509_certificate(pieces[0] + b"-----END CERTIFICATE-----\n")
    key = serialization.load_pem_private_key(pieces[1], password=None)
    return certificate, key


def test_made_once_0600_valid_for_the_names_and_usable_by_a_tls_server(capsys, tmp_path):
    pem = tmp_path / "lb.pem"
    first = run(capsys, pem)
    assert first["rc"] == 0 and first["changed"], first
    assert first["reason"] == "there is no certificate yet"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert first["subject_alt_names"] == sorted(NAMES)
    assert "PRIVATE KEY" not in json.dumps(first)
    certificate, _ = on_disk(pem)
    assert first["certificate"].encode() == certificate.public_bytes(serialization.Encoding.PEM)
    # what HAProxy does with it: a TLS server context loads certificate and key from the one file
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pem))
    second = run(capsys, pem)
    assert not second["changed"], second
    assert second["fingerprint_sha256"] == first["fingerprint_sha256"]


def test_new_names_give_a_new_certificate_and_key(capsys, tmp_path):
    pem = tmp_path / "lb.pem"
    first = run(capsys, pem)
    _, key_before = on_disk(pem)
    moved = run(capsys, pem, subject_alt_names=["198.51.100.7"], diff=True)
    assert moved["changed"]
    assert moved["reason"].startswith("the names differ: wanted 198.51.100.7, has 198.51.100.23, demo.example.org")
    assert moved["fingerprint_sha256"] != first["fingerprint_sha256"]
    assert moved["diff"]["before"]["subject_alt_names"] == sorted(NAMES)
    assert moved["diff"]["after"]["subject_alt_names"] == ["198.51.100.7"]
    _, key_after = on_disk(pem)
    assert key_after.private_numbers() != key_before.private_numbers()


def test_same_names_in_another_order_or_spelling_change_nothing(capsys, tmp_path):
    pem = tmp_path / "lb.pem"
    run(capsys, pem, subject_alt_names=["2001:db8::1", "Demo.Example.org"])
    again = run(capsys, pem, subject_alt_names=["demo.example.org", "2001:0db8:0:0::1"])
    assert not again["changed"], again


def test_a_certificate_near_expiry_is_renewed(capsys, tmp_path, monkeypatch):
    pem = tmp_path / "lb.pem"
    run(capsys, pem, valid_days=40)
    renewed = run(capsys, pem, valid_days=40, renew_before_days=30)
    assert not renewed["changed"]
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=15)
    monkeypatch.setattr(tls_certificate, "utcnow", lambda: later)
    renewed = run(capsys, pem, valid_days=40, renew_before_days=30)
    assert renewed["changed"]
    assert "within 30 days" in renewed["reason"]


def test_check_mode_writes_nothing_and_says_what_would_change(capsys, tmp_path):
    pem = tmp_path / "lb.pem"
    check = run(capsys, pem, check_mode=True)
    assert check["changed"] and not pem.exists()
    run(capsys, pem)
    before = pem.read_bytes()
    check = run(capsys, pem, check_mode=True, subject_alt_names=["198.51.100.99"])
    assert check["changed"]
    assert pem.read_bytes() == before


def test_a_key_that_does_not_match_is_replaced(capsys, tmp_path):
    pem, other = tmp_path / "lb.pem", tmp_path / "other.pem"
    run(capsys, pem)
    run(capsys, other)
    mixed = pem.read_bytes().split(b"-----END CERTIFICATE-----\n")[0] + b"-----END CERTIFICATE-----\n"
    mixed += other.read_bytes().split(b"-----END CERTIFICATE-----\n")[1]
    pem.write_bytes(mixed)
    fixed = run(capsys, pem)
    assert fixed["changed"] and fixed["reason"] == "the key does not match the certificate"


@pytest.mark.parametrize(
    "content", [b"", b"not a pem\n", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_a_file_it_did_not_write_is_refused_and_left_alone(capsys, tmp_path, content):
    pem = tmp_path / "lb.pem"
    pem.write_bytes(content)
    result = run(capsys, pem)
    assert result["rc"] == 1 and result["failed"]
    assert "is not a certificate followed by its private key" in result["msg"]
    assert pem.read_bytes() == content


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"subject_alt_names": ["bad name!"]}, "'bad name!' is neither an IP address nor a DNS name"),
        ({"valid_days": 10, "renew_before_days": 30}, "0 <= renew_before_days < valid_days"),
        ({"common_name": " "}, "common_name is empty"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(capsys, tmp_path, params, says):
    pem = tmp_path / "lb.pem"
    result = run(capsys, pem, **params)
    assert result["failed"] and says in result["msg"], result["msg"]
    assert not pem.exists()


def test_missing_folder_is_named(capsys, tmp_path):
    result = run(capsys, tmp_path / "nope" / "lb.pem")
    assert result["failed"] and "does not exist: create it" in result["msg"]


def test_absent_deletes_the_file(capsys, tmp_path):
    pem = tmp_path / "lb.pem"
    run(capsys, pem)
    gone = run(capsys, pem, state="absent")
    assert gone["changed"] and not os.path.lexists(pem)
    assert not run(capsys, pem, state="absent")["changed"]
