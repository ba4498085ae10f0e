"""The services' processes: how each is started, whether it runs and answers, starting, waiting
for and stopping them (by marker, procs.py)."""

import contextlib
import datetime
import json
import time

from . import LabError, procs
from .services import AGENT_STATUS_MAX_AGE, BY_NAME, SERVICES, START_TIMEOUT, WSGI_APPS, base_env
from .settings import HOST, LAB_ROOT, PORTS


def now_utc():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)


class Processes:
    def __init__(self, settings, console, db):
        self.s = settings
        self.console = console
        self.db = db  # nova services report their heartbeat in nova.services

    def argv_env(self, svc):
        s = self.s
        env = base_env(self.s)
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
        return self.db.sql_value(f"SELECT COUNT(*) FROM nova.services WHERE {where}") == "1"  # noqa: S608 - constants and lab host names only

    def running(self, svc):
        """Marked processes alive and the service answering."""
        return bool(self.pids(svc)) and self.answers(svc)

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

    def check_ports(self, all_services):
        """Before anything changes: the ports of services to start must be free."""
        for svc in SERVICES:
            if svc.port and (all_services or not self.pids(svc)):
                self.check_port(svc)

    def start(self, svc):
        self.check_port(svc)
        argv, env = self.argv_env(svc)
        proc = procs.spawn(
            argv, lab_dir=self.s.lab_dir, service=svc.name, log=self.s.log(svc.name), env=env, cwd=self.s.lab_dir
        )
        (self.s.run / f"{svc.name}.pid").write_text(f"{proc.pid}\n")
        self.console.note(f"started {svc.name} pid {proc.pid}")
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
                    self.console.say(f"{name} up")
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
                self.console.note(f"stopped {name} ({len(found)} processes)")

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
        self.console.note(f"stopped {', '.join(names)} ({len(found)} processes)")

    def check_nova(self, since):
        for svc in SERVICES:
            if svc.kind == "nova" and not self.heartbeat(svc, since):
                raise LabError(f"{svc.name} runs but has not reported to nova in 60s", self.s.log(svc.name))
