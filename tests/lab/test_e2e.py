"""End to end on the lab cloud, through the runbooks' own commands: bad input
stops site.yml before anything is created; site.yml builds the whole PaaS and
serves the sample app through the load balancer at the controller's floating IP;
app developers sign in to the dashboard's self-service with their OpenStack
credentials (the cloud's Keystone decides: member uploads, reader looks, no role
or a wrong password gets nothing; a hostile package is refused with its rule; the
audit log names the operator's address and holds no password); only the load
balancer is public (the dashboard and SSH answer the operator's address only,
nodes are unreachable from outside, node ports answer the controller only, and
removing that rule cuts it within 5 s); a second run
changes nothing; status; Keystone stopped during a run (named, and the next run
changes nothing); a node whose host key changed stops the run until it is
re-pinned; scale 2 -> 3 (nova-compute killed first: named; the re-run scales out)
-> 2 with the app served throughout; self-healing; credentials rotated; the lab
killed in the middle of a run and recovered; grown to a highly available load
balancer (monoscape_controller_count: 2, docs/runbooks/ha-load-balancer.md): a
second controller and a virtual IP exactly one of them holds, the public address
on it, a second run changes nothing, a rolling update under load reaches both
controllers' HAProxy with no failed request, and killing the holder under load
(lab_helpers.crash_instance) moves the address to the other within 3 s, the
errors in between counted (numbers in build/logs/e2e-ha.json); teardown leaves
nothing behind (no floating IP, router, network, port or virtual IP either). The
project is shared with neighbours (two nodes of another deployment and 50
untagged servers): no run targets, changes or counts them, status lists them
only when asked, and teardown keeps the project while they use it.

The deployment gets its own inventory (a copy of inventory/lab, as the install
runbook tells operators to make) and a unique name, so it never meets another
deployment on the lab. Each step's output is in build/logs/e2e-<step>.log and
its wall time in build/logs/e2e-timings.json.
"""

import contextlib
import functools
import hashlib
import io
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import threading
import time
import zipfile

import openstack
import pytest
import yaml
from browser import browser
from e2e_helpers import (
    PACKAGE,
    ROOT,
    TIMINGS,
    Deployment,
    RequestStream,
    SelfService,
    Timeline,
    connect,
    connect_dict,
    connects,
    consistent,
    fixed_ip,
    floating_ip,
    get,
    holders,
    leftovers,
    recap,
    record_ha,
    runbook,
    servers,
    tail,
    vip,
    vip_port,
)
from lab_helpers import crash_instance, instance_exec, kill_service, labctl, power_cut, wait_until


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, lab_clouds_yaml):
    return Deployment(tmp_path_factory.mktemp("e2e"), lab_clouds_yaml)


@pytest.fixture(scope="module")
def admin(lab_clouds_yaml, lab_admin_cloud):
    conn = connect(lab_clouds_yaml, lab_admin_cloud)
    yield conn
    conn.close()


def controller(admin, name):
    (found,) = [s for s in admin.compute.servers(all_projects=True) if s.name == f"{name}-controller"]
    return admin.compute.get_server(found.id)


def controller_ip(admin, name):
    """The controller's public address: its floating IP."""
    return floating_ip(controller(admin, name))


def app_url(deployment, admin, path="/demo/hello/"):
    """The sample app as its users reach it: HTTPS on the controller's floating IP."""
    return f"https://{controller_ip(admin, deployment.name)}{path}"


def hosts_reached(url, context, count, within=20.0):
    """The nodes that answer `url` (its `host:` line): at least 30 requests, and more
    until `count` nodes have answered or `within` seconds have passed (a node back in
    service gets its share of the traffic gradually: load_balancer_slowstart)."""
    hosts, sent, deadline = set(), 0, time.monotonic() + within
    while sent < 30 or (len(hosts) < count and time.monotonic() < deadline):
        _, body = get(url, context=context)
        hosts |= set(re.findall(r"^host: (\S+)$", body, re.M))
        sent += 1
        if sent >= 30:
            time.sleep(0.1)
    return hosts


def tls(deployment):
    """Trust the deployment's self-signed load-balancer certificate (and nothing else), as
    its operator does: tls/lb-ca.pem in its state folder; the address is checked too."""
    return ssl.create_default_context(cafile=str(deployment.state / "tls" / "lb-ca.pem"))


BAD_INPUTS = [
    ("unknown-cloud", "-e monoscape_admin_cloud=no-such-cloud", "'no-such-cloud' is not defined in clouds.yaml"),
    ("missing-clouds-yaml", "-e monoscape_clouds_yaml=/nonexistent/clouds.yaml", "there is no such file"),
    ("unknown-image", "-e monoscape_base_image=no-such-image", "unknown image 'no-such-image'"),
    ("unknown-flavor", "-e monoscape_flavor=m1.no-such-flavor", "unknown flavor 'm1.no-such-flavor'"),
    ("zero-nodes", "-e monoscape_node_count=0", "monoscape_node_count=0 (a whole number, at least 1)"),
]


