"""Nova compute driver of the lab cloud whose instances are podman containers
(installed by labctl as nova/virt/monoscape_podman.py; compute_driver =
monoscape_podman.PodmanDriver; options in [monoscape_podman]).

* instance = rootful podman container `monoscape-lab-<uuid>` running systemd as
  PID 1, hostname = the server's hostname, with a console (`-t`): the console
  log is what systemd and the image print there (the lab's guest image prints
  the SSH host keys at first boot, as cloud-init does);
* network: the container joins the instance's own network namespace, where
  the VIF plug (monoscape_labnet, as os-vif would) put `eth<n>` with each
  port's MAC, fixed address and the subnet's gateway as default route, the
  other end on the network's bridge in the lab's fabric namespace, where the
  lab-network agent enforces security groups and routers do NAT. The host has
  no path to a fixed address: nothing here connects to one;
* the key pair goes to /root/.ssh/authorized_keys; the server turns ACTIVE once
  sshd answers inside the instance (checked from its own namespace);
* image: a Glance image whose data is a lab manifest names the podman image
  (`debian-12` -> the lab's guest image); any other image boots the base image;
* snapshot = `podman commit` + a sysprep layer (no SSH host keys, empty
  machine-id, no journal), uploaded as a manifest naming the committed image, so
  a server booted from the snapshot starts with what was on the original;
* stop/start/reboot act on the container (the namespace stays);
* state is read from podman (survives nova-compute restarts); every podman
  object carries the labels monoscape.lab.dir / monoscape.lab.cloud, so labctl
  finds and removes the lab's leftovers.

Limits: flavor sizes and volumes are not enforced; no live migration or resize.
"""

import contextlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import monoscape_labnet as labnet
from nova import exception
from nova.compute import power_state, task_states
from nova.conf import CONF
from nova.image import glance as nova_glance
from nova.virt import hardware, monoscape_fake
from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt("base_image", default="localhost/monoscape/debian-systemd:12-v1", help="podman image of plain images"),
    cfg.StrOpt("lab_dir", default="", help="the lab's state dir (label monoscape.lab.dir)"),
    cfg.StrOpt("cloud_id", default="", help="this cloud's id (label monoscape.lab.cloud)"),
    cfg.StrOpt("network_prefix", default="monoscape-lab-", help="prefix of podman containers"),
    cfg.FloatOpt("ssh_wait", default=60.0, help="seconds spawn waits for sshd (0: do not wait)"),
    cfg.StrOpt("podman", default="podman", help="podman executable"),
]
CONF.register_opts(OPTS, group="monoscape_podman")

LABEL_DIR = "monoscape.lab.dir"
LABEL_CLOUD = "monoscape.lab.cloud"
LABEL_ROLE = "monoscape.lab.role"
LABEL_INSTANCE = "monoscape.lab.instance"
LABEL_NETWORK = "monoscape.lab.network"
LABEL_IMAGE = "monoscape.lab.image"
MANIFEST_KIND = "monoscape-lab-podman-image/1"
IMAGE_PROPERTY = "monoscape_lab_podman_image"
SNAPSHOT_REPO = "localhost/monoscape-lab/snapshot"
MANIFEST_MAX = 64 * 1024
# what a clone must not share with its original
SYSPREP_REMOVE = ("etc/ssh/ssh_host_*", "var/lib/dbus/machine-id", "var/log/journal/*", "root/.bash_history")
SYSPREP_EMPTY = ("etc/machine-id",)
STATES = {
    "running": power_state.RUNNING,
    "paused": power_state.PAUSED,
    "created": power_state.SHUTDOWN,
    "configured": power_state.SHUTDOWN,
    "exited": power_state.SHUTDOWN,
    "stopped": power_state.SHUTDOWN,
    "stopping": power_state.RUNNING,
    "dead": power_state.CRASHED,
}
# labctl marks the lab's processes with these; podman's conmon must not inherit them
_MARKERS = ("MONOSCAPE_LAB_DIR", "MONOSCAPE_LAB_SERVICE")


class PodmanError(Exception):
    pass


def podman(*args, check=True, stdin=None, timeout=300):
    conf = CONF.monoscape_podman
    cmd = [conf.podman, *(str(a) for a in args)]
    env = {k: v for k, v in os.environ.items() if k not in _MARKERS}
    started = time.monotonic()
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    LOG.debug("%s -> rc=%s in %.2fs", " ".join(cmd), proc.returncode, time.monotonic() - started)
    if check and proc.returncode != 0:
        raise PodmanError(f"{' '.join(cmd)}: rc={proc.returncode}: {proc.stderr.strip()}")
    return proc


