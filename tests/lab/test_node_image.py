"""The node-controller golden image on the lab cloud (playbooks/node_image.yml),
no mocks: build from scratch; a second run with the same inputs is skipped and
creates nothing; a node booted from the image serves the health endpoint with no
Ansible at all and the sample app after only unpacking it and starting one
mono_runtime instance; a changed input gives a new image and retention deletes the
old unused one; a failure in the middle of provisioning fails the play and leaves
no builder server, key pair or image (checked through the SDK).

Every resource is named with a per-run prefix (monoscape-nc-<hex>-) in an isolated
project, and deleted at the end. Timings are printed (run pytest with -s to see
them) and written to build/logs/node-image-timings.json."""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
PLAYBOOK = ROOT / "playbooks" / "node_image.yml"
SAMPLE_PLAY = pathlib.Path(__file__).resolve().parent / "files" / "node_image_sample_app.yml"
SAMPLE_PACKAGE = ROOT / "build" / "packages" / "hello-1.0.0.zip"
NC_DEFAULTS = yaml.safe_load((ROOT / "roles/node_controller/defaults/main.yml").read_text())
HEALTH_PORT = NC_DEFAULTS["node_controller_health_port"]
SAMPLE = {
    "name": "demo.hello.1",
    "tenant": "demo",
    "app": "hello",
    "port": 9081,
    "root": "/srv/monoscape/apps/demo/hello/current",
}
TIMINGS = {}


def record(name, seconds):
    TIMINGS[name] = round(seconds, 1)
    print(f"\n[node-image timing] {name}: {seconds:.1f} s")
    out = ROOT / "build" / "logs" / "node-image-timings.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(TIMINGS, indent=2) + "\n")


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own lab node
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return None, ""


def wait_http(url, status=200, timeout=180):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = http_get(url)
        if last[0] == status:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer {status} within {timeout} s (last: {last})")


def wait_ssh(ip, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, 22), timeout=2) as sock:
                if sock.recv(4).startswith(b"SSH"):
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"SSH on {ip} did not answer within {timeout} s")


