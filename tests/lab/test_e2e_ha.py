"""End to end on the lab cloud: a highly available load balancer
(monoscape_controller_count: 2, docs/runbooks/ha-load-balancer.md), through the
runbooks' own commands. site.yml boots two controllers and gives them a virtual
IP (a Neutron port of its own, allowed on both controllers' ports, its floating IP
the load balancer's public address); exactly one controller holds it; a second
run changes nothing; both controllers' HAProxy run the same backend servers, all
UP (their dashboards agree); a rolling update under load reaches both
controllers' HAProxy (each serves the new release) with no failed request, and
status.yml shows the apps at the virtual IP's address; killing the holder
(lab_helpers.crash_instance: its container SIGKILLed, no goodbye advert, and its
links down as a dead VM's) under load moves the address to the
other within 3 s, measured as the longest time without a successful answer; the
errors in between are counted and printed. Teardown leaves nothing (the virtual
IP's port and its floating IP included).

The numbers go to build/logs/e2e-ha.json."""

import itertools
import json
import re
import threading
import time
import urllib.error

import pytest
from e2e_helpers import (
    LOGS,
    ROOT,
    TIMINGS,
    Deployment,
    RequestStream,
    connect,
    floating_ip,
    get,
    leftovers,
    recap,
    runbook,
    servers,
    tail,
)
from lab_helpers import crash_instance, instance_exec, wait_until

FAILOVER_LIMIT = 3.0  # seconds without a successful answer when the holder dies (issue #17)
RESULTS = {}


def record(**values):
    RESULTS.update(values)
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "e2e-ha.json").write_text(json.dumps(RESULTS, indent=2) + "\n")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, lab_clouds_yaml):
    """Two controllers, inventory/lab's two nodes (a rolling update keeps one serving).
    Torn down at the end even when a test before test_teardown_leaves_nothing failed."""
    found = Deployment(
        tmp_path_factory.mktemp("e2e-ha"),
        lab_clouds_yaml,
        prefix="e2eha",
        monoscape_controller_count=2,
    )
    yield found
    if not getattr(found, "torn_down", False):
        found.run("ha-teardown-after-failure", runbook("teardown"))


@pytest.fixture(scope="module")
def admin(lab_clouds_yaml, lab_admin_cloud):
    conn = connect(lab_clouds_yaml, lab_admin_cloud)
    yield conn
    conn.close()


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


def test_site_builds_two_controllers_sharing_a_virtual_ip(deployment, admin):
    rc, output, seconds = deployment.run("ha-site-first", runbook("site"))
    assert rc == 0, tail(output, 80)
    controllers = servers(admin, deployment.name, "controller")
    assert [s.name for s in controllers] == [f"{deployment.name}-controller", f"{deployment.name}-controller-2"]
    private, public = vip(admin, deployment)
    port = vip_port(admin, deployment)
    assert port.device_id == "", "the virtual IP's port is no server's"
    for server in controllers:
        (own,) = list(admin.network.ports(device_id=server.id))
        assert [p["ip_address"] for p in own.allowed_address_pairs] == [private], own.allowed_address_pairs
    # exactly one controller holds the address
    assert wait_until(lambda: len(holders(controllers, private)) == 1, 30) is not None
    status, body = get(f"http://{public}/demo/hello/")
    assert status == 200
    assert "version: 1.0.0" in body
    # each controller's own HAProxy serves the app (membership applied to both), at its own floating IP
    for server in controllers:
        status, body = get(f"http://{floating_ip(admin.compute.get_server(server.id))}/demo/hello/")
        assert status == 200 and "version: 1.0.0" in body, server.name
    first, second = consistent(admin, deployment, "1.0.0")
    assert first == second and len(first[0]) == 2 and set(first[0].values()) == {"UP"}, (first, second)
    record(site_first_s=round(seconds, 1))
    print(f"first site.yml with two controllers: {seconds:.0f} s")


def test_second_site_run_changes_nothing(deployment):
    rc, output, seconds = deployment.run("ha-site-again", runbook("site"))
    assert rc == 0, tail(output, 80)
    changed = {host: counts[1] for host, counts in recap(output).items() if counts[1]}
    assert changed == {}, f"a second site.yml changed something: {changed}\n{tail(output, 80)}"
    first = TIMINGS.get("ha-site-first")
    record(site_again_s=round(seconds, 1))
    if first:
        print(f"no-op site.yml with two controllers: {seconds:.0f} s = {100 * seconds / first:.0f} % of the first")


