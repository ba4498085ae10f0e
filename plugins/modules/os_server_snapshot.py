#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_server_snapshot
short_description: Snapshot a Nova server to a Glance image, idempotent by image name
description:
  - Makes sure the project owns an active image named O(name) made from O(server) (Nova's create-image
    action), with the given O(properties); or that no image of that name is left.
  - Idempotent by name - an active image of that name is kept (its properties are updated), a snapshot
    still being saved is waited for, and leftovers of failed snapshots (C(queued), C(killed)) are deleted
    and the snapshot is taken again. O(replace=true) takes a new snapshot and deletes the old image
    once the new one is active (to rebuild a golden image).
  - Waits until the image is C(active) (O(wait), O(timeout)); a snapshot that fails is deleted and the
    task fails.
  - Check mode and C(--diff) supported. openstack.cloud has no snapshot module.
version_added: 0.1.0
author: Monoscape developers
options:
  name:
    description:
      - Name of the snapshot image (1 to 255 characters).
    type: str
    required: true
  properties:
    description:
      - Image properties the snapshot must carry (strings), for example the version of what was
        provisioned. Properties not listed are left alone.
    type: dict
  replace:
    description:
      - Take a new snapshot even when an active image of that name exists, then delete the old one(s).
    type: bool
    default: false
  server:
    description:
      - Name or id of the server to snapshot. Required when a snapshot has to be taken.
    type: str
  state:
    description:
      - C(present) makes sure the snapshot exists, C(absent) deletes every image of that name in the project.
    type: str
    choices: [absent, present]
    default: present
extends_documentation_fragment:
  - monoscape.paas.openstack
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Golden image from the provisioned builder
  monoscape.paas.os_server_snapshot:
    cloud: monoscape
    server: monoscape-builder
    name: monoscape-node-controller-3f2a91c
    properties:
      monoscape_image: node-controller
      monoscape_content: 3f2a91c

- name: Remove an old golden image
  monoscape.paas.os_server_snapshot:
    cloud: monoscape
    name: monoscape-node-controller-1a2b3c4
    state: absent
