"""An in-memory stand-in for an openstacksdk Connection, for the os_* module unit
tests: just the proxy calls the modules make, with state, so a module can be
run twice (idempotence), in check mode (state untouched) and into errors.

The network proxy is one Neutron model (networks, subnets, ports, routers with a
gateway port and interface ports, floating IPs with their external ports) that
answers like Neutron where the modules meet it: 404 for what is gone or a
floating IP whose server's subnet no router connects to its network, 400 for bad
requests (a router interface on a subnet without a gateway, an address outside
its subnet, security groups on a port without port security or address, a
duplicate allowed address pair), 403 for a chosen floating address under the
default policy, 409 for what is in use (a network or subnet with ports, a router
interface or gateway that floating IPs need, a second floating IP on one fixed
address, an address another port holds, allowed address pairs or security groups
left on a port whose port security is switched off). Ports get a MAC address,
the project's "default" security group when none is given (port security on, an
address), their pairs' MAC filled in from the port's, and PUT fixed_ips replaces
their addresses (kept ones stay).

Raw calls (Glance v2, Keystone OS-EC2 and role assignment URLs) answer like
the services do, with response objects that openstack.exceptions.raise_from_response
understands."""

import copy
import ipaddress
import itertools
import json
import re
import uuid

from openstack import exceptions as sdk_exc

_ids = itertools.count(1)
_macs = itertools.count(1)


def new_id():
    return uuid.UUID(int=next(_ids)).hex


def new_mac():
    """A MAC address with OpenStack's default base_mac prefix (fa:16:3e)."""
    number = next(_macs)
    return "fa:16:3e:" + ":".join(f"{(number >> shift) & 0xFF:02x}" for shift in (16, 8, 0))


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
        self.reason = {
            200: "OK",
            201: "Created",
            204: "No Content",
            400: "Bad Request",
            403: "Forbidden",
            404: "Not Found",
            409: "Conflict",
            503: "Service Unavailable",
        }.get(status, "")

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

    def get_project(self, project_id):
        if project_id not in self.projects:
            raise not_found(f"project {project_id}")
        return self.projects[project_id]

    def get_user(self, user_id):
        if user_id not in self.users:
            raise not_found(f"user {user_id}")
        return self.users[user_id]

    def credentials(self, user_id=None, type=None):
        """Keystone's /v3/credentials: the EC2 pairs, with their secret inside the blob."""
        return [
            Res(id=access, type="ec2", user_id=c["user_id"], blob=__import__("json").dumps(c))
            for access, c in self.ec2.items()
            if user_id in (None, c["user_id"]) and type in (None, "ec2")
        ]

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
        self.floating_address_lag = 0  # get_server calls that do not list floating addresses yet
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

    def keypairs(self, user_id=None):
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
    def servers(self, name=None, *, details=True, tags=None, image=None, project_id=None, all_projects=False):
        """Nova's list: name (a regular expression), tags (all of, comma-separated), image and,
        for an admin with all_projects, project_id; without all_projects, the connection's project."""
        shown = "".join(f" {k}={v}" for k, v in (("name", name), ("tags", tags), ("image", image)) if v)
        self._record("list servers" + shown)
        found = list(self.servers_.values())
        if name:
            found = [s for s in found if re.search(name, s.name)]
        if tags:
            found = [s for s in found if set(tags.split(",")) <= set(s.get("tags") or [])]
        if image:
            found = [s for s in found if s.image.id == image]
        if all_projects:
            found = [s for s in found if project_id in (None, s.project_id)]
        else:
            found = [s for s in found if s.project_id == self.cloud.project_id]
        return [copy.deepcopy(s) for s in found]

    def add_tag_to_server(self, server_id, tag):
        self._record("add_tag_to_server")
        tags = self.servers_[_id(server_id)].setdefault("tags", [])
        if tag not in tags:
            tags.append(tag)

    def remove_tag_from_server(self, server_id, tag):
        self._record("remove_tag_from_server")
        tags = self.servers_[_id(server_id)].setdefault("tags", [])
        if tag in tags:
            tags.remove(tag)

    def find_server(self, name_or_id, ignore_missing=True):
        return self._find(self.servers_, name_or_id, ignore_missing)

    def get_server(self, server_id):
        if server_id not in self.servers_:
            raise not_found(f"server {server_id}")
        server = copy.deepcopy(self.servers_[server_id])
        if self.floating_address_lag:  # Nova's network cache lags behind Neutron's events
            self.floating_address_lag -= 1
            for entries in server.addresses.values():
                entries[:] = [e for e in entries if e.get("OS-EXT-IPS:type") != "floating"]
        return server

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
            task_state="scheduling" if self.build_status == "BUILD" else None,  # no compute took it
            fault={"message": "No valid host was found."} if self.build_status == "ERROR" else None,
            image=Res(id=attrs["image_id"]),
            flavor=Res(original_name=flavor.name, ram=flavor.ram),
            key_name=attrs.get("key_name"),
            availability_zone=attrs.get("availability_zone") or "nova",
            metadata=dict(attrs.get("metadata") or {}),
            tags=list(attrs.get("tags") or []),
            security_groups=[{"name": g["name"]} for g in attrs.get("security_groups") or [{"name": "default"}]],
            addresses={},
            project_id=cloud.project_id,
        )
        nets = attrs.get("networks")
        if nets == "auto":
            nets = [{"uuid": next(iter(cloud.network.networks_))}]
        networks = [cloud.network.networks_[net["uuid"]] for net in nets]
        for network in networks:
            if not network.subnet_ids:
                raise sdk_exc.BadRequestException(
                    message=f"Network {network.id} requires a subnet in order to boot instances on."
                )
        for network, net in zip(networks, nets, strict=True):  # a port with an address from the network's subnet
            port = cloud.network._add_port(
                network.id,
                ip_address=net.get("fixed_ip"),
                device_id=server.id,
                device_owner="compute:nova",
                project_id=cloud.project_id,
            )
            for ip in port.fixed_ips:
                address = ip["ip_address"]
                server.addresses.setdefault(network.name, []).append(
                    {"addr": address, "version": ipaddress.ip_address(address).version, "OS-EXT-IPS:type": "fixed"}
                )
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
            self.cloud.network._delete_port(port_id)  # its floating IPs disassociated

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


