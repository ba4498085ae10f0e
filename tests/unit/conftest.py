"""Fixtures of the os_* module tests: an in-memory cloud (tests/unit/os_fake_cloud.py),
``run(module, args, check_mode=False, diff=False)`` that runs a module against it,
and the warnings the modules give."""

import pytest

from ansible_collections.monoscape.paas.plugins.module_utils import openstack as base

from .os_fake_cloud import FakeCloud, run_module
from .selfservice_helpers import Clock, make_app, make_settings, start_keystone


@pytest.fixture
def cloud():
    return FakeCloud()


@pytest.fixture
def run(monkeypatch, cloud):
    def _run(module, args, check_mode=False, diff=False):
        return run_module(monkeypatch, module, args, cloud, check_mode=check_mode, diff=diff)

    return _run


@pytest.fixture
def module_warnings(monkeypatch):
    """Every warning an os_* module gives (Ansible shows them on the controller or returns
    them with the result, depending on what the process imported: recorded here)."""
    given = []
    warn = base.OpenStackModule.warn

    def record(self, msg):
        given.append(msg)
        warn(self, msg)

    monkeypatch.setattr(base.OpenStackModule, "warn", record)
    return given


# ---------------------------------------------------------------------- the self-service web app
@pytest.fixture(scope="session")
def keystone_url():
    """A Keystone stand-in on the loopback (tests/unit/selfservice_helpers.py)."""
    url, stop = start_keystone()
    yield url
    stop()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def settings(tmp_path, keystone_url):
    return make_settings(tmp_path, keystone_url)


@pytest.fixture
def app(settings, clock):
    return make_app(settings, clock)
