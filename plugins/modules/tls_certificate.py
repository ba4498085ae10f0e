#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: tls_certificate
short_description: A self-signed TLS certificate and its key, in one 0600 PEM file
version_added: "0.4.0"
description:
  - Makes sure I(path) holds a self-signed X.509 certificate for I(common_name) and
    I(subject_alt_names), followed by its private key (ECDSA P-256), as HAProxy's C(crt) reads it.
    The file is written 0600 atomically (a temporary file in the same folder, renamed).
  - A new key and certificate are made when the file does not exist, when the names differ, when
    the certificate expires within I(renew_before_days) days, or when the key does not match the
    certificate; otherwise nothing changes. The reason is returned.
  - For a deployment without a certificate of its own (the load balancer's HTTPS); clients trust
    it by the returned C(certificate) (the PEM of the certificate alone, no secret).
  - The private key never appears in arguments, results, diffs or logs.
  - Check mode and C(--diff) supported. Runs where the file is (usually the control node) and
    needs the Python C(cryptography) library there.
author:
  - Monoscape developers
options:
  common_name:
    description: The certificate's subject and issuer common name.
    type: str
    required: true
  path:
    description:
      - The PEM file (certificate, then key). Its folder must exist.
      - A file that is not a certificate and key (in this order) is refused, never overwritten.
    type: path
    required: true
  renew_before_days:
    description: Make a new certificate when the current one expires within this many days.
    type: int
    default: 30
  state:
    description: C(present) makes sure the file holds a valid certificate, C(absent) deletes it.
    type: str
    choices: [absent, present]
    default: present
  subject_alt_names:
    description:
      - Names the certificate is valid for; each an IP address (IPv4 or IPv6) or a DNS name.
        I(common_name) is added when it is a valid name and not listed.
      - The order does not matter.
    type: list
    elements: str
    default: []
  valid_days:
    description: Validity of a new certificate, in days.
    type: int
    default: 365
notes:
  - Not a certificate authority; for a public service give the load balancer a certificate signed
    by one instead.
"""

EXAMPLES = r"""
- name: The load balancer's self-signed certificate, valid for its floating IP
  monoscape.paas.tls_certificate:
    path: ~/.config/monoscape/demo/tls/lb.pem
    common_name: demo load balancer
    subject_alt_names: [198.51.100.23, demo.example.org]
  delegate_to: localhost
  register: lb_certificate

- name: Trust it in a client
  ansible.builtin.copy:
    content: "{{ lb_certificate.certificate }}"
    dest: /tmp/demo-lb-ca.pem
    mode: "0644"
"""

RETURN = r"""
certificate:
  description: The certificate alone, PEM (what a client trusts). Empty when O(state=absent).
  returned: success
  type: str
fingerprint_sha256:
  description: SHA-256 fingerprint of the certificate (hex, colon-separated).
  returned: success and O(state=present)
  type: str
  sample: "3A:1F:...:9C"
not_after:
  description: When the certificate expires (UTC, ISO 8601).
  returned: success and O(state=present)
  type: str
  sample: "2027-12-06T22:00:00Z"
path:
  description: Absolute path of the PEM file.
  returned: always
  type: str
reason:
  description: Why a new certificate was (or, in check mode, would be) made; empty when none was.
  returned: success
  type: str
  sample: "the names differ: wanted 198.51.100.23, demo.example.org, has 198.51.100.7"
subject_alt_names:
  description: The names the certificate is valid for, sorted.
  returned: success and O(state=present)
  type: list
  elements: str
"""

import contextlib
import datetime
import ipaddress
import os
import re

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.monoscape.paas.plugins.module_utils.locking import write_private

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    CRYPTOGRAPHY_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    CRYPTOGRAPHY_ERROR = exc

DNS_NAME = re.compile(
    r"(?=.{1,253}$)(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.S)


def utcnow():
    return datetime.datetime.now(datetime.UTC)


class CertificateError(Exception):
    """Input or file the module refuses; the message says what to fix."""


def normalise(name):
    """'IP:x' or 'DNS:x' form of a name: an IP address (written canonically) or a DNS name."""
    text = name.strip()
    with contextlib.suppress(ValueError):
        return f"IP:{ipaddress.ip_address(text)}"
    if DNS_NAME.fullmatch(text):
        return f"DNS:{text.lower()}"
    raise CertificateError(f"subject alternative name {name!r} is neither an IP address nor a DNS name")


def wanted_names(common_name, names):
    wanted = {normalise(name) for name in names}
    with contextlib.suppress(CertificateError):
        wanted.add(normalise(common_name))
    return wanted


def names_of(certificate):
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    found = {f"DNS:{name.lower()}" for name in extension.get_values_for_type(x509.DNSName)}
    found |= {f"IP:{address}" for address in extension.get_values_for_type(x509.IPAddress)}
    return found


def plain(names):
    return sorted(name.split(":", 1)[1] for name in names)


def read(path):
    """(certificate, key) from the PEM file, None when there is no file; CertificateError when
    it is not a certificate followed by its key."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    blocks = PEM_BLOCK.findall(data)
    pieces = [match.group(0) for match in PEM_BLOCK.finditer(data)]
    if len(blocks) != 2 or blocks[0] != b"CERTIFICATE" or not blocks[1].endswith(b"PRIVATE KEY"):
        raise CertificateError(
            f"{path} is not a certificate followed by its private key (what this module writes);"
            " delete it or give another path - it was not changed"
        )
    try:
        certificate = x509.load_pem_x509_certificate(pieces[0])
        key = serialization.load_pem_private_key(pieces[1], password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"{path} cannot be read as a certificate and key ({exc}); it was not changed") from exc
    return certificate, key


def why_new(current, common_name, wanted, renew_before, now):
    """Why the current file does not do (empty: it does)."""
    if current is None:
        return "there is no certificate yet"
    certificate, key = current
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != certificate.public_key().public_bytes(encoding, public):
        return "the key does not match the certificate"
    names = names_of(certificate)
    if names != wanted:
        return f"the names differ: wanted {', '.join(plain(wanted))}, has {', '.join(plain(names)) or 'none'}"
    subject = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not subject or subject[0].value != common_name:
        return f"the common name differs: wanted {common_name!r}"
    expires = certificate.not_valid_after_utc
    if expires - now < datetime.timedelta(days=renew_before):
        return f"it expires {expires:%Y-%m-%d}, within {renew_before} days"
    return ""


def make(common_name, wanted, valid_days, now):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    alt = [
        x509.IPAddress(ipaddress.ip_address(value)) if kind == "IP" else x509.DNSName(value)
        for kind, value in (name.split(":", 1) for name in sorted(wanted))
    ]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    return builder.sign(key, hashes.SHA256()), key


def write(path, certificate, key):
    """Certificate then key, 0600, replacing the file atomically."""
    pem = certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(path, pem)


def describe(certificate):
    return {
        "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "fingerprint_sha256": certificate.fingerprint(hashes.SHA256()).hex(":").upper(),
        "not_after": certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "subject_alt_names": plain(names_of(certificate)),
    }


def run(module):
    p = module.params
    path = os.path.abspath(p["path"])
    if p["state"] == "absent":
        exists = os.path.lexists(path)
        if exists and not module.check_mode:
            os.unlink(path)
        return {"changed": exists, "path": path, "certificate": "", "reason": ""}
    if p["valid_days"] < 1 or p["renew_before_days"] < 0 or p["renew_before_days"] >= p["valid_days"]:
        raise CertificateError(
            f"valid_days {p['valid_days']} and renew_before_days {p['renew_before_days']}: give"
            " valid_days >= 1 and 0 <= renew_before_days < valid_days"
        )
    if not p["common_name"].strip():
        raise CertificateError("common_name is empty: name the certificate")
    if not os.path.isdir(os.path.dirname(path)):
        raise CertificateError(f"the folder of {path} does not exist: create it (0700) first")
    wanted = wanted_names(p["common_name"], p["subject_alt_names"])
    now = utcnow()
    current = read(path)
    reason = why_new(current, p["common_name"], wanted, p["renew_before_days"], now)
    if not reason:
        mode = os.stat(path).st_mode & 0o777
        if mode != 0o600 and not module.check_mode:
            os.chmod(path, 0o600)
        return dict(describe(current[0]), changed=mode != 0o600, path=path, reason="")
    before = describe(current[0]) if current else None
    certificate, key = make(p["common_name"], wanted, p["valid_days"], now)
    if not module.check_mode:
        write(path, certificate, key)
    after = describe(certificate)
    result = dict(after, changed=True, path=path, reason=reason)
    if module._diff:
        fields = ("subject_alt_names", "not_after", "fingerprint_sha256")
        result["diff"] = {
            "before": {key: before[key] for key in fields} if before else {},
            "after": {key: after[key] for key in fields},
        }
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "common_name": {"type": "str", "required": True},
            "path": {"type": "path", "required": True},
            "renew_before_days": {"type": "int", "default": 30},
            "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
            "subject_alt_names": {"type": "list", "elements": "str", "default": []},
            "valid_days": {"type": "int", "default": 365},
        },
        supports_check_mode=True,
    )
    if CRYPTOGRAPHY_ERROR is not None:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_ERROR))
    try:
        result = run(module)
    except CertificateError as exc:
        module.fail_json(msg=str(exc), path=module.params["path"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