# Neutron's answers, as the SDK turns them into exceptions (status_code, details)
def neutron_error(status, kind, message):
    response = Response(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})
    try:
        sdk_exc.raise_from_response(response)
    except sdk_exc.HttpException as exc:
        return exc
    raise AssertionError(f"{status} is not an error status")


def bad_request(message, kind="BadRequest"):
    return neutron_error(400, kind, message)


def conflict(message, kind="Conflict"):
    return neutron_error(409, kind, message)


def missing(message, kind="NotFound"):
    return neutron_error(404, kind, message)


def _id(value):
    """An SDK proxy argument: a resource or its id."""
    return getattr(value, "id", value)


def _matching(items, query):
    """Resources whose attributes equal every query value that is not None."""
    found = [r for r in items if all(value is None or r.get(key) == value for key, value in query.items())]
    return [copy.deepcopy(r) for r in found]


ROUTER_INTERFACE = "network:router_interface"
ROUTER_GATEWAY = "network:router_gateway"
FLOATING_IP = "network:floatingip"
L3_OWNERS = (ROUTER_INTERFACE, ROUTER_GATEWAY, FLOATING_IP)  # ports only the router or floating IP API removes
AUTO_DELETED = ("network:dhcp",)  # ports Neutron removes itself with their network
INFRA_PROJECT = "0" * 32  # owner of the cloud's own networks (like the lab's admin)
# where add_network puts a subnet when no CIDR is given: the first free /24
TENANT_RANGE = ipaddress.ip_network("10.0.0.0/16")
EXTERNAL_RANGE = ipaddress.ip_network("198.18.0.0/15")