"""

RETURN = r"""
image:
  description: The snapshot image (Glance's fields). In check mode, what it would look like.
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: Image id (empty in check mode when a snapshot would be taken).
      type: str
      sample: 0d6c3e1f-5a4b-4c3d-9e8f-7a6b5c4d3e2f
    name:
      description: Image name.
      type: str
      sample: monoscape-node-controller-3f2a91c
    status:
      description: Glance status.
      type: str
      sample: active
    instance_uuid:
      description: Id of the server the snapshot was taken from.
      type: str
      sample: 3f2a7c44-1b2c-4d5e-8f90-a1b2c3d4e5f6
snapshot_taken:
  description: Whether a snapshot was (or would be) taken by this task.
  returned: when O(state=present)
  type: bool
  sample: true
deleted:
  description: Ids of images deleted (replaced, failed leftovers, or all with O(state=absent)).
  returned: always
  type: list
  elements: str
  sample: []
"""

import contextlib
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.openstack import (
    ModuleFailure,
    OpenStackModule,
    check_text,
    normalize_metadata,
)

GARBAGE = {"queued", "killed", "deleted", "pending_delete"}
FAILED = GARBAGE - {"queued"}  # a snapshot starts out queued
IN_PROGRESS = {"saving", "uploading", "importing"}
HIDDEN_FIELDS = {"file", "schema", "locations", "direct_url", "self"}
SNAPSHOTTABLE = {"ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"}


def public(image):
    return {k: v for k, v in image.items() if k not in HIDDEN_FIELDS}


class ServerSnapshotModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "name": {"type": "str", "required": True},
        "properties": {"type": "dict"},
        "replace": {"type": "bool", "default": False},
        "server": {"type": "str"},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
    }

    def summary(self, image):
        if not image:
            return {}
        keys = ["id", "status", "instance_uuid", *sorted(self.params["properties"] or {})]
        return {k: image.get(k) for k in keys}

    def wait_active(self, image_id, name):
        return self.wait_for(
            lambda: self.get_image(image_id),
            ready=lambda i: i.get("status") == "active",
            failed=lambda i: (
                f"Glance set status {i.get('status')}" if i.get("status") in GARBAGE - {"queued"} else None
            ),
            what=f"snapshot {name!r} to become active",
        )

    def run(self):
        name = self.params["name"]
        problem = check_text("image name", name)
        if problem:
            self.fail(f"{problem}; nothing was changed")
        images = self.own_images(name)
        if self.params["state"] == "absent":
            return self.absent(images)
        wanted, problem = normalize_metadata("properties", self.params["properties"])
        if problem:
            self.fail(f"{problem}; nothing was changed")
        garbage = [i for i in images if i.get("status") in GARBAGE]
        usable = [i for i in images if i.get("status") == "active" or i.get("status") in IN_PROGRESS]
        if usable and not self.params["replace"]:
            return self.keep(usable, garbage, wanted or {})
        return self.take(usable, garbage, wanted or {})

    def absent(self, images):
        protected = [i["id"] for i in images if i.get("protected")]
        if protected:
            self.fail(f"image(s) {', '.join(protected)} are protected; unprotect them first")
        if images and not self.check_mode:
            for image in images:
                self.delete_image(image)
        ids = [i["id"] for i in images]
        return {"changed": bool(ids), "deleted": ids, "before": {"images": ids}, "after": {"images": []}}

    def keep(self, usable, garbage, wanted):
        """A snapshot of that name exists: wait for it if it is being saved, set its properties,
        drop leftovers of failed attempts."""
        image = usable[0]
        if len(usable) > 1:
            self.warn(f"{len(usable)} images are named {image['name']!r}; managing the oldest, {image['id']}")
        if image["status"] != "active" and self.params["wait"] and not self.check_mode:
            image = self.wait_active(image["id"], image["name"])
        ops = self.property_ops(image, wanted)
        before = self.summary(image)
        if not self.check_mode:
            for old in garbage:
                self.delete_image(old)
            if ops:
                image = self.patch_image(image["id"], ops)
        elif ops:
            image = dict(image, **wanted)
        return {
            "changed": bool(ops or garbage),
            "snapshot_taken": False,
            "deleted": [i["id"] for i in garbage],
            "image": public(image),
            "before": before,
            "after": self.summary(image),
        }

    def take(self, usable, garbage, wanted):
        """Snapshot the server, wait for the image, then delete what it replaces."""
        name = self.params["name"]
        if not self.params["server"]:
            self.fail(f"no active image named {name!r} exists; give server to take the snapshot; nothing was changed")
        compute = self.conn.compute
        server = self.find("server", compute.find_server, self.params["server"], listing=compute.servers)
        if server.status not in SNAPSHOTTABLE:
            self.fail(
                f"server {self.params['server']!r} is {server.status}; a snapshot needs it"
                f" {', '.join(sorted(SNAPSHOTTABLE))}; nothing was changed"
            )
        doomed = usable + garbage if self.params["replace"] else garbage
        protected = [i["id"] for i in doomed if i.get("protected")]
        if protected:
            self.fail(f"image(s) {', '.join(protected)} named {name!r} are protected; unprotect them first")
        result = {
            "changed": True,
            "snapshot_taken": True,
            "deleted": [i["id"] for i in doomed],
            "before": self.summary(usable[0]) if usable else {},
        }
        if self.check_mode:
            image = dict(wanted, id="", name=name, status="active", instance_uuid=server.id)
            return dict(result, image=image, after=self.summary(image))
        created = self.call(compute.create_server_image, server.id, name, metadata=wanted or None)
        try:
            image = self.wait_active(created.id, name) if self.params["wait"] else self.get_image(created.id)
            ops = self.property_ops(image, wanted)
            if ops:
                image = self.patch_image(created.id, ops)
        except ModuleFailure as failure:
            with contextlib.suppress(Exception):  # best effort; the snapshot failure is what matters
                self.delete_image({"id": created.id, "name": name})
            raise ModuleFailure(f"{failure.msg}; the failed snapshot image {created.id} was deleted") from None
        for old in doomed:
            self.delete_image(old)
        return dict(result, image=public(image), after=self.summary(image))


def main():
    ServerSnapshotModule()()


if __name__ == "__main__":
    main()
