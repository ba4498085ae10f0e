# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
name: openstack_servers
short_description: OpenStack servers of one or more clouds, grouped by Monoscape role, tenant and app
description:
  - Reads the servers of the clouds named in C(clouds.yaml) - all clouds in parallel, one detailed
    server list call each (plus its token, see below) - and adds them as hosts.
  - Groups hosts by the server metadata C(monoscape_role), C(monoscape_tenant) and C(monoscape_app)
    (C(role_<value>), C(tenant_<value>), C(app_<value>); comma-separated values give several groups),
    by cloud (C(cloud_<name>)), and with the Constructable options O(compose), O(groups) and
    O(keyed_groups).
  - C(ansible_host) is the first floating IP, else the first fixed IP (O(private) and O(only_ipv4)
    change that). Servers in C(ERROR) and servers without an address do not vanish - they go into the
    O(error_group) / O(no_address_group) groups (and not into the metadata groups, so plays do not try
    to reach them).
  - Host names are the server names; servers sharing a name (in one cloud or across clouds) become
    C(<name>-<first 8 characters of the id>) and a warning says so.
  - A cloud that cannot be read fails the inventory (with the cloud's name and the reason) unless
    O(allow_partial=true). Set C(any_unparsed_is_failed) in ansible.cfg so that a failed inventory
    stops a playbook instead of running it on no hosts.
  - With O(deployment) set, only the servers whose metadata C(monoscape_deployment) equals it become
    hosts; the other servers of the project (other deployments, other teams) are ignored entirely.
    Nova's server list cannot filter by metadata (it refuses a C(metadata) query from an admin and
    drops it for a member), so this filter runs on the control node and the list stays one call per
    cloud; O(server_filters) narrows what Nova returns.
  - Hosts go into the groups the playbooks target by their C(monoscape_role) - C(monoscape_controller),
    C(monoscape_nodes), C(monoscape_builders) (O(role_groups)). Hosts are added by server name (then
    id), so a group lists its hosts in the same order whatever order the clouds answer in (Nova lists
    the newest first), and the first controller stays the first when a second one is booted.
  - SSH settings come from the plugin, per host and only for the options given - O(ssh_user),
    O(ssh_private_key_file), O(ssh_known_hosts_file) (strict host key checking against that file,
    the host key looked up under the server name). A server reached at its fixed address goes
    through a controller of its deployment that has a floating IP (the first by name), as an SSH
    bastion (C(ProxyCommand); O(bastion), O(bastion_role)).
  - C(clouds.yaml) is read by openstacksdk's own loader (C(OpenStackConfig)) - its file search,
    C(secure.yaml) merged in, vendor profiles, region lists (the first region is read), C(OS_*)
    variables (the cloud C(envvars)) - and the loader chooses each cloud's auth plugin. A plain
    C(password) entry gets keystoneauth's generic plugin, which asks Keystone for its versions
    before the token; an entry with C(auth_type=v3password) skips that request.
  - The result can be cached (O(cache)); a cached run does not import openstacksdk at all.
  - "Select it with a YAML file containing C(plugin: monoscape.paas.openstack_servers)."
