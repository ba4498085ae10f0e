# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Advisory locks that serialise writers of the bundle's state files, and the atomic
write those writers use."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile


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


def write_private(path: str, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` atomically: a 0600 temporary file in the same
    folder, flushed to disk, renamed over it (removed if anything fails)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(
            fd, "wb" if isinstance(data, bytes) else "w", **({} if isinstance(data, bytes) else {"encoding": "utf-8"})
        ) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
