"""An in-memory stand-in for an openstacksdk Connection, for the os_* module unit
tests: just the proxy calls the modules make, with state, so a module can be
run twice (idempotence), in check mode (state untouched) and into errors.

Raw calls (Glance v2, Keystone OS-EC2 and role assignment URLs) answer like
the services do, with response objects that openstack.exceptions.raise_from_response
understands."""

import copy
import itertools
import json
import re
import uuid

from openstack import exceptions as sdk_exc

_ids = itertools.count(1)


def new_id():
    return uuid.UUID(int=next(_ids)).hex


class Res(dict):
    """A resource: attribute and item access, like SDK resources."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def to_dict(self, computed=True):
        return copy.deepcopy(dict(self))


class Response:
    def __init__(self, status, body=None, headers=None):
        self.status_code = status
        self._body = body
        self.headers = {"content-type": "application/json", **(headers or {})}
        self.content = b"" if body is None else json.dumps(body).encode()
        self.text = self.content.decode()
        self.reason = {200: "OK", 201: "Created", 204: "No Content", 404: "Not Found", 409: "Conflict"}.get(status, "")

    def json(self):
        return self._body


def not_found(what):
    return sdk_exc.NotFoundException(message=f"{what} could not be found")


class Calls(list):
    """Names of the mutating calls made, for 'nothing was changed' assertions."""

    def mutations(self):
        return [c for c in self if not c.startswith(("find", "get", "list"))]


class Base:
    def __init__(self, cloud):
        self.cloud = cloud

    def _find(self, items, name_or_id, ignore_missing=True, **query):
        matches = [r for r in items.values() if name_or_id in (r.get("id"), r.get("name"))]
        for key, value in query.items():
            if value is not None:
                matches = [r for r in matches if r.get(key) == value]
        if len(matches) > 1:
            raise sdk_exc.DuplicateResource(f"More than one resource exists with the name '{name_or_id}'.")
        if not matches:
            if ignore_missing:
                return None
            raise not_found(name_or_id)
        return matches[0]

    def _record(self, name):
        self.cloud.calls.append(name)


class Identity(Base):
    def __init__(self, cloud):
        super().__init__(cloud)
        self.domains = {"default": Res(id="default", name="Default")}
        self.projects = {}
        self.users = {}
        self.roles_ = {}
        self.groups = {}
        self.assignments = set()
        self.ec2 = {}  # access -> dict(user_id, tenant_id, access, secret)
        for name in ("admin", "member", "reader"):
            self.add_role(name)

    def add_role(self, name):
        role = Res(id=new_id(), name=name)
        self.roles_[role.id] = role
        return role

    # domains / projects
    def find_domain(self, name_or_id, ignore_missing=True):
        return self._find(self.domains, name_or_id, ignore_missing)

    def find_project(self, name_or_id, ignore_missing=True, **query):
        return self._find(self.projects, name_or_id, ignore_missing, **query)

    def create_project(self, **attrs):
        self._record("create_project")
        project = Res(id=new_id(), description="", is_enabled=True, domain_id="default")
        project.update(attrs)
        self.projects[project.id] = project
        return project

    def update_project(self, project_id, **attrs):
        self._record("update_project")
        self.projects[project_id].update(attrs)
        return self.projects[project_id]

    def delete_project(self, project_id, ignore_missing=True):
        self._record("delete_project")
        self.projects.pop(project_id, None)

    def user_projects(self, user_id):
        return [p for p in self.projects.values() if any(a[1] == p.id for a in self.assignments if a[0] == user_id)]

    # users
    def find_user(self, name_or_id, ignore_missing=True, **query):
        return self._find(self.users, name_or_id, ignore_missing, **query)

    def create_user(self, **attrs):
        self._record("create_user")
        user = Res(id=new_id(), description=None, email=None, default_project_id=None, is_enabled=True)
        user.update(attrs)
        self.users[user.id] = user
        return user

    def update_user(self, user_id, **attrs):
        self._record("update_user")
        self.users[user_id].update(attrs)
        return self.users[user_id]

    def delete_user(self, user_id, ignore_missing=True):
        self._record("delete_user")
        self.users.pop(user_id, None)

    # roles and groups
    def find_role(self, name_or_id, ignore_missing=True):
        return self._find(self.roles_, name_or_id, ignore_missing)

    def roles(self):
        return list(self.roles_.values())

    def find_group(self, name_or_id, ignore_missing=True, **query):
        return self._find(self.groups, name_or_id, ignore_missing, **query)

    def role_assignments(self, **query):
        actor = query.get("user_id") or query.get("group_id")
        target = query.get("scope_project_id") or query.get("scope_domain_id")
        return [Res(role=a[2]) for a in self.assignments if a == (actor, target, query.get("role_id"))]

    # raw calls: role assignment URLs and OS-EC2
    def _raw(self, method, path, json=None, **kwargs):  # noqa: PLR0911 - one fake route per return
        self._record(f"{method} {path}" if method != "get" else f"get {path}")
        match = re.fullmatch(r"/(projects|domains)/(\w+)/(users|groups)/(\w+)/roles/(\w+)", path)
        if match:
            _, target, _, actor, role = match.groups()
            if method == "put":
                if self.cloud.refuse_role_assignment:
                    return Response(
                        403, {"error": {"message": "You are not authorized to perform the requested action"}}
                    )
                self.assignments.add((actor, target, role))
                return Response(204)
            self.assignments.discard((actor, target, role))
            return Response(204)
        match = re.fullmatch(r"/users/(\w+)/credentials/OS-EC2(?:/(\w+))?", path)
        if match:
            user_id, access = match.groups()
            if method == "get":
                creds = [dict(c) for c in self.ec2.values() if c["user_id"] == user_id]
                return Response(200, {"credentials": creds})
            if method == "post":
                cred = {"user_id": user_id, "tenant_id": json["tenant_id"], "access": uuid.uuid4().hex}
                cred["secret"] = uuid.uuid4().hex
                self.ec2[cred["access"]] = cred
                return Response(201, {"credential": dict(cred)})
            if method == "delete":
                if self.ec2.pop(access, None) is None:
                    return Response(404, {"error": {"message": "Could not find credential"}})
                return Response(204)
        if path == "/credentials" and method == "post":
            blob = __import__("json").loads(json["credential"]["blob"])
            cred = {"user_id": json["credential"]["user_id"], "tenant_id": json["credential"]["project_id"], **blob}
            self.ec2[blob["access"]] = cred
            return Response(201, {"credential": {}})
        match = re.fullmatch(r"/credentials/(\w+)", path)
        if match and method == "patch":
            blob = __import__("json").loads(json["credential"]["blob"])
            self.ec2[blob["access"]].update(blob)
            return Response(200, {"credential": {}})
        return Response(404, {"error": {"message": f"no fake route {method} {path}"}})

    def get(self, path, **kwargs):
        return self._raw("get", path, **kwargs)

    def put(self, path, **kwargs):
        return self._raw("put", path, **kwargs)

    def post(self, path, **kwargs):
        return self._raw("post", path, **kwargs)

    def patch(self, path, **kwargs):
        return self._raw("patch", path, **kwargs)

    def delete(self, path, **kwargs):
        return self._raw("delete", path, **kwargs)


class Flavor(Res):
    pass


class Compute(Base):
    def __init__(self, cloud):
        super().__init__(cloud)
        self.flavors_ = {}
        self.keypairs_ = {}
        self.servers_ = {}
        self.zones = ["nova", "fake"]
        self.build_status = "ACTIVE"  # what a new server becomes
        self.console_logs = {}  # server id -> console text, or a list of successive texts
        self.console_building = {}  # server id -> how many console reads answer 409 (still building)
        for name, ram in (("m1.tiny", 256), ("m1.small", 512)):
            flavor = Flavor(id=new_id(), name=name, ram=ram)
            self.flavors_[flavor.id] = flavor

    # flavors and zones
    def find_flavor(self, name_or_id, ignore_missing=True):
        return self._find(self.flavors_, name_or_id, ignore_missing)

    def flavors(self):
        return list(self.flavors_.values())

    def availability_zones(self):
        return [Res(name=z, state={"available": True}) for z in self.zones]

    # key pairs
    def find_keypair(self, name, ignore_missing=True):
        return self._find(self.keypairs_, name, ignore_missing)

    def keypairs(self):
        return list(self.keypairs_.values())

    def create_keypair(self, name, public_key):
        self._record("create_keypair")
        if name in self.keypairs_:
            raise sdk_exc.ConflictException(message=f"Key pair '{name}' already exists.")
        import base64  # noqa: PLC0415
        import hashlib  # noqa: PLC0415

        digest = hashlib.md5(base64.b64decode(public_key.split()[1])).hexdigest()  # noqa: S324 - Nova's format
        keypair = Res(
            id=name,
            name=name,
            public_key=public_key,
            type="ssh",
            fingerprint=":".join(digest[i : i + 2] for i in range(0, 32, 2)),
        )
        self.keypairs_[name] = keypair
        return keypair

    def delete_keypair(self, name, ignore_missing=True):
        self._record("delete_keypair")
        self.keypairs_.pop(name, None)

    # servers
    def servers(self, name=None, **query):
        self._record("list servers" + (f" name={name}" if name else ""))
        found = list(self.servers_.values())
        if name:
            found = [s for s in found if re.search(name, s.name)]
        return [copy.deepcopy(s) for s in found]

    def find_server(self, name_or_id, ignore_missing=True):
        return self._find(self.servers_, name_or_id, ignore_missing)

    def get_server(self, server_id):
        if server_id not in self.servers_:
            raise not_found(f"server {server_id}")
        return copy.deepcopy(self.servers_[server_id])

    def create_server(self, **attrs):
        self._record("create_server")
        cloud = self.cloud
        if attrs.get("availability_zone") and attrs["availability_zone"] not in self.zones:
            raise sdk_exc.BadRequestException(message="The requested availability zone is not available")
        flavor = self.flavors_[attrs["flavor_id"]]
        server = Res(
            id=new_id(),
            name=attrs["name"],
            status=self.build_status,
            task_state=None,
            fault={"message": "No valid host was found."} if self.build_status == "ERROR" else None,
            image=Res(id=attrs["image_id"]),
            flavor=Res(original_name=flavor.name, ram=flavor.ram),
            key_name=attrs.get("key_name"),
            availability_zone=attrs.get("availability_zone") or "nova",
            metadata=dict(attrs.get("metadata") or {}),
            security_groups=[{"name": g["name"]} for g in attrs.get("security_groups") or [{"name": "default"}]],
            addresses={},
            project_id=cloud.project_id,
        )
        nets = attrs.get("networks")
        if nets == "auto":
            nets = [{"uuid": next(iter(cloud.network.networks_))}]
        for index, net in enumerate(nets):
            network = cloud.network.networks_[net["uuid"]]
            ip = net.get("fixed_ip") or f"10.0.0.{10 + len(cloud.network.ports_) + index}"
            port = Res(id=new_id(), device_id=server.id, network_id=network.id, fixed_ips=[{"ip_address": ip}])
            cloud.network.ports_[port.id] = port
            server.addresses.setdefault(network.name, []).append({"addr": ip, "version": 4, "OS-EXT-IPS:type": "fixed"})
        self.servers_[server.id] = server
        return copy.deepcopy(server)

    def get_server_console_output(self, server, length=None):
        """{"output": text}: ``console_logs[server id]`` is a string, or a list of
        what successive calls see (the last one repeats); ``console_building[server
        id]`` calls answer 409 first, like Nova for a server still building."""
        self._record("get_server_console_output")
        server_id = getattr(server, "id", server)
        if server_id not in self.servers_:
            raise not_found(f"Instance {server_id}")
        if self.console_building.get(server_id):
            self.console_building[server_id] -= 1
            raise sdk_exc.ConflictException(
                message=f"Cannot 'get_console_output' instance {server_id} while it is in vm_state building"
            )
        logs = self.console_logs.get(server_id, "")
        if isinstance(logs, str):
            logs = [logs]
        text = logs.pop(0) if len(logs) > 1 else (logs[0] if logs else "")
        if length is not None:
            text = "\n".join(text.splitlines()[-length:])
        return {"output": text}

    def delete_server(self, server_id, ignore_missing=True):
        self._record("delete_server")
        self.servers_.pop(server_id, None)
        for port_id in [p.id for p in self.cloud.network.ports_.values() if p.device_id == server_id]:
            del self.cloud.network.ports_[port_id]
            for fip in self.cloud.network.ips_.values():  # Neutron disassociates them
                if fip.port_id == port_id:
                    fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")

    def start_server(self, server_id):
        self._record("start_server")
        self.servers_[server_id].status = "ACTIVE"

    def stop_server(self, server_id):
        self._record("stop_server")
        self.servers_[server_id].status = "SHUTOFF"

    def set_server_metadata(self, server_id, **metadata):
        self._record("set_server_metadata")
        self.servers_[server_id].metadata.update(metadata)

    def delete_server_metadata(self, server_id, keys):
        self._record("delete_server_metadata")
        for key in keys:
            self.servers_[server_id].metadata.pop(key, None)

    def add_security_group_to_server(self, server_id, group):
        self._record("add_security_group_to_server")
        self.servers_[server_id].security_groups.append({"name": group})

    def remove_security_group_from_server(self, server_id, group):
        self._record("remove_security_group_from_server")
        groups = self.servers_[server_id].security_groups
        groups[:] = [g for g in groups if g["name"] != group]

    def create_server_image(self, server_id, name, metadata=None):
        self._record("create_server_image")
        image = self.cloud.image.add(
            name, status=self.cloud.snapshot_status, instance_uuid=server_id, **(metadata or {})
        )
        return Res(id=image["id"])


class Network(Base):
    def __init__(self, cloud):
        super().__init__(cloud)
        self.networks_ = {}
        self.groups_ = {}
        self.rules_ = {}
        self.ports_ = {}
        self.routers_ = {}
        self.ips_ = {}
        self.fip_activation_polls = 1  # get_ip calls before an associated floating IP turns ACTIVE; None: never
        self.refuse_chosen_fip_address = False  # Neutron's default policy for non-admins
        self.lose_next_fip_answer = False  # create_ip creates, then the answer is lost (503)
        net = Res(id=new_id(), name="private", is_router_external=False)
        self.networks_[net.id] = net

    def find_network(self, name_or_id, ignore_missing=True):
        return self._find(self.networks_, name_or_id, ignore_missing)

    def networks(self):
        return list(self.networks_.values())

    def ports(self, device_id=None, network_id=None):
        return [
            copy.deepcopy(p)
            for p in self.ports_.values()
            if device_id in (None, p.device_id) and network_id in (None, p.network_id)
        ]

    def get_port(self, port_id):
        if port_id not in self.ports_:
            raise not_found(f"Port {port_id}")
        return copy.deepcopy(self.ports_[port_id])

    # test set-up (not SDK calls): networks and routers
    def add_network(self, name, external=False):
        net = Res(id=new_id(), name=name, is_router_external=external)
        self.networks_[net.id] = net
        return net

    def add_router(self, name, gateway=None, interfaces=()):
        """A router with its gateway on network ``gateway`` and interfaces on ``interfaces`` (names)."""
        by_name = {n.name: n.id for n in self.networks_.values()}
        router = Res(
            id=new_id(),
            name=name,
            gateway_network_id=by_name[gateway] if gateway else None,
            interface_network_ids={by_name[i] for i in interfaces},
        )
        self.routers_[router.id] = router
        return router

    # floating IPs: Neutron's rules (reachability, one per fixed IP and network), status by "L3 agent"
    def ips(self, **query):
        found = [
            f for f in self.ips_.values() if all(value is None or f.get(key) == value for key, value in query.items())
        ]
        return [copy.deepcopy(f) for f in found]

    def get_ip(self, fip_id):
        fip = self.ips_.get(fip_id)
        if fip is None:
            raise not_found(f"Floating IP {fip_id}")
        if fip.port_id and fip.status != "ACTIVE" and self.fip_activation_polls is not None:
            fip.polls = fip.get("polls", 0) + 1
            if fip.polls >= self.fip_activation_polls:
                fip.status = "ACTIVE"
        return copy.deepcopy(fip)

    def _router_for(self, fip_network_id, port):
        for router in self.routers_.values():
            if router.gateway_network_id == fip_network_id and port.network_id in router.interface_network_ids:
                return router
        message = (
            f"External network {fip_network_id} is not reachable from subnet {port.network_id}-subnet.  Therefore,"
            f" cannot associate Port {port.id} with a Floating IP."
        )
        raise sdk_exc.NotFoundException(message=message, details=message)

    def _bind(self, fip, port_id, fixed_ip_address):
        """Associate ``fip`` (a stored Res) with a port, as Neutron checks it."""
        port = self.ports_.get(port_id)
        if port is None:
            raise not_found(f"Port {port_id}")
        router = self._router_for(fip.floating_network_id, port)
        fixed = fixed_ip_address or port.fixed_ips[0]["ip_address"]
        if fixed not in [e["ip_address"] for e in port.fixed_ips]:
            raise sdk_exc.BadRequestException(message=f"Port {port.id} does not have fixed ip {fixed}")
        for other in self.ips_.values():
            if (
                other.id != fip.id
                and other.port_id == port.id
                and other.fixed_ip_address == fixed
                and other.floating_network_id == fip.floating_network_id
            ):
                raise sdk_exc.ConflictException(
                    message=f"Cannot associate floating IP {fip.floating_ip_address} ({fip.id}) with port"
                    f" {port.id} using fixed IP {fixed}, as that fixed IP already has a floating IP on external"
                    f" network {fip.floating_network_id}."
                )
        fip.update(port_id=port.id, fixed_ip_address=fixed, router_id=router.id, status="DOWN", polls=0)
        self._sync_addresses()

    def _sync_addresses(self):
        """Nova's view: floating addresses listed next to the fixed ones of each server."""
        for server in self.cloud.compute.servers_.values():
            for entries in server.addresses.values():
                entries[:] = [e for e in entries if e.get("OS-EXT-IPS:type") != "floating"]
            for fip in self.ips_.values():
                port = self.ports_.get(fip.port_id) if fip.port_id else None
                if port is None or port.device_id != server.id:
                    continue
                name = self.networks_[port.network_id].name
                server.addresses.setdefault(name, []).append(
                    {"addr": fip.floating_ip_address, "version": 4, "OS-EXT-IPS:type": "floating"}
                )

    def create_ip(self, **attrs):
        self._record("create_ip")
        network = self.networks_.get(attrs.get("floating_network_id"))
        if network is None or not network.get("is_router_external"):
            raise sdk_exc.BadRequestException(message="Bad floatingip request: network is not external")
        address = attrs.get("floating_ip_address")
        if address and self.refuse_chosen_fip_address:
            raise sdk_exc.ForbiddenException(
                message="(rule:create_floatingip and rule:create_floatingip:floating_ip_address)"
                " is disallowed by policy"
            )
        if address and any(f.floating_ip_address == address for f in self.ips_.values()):
            raise sdk_exc.ConflictException(message=f"IP address {address} already allocated in subnet public-subnet")
        fip = Res(
            id=new_id(),
            floating_ip_address=address or f"203.0.113.{10 + len(self.ips_)}",
            floating_network_id=network.id,
            fixed_ip_address=None,
            port_id=None,
            router_id=None,
            status="DOWN",
            project_id=self.cloud.project_id,
        )
        if attrs.get("port_id"):
            self._bind(fip, attrs["port_id"], attrs.get("fixed_ip_address"))  # checked before it is stored
        self.ips_[fip.id] = fip
        self._sync_addresses()
        if self.lose_next_fip_answer:
            self.lose_next_fip_answer = False
            raise sdk_exc.HttpException(message="503 Service Unavailable (the answer was lost)", response=Response(503))
        return copy.deepcopy(fip)

    def update_ip(self, fip_id, **attrs):
        self._record("update_ip")
        fip = self.ips_.get(fip_id)
        if fip is None:
            raise not_found(f"Floating IP {fip_id}")
        if attrs.get("port_id"):
            self._bind(fip, attrs["port_id"], attrs.get("fixed_ip_address"))
        elif "port_id" in attrs:
            fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")
            self._sync_addresses()
        return copy.deepcopy(fip)

    def delete_ip(self, fip_id, ignore_missing=True):
        self._record("delete_ip")
        if self.ips_.pop(fip_id, None) is None and not ignore_missing:
            raise not_found(f"Floating IP {fip_id}")
        self._sync_addresses()

    def find_security_group(self, name_or_id, ignore_missing=True, project_id=None):
        return self._find(self.groups_, name_or_id, ignore_missing, project_id=project_id)

    def security_groups(self, project_id=None):
        return [g for g in self.groups_.values() if project_id in (None, g.project_id)]

    def create_security_group(self, name, description="", project_id=None):
        self._record("create_security_group")
        group = Res(id=new_id(), name=name, description=description, project_id=project_id or self.cloud.project_id)
        self.groups_[group.id] = group
        for ethertype in ("IPv4", "IPv6"):  # Neutron's default egress rules
            self._add_rule(security_group_id=group.id, direction="egress", ether_type=ethertype)
        return group

    def update_security_group(self, group_id, **attrs):
        self._record("update_security_group")
        self.groups_[group_id].update(attrs)
        return self.groups_[group_id]

    def delete_security_group(self, group_id, ignore_missing=True):
        self._record("delete_security_group")
        self.groups_.pop(group_id, None)

    def _add_rule(self, **attrs):
        rule = Res(
            id=new_id(),
            protocol=None,
            port_range_min=None,
            port_range_max=None,
            remote_ip_prefix=None,
            remote_group_id=None,
        )
        rule.update(attrs)
        self.rules_[rule.id] = rule
        return rule

    def security_group_rules(self, security_group_id):
        return [copy.deepcopy(r) for r in self.rules_.values() if r.security_group_id == security_group_id]

    def create_security_group_rule(self, **attrs):
        self._record("create_security_group_rule")
        assert "ethertype" not in attrs, "the SDK attribute is ether_type"
        attrs.pop("project_id", None)
        attrs.pop("description", None)
        return self._add_rule(**attrs)

    def delete_security_group_rule(self, rule_id, ignore_missing=True):
        self._record("delete_security_group_rule")
        self.rules_.pop(rule_id, None)


