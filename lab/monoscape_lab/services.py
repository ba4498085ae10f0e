"""The lab's services: what they are, where they listen, how long each may take to start, and
the environment their processes start from."""

import dataclasses
import os

from . import labnet
from .settings import CONTROL_HOST, FAKE_HOST, HOST, PODMAN_HOST, PORTS

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclasses.dataclass(frozen=True)
class Service:
    name: str
    kind: str  # infra | api | agent | nova
    port: int | None = None
    url: str | None = None  # APIs: answers HTTP when ready
    binary: str | None = None  # nova services: heartbeat row in nova.services
    host: str | None = None


SERVICES = (
    Service("mariadb", "infra", PORTS["mariadb"]),
    Service("memcached", "infra", PORTS["memcached"]),
    Service("rabbitmq", "infra", PORTS["rabbitmq"]),
    Service("keystone", "api", PORTS["keystone"], f"http://{HOST}:{PORTS['keystone']}/v3"),
    Service("glance-api", "api", PORTS["glance-api"], f"http://{HOST}:{PORTS['glance-api']}/"),
    Service("placement-api", "api", PORTS["placement-api"], f"http://{HOST}:{PORTS['placement-api']}/"),
    Service("nova-api", "api", PORTS["nova-api"], f"http://{HOST}:{PORTS['nova-api']}/"),
    Service("neutron-api", "api", PORTS["neutron-api"], f"http://{HOST}:{PORTS['neutron-api']}/"),
    # the lab's L2/L3/security-group agent (monoscape_labnet): reads Neutron's database
    Service("lab-network", "agent", host=labnet.FABRIC_NS),
    Service("nova-conductor", "nova", binary="nova-conductor", host=CONTROL_HOST),
    Service("nova-scheduler", "nova", binary="nova-scheduler", host=CONTROL_HOST),
    Service("nova-compute-podman", "nova", binary="nova-compute", host=PODMAN_HOST),
    Service("nova-compute-fake", "nova", binary="nova-compute", host=FAKE_HOST),
)
BY_NAME = {s.name: s for s in SERVICES}
WSGI_APPS = {
    "keystone": ("keystone", "OS_KEYSTONE_CONFIG_DIR", "keystone"),
    "glance-api": ("glance", "OS_GLANCE_CONFIG_DIR", "glance"),
    "placement-api": ("placement", "OS_PLACEMENT_CONFIG_DIR", "placement"),
    "nova-api": ("nova", "OS_NOVA_CONFIG_DIR", "nova"),
    "neutron-api": ("neutron", "OS_NEUTRON_CONFIG_DIR", "neutron"),
}
START_TIMEOUT = {"infra": 90, "api": 180, "agent": 60, "nova": 240}
AGENT_STATUS_MAX_AGE = 15  # seconds: an agent that has not reported for longer is not answering


def base_env(s):
    """The environment every lab process (services, migrations, bootstrap) starts from."""
    env = {
        "PATH": BASE_PATH,
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "CONTAINERS_CONF": str(s.containers_conf),
        "PYTHONDONTWRITEBYTECODE": "1",
        # setproctitle (gunicorn, oslo) would overwrite /proc/<pid>/environ,
        # where labctl finds its processes' marker
        "SPT_NOENV": "1",
    }
    return env
