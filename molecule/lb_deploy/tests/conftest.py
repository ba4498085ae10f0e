"""Shared by the lb_deploy verify tests: the scenario's inputs (group_vars), the
SSH inventory converge.yml wrote, the runbook's commands, a load generator
and a fingerprint of what a deployment may change on a host."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import subprocess
import threading
import time
import uuid
from collections import Counter
from http.client import HTTPConnection

import pytest
import yaml

SCENARIO = pathlib.Path(__file__).resolve().parent.parent
ROOT = SCENARIO.parent.parent
VARS = yaml.safe_load((SCENARIO / "group_vars" / "all.yml").read_text())
RUNBOOK = ROOT / "docs" / "runbooks" / "deploy-app.md"
# the monoscape_controller group of molecule.yml (one host here): every load balancer
# must run the same backends; requests go through the first
CONTROLLERS = [
    p["name"]
    for p in yaml.safe_load((SCENARIO / "molecule.yml").read_text())["platforms"]
    if "monoscape_controller" in p.get("groups", [])
]
CONTROLLER = CONTROLLERS[0]
NODES = ["monoscape-lb-deploy-node1", "monoscape-lb-deploy-node2"]
TENANT, APP = VARS["lb_deploy_tenant"], VARS["lb_deploy_app"]
PREFIX = f"/{TENANT}/{APP}/"
BACKEND = f"app.{TENANT}.{APP}"
LOGS = ROOT / "build" / "logs"


def package(version: str) -> str:
    return f"{VARS['lb_deploy_packages']}/hello-{version}.zip"


def inventory() -> str:
    path = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ssh-inventory.yml"
    assert path.is_file(), f"{path} is missing: converge.yml writes it"
    return str(path)


def runbook_commands() -> dict[str, str]:
    """`<!-- test: NAME -->` followed by a ```sh block in the runbook."""
    text = RUNBOOK.read_text()
    found = dict(re.findall(r"<!-- test: (\w+) -->\s*```sh\n(.*?)```", text, re.S))
    assert {"deploy", "rollback", "undeploy"} <= set(found), f"runbook markers missing: {sorted(found)}"
    return found


def run_runbook(name: str, log: str, **variables) -> subprocess.CompletedProcess:
    """Run the runbook's command NAME from the repository root, with its shell
    variables (INVENTORY, TENANT, APP, VERSION, PACKAGE) set; output to build/logs/LOG."""
    script = runbook_commands()[name]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(
        INVENTORY=inventory(),
        TENANT=TENANT,
        APP=APP,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}",
    )
    env.update({k: str(v) for k, v in variables.items()})
    LOGS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    (LOGS / f"lb-deploy-{log}.log").write_text(
        f"$ {script}\n# {variables}\n# rc={proc.returncode} in {time.monotonic() - started:.1f} s\n"
        + proc.stdout
        + proc.stderr
    )
    proc.elapsed = time.monotonic() - started
    return proc


def podman(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc.stdout


def sh(host: str, script: str) -> str:
    return podman("exec", host, "sh", "-c", script)


def address(host: str) -> str:
    return podman("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", host).strip()


def lb_url(path: str = PREFIX) -> str:
    return f"http://{address(CONTROLLER)}:{VARS['lb_deploy_http_port']}{path}"


def runtime(command: str, controller: str = CONTROLLER) -> str:
    """A Runtime API command on a load balancer (the first by default)."""
    return sh(controller, f"echo '{command}' | socat stdio /run/haproxy/admin.sock")


def backend_servers(controller: str = CONTROLLER) -> dict[str, dict]:
    """show servers state of the app's backend on a load balancer: name -> {addr, port, admin, op, weight}."""
    out = runtime(f"show servers state {BACKEND}", controller)
    rows = [r for r in out.splitlines() if r.strip()]
    header = next(r for r in rows if r.startswith("# "))[2:].split()
    result = {}
    for row in rows[rows.index("# " + " ".join(header)) + 1 :]:
        values = dict(zip(header, row.split(), strict=False))
        result[values["srv_name"]] = values
    return result


# what a deployment may change on a host: files, units, load-balancer state
FINGERPRINT = r"""
for d in /srv/monoscape /etc/monoscape /etc/haproxy /etc/nginx /etc/systemd/system; do
  [ -e "$d" ] && find "$d" -xdev \( -type f -o -type l -o -type d \) -printf '%p %y %s %T@ %l\n'
done | sort
systemctl list-units --all --no-legend --plain 'monoscape-app@*' 'haproxy*' 'nginx*' | awk '{print $1, $3, $4}'
if [ -S /run/haproxy/admin.sock ]; then
  echo 'show servers state' | socat stdio /run/haproxy/admin.sock | awk '{print $2, $4, $5, $6, $7, $8, $19}'
  echo 'show backend' | socat stdio /run/haproxy/admin.sock
fi
"""


def fingerprint(host: str) -> str:
    return sh(host, FINGERPRINT)


class Stream:
    """A steady stream of GET <prefix>?q=<nonce> through the load balancer from
    several threads (keep-alive connections); every answer must be 200 with
    sha256(nonce) in it. Counts answers per version and host, and times every
    request (latency percentiles, the slowest)."""

    def __init__(self, threads: int = 4, pause: float = 0.02, limit: int = 0, path: str = PREFIX, target=None):
        self.host, self.port = target or (address(CONTROLLER), VARS["lb_deploy_http_port"])
        self.path = path
        self.limit = limit  # stop after this many requests (0: until the with block ends)
        self.threads = threads
        self.pause = pause  # per thread, between requests: a steady stream, not a benchmark
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[str] = []
        self.versions: Counter = Counter()
        self.hosts: Counter = Counter()
        self.first_seen: dict[str, float] = {}
        self.latencies: list[float] = []
        self.workers = [threading.Thread(target=self._work, daemon=True) for _ in range(threads)]
        self.started = 0.0
        self.elapsed = 0.0

    def __enter__(self):
        self.started = time.monotonic()
        for worker in self.workers:
            worker.start()
        return self

    def wait(self, timeout: float) -> None:
        """Until the workers have sent `limit` requests, or timeout seconds."""
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def __exit__(self, *exc):
        self.stop_event.set()
        for worker in self.workers:
            worker.join(timeout=30)
        self.elapsed = time.monotonic() - self.started
        return False

    @property
    def total(self) -> int:
        return self.ok + len(self.failures)

    def percentile(self, share: float) -> float:
        """Latency (seconds) that this share of the requests did not exceed (nearest rank)."""
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[max(0, min(len(ordered) - 1, int(share * len(ordered) + 0.999999) - 1))]

    def summary(self) -> str:
        slowest = sorted(self.latencies)[-3:]
        return (
            f"{self.total} requests in {self.elapsed:.1f} s ({self.total / max(self.elapsed, 0.001):.0f}/s): "
            f"{self.ok} ok, {len(self.failures)} failed; versions {dict(self.versions)}; hosts {dict(self.hosts)}; "
            f"latency p50 {self.percentile(0.5) * 1000:.0f} ms, p99 {self.percentile(0.99) * 1000:.0f} ms, "
            f"slowest {', '.join(f'{x * 1000:.0f}' for x in reversed(slowest))} ms"
            + (f"; first failures: {self.failures[:5]}" if self.failures else "")
        )

    def _work(self):
        conn = None
        while not self.stop_event.is_set():
            if self.limit and self.total >= self.limit:
                break
            nonce = uuid.uuid4().hex
            sent = time.monotonic()
            try:
                if conn is None:
                    conn = HTTPConnection(self.host, self.port, timeout=30)
                conn.request("GET", f"{self.path}?q={nonce}")
                resp = conn.getresponse()
                body = resp.read().decode(errors="replace")
                with self.lock:
                    self.latencies.append(time.monotonic() - sent)
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except OSError as exc:
                self._fail(f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
                continue
            fields = dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
            expected = hashlib.sha256(nonce.encode()).hexdigest()
            if resp.status != 200 or fields.get("sha256(q)") != expected:
                self._fail(f"{resp.status} {body[:120]!r}")
                continue
            with self.lock:
                self.ok += 1
                version = fields.get("version", "?")
                self.versions[version] += 1
                self.hosts[fields.get("host", "?")] += 1
                self.first_seen.setdefault(version, time.monotonic() - self.started)
            self.stop_event.wait(self.pause)
        if conn is not None:
            conn.close()

    def _fail(self, what: str):
        with self.lock:
            self.failures.append(what)


def fetch(path: str = PREFIX) -> tuple[int, str, dict]:
    """GET path on the load balancer (no redirect followed): status, body, headers."""
    conn = HTTPConnection(address(CONTROLLER), VARS["lb_deploy_http_port"], timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace"), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def get(path: str = PREFIX) -> tuple[int, str]:
    status, body, _ = fetch(path)
    return status, body


def served_versions(requests: int = 20, within: float = 15.0) -> Counter:
    """(version, host) of `requests` answers, and of more until every node has answered
    (at most `within` seconds): a server back in service takes its share gradually
    (load_balancer_slowstart)."""
    seen: Counter = Counter()
    deadline = time.monotonic() + within
    while sum(seen.values()) < requests or ({h for _, h in seen} != set(NODES) and time.monotonic() < deadline):
        status, body = get(f"{PREFIX}?q=x")
        assert status == 200, body
        fields = dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
        seen[(fields["version"], fields["host"])] += 1
        if sum(seen.values()) >= requests:
            time.sleep(0.1)
    return seen


def app_record(node: str) -> dict:
    return json.loads(sh(node, f"cat /srv/monoscape/apps/{TENANT}/{APP}/app.json"))


@pytest.fixture(scope="session")
def vars_():
    return VARS