version_added: 0.1.0
author: Monoscape developers
requirements:
  - openstacksdk (for reading clouds.yaml) and keystoneauth1, on the control node
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: Marks the file as a configuration of this plugin.
    type: str
    required: true
    choices: [monoscape.paas.openstack_servers, openstack_servers]
  all_projects:
    description:
      - List the servers of all projects (needs an admin account), instead of the project of each cloud entry.
    type: bool
    default: false
  allow_partial:
    description:
      - When a cloud cannot be read, warn and return the hosts of the other clouds instead of failing.
    type: bool
    default: false
  api_timeout:
    description:
      - Seconds before one HTTP request to a cloud times out.
    type: int
    default: 30
  bastion:
    description:
      - Reach servers that use their fixed address as C(ansible_host) (they have no floating IP; see
        O(private)) through their deployment's bastion, at its floating IP. The bastion is, among the
        C(ACTIVE) servers of the same cloud, project and metadata C(monoscape_deployment) whose
        C(monoscape_role) is O(bastion_role) and that have a floating IP, the first by server name, the
        same on every run (a deployment with a highly available load balancer has two controllers, each
        with a floating IP of its own). Such a host gets in C(ansible_ssh_common_args)
        C(-o ProxyCommand="ssh [-i <ssh_private_key_file>] [-o UserKnownHostsFile=<ssh_known_hosts_file>
        -o StrictHostKeyChecking=yes -o HostKeyAlias=<bastion server name>] -o BatchMode=yes
        -o ConnectTimeout=10 -W %h:%p [<ssh_user>@]<bastion floating IP>"), and the variable
        C(monoscape_bastion) names the bastion's host.
      - The bastion itself, servers with a floating IP and servers without C(monoscape_deployment) get
        no C(ProxyCommand); nor does any host with O(private=true) (the fixed addresses are then
        reachable directly, as on a provider network).
      - A deployment none of whose C(ACTIVE) O(bastion_role) servers has a floating IP gets no
        C(ProxyCommand) and a warning.
    type: bool
    default: true
  bastion_role:
    description:
      - The C(monoscape_role) metadata value of the server that is its deployment's SSH bastion.
    type: str
    default: controller
  cloud_groups:
    description:
      - Put each host into C(cloud_<cloud name>).
    type: bool
    default: true
  clouds:
    description:
      - Names of the C(clouds.yaml) entries to read. Empty means every cloud in C(clouds.yaml) (and the
        cloud C(envvars) when C(OS_*) variables such as C(OS_AUTH_URL) are set).
      - A name that is not defined fails like an unreachable cloud (see O(allow_partial)), with the
        C(clouds.yaml) file read and the names it defines.
    type: list
    elements: str
    default: []
  clouds_yaml_path:
    description:
      - C(clouds.yaml) files searched before the standard locations; the first file that exists is
        read. openstacksdk's order is C(OS_CLIENT_CONFIG_FILE) when set, these files, then
        C(clouds.yaml) (or C(.yml), C(.json)) in the current directory, C(~/.config/openstack),
        C(/etc/xdg/openstack) and C(/etc/openstack).
      - C(secure.yaml) (C(OS_CLIENT_SECURE_FILE), else the same directories) is merged into the entries.
    type: list
    elements: path
    default: []
    env:
      - name: OS_CLIENT_CONFIG_FILE
  deployment:
    description:
      - Name of a Monoscape deployment. When set, only the servers whose metadata
        C(monoscape_deployment) equals it become hosts; every other server is ignored (in no group,
        no host variables). Empty means every server.
      - Nova is asked only for the servers tagged C(monoscape_deployment=<deployment>) (see
        O(deployment_tag)), so the cost does not grow with the project's other servers.
    type: str
    default: ""
  deployment_tag:
    description:
      - With O(deployment), ask Nova for the servers carrying the tag C(monoscape_deployment=<deployment>)
        (the bundle tags every server it makes, and tags older ones on the next C(site.yml)), then check
        their metadata too.
      - C(false) reads the project's whole server list and filters it by metadata only, for servers
        made before the tag existed that no playbook has tagged yet.
    type: bool
    default: true
  error_group:
    description:
      - Group for servers in C(ERROR) status.
    type: str
    default: openstack_error
  hostname:
    description:
      - What becomes the inventory host name - the server C(name) or its C(id).
    type: str
    choices: [id, name]
    default: name
  metadata_groups:
    description:
      - Server metadata keys that make groups, with the group name prefix of each. A server with
        C(monoscape_role=node) goes into C(role_node).
    type: dict
    default:
      monoscape_role: role
      monoscape_tenant: tenant
      monoscape_app: app
  no_address_group:
    description:
      - Group for servers that have no IP address (yet).
    type: str
    default: openstack_no_address
  only_ipv4:
    description:
      - Consider only IPv4 addresses for C(ansible_host).
    type: bool
    default: false
  private:
    description:
      - Use the fixed (private) address for C(ansible_host) even when the server has a floating IP.
    type: bool
    default: false
  role_groups:
    description:
      - Group of each C(monoscape_role) metadata value - the groups the playbooks target. As for
        O(metadata_groups), servers in C(ERROR) or without an address are not put in them.
    type: dict
    default:
      controller: monoscape_controller
      node: monoscape_nodes
      builder: monoscape_builders
  server_filters:
    description:
      - Query parameters of Nova's server list (for example C(status), C(name) as a regular expression,
        C(availability_zone)).
    type: dict
    default: {}
  ssh_known_hosts_file:
    description:
      - A known_hosts file whose lines name the servers by their server name. When set, every host gets
        C(-o UserKnownHostsFile=<path> -o StrictHostKeyChecking=yes -o HostKeyAlias=<server name>) in
        C(ansible_ssh_common_args) (and the bastion hop of O(bastion) checks the bastion the same way).
      - Unset leaves C(ansible_ssh_common_args) to the inventory's other sources, except for the
        C(ProxyCommand) of O(bastion).
      - C(ansible.cfg) C(ssh_args) and C(host_key_checking) come first on ssh's command line and ssh
        keeps the first value of an option, so they must not set C(StrictHostKeyChecking) or
        C(UserKnownHostsFile).
    type: path
  ssh_private_key_file:
    description:
      - Private key for SSH, set as C(ansible_ssh_private_key_file) (C(~) expanded) and used for the
        bastion hop. Unset sets nothing.
    type: path
  ssh_user:
    description:
      - Remote user for SSH, set as C(ansible_user) and used for the bastion hop. Unset sets nothing.
    type: str
