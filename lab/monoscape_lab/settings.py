"""Where the lab lives and what it is made of: paths, ports, hosts, versions."""

import dataclasses
import hashlib
import json
import os
import pathlib
import secrets
import subprocess

LAB_ROOT = pathlib.Path(__file__).resolve().parent.parent  # lab/
REPO = LAB_ROOT.parent

# Bump when the generated configs or the bootstrap change in a way an existing
# lab must not keep: `up` then re-initialises the cloud.
LAYOUT_VERSION = "2"  # 2: strict networking (fabric, routers, floating IPs, security groups)
# Bump when the database initialisation changes (keys the cached schema dump).
SCHEMA_VERSION = "1"

HOST = "127.0.0.1"
PORTS = {
    "mariadb": 3306,
    "memcached": 11211,
    "rabbitmq": 5672,
    "rabbitmq-dist": 25672,
    "keystone": 5000,
    "glance-api": 9292,
    "placement-api": 8778,
    "nova-api": 8774,
    "neutron-api": 9696,
}
# nova-compute hosts: instances as podman containers (AZ nova) and the plain fake
# driver (AZ fake, for scale tests: servers cost no memory).
CONTROL_HOST = "lab-control"  # nova-conductor, nova-scheduler
PODMAN_HOST = "lab-podman"
FAKE_HOST = "lab-fake"
PODMAN_AZ = "nova"
FAKE_AZ = "fake"
REGION = "RegionOne"
ADMIN_CLOUD = "lab-admin"
# Loopback-only infrastructure account; it is part of the cached schema dump
# (nova's cell mappings), so it cannot be random per lab.
DB_USER = "lab"
DB_PASSWORD = "monoscape-lab"  # noqa: S105 - loopback-only MariaDB account, baked into the cached dump
RABBIT_URL = f"rabbit://guest:guest@{HOST}:5672/"
# the tenant network; must not overlap podman's molecule pool 10.89.60.0/22
DEFAULT_CIDR = "10.42.0.0/22"
SERVICE_USERS = ("glance", "neutron", "nova", "placement")
GUEST_REPO = "localhost/monoscape-lab/guest"
# The external network (TEST-NET-2): on the host (the host holds its first address, the
# routers' gateways and floating IPs route there). Not TEST-NET-3: on these machines the
# package proxy every registry resolves to is 203.0.113.80, which a bridge for
# 203.0.113.0/24 would shadow. `labctl up` refuses a CIDR the host needs.
DEFAULT_PUBLIC_CIDR = "198.51.100.0/24"
# names the host must keep reaching (registries; the apt mirror is read from apt's sources)
NEEDED_HOSTS = ("deb.debian.org", "pypi.org", "files.pythonhosted.org", "registry.npmjs.org")
LABEL_DIR = "monoscape.lab.dir"
LABEL_CLOUD = "monoscape.lab.cloud"


def _expand_home(value, default):
    return pathlib.Path(os.path.expanduser(value or default)).resolve()


def read_versions(repo=REPO):
    """The shell variables of scripts/versions.sh (MONOSCAPE_IMAGE, ...)."""
    script = repo / "scripts" / "versions.sh"
    out = subprocess.run(
        ["bash", "-c", f'. "{script}"; declare -p | sed -n "s/^declare -- \\(MONOSCAPE_[A-Z_]*\\)=/\\1=/p"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        values[key] = value.strip('"')
    return values


def file_digest(*paths, extra=""):
    h = hashlib.sha256()
    for path in paths:
        h.update(pathlib.Path(path).read_bytes())
    h.update(extra.encode())
    return h.hexdigest()[:12]


@dataclasses.dataclass
class Settings:
    """Everything derived from the environment; one instance per labctl run."""

    lab_dir: pathlib.Path
    cache: pathlib.Path
    python: str
    image: str
    cidr: str
    containers_conf: pathlib.Path
    public_cidr: str = DEFAULT_PUBLIC_CIDR

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        cache = _expand_home(env.get("MONOSCAPE_CACHE"), "~/.cache/monoscape")
        versions = read_versions()
        return cls(
            lab_dir=_expand_home(env.get("MONOSCAPE_LAB_DIR"), str(cache / "lab")),
            cache=cache,
            python=env.get("MONOSCAPE_LAB_PYTHON") or "/usr/bin/python3",
            image=env.get("MONOSCAPE_IMAGE") or versions["MONOSCAPE_IMAGE"],
            cidr=env.get("MONOSCAPE_LAB_CIDR") or DEFAULT_CIDR,
            containers_conf=_expand_home(env.get("CONTAINERS_CONF"), str(cache / "containers.conf")),
            public_cidr=env.get("MONOSCAPE_LAB_PUBLIC_CIDR") or DEFAULT_PUBLIC_CIDR,
        )

    # ------------------------------------------------------------ paths
    @property
    def etc(self):
        return self.lab_dir / "etc"

    @property
    def data(self):
        return self.lab_dir / "data"

    @property
    def logs(self):
        return self.lab_dir / "logs"

    @property
    def run(self):
        return self.lab_dir / "run"

    @property
    def clouds_yaml(self):
        return self.lab_dir / "clouds.yaml"

    @property
    def state_file(self):
        return self.lab_dir / "state.json"

    @property
    def secrets_file(self):
        return self.etc / "secrets.json"

    @property
    def labctl_log(self):
        return self.logs / "labctl.log"

    def log(self, service):
        return self.logs / f"{service}.log"

    # ------------------------------------------------------------ versions
    @property
    def venv_key(self):
        return file_digest(
            LAB_ROOT / "requirements.txt",
            LAB_ROOT / "constraints.txt",
            extra=f"{self.python_version()}",
        )

    @property
    def guest_image(self):
        """The lab's cloud image: the base image plus the guest agent (lab/guest),
        keyed by both."""
        files = sorted((LAB_ROOT / "guest").iterdir())
        return f"{GUEST_REPO}:{file_digest(*files, extra=self.image)}"

    @property
    def venv(self):
        return self.cache / f"lab-venv-{self.venv_key}"

    def venv_bin(self, name):
        return self.venv / "bin" / name

    @property
    def site_packages(self):
        return self.venv / "lib" / f"python{self.python_version()}" / "site-packages"

    def python_version(self):
        if not hasattr(self, "_pyver"):
            out = subprocess.run(
                [self.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
            )
            self._pyver = out.stdout.strip() or "unknown"
        return self._pyver

    @property
    def state_key(self):
        """A lab initialised under another key is re-initialised by `up`."""
        return f"{self.venv_key}-{LAYOUT_VERSION}"

    # ------------------------------------------------------------ state
    def read_state(self):
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def write_state(self, state):
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.state_file)

    def secrets(self, create=False):
        """Passwords of the admin and the service users (random per lab)."""
        try:
            return json.loads(self.secrets_file.read_text())
        except FileNotFoundError:
            if not create:
                raise
        values = {name: secrets.token_urlsafe(18) for name in ("admin", *SERVICE_USERS)}
        self.etc.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(values, f, indent=2, sort_keys=True)
        return values
