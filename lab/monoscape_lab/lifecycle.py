"""The lab's lifecycle: up (install, initialise a new cloud or start an existing one), down and
status, composed of the other concerns (console, processes, database, bootstrap, podman)."""

import os
import secrets
import shutil
import time

from . import LabError, configfiles, install, labnet, procs
from .podman import LABEL_ROLE
from .processes import now_utc
from .services import BY_NAME, SERVICES
from .settings import FAKE_HOST, NEEDED_HOSTS, PODMAN_HOST


class Lifecycle:
    def __init__(self, settings, *, console, processes, db, bootstrapper, podman):
        self.s = settings
        self.console = console
        self.processes = processes
        self.db = db
        self.bootstrapper = bootstrapper
        self.podman = podman
        self.restart_for = ()  # services whose lab plugins changed (prerequisites)

    def up(self, do_install=True):
        s = self.s
        with self.console.lock("up"):
            s.logs.mkdir(parents=True, exist_ok=True)
            self.console.note(f"===== labctl up (lab {s.lab_dir}, venv {s.venv})")
            self.prerequisites(do_install)
            state = s.read_state()
            fresh = not state.get("initialized") or state.get("key") != s.state_key
            self.processes.check_ports(all_services=fresh)
            if fresh:
                if state.get("key") and state.get("key") != s.state_key:
                    self.console.say(f"lab state of other versions ({state.get('key')}): re-initialising")
                elif state:
                    self.console.say("the last initialisation did not finish: starting over")
                self.init()
            else:
                self.start_existing(state)
            self.console.say(f"lab ready: export OS_CLIENT_CONFIG_FILE={s.clouds_yaml} OS_CLOUD=lab-admin")

    def prerequisites(self, do_install):
        s = self.s
        if os.geteuid() != 0:
            raise LabError("run as root: the lab needs rootful podman and Debian packages", s.labctl_log)
        missing = install.missing_packages()
        if missing:
            if not do_install:
                raise LabError(f"missing prerequisite: Debian packages {' '.join(missing)}", s.labctl_log)
            self.console.say(f"apt-get install {' '.join(missing)}")
            install.apt_install(missing, s.log("apt-install"))
        if not install.podman_ready(s):
            if not do_install:
                raise LabError(
                    f"missing prerequisite: podman and the image {s.image} (scripts/test-hosts.sh)", s.labctl_log
                )
            self.console.say("scripts/test-hosts.sh (podman, base image)")
            install.test_hosts(s, s.log("test-hosts"))
        if install.guest_image(s, self.podman):
            self.console.say(f"built the lab's cloud image {s.guest_image}")
        if not install.venv_ready(s):
            if not do_install:
                raise LabError(f"missing prerequisite: the lab venv {s.venv}", s.labctl_log)
            self.console.say(f"creating the lab venv {s.venv} (pip install, about a minute)")
            install.create_venv(s, s.log("lab-venv"))
        self.restart_for = install.sync_plugins(s)

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
            if self.processes.pids(svc) and svc.kind != "nova" and not self.processes.answers(svc):
                self.console.say(f"{svc.name} runs but does not answer: restarting it")
                self.processes.stop([svc.name])
            if not self.processes.pids(svc) or svc.name in self.restart_for:
                todo.append(svc)
        restart = [n for n in self.restart_for if self.processes.pids(BY_NAME[n])]
        if restart:
            self.console.say(f"lab plugins changed: restarting {', '.join(restart)}")
            self.processes.stop(restart)
        compute = BY_NAME["nova-compute-podman"]
        if not todo:
            self.reconcile_podman(state, compute_running=True)
            self.console.say("all services already running")
            self.processes.check_nova(since=None)
            return
        self.console.say(f"starting {', '.join(svc.name for svc in todo)}")
        infra = {svc.name: self.processes.start(svc) for svc in todo if svc.kind == "infra"}
        self.processes.wait({n: p for n, p in infra.items() if n == "mariadb"})
        self.reconcile_podman(state, compute_running=compute not in todo)
        self.processes.wait({n: p for n, p in infra.items() if n != "mariadb"})
        since = now_utc()
        rest = {svc.name: self.processes.start(svc) for svc in todo if svc.kind != "infra"}
        self.processes.wait(rest, since=since)
        if state.get("image") != s.guest_image:
            self.bootstrapper.bootstrap("resources")
            state["image"] = s.guest_image
            s.write_state(state)
        self.processes.check_nova(since=None)

    def reconcile_podman(self, state, compute_running):
        """Remove podman objects and instance network namespaces of this lab that
        the cloud does not know (a snapshot's sysprep container only while no
        nova-compute could be using it)."""
        known = [
            self.db.sql_value("SELECT uuid FROM nova.instances WHERE deleted=0"),
            self.db.sql_value("SELECT id FROM neutron.networks"),
            self.db.sql_value("SELECT id FROM glance.images WHERE deleted=0"),
        ]
        if None in known:  # never guess: without the databases nothing is an orphan
            self.console.note("reconcile skipped: the databases did not answer")
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
            self.console.say(
                f"removing leftovers: {len(containers)} containers, {len(nets)} networks, {len(imgs)} images,"
                f" {len(namespaces)} instance namespaces"
            )
            self.podman.remove_containers(containers)
            self.podman.remove_networks(nets)
            self.podman.remove_images(imgs)
            for name in namespaces:
                labnet.delete_ns(name)

    def purge(self):
        """Remove the cloud: its instance containers, networks, configuration, data and state
        (the processes are stopped; logs stay)."""
        s = self.s
        self.podman.purge()
        labnet.purge()
        for path in (s.etc, s.data, s.run, s.clouds_yaml, s.state_file):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def init(self):
        s = self.s
        self.console.say("initialising a new cloud")
        self.processes.stop_many([svc.name for svc in reversed(SERVICES)])
        self.purge()
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
        configfiles.write_configs(s, pw, state["cloud_id"])
        s.write_state(state)
        # infrastructure
        self.db.mariadb_install_db()
        infra = {svc.name: self.processes.start(svc) for svc in SERVICES if svc.kind == "infra"}
        self.processes.wait({"mariadb": infra["mariadb"]})
        self.db.databases()
        self.bootstrapper.keystone_bootstrap(pw)
        self.processes.wait({n: p for n, p in infra.items() if n != "mariadb"})
        since = now_utc()
        started = {svc.name: self.processes.start(svc) for svc in SERVICES if svc.kind in ("api", "agent")}
        self.processes.wait({"keystone": started["keystone"]})
        self.bootstrapper.bootstrap("identity")
        # nova's services authenticate as the nova user at start (placement client)
        started.update({svc.name: self.processes.start(svc) for svc in SERVICES if svc.kind == "nova"})
        resources = self.bootstrapper.bootstrap("resources", background=True)  # waits for the computes itself
        self.processes.wait({n: p for n, p in started.items() if n != "keystone"}, since=since)
        self.bootstrapper.wait_cell_mapping()
        self.bootstrapper.bootstrap_done("resources", resources)
        configfiles.write_clouds_yaml(s, pw)
        state["initialized"] = True
        state["created"] = time.strftime("%F %T")
        s.write_state(state)

    def down(self, purge=False):
        s = self.s
        with self.console.lock("down"):
            if not s.lab_dir.exists():
                return
            self.console.note("===== labctl down" + (" --purge" if purge else ""))
            # nova and the APIs together: the computes stop before their containers do
            self.processes.stop_many([svc.name for svc in reversed(SERVICES) if svc.kind != "infra"])
            instances = [c["name"] for c in self.podman.containers() if c["state"] == "running"]
            if instances and not purge:
                self.console.say(f"stopping {len(instances)} instance containers (they start again with the lab)")
                self.podman.stop_containers(instances)
            self.processes.stop(["memcached", "rabbitmq"], grace=20)
            self.processes.stop(["mariadb"], grace=60)
            left = procs.lab_processes(s.lab_dir)
            if left:
                raise LabError(f"lab processes still running after stop: {sorted(left)}", s.labctl_log)
            if purge:
                self.purge()
                self.console.say(f"lab stopped and purged (logs kept in {s.logs})")
            else:
                self.console.say("lab stopped")

    def status(self):
        """[(service, pids, answers)] and whether the whole lab is up."""
        rows = []
        for svc in SERVICES:
            pids = sorted(self.processes.pids(svc))
            ok = bool(pids) and self.processes.answers(svc)
            rows.append((svc, pids, ok))
        return rows