"""

EXAMPLES = r"""
# inventory/openstack.yml - ansible-inventory -i inventory/openstack.yml --graph
# The servers of deployment monoscape: groups monoscape_controller, monoscape_nodes,
# monoscape_builders (and role_*, tenant_*, app_*). The controller is reached at its floating
# IP; the nodes, which have only fixed addresses, through the controller (ProxyCommand).
plugin: monoscape.paas.openstack_servers
clouds: [monoscape]
deployment: monoscape
ssh_user: root
ssh_private_key_file: ~/.config/monoscape/monoscape/id_ed25519
ssh_known_hosts_file: ~/.config/monoscape/monoscape/known_hosts
keyed_groups:
  - key: openstack.availability_zone
    prefix: az
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/monoscape/inventory
cache_timeout: 300

---
# Servers on a provider network, reachable at their fixed addresses: no bastion.
plugin: monoscape.paas.openstack_servers
clouds: [monoscape]
deployment: monoscape
private: true
ssh_user: debian
compose:
  ansible_become: "true"
"""

import hashlib
import json
import logging
import os
import re
import shlex
from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

NOVA_MICROVERSION = "2.47"  # flavor embedded with its name, still a 2017 API
CACHE_SCHEMA = 2  # bump when lean_server() changes: old cache entries are then not read
UNSAFE_GROUP_CHARS = re.compile(r"[^A-Za-z0-9_]")
CONFIG_MARKER = b"openstack_servers"


def safe_group(name):
    """A group name Ansible accepts without warnings: letters, digits and '_'."""
    name = UNSAFE_GROUP_CHARS.sub("_", str(name))
    return f"_{name}" if name[:1].isdigit() else name


def lean_server(server, cloud, region):
    """The part of Nova's server document the inventory keeps (and caches): small, because
    ansible-inventory serialises every host's variables."""
    flavor = server.get("flavor") or {}
    image = server.get("image") or {}
    networks, fixed, floating = {}, [], []
    for network, entries in (server.get("addresses") or {}).items():
        for entry in entries:
            address = entry.get("addr")
            networks.setdefault(network, []).append(address)
            (floating if entry.get("OS-EXT-IPS:type") == "floating" else fixed).append(address)
    lean = {
        "id": server.get("id"),
        "name": server.get("name"),
        "status": server.get("status"),
        "cloud": cloud,
        "region": region,
        "project_id": server.get("tenant_id"),
        "availability_zone": server.get("OS-EXT-AZ:availability_zone"),
        "flavor": flavor.get("original_name") or flavor.get("name") or flavor.get("id"),
        "image_id": image.get("id") if isinstance(image, dict) else None,
        "key_name": server.get("key_name"),
        "metadata": server.get("metadata") or {},
        "networks": networks,
        "fixed_ips": fixed,
        "floating_ips": floating,
        "security_groups": sorted({g.get("name") for g in server.get("security_groups") or [] if g.get("name")}),
    }
    fault = (server.get("fault") or {}).get("message")
    if fault:
        lean["fault"] = fault
    return lean


