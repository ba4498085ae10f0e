"""Shared pytest set-up: import paths for the monoscape.paas collection and
markers by folder (tests/<marker>/...)."""

import pathlib
import sys

import pytest
from xdist.scheduler import LoadScopeScheduling

ROOT = pathlib.Path(__file__).resolve().parent.parent
# `ansible_collections.monoscape.paas` resolves through .collections (scripts/bootstrap.sh)
sys.path.insert(0, str(ROOT / ".collections"))
# the self-service web app's package (selfservice/, shipped to the controller by its role)
sys.path.insert(0, str(ROOT / "selfservice"))

_MARKER_DIRS = {"unit", "lint", "molecule", "lab"}


# Run order: lint, unit, molecule, lab; within lab, labctl's fault tests (which
# break and repair the shared lab) last. scripts/test.sh starts the lab in the
# background, so it comes up while the other tests run.
#
# With pytest-xdist (`-n 2`, as scripts/test.sh runs them) the lab tests are one
# unit of work, run in that order by one worker, while the other worker runs
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

    def rank(item):
        parts = pathlib.Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        return (_ORDER.get(parts[0], 1) if parts else 1, parts[-1] == _LAST_IN_LAB)

    items.sort(key=rank)  # stable: file and definition order kept within a rank


class LabApart(LoadScopeScheduling):
    """Two units of work for pytest-xdist: the lab tests (one shared cloud, broken
    on purpose by the last of them) and everything else. xdist's own `--dist
    loadgroup` cannot do this here: with pytest 9 its xdist_group markers are
    silently ignored (it still renames items through the old `_nodeid`)."""

    def _split_scope(self, nodeid):
        return "lab" if nodeid.startswith("tests/lab/") else "hosts"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    return LabApart(config, log)


@pytest.fixture(scope="session")
def root():
    return ROOT
