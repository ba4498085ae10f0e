"""Shared pytest set-up: import paths for the monoscape.paas collection and
markers by folder (tests/<marker>/...)."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# `ansible_collections.monoscape.paas` resolves through .collections (scripts/bootstrap.sh)
sys.path.insert(0, str(ROOT / ".collections"))

_MARKER_DIRS = {"unit", "lint", "molecule", "lab"}


# Run order: lint, unit, molecule, lab; within lab, labctl's fault tests (which
# break and repair the shared lab) last. scripts/test.sh starts the lab in the
# background, so it comes up while the other tests run.
#
# With pytest-xdist (`-n 2 --dist loadgroup`, as scripts/test.sh runs them) the lab
# tests are one group, run in that order by one worker, while the other worker runs
# everything else (lint, unit, then the molecule scenarios): the two share nothing
# but the machine (the lab's podman containers carry its label, molecule's have
# their own names and networks).
_ORDER = {"lint": 0, "unit": 1, "molecule": 2, "lab": 3}
_LAST_IN_LAB = "test_labctl_faults.py"


def pytest_collection_modifyitems(items):
    for item in items:
        parts = pathlib.Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in _MARKER_DIRS:
            item.add_marker(getattr(pytest.mark, parts[0]))
        item.add_marker(pytest.mark.xdist_group("lab" if parts and parts[0] == "lab" else "hosts"))

    def rank(item):
        parts = pathlib.Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        return (_ORDER.get(parts[0], 1) if parts else 1, parts[-1] == _LAST_IN_LAB)

    items.sort(key=rank)  # stable: file and definition order kept within a rank


@pytest.fixture(scope="session")
def root():
    return ROOT