def first_address(addresses, only_ipv4=False):
    """The first IPv4 address, else (unless only_ipv4) the first IPv6 one."""
    v4 = [a for a in addresses if ":" not in a]
    return (v4 or ([] if only_ipv4 else list(addresses)) or [None])[0]


def pick_address(server, private=False, only_ipv4=False):
    """(ansible_host, fixed, floating) of a lean server."""
    fixed = first_address(server.get("fixed_ips") or [], only_ipv4)
    floating = first_address(server.get("floating_ips") or [], only_ipv4)
    host = fixed if private else (floating or fixed)
    return host, fixed, floating


def roles_of(server):
    """The server's monoscape_role values (comma-separated, like the metadata groups)."""
    return [v.strip() for v in str(server["metadata"].get("monoscape_role") or "").split(",") if v.strip()]


def deployment_of(server):
    """What makes a deployment: its name (metadata monoscape_deployment) within one cloud and
    project - the project's network is what the bastion reaches the other servers on. None for a
    server without the metadata."""
    name = server["metadata"].get("monoscape_deployment")
    return (server["cloud"], server.get("project_id"), name) if name else None


def ssh_token(text):
    """`text` with `%` doubled: ssh expands %-tokens in UserKnownHostsFile, IdentityFile and
    ProxyCommand."""
    return str(text).replace("%", "%%")


def known_hosts_options(known_hosts, alias):
    """ssh arguments that check the host key strictly against `known_hosts`, under the name `alias`."""
    return [
        "-o",
        f"UserKnownHostsFile={ssh_token(known_hosts)}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"HostKeyAlias={alias}",
    ]


def proxy_command(address, alias, user=None, key_file=None, known_hosts=None):
    """The ProxyCommand that reaches a host through the bastion at `address`, whose known_hosts
    name is `alias`: a /bin/sh command line, in which ssh first expands its %-tokens."""
    argv = ["ssh"]
    if key_file:
        argv += ["-i", ssh_token(key_file)]  # the bastion hop's ssh expands %-tokens here too
    if known_hosts:
        argv += known_hosts_options(known_hosts, alias)
    argv += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-W", "%h:%p", f"{user}@{address}" if user else address]
    # %h:%p are meant for the outer ssh to expand; everything else is literal
    return " ".join(arg if arg == "%h:%p" else ssh_token(shlex.quote(arg)) for arg in argv)


