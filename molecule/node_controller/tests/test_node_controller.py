"""Verify node_controller on the molecule host: the app host serves the sample app,
node.conf points at the controller, the health endpoint answers the load balancer
(from outside the node too) and tells when an instance is down, logs rotate, sshd
takes keys only and makes its host keys on first boot.

Expectations come from the scenario's vars.yml (the converge input) and the role's
defaults, not from literals repeated here. Runs twice: after converge and after
the side_effect damaged the node and the role repaired it."""

import json
import pathlib
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
VARS = yaml.safe_load((HERE.parent / "vars.yml").read_text())
DEFAULTS = yaml.safe_load((ROOT / "roles/node_controller/defaults/main.yml").read_text())
INSTANCE = VARS["mono_runtime_instances"][0]
UNIT = f"monoscape-app@{INSTANCE['name']}.service"
PREFIX = f"/{INSTANCE['tenant']}/{INSTANCE['app']}/"
HEALTH_PORT = VARS["node_controller_health_port"]
CONTAINER = "monoscape-nc-node"


def node_ip():
    out = subprocess.run(
        ["podman", "inspect", CONTAINER, "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out, f"no IP address for {CONTAINER}"
    return out


def get(url):
    """(status, body) of a GET from the test runner (outside the node)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - http URL built from the node IP
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def node_conf(host):
    lines = host.file("/etc/monoscape/node.conf").content_string.splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_node_conf_points_at_controller(host):
    conf = node_conf(host)
    address = VARS["node_controller_controller_address"]
    assert conf["MONOSCAPE_CONTROLLER_ADDRESS"] == address
    assert conf["MONOSCAPE_LB_URL"] == f"http://{address}/"
    assert conf["MONOSCAPE_DASHBOARD_URL"] == f"http://{address}:{DEFAULTS['node_controller_dashboard_port']}/"
    assert conf["MONOSCAPE_LOG_DIR"] == "/var/log/monoscape"
    fact = json.loads(host.file("/etc/ansible/facts.d/node_controller.fact").content_string)
    assert fact["controller_address"] == address
    assert fact["health_port"] == HEALTH_PORT


def test_app_host_serves_sample_app(host):
    nonce = uuid.uuid4().hex
    out = host.check_output(f"curl -sf 'http://127.0.0.1:{INSTANCE['port']}{PREFIX}?q={nonce}'")
    assert "Hello from Monoscape sample app" in out
    assert f"path: {PREFIX}" in out
    assert host.service(UNIT).is_enabled


def test_health_from_outside_the_node():
    status, body = get(f"http://{node_ip()}:{HEALTH_PORT}/health")
    assert (status, body) == (200, "OK\n")


def test_status_json_describes_the_node(host):
    status, body = get(f"http://{node_ip()}:{HEALTH_PORT}/status")
    assert status == 200
    doc = json.loads(body)
    assert doc["status"] == "ok", doc["problems"]
    assert doc["controller"]["address"] == VARS["node_controller_controller_address"]
    assert doc["node"] == host.check_output("hostname")
    assert doc["mono_version"].startswith("6.8.")
    [inst] = [i for i in doc["instances"] if i["name"] == INSTANCE["name"]]
    assert inst == {
        "name": INSTANCE["name"],
        "tenant": INSTANCE["tenant"],
        "app": INSTANCE["app"],
        "port": INSTANCE["port"],
        "active": "active",
        "sub": "running",
        "enabled": True,
    }


def test_health_reports_a_stopped_instance(host):
    """The verdict is computed per request: a stopped (enabled) instance makes the node
    degraded with the reason, and healthy again once it runs."""
    url = f"http://{node_ip()}:{HEALTH_PORT}/health"
    host.check_output(f"systemctl stop {UNIT}")
    try:
        status, body = get(url)
        assert status == 503
        assert f"instance {INSTANCE['name']}: inactive" in body
    finally:
        host.check_output(f"systemctl start {UNIT}")
    for _ in range(40):
        status, body = get(url)
        if status == 200:
            break
        time.sleep(0.5)
    assert (status, body) == (200, "OK\n")


def test_unknown_paths_are_not_served():
    assert get(f"http://{node_ip()}:{HEALTH_PORT}/")[0] == 404


def test_status_service_runs_unprivileged(host):
    svc = host.service("monoscape-node-status.service")
    assert svc.is_running
    assert svc.is_enabled
    user = host.check_output("systemctl show -p User --value monoscape-node-status.service")
    assert user == DEFAULTS["node_controller_status_user"]
    pid = host.check_output("systemctl show -p MainPID --value monoscape-node-status.service")
    assert host.check_output(f"stat -c %U /proc/{pid}") == user


def test_sshd_effective_settings_are_key_only(host):
    effective = host.check_output("sshd -T").splitlines()
    aliases = {"prohibit-password": "without-password"}  # sshd -T prints the old name
    for key, raw in DEFAULTS["node_controller_sshd_settings"].items():
        value = str(raw).lower()
        assert f"{key.lower()} {aliases.get(value, value)}" in effective, key


def pinned_ssh(known_hosts):
    """ssh from the test runner to the node, accepting only the host keys the node has
    now, read through podman (the container runtime is the trusted channel, as a
    console log is for a cloud server; never the first connection). Read again at
    each call: test_ssh_makes_host_keys_on_first_boot gives the node new keys."""
    keys = subprocess.run(
        ["podman", "exec", CONTAINER, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    lines = [f"{CONTAINER} {kind} {blob}" for kind, blob, *_ in (k.split() for k in keys if k.strip())]
    assert lines, f"no SSH host keys in {CONTAINER}"
    known_hosts.write_text("\n".join(lines) + "\n")
    return [
        "ssh",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        f"HostKeyAlias={CONTAINER}",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=5",
    ]


def test_ssh_refuses_passwords_and_accepts_keys(host, tmp_path):
    ssh = pinned_ssh(tmp_path / "known_hosts")
    target = f"root@{node_ip()}"
    refused = subprocess.run(
        [*ssh, "-o", "PubkeyAuthentication=no", target, "true"], capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0
    # not "Host key verification failed": the pinned keys are the node's
    assert "Permission denied (publickey)" in refused.stderr, refused.stderr
    key = tmp_path / f"verify-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key.name, "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    host.check_output(f"install -d -m 0700 /root/.ssh && echo '{public}' >> /root/.ssh/authorized_keys")
    try:
        accepted = subprocess.run(
            [*ssh, "-i", str(key), target, "echo key-login-ok"], capture_output=True, text=True, check=False
        )
        assert accepted.stdout.strip() == "key-login-ok", accepted.stderr
    finally:
        host.run(f"sed -i '\\|{key.name}|d' /root/.ssh/authorized_keys")


def test_ssh_makes_host_keys_on_first_boot(host, tmp_path):
    """What a node booted from the image (host keys removed by sysprep) goes through."""
    old = tmp_path / "old_known_hosts"
    old_ssh = pinned_ssh(old)
    host.check_output("rm -f /etc/ssh/ssh_host_*")
    host.check_output("systemctl restart ssh.service")
    assert host.service("ssh.service").is_running
    assert host.file("/etc/ssh/ssh_host_ed25519_key").exists
    # new keys: the ones pinned before are refused, the ones read now are sshd's
    probe = ["-o", "PubkeyAuthentication=no", f"root@{node_ip()}", "true"]
    before = subprocess.run([*old_ssh, *probe], capture_output=True, text=True, check=False)
    assert "Host key verification failed" in before.stderr, before.stderr
    now = subprocess.run([*pinned_ssh(tmp_path / "known_hosts"), *probe], capture_output=True, text=True, check=False)
    assert "Permission denied (publickey)" in now.stderr, now.stderr


@pytest.mark.parametrize("path", ["/etc/logrotate.d/monoscape", "/etc/systemd/journald.conf.d/monoscape.conf"])
def test_log_config_present(host, path):
    assert host.file(path).exists


def test_logrotate_rotates_and_logging_goes_on(host):
    log = f"/var/log/monoscape/{INSTANCE['name']}.access.log"
    host.check_output(f"curl -sf -o /dev/null http://127.0.0.1:{INSTANCE['port']}{PREFIX}health.aspx")
    host.check_output("logrotate -f -s /tmp/verify-logrotate.state /etc/logrotate.d/monoscape")
    assert host.file(f"{log}.1").exists
    marker = uuid.uuid4().hex
    host.check_output(f"curl -sf -o /dev/null 'http://127.0.0.1:{INSTANCE['port']}{PREFIX}health.aspx?m={marker}'")
    for _ in range(20):
        if host.file(log).exists and marker in host.file(log).content_string:
            break
        time.sleep(0.25)
    assert marker in host.file(log).content_string, "requests after the rotation are not logged"


def test_journal_is_persistent(host):
    machine_id = host.file("/etc/machine-id").content_string.strip()
    assert host.file(f"/var/log/journal/{machine_id}").is_directory
