#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_image
short_description: Upload a local file to Glance, idempotent by content checksum
description:
  - Makes sure the project owns an image named O(name) whose data is the content of O(filename), with
    the given formats, visibility, tags and properties; or that no image of that name is left.
  - Idempotence is by content - the file's hash is compared with Glance's (C(os_hash_value), else the
    MD5 C(checksum)). The same content is never uploaded twice; a changed file uploads a new image and
    deletes the old one (O(replace=true)) or fails with the two checksums (O(replace=false)).
  - Images left C(queued) or C(killed) by an interrupted upload do not count as "the image exists"
    (a trap of other image modules); they are removed when a new upload is made.
  - The upload is verified against the local hash; an upload that fails or does not match is deleted,
    so a failed task leaves no half image behind.
  - Check mode (hashes are computed, nothing is sent) and C(--diff) supported.
version_added: 0.1.0
author: Monoscape developers
options:
  container_format:
    description:
      - Container format of the image.
    type: str
    choices: [aki, ami, ari, bare, docker, ova, ovf]
    default: bare
  disk_format:
    description:
      - Disk format of the image.
    type: str
    choices: [aki, ami, ari, iso, ploop, qcow2, raw, vdi, vhd, vhdx, vmdk]
    default: qcow2
  filename:
    description:
      - File on the control node with the image data. Required with O(state=present).
    type: path
  min_disk:
    description:
      - Minimum disk size in GiB a server needs to boot the image.
    type: int
  min_ram:
    description:
      - Minimum RAM in MiB a server needs to boot the image.
    type: int
  name:
    description:
      - Image name (1 to 255 characters). Only images of the connection's project are considered.
    type: str
    required: true
  properties:
    description:
      - Image properties to set (strings). Properties not listed are left alone.
    type: dict
  protected:
    description:
      - Whether the image is protected from deletion.
    type: bool
  replace:
    description:
      - When an image of that name exists with other content, upload the new content as a new image and
        delete the old one once the new one is active. With C(false), fail instead.
    type: bool
    default: true
  state:
    description:
      - C(present) uploads or updates, C(absent) deletes every image of that name in the project.
    type: str
    choices: [absent, present]
    default: present
  tags:
    description:
      - Tags the image must carry (others are removed). Left alone when not given.
    type: list
    elements: str
  visibility:
    description:
      - Who can see the image. Left unchanged when not given (Glance's default on create).
    type: str
    choices: [community, private, public, shared]
extends_documentation_fragment:
  - monoscape.paas.openstack
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: The base image is in Glance (uploaded only when the file changes)
  monoscape.paas.os_image:
    cloud: monoscape
    name: debian-12
    filename: /var/cache/images/debian-12-genericcloud-amd64.qcow2
    disk_format: qcow2
    min_disk: 2
    properties:
      os_distro: debian
      os_version: "12"

- name: The image is gone
  monoscape.paas.os_image:
    cloud: monoscape
    name: debian-12
    state: absent
"""

RETURN = r"""
image:
  description: The image after the task (in check mode, what it would look like). Glance's own fields.
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: Image id (empty in check mode when an upload would be made).
      type: str
      sample: 6f2c1b1a-9c1e-4d0e-9d1e-1a2b3c4d5e6f
    name:
      description: Image name.
      type: str
      sample: debian-12
    status:
      description: Glance status.
      type: str
      sample: active
    checksum:
      description: MD5 of the data.
      type: str
      sample: 9e107d9d372bb6826bd81d3542a419d6
    os_hash_algo:
      description: Algorithm of O(image.os_hash_value).
      type: str
      sample: sha512
    os_hash_value:
      description: Glance's secure hash of the data.
      type: str
      sample: 07e547d9586f6a73f73fbac0435ed76951218fb7d0c8d788a309d785436bbb64...
    size:
      description: Size in bytes.
      type: int
      sample: 332857344
uploaded:
  description: Whether image data was (or would be) uploaded by this task.
  returned: when O(state=present)
  type: bool
  sample: false
deleted:
  description: Ids of images deleted (replaced ones, leftovers of failed uploads, or all with O(state=absent)).
  returned: always
  type: list
  elements: str
  sample: []
local_hashes:
  description: Hashes of O(filename) (C(md5), C(sha256), C(sha512)).
  returned: when O(state=present)
  type: dict
  sample: {"md5": "9e107d9d372bb6826bd81d3542a419d6", "sha256": "…", "sha512": "…"}
"""

import contextlib
import hashlib
import os
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.openstack import (
    ModuleFailure,
    OpenStackModule,
    check_text,
    normalize_metadata,
    sdk_exc,
)

GARBAGE = {"queued", "killed", "deleted", "pending_delete"}
FAILED = GARBAGE - {"queued"}
HIDDEN_FIELDS = {"file", "schema", "locations", "direct_url", "self"}
CHUNK = 1024 * 1024


def file_hashes(path):
    """md5, sha256 and sha512 of a file, read once."""
    sums = {
        "md5": hashlib.md5(usedforsecurity=False),
        "sha256": hashlib.sha256(),
        "sha512": hashlib.sha512(),
    }
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            for digest in sums.values():
                digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in sums.items()}


def same_content(image, hashes):
    """True/False when the image's hash can be compared with ours, None when Glance has none."""
    algo, value = image.get("os_hash_algo"), image.get("os_hash_value")
    if algo and value and algo in hashes:
        return value == hashes[algo]
    if image.get("checksum"):
        return image["checksum"] == hashes["md5"]
    return None


def public(image):
    return {k: v for k, v in image.items() if k not in HIDDEN_FIELDS}


class ImageModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "container_format": {
            "type": "str",
            "default": "bare",
            "choices": ["aki", "ami", "ari", "bare", "docker", "ova", "ovf"],
        },
        "disk_format": {
            "type": "str",
            "default": "qcow2",
            "choices": ["aki", "ami", "ari", "iso", "ploop", "qcow2", "raw", "vdi", "vhd", "vhdx", "vmdk"],
        },
        "filename": {"type": "path"},
        "min_disk": {"type": "int"},
        "min_ram": {"type": "int"},
        "name": {"type": "str", "required": True},
        "properties": {"type": "dict"},
        "protected": {"type": "bool"},
        "replace": {"type": "bool", "default": True},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
        "tags": {"type": "list", "elements": "str"},
        "visibility": {"type": "str", "choices": ["community", "private", "public", "shared"]},
    }
    module_kwargs: ClassVar[dict] = {"required_if": [("state", "present", ["filename"])]}

    # ------------------------------------------------------------------ desired attributes
    def wanted_attributes(self):
        wanted = {}
        for option in ("visibility", "min_disk", "min_ram", "protected"):
            if self.params[option] is not None:
                wanted[option] = self.params[option]
        properties, problem = normalize_metadata("properties", self.params["properties"])
        if problem:
            self.fail(f"{problem}; nothing was changed")
        reserved = sorted(set(properties or {}) & {"id", "name", "status", "owner", "checksum", "size", "tags"})
        if reserved:
            self.fail(f"properties may not set Glance's own fields {', '.join(reserved)}; nothing was changed")
        wanted.update(properties or {})
        return wanted

    def patch_ops(self, image, wanted):
        ops = self.property_ops(image, wanted)
        if self.params["tags"] is not None and sorted(set(self.params["tags"])) != sorted(image.get("tags") or []):
            ops.append({"op": "replace", "path": "/tags", "value": sorted(set(self.params["tags"]))})
        return ops

    # ------------------------------------------------------------------ main
    def run(self):
        name = self.params["name"]
        problem = check_text("image name", name)
        if problem:
            self.fail(f"{problem}; nothing was changed")
        if self.params["state"] == "absent":
            return self.absent(name)
        path = self.params["filename"]
        if not os.path.isfile(path):
            self.fail(
                f"filename {path} does not exist or is not a regular file on the control node; nothing was changed"
            )
        try:
            hashes = file_hashes(path)
        except OSError as exc:
            self.fail(f"cannot read filename {path}: {exc.strerror}; nothing was changed")
        wanted = self.wanted_attributes()
        images = self.own_images(name)
        garbage = [i for i in images if i.get("status") in GARBAGE]
        live = [i for i in images if i.get("status") not in GARBAGE]
        matching = [i for i in live if same_content(i, hashes)]
        result = {"local_hashes": hashes, "deleted": []}
        if matching:
            if garbage:
                self.warn(
                    f"images {', '.join(i['id'] for i in garbage)} named {name!r} are leftovers of failed uploads"
                )
            return dict(result, **self.keep(matching, wanted))
        return dict(result, **self.replace(path, hashes, wanted, live, garbage))

    def absent(self, name):
        images = self.own_images(name)
        protected = [i["id"] for i in images if i.get("protected")]
        if protected:
            self.fail(f"image(s) {', '.join(protected)} named {name!r} are protected; unprotect them first")
        if images and not self.check_mode:
            for image in images:
                self.delete_image(image)
        before = {"images": [i["id"] for i in images]}
        return {"changed": bool(images), "deleted": before["images"], "before": before, "after": {"images": []}}

    def keep(self, matching, wanted):
        """The content is there: bring the attributes of the oldest matching image in line."""
        image = matching[0]
        if len(matching) > 1:
            self.warn(
                f"{len(matching)} images named {image['name']!r} have this content; managing the oldest, {image['id']}"
            )
        ops = self.patch_ops(image, wanted)
        before = self.summary(image)
        if ops and not self.check_mode:
            image = self.patch_image(image["id"], ops)
        elif ops:
            image = dict(image, **{op["path"][1:]: op["value"] for op in ops})
        return {
            "changed": bool(ops),
            "uploaded": False,
            "image": public(image),
            "before": before,
            "after": self.summary(image),
        }

    def replace(self, path, hashes, wanted, live, garbage):
        """Upload the file as a new image, then delete the old content and failed leftovers."""
        name = self.params["name"]
        if live and not self.params["replace"]:
            olds = ", ".join(f"{i['id']} ({i.get('os_hash_algo') or 'md5'} {self.hash_of(i)[:16]}…)" for i in live)
            self.fail(
                f"image {name!r} exists with other content than {path}: {olds} vs local sha512"
                f" {hashes['sha512'][:16]}…; set replace: true to upload the file and delete the old image"
            )
        doomed = live + garbage
        protected = [i["id"] for i in doomed if i.get("protected")]
        if protected:
            self.fail(
                f"image(s) {', '.join(protected)} named {name!r} hold other content and are protected; unprotect them"
                " or choose another name; nothing was changed"
            )
        result = {"changed": True, "uploaded": True, "deleted": [i["id"] for i in doomed]}
        result["before"] = self.summary(live[0]) if live else {}
        if self.check_mode:
            image = {"id": "", "name": name, "status": "active", "checksum": hashes["md5"], "os_hash_algo": "sha512"}
            image.update(os_hash_value=hashes["sha512"], size=os.path.getsize(path), **wanted)
        else:
            image = public(self.upload(name, path, hashes, wanted))
            for old in doomed:
                self.delete_image(old)
        return dict(result, image=image, after=self.summary(image))

    def upload(self, name, path, hashes, wanted):
        body = {
            "name": name,
            "disk_format": self.params["disk_format"],
            "container_format": self.params["container_format"],
            **wanted,
        }
        if self.params["tags"] is not None:
            body["tags"] = sorted(set(self.params["tags"]))
        protect = body.pop("protected", None)  # protect only once the data is in and verified
        image = self.glance("post", "/images", json=body).json()
        try:
            with open(path, "rb") as data:  # a stream cannot be replayed: no retry for the upload itself
                response = self.conn.image.put(
                    f"/images/{image['id']}/file",
                    data=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
            sdk_exc.raise_from_response(response)
            if self.params["wait"]:
                image = self.wait_for(
                    lambda: self.get_image(image["id"]),
                    ready=lambda i: i.get("status") == "active",
                    failed=lambda i: f"Glance set status {i.get('status')}" if i.get("status") in FAILED else None,
                    what=f"image {name!r} to become active",
                )
                if same_content(image, hashes) is False:
                    raise ModuleFailure(
                        f"upload of {path} arrived corrupted (Glance {image.get('os_hash_algo') or 'md5'}"
                        f" {self.hash_of(image)[:16]}… vs local); the image was deleted, try again"
                    )
            else:
                image = self.get_image(image["id"])
            if protect:
                image = self.patch_image(image["id"], [{"op": "replace", "path": "/protected", "value": True}])
        except BaseException:
            # never leave a half-made image behind
            with contextlib.suppress(Exception):  # best effort; the original error is what matters
                self.glance("delete", f"/images/{image['id']}")
            raise
        return image

    @staticmethod
    def hash_of(image):
        return image.get("os_hash_value") or image.get("checksum") or "(none)"

    def summary(self, image):
        keys = ["id", "status", "checksum", "os_hash_value", "visibility", "min_disk", "min_ram", "protected", "tags"]
        keys += sorted(self.params["properties"] or {})
        return {k: image.get(k) for k in keys}


def main():
    ImageModule()()


if __name__ == "__main__":
    main()
