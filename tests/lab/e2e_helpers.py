"""The end-to-end tests' view of a deployment (tests/lab/test_e2e*.py): a deployment
of its own on the lab (inventory, state folder, unique name) driven through the
runbooks' own commands, what of it exists in the cloud (seen by the admin), and a
request stream through its load balancer. Each step's output is in
build/logs/e2e-<step>.log and its wall time in build/logs/e2e-timings.json."""

import http.cookiejar
import itertools
import json
import os
import pathlib
import re
import secrets
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import openstack
import openstack.config
import yaml
from lab_helpers import instance_exec, wait_until

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
LOGS = ROOT / "build" / "logs"
RUNBOOKS = ROOT / "docs" / "runbooks"
PACKAGE = ROOT / "build" / "packages" / "hello-1.0.0.zip"
TIMINGS = {}
HA_RESULTS = {}
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def connect(clouds_yaml, cloud):
    config = openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


def connect_dict(cloud):
    """A connection from a clouds.yaml entry given as a dictionary."""
    return openstack.connect(**cloud)


def runbook(name):
    """The ```sh block after `<!-- test: NAME -->` in docs/runbooks/*.md."""
    for path in sorted(RUNBOOKS.glob("*.md")):
        found = re.search(rf"<!-- test: {name} -->\s*```sh\n(.*?)```", path.read_text(), re.S)
        if found:
            return found.group(1)
    raise AssertionError(f"no runbook command marked `<!-- test: {name} -->` in {RUNBOOKS}")


