#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_server
short_description: Nova server with a drift policy for attributes that cannot change in place
description:
  - Makes sure a server named O(name) exists (and is running or stopped), or is absent. One server per
    name in the project; several servers with the name fail the task instead of picking one.
  - Every input is checked before anything is created - an unknown image, flavor, key pair, network,
    security group or availability zone, or an invalid name or metadata, fails with the names that do
    exist and nothing is created.
  - Attributes Nova can change in place are updated in place (metadata, security groups, power state).
    For the others (image, flavor, key pair, networks, availability zone) the server is compared with
    the task and O(drift) decides - fail with the differences (default), ignore them with a warning,
    or delete and recreate the server. openstack.cloud's server module reports C(changed=false) there.
  - A server that ends in C(ERROR) while being created is deleted and the task fails with Nova's fault
    message; an existing server in C(ERROR) fails the task unless O(drift=recreate).
  - Metadata keys C(monoscape_role), C(monoscape_tenant) and C(monoscape_app) (also settable with the
    options of the same names) are what the C(monoscape.paas.openstack_servers) inventory plugin
    groups hosts by.
  - A server of the same name whose metadata names another C(monoscape_deployment) than the task's is
    never changed (the task fails saying so) - projects are shared between deployments.
  - Check mode and C(--diff) supported.