class Image(Base):
    """Glance v2: raw calls answer with flat image documents."""

    def __init__(self, cloud):
        super().__init__(cloud)
        self.images_ = {}
        self.data = {}
        self.corrupt_uploads = False

    def add(self, name, status="active", **fields):
        image = {
            "id": new_id(),
            "name": name,
            "status": status,
            "owner": self.cloud.project_id,
            "protected": False,
            "visibility": "shared",
            "tags": [],
            "created_at": f"2026-01-01T00:00:{len(self.images_):02d}Z",
            "checksum": None,
            "os_hash_algo": None,
            "os_hash_value": None,
            **fields,
        }
        self.images_[image["id"]] = image
        return image

    # SDK-style lookups used by os_server
    def find_image(self, name_or_id, ignore_missing=True):
        found = self._find({k: Res(v) for k, v in self.images_.items()}, name_or_id, ignore_missing)
        return found

    def images(self):
        return [Res(v) for v in self.images_.values()]

    def get(self, path, params=None, **kwargs):
        self._record(f"get {path}")
        if path == "/images":
            found = [
                copy.deepcopy(i)
                for i in self.images_.values()
                if i["name"] == params.get("name") and i["owner"] == params.get("owner")
            ]
            return Response(200, {"images": found})
        image = self.images_.get(path.rsplit("/", 1)[-1])
        return Response(200, copy.deepcopy(image)) if image else Response(404, {"message": "not found"})

    def post(self, path, json=None, **kwargs):
        self._record("post /images")
        fields = dict(json)
        name = fields.pop("name")
        image = self.add(name, status="queued", **fields)
        return Response(201, copy.deepcopy(image))

    def put(self, path, data=None, **kwargs):
        self._record("put image data")
        import hashlib  # noqa: PLC0415

        image_id = path.split("/")[2]
        content = data.read()
        if self.corrupt_uploads:
            content += b"!"
        self.images_[image_id].update(
            status="active",
            checksum=hashlib.md5(content).hexdigest(),  # noqa: S324 - Glance's checksum
            os_hash_algo="sha512",
            os_hash_value=hashlib.sha512(content).hexdigest(),
            size=len(content),
        )
        return Response(204)

    def patch(self, path, json=None, **kwargs):
        self._record("patch image")
        image = self.images_[path.rsplit("/", 1)[-1]]
        for op in json:
            image[op["path"][1:]] = op["value"]
        return Response(200, copy.deepcopy(image))

    def delete(self, path, **kwargs):
        self._record("delete image")
        image_id = path.rsplit("/", 1)[-1]
        if self.images_.pop(image_id, None) is None:
            return Response(404, {"message": "not found"})
        return Response(204)