class Deployment:
    """A deployment of its own on the lab: inventory, state folder, name."""

    def __init__(self, base, lab_clouds_yaml, prefix="e2e", **settings):
        """`settings`: deployment settings over inventory/lab's (group_vars)."""
        self.name = f"{prefix}-{secrets.token_hex(3)}"
        self.state = base / "state"
        self.inventory = base / "inventory"
        self.clouds_yaml = lab_clouds_yaml
        lab = ROOT / "inventory" / "lab"
        (self.inventory / "group_vars" / "all").mkdir(parents=True)
        (self.inventory / "00-localhost.yml").write_text((lab / "00-localhost.yml").read_text())
        # the example inventory as it ships (install.md): only the deployment's name and paths change
        plugin = yaml.safe_load((ROOT / "inventory" / "openstack.example.yml").read_text())
        # the plugin config names the deployment and its state folder's files (SSH settings too)
        plugin.update(
            clouds=[self.name],
            clouds_yaml_path=[str(self.state / "clouds.yaml")],
            deployment=self.name,
            ssh_private_key_file=str(self.state / "id_ed25519"),
            ssh_known_hosts_file=str(self.state / "known_hosts"),
        )
        (self.inventory / "10-openstack.yml").write_text(yaml.safe_dump(plugin))
        settings_all = yaml.safe_load((lab / "group_vars" / "all" / "deployment.yml").read_text())
        settings_all.update(
            monoscape_deployment=self.name,
            monoscape_state_dir=str(self.state),
            monoscape_clouds_yaml=str(lab_clouds_yaml),
            monoscape_apps=[{"tenant": "demo", "app": "hello", "version": "1.0.0", "package": str(PACKAGE)}],
        )
        settings_all.update(settings)
        (self.inventory / "group_vars" / "all" / "deployment.yml").write_text(yaml.safe_dump(settings_all))

    def tenant_cloud(self):
        """The tenant user's clouds.yaml entry, as the tenant step wrote it (read now: a
        credential rotation changes it)."""
        return yaml.safe_load((self.state / "clouds.yaml").read_text())["clouds"][self.name]

    def update(self, **settings):
        """Change deployment settings, as an operator edits the inventory's group_vars."""
        path = self.inventory / "group_vars" / "all" / "deployment.yml"
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **settings}))

    def start(self, step, script, **variables):
        """Start a runbook command with INVENTORY set, in the background (Running)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(
            INVENTORY=str(self.inventory),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            PATH=f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}",
        )
        env.update({k: str(v) for k, v in variables.items()})
        return Running(step, script, variables, env)

    def run(self, step, script, timeout=1800, **variables):
        """Run a runbook command with INVENTORY set; returns (rc, output, seconds)."""
        return self.start(step, script, **variables).finish(timeout)

    def playbook(self, step, playbook, *args, timeout=1800):
        script = 'ansible-playbook -i "$INVENTORY" ' + playbook + "".join(f" {a}" for a in args)
        return self.run(step, script, timeout=timeout)


class Running:
    """A runbook command running (its stdout and stderr in one file): wait for a line
    of its output, then for its end. The whole output goes to build/logs/e2e-<step>.log
    and the wall time to build/logs/e2e-timings.json."""

    def __init__(self, step, script, variables, env):
        LOGS.mkdir(parents=True, exist_ok=True)
        self.step, self.script, self.variables = step, script, variables
        self.log = LOGS / f"e2e-{step}.log"
        self.header = f"$ {script}\n# {variables}\n"
        self.log.write_text(self.header)
        self.started = time.monotonic()
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def output(self):
        return self.log.read_text(errors="replace")[len(self.header) :]

    def wait_for(self, text, timeout):
        """Until the output has `text` (the run must still be going then)."""
        waited = wait_until(lambda: text in self.output() or self.proc.poll() is not None, timeout)
        assert waited is not None and text in self.output(), f"{self.step}: no {text!r}:\n{tail(self.output())}"

    def finish(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        elapsed = time.monotonic() - self.started
        output = self.output()
        with self.log.open("a") as out:
            out.write(f"# rc={self.proc.returncode} in {elapsed:.1f} s\n")
        TIMINGS[self.step] = round(elapsed, 1)
        (LOGS / "e2e-timings.json").write_text(json.dumps(TIMINGS, indent=2) + "\n")
        return self.proc.returncode, output, elapsed


def recap(output):
    """{host: (ok, changed, unreachable, failed)} of the last PLAY RECAP per host."""
    return {m[0]: tuple(int(x) for x in m[1:]) for m in RECAP.findall(output)}


def tail(output, lines=40):
    return "\n".join(output.splitlines()[-lines:])


def leftovers(admin, name):
    """What of deployment `name` exists in the cloud, seen by the admin."""
    found = []
    project = admin.identity.find_project(name, ignore_missing=True, domain_id="default")
    user = admin.identity.find_user(name, ignore_missing=True, domain_id="default")
    if project:
        found.append(f"project {project.id}")
        found += [f"image {i.name}" for i in admin.image.images(owner=project.id)]
        found += [f"security group {g.name}" for g in admin.network.security_groups() if g.project_id == project.id]
        found += [f"port {p.id}" for p in admin.network.ports(project_id=project.id)]
        found += [f"floating IP {f.floating_ip_address}" for f in admin.network.ips(project_id=project.id)]
        found += [f"router {r.name}" for r in admin.network.routers(project_id=project.id)]
        found += [f"network {n.name}" for n in admin.network.networks(project_id=project.id)]
    if user:
        found.append(f"user {user.id}")
        found += [f"key pair {k.name}" for k in admin.compute.keypairs(user_id=user.id)]
    found += [
        f"server {s.name}"
        for s in admin.compute.servers(all_projects=True)
        if (s.metadata or {}).get("monoscape_deployment") == name or (project and s.project_id == project.id)
    ]
    return found


def servers(admin, name, role=None):
    found = [
        s
        for s in admin.compute.servers(all_projects=True, details=True)
        if (s.metadata or {}).get("monoscape_deployment") == name
        and (role is None or s.metadata.get("monoscape_role") == role)
    ]
    return sorted(found, key=lambda s: s.name)


def fixed_ip(server):
    return next(a["addr"] for net in server.addresses.values() for a in net if a.get("version") == 4)


def floating_ip(server):
    return next(a["addr"] for net in server.addresses.values() for a in net if a.get("OS-EXT-IPS:type") == "floating")


def connects(address, port, timeout=2):
    try:
        socket.create_connection((address, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def get(url, timeout=10, context=None):
    with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310 - the lab's own URL
        return response.status, response.read().decode()


class RequestStream:
    """GET the app through the load balancer in a loop from a thread; counts
    failures (non-200 or connection errors) and the hosts that answered."""

    def __init__(self, url, context=None):
        self.url, self.context = url, context
        self.ok = 0
        self.failures = []
        self.hosts = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            try:
                status, body = get(self.url, timeout=15, context=self.context)
                if status == 200 and "Hello from Monoscape" in body:
                    self.ok += 1
                    self.hosts |= set(re.findall(r"^host: (\S+)$", body, re.M))
                else:
                    self.failures.append(status)
            except (urllib.error.URLError, OSError) as exc:
                self.failures.append(repr(exc))
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)


# --- a highly available load balancer (monoscape_controller_count 2) -----------------
def record_ha(**values):
    """The highly available load balancer's numbers, in build/logs/e2e-ha.json."""
    HA_RESULTS.update(values)
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "e2e-ha.json").write_text(json.dumps(HA_RESULTS, indent=2) + "\n")


