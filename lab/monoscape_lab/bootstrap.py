"""Bootstrapping a new cloud: Keystone's admin and catalog, the cloud's identities and resources
(lab/runtime/bootstrap_cloud.py) and the compute hosts' cell mapping."""

import subprocess
import time

from . import LabError
from .services import base_env
from .settings import FAKE_HOST, HOST, LAB_ROOT, PODMAN_HOST, PORTS


class Bootstrap:
    def __init__(self, settings, console, db, podman):
        self.s = settings
        self.console = console
        self.db = db
        self.podman = podman

    def manage(self, argv, log):
        """Return code of a *-manage command in the lab's environment, its output appended to log."""
        with open(log, "ab") as out:
            return subprocess.run(
                [str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT, env=base_env(self.s), check=False
            ).returncode

    def keystone_bootstrap(self, pw):
        s = self.s
        url = f"http://{HOST}:{PORTS['keystone']}/v3"
        argv = [
            s.venv_bin("keystone-manage"),
            "--config-file",
            s.etc / "keystone" / "keystone.conf",
            "bootstrap",
            "--bootstrap-password",
            pw["admin"],
            "--bootstrap-region-id",
            "RegionOne",
            "--bootstrap-admin-url",
            url,
            "--bootstrap-public-url",
            url,
            "--bootstrap-internal-url",
            url,
        ]
        log = s.log("keystone-bootstrap")
        if self.manage(argv, log):
            raise LabError("keystone-manage bootstrap failed", log)

    def bootstrap(self, what, background=False):
        """lab/runtime/bootstrap_cloud.py in the venv (through the APIs)."""
        s = self.s
        argv = [s.venv_bin("python"), LAB_ROOT / "runtime" / "bootstrap_cloud.py", what, "--secrets", s.secrets_file]
        if what == "resources":
            image_id = self.podman.run("image", "inspect", "--format", "{{.Id}}", s.guest_image).stdout.strip()
            argv += ["--image", s.guest_image, "--image-id", image_id, "--cidr", s.cidr]
            argv += ["--public-cidr", self.read_public_cidr()]
        with open(s.log("bootstrap"), "ab") as out:
            proc = subprocess.Popen(
                [str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT, env=base_env(self.s), cwd=s.lab_dir
            )
        if background:
            return proc
        return self.bootstrap_done(what, proc)

    def read_public_cidr(self):
        return self.s.read_state().get("public_cidr") or self.s.public_cidr

    def bootstrap_done(self, what, proc):
        if proc.wait():
            raise LabError(f"bootstrapping the cloud's {what} failed", self.s.log("bootstrap"))
        self.console.say(f"{what} bootstrapped")

    def wait_cell_mapping(self, timeout=120):
        """The scheduler maps new compute hosts to cell1 (periodic task); if it
        has not after 15 s, labctl runs `nova-manage cell_v2 discover_hosts`."""
        s = self.s
        started = time.monotonic()
        hosts = f"'{PODMAN_HOST}','{FAKE_HOST}'"
        discovered = False
        while time.monotonic() - started < timeout:
            if self.db.sql_value(f"SELECT COUNT(*) FROM nova_api.host_mappings WHERE host IN ({hosts})") == "2":  # noqa: S608 - constants
                return
            if not discovered and time.monotonic() - started > 15:
                discovered = True
                argv = [
                    s.venv_bin("nova-manage"),
                    "--config-file",
                    s.etc / "nova" / "nova.conf",
                    "cell_v2",
                    "discover_hosts",
                ]
                self.manage(argv, s.log("nova-manage"))
                continue
            time.sleep(0.5)
        raise LabError("compute hosts were not mapped to cell1", s.log("nova-manage"))