SSH_PROBE = """
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", 22), timeout=1) as sock:
            sock.settimeout(2)
            if sock.recv(4).startswith(b"SSH-"):
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(1)
"""


def wait_ssh(netns, timeout):
    """True once sshd sends its banner inside the instance's own network
    namespace (the host never connects to a fixed address)."""
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", SSH_PROBE, str(timeout)],
        capture_output=True,
        timeout=timeout + 30,
        check=False,
    )
    return proc.returncode == 0


class PodmanDriver(monoscape_fake.SnapshotFakeDriver):
    def __init__(self, virtapi, read_only=False):
        # what placement sees: this machine, CPUs overcommitted 8x (containers idle)
        self.vcpus = 8 * (os.cpu_count() or 1)
        self.memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        self.local_gb = shutil.disk_usage("/var/lib/containers" if os.path.isdir("/var/lib/containers") else "/").total
        self.local_gb //= 2**30
        super().__init__(virtapi, read_only)
        self.host_status_base["hypervisor_type"] = "podman"
        self.conf = CONF.monoscape_podman

    # ------------------------------------------------------------ names and labels
    def _name(self, instance):
        return f"{self.conf.network_prefix}{instance.uuid}"

    def _labels(self, role, **extra):
        labels = {LABEL_DIR: self.conf.lab_dir, LABEL_CLOUD: self.conf.cloud_id, LABEL_ROLE: role, **extra}
        args = []
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        return args

    def _status(self, instance):
        proc = podman("container", "inspect", "--format", "{{.State.Status}}", self._name(instance), check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def _require(self, instance):
        status = self._status(instance)
        if status is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return status

    # ------------------------------------------------------------ image
    def _podman_image(self, context, image_meta):
        """The podman image of a Glance image: its manifest, else the base image."""
        image_id = getattr(image_meta, "id", None)
        size = image_meta.size if image_meta.obj_attr_is_set("size") else None
        ref = None
        if image_id and size is not None and size <= MANIFEST_MAX:
            buf = io.BytesIO()
            nova_glance.API().download(context, image_id, data=buf)
            with contextlib.suppress(ValueError):
                manifest = json.loads(buf.getvalue())
                if isinstance(manifest, dict) and manifest.get("kind") == MANIFEST_KIND:
                    ref = manifest["podman_image"]
        if ref is None:
            LOG.info("image %s is not a lab podman image manifest: booting %s", image_id, self.conf.base_image)
            ref = self.conf.base_image
        if podman("image", "exists", ref, check=False).returncode != 0:
            raise exception.ImageNotFound(image_id=f"{image_id} (podman image {ref} is not on this host)")
        return ref

    # ------------------------------------------------------------ network
    @staticmethod
    def _plug(instance, network_info):
        """Plug every VIF (idempotent); returns the instance's network namespace."""
        vifs = list(network_info or [])
        netns = labnet.vm_ns(instance.uuid)
        labnet.ensure_ns(netns)
        for index, vif in enumerate(vifs):
            net = vif["network"]
            addresses, gateway = [], None
            for subnet in net["subnets"]:
                if subnet["version"] != 4:
                    continue
                prefix = subnet["cidr"].split("/")[1]
                addresses += [f"{i['address']}/{prefix}" for i in subnet["ips"] if i["version"] == 4]
                if index == 0 and subnet.get("gateway") and subnet["gateway"].get("address"):
                    gateway = subnet["gateway"]["address"]
            labnet.plug_vm_port(
                instance.uuid,
                index,
                port_id=vif["id"],
                mac=vif["address"],
                mtu=int((net.get("meta") or {}).get("mtu") or 1500),
                network_id=net["id"],
                addresses=addresses,
                gateway=gateway,
            )
        return netns

    def plug_vifs(self, instance, network_info):
        self._plug(instance, network_info)

    def unplug_vifs(self, instance, network_info):
        labnet.unplug_vm(instance.uuid)

    # ------------------------------------------------------------ lifecycle
    def spawn(  # noqa: PLR0917 - nova virt driver interface
        self,
        context,
        instance,
        image_meta,
        injected_files,
        admin_password,
        allocations,
        network_info=None,
        block_device_info=None,
        power_on=True,
        accel_info=None,
    ):
        started = time.monotonic()
        ref = self._podman_image(context, image_meta)
        name = self._name(instance)
        if self._status(instance) is not None:  # leftover of a failed or rescheduled build
            podman("rm", "-f", "-t", "0", name, check=False)
        netns = self._plug(instance, network_info)
        args = ["run", "-d", "-t", "--name", name, "--systemd=always", "--hostname", instance.hostname or instance.uuid]
        args += ["--no-hosts", "--network", f"ns:{labnet.NETNS_DIR / netns}"]
        # root of a VM may configure its own interfaces (keepalived adds addresses);
        # anti-spoofing outside the instance keeps that honest
        args += ["--cap-add", "NET_ADMIN,NET_RAW"]
        args += self._labels("instance", **{LABEL_INSTANCE: instance.uuid})
        try:
            podman(*args, ref, "/sbin/init")
            if instance.key_data:
                podman(
                    "exec",
                    "-i",
                    name,
                    "sh",
                    "-c",
                    "umask 077; mkdir -p /root/.ssh && cat > /root/.ssh/authorized_keys",
                    stdin=instance.key_data.strip() + "\n",
                )
            status = self._status(instance)
            if status != "running":
                raise PodmanError(f"container {name} is {status} right after start")
            if self.conf.ssh_wait > 0 and not wait_ssh(netns, self.conf.ssh_wait):
                raise PodmanError(f"sshd of {name} did not answer within {self.conf.ssh_wait}s")
            if not power_on:
                podman("stop", "-t", "10", name)
        except Exception:
            LOG.exception("spawn failed, removing %s", name, instance=instance)
            podman("rm", "-f", "-t", "0", name, check=False)
            labnet.unplug_vm(instance.uuid)
            raise
        # the fake parent's resource accounting and interface bookkeeping
        super().spawn(
            context,
            instance,
            image_meta,
            injected_files,
            admin_password,
            allocations,
            network_info,
            block_device_info,
            power_on,
            accel_info,
        )
        LOG.info("spawned %s from %s in %.2fs", name, ref, time.monotonic() - started, instance=instance)

    def destroy(  # noqa: PLR0917 - nova virt driver interface
        self, context, instance, network_info, block_device_info=None, destroy_disks=True, destroy_secrets=True
    ):
        podman("rm", "-f", "-t", "5", self._name(instance), check=False)
        labnet.unplug_vm(instance.uuid)
        if instance.uuid in self.instances:
            super().destroy(context, instance, network_info, block_device_info, destroy_disks, destroy_secrets)

    def cleanup(  # noqa: PLR0917 - nova virt driver interface
        self,
        context,
        instance,
        network_info,
        block_device_info=None,
        destroy_disks=True,
        migrate_data=None,
        destroy_vifs=True,
        destroy_secrets=True,
    ):
        """Nothing outside the container to clean up."""

    def power_off(self, instance, timeout=0, retry_interval=0):
        self._require(instance)
        podman("stop", "-t", str(timeout or 10), self._name(instance))

    def power_on(self, context, instance, network_info, block_device_info=None, accel_info=None, share_info=None):  # noqa: PLR0917 - nova virt driver interface
        self._require(instance)
        self._plug(instance, network_info)
        podman("start", self._name(instance))

    def reboot(  # noqa: PLR0917 - nova virt driver interface
        self,
        context,
        instance,
        network_info,
        reboot_type,
        block_device_info=None,
        bad_volumes_callback=None,
        accel_info=None,
        share_info=None,
    ):
        self._require(instance)
        self._plug(instance, network_info)
        podman("restart", "-t", "10" if reboot_type == "SOFT" else "0", self._name(instance))

    def resume_state_on_host_boot(self, context, instance, network_info, share_info, block_device_info=None):
        self._plug(instance, network_info)
        if self._require(instance) != "running":
            podman("start", self._name(instance))

    def get_info(self, instance, use_cache=True):
        return hardware.InstanceInfo(state=STATES.get(self._require(instance), power_state.NOSTATE))

    def instance_exists(self, instance):
        return self._status(instance) is not None

    def list_instance_uuids(self):
        proc = podman(
            "ps",
            "-a",
            "--filter",
            f"label={LABEL_DIR}={self.conf.lab_dir}",
            "--filter",
            f"label={LABEL_ROLE}=instance",
            "--format",
            f'{{{{index .Labels "{LABEL_INSTANCE}"}}}}',
        )
        return [u for u in proc.stdout.split() if u]

    def list_instances(self):
        return [f"{self.conf.network_prefix}{u}" for u in self.list_instance_uuids()]

    def get_console_output(self, context, instance):
        """The instance's console (its tty), like a VM's serial console log."""
        self._require(instance)
        # bytes, as a hypervisor's console file: nova decodes them (ASCII, replacing the rest)
        env = {k: v for k, v in os.environ.items() if k not in _MARKERS}
        proc = subprocess.run(
            [self.conf.podman, "logs", self._name(instance)], capture_output=True, timeout=60, env=env, check=False
        )
        return proc.stdout + proc.stderr

    def get_host_ip_addr(self):
        return CONF.my_ip

    def manage_image_cache(self, context, all_instances):
        """Periodic ([image_cache] manager_interval): remove snapshot images whose
        Glance image is gone and that no container uses."""
        rows = podman(
            "images",
            "--filter",
            f"label={LABEL_DIR}={self.conf.lab_dir}",
            "--filter",
            f"label={LABEL_ROLE}=snapshot",
            "--format",
            f'{{{{.Id}}}} {{{{index .Labels "{LABEL_IMAGE}"}}}}',
            check=False,
        ).stdout.split("\n")
        used = set(podman("ps", "-a", "--format", "{{.ImageID}}", check=False).stdout.split())
        for row in rows:
            if not row.strip():
                continue
            podman_id, _, image_id = row.partition(" ")
            if podman_id in used or any(u.startswith(podman_id) or podman_id.startswith(u) for u in used):
                continue
            try:
                meta = nova_glance.API().get(context, image_id)
                if meta.get("status") not in ("deleted", "killed"):
                    continue
            except exception.ImageNotFound:
                pass
            except Exception:  # Glance unreachable: keep the image, labctl up reconciles too
                LOG.exception("cannot tell whether Glance image %s still exists", image_id)
                continue
            LOG.info("removing podman image %s of deleted Glance image %s", podman_id, image_id)
            podman("rmi", podman_id, check=False)

    # ------------------------------------------------------------ snapshot
    def snapshot(self, context, instance, image_id, update_task_state):
        try:
            self._snapshot(context, instance, image_id, update_task_state)
        except Exception:  # nova runs snapshots in the background and does not log the cause
            LOG.exception("snapshot %s failed", image_id, instance=instance)
            raise

    def _snapshot(self, context, instance, image_id, update_task_state):
        self._require(instance)
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        started = time.monotonic()
        ref = f"{SNAPSHOT_REPO}:{image_id}"
        labels = [
            "--change",
            f"LABEL {LABEL_DIR}={self.conf.lab_dir}",
            "--change",
            f"LABEL {LABEL_CLOUD}={self.conf.cloud_id}",
            "--change",
            f"LABEL {LABEL_ROLE}=snapshot",
            "--change",
            f"LABEL {LABEL_IMAGE}={image_id}",
        ]
        # podman 4.3's commit has no --label: --change 'LABEL k=v'
        podman("commit", "--pause=false", "-q", *labels, self._name(instance), ref)
        sysprep = f"{self.conf.network_prefix}sysprep-{image_id}"
        podman("create", "--name", sysprep, *self._labels("sysprep"), ref, "/sbin/init")
        try:
            root = pathlib.Path(podman("mount", sysprep).stdout.strip())
            try:
                for pattern in SYSPREP_REMOVE:
                    for path in root.glob(pattern):
                        if path.is_dir() and not path.is_symlink():
                            shutil.rmtree(path)
                        else:
                            path.unlink()
                for rel in SYSPREP_EMPTY:
                    if (root / rel).exists():
                        (root / rel).write_text("")
            finally:
                podman("umount", sysprep, check=False)
            podman(
                "commit",
                "-q",
                "--change",
                'CMD ["/sbin/init"]',
                "--change",
                "STOPSIGNAL SIGRTMIN+3",
                *labels,
                sysprep,
                ref,
            )
        finally:
            podman("rm", "-f", sysprep, check=False)
        digest = podman("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
        LOG.info("committed %s as %s in %.2fs", self._name(instance), ref, time.monotonic() - started)
        update_task_state(task_state=task_states.IMAGE_UPLOADING, expected_state=task_states.IMAGE_PENDING_UPLOAD)
        manifest = json.dumps({"kind": MANIFEST_KIND, "podman_image": ref, "podman_image_id": digest}).encode()
        nova_glance.API().update(
            context,
            image_id,
            monoscape_fake.snapshot_image_meta(instance, {IMAGE_PROPERTY: ref}),
            data=io.BytesIO(manifest),
            purge_props=False,
        )
