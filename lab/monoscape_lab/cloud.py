"""The lab: the one object labctl's commands work with, a thin facade over the lab's concerns -
console.py (output, lock), processes.py (the services' processes), database.py, bootstrap.py
and lifecycle.py (up / down / status)."""

from .bootstrap import Bootstrap
from .console import Console
from .database import Database
from .lifecycle import Lifecycle
from .podman import Podman
from .processes import Processes


class Lab:
    def __init__(self, settings, echo=print):
        self.s = settings
        self.echo = echo
        self.console = Console(settings, echo)
        self.podman = Podman(settings, log=settings.labctl_log)
        self.db = Database(settings, self.console)
        self.processes = Processes(settings, self.console, self.db)
        self.bootstrapper = Bootstrap(settings, self.console, self.db, self.podman)
        self.lifecycle = Lifecycle(
            settings,
            console=self.console,
            processes=self.processes,
            db=self.db,
            bootstrapper=self.bootstrapper,
            podman=self.podman,
        )

    # ------------------------------------------------------------ lifecycle
    def up(self, do_install=True):
        return self.lifecycle.up(do_install=do_install)

    def down(self, purge=False):
        return self.lifecycle.down(purge=purge)

    def status(self):
        """[(service, pids, answers)] of every service."""
        return self.lifecycle.status()

    # ------------------------------------------------------------ output and lock
    def say(self, msg):
        self.console.say(msg)

    def note(self, msg):
        self.console.note(msg)

    def lock(self, what, wait=True):
        return self.console.lock(what, wait=wait)

    def busy(self):
        return self.console.busy()

    # ------------------------------------------------------------ processes (labctl restart)
    def start(self, svc):
        return self.processes.start(svc)

    def wait(self, started, since=None, timeout=None):
        return self.processes.wait(started, since=since, timeout=timeout)

    def stop(self, names, grace=15.0):
        return self.processes.stop(names, grace=grace)
