"""Fixtures of the os_* module tests: an in-memory cloud (tests/unit/os_fake_cloud.py)
and ``run(module, args, check_mode=False, diff=False)`` that runs a module against it."""

import pytest

from .os_fake_cloud import FakeCloud, run_module


@pytest.fixture
def cloud():
    return FakeCloud()


@pytest.fixture
def run(monkeypatch, cloud):
    def _run(module, args, check_mode=False, diff=False):
        return run_module(monkeypatch, module, args, cloud, check_mode=check_mode, diff=diff)

    return _run