def test_a_rolling_update_reaches_both_load_balancers(deployment, admin):
    _, public = vip(admin, deployment)
    package = ROOT / "build" / "packages" / "hello-2.0.0.zip"
    with RequestStream(f"http://{public}/demo/hello/") as stream:
        rc, output, _ = deployment.run(
            "ha-deploy-2.0.0", runbook("deploy"), TENANT="demo", APP="hello", VERSION="2.0.0", PACKAGE=str(package)
        )
    assert rc == 0, tail(output, 80)
    assert stream.failures == [], stream.failures[:10]
    assert stream.ok > 0
    for server in servers(admin, deployment.name, "controller"):
        status, body = get(f"http://{floating_ip(admin.compute.get_server(server.id))}/demo/hello/")
        assert status == 200 and "version: 2.0.0" in body, f"{server.name} does not serve 2.0.0: {body[:200]}"
    # the dashboards' app list comes from status.yml (HAProxy's backends are live); its
    # app URLs are on the virtual IP's floating address
    rc, output, _ = deployment.run("ha-status", runbook("status"))
    assert rc == 0, tail(output, 80)
    assert re.search(rf"https?://{re.escape(public)}(:\d+)?/demo/hello/", output), tail(output, 40)
    # printed once, with each controller's live backends, the dashboard at the load balancer's address
    assert output.count("EC2 credentials verified") == 1, tail(output, 60)
    for server in servers(admin, deployment.name, "controller"):
        assert re.search(rf"Backends on {re.escape(server.name)}\n", output), tail(output, 60)
    assert f"Dashboard: http://{public}:8080/ (the load balancer's address" in output, tail(output, 20)
    first, second = consistent(admin, deployment, "2.0.0")
    assert first == second and len(first[0]) == 2 and set(first[0].values()) == {"UP"}, (first, second)
    record(rolling_update_requests=stream.ok, rolling_update_failed=len(stream.failures))


def test_killing_the_active_controller_moves_the_address_within_3_s(deployment, admin):
    private, public = vip(admin, deployment)
    controllers = servers(admin, deployment.name, "controller")
    (holder,) = holders(controllers, private)
    (other,) = [s for s in controllers if s.id != holder.id]
    with Timeline(f"http://{public}/demo/hello/") as timeline:
        time.sleep(5)
        killed_at = time.monotonic()
        crash_instance(holder.id)
        moved = wait_until(lambda: [s.id for s in holders([other], private)] == [other.id], 30)
        time.sleep(10)
    gap = timeline.longest_gap(killed_at)
    after = [e for e in timeline.events if e[0] >= killed_at]
    failures = timeline.failures()
    record(
        failover_requests=len(after),
        failover_failed=sum(failures.values()),
        failover_failures_by_kind=failures,
        failover_longest_gap_s=round(gap, 2),
        failover_address_moved_s=round(moved, 2) if moved is not None else None,
    )
    print(
        f"holder {holder.name} killed: the address on {other.name} after {moved} s, longest time without"
        f" a successful answer {gap:.2f} s; {len(after)} requests after the kill, failed: {failures}"
    )
    assert moved is not None, f"the virtual IP did not move to {other.name}"
    assert gap <= FAILOVER_LIMIT, f"no successful answer for {gap:.2f} s (limit {FAILOVER_LIMIT} s): {failures}"
    # and then every request succeeds: the survivor alone answers for the address
    settled = killed_at + moved + 2
    late = [what for start, _, ok, what in timeline.events if start >= settled and not ok]
    assert late == [], f"{len(late)} requests failed from 2 s after the move on: {late[:5]}"
    # and it keeps answering from the survivor
    status, body = get(f"http://{public}/demo/hello/")
    assert status == 200 and "version: 2.0.0" in body


def test_teardown_leaves_nothing(deployment, admin):
    rc, output, _ = deployment.run("ha-teardown", runbook("teardown"))
    assert rc == 0, tail(output, 80)
    deployment.torn_down = True
    assert "nothing of deployment" in output
    assert leftovers(admin, deployment.name) == [], "teardown left something of the deployment"