def double_quoted(text):
    """`text` in double quotes that shlex.split (what Ansible does with ansible_ssh_common_args)
    turns back into `text`, as one argument."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def describe_error(exc):
    """A one-line reason for a cloud that could not be read."""
    name = type(exc).__name__
    text = str(exc)
    if name == "Unauthorized" or getattr(exc, "http_status", None) == 401:
        return "authentication failed: the credentials in clouds.yaml were rejected"
    if name in ("ConnectFailure", "ConnectTimeout"):
        where = text.split(": HTTP", 1)[0].split(": (", 1)[0]
        return f"cannot reach the API ({where}) - is the cloud running and auth_url right"
    return f"{name}: {text}"


class Target:
    """One cloud to read: its name, where its compute endpoint is, and how to get a session."""

    def __init__(self, name, region_name, interface, session):
        self.name = name
        self.region_name = region_name
        self.interface = interface
        self.session = session


def sdk_config_loader():
    """openstacksdk's clouds.yaml loader, the module openstack.config.loader (imported when
    the inventory is read, not when the plugin is loaded)."""
    try:
        from openstack.config import loader  # noqa: PLC0415 - only when the inventory is read
    except ImportError as exc:
        raise AnsibleParserError("openstacksdk is needed to read clouds.yaml: pip install openstacksdk") from exc
    return loader


def cloud_targets(names=None, clouds_yaml_path=None):
    """(targets, failures) of the clouds `names` (every cloud when empty), read with openstacksdk's
    OpenStackConfig: its clouds.yaml search (OS_CLIENT_CONFIG_FILE, then the files of
    clouds_yaml_path, then ./, ~/.config/openstack, /etc/xdg/openstack, /etc/openstack), secure.yaml merged in,
    profiles, region lists, OS_* variables (cloud `envvars`), and its choice of the auth plugin.
    A cloud that is not defined or cannot be loaded is a failure, reported with its name."""
    loader = sdk_config_loader()
    files = [os.path.expanduser(p) for p in clouds_yaml_path or []] + list(loader.CONFIG_FILES)
    try:
        config = loader.OpenStackConfig(config_files=files, app_name="monoscape.paas")
    except Exception as exc:  # a clouds.yaml that cannot be parsed fails the whole inventory
        raise AnsibleParserError(f"cannot read clouds.yaml: {describe_error(exc)}") from exc
    defined = config.get_cloud_names()
    if not config.config_filename and config.envvar_key not in defined:
        override = os.environ.get("OS_CLIENT_CONFIG_FILE")
        searched = ", ".join(dict.fromkeys([*([override] if override else []), *files]))
        if not names:
            raise AnsibleParserError(f"no clouds.yaml found and no OS_* variables set (searched {searched})")
        # named clouds whose clouds.yaml is not there yet (a tenant before its first run): each is
        # skipped with a warning, as a cloud that is not defined
        return [], [(name, f"not defined: no clouds.yaml found (searched {searched})") for name in names]
    where = f" {config.config_filename}" if config.config_filename else ""
    override = os.environ.get("OS_CLIENT_CONFIG_FILE")
    hidden = [path for path in files[: len(clouds_yaml_path or [])] if path != override]
    if override and hidden and config.config_filename == override:
        # openstacksdk reads the first clouds.yaml it finds, and puts this one first
        where += f" (OS_CLIENT_CONFIG_FILE: read before clouds_yaml_path; unset it to use {hidden[0]})"
    targets, failures = [], []
    for name in names or defined:
        if name not in defined:
            failures.append((name, f"not defined in clouds.yaml{where} (defined: {', '.join(sorted(defined))})"))
            continue
        try:
            region = config.get_one(cloud=name)
        except Exception as exc:  # a bad entry is reported like an unreachable cloud
            failures.append((name, describe_error(exc)))
            continue
        interface = region.get_interface("compute") or "public"
        targets.append(Target(name, region.get_region_name("compute"), interface, region.get_session))
    return targets, failures


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "monoscape.paas.openstack_servers"

    def verify_file(self, path):
        if not super().verify_file(path) or not path.endswith((".yml", ".yaml")):
            return False
        if path.endswith(("openstack_servers.yml", "openstack_servers.yaml")):
            return True
        try:
            with open(path, "rb") as handle:
                return CONFIG_MARKER in handle.read(4096)
        except OSError:
            return False

    # ------------------------------------------------------------------ clouds.yaml
    def _targets(self):
        """(targets, failures): one target per cloud to read."""
        return cloud_targets(self.get_option("clouds"), self.get_option("clouds_yaml_path"))

    # ------------------------------------------------------------------ fetching
    def _fetch_cloud(self, target):
        """Servers of one cloud: a token (with its catalog) and one detailed list call (more only
        when Nova pages the answer)."""
        session = target.session()
        endpoint = session.get_endpoint(
            service_type="compute", interface=target.interface, region_name=target.region_name
        )
        params = {key: str(value) for key, value in (self.get_option("server_filters") or {}).items()}
        deployment = self.get_option("deployment")
        if deployment and self.get_option("deployment_tag"):
            params["tags"] = f"monoscape_deployment={deployment}"
        if self.get_option("all_projects"):
            params["all_tenants"] = "1"
        headers = {
            "OpenStack-API-Version": f"compute {NOVA_MICROVERSION}",
            "X-OpenStack-Nova-API-Version": NOVA_MICROVERSION,
            "Accept": "application/json",
        }
        timeout = self.get_option("api_timeout")
        url = endpoint.rstrip("/") + "/servers/detail"
        servers = []
        while url:
            response = session.get(url, params=params, headers=headers, timeout=timeout, raise_exc=False)
            if response.status_code == 406 and "OpenStack-API-Version" in headers:  # a cloud older than 2.47
                headers = {"Accept": "application/json"}
                continue
            if response.status_code >= 400:
                raise RuntimeError(f"GET {url} answered {response.status_code}: {response.text[:200]}")
            body = response.json()
            servers.extend(body.get("servers", []))
            url = next((link["href"] for link in body.get("servers_links", []) if link.get("rel") == "next"), None)
            params = None  # the next link carries the query
        return [lean_server(server, target.name, target.region_name) for server in servers]

    def _fetch(self):
        if self.display.verbosity < 4:
            # keystoneauth logs discovery fallbacks as warnings; they would land on stderr next to the JSON
            for name in ("keystoneauth", "openstack"):
                logging.getLogger(name).addHandler(logging.NullHandler())
                logging.getLogger(name).propagate = False
        targets, failures = self._targets()
        servers = []
        if targets:
            with ThreadPoolExecutor(max_workers=len(targets)) as pool:
                futures = [(target.name, pool.submit(self._fetch_cloud, target)) for target in targets]
                for name, future in futures:
                    try:
                        servers.extend(future.result())
                    except Exception as exc:  # every cloud failure is reported by name below
                        failures.append((name, describe_error(exc)))
        if failures:
            text = "; ".join(f"cloud {name}: {reason}" for name, reason in failures)
            if not self.get_option("allow_partial"):
                raise AnsibleParserError(
                    f"cannot read servers - {text}. Fix the cloud, drop it from clouds, or set allow_partial: true"
                )
            self.display.warning(f"openstack_servers: skipped - {text}")
        deployment = self.get_option("deployment")
        if deployment:
            servers = [s for s in servers if s["metadata"].get("monoscape_deployment") == deployment]
        return servers

    # ------------------------------------------------------------------ populating
    def _hostnames(self, servers):
        if self.get_option("hostname") == "id":
            return [s["id"] for s in servers]
        counts = {}
        for server in servers:
            counts[server["name"]] = counts.get(server["name"], 0) + 1
        duplicates = sorted(n for n, c in counts.items() if c > 1)
        if duplicates:
            self.display.warning(
                f"openstack_servers: several servers are named {', '.join(duplicates)}; they are listed as"
                " <name>-<first 8 characters of the id>"
            )
        return [s["name"] if counts[s["name"]] == 1 else f"{s['name']}-{s['id'][:8]}" for s in servers]

    def _bastions(self, servers, hostnames):
        """{deployment_of(server): (host name, server, floating IP)}: of each deployment, its first
        ACTIVE bastion_role server by name that has a floating IP (two controllers of a highly
        available load balancer each have one); warns about the deployments where none has."""
        if not self.get_option("bastion") or self.get_option("private"):
            return {}
        role, only_ipv4 = self.get_option("bastion_role"), self.get_option("only_ipv4")
        candidates = {}
        for hostname, server in zip(hostnames, servers, strict=True):
            deployment = deployment_of(server)
            if deployment and server["status"] == "ACTIVE" and role in roles_of(server):
                candidates.setdefault(deployment, []).append((hostname, server))
        bastions = {}
        for deployment, found in candidates.items():
            reachable = [
                (hostname, server, floating)
                for hostname, server in found
                if (floating := first_address(server["floating_ips"], only_ipv4))
            ]
            if reachable:  # the first by server name (host names tell apart servers of one name)
                bastions[deployment] = min(reachable, key=lambda r: (r[1]["name"], r[0]))
                continue
            cloud, _, name = deployment
            names = ", ".join(sorted(h for h, _ in found))
            where = f"deployment {name} (cloud {cloud})"
            if len(found) == 1:
                what = f"the {role} {names} of {where} has no floating IP"
            else:
                what = f"none of the ACTIVE {role} servers of {where} ({names}) has a floating IP"
            self.display.warning(
                f"openstack_servers: {what}; its servers without a floating IP get no bastion (ProxyCommand)"
            )
        return bastions

    def _ssh_variables(self, hostname, server, host, floating, bastions):
        """The SSH host variables of one host, from the options that are set."""
        user = self.get_option("ssh_user")
        key_file = self.get_option("ssh_private_key_file")
        key_file = os.path.expanduser(key_file) if key_file else None
        known_hosts = self.get_option("ssh_known_hosts_file")
        known_hosts = os.path.expanduser(known_hosts) if known_hosts else None
        variables, args = {}, []
        if user:
            variables["ansible_user"] = user
        if key_file:
            variables["ansible_ssh_private_key_file"] = key_file
        if known_hosts:
            args += [shlex.quote(arg) for arg in known_hosts_options(known_hosts, server["name"])]
        bastion = bastions.get(deployment_of(server))
        if bastion and host and not floating and bastion[0] != hostname:
            bastion_host, bastion_server, address = bastion
            command = proxy_command(address, bastion_server["name"], user, key_file, known_hosts)
            variables["monoscape_bastion"] = bastion_host
            args += ["-o", f"ProxyCommand={double_quoted(command)}"]
        if args:
            variables["ansible_ssh_common_args"] = " ".join(args)
        return variables

    def _groups_of(self, server, host):
        """The metadata and role groups of a server (none for servers in ERROR or without an address)."""
        if server["status"] == "ERROR" or not host:
            return []
        names = []
        for key, prefix in (self.get_option("metadata_groups") or {}).items():
            for value in str(server["metadata"].get(key) or "").split(","):
                if value.strip():
                    names.append(f"{prefix}_{value.strip()}")
        role_groups = self.get_option("role_groups") or {}
        names += [role_groups[role] for role in roles_of(server) if role_groups.get(role)]
        return [safe_group(name) for name in names]

    def _populate(self, servers):
        # by name (then id): groups list their hosts in the same order whatever order the
        # clouds answer in (Nova lists the newest first), so groups[...][0] is stable
        servers = sorted(servers, key=lambda s: (s["name"], s["id"]))
        inventory = self.inventory
        private, only_ipv4 = self.get_option("private"), self.get_option("only_ipv4")
        cloud_groups = self.get_option("cloud_groups")
        error_group = safe_group(self.get_option("error_group"))
        no_address_group = safe_group(self.get_option("no_address_group"))
        strict = self.get_option("strict")
        compose, groups, keyed = self.get_option("compose"), self.get_option("groups"), self.get_option("keyed_groups")
        known_groups = set()

        def group(name):
            if name not in known_groups:
                inventory.add_group(name)
                known_groups.add(name)
            return name

        hostnames = self._hostnames(servers)
        bastions = self._bastions(servers, hostnames)
        for hostname, server in zip(hostnames, servers, strict=True):
            host, fixed, floating = pick_address(server, private, only_ipv4)
            facts = dict(server, private_ip=fixed, public_ip=floating)
            inventory.add_host(hostname)
            inventory.set_variable(hostname, "openstack", facts)
            if host:
                inventory.set_variable(hostname, "ansible_host", host)
            ssh = self._ssh_variables(hostname, server, host, floating, bastions)
            for name, value in ssh.items():
                inventory.set_variable(hostname, name, value)
            if cloud_groups:
                inventory.add_child(group(safe_group(f"cloud_{server['cloud']}")), hostname)
            if server["status"] == "ERROR":
                inventory.add_child(group(error_group), hostname)
            elif not host:
                inventory.add_child(group(no_address_group), hostname)
            for name in self._groups_of(server, host):
                inventory.add_child(group(name), hostname)
            if compose or groups or keyed:
                variables = {"facts": facts, "openstack": facts, "ansible_host": host}
                self._set_composite_vars(compose, variables, hostname, strict=strict)
                self._add_host_to_composed_groups(groups, variables, hostname, strict=strict)
                self._add_host_to_keyed_groups(keyed, variables, hostname, strict=strict)

    def _cache_key(self, path):
        options = {
            key: self.get_option(key)
            for key in (
                "clouds",
                "clouds_yaml_path",
                "all_projects",
                "server_filters",
                "api_timeout",
                "deployment",
                "deployment_tag",
            )
        }
        options["schema"] = CACHE_SCHEMA
        digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return f"{self.get_cache_key(path)}_{digest}"

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        key = self._cache_key(path)
        use_cache = self.get_option("cache")
        servers = None
        if use_cache and cache:
            try:
                servers = self._cache[key]
            except KeyError:
                servers = None
        if servers is None:
            servers = self._fetch()
            if use_cache:
                self._cache[key] = servers
        self._populate(servers)
