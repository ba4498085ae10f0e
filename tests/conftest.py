"""Shared pytest set-up: import paths for the monoscape.paas collection and
markers by folder (tests/<marker>/...)."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# `ansible_collections.monoscape.paas` resolves through .collections (scripts/bootstrap.sh)
sys.path.insert(0, str(ROOT / ".collections"))

_MARKER_DIRS = {"unit", "lint", "molecule", "lab"}


def pytest_collection_modifyitems(items):
    for item in items:
        parts = pathlib.Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in _MARKER_DIRS:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def root():
    return ROOT
