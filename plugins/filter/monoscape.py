# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Filters of the Monoscape bundle's playbooks (documented in <name>.yml)."""

import fnmatch
import hashlib
import os

from ansible.errors import AnsibleFilterError

from ansible_collections.monoscape.paas.plugins.module_utils.monoscape_package import (
    INSTANCE_NAME_PATTERN,
    NAME_PATTERN,
    VERSION_PATTERN,
    PackageError,
    check_app_identity,
    check_name,
)

ACCOUNT_PREFIX = "ms-"
ACCOUNT_HASH_CHARS = 16
# the rules of module_utils/monoscape_package.py as regular expressions, by name
RULE_PATTERNS = {"name": NAME_PATTERN, "version": VERSION_PATTERN, "instance_name": INSTANCE_NAME_PATTERN}


def _text(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value) or "-"
    return str(value)


def monoscape_table(rows, columns, title=None):
    """Rows (dicts) as a fixed-width text table with the given columns.

    ``columns`` is a list of keys, or of ``[key, heading]`` pairs."""
    if not isinstance(rows, (list, tuple)):
        raise AnsibleFilterError(f"monoscape_table expects a list of dictionaries, got {type(rows).__name__}")
    spec = []
    for column in columns:
        if isinstance(column, str):
            spec.append((column, column))
        elif isinstance(column, (list, tuple)) and len(column) == 2:
            spec.append((str(column[0]), str(column[1])))
        else:
            raise AnsibleFilterError(f"monoscape_table: a column is a key or a [key, heading] pair, got {column!r}")
    cells = [[_text(row.get(key) if isinstance(row, dict) else None) for key, _ in spec] for row in rows]
    widths = [max([len(heading)] + [len(line[i]) for line in cells]) for i, (_, heading) in enumerate(spec)]
    lines = []
    if title:
        lines.append(str(title))
    lines.append("  ".join(heading.ljust(widths[i]) for i, (_, heading) in enumerate(spec)).rstrip())
    lines.append("  ".join("-" * width for width in widths))
    lines.extend("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in cells)
    if not cells:
        lines.append("(none)")
    return lines


def monoscape_app_account(tenant, app):
    """The system account (user and group) an app's instances run as on a node: one per
    (tenant, app), ``ms-`` and 16 hex digits of SHA-256 over ``<tenant>/<app>``. A hash,
    because names of up to 63 characters each do not fit Linux's 32, and because joining
    them would not be one-to-one (``a-b``/``c`` and ``a``/``b-c``)."""
    for what, value in (("tenant", tenant), ("app", app)):
        try:
            check_name(what, value)
        except PackageError as exc:
            raise AnsibleFilterError(
                f"monoscape_app_account: {what} {value!r} is not a tenant or app name: {exc}"
            ) from exc
    digest = hashlib.sha256(f"{tenant}/{app}".encode()).hexdigest()
    return ACCOUNT_PREFIX + digest[:ACCOUNT_HASH_CHARS]


def monoscape_app_identity_error(tenant, app):
    """Why a tenant and an app cannot be deployed together (check_app_identity's one-line
    message: a name, or the names derived from both), or '' when they can: for the
    fail_msg of an assert on the monoscape.paas.monoscape_app_identity test."""
    try:
        check_app_identity(tenant, app)
    except PackageError as exc:
        return str(exc)
    return ""


def monoscape_rule_pattern(rule):
    """The regular expression of one of the bundle's naming rules (module_utils/monoscape_package.py),
    without anchors, for what cannot call Python: HAProxy's configuration, for one."""
    if rule not in RULE_PATTERNS:
        raise AnsibleFilterError(f"monoscape_rule_pattern: {rule!r} is not one of {', '.join(sorted(RULE_PATTERNS))}")
    return RULE_PATTERNS[rule]


def monoscape_checksums(paths, root, exclude=("*.md", "*.pyc")):
    """{path relative to ``root``: sha256} of the files ``paths`` name: files, and the
    files below directories (recursively), except names matching ``exclude``. Read on
    the control node, in this process. A path that does not exist is an error."""
    if isinstance(paths, str) or not isinstance(paths, (list, tuple)):
        raise AnsibleFilterError(f"monoscape_checksums expects a list of paths, got {type(paths).__name__}")
    found = []
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                found.extend(os.path.join(folder, name) for name in sorted(files))
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise AnsibleFilterError(f"monoscape_checksums: {path} is neither a file nor a folder")
    sums = {}
    for path in found:
        if any(fnmatch.fnmatch(os.path.basename(path), pattern) for pattern in exclude):
            continue
        with open(path, "rb") as handle:
            sums[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return sums


class FilterModule:
    def filters(self):
        return {
            "monoscape_app_account": monoscape_app_account,
            "monoscape_app_identity_error": monoscape_app_identity_error,
            "monoscape_checksums": monoscape_checksums,
            "monoscape_rule_pattern": monoscape_rule_pattern,
            "monoscape_table": monoscape_table,
        }