class Config:
    def __init__(self):
        self.config = {"auth": {"auth_url": "http://127.0.0.1:5000/v3", "username": "admin", "project_name": "admin"}}


class FakeCloud:
    """The connection: ``openstack.connect(...)`` returns this in the unit tests."""

    def __init__(self):
        self.calls = Calls()
        self.project_id = "p" * 32
        self.refuse_role_assignment = False
        self.snapshot_status = "active"
        self.identity = Identity(self)
        self.compute = Compute(self)
        self.network = Network(self)
        self.image = Image(self)
        self.config = Config()
        self.session = Res(verify=True)
        admin_project = Res(id=self.project_id, name="admin", description="", is_enabled=True, domain_id="default")
        self.identity.projects[admin_project.id] = admin_project
        admin = self.identity.create_user(name="admin", domain_id="default")
        self.current_user_id = admin.id
        self.calls.clear()

    @property
    def current_project_id(self):
        return self.project_id


# ---------------------------------------------------------------------- running a module


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super().__init__(result.get("msg", ""))
        self.result = result
        self.failed = failed


def run_module(monkeypatch, module, args, cloud, *, check_mode=False, diff=False):
    """Run ``module.main()`` with ``args`` against ``cloud``; return the result dict
    (``failed`` set when the module failed)."""
    from ansible.module_utils import basic  # noqa: PLC0415
    from ansible.module_utils.testing import patch_module_args  # noqa: PLC0415

    from ansible_collections.monoscape.paas.plugins.module_utils import openstack as base  # noqa: PLC0415

    def exit_json(self, **kwargs):
        raise ModuleExit(kwargs, failed=False)

    def fail_json(self, msg, **kwargs):
        raise ModuleExit(dict(kwargs, msg=msg), failed=True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(base.openstack, "connect", lambda **kwargs: cloud)
    monkeypatch.setattr(base.OpenStackModule, "retry_delay", 0)
    monkeypatch.setattr(base.OpenStackModule, "poll_interval", 0)
    module_args = dict(args, cloud=args.get("cloud", "unit"))
    module_args["_ansible_check_mode"] = check_mode
    module_args["_ansible_diff"] = diff
    with patch_module_args(module_args):
        try:
            module.main()
        except ModuleExit as exit_:
            result = dict(exit_.result)
            result["failed"] = exit_.failed
            return result
    raise AssertionError("the module returned without exit_json/fail_json")