@pytest.mark.parametrize(("case", "args", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_stops_before_anything_is_created(deployment, admin, case, args, message):
    rc, output, _ = deployment.playbook(f"bad-{case}", "playbooks/site.yml", args, timeout=300)
    assert rc != 0, tail(output)
    assert message in " ".join(output.split()), tail(output)
    assert leftovers(admin, deployment.name) == []
    assert not deployment.state.exists() or not any(deployment.state.iterdir())


def test_site_builds_the_paas_and_serves_the_app(deployment, admin):
    rc, output, seconds = deployment.run("site-first", runbook("site"))
    assert rc == 0, tail(output, 80)
    assert len(servers(admin, deployment.name, "node")) == 2
    nonce = secrets.token_hex(8)
    status, body = get(app_url(deployment, admin, f"/demo/hello/?q={nonce}"), context=tls(deployment))
    assert status == 200
    assert "version: 1.0.0" in body
    assert f"sha256(q): {hashlib.sha256(nonce.encode()).hexdigest()}" in body
    print(f"first site.yml: {seconds:.0f} s")


def test_dashboard_shows_nodes_apps_and_backends(deployment, admin):
    ip = controller_ip(admin, deployment.name)
    deadline = time.monotonic() + 60
    while True:
        status, body = get(f"http://{ip}:8080/dashboard.json")
        document = json.loads(body)
        if len(document.get("backends") or []) == 2 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert status == 200
    assert document["iaas"]["authenticated"] is True
    assert document["iaas"]["ec2_credentials"] is True
    # verified, not only present: Keystone's /v3/ec2tokens accepted a request signed with the pair
    assert document["iaas"]["ec2_verified"] is True, document["iaas"]
    assert {n["name"] for n in document["nodes"]} >= {f"{deployment.name}-node-1", f"{deployment.name}-node-2"}
    # each node's address and the name of its image (issue #15: the columns were empty)
    image_names = {i["name"] for i in document["images"]}
    assert all(n["address"] and n["image"] in image_names for n in document["nodes"] if n["role"] == "node"), document
    assert [(a["tenant"], a["app"], a["version"]) for a in document["apps"]] == [("demo", "hello", "1.0.0")]
    assert len(document["images"]) == 1
    assert [b["status"] for b in document["backends"]] == ["UP", "UP"], document["backends"]
    _, page = get(f"http://{ip}:8080/")
    assert "IaaS authentication" in page
    assert f"{deployment.name}-node-2" in page


def test_only_the_load_balancer_is_public(deployment, admin, lab_outsider):
    """The operator's view, from outside the cloud: the floating IP answers on 80 and 443
    for anyone; the dashboard and SSH for the operator's address only; no fixed address
    of the deployment answers at all."""
    ip = controller_ip(admin, deployment.name)
    for port in (80, 443, 8080, 22):
        assert connects(ip, port), f"the operator reaches {ip}:{port}"
    assert lab_outsider.connects(ip, 80), "the load balancer is public"
    assert lab_outsider.connects(ip, 443), "the load balancer is public (HTTPS)"
    # plain HTTP still serves the app (no redirect by default): same content as HTTPS
    assert "version: " in get(f"http://{ip}/demo/hello/")[1]
    assert not lab_outsider.connects(ip, 8080), "the dashboard answers the operator CIDR only"
    assert not lab_outsider.connects(ip, 22), "SSH answers the operator CIDR only"
    for server in servers(admin, deployment.name):
        assert not connects(fixed_ip(server), 22, timeout=1), f"{server.name}'s fixed address is reachable"
    for node in servers(admin, deployment.name, "node"):
        floating = [a for net in node.addresses.values() for a in net if a.get("OS-EXT-IPS:type") == "floating"]
        assert floating == [], f"{node.name} has a floating IP"


def hostile_package():
    """A package the rules refuse: an entry that climbs out of the site folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("web.config", "<configuration/>")
        archive.writestr("../../etc/cron.d/evil", "* * * * * root true\n")
    return buffer.getvalue()


def test_an_app_developer_signs_in_and_uploads_a_release_from_the_browser(deployment, admin):
    """Issue #15 in a real browser (Debian's chromium): the sign-in page, a wrong password,
    the apps page, the app's page, an upload of hello-2.0.0.zip. Screenshots of each page are
    kept in build/logs/screenshots/."""
    ip = controller_ip(admin, deployment.name)
    cloud = deployment.tenant_cloud()
    with browser(f"http://{ip}:8080") as page:
        page.go("/apps")
        page.wait_for("Sign in")
        page.screenshot("selfservice-1-login")
        page.fill("username", cloud["auth"]["username"])
        page.fill("password", "not-the-password")
        page.click("Sign in")
        page.wait_for("wrong user name or password")
        page.screenshot("selfservice-2-login-refused")
        page.fill("username", cloud["auth"]["username"])
        page.fill("password", cloud["auth"]["password"])
        page.click("Sign in")
        page.wait_for(f"Signed in as {cloud['auth']['username']}")
        assert "demo hello 1.0.0" in page.text(), page.text()
        page.screenshot("selfservice-3-apps")
        page.click("hello")
        page.wait_for("Upload a release")
        page.fill("version", "2.0.0")
        page.fill("package", str(PACKAGE.with_name("hello-2.0.0.zip")))
        page.click("Upload")
        page.wait_for("2.0.0 uploaded (sha256")
        page.screenshot("selfservice-4-app-uploaded")
        assert "need the controller's job worker" in page.text(), "no action offered that cannot run"


def test_app_developers_sign_in_to_the_dashboard_with_their_openstack_credentials(deployment, admin):
    """Issue #15, the controller's side: the dashboard's self-service asks the cloud's
    Keystone (published to the instances on the external network, as a production cloud's
    identity endpoint is); the roles the token lists on the deployment's project decide."""
    ip = controller_ip(admin, deployment.name)
    cloud = deployment.tenant_cloud()
    user, password = cloud["auth"]["username"], cloud["auth"]["password"]
    project = admin.identity.find_project(cloud["auth"]["project_name"], domain_id="default", ignore_missing=False)
    others, passwords = {}, {name: f"{name}-{secrets.token_hex(8)}" for name in ("reader", "nobody")}
    try:
        for name, secret in passwords.items():
            others[name] = admin.identity.create_user(
                name=f"{deployment.name}-{name}", password=secret, domain_id="default"
            )
        admin.identity.assign_project_role_to_user(
            project, others["reader"], admin.identity.find_role("reader", ignore_missing=False)
        )

        member = SelfService(ip)
        assert member.login(user, "not-" + password)[0] == 401, "a wrong password gets no session"
        status, answer = member.login(user, password)
        assert status == 200 and answer["csrf_token"], answer
        status, session = member.call("GET", "/api/session")
        assert status == 200 and session["user"] == user and "member" in session["roles"], session
        status, listed = member.call("GET", "/api/apps")
        assert status == 200
        assert [(a["tenant"], a["app"], a["version"]) for a in listed["apps"]] == [("demo", "hello", "1.0.0")]

        status, answer = member.call(
            "PUT", "/api/apps/demo/hello/releases/9.9.9", hostile_package(), content_type="application/zip"
        )
        assert status == 422 and answer["error"].startswith("package demo/hello 9.9.9: entry '../"), answer
        # 2.0.0 came from the browser: the same content again is taken as it is; other content
        # under the same version is refused (versions are immutable)
        status, answer = member.call(
            "PUT",
            "/api/apps/demo/hello/releases/2.0.0",
            PACKAGE.with_name("hello-2.0.0.zip").read_bytes(),
            content_type="application/zip",
        )
        assert status == 200 and answer["release"]["version"] == "2.0.0", answer
        status, answer = member.call(
            "PUT", "/api/apps/demo/hello/releases/2.0.0", PACKAGE.read_bytes(), content_type="application/zip"
        )
        assert status == 409 and "give the new package a new version" in answer["error"], answer
        status, releases = member.call("GET", "/api/apps/demo/hello/releases")
        assert [r["version"] for r in releases["releases"]] == ["2.0.0"], releases
        # no job worker on the controller yet: refused, never queued
        status, answer = member.call("POST", "/api/apps/demo/hello/jobs", {"action": "deploy", "version": "2.0.0"})
        assert status == 503 and "no job worker" in answer["error"], answer
        member.csrf = ""
        status, answer = member.call(
            "PUT", "/api/apps/demo/hello/releases/2.0.1", b"PK", content_type="application/zip"
        )
        assert status == 403 and "CSRF" in answer["error"], answer

        reader = SelfService(ip)
        assert reader.login(others["reader"].name, passwords["reader"])[0] == 200
        assert reader.call("GET", "/api/apps")[0] == 200, "a reader may look"
        status, answer = reader.call("POST", "/api/apps/demo/hello/jobs", {"action": "deploy", "version": "2.0.0"})
        assert status == 403, answer
        nobody = SelfService(ip)
        assert nobody.login(others["nobody"].name, passwords["nobody"])[0] == 401, "no role on the project: no session"
        assert nobody.call("GET", "/api/apps")[0] == 401
    finally:
        for found in others.values():
            admin.identity.delete_user(found, ignore_missing=True)

    # the audit log on the controller: each refusal with the operator's address (forwarded by
    # nginx), never a password
    audit = instance_exec(controller(admin, deployment.name).id, "cat /var/log/monoscape-selfservice/audit.log")
    assert audit.returncode == 0, audit.stderr
    records = [json.loads(line) for line in audit.stdout.splitlines()]
    assert {(r["user"], r["action"], r["result"]) for r in records} >= {
        (user, "login", "refused"),
        (user, "login", "ok"),
        (f"{deployment.name}-nobody", "login", "refused"),
    }, records
    assert all(r["client"] == "198.51.100.1" for r in records if r["action"] == "login"), records
    assert password not in audit.stdout and not any(p in audit.stdout for p in passwords.values())


def test_the_monoscape_command_signs_in_lists_and_refuses_a_hostile_package(deployment, admin, tmp_path):
    """Issue #15's command line (bin/monoscape, the project's `monoscape` entry point) against
    the controller: login, apps, and a push of a hostile package refused by its rule with a
    non-zero exit code, nothing kept."""
    ip = controller_ip(admin, deployment.name)
    cloud = deployment.tenant_cloud()
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path), MONOSCAPE_PASSWORD=cloud["auth"]["password"])
    command = [str(ROOT / "bin" / "monoscape")]

    def monoscape(*args):
        return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=120, check=False)

    signed_in = monoscape("login", f"http://{ip}:8080", "--user", cloud["auth"]["username"])
    assert signed_in.returncode == 0, signed_in.stderr
    session = tmp_path / "monoscape" / "session.json"
    assert oct(session.stat().st_mode & 0o777) == "0o600" and cloud["auth"]["password"] not in session.read_text()
    listed = monoscape("apps")
    assert listed.returncode == 0 and "demo" in listed.stdout and "hello" in listed.stdout, listed
    hostile = tmp_path / "hostile.zip"
    hostile.write_bytes(hostile_package())
    pushed = monoscape("push", str(hostile), "--tenant", "demo", "--app", "hello", "--version", "6.6.6")
    assert pushed.returncode != 0 and "'..' component" in pushed.stderr, pushed
    releases = SelfService(ip)
    releases.login(cloud["auth"]["username"], cloud["auth"]["password"])
    status, answer = releases.call("GET", "/api/apps/demo/hello/releases")
    assert status == 200 and "6.6.6" not in [r["version"] for r in answer["releases"]], answer
    assert monoscape("logout").returncode == 0 and not session.exists()


