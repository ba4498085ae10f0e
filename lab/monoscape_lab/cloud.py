"""The lab's services and the up / down / status operations."""

import base64
import contextlib
import dataclasses
import datetime
import fcntl
import gzip
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import threading
import time

from . import LabError, configs, install, labnet, procs
from .podman import LABEL_ROLE, Podman
from .settings import (
    CONTROL_HOST,
    FAKE_HOST,
    HOST,
    LAB_ROOT,
    NEEDED_HOSTS,
    PODMAN_HOST,
    PORTS,
    RABBIT_URL,
    SCHEMA_VERSION,
)

DATABASES = ("keystone", "glance", "placement", "nova_api", "nova_cell0", "nova", "neutron")
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


def now_utc():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)


class Lab:
    def __init__(self, settings, echo=print):
        self.s = settings
        self.echo = echo
        self.t0 = time.monotonic()
        self.podman = Podman(settings, log=settings.labctl_log)

    # ------------------------------------------------------------ output
    def say(self, msg):
        line = f"[lab {time.monotonic() - self.t0:6.1f}s] {msg}"
        self.echo(line)
        self.note(msg)

    def note(self, msg):
        with contextlib.suppress(OSError), open(self.s.labctl_log, "a") as f:
            f.write(f"{time.strftime('%F %T')} {msg}\n")

    # ------------------------------------------------------------ lock
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

    # ------------------------------------------------------------ environment of services
    def base_env(self):
        env = {
            "PATH": BASE_PATH,
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "CONTAINERS_CONF": str(self.s.containers_conf),
            "PYTHONDONTWRITEBYTECODE": "1",
            # setproctitle (gunicorn, oslo) would overwrite /proc/<pid>/environ,
            # where labctl finds its processes' marker
            "SPT_NOENV": "1",
        }
        return env

    def argv_env(self, svc):
        s = self.s
        env = self.base_env()
        etc = s.etc
        if svc.name == "mariadb":
            return ["/usr/sbin/mariadbd", f"--defaults-file={etc / 'mariadb.cnf'}"], env
        if svc.name == "memcached":
            return ["/usr/bin/memcached", "-l", HOST, "-p", str(svc.port), "-U", "0", "-m", "64", "-u", "root"], env
        if svc.name == "rabbitmq":
            rabbit = s.data / "rabbitmq"
            env.update(
                HOME=str(rabbit / "home"),
                RABBITMQ_NODENAME="rabbit@localhost",
                RABBITMQ_NODE_IP_ADDRESS=HOST,
                RABBITMQ_NODE_PORT=str(PORTS["rabbitmq"]),
                RABBITMQ_DIST_PORT=str(PORTS["rabbitmq-dist"]),
                ERL_EPMD_ADDRESS=HOST,
                RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
                RABBITMQ_MNESIA_BASE=str(rabbit / "mnesia"),
                RABBITMQ_LOG_BASE=str(s.logs / "rabbitmq"),
                RABBITMQ_LOGS=str(s.log("rabbitmq")),
                RABBITMQ_ENABLED_PLUGINS_FILE=str(etc / "rabbitmq" / "enabled_plugins"),
                RABBITMQ_CONFIG_FILE=str(etc / "rabbitmq" / "rabbitmq"),
                RABBITMQ_CONF_ENV_FILE=str(etc / "rabbitmq" / "rabbitmq-env.conf"),
                RABBITMQ_PID_FILE=str(s.run / "rabbitmq-beam.pid"),
            )
            return ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env
        if svc.kind == "agent":
            return [s.venv_bin("python"), "-m", "monoscape_labnet", "agent", "--config", etc / "lab-network.json"], env
        if svc.kind == "api":
            app, var, confdir = WSGI_APPS[svc.name]
            env[var] = str(etc / confdir)
            if svc.name == "nova-api":
                env["OS_NOVA_CONFIG_FILES"] = "api-paste.ini;nova.conf;nova-api.conf"
            argv = [
                s.venv_bin("gunicorn"),
                "--no-control-socket",  # gunicorn >= 27 would share ~/.gunicorn/gunicorn.ctl between masters
                "--workers",
                "1",
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--timeout",
                "300",
                "--graceful-timeout",
                "5",
                # Nova asks Neutron for the ports of up to 150 servers in one GET (about 7 KB of
                # query): gunicorn's default 4094-byte request line made server lists of >85
                # servers fail with HTTP 500. 8190 is the largest finite limit (Apache's default).
                "--limit-request-line",
                "8190",
                "--pythonpath",
                LAB_ROOT / "runtime",
                "--bind",
                f"{HOST}:{svc.port}",
                "--access-logfile",
                s.log(f"{svc.name}-access"),
                f"lab_wsgi:{app}",
            ]
            return argv, env
        conf = {
            "nova-compute-podman": "nova-compute-podman.conf",
            "nova-compute-fake": "nova-compute-fake.conf",
        }.get(svc.name, "nova.conf")
        return [s.venv_bin(svc.binary), "--config-file", etc / "nova" / conf], env

    # ------------------------------------------------------------ service state
    def pids(self, svc):
        return procs.lab_processes(self.s.lab_dir, svc.name)

    def answers(self, svc, since=None):
        if svc.kind == "infra":
            return procs.port_open(svc.port)
        if svc.kind == "api":
            return procs.http_answers(svc.url)
        if svc.kind == "agent":
            return self.agent_synced()
        return self.heartbeat(svc, since)

    def agent_synced(self):
        """The lab-network agent reported a successful pass recently."""
        try:
            status = json.loads((self.s.run / "lab-network.status").read_text())
        except (OSError, ValueError):
            return False
        return bool(status.get("synced")) and time.time() - float(status.get("time", 0)) < AGENT_STATUS_MAX_AGE

    def heartbeat(self, svc, since=None):
        """Has the nova service reported in (since `since`, UTC)?"""
        where = f"host='{svc.host}' AND `binary`='{svc.binary}' AND deleted=0 AND disabled=0"
        if since is not None:
            where += f" AND updated_at >= '{since:%Y-%m-%d %H:%M:%S}'"
        else:
            where += " AND updated_at >= UTC_TIMESTAMP() - INTERVAL 60 SECOND"
        return self.sql_value(f"SELECT COUNT(*) FROM nova.services WHERE {where}") == "1"  # noqa: S608 - constants and lab host names only

    def sql(self, statement, database=None, check=True):
        argv = ["/usr/bin/mariadb", f"--defaults-file={self.s.etc / 'mariadb.cnf'}", "-N", "-B", "-e", statement]
        if database:
            argv.append(database)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if check and proc.returncode:
            raise LabError(f"SQL failed: {proc.stderr.strip()}", self.s.labctl_log)
        return proc

    def sql_value(self, statement):
        proc = self.sql(statement, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def running(self, svc):
        """Marked processes alive and the service answering."""
        return bool(self.pids(svc)) and self.answers(svc)

    # ------------------------------------------------------------ start / wait / stop
    def check_port(self, svc):
        """Refuse to start a service whose port a foreign process holds."""
        ports = [svc.port] if svc.port else []
        if svc.name == "rabbitmq":
            ports.append(PORTS["rabbitmq-dist"])
        ours = set(procs.lab_processes(self.s.lab_dir))
        for port in ports:
            owners = procs.port_owners(port)
            foreign = [(c, p) for c, p in owners if p not in ours]
            if foreign:
                comm, pid = foreign[0]
                raise LabError(
                    f"port {HOST}:{port} needed by {svc.name} is in use by pid {pid} ({comm}), "
                    f"which is not part of the lab in {self.s.lab_dir}: stop it or free the port",
                    self.s.labctl_log,
                )

    def start(self, svc):
        self.check_port(svc)
        argv, env = self.argv_env(svc)
        proc = procs.spawn(
            argv, lab_dir=self.s.lab_dir, service=svc.name, log=self.s.log(svc.name), env=env, cwd=self.s.lab_dir
        )
        (self.s.run / f"{svc.name}.pid").write_text(f"{proc.pid}\n")
        self.note(f"started {svc.name} pid {proc.pid}")
        return proc

    def wait(self, started, since=None, timeout=None):
        """Wait until every started service answers; fail fast when one dies.
        `started`: {name: Popen}."""
        pending = dict(started)
        deadline = {n: time.monotonic() + (timeout or START_TIMEOUT[BY_NAME[n].kind]) for n in pending}
        while pending:
            for name in list(pending):
                svc = BY_NAME[name]
                proc = pending[name]
                if self.answers(svc, since):
                    del pending[name]
                    self.say(f"{name} up")
                    continue
                if proc.poll() is not None and not self.pids(svc):
                    raise LabError(f"{name} exited with code {proc.returncode} while starting", self.s.log(name))
                if time.monotonic() > deadline[name]:
                    what = "sent no heartbeat (nova service list)" if svc.kind == "nova" else "did not answer"
                    raise LabError(
                        f"{name} {what} within {START_TIMEOUT[svc.kind]}s (pid {proc.pid})", self.s.log(name)
                    )
            time.sleep(0.25)

    def stop(self, names, grace=15.0):
        for name in names:
            found = procs.stop_processes(self.s.lab_dir, name, grace=grace)
            with contextlib.suppress(FileNotFoundError):
                (self.s.run / f"{name}.pid").unlink()
            if found:
                self.note(f"stopped {name} ({len(found)} processes)")

    def stop_many(self, names, grace=15.0):
        """Stop several services at once (in parallel), by marker."""
        found = {}
        for name in names:
            found.update(procs.lab_processes(self.s.lab_dir, name))
        if not found:
            return
        procs.signal_pids(list(found), 15)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(procs._alive(p) for p in found):
            time.sleep(0.1)
        for name in names:
            left = procs.lab_processes(self.s.lab_dir, name)
            procs.signal_pids(list(left), 9)
            with contextlib.suppress(FileNotFoundError):
                (self.s.run / f"{name}.pid").unlink()
        self.note(f"stopped {', '.join(names)} ({len(found)} processes)")

    # ------------------------------------------------------------ up
    def up(self, do_install=True):
        s = self.s
        with self.lock("up"):
            s.logs.mkdir(parents=True, exist_ok=True)
            self.note(f"===== labctl up (lab {s.lab_dir}, venv {s.venv})")
            self.prerequisites(do_install)
            state = s.read_state()
            fresh = not state.get("initialized") or state.get("key") != s.state_key
            self.check_ports(all_services=fresh)
            if fresh:
                if state.get("key") and state.get("key") != s.state_key:
                    self.say(f"lab state of other versions ({state.get('key')}): re-initialising")
                elif state:
                    self.say("the last initialisation did not finish: starting over")
                self.init()
            else:
                self.start_existing(state)
            self.say(f"lab ready: export OS_CLIENT_CONFIG_FILE={s.clouds_yaml} OS_CLOUD=lab-admin")

    def prerequisites(self, do_install):
        s = self.s
        if os.geteuid() != 0:
            raise LabError("run as root: the lab needs rootful podman and Debian packages", s.labctl_log)
        missing = install.missing_packages()
        if missing:
            if not do_install:
                raise LabError(f"missing prerequisite: Debian packages {' '.join(missing)}", s.labctl_log)
            self.say(f"apt-get install {' '.join(missing)}")
            install.apt_install(missing, s.log("apt-install"))
        if not install.podman_ready(s):
            if not do_install:
                raise LabError(
                    f"missing prerequisite: podman and the image {s.image} (scripts/test-hosts.sh)", s.labctl_log
                )
            self.say("scripts/test-hosts.sh (podman, base image)")
            install.test_hosts(s, s.log("test-hosts"))
        if install.guest_image(s, self.podman):
            self.say(f"built the lab's cloud image {s.guest_image}")
        if not install.venv_ready(s):
            if not do_install:
                raise LabError(f"missing prerequisite: the lab venv {s.venv}", s.labctl_log)
            self.say(f"creating the lab venv {s.venv} (pip install, about a minute)")
            install.create_venv(s, s.log("lab-venv"))
        self.restart_for = install.sync_plugins(s)

    def check_ports(self, all_services):
        """Before anything changes: the ports of services to start must be free."""
        for svc in SERVICES:
            if svc.port and (all_services or not self.pids(svc)):
                self.check_port(svc)

    def start_existing(self, state):
        """Warm start: start what is not running (crash recovery included)."""
        s = self.s
        s.run.mkdir(parents=True, exist_ok=True)
        for stale in s.run.glob("*.pid"):
            if not procs.pid_is_service(procs.read_pid(stale), s.lab_dir, stale.stem):
                stale.unlink()
        # services that answer stay; half-dead ones (alive but not answering) are restarted
        todo = []
        for svc in SERVICES:
            if self.pids(svc) and svc.kind != "nova" and not self.answers(svc):
                self.say(f"{svc.name} runs but does not answer: restarting it")
                self.stop([svc.name])
            if not self.pids(svc) or svc.name in self.restart_for:
                todo.append(svc)
        restart = [n for n in self.restart_for if self.pids(BY_NAME[n])]
        if restart:
            self.say(f"lab plugins changed: restarting {', '.join(restart)}")
            self.stop(restart)
        compute = BY_NAME["nova-compute-podman"]
        if not todo:
            self.reconcile_podman(state, compute_running=True)
            self.say("all services already running")
            self.check_nova(since=None)
            return
        self.say(f"starting {', '.join(svc.name for svc in todo)}")
        infra = {svc.name: self.start(svc) for svc in todo if svc.kind == "infra"}
        self.wait({n: p for n, p in infra.items() if n == "mariadb"})
        self.reconcile_podman(state, compute_running=compute not in todo)
        self.wait({n: p for n, p in infra.items() if n != "mariadb"})
        since = now_utc()
        rest = {svc.name: self.start(svc) for svc in todo if svc.kind != "infra"}
        self.wait(rest, since=since)
        if state.get("image") != s.guest_image:
            self.bootstrap("resources")
            state["image"] = s.guest_image
            s.write_state(state)
        self.check_nova(since=None)

    def check_nova(self, since):
        for svc in SERVICES:
            if svc.kind == "nova" and not self.heartbeat(svc, since):
                raise LabError(f"{svc.name} runs but has not reported to nova in 60s", self.s.log(svc.name))

    def reconcile_podman(self, state, compute_running):
        """Remove podman objects and instance network namespaces of this lab that
        the cloud does not know (a snapshot's sysprep container only while no
        nova-compute could be using it)."""
        known = [
            self.sql_value("SELECT uuid FROM nova.instances WHERE deleted=0"),
            self.sql_value("SELECT id FROM neutron.networks"),
            self.sql_value("SELECT id FROM glance.images WHERE deleted=0"),
        ]
        if None in known:  # never guess: without the databases nothing is an orphan
            self.note("reconcile skipped: the databases did not answer")
            return
        instances, networks, images = (set(rows.split()) for rows in known)
        containers, nets, imgs = self.podman.orphans(state.get("cloud_id"), instances, networks, images)
        if compute_running:
            sysprep = {c["name"] for c in self.podman.containers() if c["labels"].get(LABEL_ROLE) == "sysprep"}
            containers = [c for c in containers if c not in sysprep]
        namespaces = [
            name
            for name in labnet.namespaces()
            if name.startswith(labnet.VM_NS_PREFIX) and name.removeprefix(labnet.VM_NS_PREFIX) not in instances
        ]
        if containers or nets or imgs or namespaces:
            self.say(
                f"removing leftovers: {len(containers)} containers, {len(nets)} networks, {len(imgs)} images,"
                f" {len(namespaces)} instance namespaces"
            )
            self.podman.remove_containers(containers)
            self.podman.remove_networks(nets)
            self.podman.remove_images(imgs)
            for name in namespaces:
                labnet.delete_ns(name)

    # ------------------------------------------------------------ init
    def init(self):
        s = self.s
        self.say("initialising a new cloud")
        self.stop_many([svc.name for svc in reversed(SERVICES)])
        self.podman.purge()
        labnet.purge()
        for path in (s.etc, s.data, s.run, s.clouds_yaml, s.state_file):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        for old in s.logs.glob("*.log"):
            if old.name not in ("labctl.log", "lab-venv.log", "apt-install.log", "test-hosts.log"):
                old.unlink()
        clash = labnet.external_cidr_clash(s.public_cidr, NEEDED_HOSTS)
        if clash:
            raise LabError(
                f"the external network {s.public_cidr} would shadow {clash}, which this machine needs:"
                " set MONOSCAPE_LAB_PUBLIC_CIDR to a free /24",
                s.labctl_log,
            )
        state = {
            "key": s.state_key,
            "cloud_id": secrets.token_hex(4),
            "image": s.guest_image,
            "public_cidr": s.public_cidr,
            "initialized": False,
        }
        for sub in (s.run, s.logs / "rabbitmq", s.data / "rabbitmq" / "home", s.data / "rabbitmq" / "mnesia"):
            sub.mkdir(parents=True, exist_ok=True)
        for sub in ("glance/images", "glance/staging", "glance/tasks", "glance/locks", "nova/locks", "neutron/locks"):
            (s.data / sub).mkdir(parents=True, exist_ok=True)
        for host in (PODMAN_HOST, FAKE_HOST):
            (s.data / host / "instances").mkdir(parents=True, exist_ok=True)
        pw = s.secrets(create=True)
        self.write_configs(pw, state["cloud_id"])
        s.write_state(state)
        # infrastructure
        self.mariadb_install_db()
        infra = {svc.name: self.start(svc) for svc in SERVICES if svc.kind == "infra"}
        self.wait({"mariadb": infra["mariadb"]})
        self.databases()
        self.keystone_bootstrap(pw)
        self.wait({n: p for n, p in infra.items() if n != "mariadb"})
        since = now_utc()
        started = {svc.name: self.start(svc) for svc in SERVICES if svc.kind in ("api", "agent")}
        self.wait({"keystone": started["keystone"]})
        self.bootstrap("identity")
        # nova's services authenticate as the nova user at start (placement client)
        started.update({svc.name: self.start(svc) for svc in SERVICES if svc.kind == "nova"})
        resources = self.bootstrap("resources", background=True)  # waits for the computes itself
        self.wait({n: p for n, p in started.items() if n != "keystone"}, since=since)
        self.wait_cell_mapping()
        self.bootstrap_done("resources", resources)
        self.write_clouds_yaml(pw)
        state["initialized"] = True
        state["created"] = time.strftime("%F %T")
        s.write_state(state)

    def write_configs(self, pw, cloud_id):
        s = self.s
        venv_etc = s.venv / "etc"
        for rel, content in configs.render(s, pw, venv_etc, cloud_id).items():
            path = s.etc / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, tuple):
                shutil.copyfile(content[0], path)
            else:
                path.write_text(content)
            path.chmod(0o600)
        (s.etc / "rabbitmq" / "rabbitmq-env.conf").write_text("")
        # fernet keys for tokens and for credentials (EC2): keystone's repository format
        for repo in ("fernet-keys", "credential-keys"):
            d = s.etc / "keystone" / repo
            d.mkdir(parents=True, mode=0o700)
            for index in ("0", "1"):
                fd = os.open(d / index, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(base64.urlsafe_b64encode(os.urandom(32)).decode())

    def write_clouds_yaml(self, pw):
        path = self.s.clouds_yaml
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(configs.clouds_yaml(pw))
        path.chmod(0o600)

    def mariadb_install_db(self):
        s = self.s
        log = s.log("mariadb-install-db")
        with open(log, "ab") as out:
            rc = subprocess.run(
                [
                    "/usr/bin/mariadb-install-db",
                    f"--defaults-file={s.etc / 'mariadb.cnf'}",
                    "--auth-root-authentication-method=socket",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        if rc:
            raise LabError("mariadb-install-db failed", log)

    # ------------------------------------------------------------ databases
    def schema_key(self):
        mariadb = subprocess.run(
            ["/usr/sbin/mariadbd", "--version"], capture_output=True, text=True, check=False
        ).stdout
        material = "|".join([self.s.venv_key, SCHEMA_VERSION, mariadb.strip(), configs.db_url("x"), RABBIT_URL])
        return hashlib.sha256(material.encode()).hexdigest()[:12]

    def databases(self):
        s = self.s
        user = f"'{configs.DB_USER}'@'{HOST}'"
        self.sql(
            f"CREATE USER {user} IDENTIFIED BY '{configs.DB_PASSWORD}'; GRANT ALL PRIVILEGES ON *.* TO {user}; "
            + " ".join(f"CREATE DATABASE {db};" for db in DATABASES)
        )
        dump = s.cache / f"lab-db-{self.schema_key()}.sql.gz"
        if dump.exists():
            with gzip.open(dump, "rb") as f:
                proc = subprocess.run(
                    ["/usr/bin/mariadb", f"--defaults-file={s.etc / 'mariadb.cnf'}"],
                    input=f.read(),
                    capture_output=True,
                    check=False,
                )
            if proc.returncode == 0:
                self.say(f"database schemas restored from {dump.name}")
                return
            self.say(f"restoring {dump.name} failed ({proc.stderr.decode().strip()[:200]}): running migrations")
            dump.unlink()
            self.sql("; ".join(f"DROP DATABASE {db}; CREATE DATABASE {db}" for db in DATABASES))
        self.migrate()
        tmp = dump.with_suffix(".tmp")
        with gzip.open(tmp, "wb") as out:
            proc = subprocess.run(
                [
                    "/usr/bin/mariadb-dump",
                    f"--defaults-file={s.etc / 'mariadb.cnf'}",
                    "--skip-dump-date",
                    "--single-transaction",
                    "--databases",
                    *DATABASES,
                ],
                capture_output=True,
                check=False,
            )
            out.write(proc.stdout)
        if proc.returncode == 0:
            tmp.replace(dump)
            self.say(f"database schemas cached as {dump}")
        else:
            tmp.unlink()

    def migrate(self):
        """Schema migrations in two parallel lanes (two cores)."""
        s = self.s
        v = s.venv_bin
        nova = [v("nova-manage"), "--config-file", s.etc / "nova" / "nova.conf"]
        lanes = {
            "dbsync-lane1": [
                [v("keystone-manage"), "--config-file", s.etc / "keystone" / "keystone.conf", "db_sync"],
                [v("glance-manage"), "--config-file", s.etc / "glance" / "glance-api.conf", "db_sync"],
                [v("placement-manage"), "--config-file", s.etc / "placement" / "placement.conf", "db", "sync"],
            ],
            "dbsync-lane2": [
                [*nova, "api_db", "sync"],
                [*nova, "cell_v2", "map_cell0", "--database_connection", configs.db_url("nova_cell0")],
                [*nova, "cell_v2", "create_cell", "--name", "cell1", "--verbose"],
                [*nova, "db", "sync"],
                [
                    v("neutron-db-manage"),
                    "--config-file",
                    s.etc / "neutron" / "neutron.conf",
                    "--config-file",
                    s.etc / "neutron" / "plugins" / "ml2" / "ml2_conf.ini",
                    "upgrade",
                    "heads",
                ],
            ],
        }
        self.say("running database migrations (first time for these versions, about a minute)")
        failed = []

        def lane(name, cmds):
            with open(s.log(name), "ab") as out:
                for cmd in cmds:
                    out.write(f"\n===== {' '.join(map(str, cmd))}\n".encode())
                    out.flush()
                    argv = [str(a) for a in cmd]
                    if subprocess.run(
                        argv, stdout=out, stderr=subprocess.STDOUT, env=self.base_env(), check=False
                    ).returncode:
                        failed.append(name)
                        return

        threads = [threading.Thread(target=lane, args=item) for item in lanes.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed:
            raise LabError("database migrations failed", s.log(failed[0]))

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
        with open(log, "ab") as out:
            rc = subprocess.run(
                [str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT, env=self.base_env(), check=False
            ).returncode
        if rc:
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
                [str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT, env=self.base_env(), cwd=s.lab_dir
            )
        if background:
            return proc
        return self.bootstrap_done(what, proc)

    def read_public_cidr(self):
        return self.s.read_state().get("public_cidr") or self.s.public_cidr

    def bootstrap_done(self, what, proc):
        if proc.wait():
            raise LabError(f"bootstrapping the cloud's {what} failed", self.s.log("bootstrap"))
        self.say(f"{what} bootstrapped")

    def wait_cell_mapping(self, timeout=120):
        """The scheduler maps new compute hosts to cell1 (periodic task); if it
        has not after 15 s, labctl runs `nova-manage cell_v2 discover_hosts`."""
        s = self.s
        started = time.monotonic()
        hosts = f"'{PODMAN_HOST}','{FAKE_HOST}'"
        discovered = False
        while time.monotonic() - started < timeout:
            if self.sql_value(f"SELECT COUNT(*) FROM nova_api.host_mappings WHERE host IN ({hosts})") == "2":  # noqa: S608 - constants
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
                with open(s.log("nova-manage"), "ab") as out:
                    subprocess.run(
                        [str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT, env=self.base_env(), check=False
                    )
                continue
            time.sleep(0.5)
        raise LabError("compute hosts were not mapped to cell1", s.log("nova-manage"))

    # ------------------------------------------------------------ down / status
    def down(self, purge=False):
        s = self.s
        with self.lock("down"):
            if not s.lab_dir.exists():
                return
            self.note("===== labctl down" + (" --purge" if purge else ""))
            # nova and the APIs together: the computes stop before their containers do
            self.stop_many([svc.name for svc in reversed(SERVICES) if svc.kind != "infra"])
            instances = [c["name"] for c in self.podman.containers() if c["state"] == "running"]
            if instances and not purge:
                self.say(f"stopping {len(instances)} instance containers (they start again with the lab)")
                self.podman.stop_containers(instances)
            self.stop(["memcached", "rabbitmq"], grace=20)
            self.stop(["mariadb"], grace=60)
            left = procs.lab_processes(s.lab_dir)
            if left:
                raise LabError(f"lab processes still running after stop: {sorted(left)}", s.labctl_log)
            if purge:
                self.podman.purge()
                labnet.purge()
                for path in (s.etc, s.data, s.run, s.clouds_yaml, s.state_file):
                    if path.is_dir():
                        shutil.rmtree(path)
                    elif path.exists():
                        path.unlink()
                self.say(f"lab stopped and purged (logs kept in {s.logs})")
            else:
                self.say("lab stopped")

    def status(self):
        """[(service, pids, answers)] and whether the whole lab is up."""
        rows = []
        for svc in SERVICES:
            pids = sorted(self.pids(svc))
            ok = bool(pids) and self.answers(svc)
            rows.append((svc, pids, ok))
        return rows