def vip_port(admin, deployment):
    (port,) = list(admin.network.ports(name=f"{deployment.name}-lb-vip"))
    return port


def vip(admin, deployment):
    """(fixed address, floating address) of the load balancer's virtual IP."""
    port = vip_port(admin, deployment)
    (fip,) = list(admin.network.ips(port_id=port.id))
    return port.fixed_ips[0]["ip_address"], fip.floating_ip_address


def holders(controllers, address):
    """The controllers whose interfaces have the virtual address."""
    found = []
    for server in controllers:
        shown = instance_exec(server.id, "ip -4 -o addr show")
        if f" {address}/" in shown.stdout:
            found.append(server)
    return found


def backends(server, admin):
    """The controller's dashboard view of its own HAProxy (dashboard.json, live from
    HAProxy's stats socket): {(backend, server): status}, and the apps it lists."""
    address = floating_ip(admin.compute.get_server(server.id))
    document = json.loads(get(f"http://{address}:8080/dashboard.json")[1])
    live = {(b["pxname"], b["svname"]): b["status"] for b in document.get("backends") or []}
    return live, [(a["tenant"], a["app"], a["version"]) for a in document.get("apps") or []]


def consistent(admin, deployment, version, count=2):
    """Both controllers' HAProxy run the same backend servers, `count` of them, all UP,
    and both dashboards list the app at `version` (each membership change reached both).
    Waits up to 60 s for the dashboards' next refresh; returns the two views."""
    controllers = servers(admin, deployment.name, "controller")
    views = []

    def same():
        views[:] = [backends(server, admin) for server in controllers]
        (live, apps), (other_live, other_apps) = views
        return (
            live == other_live
            and len(live) == count
            and set(live.values()) == {"UP"}
            and apps == other_apps == [("demo", "hello", version)]
        )

    wait_until(same, 60, interval=2)
    return views


class Timeline:
    """GET a URL from several threads, each request with a short timeout; every answer
    kept as (start, end, ok, what). The longest time without a successful answer, and
    the failures by kind, are what a user would have seen."""

    def __init__(self, url, workers=4, timeout=1.0):
        self.url, self.workers, self.timeout = url, workers, timeout
        self.events = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(workers)]

    def _loop(self):
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, body = get(self.url, timeout=self.timeout)
                ok, what = status == 200 and "Hello from Monoscape" in body, str(status)
            except (urllib.error.URLError, OSError) as exc:
                ok, what = False, type(getattr(exc, "reason", exc)).__name__
            with self._lock:
                self.events.append((started, time.monotonic(), ok, what))
            time.sleep(0.02)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def longest_gap(self, since):
        """Longest time between successful answers after `since` (their ends)."""
        ends = [since, *sorted(end for _, end, ok, _ in self.events if ok and end >= since)]
        return max((b - a for a, b in itertools.pairwise(ends)), default=float("inf"))

    def failures(self):
        kinds = {}
        for _, _, ok, what in self.events:
            if not ok:
                kinds[what] = kinds.get(what, 0) + 1
        return kinds


class SelfService:
    """An app developer's client of the dashboard's self-service API (its cookies kept):
    what a browser or the `monoscape` CLI sends, from the operator's machine."""

    def __init__(self, address, port=8080):
        self.base = f"http://{address}:{port}"
        self.csrf = ""
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def call(self, method, path, body=None, content_type="application/json", timeout=30):
        """(status, JSON answer) of one request; a refusal is an answer too."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        headers = {"Accept": "application/json", "X-CSRF-Token": self.csrf}
        if data is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)  # noqa: S310 - http:// URL of the lab's own controller
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read() or b"{}")

    def login(self, username, password):
        status, answer = self.call("POST", "/api/login", {"username": username, "password": password})
        self.csrf = answer.get("csrf_token", "")
        return status, answer