def backends_up(address, count):
    """The dashboard's live view: `count` backend servers, all UP."""
    try:
        document = json.loads(get(f"http://{address}:8080/dashboard.json")[1])
    except (OSError, ValueError):
        return False
    backends = document.get("backends") or []
    return len(backends) == count and all(b["status"] == "UP" for b in backends)


@pytest.fixture(scope="module")
def tenant(deployment):
    """The deployment's tenant user (its clouds.yaml entry, written by the tenant step)."""
    cloud = deployment.tenant_cloud()
    conn = connect_dict(cloud)
    yield conn
    conn.close()


def test_node_ports_answer_the_controller_only(deployment, admin, tenant):
    """From the controller, a node's app port answers; from a third instance of the
    project in the default group, it does not; deleting the controller -> node rule
    cuts it within 5 s, and the tenant step puts it back (it notices the change in the
    cloud although its inputs are the same)."""
    ctl = controller(admin, deployment.name)
    node = servers(admin, deployment.name, "node")[0]
    port = int(re.search(r"\S+-node-\d:(\d+)", deployment.run("status-ports", runbook("status"))[1]).group(1))
    probe = f"timeout 3 bash -c 'exec 3<>/dev/tcp/{fixed_ip(node)}/{port}'"
    assert instance_exec(ctl.id, probe).returncode == 0, "the controller reaches the node's app port"
    third = tenant.compute.create_server(
        name=f"{deployment.name}-intruder",
        image_id=tenant.image.find_image("debian-12").id,
        flavor_id=tenant.compute.find_flavor("m1.tiny").id,
        networks=[{"uuid": tenant.network.find_network(deployment.name).id}],
        security_groups=[{"name": "default"}],
    )
    try:
        third = tenant.compute.wait_for_server(third, status="ACTIVE", failures=["ERROR"], interval=0.5, wait=180)
        assert instance_exec(third.id, probe).returncode != 0, "a default-group instance reaches the node's app port"
        group = tenant.network.find_security_group(f"{deployment.name}-node")
        (rule,) = [
            r
            for r in tenant.network.security_group_rules(security_group_id=group.id)
            if r.port_range_min == 9080 and r.remote_group_id
        ]
        tenant.network.delete_security_group_rule(rule)
        took = wait_until(lambda: instance_exec(ctl.id, probe).returncode != 0, 5)
        assert took is not None, "deleting the controller -> node rule did not cut it within 5 s"
        # the tenant step sees the change (the group's digest) although its inputs are the same
        rc, output, _ = deployment.playbook("tenant-repair", "playbooks/tenant.yml")
        assert rc == 0, tail(output, 80)
        assert "changed: [localhost] => (item=" + group.name + ")" in output, tail(output, 80)
        assert wait_until(lambda: instance_exec(ctl.id, probe).returncode == 0, 5) is not None
    finally:
        tenant.compute.delete_server(third)
        tenant.compute.wait_for_delete(third, wait=120)
    print(f"controller -> node rule removed: cut after {took:.1f} s")
    # the load balancer's health checks see the nodes again before the next step
    assert wait_until(lambda: backends_up(controller_ip(admin, deployment.name), 2), 60) is not None


