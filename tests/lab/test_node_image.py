"""The node-controller golden image on the lab cloud (playbooks/node_image.yml),
no mocks, as on a production cloud (the builder has no floating IP: Ansible reaches
it through a bastion, its host keys pinned from its console log): build from
scratch; a second run with the same inputs is skipped and creates nothing; a node
booted from the image serves the health endpoint with no Ansible at all and the
sample app after only unpacking it and starting one mono_runtime instance; a
changed input gives a new image and retention deletes the old unused one; a
failure in the middle of provisioning fails the play and leaves no builder
server, pin or image (checked through the SDK).

Every resource is named with a per-run prefix (monoscape-nc-<hex>-) in an isolated
project, and deleted at the end. Timings are printed (run pytest with -s to see
them) and written to build/logs/node-image-timings.json."""

import json
import os
import pathlib
import shutil
import subprocess
import time
import uuid

import pytest
import yaml
from lab_helpers import instance_exec, wait_until

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


def http_get(env, url, timeout=5):
    """(status, body) of a GET from inside the cloud (on the bastion); status None when
    nothing answered."""
    proc = env.inside(f"curl -s -m {timeout} -w '\\n%{{http_code}}' '{url}'", timeout=timeout + 20)
    body, _, code = proc.stdout.rpartition("\n")
    return (int(code) if code.isdigit() and code != "000" else None), body


def wait_http(env, url, status=200, timeout=180):
    found = {}

    def answered():
        found["last"] = http_get(env, url)
        return found["last"][0] == status

    if wait_until(answered, timeout, interval=0.5) is None:
        raise AssertionError(f"{url} did not answer {status} within {timeout} s (last: {found.get('last')})")
    return found["last"]


class Build:
    """Runs playbooks/node_image.yml for a deployment of its own in an isolated project,
    as on a production cloud: the builder has no floating IP and is reached through a
    bastion (a server with the controller role and a floating IP), its host keys pinned
    from its console log. The inventory is the deployment's: the openstack_servers plugin
    (deployment, SSH settings) and the monoscape settings host_keys.yml reads."""

    def __init__(self, env, workdir):
        self.env, self.conn, self.workdir = env, env.conn, workdir
        self.prefix = f"monoscape-nc-{uuid.uuid4().hex[:6]}-"

    def vars(self, **overrides):
        base = {
            "node_image_cloud": self.env.name,
            "node_image_network": self.env.network.name,
            "node_image_security_groups": [self.env.node_group.name],
            "node_image_availability_zone": "nova",
            "node_image_name_prefix": self.prefix,
            "node_image_controller_address": "192.0.2.30",
            "node_image_deployment": self.env.name,
            "node_image_keypair": self.env.keypair,
            "node_image_known_hosts": str(self.env.state / "known_hosts"),
            "node_image_keep": 1,
            "node_image_ssh_timeout": 180,
        }
        base.update(overrides)
        return base

    def run(self, **overrides):
        vars_file = self.workdir / f"vars-{uuid.uuid4().hex[:6]}.json"
        vars_file.write_text(json.dumps(self.vars(**overrides)))
        return self.env.playbook(PLAYBOOK, "-e", f"@{vars_file}")

    # what exists in the project, by our prefix
    def images(self):
        return sorted(
            (i for i in self.conn.image.images(owner=self.conn.current_project_id) if i.name.startswith(self.prefix)),
            key=lambda i: i.created_at,
        )

    def servers(self):
        return [s for s in self.conn.compute.servers() if s.name.startswith(self.prefix)]

    def pins(self):
        """Server names with pinned host keys in the deployment's known_hosts."""
        path = self.env.state / "known_hosts"
        lines = path.read_text().splitlines() if path.exists() else []
        return {ln.split()[0] for ln in lines if ln.strip() and not ln.startswith("#")}

    def leftovers(self):
        """Builders and their pins: nothing of a build may outlive it."""
        builders = f"{self.prefix}builder-"
        return [s.name for s in self.servers()] + sorted(p for p in self.pins() if p.startswith(builders))

    def cleanup_servers(self):
        for server in self.servers():
            self.conn.compute.delete_server(server)
        for server in self.servers():
            self.conn.compute.wait_for_delete(server, wait=120)

    def cleanup(self):
        self.cleanup_servers()
        for image in self.images():
            self.conn.image.delete_image(image)