class Network(Base):
    """Neutron in one model: networks, subnets, ports, routers (a gateway port on the
    external network and one interface port per subnet) and floating IPs (each with
    its port on the external network, associated through a router as Neutron decides
    it), with Neutron's 400/403/404/409 answers where the modules meet them.

    The cloud starts like the lab without its router: the shared ``private``
    (``private-subnet`` 10.0.0.0/24) and the external ``public`` (``public-subnet``
    203.0.113.0/24), both owned by INFRA_PROJECT. Tests add the rest with the modules,
    the SDK calls, or the set-up helpers ``add_network`` and ``add_router``."""

    def __init__(self, cloud):
        super().__init__(cloud)
        self.networks_ = {}
        self.subnets_ = {}
        self.groups_ = {}
        self.rules_ = {}
        self.ports_ = {}
        self.routers_ = {}
        self.ips_ = {}
        self.fip_activation_polls = 1  # get_ip calls before an associated floating IP turns ACTIVE; None: never
        self.refuse_chosen_fip_address = False  # Neutron's default policy for non-admins
        self.lose_next_fip_answer = False  # create_ip creates, then the answer is lost (503)
        self.max_allowed_address_pair = 10  # Neutron's max_allowed_address_pair option
        self._fip_polls = {}  # floating IP id -> get_ip calls since it was associated (the "L3 agent")
        private = self._add_network(name="private", is_shared=True, project_id=INFRA_PROJECT)
        self._add_subnet(
            name="private-subnet",
            network_id=private.id,
            cidr="10.0.0.0/24",
            is_dhcp_enabled=False,
            project_id=INFRA_PROJECT,
        )
        public = self._add_network(name="public", is_router_external=True, project_id=INFRA_PROJECT)
        self._add_subnet(
            name="public-subnet",
            network_id=public.id,
            cidr="203.0.113.0/24",
            is_dhcp_enabled=False,
            project_id=INFRA_PROJECT,
        )

    @staticmethod
    def _stored(items, value, message, kind):
        """The stored resource that ``value`` (a resource or its id) names, else Neutron's 404."""
        found = items.get(_id(value))
        if found is None:
            raise missing(message.format(_id(value)), kind)
        return found

    # test set-up (not SDK calls, not recorded)
    def add_network(self, name, external=False, cidr=None):
        """A network with one subnet ``<name>-subnet``: ``cidr``, else the first free /24
        of 10.0.0.0/16 (198.18.0.0/15 for an external network). Tenant networks belong
        to the cloud's project, external ones to INFRA_PROJECT."""
        if cidr is None:
            taken = [ipaddress.ip_network(s.cidr) for s in self.subnets_.values() if s.ip_version == 4]
            candidates = (EXTERNAL_RANGE if external else TENANT_RANGE).subnets(new_prefix=24)
            cidr = str(next(c for c in candidates if not any(c.overlaps(t) for t in taken)))
        owner = INFRA_PROJECT if external else self.cloud.project_id
        net = self._add_network(name=name, is_router_external=external, project_id=owner)
        self._add_subnet(name=f"{name}-subnet", network_id=net.id, cidr=cidr, is_dhcp_enabled=False, project_id=owner)
        return copy.deepcopy(net)

    def add_router(self, name, gateway=None, interfaces=()):
        """A router of the cloud's project with its gateway port on network ``gateway`` and
        an interface on the first subnet of each network of ``interfaces`` (names)."""
        info = {"network_id": self._find(self.networks_, gateway, ignore_missing=False).id} if gateway else None
        router = self._create_router(name=name, external_gateway_info=info)
        for network in interfaces:
            self._add_interface(router.id, self._find(self.networks_, network, ignore_missing=False).subnet_ids[0])
        return copy.deepcopy(router)

    # networks
    def _add_network(self, **attrs):
        net = Res(
            id=new_id(),
            description="",
            status="ACTIVE",
            subnet_ids=[],
            project_id=self.cloud.project_id,
            is_port_security_enabled=True,
            mtu=1450,
            is_router_external=False,
            is_shared=False,
        )
        net.update(attrs)
        self.networks_[net.id] = net
        return net

    def _network(self, network):
        return self._stored(self.networks_, network, "Network {} could not be found.", "NetworkNotFound")

    def find_network(self, name_or_id, ignore_missing=True, **query):
        return self._find(self.networks_, name_or_id, ignore_missing, **query)

    def get_network(self, network):
        return copy.deepcopy(self._network(network))

    def networks(self, **query):
        return _matching(self.networks_.values(), query)

    def create_network(self, **attrs):
        self._record("create_network")
        if attrs.get("mtu") is not None and attrs["mtu"] > 1450:
            raise bad_request("Invalid input for operation: Requested MTU is too big, maximum is 1450.")
        return copy.deepcopy(self._add_network(**attrs))

    def update_network(self, network, **attrs):
        self._record("update_network")
        net = self._network(network)
        net.update(attrs)
        return copy.deepcopy(net)

    def delete_network(self, network, ignore_missing=True):
        self._record("delete_network")
        net_id = _id(network)
        if net_id not in self.networks_:
            if ignore_missing:
                return
            raise missing(f"Network {net_id} could not be found.", "NetworkNotFound")
        if any(p.network_id == net_id and p.device_owner not in AUTO_DELETED for p in self.ports_.values()):
            raise conflict(
                f"Unable to complete operation on network {net_id}. There are one or more ports still in use on"
                " the network.",
                "NetworkInUse",
            )
        for port_id in [p.id for p in self.ports_.values() if p.network_id == net_id]:
            self._delete_port(port_id)
        for subnet_id in self.networks_.pop(net_id).subnet_ids:
            self.subnets_.pop(subnet_id, None)

    # subnets
    def _add_subnet(self, **attrs):
        cidr = ipaddress.ip_network(attrs["cidr"])  # strict, like Neutron
        gateway = attrs.get("gateway_ip", str(cidr.network_address + 1))
        subnet = Res(
            id=new_id(),
            description="",
            ip_version=cidr.version,
            gateway_ip=gateway,
            is_dhcp_enabled=True,
            dns_nameservers=[],
            allocation_pools=None,
            project_id=self.cloud.project_id,
        )
        subnet.update(attrs)
        if not subnet.allocation_pools:  # the CIDR less its network, IPv4 broadcast and gateway addresses
            low, high = cidr.network_address + 1, cidr.broadcast_address - (cidr.version == 4)
            cut = ipaddress.ip_address(gateway) if gateway else None
            ranges = [(low, high)] if cut is None or not low <= cut <= high else [(low, cut - 1), (cut + 1, high)]
            subnet.allocation_pools = [{"start": str(a), "end": str(b)} for a, b in ranges if a <= b]
        self.subnets_[subnet.id] = subnet
        self.networks_[subnet.network_id].subnet_ids.append(subnet.id)
        return subnet

    def _subnet(self, subnet):
        return self._stored(self.subnets_, subnet, "Subnet {} could not be found.", "SubnetNotFound")

    def find_subnet(self, name_or_id, ignore_missing=True, **query):
        return self._find(self.subnets_, name_or_id, ignore_missing, **query)

    def get_subnet(self, subnet):
        return copy.deepcopy(self._subnet(subnet))

    def subnets(self, **query):
        return _matching(self.subnets_.values(), query)

    def create_subnet(self, **attrs):
        self._record("create_subnet")
        self._network(attrs.get("network_id"))
        try:
            ipaddress.ip_network(attrs["cidr"])
        except ValueError:
            message = f"Invalid input for operation: '{attrs['cidr']}' isn't a recognized IP subnet cidr."
            raise bad_request(message) from None
        return copy.deepcopy(self._add_subnet(**attrs))

    def update_subnet(self, subnet, **attrs):
        self._record("update_subnet")
        current = self._subnet(subnet)
        if "cidr" in attrs or "network_id" in attrs:
            raise bad_request("Cannot update read-only attribute cidr")
        gateway = attrs.get("gateway_ip", current.gateway_ip)
        for pool in attrs.get("allocation_pools", current.allocation_pools):
            start, end = ipaddress.ip_address(pool["start"]), ipaddress.ip_address(pool["end"])
            if gateway and start <= ipaddress.ip_address(gateway) <= end:
                raise conflict(f"Gateway ip {gateway} conflicts with allocation pool {pool['start']}-{pool['end']}.")
        current.update(attrs)
        return copy.deepcopy(current)

    def delete_subnet(self, subnet, ignore_missing=True):
        self._record("delete_subnet")
        subnet_id = _id(subnet)
        if subnet_id not in self.subnets_:
            if ignore_missing:
                return
            raise missing(f"Subnet {subnet_id} could not be found.", "SubnetNotFound")
        users = [p for p in self.ports_.values() if self._ips(p, subnet_id) and p.device_owner not in AUTO_DELETED]
        if users:
            raise conflict(
                f"Unable to complete operation on subnet {subnet_id}: One or more ports have an IP allocation"
                " from this subnet.",
                "SubnetInUse",
            )
        for port in self.ports_.values():  # DHCP ports lose their address on it
            port.fixed_ips = [ip for ip in port.fixed_ips if ip.get("subnet_id") != subnet_id]
        subnet = self.subnets_.pop(subnet_id)
        self.networks_[subnet.network_id].subnet_ids.remove(subnet_id)

    # ports
    @staticmethod
    def _ips(port, subnet_id):
        return [ip["ip_address"] for ip in port.fixed_ips if ip.get("subnet_id") == subnet_id]

    def _free_address(self, subnet, taken=()):
        used = {ip for p in self.ports_.values() for ip in self._ips(p, subnet.id)} | set(taken)
        for pool in subnet.allocation_pools:
            address = ipaddress.ip_address(pool["start"])
            while address <= ipaddress.ip_address(pool["end"]):
                if str(address) not in used:
                    return str(address)
                address += 1
        raise conflict(f"No more IP addresses available on network {subnet.network_id}.", "IpAddressGenerationFailure")

    def _allocate(self, network, entries, port_id=None):
        """Neutron's IPAM for a port's ``fixed_ips`` request (create or update): an entry
        with ``ip_address`` gets that address (on ``subnet_id`` when given, else on the
        network's subnet that holds it), one with only ``subnet_id`` the next free address
        there. Addresses the port (``port_id``) has already are its own to keep."""
        fixed_ips = []
        for entry in entries:
            subnet_id, ip_address = entry.get("subnet_id"), entry.get("ip_address")
            if not (subnet_id or ip_address):
                raise bad_request("Invalid input for operation: IP allocation requires subnet_id or ip_address.")
            if subnet_id and subnet_id not in network.subnet_ids:
                raise bad_request(
                    f"Invalid input for operation: Failed to create port on network {network.id}, because"
                    f" fixed_ips included invalid subnet {subnet_id}."
                )
            if not ip_address:
                subnet = self.subnets_[subnet_id]
                taken = [ip["ip_address"] for ip in fixed_ips]
                fixed_ips.append({"subnet_id": subnet.id, "ip_address": self._free_address(subnet, taken)})
                continue
            try:
                address = ipaddress.ip_address(ip_address)
            except ValueError:
                raise bad_request(f"Invalid input for operation: '{ip_address}' is not a valid IP address.") from None
            if subnet_id:
                subnet = self.subnets_[subnet_id]
                if address not in ipaddress.ip_network(subnet.cidr):
                    raise bad_request(
                        f"IP address {ip_address} is not a valid IP for the specified subnet.", "InvalidIpForSubnet"
                    )
            else:
                subnets = [self.subnets_[s] for s in network.subnet_ids]
                subnet = next((s for s in subnets if address in ipaddress.ip_network(s.cidr)), None)
                if subnet is None:
                    raise bad_request(
                        f"IP address {ip_address} is not a valid IP for any of the subnets on the specified network.",
                        "InvalidIpForNetwork",
                    )
            others = [p for p in self.ports_.values() if p.id != port_id]
            if any(str(address) in self._ips(p, subnet.id) for p in others) or any(
                ip["ip_address"] == str(address) for ip in fixed_ips
            ):
                raise conflict(
                    f"IP address {ip_address} already allocated in subnet {subnet.id}", "IpAddressAlreadyAllocated"
                )
            fixed_ips.append({"subnet_id": subnet.id, "ip_address": str(address)})
        return fixed_ips

    def _add_port(self, network_id, subnet_id=None, ip_address=None, **attrs):
        """A port with an address on ``subnet_id`` (else on the subnet holding
        ``ip_address``, else on the network's first subnet), as Neutron allocates it."""
        network = self._network(network_id)
        if subnet_id or ip_address:
            fixed_ips = self._allocate(network, [{"subnet_id": subnet_id, "ip_address": ip_address}])
        elif network.subnet_ids:
            fixed_ips = self._allocate(network, [{"subnet_id": network.subnet_ids[0]}])
        else:
            fixed_ips = []
        return self._store_port(network, fixed_ips, **attrs)

    def _store_port(self, network, fixed_ips, **attrs):
        port = Res(
            id=new_id(),
            name="",
            description="",
            network_id=network.id,
            device_id="",
            device_owner="",
            fixed_ips=fixed_ips,
            mac_address=new_mac(),
            allowed_address_pairs=[],
            is_port_security_enabled=network.is_port_security_enabled,
            security_group_ids=[],
            project_id=self.cloud.project_id,
            status="ACTIVE",
        )
        port.update(attrs)
        self.ports_[port.id] = port
        return port

    def _delete_port(self, port_id):
        """The port gone; floating IPs on it disassociated, as Neutron does."""
        del self.ports_[port_id]
        for fip in self.ips_.values():
            if fip.port_id == port_id:
                self._disassociate(fip)

    def ports(self, **query):
        """Neutron's port list; ``fixed_ips`` filters like its query (``["ip_address=A",
        "subnet_id=S"]``: one of the port's addresses matches them all)."""
        filters = dict(text.partition("=")[::2] for text in query.pop("fixed_ips", None) or [])
        found = _matching(self.ports_.values(), query)
        if filters:
            found = [p for p in found if any(all(ip.get(k) == v for k, v in filters.items()) for ip in p.fixed_ips)]
        return found

    def get_port(self, port):
        return copy.deepcopy(self._stored(self.ports_, port, "Port {} could not be found.", "PortNotFound"))

    def _default_group(self, project_id):
        """The project's "default" security group; Neutron makes it when first needed."""
        found = [g for g in self.groups_.values() if g.name == "default" and g.project_id == project_id]
        return found[0] if found else self._add_group("default", "Default security group", project_id)

    def _port_security(self, port, mac_address):
        """Neutron's port-security and allowed-address-pairs checks of the port as it would be
        (a dict of SDK attributes); fills in the pairs' MAC addresses. Changes nothing."""
        pairs = []
        for pair in port.get("allowed_address_pairs") or []:
            if not pair.get("ip_address"):
                raise bad_request("Invalid input for operation: Allowed address pair requires ip_address.")
            address = pair["ip_address"]
            try:
                network = ipaddress.ip_network(address, strict=False)
            except ValueError:
                message = f"'{address}' is not a valid IP address."
                raise bad_request(f"Invalid input for operation: {message}") from None
            if "/" in address and str(network) != address:  # neutron_lib's validate_subnet
                message = f"'{address}' isn't a recognized IP subnet cidr, '{network}' is recommended."
                raise bad_request(f"Invalid input for operation: {message}")
            filled = {"ip_address": address, "mac_address": (pair.get("mac_address") or mac_address).lower()}
            if filled in pairs:
                raise bad_request(
                    f"Request contains duplicate address pair: mac_address {filled['mac_address']} ip_address"
                    f" {address}.",
                    "DuplicateAddressPairInRequest",
                )
            pairs.append(filled)
        if len(pairs) > self.max_allowed_address_pair:
            raise bad_request(
                f"The number of allowed address pair exceeds the maximum {self.max_allowed_address_pair}.",
                "AllowedAddressPairExhausted",
            )
        secured = port.get("is_port_security_enabled")
        if pairs and not secured:
            raise conflict(
                "Port Security must be enabled in order to have allowed address pairs on a port.",
                "AddressPairAndPortSecurityRequired",
            )
        for group_id in port.get("security_group_ids") or []:
            self._stored(self.groups_, group_id, "Security group {} does not exist", "SecurityGroupNotFound")
        return pairs

    def create_port(self, **attrs):
        self._record("create_port")
        if not attrs.get("network_id"):
            raise bad_request("Invalid input for operation: network_id is required.")
        network = self._network(attrs.pop("network_id"))
        requested = attrs.pop("fixed_ips", None)
        if requested is None:  # one address from the first subnet, as Neutron does by default
            requested = [{"subnet_id": network.subnet_ids[0]}] if network.subnet_ids else []
        fixed_ips = self._allocate(network, requested)
        attrs.setdefault("is_port_security_enabled", network.is_port_security_enabled)
        project_id = attrs.get("project_id") or self.cloud.project_id
        given_groups = attrs.get("security_group_ids")
        if given_groups and not (attrs["is_port_security_enabled"] and fixed_ips):
            raise bad_request(
                "Port security must be enabled and port must have an IP address in order to use security groups.",
                "PortSecurityAndIPRequiredForSecurityGroups",
            )
        mac = new_mac()
        attrs["allowed_address_pairs"] = self._port_security(attrs, mac)
        if given_groups is None:
            default = attrs["is_port_security_enabled"] and fixed_ips
            attrs["security_group_ids"] = [self._default_group(project_id).id] if default else []
        attrs["security_group_ids"] = list(dict.fromkeys(attrs["security_group_ids"]))
        attrs.setdefault("status", "ACTIVE" if attrs.get("device_id") else "DOWN")  # no device: nothing to bind
        port = self._store_port(network, fixed_ips, mac_address=mac, **attrs)
        return copy.deepcopy(port)

    def update_port(self, port, **attrs):
        """Neutron's PUT: ``fixed_ips`` replaces the port's addresses (kept ones stay, others are
        released, new ones allocated); the port-security rules hold for the port as it would be."""
        self._record("update_port")
        current = self._stored(self.ports_, port, "Port {} could not be found.", "PortNotFound")
        for read_only in ("network_id", "mac_address", "id", "project_id"):
            if read_only in attrs and attrs[read_only] != current.get(read_only):
                raise bad_request(f"Cannot update read-only attribute {read_only}")
        wanted = dict(copy.deepcopy(current), **attrs)
        if "fixed_ips" in attrs:
            wanted["fixed_ips"] = self._allocate(self._network(current.network_id), attrs["fixed_ips"], current.id)
        if wanted.get("security_group_ids") and not wanted["is_port_security_enabled"]:
            raise conflict(
                "Port has security group associated. Cannot disable port security or ip address until security"
                " group is removed.",
                "PortSecurityPortHasSecurityGroup",
            )
        wanted["allowed_address_pairs"] = self._port_security(wanted, current.mac_address)
        wanted["security_group_ids"] = list(dict.fromkeys(wanted.get("security_group_ids") or []))
        current.update(wanted)
        return copy.deepcopy(current)

    def delete_port(self, port, ignore_missing=True):
        self._record("delete_port")
        found = self.ports_.get(_id(port))
        if found is None:
            if ignore_missing:
                return
            raise missing(f"Port {_id(port)} could not be found.", "PortNotFound")
        if found.device_owner in L3_OWNERS:
            raise conflict(
                f"Port {found.id} cannot be deleted directly via the port API: has device owner {found.device_owner}.",
                "ServicePortInUse",
            )
        self._delete_port(found.id)

    # routers
    def _router(self, router):
        return self._stored(self.routers_, router, "Router {} could not be found", "RouterNotFound")

    def find_router(self, name_or_id, ignore_missing=True, **query):
        return self._find(self.routers_, name_or_id, ignore_missing, **query)

    def get_router(self, router):
        return copy.deepcopy(self._router(router))

    def routers(self, **query):
        return _matching(self.routers_.values(), query)

    def _router_ports(self, router_id, owner):
        return [p for p in self.ports_.values() if p.device_id == router_id and p.device_owner == owner]

    def _interfaces(self, router_id):
        return self._router_ports(router_id, ROUTER_INTERFACE)

    def _set_gateway(self, router, info):
        """Neutron's gateway update: refused while floating IPs need the old one; the
        gateway is a port on the external network (network:router_gateway)."""
        old = router.external_gateway_info
        new_net = (info or {}).get("network_id")
        if old and old["network_id"] != new_net:
            fips = [f for f in self.ips_.values() if f.router_id == router.id]
            if fips:
                raise conflict(
                    f"Gateway cannot be updated for router {router.id}, since a gateway to external network"
                    f" {old['network_id']} is required by one or more floating IPs.",
                    "RouterExternalGatewayInUseByFloatingIp",
                )
            for port in self._router_ports(router.id, ROUTER_GATEWAY):
                self._delete_port(port.id)
            router.external_gateway_info = None
        if not new_net:
            return
        network = self._network(new_net)
        if not network.is_router_external:
            raise bad_request(f"Bad router request: Network {new_net} is not an external network.")
        if old and old["network_id"] == new_net:
            port_ips = old["external_fixed_ips"]
        else:
            port = self._add_port(new_net, device_id=router.id, device_owner=ROUTER_GATEWAY, project_id="")
            port_ips = copy.deepcopy(port.fixed_ips)
        router.external_gateway_info = Res(
            network_id=new_net, enable_snat=info.get("enable_snat", True), external_fixed_ips=port_ips
        )

    def _create_router(self, **attrs):
        gateway = attrs.pop("external_gateway_info", None)
        router = Res(
            id=new_id(),
            description="",
            status="ACTIVE",
            external_gateway_info=None,
            project_id=self.cloud.project_id,
        )
        router.update(attrs)
        self._set_gateway(router, gateway)
        self.routers_[router.id] = router
        return router

    def create_router(self, **attrs):
        self._record("create_router")
        return copy.deepcopy(self._create_router(**attrs))

    def update_router(self, router, **attrs):
        self._record("update_router")
        current = self._router(router)
        if "external_gateway_info" in attrs:
            self._set_gateway(current, attrs.pop("external_gateway_info"))
        current.update(attrs)
        return copy.deepcopy(current)

    def delete_router(self, router, ignore_missing=True):
        self._record("delete_router")
        router_id = _id(router)
        if router_id not in self.routers_:
            if ignore_missing:
                return
            raise missing(f"Router {router_id} could not be found", "RouterNotFound")
        if self._interfaces(router_id):
            raise conflict(f"Router {router_id} still has ports", "RouterInUse")
        self._set_gateway(self.routers_[router_id], None)
        del self.routers_[router_id]

    def _add_interface(self, router_id, subnet_id):
        """An interface port on the subnet, at its gateway address."""
        self._router(router_id)
        found = self._subnet(subnet_id)
        if not found.gateway_ip:
            raise bad_request("Bad router request: Subnet for router interface must have a gateway IP.")
        if any(self._ips(p, subnet_id) for p in self._interfaces(router_id)):
            raise bad_request(f"Bad router request: Router already has a port on subnet {subnet_id}.")
        port = self._add_port(
            found.network_id, subnet_id, found.gateway_ip, device_id=router_id, device_owner=ROUTER_INTERFACE
        )
        return {"id": router_id, "subnet_id": subnet_id, "port_id": port.id, "subnet_ids": [subnet_id]}

    def add_interface_to_router(self, router, subnet=None, port=None, subnet_id=None, port_id=None):
        self._record("add_interface_to_router")
        assert not (port or port_id), "the fake adds interfaces by subnet only"
        return self._add_interface(_id(router), _id(subnet or subnet_id))

    def _check_no_floating_ips(self, router_id, subnet_id):
        cidr = ipaddress.ip_network(self.subnets_[subnet_id].cidr)
        for fip in self.ips_.values():
            if fip.router_id == router_id and ipaddress.ip_address(fip.fixed_ip_address) in cidr:
                raise conflict(
                    f"Router interface for subnet {subnet_id} on router {router_id} cannot be deleted, as it is"
                    " required by one or more floating IPs.",
                    "RouterInterfaceInUseByFloatingIP",
                )

    def remove_interface_from_router(self, router, subnet=None, port=None, subnet_id=None, port_id=None):
        self._record("remove_interface_from_router")
        router_id, subnet_id, port_id = _id(router), _id(subnet or subnet_id), _id(port or port_id)
        if port_id:
            found = self.ports_.get(port_id)
            if found is None or found.device_id != router_id or found.device_owner != ROUTER_INTERFACE:
                raise missing(f"Router {router_id} does not have an interface with id {port_id}")
            for ip in found.fixed_ips:
                self._check_no_floating_ips(router_id, ip["subnet_id"])
            self._delete_port(port_id)
            return {"id": router_id, "port_id": port_id}
        found = [p for p in self._interfaces(router_id) if self._ips(p, subnet_id)]
        if not found:
            raise missing(f"Router {router_id} has no interface on subnet {subnet_id}")
        self._check_no_floating_ips(router_id, subnet_id)
        port = found[0]
        port.fixed_ips = [ip for ip in port.fixed_ips if ip["subnet_id"] != subnet_id]
        if not port.fixed_ips:
            self._delete_port(port.id)
        return {"id": router_id, "subnet_id": subnet_id, "port_id": port.id}

    # floating IPs: Neutron's rules (reachability through a router, one per fixed IP and
    # external network), the status set by the "L3 agent" after fip_activation_polls reads
    def _fip(self, floating_ip):
        return self._stored(self.ips_, floating_ip, "Floating IP {} could not be found", "FloatingIPNotFound")

    def ips(self, **query):
        return _matching(self.ips_.values(), query)

    def get_ip(self, floating_ip):
        fip = self._fip(floating_ip)
        if fip.port_id and fip.status != "ACTIVE" and self.fip_activation_polls is not None:
            self._fip_polls[fip.id] = self._fip_polls.get(fip.id, 0) + 1
            if self._fip_polls[fip.id] >= self.fip_activation_polls:
                fip.status = "ACTIVE"
        return copy.deepcopy(fip)

    def _router_for(self, fip_network_id, port, subnet_id):
        """Neutron's _get_router_for_floatingip: a router with its gateway port on the
        floating IP's network and an interface on the subnet of the fixed address (the
        one at the subnet's gateway address first), else a 404."""
        gateway_ip = self.subnets_[subnet_id].gateway_ip
        found = []
        for router in self.routers_.values():
            if not any(p.network_id == fip_network_id for p in self._router_ports(router.id, ROUTER_GATEWAY)):
                continue
            addresses = [a for p in self._interfaces(router.id) for a in self._ips(p, subnet_id)]
            if addresses:
                found.append((gateway_ip not in addresses, router.id))
        if found:
            return sorted(found, key=lambda f: f[0])[0][1]
        raise missing(
            f"External network {fip_network_id} is not reachable from subnet {subnet_id}.  Therefore, cannot"
            f" associate Port {port.id} with a Floating IP.",
            "ExternalGatewayForFloatingIPNotFound",
        )

    def _association(self, fip, port_id, fixed_ip_address):
        """(port, fixed address, router id) for associating ``fip`` with the port, as
        Neutron checks it (_get_assoc_data, then one floating IP per fixed address and
        external network); nothing is changed."""
        port = self._stored(self.ports_, port_id, "Port {} could not be found.", "PortNotFound")
        if port.device_owner.startswith("network:"):  # routers', DHCP's and floating IPs' own ports
            raise bad_request(f"Bad floatingip request: Port {port.id} is unable to be assigned a floating IP")
        ipv4 = [ip for ip in port.fixed_ips if ipaddress.ip_address(ip["ip_address"]).version == 4]
        if fixed_ip_address and ipaddress.ip_address(fixed_ip_address).version != 4:
            raise bad_request(
                f"Bad floatingip request: Cannot process floating IP association with {fixed_ip_address}, since"
                " that is not an IPv4 address"
            )
        if fixed_ip_address:
            entry = next((ip for ip in ipv4 if ip["ip_address"] == fixed_ip_address), None)
            if entry is None:
                raise bad_request(f"Bad floatingip request: Port {port.id} does not have fixed ip {fixed_ip_address}.")
        elif len(ipv4) == 1:
            entry = ipv4[0]
        elif not ipv4:
            raise bad_request(
                f"Bad floatingip request: Cannot add floating IP to port {port.id} that has no fixed IPv4 addresses."
            )
        else:
            raise bad_request(
                f"Bad floatingip request: Port {port.id} has multiple fixed IPv4 addresses.  Must provide a"
                " specific IPv4 address when assigning a floating IP."
            )
        router_id = self._router_for(fip.floating_network_id, port, entry["subnet_id"])
        fixed = entry["ip_address"]
        for other in self.ips_.values():
            if (
                other.id != fip.id
                and other.port_id == port.id
                and other.fixed_ip_address == fixed
                and other.floating_network_id == fip.floating_network_id
            ):
                raise conflict(
                    f"Cannot associate floating IP {fip.floating_ip_address} ({fip.id}) with port {port.id} using"
                    f" fixed IP {fixed}, as that fixed IP already has a floating IP on external network"
                    f" {fip.floating_network_id}.",
                    "FloatingIPPortAlreadyAssociated",
                )
        return port.id, fixed, router_id

    def _associate(self, fip, port_id, fixed, router_id):
        if (fip.port_id, fip.fixed_ip_address) == (port_id, fixed):
            return  # Neutron: the association is not changed
        fip.update(port_id=port_id, fixed_ip_address=fixed, router_id=router_id, status="DOWN")
        self._fip_polls[fip.id] = 0
        self._sync_addresses()

    def _disassociate(self, fip):
        fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")
        self._fip_polls.pop(fip.id, None)
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
        """Allocate a floating IP (a port on the external network), associated with
        ``port_id`` when given; a refused association allocates nothing (Neutron's
        transaction)."""
        self._record("create_ip")
        address, port_id = attrs.get("floating_ip_address"), attrs.get("port_id")
        if address and self.refuse_chosen_fip_address:
            raise neutron_error(
                403,
                "PolicyNotAuthorized",
                "(rule:create_floatingip and rule:create_floatingip:floating_ip_address) is disallowed by policy",
            )
        if attrs.get("fixed_ip_address") and not port_id:
            raise bad_request("Bad floatingip request: fixed_ip_address cannot be specified without a port_id.")
        network = self._network(attrs.get("floating_network_id"))
        if not network.is_router_external:
            raise bad_request(f"Bad floatingip request: Network {network.id} is not a valid external network.")
        fip = Res(
            id=new_id(),
            floating_ip_address=None,
            floating_network_id=network.id,
            fixed_ip_address=None,
            port_id=None,
            router_id=None,
            status="DOWN",
            description=attrs.get("description", ""),
            project_id=attrs.get("project_id") or self.cloud.project_id,
        )
        external = self._add_port(
            network.id, ip_address=address, device_id=fip.id, device_owner=FLOATING_IP, project_id=""
        )
        try:
            if not external.fixed_ips:
                raise bad_request(f"Bad floatingip request: Network {network.id} does not contain any IPv4 subnet.")
            fip.floating_ip_address = external.fixed_ips[0]["ip_address"]
            association = self._association(fip, port_id, attrs.get("fixed_ip_address")) if port_id else None
        except sdk_exc.HttpException:
            del self.ports_[external.id]
            raise
        self.ips_[fip.id] = fip
        if association:
            self._associate(fip, *association)
        if self.lose_next_fip_answer:
            self.lose_next_fip_answer = False
            raise sdk_exc.HttpException(message="503 Service Unavailable (the answer was lost)", response=Response(503))
        return copy.deepcopy(fip)

    def update_ip(self, floating_ip, **attrs):
        """``port_id``: associate (Neutron's checks), ``port_id=None``: disassociate."""
        self._record("update_ip")
        fip = self._fip(floating_ip)
        given_port = "port_id" in attrs
        port_id, fixed = attrs.pop("port_id", None), attrs.pop("fixed_ip_address", None)
        if fixed and not port_id:
            raise bad_request("Bad floatingip request: fixed_ip_address cannot be specified without a port_id.")
        if port_id:
            self._associate(fip, *self._association(fip, port_id, fixed))
        elif given_port and fip.port_id:
            self._disassociate(fip)
        fip.update(attrs)
        return copy.deepcopy(fip)

    def delete_ip(self, floating_ip, ignore_missing=True):
        self._record("delete_ip")
        fip = self.ips_.pop(_id(floating_ip), None)
        if fip is None:
            if ignore_missing:
                return
            raise missing(f"Floating IP {_id(floating_ip)} could not be found", "FloatingIPNotFound")
        self._fip_polls.pop(fip.id, None)
        for port in [p for p in self.ports_.values() if p.device_id == fip.id and p.device_owner == FLOATING_IP]:
            del self.ports_[port.id]
        self._sync_addresses()

    # security groups
    def find_security_group(self, name_or_id, ignore_missing=True, project_id=None):
        return self._find(self.groups_, name_or_id, ignore_missing, project_id=project_id)

    def security_groups(self, project_id=None):
        return [g for g in self.groups_.values() if project_id in (None, g.project_id)]

    def create_security_group(self, name, description="", project_id=None):
        self._record("create_security_group")
        return self._add_group(name, description, project_id or self.cloud.project_id)

    def _add_group(self, name, description, project_id):
        group = Res(id=new_id(), name=name, description=description, project_id=project_id)
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
        if path == "/images":  # Glance filters on any property given (name, owner, custom ones)
            wanted = {k: v for k, v in (params or {}).items() if k not in ("limit", "marker", "sort")}
            found = [copy.deepcopy(i) for i in self.images_.values() if all(i.get(k) == v for k, v in wanted.items())]
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


class NoCloud:
    """A connection that fails the test when it is used at all: for input a module must
    refuse before it asks the cloud anything."""

    def __getattr__(self, name):
        raise AssertionError(f"the module used the cloud ({name}) before refusing its input")


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
