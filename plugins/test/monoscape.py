# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Jinja tests of the Monoscape bundle (documented in <name>.yml): the naming rules
of module_utils/monoscape_package.py, the one place they are written."""

from ansible_collections.monoscape.paas.plugins.module_utils.monoscape_package import (
    PackageError,
    check_app_identity,
    check_health_path,
    check_instance_name,
    check_name,
    check_version,
)


def _passes(check, *args):
    try:
        check(*args)
    except PackageError:
        return False
    return True


def monoscape_name(value):
    """A tenant or app name that routes as /<tenant>/<app>/."""
    return _passes(check_name, "name", value)


def monoscape_app_identity(tenant, app):
    """A tenant (the value) and an app (the argument) whose names derived from both fit:
    <tenant>.<app>.<n> and app.<tenant>.<app>."""
    return _passes(check_app_identity, tenant, app)


def monoscape_version(value):
    """A release version that can name a release folder."""
    return _passes(check_version, value)


def monoscape_instance_name(value):
    """An app instance name on a node (<tenant>.<app>.<n>; not a tenant or app name)."""
    return _passes(check_instance_name, value)


def monoscape_health_path(value):
    """A health-check path below /<tenant>/<app>/ ('' for the app's root URL)."""
    return _passes(check_health_path, value)


class TestModule:
    def tests(self):
        return {
            "monoscape_name": monoscape_name,
            "monoscape_app_identity": monoscape_app_identity,
            "monoscape_version": monoscape_version,
            "monoscape_health_path": monoscape_health_path,
            "monoscape_instance_name": monoscape_instance_name,
        }