NEIGHBOURS = 50  # untagged servers of another team in the deployment's project


class Neighbours:
    """What shares the deployment's project and is not the deployment's: two nodes of
    another deployment (metadata and tag monoscape_deployment=<other>) and 50
    untagged servers, all in the fake zone on a network of their own. Nothing the
    deployment's runbooks do may touch them. They are made by the tenant user and read
    and removed by the admin (across projects): teardown deletes the tenant user."""

    def __init__(self, conn, admin, name):
        self.conn, self.admin = conn, admin
        self.other = f"{name}-other"
        self.network = conn.network.create_network(name=f"{name}-neighbours")
        conn.network.create_subnet(
            network_id=self.network.id,
            name=f"{name}-neighbours",
            ip_version=4,
            cidr="10.99.0.0/22",
            is_dhcp_enabled=False,
        )
        fake = {
            "image_id": conn.image.find_image("debian-12").id,
            "flavor_id": conn.compute.find_flavor("m1.tiny").id,
            "networks": [{"uuid": self.network.id}],
            "availability_zone": "fake",
        }
        made = [
            conn.compute.create_server(
                name=f"{self.other}-node-{i}",
                metadata={"monoscape_deployment": self.other, "monoscape_role": "node"},
                tags=[f"monoscape_deployment={self.other}"],
                **fake,
            )
            for i in (1, 2)
        ]
        made += [conn.compute.create_server(name=f"{name}-team-{i:02d}", **fake) for i in range(NEIGHBOURS)]
        self.ids = [s.id for s in made]
        deadline = time.monotonic() + 600
        while {s.status for s in self.servers()} != {"ACTIVE"}:
            assert time.monotonic() < deadline, "the neighbours did not become ACTIVE in 10 min"
            time.sleep(2)
        self.before = self.snapshot()

    def servers(self):
        return [s for s in self.admin.compute.servers(details=True, all_projects=True) if s.id in self.ids]

    def snapshot(self):
        """{id: (name, status, metadata, tags)} of the neighbours that exist."""
        return {s.id: (s.name, s.status, dict(s.metadata or {}), sorted(s.tags or [])) for s in self.servers()}

    def untouched(self):
        return self.snapshot() == self.before

    def remove(self):
        for server_id in self.ids:
            self.admin.compute.delete_server(server_id, ignore_missing=True)
        for server in self.servers():
            self.admin.compute.wait_for_delete(server, wait=300)
        self.admin.network.delete_network(self.network, ignore_missing=True)