version_added: 0.1.0
author: Monoscape developers
options:
  availability_zone:
    description:
      - Availability zone to boot in (immutable). Unset lets Nova choose and is not compared.
    type: str
  config_drive:
    description:
      - Attach a config drive when the server is created (not compared afterwards).
    type: bool
    default: false
  drift:
    description:
      - What to do when an existing server differs from the task in an attribute that cannot change
        in place (O(image), O(flavor), O(key_name), O(networks), O(availability_zone)), or is in C(ERROR).
      - C(fail) fails the task and lists the differences; nothing is changed.
      - C(ignore) keeps the server, warns, and returns the differences in RV(drift).
      - C(recreate) deletes the server and creates it again as specified (its disk is lost).
    type: str
    choices: [fail, ignore, recreate]
    default: fail
  flavor:
    description:
      - Name or id of the flavor. Required to create a server.
    type: str
  image:
    description:
      - Name or id of the image to boot from. Required to create a server.
    type: str
  key_name:
    description:
      - Name of the Nova key pair whose public key is installed for login.
    type: str
  metadata:
    description:
      - Server metadata (string keys and values, at most 255 characters each). When given, the server
        carries exactly these keys (plus the C(monoscape_*) options); unlisted keys are removed.
      - Left alone when neither this nor a C(monoscape_*) option is given.
    type: dict
  monoscape_app:
    description:
      - Sets metadata C(monoscape_app); the inventory plugin puts the host in group C(app_<value>).
        Comma-separated for several apps. Each name uses lower-case letters, digits, C(-) or C(_).
    type: str
  monoscape_role:
    description:
      - Sets metadata C(monoscape_role) (for example C(controller), C(node), C(builder)); the inventory
        plugin puts the host in group C(role_<value>).
    type: str
  monoscape_tenant:
    description:
      - Sets metadata C(monoscape_tenant); the inventory plugin puts the host in group C(tenant_<value>).
    type: str
  name:
    description:
      - Server name (1 to 255 characters, no leading/trailing spaces or control characters).
    type: str
    required: true
  networks:
    description:
      - Networks to attach, in order. Each item is a network name or id, or a dictionary with
        C(network) (name or id) and optional C(fixed_ip).
      - Omitted means Nova's C(auto) choice on create, and networks are not compared.
    type: list
    elements: raw
  purge_tags:
    description:
      - With C(true), tags the server carries that O(tags) does not list are removed.
    type: bool
    default: false
  security_groups:
    description:
      - Names or ids of the security groups of the server (project's C(default) when created without).
        Changed in place; omitted means left alone.
    type: list
    elements: str
  state:
    description:
      - C(present) - the server exists (power state left alone).
      - C(started) - exists and is C(ACTIVE) (started if stopped).
      - C(stopped) - exists and is C(SHUTOFF) (stopped if running).
      - C(absent) - deleted (waits until it is gone when O(wait=true)).
    type: str
    choices: [absent, present, started, stopped]
    default: present
  tags:
    description:
      - Nova server tags (at most 60 characters each, no C(/) or C(,)); a new server is created with
        them, an existing one gets the missing ones added in place (other tags stay unless
        O(purge_tags=true)). Listing servers filtered by a tag is one API call, so the Monoscape
        playbooks tag every server C(monoscape_deployment=<deployment>) and look only at their own.
      - Omitted means tags are left alone.
    type: list
    elements: str
  userdata:
    description:
      - User data (cloud-init) given to the server on create. Not readable back from Nova by non-admins,
        so it is not compared afterwards.
    type: str
extends_documentation_fragment:
  - monoscape.paas.openstack
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: The Monoscape controller runs
  monoscape.paas.os_server:
    cloud: monoscape
    name: acme-controller
    image: debian-12
    flavor: m1.small
    key_name: monoscape-deploy
    networks: [monoscape-net]
    security_groups: [monoscape-lb]
    availability_zone: nova
    monoscape_role: controller
    monoscape_tenant: acme
    state: started

- name: Nodes follow the golden image; a new image replaces them
  monoscape.paas.os_server:
    cloud: monoscape
    name: "acme-node-{{ item }}"
    image: monoscape-node-controller
    flavor: m1.small
    networks:
      - network: monoscape-net
        fixed_ip: "10.0.0.{{ 20 + item }}"
    monoscape_role: node
    monoscape_tenant: acme
    tags: [monoscape_deployment=production]
    drift: recreate
  loop: [1, 2]

- name: A cheap server on the fake-driver zone (no real host behind it)
  monoscape.paas.os_server:
    cloud: monoscape
    name: scale-test-1
    image: debian-12
    flavor: m1.tiny
    availability_zone: fake
    metadata:
      purpose: benchmark

- name: Gone
  monoscape.paas.os_server:
    cloud: monoscape
    name: scale-test-1
    state: absent
"""

RETURN = r"""
server:
  description: The server after the task (in check mode, what it would look like).
  returned: when O(state) is not C(absent)
  type: dict
  contains:
    id:
      description: Server id (empty in check mode when the server would be created).
      type: str
      sample: 3f2a7c44-1b2c-4d5e-8f90-a1b2c3d4e5f6
    name:
      description: Server name.
      type: str
      sample: acme-controller
    status:
      description: Nova status (C(ACTIVE), C(SHUTOFF), ...).
      type: str
      sample: ACTIVE
    access_ip:
      description: Address to reach the server at - the first floating IP, else the first fixed IPv4, else any address.
      type: str
      sample: 10.0.0.12
    addresses:
      description: Nova's addresses, by network name.
      type: dict
      sample: {"monoscape-net": [{"addr": "10.0.0.12", "version": 4, "OS-EXT-IPS:type": "fixed"}]}
    availability_zone:
      description: Availability zone.
      type: str
      sample: nova
    flavor:
      description: Flavor name (id with old compute APIs).
      type: str
      sample: m1.small
    image_id:
      description: Id of the image the server was booted from.
      type: str
      sample: 6f2c1b1a-9c1e-4d0e-9d1e-1a2b3c4d5e6f
    key_name:
      description: Key pair name.
      type: str
      sample: monoscape-deploy
    metadata:
      description: Server metadata.
      type: dict
      sample: {"monoscape_role": "controller", "monoscape_tenant": "acme"}
    networks:
      description: Ids of the networks the server has ports on.
      type: list
      elements: str
      sample: [a1b2c3d4-0000-4000-8000-000000000001]
    security_groups:
      description: Names of the server's security groups.
      type: list
      elements: str
      sample: [monoscape-lb]
    tags:
      description: The server's tags.
      type: list
      elements: str
      sample: [monoscape_deployment=production]
drift:
  description: Immutable attributes that differ (empty when none), as found before the task acted.
  returned: when O(state) is not C(absent)
  type: list
  elements: dict
  sample: [{"attribute": "flavor", "current": "m1.tiny", "wanted": "m1.small"}]
recreated:
  description: Whether the server was (or would be) deleted and created again because of O(drift=recreate).
  returned: when O(state) is not C(absent)
  type: bool
  sample: false
"""

import base64
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.monoscape_package import PackageError, check_name
from ansible_collections.monoscape.paas.plugins.module_utils.openstack import (
    ModuleFailure,
    OpenStackModule,
    check_text,
    names_hint,
    normalize_metadata,
    sdk_exc,
)

MONOSCAPE_KEYS = ("monoscape_role", "monoscape_tenant", "monoscape_app")
STABLE = {"ACTIVE", "SHUTOFF", "ERROR", "PAUSED", "SUSPENDED", "SHELVED", "SHELVED_OFFLOADED", "RESCUE"}
REGEX_SPECIAL = set(".^$*+?()[]{}|\\")


DEPLOYMENT_KEY = "monoscape_deployment"


def stuck_advice(server):
    """What to check when a server stays in a transitional state: a build that never
    ends is Nova's compute service (or its scheduler) not doing its part."""
    if server.status != "BUILD":
        return None
    task = server.task_state or "none"
    return (
        f"Nova has not finished building it (task_state {task}): is Nova's compute service"
        " (nova-compute) on its host running"
        + (", and nova-scheduler and nova-conductor?" if task == "scheduling" else "?")
        + " Check it, then run again (the server is kept; raise timeout if the cloud is merely slow)"
    )


def exact_name_regex(name):
    return "^" + "".join("\\" + c if c in REGEX_SPECIAL else c for c in name) + "$"


def access_ip(addresses):
    entries = [a for nets in (addresses or {}).values() for a in nets]
    for kind, version in (("floating", None), ("fixed", 4), ("fixed", None)):
        for entry in entries:
            if entry.get("OS-EXT-IPS:type", "fixed") == kind and version in (None, entry.get("version")):
                return entry.get("addr")
    return entries[0].get("addr") if entries else None


def flavor_label(server):
    flavor = server.flavor
    if flavor is None:
        return None
    return getattr(flavor, "original_name", None) or getattr(flavor, "name", None) or getattr(flavor, "id", None)


class ServerModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "availability_zone": {"type": "str"},
        "config_drive": {"type": "bool", "default": False},
        "drift": {"type": "str", "default": "fail", "choices": ["fail", "ignore", "recreate"]},
        "flavor": {"type": "str"},
        "image": {"type": "str"},
        "key_name": {"type": "str", "no_log": False},
        "metadata": {"type": "dict"},
        "monoscape_app": {"type": "str"},
        "monoscape_role": {"type": "str"},
        "monoscape_tenant": {"type": "str"},
        "name": {"type": "str", "required": True},
        "networks": {"type": "list", "elements": "raw"},
        "purge_tags": {"type": "bool", "default": False},
        "security_groups": {"type": "list", "elements": "str"},
        "state": {"type": "str", "default": "present", "choices": ["absent", "present", "started", "stopped"]},
        "tags": {"type": "list", "elements": "str"},
        "userdata": {"type": "str"},
    }

    # ------------------------------------------------------------------ inputs
    def wanted_metadata(self):
        metadata, problem = normalize_metadata("metadata", self.params["metadata"])
        if problem:
            self.fail(f"{problem}; nothing was changed")
        for key in MONOSCAPE_KEYS:
            value = self.params[key]
            if value is None:
                continue
            try:
                for part in value.split(",") if key == "monoscape_app" else [value]:
                    check_name(key.split("_", 1)[1], part.strip())
            except PackageError as exc:
                self.fail(f"{key}: {exc}; nothing was changed")
            metadata = {} if metadata is None else metadata
            if key in metadata and metadata[key] != value:
                self.fail(f"{key} is {value!r} but metadata.{key} is {metadata[key]!r}; give it once")
            metadata[key] = value
        return metadata

    def wanted_tags(self):
        tags = self.params["tags"]
        if tags is None:
            return None
        for index, tag in enumerate(tags):
            problem = check_text(f"tags[{index}]", tag, max_len=60)
            if problem is None and ("/" in tag or "," in tag):
                problem = f"tags[{index}] {tag!r} has a '/' or ',', which Nova tags cannot have"
            if problem:
                self.fail(f"{problem}; nothing was changed")
        return sorted(set(tags))

    def parse_networks(self):
        if self.params["networks"] is None:
            return None
        parsed = []
        for index, given in enumerate(self.params["networks"]):
            item = {"network": given} if isinstance(given, str) else given
            if not isinstance(item, dict) or not item.get("network") or set(item) - {"network", "fixed_ip"}:
                self.fail(
                    f"networks[{index}] must be a network name or id, or a dictionary with network and"
                    f" optional fixed_ip; got {item!r}"
                )
            parsed.append({"network": str(item["network"]), "fixed_ip": item.get("fixed_ip")})
        return parsed

    def resolve(self, creating):
        """Look up everything the task names; fail (before any change) on what does not exist."""
        compute, network, image_api = self.conn.compute, self.conn.network, self.conn.image
        wanted = {}
        if self.params["image"]:
            image = self.find("image", image_api.find_image, self.params["image"], listing=image_api.images)
            if image.status != "active":
                self.fail(
                    f"image {self.params['image']!r} ({image.id}) is {image.status}, not active; nothing was changed"
                )
            wanted["image"] = image
        elif creating:
            self.fail("image is required to create a server; nothing was changed")
        if self.params["flavor"]:
            wanted["flavor"] = self.find("flavor", compute.find_flavor, self.params["flavor"], listing=compute.flavors)
        elif creating:
            self.fail("flavor is required to create a server; nothing was changed")
        if self.params["key_name"]:
            wanted["key_name"] = self.find(
                "key pair", compute.find_keypair, self.params["key_name"], listing=compute.keypairs
            ).name
        networks = self.parse_networks()
        if networks is not None:
            resolved = []
            for item in networks:
                net = self.find("network", network.find_network, item["network"], listing=network.networks)
                resolved.append({"id": net.id, "name": net.name, "fixed_ip": item["fixed_ip"]})
            wanted["networks"] = resolved
        if self.params["security_groups"] is not None:
            groups = []
            project_id = self.conn.current_project_id
            for name in self.params["security_groups"]:
                groups.append(
                    self.find(
                        "security group",
                        network.find_security_group,
                        name,
                        listing=lambda: network.security_groups(project_id=project_id),
                        project_id=project_id,
                    )
                )
            wanted["security_groups"] = groups
        zone = self.params["availability_zone"]
        if zone:
            zones = self.call(lambda: list(compute.availability_zones()))
            names = {z.name for z in zones if (getattr(z, "state", None) or {}).get("available", True)}
            if zone not in names:
                self.fail(
                    f"unknown availability zone {zone!r}; available zones: {names_hint(names)}; nothing was changed"
                )
            wanted["availability_zone"] = zone
        return wanted

    # ------------------------------------------------------------------ server lookups
    def find_servers(self):
        name = self.params["name"]
        servers = self.call(lambda: list(self.conn.compute.servers(name=exact_name_regex(name))))
        return [s for s in servers if s.name == name and s.status != "DELETED"]

    def get_server(self, server_id):
        return self.call(self.conn.compute.get_server, server_id)

    def server_ports(self, server):
        return self.call(lambda: list(self.conn.network.ports(device_id=server.id)))

    def view(self, server, ports=None):
        if server is None:
            return {}
        group_names = sorted({g.get("name") for g in (server.security_groups or []) if g.get("name")})
        networks = sorted({p.network_id for p in ports}) if ports is not None else None
        return {
            "id": server.id,
            "name": server.name,
            "status": server.status,
            "access_ip": access_ip(server.addresses),
            "addresses": server.addresses or {},
            "availability_zone": server.availability_zone,
            "flavor": flavor_label(server),
            "image_id": (server.image or {}).get("id")
            if isinstance(server.image, dict)
            else getattr(server.image, "id", None),
            "key_name": server.key_name,
            "metadata": dict(server.metadata or {}),
            "networks": networks,
            "security_groups": group_names,
            "tags": sorted(getattr(server, "tags", None) or []),
        }

    # ------------------------------------------------------------------ comparison
    def drift_of(self, server, wanted, ports):
        drift = []

        def add(attribute, current, want):
            drift.append({"attribute": attribute, "current": current, "wanted": want})

        if server.status == "ERROR":
            fault = (server.fault or {}).get("message") if isinstance(server.fault, dict) else None
            add("status", f"ERROR ({fault or 'no fault message'})", "ACTIVE")
        if "image" in wanted:
            image = server.image
            current = image.get("id") if isinstance(image, dict) else getattr(image, "id", None)
            if current != wanted["image"].id:
                add("image", current or "(boot from volume)", f"{wanted['image'].id} ({wanted['image'].name})")
        if "flavor" in wanted:
            flavor = server.flavor
            current_name = getattr(flavor, "original_name", None) or getattr(flavor, "name", None)
            current_id = getattr(flavor, "id", None)
            want = wanted["flavor"]
            if not (current_name == want.name or (current_id and current_id == want.id)):
                add("flavor", current_name or current_id, want.name)
        if "key_name" in wanted and server.key_name != wanted["key_name"]:
            add("key_name", server.key_name, wanted["key_name"])
        if "availability_zone" in wanted and server.availability_zone != wanted["availability_zone"]:
            add("availability_zone", server.availability_zone, wanted["availability_zone"])
        if "networks" in wanted:
            current = sorted(p.network_id for p in ports)
            want = sorted(n["id"] for n in wanted["networks"])
            if current != want:
                add("networks", current, want)
            else:
                ips = {ip["ip_address"] for p in ports for ip in (p.fixed_ips or [])}
                missing = [n["fixed_ip"] for n in wanted["networks"] if n["fixed_ip"] and n["fixed_ip"] not in ips]
                if missing:
                    add("fixed_ips", sorted(ips), sorted(missing))
        return drift

    # ------------------------------------------------------------------ actions
    def create(self, wanted, metadata, tags):
        compute = self.conn.compute
        attrs = {
            "name": self.params["name"],
            "image_id": wanted["image"].id,
            "flavor_id": wanted["flavor"].id,
            "config_drive": self.params["config_drive"],
        }
        if "networks" in wanted:
            nets = []
            for net in wanted["networks"]:
                entry = {"uuid": net["id"]}
                if net["fixed_ip"]:
                    entry["fixed_ip"] = net["fixed_ip"]
                nets.append(entry)
            attrs["networks"] = nets
        else:
            attrs["networks"] = "auto"
        attrs.update(self.optional_attributes(wanted, metadata, tags))

        def recheck():
            found = self.find_servers()
            return found[0] if len(found) == 1 else None

        server = self.call(compute.create_server, recheck=recheck, **attrs)
        if not self.params["wait"]:
            return self.get_server(server.id)
        try:
            server = self.wait_for(
                lambda: self.get_server(server.id),
                ready=lambda s: s.status == "ACTIVE",
                failed=lambda s: "ERROR" if s.status == "ERROR" else None,
                what=f"server {self.params['name']!r} to become ACTIVE",
                stuck=stuck_advice,
            )
        except ModuleFailure:
            current = self.get_server(server.id)
            fault = (current.fault or {}).get("message") if isinstance(current.fault, dict) else None
            if current.status == "ERROR":
                self.delete(current)
                raise ModuleFailure(
                    f"server {self.params['name']!r} failed to build: {fault or 'Nova gave no fault message'}."
                    " The failed server was deleted; nothing is left behind"
                ) from None
            raise
        return server

    def optional_attributes(self, wanted, metadata, tags):
        """What the create call carries only when the task gives it."""
        attrs = {}
        if "key_name" in wanted:
            attrs["key_name"] = wanted["key_name"]
        if "security_groups" in wanted:
            attrs["security_groups"] = [{"name": g.name} for g in wanted["security_groups"]]
        if "availability_zone" in wanted:
            attrs["availability_zone"] = wanted["availability_zone"]
        if metadata:
            attrs["metadata"] = metadata
        if tags:
            attrs["tags"] = tags
        if self.params["userdata"]:
            data = self.params["userdata"].encode()
            attrs["user_data"] = base64.b64encode(data).decode()
        return attrs

    def delete(self, server):
        self.call(self.conn.compute.delete_server, server.id, ignore_missing=True)
        if not self.params["wait"]:
            return

        def gone():
            try:
                found = self.conn.compute.get_server(server.id)
            except sdk_exc.NotFoundException:
                return None
            return found

        self.wait_for(
            gone,
            ready=lambda s: s is None or s.status == "DELETED",
            failed=lambda s: (
                "ERROR while deleting" if s is not None and s.status == "ERROR" and s.task_state is None else None
            ),
            what=f"server {server.name!r} to be deleted",
        )

    def set_power(self, server, target):
        compute = self.conn.compute
        if target == "ACTIVE":
            self.call(compute.start_server, server.id)
        else:
            self.call(compute.stop_server, server.id)
        if not self.params["wait"]:
            return self.get_server(server.id)
        return self.wait_for(
            lambda: self.get_server(server.id),
            ready=lambda s: s.status == target and not s.task_state,
            failed=lambda s: "server went to ERROR" if s.status == "ERROR" else None,
            what=f"server {server.name!r} to become {target}",
        )

    def settle(self, server):
        """Wait out transitional states (BUILD, REBOOT, ...) before comparing or acting."""
        if server.status in STABLE and not server.task_state:
            return server
        if not self.params["wait"]:
            return server
        return self.wait_for(
            lambda: self.get_server(server.id),
            ready=lambda s: s.status in STABLE and not s.task_state,
            what=f"server {server.name!r} to leave {server.status}",
            stuck=stuck_advice,
        )

    # ------------------------------------------------------------------ main
    def run(self):
        name = self.params["name"]
        problem = check_text("server name", name)
        if problem:
            self.fail(f"{problem}; nothing was changed")
        if self.params["userdata"] and len(base64.b64encode(self.params["userdata"].encode())) > 65535:
            self.fail("userdata is larger than Nova's limit (65535 bytes once base64-encoded); nothing was changed")
        servers = self.find_servers()
        if len(servers) > 1:
            self.fail(
                f"{len(servers)} servers are named {name!r} ({', '.join(s.id for s in servers)});"
                " os_server manages one server per name: delete or rename the extras"
            )
        server = servers[0] if servers else None
        if self.params["state"] == "absent":
            if server is None:
                return {"changed": False}
            before = self.view(server)
            if not self.check_mode:
                self.delete(server)
            return {"changed": True, "before": before, "after": {}}

        metadata = self.wanted_metadata()
        tags = self.wanted_tags()
        if server is not None:
            self.check_owner(server, metadata)
        wanted = self.resolve(creating=server is None)
        if server is not None:
            server = self.settle(self.get_server(server.id))
        ports = self.server_ports(server) if server is not None and "networks" in wanted else None
        before = self.view(server, ports)
        drift = self.drift_of(server, wanted, ports or []) if server is not None else []
        result = {"drift": drift, "recreated": False, "before": before}
        if drift and self.apply_drift_policy(server, wanted, drift):
            result["recreated"] = True
            server = None
        if server is None:
            return dict(result, changed=True, **self.build(wanted, metadata, tags))
        changed, after = self.update(server, wanted, metadata, tags, before)
        if changed and not self.check_mode:
            after = self.view(self.get_server(server.id), ports)
        return dict(result, changed=changed, server=after, after=after)

    def check_owner(self, server, metadata):
        """A project holds several deployments: never take over another one's server of the same name."""
        mine = (metadata or {}).get(DEPLOYMENT_KEY)
        theirs = (server.metadata or {}).get(DEPLOYMENT_KEY)
        if mine and theirs and mine != theirs:
            self.fail(
                f"server {server.name!r} ({server.id}) belongs to deployment {theirs!r} (metadata"
                f" {DEPLOYMENT_KEY}), not to {mine!r}; nothing was changed. Give this deployment's"
                " servers names of their own (a name prefix per deployment)"
            )

    def apply_drift_policy(self, server, wanted, drift):
        """Fail, warn, or delete the server (returns True when it is to be created again)."""
        name = self.params["name"]
        lines = "; ".join(f"{d['attribute']}: {d['current']} -> wanted {d['wanted']}" for d in drift)
        policy = self.params["drift"]
        if policy == "fail":
            self.fail(
                f"server {name!r} ({server.id}) differs from the task in what cannot change in place: {lines}."
                " Nothing was changed. Set drift: recreate to replace the server (its disk is lost),"
                " or drift: ignore to keep it",
                drift=drift,
            )
        if policy == "ignore":
            self.warn(f"server {name!r} drifted (kept because drift: ignore): {lines}")
            return False
        missing = [option for option in ("image", "flavor") if option not in wanted]
        if missing:
            self.fail(f"drift: recreate needs {' and '.join(missing)} to build the new server; nothing was changed")
        if not self.check_mode:
            self.delete(server)
        return True

    def build(self, wanted, metadata, tags):
        """Create the server (and stop it for state=stopped); in check mode, describe it."""
        state = self.params["state"]
        if self.check_mode:
            after = self.simulated(wanted, metadata, tags, state)
            return {"server": after, "after": after}
        server = self.create(wanted, metadata, tags)
        if state == "stopped":
            server = self.set_power(server, "SHUTOFF")
        ports = self.server_ports(server) if "networks" in wanted else None
        after = self.view(server, ports)
        return {"server": after, "after": after}

    def update(self, server, wanted, metadata, tags, before):
        """In-place changes: metadata, tags, security groups, power state. Returns (changed, after)."""
        after = dict(before)
        changed = False
        if metadata is not None:
            changed |= self.update_metadata(server, metadata, after)
        if tags is not None:
            changed |= self.update_tags(server, tags, after)
        if "security_groups" in wanted:
            changed |= self.update_security_groups(server, wanted["security_groups"], after)
        target = {"started": "ACTIVE", "stopped": "SHUTOFF"}.get(self.params["state"])
        if target and server.status != target:
            if server.status not in ("ACTIVE", "SHUTOFF"):
                self.fail(
                    f"server {server.name!r} is {server.status}; os_server only starts or stops ACTIVE/SHUTOFF servers"
                )
            changed = True
            after["status"] = target
            if not self.check_mode:
                self.set_power(server, target)
        return changed, after

    def update_metadata(self, server, metadata, after):
        """Exactly the wanted keys when metadata is given, else only the monoscape_* keys."""
        current = dict(server.metadata or {})
        to_set = {k: v for k, v in metadata.items() if current.get(k) != v}
        purge = self.params["metadata"] is not None
        to_delete = sorted(k for k in current if k not in metadata) if purge else []
        if not (to_set or to_delete):
            return False
        after["metadata"] = dict(metadata) if purge else dict(current, **metadata)
        if not self.check_mode:
            if to_set:
                self.call(self.conn.compute.set_server_metadata, server.id, **to_set)
            if to_delete:
                self.call(self.conn.compute.delete_server_metadata, server.id, to_delete)
        return True

    def update_tags(self, server, tags, after):
        """Add the missing tags (one call each, as Nova's API has it); with purge_tags, remove the others."""
        current = set(after["tags"])
        to_add = sorted(set(tags) - current)
        to_remove = sorted(current - set(tags)) if self.params["purge_tags"] else []
        if not (to_add or to_remove):
            return False
        after["tags"] = sorted((current | set(to_add)) - set(to_remove))
        if not self.check_mode:
            for tag in to_add:
                self.call(self.conn.compute.add_tag_to_server, server.id, tag)
            for tag in to_remove:
                self.call(self.conn.compute.remove_tag_from_server, server.id, tag)
        return True

    def update_security_groups(self, server, groups, after):
        current = set(after["security_groups"])
        want = {g.name for g in groups}
        if current == want:
            return False
        after["security_groups"] = sorted(want)
        if not self.check_mode:
            for group in sorted(want - current):
                self.call(self.conn.compute.add_security_group_to_server, server.id, group)
            for group in sorted(current - want):
                self.call(self.conn.compute.remove_security_group_from_server, server.id, group)
        return True

    def simulated(self, wanted, metadata, tags, state):
        return {
            "id": "",
            "name": self.params["name"],
            "status": "SHUTOFF" if state == "stopped" else "ACTIVE",
            "access_ip": None,
            "addresses": {},
            "availability_zone": wanted.get("availability_zone"),
            "flavor": wanted["flavor"].name,
            "image_id": wanted["image"].id,
            "key_name": wanted.get("key_name"),
            "metadata": metadata or {},
            "networks": sorted(n["id"] for n in wanted["networks"]) if "networks" in wanted else None,
            "security_groups": sorted(g.name for g in wanted.get("security_groups", [])) or ["default"],
            "tags": tags or [],
        }


def main():
    ServerModule()()


if __name__ == "__main__":
    main()