class DeploymentEnv:
    """The deployment the builds belong to: a project's network behind a router, the
    nodes' security group (SSH and node ports from the bastion's group), a key pair,
    a bastion with a floating IP, and an inventory as the install runbook describes."""

    def __init__(self, project, external, base):
        self.project, self.conn, self.name = project, project.conn, project.name
        self.state, self.inventory = base / "state", base / "inventory"
        self.state.mkdir(mode=0o700)
        project.clouds_yaml(self.state / "clouds.yaml", self.name)
        key = self.state / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        self.keypair = f"{self.name}-operator"
        self.conn.compute.create_keypair(name=self.keypair, public_key=(self.state / "id_ed25519.pub").read_text())
        self.network, bastion_group = project.operator_network(external)
        self.node_group = self.conn.network.create_security_group(name=f"{self.name}-node")
        for ports in ((22, 22), (9080, 9999)):
            self.conn.network.create_security_group_rule(
                security_group_id=self.node_group.id,
                direction="ingress",
                ethertype="IPv4",
                protocol="tcp",
                port_range_min=ports[0],
                port_range_max=ports[1],
                remote_group_id=bastion_group.id,
            )
        bastion = self.conn.compute.create_server(
            name=f"{self.name}-controller",
            image_id=self.conn.image.find_image("debian-12").id,
            flavor_id=self.conn.compute.find_flavor("m1.tiny").id,
            networks=[{"uuid": self.network.id}],
            security_groups=[{"name": bastion_group.name}],
            key_name=self.keypair,
            metadata={"monoscape_deployment": self.name, "monoscape_role": "controller"},
            # as the bundle makes it: the inventory plugin asks Nova for this tag
            tags=[f"monoscape_deployment={self.name}"],
        )
        self.bastion = self.conn.compute.wait_for_server(bastion, interval=0.5, wait=180)
        project.floating_ip(self.bastion, external)
        lab = ROOT / "inventory" / "lab"
        (self.inventory / "group_vars" / "all").mkdir(parents=True)
        (self.inventory / "00-localhost.yml").write_text((lab / "00-localhost.yml").read_text())
        plugin = yaml.safe_load((lab / "10-openstack.yml").read_text())
        plugin.update(
            clouds=[self.name],
            clouds_yaml_path=[str(self.state / "clouds.yaml")],
            deployment=self.name,
            ssh_private_key_file=str(key),
            ssh_known_hosts_file=str(self.state / "known_hosts"),
        )
        (self.inventory / "10-openstack.yml").write_text(yaml.safe_dump(plugin))
        settings = {
            "monoscape_deployment": self.name,
            "monoscape_state_dir": str(self.state),
            "monoscape_operator_cidr": f"{external.host_address}/32",
        }
        (self.inventory / "group_vars" / "all" / "deployment.yml").write_text(yaml.safe_dump(settings))

    def playbook(self, playbook, *args):
        env = dict(
            os.environ,
            OS_CLIENT_CONFIG_FILE=str(self.state / "clouds.yaml"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_CALLBACK_RESULT_FORMAT="json",  # one line per message
        )
        started = time.monotonic()
        proc = subprocess.run(
            ["ansible-playbook", "-i", str(self.inventory), str(playbook), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started

    def inside(self, command, timeout=30):
        """A shell command on the bastion, inside the cloud (the hypervisor's podman exec)."""
        return instance_exec(self.bastion.id, command, timeout=timeout)


@pytest.fixture(scope="module")
def deployment_env(lab_project_factory, lab_external, tmp_path_factory):
    """An isolated project (deleted with what is left in it at the end of the session)."""
    return DeploymentEnv(lab_project_factory("nc"), lab_external, tmp_path_factory.mktemp("nc-deployment"))


@pytest.fixture(scope="module")
def build(deployment_env, tmp_path_factory):
    """The first build, from scratch, in an isolated project."""
    b = Build(deployment_env, tmp_path_factory.mktemp("node-image"))
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
    assert build.leftovers() == []


def test_same_inputs_skip_the_build(build):
    before = [(i.id, i.updated_at) for i in build.images()]
    rc, out, seconds = build.run()
    assert rc == 0, out[-4000:]
    record("build again, same inputs (skipped)", seconds)
    assert "nothing to build" in out
    assert "changed=0" in out.split("PLAY RECAP")[1]
    assert "TASK [node_image : Create the builder server" not in out
    assert [(i.id, i.updated_at) for i in build.images()] == before
    assert build.leftovers() == []


def test_node_from_image_serves_without_provisioning(build, tmp_path):
    """Boot a node from the image and time it to serving; nothing re-provisions it."""
    [image] = build.images()
    try:
        serve_sample_app(build, image, tmp_path)
    finally:
        build.cleanup_servers()


def serve_sample_app(build, image, tmp_path):
    env, conn = build.env, build.conn
    started = time.monotonic()
    server = conn.compute.create_server(
        name=build.prefix + "node",
        image_id=image.id,
        flavor_id=conn.compute.find_flavor("m1.small").id,
        key_name=env.keypair,
        networks=[{"uuid": env.network.id}],
        security_groups=[{"name": env.node_group.name}],
        availability_zone="nova",
        metadata={"monoscape_deployment": env.name, "monoscape_role": "node"},
        tags=[f"monoscape_deployment={env.name}"],
    )
    server = conn.compute.wait_for_server(server, wait=180)
    ip = next(a["addr"] for addrs in server.addresses.values() for a in addrs if a["version"] == 4)
    # no Ansible yet: the node controller came with the image
    wait_http(env, f"http://{ip}:{HEALTH_PORT}/health")
    record("server create -> node health 200 (golden image)", time.monotonic() - started)
    doc = json.loads(http_get(env, f"http://{ip}:{HEALTH_PORT}/status")[1])
    assert doc["image"]["hash"] == image.properties["monoscape_node_hash"]
    assert doc["controller"]["address"] == "192.0.2.30"
    # the node is reached as every node is: pinned keys, through the bastion
    rc, out, _ = env.playbook(ROOT / "playbooks" / "host_keys.yml")
    assert rc == 0, out[-3000:]
    assert server.name in build.pins()
    shutil.copy(SAMPLE_PACKAGE, tmp_path / "hello.zip")
    rc, out, _ = env.playbook(
        SAMPLE_PLAY,
        "--limit",
        server.name,
        "-e",
        json.dumps(
            {
                "sample_package": str(tmp_path / "hello.zip"),
                "sample_release": "/srv/monoscape/apps/demo/hello/releases/1.0.0",
                "sample_instance": SAMPLE,
                "ansible_python_interpreter": "/usr/bin/python3",
            }
        ),
    )
    assert rc == 0, out[-4000:]
    nonce = uuid.uuid4().hex
    _, body = wait_http(env, f"http://{ip}:{SAMPLE['port']}/{SAMPLE['tenant']}/{SAMPLE['app']}/?q={nonce}")
    record("server create -> sample app 200 (golden image + unpack + 1 instance)", time.monotonic() - started)
    assert "Hello from Monoscape sample app" in body
    # the deploy step installed nothing: no apt run on the node after the image was made
    assert "Install the Mono app host packages" not in out


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
    assert build.leftovers() == []


def test_failure_mid_provisioning_leaves_nothing(deployment_env, tmp_path):
    b = Build(deployment_env, tmp_path)
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
        assert b.leftovers() == []
        assert b.images() == []
        record("failed build (apt failure mid-provisioning), cleaned up", seconds)
    finally:
        b.cleanup()
