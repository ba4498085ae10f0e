"""labctl's output and its lock: progress lines (with the time since labctl started) that
also go to labctl.log, and one labctl changing the lab at a time."""

import contextlib
import fcntl
import os
import time

from . import LabError


class Console:
    def __init__(self, settings, echo=print):
        self.s = settings
        self.echo = echo
        self.t0 = time.monotonic()

    def say(self, msg):
        line = f"[lab {time.monotonic() - self.t0:6.1f}s] {msg}"
        self.echo(line)
        self.note(msg)

    def note(self, msg):
        with contextlib.suppress(OSError), open(self.s.labctl_log, "a") as f:
            f.write(f"{time.strftime('%F %T')} {msg}\n")

    @contextlib.contextmanager
    def lock(self, what, wait=True):
        """One labctl changing the lab at a time (`up` and `down`)."""
        self.s.lab_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.s.lab_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise LabError("another labctl is changing the lab", self.s.labctl_log) from None
                self.echo(f"[lab] waiting for another labctl ({os.pread(fd, 200, 0).decode().strip()})")
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{what} pid {os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    def busy(self):
        """Is another labctl holding the lock (an `up` in progress)?"""
        path = self.s.lab_dir / "lock"
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