class Build:
    """Runs playbooks/node_image.yml against the isolated project."""

    def __init__(self, clouds_yaml, cloud, conn, workdir):
        self.clouds_yaml, self.cloud, self.conn, self.workdir = clouds_yaml, cloud, conn, workdir
        self.prefix = f"monoscape-nc-{uuid.uuid4().hex[:6]}-"

    def vars(self, **overrides):
        base = {
            "node_image_cloud": self.cloud,
            "node_image_network": "private",
            "node_image_availability_zone": "nova",
            "node_image_name_prefix": self.prefix,
            "node_image_controller_address": "192.0.2.30",
            "node_image_keep": 1,
            "node_image_ssh_timeout": 180,
        }
        base.update(overrides)
        return base

    def run(self, **overrides):
        vars_file = self.workdir / f"vars-{uuid.uuid4().hex[:6]}.json"
        vars_file.write_text(json.dumps(self.vars(**overrides)))
        env = dict(
            os.environ,
            OS_CLIENT_CONFIG_FILE=str(self.clouds_yaml),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_CALLBACK_RESULT_FORMAT="json",  # one line per message
        )
        started = time.monotonic()
        proc = subprocess.run(
            ["ansible-playbook", "-i", "localhost,", str(PLAYBOOK), "-e", f"@{vars_file}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started

    # what exists in the project, by our prefix
    def images(self):
        return sorted(
            (i for i in self.conn.image.images(owner=self.conn.current_project_id) if i.name.startswith(self.prefix)),
            key=lambda i: i.created_at,
        )

    def servers(self):
        return [s for s in self.conn.compute.servers() if s.name.startswith(self.prefix)]

    def keypairs(self):
        return [k for k in self.conn.compute.keypairs() if k.name.startswith(self.prefix)]

    def cleanup(self):
        for server in self.servers():
            self.conn.compute.delete_server(server)
        for server in self.servers():
            self.conn.compute.wait_for_delete(server, wait=120)
        for keypair in self.keypairs():
            self.conn.compute.delete_keypair(keypair)
        for image in self.images():
            self.conn.image.delete_image(image)


@pytest.fixture(scope="module")
def lab_project_cloud(lab_project_factory, tmp_path_factory):
    """An isolated project (deleted with what is left in it at the end of the session):
    (clouds.yaml path, cloud name, SDK connection as its member user)."""
    project = lab_project_factory("nc")
    path = project.clouds_yaml(tmp_path_factory.mktemp("nc-cloud") / "clouds.yaml", project.name)
    return path, project.name, project.conn


@pytest.fixture(scope="module")
def build(lab_project_cloud, tmp_path_factory):
    """The first build, from scratch, in an isolated project."""
    clouds_yaml, cloud, conn = lab_project_cloud
    b = Build(clouds_yaml, cloud, conn, tmp_path_factory.mktemp("node-image"))
    rc, out, seconds = b.run()
    b.first = {"rc": rc, "out": out, "seconds": seconds}
    try:
        yield b
    finally:
        b.cleanup()


def test_build_from_scratch(build):
    assert build.first["rc"] == 0, build.first["out"][-4000:]
    record("build from scratch", build.first["seconds"])
    [image] = build.images()
    assert image.status == "active"
    props = image.properties
    assert image.name == build.prefix + props["monoscape_node_hash"][:12]
    assert len(props["monoscape_node_hash"]) == 64
    assert props["monoscape_role"] == "node"
    assert props["monoscape_mono_version"].startswith("6.8.")
    assert props["monoscape_bundle_version"] == yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    assert props["monoscape_build_time"].endswith("Z")
    assert build.servers() == []
    assert build.keypairs() == []


def test_same_inputs_skip_the_build(build):
    before = [(i.id, i.updated_at) for i in build.images()]
    rc, out, seconds = build.run()
    assert rc == 0, out[-4000:]
    record("build again, same inputs (skipped)", seconds)
    assert "nothing to build" in out
    assert "changed=0" in out.split("PLAY RECAP")[1]
    assert "TASK [node_image : Create the builder server" not in out
    assert [(i.id, i.updated_at) for i in build.images()] == before
    assert build.servers() == []
    assert build.keypairs() == []


def test_node_from_image_serves_without_provisioning(build, tmp_path):
    """Boot a node from the image and time it to serving; nothing re-provisions it."""
    conn = build.conn
    [image] = build.images()
    key = tmp_path / "id_node"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    keypair = conn.compute.create_keypair(name=build.prefix + "node", public_key=(tmp_path / "id_node.pub").read_text())
    try:
        serve_sample_app(build, image, keypair, key, tmp_path)
    finally:
        for server in build.servers():
            conn.compute.delete_server(server)
            conn.compute.wait_for_delete(server, wait=120)
        conn.compute.delete_keypair(keypair)


def serve_sample_app(build, image, keypair, key, tmp_path):
    conn = build.conn
    flavor = conn.compute.find_flavor("m1.small")
    network = conn.network.find_network("private")
    started = time.monotonic()
    server = conn.compute.create_server(
        name=build.prefix + "node",
        image_id=image.id,
        flavor_id=flavor.id,
        key_name=keypair.name,
        networks=[{"uuid": network.id}],
        availability_zone="nova",
    )
    server = conn.compute.wait_for_server(server, wait=180)
    ip = next(a["addr"] for addrs in server.addresses.values() for a in addrs if a["version"] == 4)
    # no Ansible yet: the node controller came with the image
    wait_http(f"http://{ip}:{HEALTH_PORT}/health")
    record("server create -> node health 200 (golden image)", time.monotonic() - started)
    doc = json.loads(http_get(f"http://{ip}:{HEALTH_PORT}/status")[1])
    assert doc["image"]["hash"] == image.properties["monoscape_node_hash"]
    assert doc["controller"]["address"] == "192.0.2.30"
    wait_ssh(ip)
    shutil.copy(SAMPLE_PACKAGE, tmp_path / "hello.zip")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="false")
    deploy = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            f"{ip},",
            "-u",
            "root",
            "--private-key",
            str(key),
            str(SAMPLE_PLAY),
            "-e",
            json.dumps(
                {
                    "sample_package": str(tmp_path / "hello.zip"),
                    "sample_release": "/srv/monoscape/apps/demo/hello/releases/1.0.0",
                    "sample_instance": SAMPLE,
                    "ansible_python_interpreter": "/usr/bin/python3",
                }
            ),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert deploy.returncode == 0, deploy.stdout[-4000:] + deploy.stderr[-2000:]
    nonce = uuid.uuid4().hex
    _, body = wait_http(f"http://{ip}:{SAMPLE['port']}/{SAMPLE['tenant']}/{SAMPLE['app']}/?q={nonce}")
    record("server create -> sample app 200 (golden image + unpack + 1 instance)", time.monotonic() - started)
    assert "Hello from Monoscape sample app" in body
    # the deploy step installed nothing: no apt run on the node after the image was made
    assert "Install the Mono app host packages" not in deploy.stdout


def test_changed_input_gives_a_new_image_and_retention_removes_the_old(build):
    """The input changed here is the base image: the first node image (so the second
    build is quick: node_controller finds its packages installed). Retention (keep 1)
    then deletes the first image, which no server uses."""
    [old] = build.images()
    rc, out, seconds = build.run(node_image_base_image=old.id)
    assert rc == 0, out[-4000:]
    record("build after an input change", seconds)
    images = build.images()
    assert [i.id for i in images] != [old.id]
    [new] = images  # keep 1: the old, unused image was deleted by retention
    assert new.properties["monoscape_node_hash"] != old.properties["monoscape_node_hash"]
    assert new.properties["monoscape_base_image"] == old.id
    assert build.servers() == []
    assert build.keypairs() == []


def test_failure_mid_provisioning_leaves_nothing(lab_project_cloud, tmp_path):
    clouds_yaml, cloud, conn = lab_project_cloud
    b = Build(clouds_yaml, cloud, conn, tmp_path)
    try:
        # apt fails in the middle of node_controller, after the builder is up and reached
        rc, out, seconds = b.run(
            node_image_node_vars={
                "mono_runtime_packages": ["mono-runtime", "monoscape-no-such-package"],
            }
        )
        assert rc != 0
        assert "monoscape-no-such-package" in out
        assert "Provisioning the builder" in out
        assert b.servers() == []
        assert b.keypairs() == []
        assert b.images() == []
        record("failed build (apt failure mid-provisioning), cleaned up", seconds)
    finally:
        b.cleanup()