@pytest.fixture(scope="module")
def neighbours(deployment, tenant, admin):
    return Neighbours(tenant, admin, deployment.name)


class SyslogCapture:
    """What processes on this machine send to the system log (/dev/log), captured by a
    socket the test binds there - only when no system logger owns it (it is removed after)."""

    PATH = "/dev/log"

    def __init__(self):
        self.messages = []
        self.sock = None

    @classmethod
    def available(cls):
        return not os.path.exists(cls.PATH)

    def __enter__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.PATH)
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self):
        while self.running:
            with contextlib.suppress(TimeoutError, OSError):
                self.messages.append(self.sock.recv(65536).decode(errors="replace"))

    def __exit__(self, *exc):
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.PATH)


def deployment_secrets(state):
    """Every secret of the deployment's state folder: the tenant password, the EC2 secret,
    the private key's lines, and the password in its clouds.yaml."""
    found = {(state / "password").read_text().strip()}
    ec2 = json.loads((state / "ec2-credentials.json").read_text())
    found |= {v for k, v in ec2.items() if "secret" in k and isinstance(v, str)}
    key_lines = (state / "id_ed25519").read_text().splitlines()
    found |= {line for line in key_lines if line and not line.startswith("-----")}
    for entry in yaml.safe_load((state / "clouds.yaml").read_text())["clouds"].values():
        found.add(entry["auth"]["password"])
    return {secret for secret in found if len(secret) >= 8}


def test_second_site_run_changes_nothing_and_logs_no_secret(deployment, neighbours):
    """The second site.yml, at -vvv and with modules allowed to log their arguments to
    the system log (the worst case), changes nothing, targets no neighbour, and no
    secret of the state folder reaches its output or the system log. One run for both
    (a no-op run costs about a minute of CI)."""
    secrets_ = deployment_secrets(deployment.state)
    assert len(secrets_) >= 3, "the state folder should hold the password, the EC2 secret and the key"
    command = runbook("site").rstrip() + " -vvv"
    with contextlib.ExitStack() as stack:
        syslog = stack.enter_context(SyslogCapture()) if SyslogCapture.available() else None
        rc, output, seconds = deployment.run("site-again", command, ANSIBLE_NO_TARGET_SYSLOG="False")
    assert rc == 0, tail(output, 80)
    hosts = recap(output)
    assert hosts, tail(output)
    changed = {host: counts[1] for host, counts in hosts.items() if counts[1]}
    assert changed == {}, f"a second site.yml changed something: {changed}\n{tail(output, 80)}"
    first = TIMINGS.get("site-first")
    if first:
        print(f"no-op site.yml at -vvv: {seconds:.0f} s = {100 * seconds / first:.0f} % of the first run")
    assert neighbours.untouched(), "site.yml touched servers that are not the deployment's"
    assert f"{neighbours.other}-node" not in output and "-team-" not in output, "site.yml targeted a neighbour"
    for secret in secrets_:
        assert secret not in output, f"a secret of the state folder is in the -vvv output ({secret[:3]}...)"
    if syslog is None:
        pytest.skip(f"{SyslogCapture.PATH} belongs to the system logger here; the -vvv output was checked, not the log")
    logged = "\n".join(syslog.messages)
    assert "Invoked with" in logged, "the capture saw no module invocation: it would prove nothing"
    assert "monoscape.paas" in logged or "os_" in logged
    for secret in secrets_:
        assert secret not in logged, f"a secret of the state folder reached the system log ({secret[:3]}...)"


