"""The lab's podman objects (instance containers, networks, snapshot images),
found by their labels monoscape.lab.dir / monoscape.lab.cloud."""

import json
import os
import subprocess

from .settings import LABEL_CLOUD, LABEL_DIR

LABEL_ROLE = "monoscape.lab.role"
LABEL_INSTANCE = "monoscape.lab.instance"
LABEL_NETWORK = "monoscape.lab.network"
LABEL_IMAGE = "monoscape.lab.image"


class Podman:
    def __init__(self, settings, log=None):
        self.s = settings
        self.log = log
        self.env = dict(os.environ, CONTAINERS_CONF=str(settings.containers_conf))

    def run(self, *args, check=False):
        proc = subprocess.run(["podman", *args], capture_output=True, text=True, env=self.env, check=False)
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"podman {' '.join(args)} -> {proc.returncode} {proc.stderr.strip()[:300]}\n")
        if check and proc.returncode:
            raise RuntimeError(f"podman {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def _json(self, *args):
        proc = self.run(*args)
        if proc.returncode or not proc.stdout.strip():
            return []
        return json.loads(proc.stdout)

    def _mine(self, labels):
        return (labels or {}).get(LABEL_DIR) == str(self.s.lab_dir)

    def containers(self):
        """[{name, state, labels}] of this lab's containers."""
        rows = self._json("ps", "-a", "--filter", f"label={LABEL_DIR}={self.s.lab_dir}", "--format", "json")
        return [
            {"name": r["Names"][0], "state": r.get("State", ""), "labels": r.get("Labels") or {}}
            for r in rows
            if self._mine(r.get("Labels"))
        ]

    def networks(self):
        rows = self._json("network", "ls", "--format", "json")
        return [{"name": r["name"], "labels": r.get("labels") or {}} for r in rows if self._mine(r.get("labels"))]

    def images(self):
        rows = self._json("images", "--filter", f"label={LABEL_DIR}={self.s.lab_dir}", "--format", "json")
        out = []
        for r in rows:
            if not self._mine(r.get("Labels")):
                continue
            out.append({"id": r["Id"], "names": r.get("Names") or [], "labels": r.get("Labels") or {}})
        return out

    def remove_containers(self, names):
        if names:
            self.run("rm", "-f", "-t", "0", *names)

    def stop_containers(self, names):
        if names:
            self.run("stop", "-t", "10", *names)

    def remove_networks(self, names):
        for name in names:
            self.run("network", "rm", "-f", name)

    def remove_images(self, ids):
        for image_id in ids:
            self.run("rmi", "-f", image_id)

    def purge(self):
        """Remove every container, network and image of this lab."""
        self.remove_containers([c["name"] for c in self.containers()])
        self.remove_networks([n["name"] for n in self.networks()])
        self.remove_images([i["id"] for i in self.images()])

    def orphans(self, cloud_id, instances, networks, images):
        """Objects of this lab that the cloud does not know (any more):
        another cloud id (a previous init), or an instance / network / image
        that is not in the databases. Returns (containers, networks, images)."""
        containers = [
            c["name"]
            for c in self.containers()
            if c["labels"].get(LABEL_CLOUD) != cloud_id
            or c["labels"].get(LABEL_ROLE) == "sysprep"
            or (c["labels"].get(LABEL_ROLE) == "instance" and c["labels"].get(LABEL_INSTANCE) not in instances)
        ]
        nets = [
            n["name"]
            for n in self.networks()
            if n["labels"].get(LABEL_CLOUD) != cloud_id or n["labels"].get(LABEL_NETWORK) not in networks
        ]
        imgs = [
            i["id"]
            for i in self.images()
            if i["labels"].get(LABEL_CLOUD) != cloud_id or i["labels"].get(LABEL_IMAGE) not in images
        ]
        return containers, nets, imgs
