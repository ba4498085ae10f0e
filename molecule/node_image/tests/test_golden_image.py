"""Capture the provisioned builder the way the lab's compute driver snapshots a
server (stop, podman commit), boot a clone from the image, and check, without any
Ansible on the clone, that it serves the sample app and the health endpoint, and
that it is its own machine: new machine-id and host keys, no builder logs, history
or authorized keys. Prints the seconds from `podman run` to the app answering.

Expectations come from the scenario's vars.yml and the role defaults."""

import json
import pathlib
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
import testinfra
import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
VARS = yaml.safe_load((HERE.parent / "vars.yml").read_text())
NC_DEFAULTS = yaml.safe_load((ROOT / "roles/node_controller/defaults/main.yml").read_text())
NI_DEFAULTS = yaml.safe_load((ROOT / "roles/node_image/defaults/main.yml").read_text())
INSTANCE = VARS["node_image_node_vars"]["mono_runtime_instances"][0]
PREFIX = f"/{INSTANCE['tenant']}/{INSTANCE['app']}/"
BUILDER = "monoscape-nc-builder"
CLONE = "monoscape-nc-clone"
IMAGE = f"localhost/monoscape-nc-golden:{uuid.uuid4().hex[:8]}"


def podman(*args, check=True):
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check).stdout.strip()


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http URL of our own container
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return None, ""


@pytest.fixture(scope="module")
def builder(host):
    """What the build recorded on the builder."""
    return {"image_json": json.loads(host.file("/etc/monoscape/image.json").content_string)}


@pytest.fixture(scope="module")
def clone(builder):
    """Stop the builder, commit it, boot a clone on the same network; time to the app."""
    network = podman("inspect", BUILDER, "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}")
    podman("stop", BUILDER)
    try:
        podman("commit", "--quiet", BUILDER, IMAGE)
    finally:
        podman("start", BUILDER)
    started = time.monotonic()
    podman("run", "-d", "--name", CLONE, "--systemd=always", "--network", network, IMAGE, "/sbin/init")
    try:
        ip = podman("inspect", CLONE, "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
        app_url = f"http://{ip}:{INSTANCE['port']}{PREFIX}health.aspx"
        deadline = started + 120
        status = None
        while time.monotonic() < deadline:
            status, _ = get(app_url)
            if status == 200:
                break
            time.sleep(0.25)
        serving_s = time.monotonic() - started
        print(f"\nclone from the golden image: podman run -> sample app 200 in {serving_s:.1f} s")
        assert status == 200, f"the clone did not serve {app_url} within 120 s"
        yield {"ip": ip, "host": testinfra.get_host(f"podman://{CLONE}"), "serving_s": serving_s}
    finally:
        podman("rm", "-f", CLONE, check=False)
        podman("rmi", "-f", IMAGE, check=False)


def test_image_json_names_the_build(builder):
    info = builder["image_json"]
    assert len(info["hash"]) == 64
    assert info["name"] == NI_DEFAULTS["node_image_name_prefix"] + info["hash"][:12]
    assert info["base_image_id"].startswith("podman:")
    assert info["mono_version"].startswith("6.8.")
    assert info["bundle_version"] == yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]


def test_builder_is_sysprepped(host):
    """Checked before the builder is captured (the clone fixture restarts it)."""
    assert host.file("/etc/machine-id").content_string == ""
    assert host.check_output("find /etc/ssh -name 'ssh_host_*'") == ""
    assert host.check_output("find /var/log/monoscape -type f -size +0") == ""
    assert not host.file("/root/.ansible").exists
    assert not host.file("/root/.bash_history").exists
    assert not host.file("/tmp/builder-trace").exists
    # no credentials in the image: nodes get their key pair when they boot (cloud-init, the compute driver)
    assert not host.file("/root/.ssh/authorized_keys").exists


def test_clone_serves_sample_app_without_ansible(clone):
    nonce = uuid.uuid4().hex
    status, body = get(f"http://{clone['ip']}:{INSTANCE['port']}{PREFIX}?q={nonce}")
    assert status == 200
    assert "Hello from Monoscape sample app" in body
    assert f"path: {PREFIX}" in body
    assert not clone["host"].file("/root/.ansible").exists


def test_clone_health_and_status(clone, builder):
    port = NC_DEFAULTS["node_controller_health_port"]
    for _ in range(40):
        status, body = get(f"http://{clone['ip']}:{port}/health")
        if status == 200:
            break
        time.sleep(0.25)
    assert (status, body) == (200, "OK\n")
    doc = json.loads(get(f"http://{clone['ip']}:{port}/status")[1])
    assert doc["controller"]["address"] == VARS["node_image_controller_address"]
    assert doc["image"] == builder["image_json"]


def test_clone_is_its_own_machine(clone, host):
    """Builder (restarted after capture) and clone each made their own identity at boot."""
    h = clone["host"]
    machine_id = h.file("/etc/machine-id").content_string.strip()
    assert len(machine_id) == 32
    assert machine_id != host.file("/etc/machine-id").content_string.strip()
    # sshd starts once the clone has made its host keys (first boot): give it time on a busy machine
    state = ""
    for _ in range(60):
        state = h.run("systemctl is-active ssh.service").stdout.strip()
        if state == "active":
            break
        time.sleep(0.5)
    assert state == "active", h.run("systemctl status --no-pager ssh.service").stdout
    key = "/etc/ssh/ssh_host_ed25519_key.pub"
    assert h.file(key).content_string != host.file(key).content_string


def test_clone_has_no_builder_traces(clone):
    h = clone["host"]
    assert not h.file("/root/.bash_history").exists
    assert not h.file("/tmp/builder-trace").exists
    assert not h.file("/root/.ssh/authorized_keys").exists


def test_clone_ssh_takes_keys_only(clone, tmp_path):
    """From the test runner, with the clone's own host keys (made at its first boot),
    read through podman (the container runtime is the trusted channel, as a console
    log is for a cloud server; never the first connection) and checked strictly."""
    h = clone["host"]
    state = ""
    for _ in range(60):  # sshd starts once the clone has made its host keys
        state = h.run("systemctl is-active ssh.service").stdout.strip()
        if state == "active":
            break
        time.sleep(0.5)
    assert state == "active", h.run("systemctl status --no-pager ssh.service").stdout
    keys = podman("exec", CLONE, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub").splitlines()
    lines = [f"{CLONE} {kind} {blob}" for kind, blob, *_ in (k.split() for k in keys if k.strip())]
    assert lines, f"no SSH host keys in {CLONE}"
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [
            "ssh",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            f"HostKeyAlias={CLONE}",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "PubkeyAuthentication=no",
            f"root@{clone['ip']}",
            "true",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0
    # not "Host key verification failed": the pinned keys are the clone's
    assert "Permission denied (publickey)" in out.stderr, out.stderr
