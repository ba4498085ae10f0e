# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Advisory locks that serialise writers of the bundle's state files."""

from __future__ import annotations

import contextlib
import fcntl
import os


@contextlib.contextmanager
def locked(directory: str):
    """Hold an exclusive flock on ``directory`` (e.g. several hosts of a rolling
    batch delegating to the same load balancer, or two deployments on a node)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