def files_of(folder):
    """{relative path: (mode, mtime, sha256)} of every file below `folder`."""
    return {
        str(path.relative_to(folder)): (
            path.stat().st_mode,
            path.stat().st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_check_mode_writes_nothing(deployment):
    """`site.yml --check` on the running deployment: it passes, predicts no change and
    leaves every file of the deployment's state folder as it was (no password file
    regenerated, no clouds.yaml, pin or record rewritten)."""
    before = files_of(deployment.state)
    rc, output, _ = deployment.run("site-check", runbook("site").rstrip() + " --check")
    assert rc == 0, tail(output, 80)
    changed = {host: counts[1] for host, counts in recap(output).items() if counts[1]}
    assert changed == {}, f"check mode predicts changes on a converged deployment: {changed}\n{tail(output, 80)}"
    assert files_of(deployment.state) == before, "check mode wrote into the deployment's state folder"


def test_status_prints_the_deployment(deployment, neighbours):
    rc, output, _ = deployment.run("status", runbook("status"))
    assert rc == 0, tail(output)
    assert "token yes, EC2 credentials verified" in output
    assert re.search(r"demo\s+hello\s+1\.0\.0\s+\S+-node-\d:\d+, \S+-node-\d:\d+", output), tail(output)
    assert len(re.findall(r"app\.demo\.hello\s+\S+\s+\S+\s+UP\s+L7OK", output)) == 2, tail(output)
    assert "-team-" not in output and f"{neighbours.other}-node" not in output, "status counted a neighbour"
    rc, output, _ = deployment.run("status-others", runbook("status-others"))
    assert rc == 0, tail(output)
    assert "Not ours" in output and len(re.findall(r"-team-\d\d\s", output)) == NEIGHBOURS, tail(output, 80)


def fault_run(deployment, step, script, fault, after="PLAY [Create the PaaS tenant]", **variables):
    """Start a runbook command, call fault() once its output shows `after`, let the
    run end; then `labctl up` (it starts whatever is not running). (rc, output)."""
    running = deployment.start(step, script, **variables)
    try:
        running.wait_for(after, 600)
        fault()
        rc, output, _ = running.finish(900)
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()
        proc = labctl("up", timeout=900)
        assert proc.returncode == 0, proc.stderr
    assert rc != 0, f"{step}: the run did not fail:\n{tail(output)}"
    return rc, output


def test_keystone_stopped_during_a_run_is_named_and_the_next_run_changes_nothing(deployment, admin):
    """Keystone is stopped while a no-op site.yml runs: the run fails, saying it cannot
    reach the identity (Keystone) API; once Keystone is back, the next run converges
    with no change, and the deployment has exactly what it had (nothing twice, nothing
    orphaned)."""
    before = sorted(leftovers(admin, deployment.name))
    stop_keystone = functools.partial(kill_service, "keystone", signal.SIGTERM)
    _, output = fault_run(deployment, "fault-keystone", runbook("site"), stop_keystone)
    # refused at Keystone itself, or (a token already held) a 503 from a service that cannot check it
    assert re.search(
        r"cannot reach the identity \(Keystone\) API|The identity \(Keystone\) API .* does not answer", output
    ), tail(output, 60)
    assert "Is the identity (Keystone) service running?" in output, tail(output, 60)
    rc, output, _ = deployment.run("fault-keystone-rerun", runbook("site"))
    assert rc == 0, tail(output, 80)
    changed = {host: counts[1] for host, counts in recap(output).items() if counts[1]}
    assert changed == {}, f"the run after Keystone's outage changed something: {changed}\n{tail(output, 80)}"
    assert sorted(leftovers(admin, deployment.name)) == before


def test_a_changed_host_key_stops_the_run_until_repinned(deployment, admin, tenant):
    """node-2 rebuilt under the same name (new server, new host keys): the next run
    stops before connecting, naming the server; the runbook's re-pin command takes
    the new keys and site.yml brings the node back into service."""
    old = tenant.compute.find_server(f"{deployment.name}-node-2")
    old = tenant.compute.get_server(old.id)
    tenant.compute.delete_server(old)
    tenant.compute.wait_for_delete(old, wait=120)
    new = tenant.compute.create_server(
        name=old.name,
        image_id=old.image["id"],
        flavor_id=tenant.compute.find_flavor("m1.small").id,
        networks=[{"uuid": tenant.network.find_network(deployment.name).id}],
        security_groups=[{"name": f"{deployment.name}-node"}],
        key_name=old.key_name,
        metadata=old.metadata,
        tags=old.tags,  # as a rebuild keeps them
    )
    tenant.compute.wait_for_server(new, status="ACTIVE", failures=["ERROR"], interval=0.5, wait=180)
    rc, output, _ = deployment.run("changed-host-key", runbook("status"))
    assert rc != 0, tail(output)
    message = " ".join(output.split())
    assert f"{deployment.name}-node-2" in message and "host_keys.yml -e monoscape_repin=" in message, tail(output)
    rc, output, _ = deployment.run("repin", runbook("repin"), SERVER=f"{deployment.name}-node-2")
    assert rc == 0, tail(output)
    rc, output, _ = deployment.run("site-after-rebuild", runbook("site"))
    assert rc == 0, tail(output, 80)
    _, body = get(app_url(deployment, admin), context=tls(deployment))
    assert "version: 1.0.0" in body


def test_scale_out_to_three_nodes(deployment, admin, neighbours):
    """nova-compute is killed as the scale-out starts: Nova queues node-3's build for
    it, the run fails after fleet_timeout naming nova-compute. With nova-compute back
    (labctl up), the runbook's command scales out, the app served throughout, and the
    deployment has one more server and its port, nothing twice and nothing orphaned."""
    before = leftovers(admin, deployment.name)
    _, output = fault_run(
        deployment,
        "scale-out-no-compute",
        runbook("scale").rstrip() + " -e fleet_timeout=20\n",
        lambda: kill_service("nova-compute-podman"),
        after="PLAY [Scale | check the apps' versions before changing anything]",
        COUNT=3,
    )
    assert f"server '{deployment.name}-node-3'" in output, tail(output, 60)
    assert "is Nova's compute service (nova-compute) on its host running" in output, tail(output, 60)
    url, context = app_url(deployment, admin), tls(deployment)
    with RequestStream(url, context) as stream:
        rc, output, _ = deployment.run("scale-out", runbook("scale"), COUNT=3)
    assert rc == 0, tail(output, 80)
    assert stream.failures == [], stream.failures[:10]
    assert [s.name for s in servers(admin, deployment.name, "node")] == [
        f"{deployment.name}-node-{n}" for n in (1, 2, 3)
    ]
    assert neighbours.untouched(), "scale-out touched servers that are not the deployment's"
    added = sorted(set(leftovers(admin, deployment.name)) - set(before))
    assert set(before) <= set(leftovers(admin, deployment.name))
    assert len(added) == 2 and added[1] == f"server {deployment.name}-node-3" and added[0].startswith("port "), added
    hosts = hosts_reached(url, context, 3)
    assert len(hosts) == 3, f"the load balancer reached {hosts}"


def test_scale_in_to_two_nodes_drains_without_failures(deployment, admin, neighbours):
    url, context = app_url(deployment, admin), tls(deployment)
    with RequestStream(url, context) as stream:
        rc, output, _ = deployment.run("scale-in", runbook("scale"), COUNT=2)
    assert rc == 0, tail(output, 80)
    assert stream.failures == [], stream.failures[:10]
    assert stream.ok > 20
    assert [s.name for s in servers(admin, deployment.name, "node")] == [
        f"{deployment.name}-node-1",
        f"{deployment.name}-node-2",
    ]
    assert neighbours.untouched(), "scale-in touched servers that are not the deployment's (the other nodes!)"


def test_self_healing_replaces_a_deleted_node_and_starts_a_stopped_one(deployment, admin, neighbours):
    """What the reconcile timer runs (docs/runbooks/self-healing.md), at the inventory's
    node count (2): node-2 deleted outside the bundle and node-1 stopped (the app is
    down); one run brings both back within 3 minutes, the app served by both again, and
    says what it did in its log and on the dashboard. The next run has nothing to do.
    (Failover with no failed request while a node dies: molecule lb_deploy.)"""
    url, context = app_url(deployment, admin), tls(deployment)
    nodes = {s.name: s for s in servers(admin, deployment.name, "node")}
    deleted, stopped = nodes[f"{deployment.name}-node-2"], nodes[f"{deployment.name}-node-1"]
    admin.compute.delete_server(deleted)
    admin.compute.wait_for_delete(deleted, interval=0.5, wait=120)
    admin.compute.stop_server(stopped)
    admin.compute.wait_for_server(stopped, status="SHUTOFF", failures=["ERROR"], interval=0.5, wait=120)
    started = time.monotonic()
    rc, output, _ = deployment.run("reconcile", runbook("reconcile"))
    elapsed = time.monotonic() - started
    assert rc == 0, tail(output, 80)
    assert elapsed <= 180, f"self-healing took {elapsed:.0f} s"
    after = {s.name: s for s in servers(admin, deployment.name, "node")}
    assert sorted(after) == sorted(nodes) and all(s.status == "ACTIVE" for s in after.values()), after
    assert after[deleted.name].id != deleted.id and after[stopped.name].id == stopped.id
    assert neighbours.untouched(), "self-healing touched servers that are not the deployment's"
    entry = json.loads((deployment.state / "reconcile.log").read_text().splitlines()[-1])
    assert entry["booted"] == [deleted.name] and entry["started"] == [stopped.name], entry
    assert deleted.name in entry["deployed"], entry
    document = json.loads(get(f"http://{controller_ip(admin, deployment.name)}:8080/dashboard.json")[1])
    assert document["reconcile"][-1] == entry
    hosts = hosts_reached(url, context, 2)
    assert len(hosts) == 2, f"the load balancer reached {hosts}"
    # nothing left to repair: the next run (the next tick of the timer) changes nothing
    logged = (deployment.state / "reconcile.log").read_text()
    rc, output, _ = deployment.run("reconcile-again", runbook("reconcile"))
    assert rc == 0, tail(output, 80)
    assert all(counts[1] == 0 for counts in recap(output).values()), tail(output, 80)
    assert "nothing to repair" in output
    assert (deployment.state / "reconcile.log").read_text() == logged


def test_rotate_credentials(deployment):
    before = (
        (deployment.state / "password").read_text(),
        json.loads((deployment.state / "ec2-credentials.json").read_text()),
    )
    rc, output, _ = deployment.run("rotate", runbook("rotate"))
    assert rc == 0, tail(output, 80)
    after = (
        (deployment.state / "password").read_text(),
        json.loads((deployment.state / "ec2-credentials.json").read_text()),
    )
    assert after[0] != before[0]
    assert after[1]["access"] != before[1]["access"]
    assert before[0].strip() not in output and before[1]["secret"] not in output and after[1]["secret"] not in output
    tenant = deployment.tenant_cloud()
    conn = connect_dict(tenant)
    assert conn.compute.find_server(f"{deployment.name}-controller") is not None
    old = dict(tenant, auth=dict(tenant["auth"], password=before[0].strip()))
    with pytest.raises(openstack.exceptions.SDKException, match=r"401|uthenticat|Unauthorized"):
        connect_dict(old).authorize()


def test_recover_after_the_lab_restarts_in_the_middle_of_a_run(deployment, admin):
    """The whole lab goes down (every process killed at once, like a power cut of the
    control plane) while site.yml runs: the run fails naming the API it could not
    reach. The recover runbook (labctl down, up, site.yml with the full check) then
    changes nothing, the app is served, and the deployment has exactly what it had."""
    before = sorted(leftovers(admin, deployment.name))
    _, output = fault_run(deployment, "restart-mid-run", runbook("site"), power_cut)
    assert re.search(r"cannot reach the \w+ \(\w+\) API of cloud", output), tail(output, 60)
    rc, output, _ = deployment.run("recover", runbook("recover"), timeout=2400)
    assert rc == 0, tail(output, 80)
    hosts = recap(output)
    assert hosts and all(counts[1] == 0 for counts in hosts.values()), f"site.yml after the restart: {hosts}"
    status, body = get(app_url(deployment, admin), context=tls(deployment))
    assert status == 200
    assert "version: 1.0.0" in body
    assert sorted(leftovers(admin, deployment.name)) == before


# --- a highly available load balancer: the deployment grown to two controllers --------
FAILOVER_LIMIT = 3.0  # seconds without a successful answer when the holder dies (issue #17)


def test_growing_to_two_controllers_gives_them_a_shared_virtual_ip(deployment, admin):
    """The operator sets monoscape_controller_count: 2 (docs/runbooks/ha-load-balancer.md)
    and runs site.yml: a second controller, a virtual IP that exactly one of them holds,
    the load balancer's public address on it, both HAProxy serving the same servers."""
    deployment.update(monoscape_controller_count=2)
    rc, output, seconds = deployment.run("ha-grow", runbook("site"))
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
    record_ha(grow_s=round(seconds, 1))
    print(f"site.yml growing to two controllers: {seconds:.0f} s")


def test_second_site_run_with_two_controllers_changes_nothing(deployment):
    rc, output, seconds = deployment.run("ha-site-again", runbook("site"))
    assert rc == 0, tail(output, 80)
    changed = {host: counts[1] for host, counts in recap(output).items() if counts[1]}
    assert changed == {}, f"a second site.yml changed something: {changed}\n{tail(output, 80)}"
    record_ha(site_again_s=round(seconds, 1))
    print(f"no-op site.yml with two controllers: {seconds:.0f} s")


def test_a_rolling_update_reaches_both_load_balancers(deployment, admin):
    _, public = vip(admin, deployment)
    package = PACKAGE.with_name("hello-2.0.0.zip")
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
    record_ha(rolling_update_requests=stream.ok, rolling_update_failed=len(stream.failures))


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
    record_ha(
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


def test_teardown_leaves_nothing(deployment, admin, neighbours):
    """Teardown removes everything of the deployment and nothing else: the project
    stays while the neighbours use it; once they are gone, the next teardown removes
    the project too."""
    rc, output, _ = deployment.run("teardown", runbook("teardown"))
    assert rc == 0, tail(output, 80)
    assert "nothing of deployment" in output
    assert neighbours.untouched(), "teardown touched servers that are not the deployment's"
    project = admin.identity.find_project(deployment.name, ignore_missing=True, domain_id="default")
    assert project is not None, "the project was deleted while other servers use it"
    theirs = {f"server {s.name}" for s in neighbours.servers()}
    theirs |= {f"port {p.id}" for p in admin.network.ports(network_id=neighbours.network.id)}
    theirs |= {f"network {neighbours.network.name}", "security group default", f"project {project.id}"}
    assert set(leftovers(admin, deployment.name)) <= theirs, "teardown left something of the deployment"
    assert not deployment.state.exists()
    neighbours.remove()
    rc, output, _ = deployment.run("teardown-again", runbook("teardown"))
    assert rc == 0, tail(output)
    assert leftovers(admin, deployment.name) == [], "the project, now empty, is removed"
    rc, output, _ = deployment.run("teardown-once-more", runbook("teardown"))
    assert rc == 0, tail(output)
    assert all(counts[1] == 0 for counts in recap(output).values()), tail(output)
