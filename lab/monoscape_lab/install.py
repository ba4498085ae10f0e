"""What the lab needs on the machine: Debian packages, the podman test-host
image, the services' virtualenv, and the lab's plugins inside that venv."""

import contextlib
import os
import pathlib
import shutil
import subprocess
import time

from . import LabError
from .settings import LAB_ROOT, REPO

APT_PACKAGES = {
    # executable that proves the package is there: package
    "/usr/sbin/mariadbd": "mariadb-server",
    "/usr/bin/mariadb": "mariadb-client",
    "/usr/lib/rabbitmq/bin/rabbitmq-server": "rabbitmq-server",
    "/usr/bin/memcached": "memcached",
    "/usr/bin/ss": "iproute2",
}
POLICY_RC_D = pathlib.Path("/usr/sbin/policy-rc.d")

# lab plugins copied into the venv: source -> path relative to site-packages
PLUGINS = {
    "nova_virt/monoscape_fake.py": "nova/virt/monoscape_fake.py",
    "nova_virt/monoscape_podman.py": "nova/virt/monoscape_podman.py",
    "neutron_ml2/monoscape_lab_ml2.py": "monoscape_lab_ml2.py",
    "monoscape_lab/labnet.py": "monoscape_labnet.py",
}
# which service runs which plugin (restarted by `up` when the plugin changed)
PLUGIN_USERS = {
    "nova/virt/monoscape_fake.py": ("nova-compute-podman", "nova-compute-fake"),
    "nova/virt/monoscape_podman.py": ("nova-compute-podman",),
    "monoscape_lab_ml2.py": ("neutron-api",),
    "monoscape_labnet.py": ("nova-compute-podman", "lab-network"),
}
ML2_DIST = "monoscape_lab_ml2-1.0.dist-info"
ML2_DIST_FILES = {
    "METADATA": "Metadata-Version: 2.1\nName: monoscape-lab-ml2\nVersion: 1.0\n"
    "Summary: ML2 mechanism driver of the Monoscape lab cloud (installed by lab/labctl)\n",
    "entry_points.txt": "[neutron.ml2.mechanism_drivers]\nmonoscape_lab = monoscape_lab_ml2:LabMechanismDriver\n",
    "INSTALLER": "labctl\n",
    "top_level.txt": "monoscape_lab_ml2\n",
}


def missing_packages():
    return sorted({pkg for path, pkg in APT_PACKAGES.items() if not os.access(path, os.X_OK)})


def apt_install(packages, log):
    """apt-get install with a policy-rc.d guard: package scripts start nothing."""
    made_policy = False
    if not POLICY_RC_D.exists():
        POLICY_RC_D.write_text("#!/bin/sh\n# written by lab/labctl during apt-get install\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
        made_policy = True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        with open(log, "ab") as out:
            for cmd in (
                ["apt-get", "update", "-q"],
                [
                    "apt-get",
                    "-o",
                    "DPkg::Lock::Timeout=600",
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    *packages,
                ],
            ):
                if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode:
                    raise LabError(f"`{' '.join(cmd[:2])} ...` failed installing {' '.join(packages)}", log)
    finally:
        if made_policy:
            POLICY_RC_D.unlink()


def test_hosts(settings, log):
    """scripts/test-hosts.sh: podman, containers.conf, the base image (idempotent)."""
    with open(log, "ab") as out:
        rc = subprocess.run(
            [str(REPO / "scripts" / "test-hosts.sh")], stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    if rc:
        raise LabError("scripts/test-hosts.sh failed (podman or the base image)", log)


def podman_ready(settings):
    if not shutil.which("podman") or not settings.containers_conf.exists():
        return False
    env = dict(os.environ, CONTAINERS_CONF=str(settings.containers_conf))
    return subprocess.run(["podman", "image", "exists", settings.image], env=env, check=False).returncode == 0


def venv_ready(settings):
    return (settings.venv / ".complete").exists() and settings.venv_bin("nova-compute").exists()


def create_venv(settings, log):
    venv = settings.venv
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n===== {time.strftime('%F %T')} creating {venv}\n".encode())
        out.flush()
        for cmd in (
            [settings.python, "-m", "venv", str(venv)],
            [
                str(venv / "bin" / "pip"),
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-input",
                "-r",
                str(LAB_ROOT / "requirements.txt"),
                "-c",
                str(LAB_ROOT / "constraints.txt"),
            ],
        ):
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode:
                shutil.rmtree(venv, ignore_errors=True)
                raise LabError(f"creating the lab venv failed at `{' '.join(cmd[:3])} ...`", log)
    (venv / ".complete").write_text(time.strftime("%F %T\n"))


def _write_if_changed(path, data):
    path = pathlib.Path(path)
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == data:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".labctl-tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def sync_plugins(settings):
    """Copy the lab's compute drivers and ML2 driver into the venv. Returns the
    services that run a plugin that changed."""
    site = settings.site_packages
    changed = set()
    for src, rel in PLUGINS.items():
        if _write_if_changed(site / rel, (LAB_ROOT / src).read_bytes()):
            changed.update(PLUGIN_USERS[rel])
    for name, text in ML2_DIST_FILES.items():
        _write_if_changed(site / ML2_DIST / name, text.encode())
    record = "monoscape_lab_ml2.py,,\n" + "".join(f"{ML2_DIST}/{name},,\n" for name in (*ML2_DIST_FILES, "RECORD"))
    _write_if_changed(site / ML2_DIST / "RECORD", record.encode())
    return changed


GUEST_FILES = {
    # file in lab/guest -> (path in the image, mode)
    "lab-guest-boot": ("usr/local/lib/lab-guest/lab-guest-boot", 0o755),
    "lab-guest-boot.service": ("etc/systemd/system/lab-guest-boot.service", 0o644),
}


def guest_image(settings, podman):
    """Build the lab's cloud image (base image + guest agent) unless it exists:
    a container from the base image, the files written into its root, committed."""
    ref = settings.guest_image
    if podman.run("image", "exists", ref).returncode == 0:
        return False
    name = f"monoscape-lab-guest-build-{os.getpid()}"
    podman.run("rm", "-f", name)
    podman.run("create", "--name", name, settings.image, "/sbin/init", check=True)
    try:
        root = pathlib.Path(podman.run("mount", name, check=True).stdout.strip())
        try:
            for src, (dest, mode) in GUEST_FILES.items():
                target = root / dest
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes((LAB_ROOT / "guest" / src).read_bytes())
                target.chmod(mode)
            wants = root / "etc/systemd/system/multi-user.target.wants/lab-guest-boot.service"
            wants.parent.mkdir(parents=True, exist_ok=True)
            if wants.is_symlink() or wants.exists():
                wants.unlink()
            wants.symlink_to("/etc/systemd/system/lab-guest-boot.service")
        finally:
            podman.run("umount", name)
        podman.run(
            "commit",
            "-q",
            "--change",
            'CMD ["/sbin/init"]',
            "--change",
            "STOPSIGNAL SIGRTMIN+3",
            name,
            ref,
            check=True,
        )
    finally:
        podman.run("rm", "-f", name)
    return True
