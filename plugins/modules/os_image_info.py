#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_image_info
short_description: Glance images by name, id or properties, with the servers that use them
description:
  - Lists the images the connection can see (or only the project's own), filtered by name or id and by
    custom properties, with their custom properties separated from Glance's fields.
  - With O(servers=true), each image also lists the servers of the project booted from it, which is
    what an image retention policy needs to know before deleting.
  - Never fails because nothing matches (the list is empty); read-only, so check mode changes nothing.
version_added: 0.1.0
author: Monoscape developers
options:
  name:
    description:
      - Image name or id. Omitted means every image that matches the other filters.
    type: str
  own:
    description:
      - Only images owned by the connection's project (the ones it may delete). With C(false), public,
        shared and community images it can see are listed too.
    type: bool
    default: false
  properties:
    description:
      - Custom image properties (strings) an image must carry, with these exact values.
    type: dict
  servers:
    description:
      - Add RV(images[].servers), the project's servers booted from each image (one server list call
        per image found, filtered by the image, so the cost does not grow with the project's servers).
    type: bool
    default: false
extends_documentation_fragment:
  - monoscape.paas.openstack
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: The base image of the node image build
  monoscape.paas.os_image_info:
    cloud: monoscape
    name: debian-12
  register: base

- name: Our node images, and the servers that use them
  monoscape.paas.os_image_info:
    cloud: monoscape
    own: true
    properties:
      monoscape_role: node
    servers: true
  register: node_images
"""

RETURN = r"""
images:
  description: Matching images, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Image id.
      type: str
      sample: 6f2c1b1a-9c1e-4d0e-9d1e-1a2b3c4d5e6f
    name:
      description: Image name.
      type: str
      sample: monoscape-node-3f2a91c04b1e
    status:
      description: Glance status (C(active), C(queued), C(saving), C(killed), ...).
      type: str
      sample: active
    owner:
      description: Id of the owning project.
      type: str
      sample: 0d6c3e1f5a4b4c3d9e8f7a6b5c4d3e2f
    visibility:
      description: Glance visibility.
      type: str
      sample: private
    created_at:
      description: Creation time (ISO 8601, UTC).
      type: str
      sample: "2026-11-25T18:52:48Z"
    updated_at:
      description: Last update time.
      type: str
      sample: "2026-11-25T18:53:02Z"
    size:
      description: Size in bytes (null while no data).
      type: int
      sample: 4096
    protected:
      description: Whether the image is protected from deletion.
      type: bool
      sample: false
    properties:
      description: Custom properties (everything that is not a Glance field).
      type: dict
      sample: {"monoscape_role": "node", "monoscape_node_hash": "3f2a91c04b1e..."}
    servers:
      description: Servers of the project booted from the image (id and name).
      returned: when O(servers=true)
      type: list
      elements: dict
      sample: [{"id": "3f2a7c44-1b2c-4d5e-8f90-a1b2c3d4e5f6", "name": "acme-node-1"}]
"""

import re
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.openstack import (
    OpenStackModule,
    normalize_metadata,
    sdk_exc,
)

# Glance v2 image fields; every other top-level key is a custom property
GLANCE_FIELDS = frozenset(
    {
        "checksum", "container_format", "created_at", "direct_url", "disk_format", "file", "id", "locations",
        "min_disk", "min_ram", "name", "os_hash_algo", "os_hash_value", "os_hidden", "owner", "protected",
        "schema", "self", "size", "status", "stores", "tags", "updated_at", "virtual_size", "visibility",
    }
)  # fmt: skip
SHOWN = ("id", "name", "status", "owner", "visibility", "created_at", "updated_at", "size", "protected")
UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.IGNORECASE)
PAGE = 200


def shape(image):
    shown = {key: image.get(key) for key in SHOWN}
    shown["properties"] = {k: v for k, v in image.items() if k not in GLANCE_FIELDS}
    return shown


class ImageInfoModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "name": {"type": "str"},
        "own": {"type": "bool", "default": False},
        "properties": {"type": "dict"},
        "servers": {"type": "bool", "default": False},
    }

    def list_images(self, query):
        """Every page of GET /images for ``query``."""
        images, params = [], dict(query, limit=PAGE)
        while True:
            body = self.glance("get", "/images", params=params).json()
            batch = body.get("images", [])
            images.extend(batch)
            if not body.get("next") or not batch:
                return images
            params = dict(query, limit=PAGE, marker=batch[-1]["id"])

    def run(self):
        wanted, problem = normalize_metadata("properties", self.params["properties"])
        if problem:
            self.fail(problem)
        wanted = wanted or {}
        name = self.params["name"]
        query = dict(wanted)  # Glance filters on custom properties given as query parameters
        if self.params["own"]:
            query["owner"] = self.conn.current_project_id
        found = []
        if name and UUID.match(name):
            try:
                found = [self.get_image(name)]
            except sdk_exc.NotFoundException:
                found = []
        if name and not found:
            found = [i for i in self.list_images(dict(query, name=name)) if i.get("name") == name]
        elif not name:
            found = self.list_images(query)
        # the query filters are applied again here: a Glance that ignores one must not widen the answer
        found = [
            i
            for i in found
            if all(i.get(k) == v for k, v in wanted.items())
            and (not self.params["own"] or i.get("owner") == self.conn.current_project_id)
        ]
        images = sorted((shape(i) for i in found), key=lambda i: (i["created_at"] or "", i["id"]), reverse=True)
        if self.params["servers"]:
            for image in images:
                users = self.call(lambda i=image["id"]: list(self.conn.compute.servers(details=False, image=i)))
                image["servers"] = sorted(
                    ({"id": s.id, "name": s.name} for s in users if getattr(s, "status", None) != "DELETED"),
                    key=lambda s: s["name"] or "",
                )
        return {"changed": False, "images": images}


def main():
    ImageInfoModule()()


if __name__ == "__main__":
    main()
