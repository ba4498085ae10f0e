"""The lab's network is as strict as a production cloud's (lab/monoscape_lab/labnet.py):
tenant networks are unreachable from the host, floating IPs route within 5 s of
being associated and stop within 5 s of being released, security groups are
enforced on every port (ingress and egress, ports and protocols, remote IP
prefixes and groups, the default group, port security off, allowed address
pairs) and their changes take effect within 5 s, a network behind a router has
a way out and one without has none, and the console log shows each instance's
SSH host keys at first boot.

One project (a member user) with two networks: `routed` (router with a gateway on
the external network) and `isolated` (no router); four servers:

  web     routed    [web]              floating IP; echo servers on 8000 and 8001
  client  routed    [client, default]
  peer    routed    [default]          echo server on 8001
  lonely  isolated  [default]

The inside view (one instance connecting to another) uses the hypervisor's
`podman exec`; the operator's view is this machine and `lab_outsider`.
"""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openstack
import pytest
from lab_helpers import console_host_keys, instance_exec, wait_until

CHANGE_WITHIN = 5  # seconds, for rule, membership and floating IP changes
ROUTED_CIDR = "10.60.0.0/24"
ISOLATED_CIDR = "10.61.0.0/24"


def connects(server, address, port, source=None, timeout=2):
    """From inside `server`: does a TCP connection to address:port succeed?"""
    bind = f"s.bind(({source!r}, 0)); " if source else ""
    code = (
        f"import socket; s = socket.socket(); {bind}s.settimeout({timeout}); "
        f"s.connect(({address!r}, {port})); s.close()"
    )
    return instance_exec(server.id, f"python3 -c {code!r}", timeout=timeout + 20).returncode == 0


def host_connects(address, port, timeout=2):
    try:
        socket.create_connection((address, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def fixed(server):
    return next(a["addr"] for addrs in server.addresses.values() for a in addrs if a["OS-EXT-IPS:type"] == "fixed")


ECHO = """
import socketserver, sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                return
            self.request.sendall(data)


socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", int(sys.argv[1])), Echo).serve_forever()
"""


def listen(server, *ports):
    """TCP echo servers on `ports` inside the instance."""
    instance_exec(server.id, f"cat > /root/echo.py <<'EOF'\n{ECHO}EOF")
    for port in ports:
        instance_exec(server.id, f"nohup python3 /root/echo.py {port} >/dev/null 2>&1 &")
    for port in ports:
        assert wait_until(lambda p=port: connects(server, "127.0.0.1", p), 20) is not None


@pytest.fixture(scope="module")
def cloud(lab_project_factory, lab_external):
    project = lab_project_factory("lab-net")
    conn = project.conn
    public = conn.network.find_network("public")
    routed = conn.network.create_network(name=f"{project.name}-routed")
    routed_subnet = conn.network.create_subnet(
        network_id=routed.id, name=f"{project.name}-routed", ip_version=4, cidr=ROUTED_CIDR, is_dhcp_enabled=False
    )
    isolated = conn.network.create_network(name=f"{project.name}-isolated")
    conn.network.create_subnet(
        network_id=isolated.id, name=f"{project.name}-isolated", ip_version=4, cidr=ISOLATED_CIDR, is_dhcp_enabled=False
    )
    router = conn.network.create_router(name=f"{project.name}-router", external_gateway_info={"network_id": public.id})
    conn.network.add_interface_to_router(router, subnet_id=routed_subnet.id)
    web = conn.network.create_security_group(name=f"{project.name}-web")
    client = conn.network.create_security_group(name=f"{project.name}-client")
    # the operator (this machine) may reach 22 and 8001; clients of the web group reach 8000
    rules = {
        "ssh": {"port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": f"{lab_external.host_address}/32"},
        "web": {"port_range_min": 8000, "port_range_max": 8000, "remote_group_id": client.id},
        "operator": {
            "port_range_min": 8001,
            "port_range_max": 8001,
            "remote_ip_prefix": f"{lab_external.host_address}/32",
        },
    }
    made = {
        name: conn.network.create_security_group_rule(
            security_group_id=web.id, direction="ingress", ethertype="IPv4", protocol="tcp", **values
        )
        for name, values in rules.items()
    }
    image = conn.image.find_image("debian-12")
    flavor = conn.compute.find_flavor("m1.tiny")

    def boot(name, network, groups):
        return conn.compute.create_server(
            name=f"{project.name}-{name}",
            image_id=image.id,
            flavor_id=flavor.id,
            networks=[{"uuid": network.id}],
            security_groups=[{"name": g} for g in groups],
        )

    servers = {
        "web": boot("web", routed, [web.name]),
        "client": boot("client", routed, [client.name, "default"]),
        "peer": boot("peer", routed, ["default"]),
        "lonely": boot("lonely", isolated, ["default"]),
    }
    for name, server in servers.items():
        servers[name] = conn.compute.wait_for_server(
            server, status="ACTIVE", failures=["ERROR"], interval=0.5, wait=240
        )
    listen(servers["web"], 8000, 8001)
    listen(servers["peer"], 8001)
    return {
        "project": project,
        "conn": conn,
        "public": public,
        "router": router,
        "groups": {"web": web, "client": client},
        "rules": made,
        "servers": servers,
    }


def port_of(cloud, name):
    return next(cloud["conn"].network.ports(device_id=cloud["servers"][name].id))


def test_the_host_cannot_reach_a_fixed_address(cloud):
    web = cloud["servers"]["web"]
    started = time.monotonic()
    assert not host_connects(fixed(web), 22)
    assert time.monotonic() - started < 1, "refused locally (no route), never sent out of the machine"


def test_a_router_gives_a_way_out_and_no_router_none(cloud, lab_external):
    """Instances reach a server on the external network (this machine) only through a router."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.client_address[0])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((lab_external.host_address, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert connects(cloud["servers"]["peer"], lab_external.host_address, port)
        assert not connects(cloud["servers"]["lonely"], lab_external.host_address, port)
        instance_exec(cloud["servers"]["peer"].id, f"curl -s -o /dev/null http://{lab_external.host_address}:{port}/")
    finally:
        server.shutdown()
    gateway = cloud["conn"].network.get_router(cloud["router"]).external_gateway_info["external_fixed_ips"][0]
    assert seen and set(seen) == {gateway["ip_address"]}, "the request came from the router's address (SNAT)"


def test_floating_ip_routes_within_5s_and_stops_when_released(cloud, lab_external, lab_outsider):
    conn, web = cloud["conn"], cloud["servers"]["web"]
    fip = conn.network.create_ip(floating_network_id=cloud["public"].id, port_id=port_of(cloud, "web").id)
    took = wait_until(lambda: host_connects(fip.floating_ip_address, 22, timeout=1), CHANGE_WITHIN)
    assert took is not None, f"{fip.floating_ip_address}:22 not reachable within {CHANGE_WITHIN}s"
    # the agent reports it right after it routes it, as an L3 agent does
    assert wait_until(lambda: conn.network.get_ip(fip).status == "ACTIVE", CHANGE_WITHIN) is not None
    # only the operator's address is allowed on 22 and 8001 (rules with a remote IP prefix)
    assert host_connects(fip.floating_ip_address, 8001)
    assert not lab_outsider.connects(fip.floating_ip_address, 22)
    assert not lab_outsider.connects(fip.floating_ip_address, 8001)
    # nothing but the floating IP lets the outside in: a route to the subnet via the router is dropped
    assert not host_connects(fip.floating_ip_address, 8000)  # the web rule admits clients, not the operator
    conn.network.update_ip(fip, port_id=None)
    assert wait_until(lambda: not host_connects(fip.floating_ip_address, 22, timeout=1), CHANGE_WITHIN) is not None
    conn.network.delete_ip(fip)
    assert fixed(web)  # the server keeps its fixed address


def test_security_groups_by_remote_group_and_the_default_group(cloud):
    s = cloud["servers"]
    web, client, peer = s["web"], s["client"], s["peer"]
    assert connects(client, fixed(web), 8000), "client group -> web:8000 is allowed"
    assert not connects(peer, fixed(web), 8000), "a default-group instance is not a client"
    assert not connects(client, fixed(web), 8001), "8001 is open to the operator only"
    assert connects(client, fixed(peer), 8001), "default group: members reach each other"
    assert not connects(web, fixed(peer), 8001), "default group: non-members are refused"


def restore_web_rule(cloud):
    """Put the web group's rule (8000 from the client group) back."""
    cloud["rules"]["web"] = cloud["conn"].network.create_security_group_rule(
        security_group_id=cloud["groups"]["web"].id,
        direction="ingress",
        ethertype="IPv4",
        protocol="tcp",
        port_range_min=8000,
        port_range_max=8000,
        remote_group_id=cloud["groups"]["client"].id,
    )


def test_rule_changes_take_effect_within_5s(cloud):
    conn, s = cloud["conn"], cloud["servers"]
    rule = cloud["rules"]["web"]
    conn.network.delete_security_group_rule(rule)
    took = wait_until(lambda: not connects(s["client"], fixed(s["web"]), 8000, timeout=1), CHANGE_WITHIN)
    assert took is not None, "removing the rule did not cut client -> web:8000"
    restore_web_rule(cloud)
    assert wait_until(lambda: connects(s["client"], fixed(s["web"]), 8000, timeout=1), CHANGE_WITHIN) is not None


def test_a_removed_rule_cuts_an_open_connection(cloud):
    """Established connections are re-checked in their original direction."""
    conn, s = cloud["conn"], cloud["servers"]
    script = (
        "import socket, time\n"
        f"c = socket.create_connection(({fixed(s['web'])!r}, 8000), timeout=2)\n"
        "c.settimeout(2)\n"
        "import sys\n"
        "for i in range(20):\n"
        "    try:\n"
        "        c.sendall(b'ping')\n"
        "        assert c.recv(4) == b'ping'\n"
        "        time.sleep(0.5)\n"
        "    except (OSError, AssertionError):\n"
        "        print('cut after', i); sys.exit(0)\n"
        "print('never cut'); sys.exit(1)\n"
    )
    instance_exec(s["client"].id, f"cat > /tmp/keep.py <<'EOF'\n{script}EOF")
    done = {}
    runner = threading.Thread(
        target=lambda: done.update(proc=instance_exec(s["client"].id, "python3 /tmp/keep.py", 60))
    )
    runner.start()
    time.sleep(1.5)
    conn.network.delete_security_group_rule(cloud["rules"]["web"])
    runner.join(60)
    restore_web_rule(cloud)
    assert done["proc"].returncode == 0, done["proc"].stdout + done["proc"].stderr


def test_membership_changes_take_effect_within_5s(cloud):
    conn, s = cloud["conn"], cloud["servers"]
    port = port_of(cloud, "client")
    groups = list(port.security_group_ids)
    conn.network.update_port(port, security_group_ids=[g for g in groups if g != cloud["groups"]["client"].id])
    assert wait_until(lambda: not connects(s["client"], fixed(s["web"]), 8000, timeout=1), CHANGE_WITHIN) is not None
    conn.network.update_port(port, security_group_ids=groups)
    assert wait_until(lambda: connects(s["client"], fixed(s["web"]), 8000, timeout=1), CHANGE_WITHIN) is not None


def test_egress_rules_are_enforced(cloud):
    conn, s = cloud["conn"], cloud["servers"]
    client_group = cloud["groups"]["client"]
    egress = [
        r for r in conn.network.security_group_rules(security_group_id=client_group.id) if r.direction == "egress"
    ]
    assert egress, "Neutron gives a new group its allow-all egress rules"
    port = port_of(cloud, "client")
    groups = list(port.security_group_ids)
    # the default group also allows all egress: leave only the client group
    conn.network.update_port(port, security_group_ids=[client_group.id])
    for rule in egress:
        conn.network.delete_security_group_rule(rule)
    try:
        assert (
            wait_until(lambda: not connects(s["client"], fixed(s["web"]), 8000, timeout=1), CHANGE_WITHIN) is not None
        )
        conn.network.create_security_group_rule(
            security_group_id=client_group.id,
            direction="egress",
            ethertype="IPv4",
            protocol="tcp",
            port_range_min=8000,
            port_range_max=8000,
            remote_ip_prefix=f"{fixed(s['web'])}/32",
        )
        assert wait_until(lambda: connects(s["client"], fixed(s["web"]), 8000, timeout=1), CHANGE_WITHIN) is not None
        assert not connects(s["client"], fixed(s["peer"]), 8001), "only the listed egress is allowed"
    finally:
        for rule in conn.network.security_group_rules(security_group_id=client_group.id):
            if rule.direction == "egress":
                conn.network.delete_security_group_rule(rule)
        for ethertype in ("IPv4", "IPv6"):
            conn.network.create_security_group_rule(
                security_group_id=client_group.id, direction="egress", ethertype=ethertype
            )
        conn.network.update_port(port, security_group_ids=groups)


def test_allowed_address_pairs_and_spoofing(cloud):
    conn, s = cloud["conn"], cloud["servers"]
    extra = ROUTED_CIDR.replace("0/24", "250")
    assert instance_exec(s["client"].id, f"ip addr add {extra}/24 dev eth0").returncode == 0
    try:
        assert not connects(s["client"], fixed(s["peer"]), 8001, source=extra), "a spoofed source is dropped"
        port = port_of(cloud, "client")
        conn.network.update_port(port, allowed_address_pairs=[{"ip_address": extra}])
        assert wait_until(lambda: connects(s["client"], fixed(s["peer"]), 8001, source=extra, timeout=1), CHANGE_WITHIN)
        # the pair is a member of the client group for the web group's rule
        assert connects(s["client"], fixed(s["web"]), 8000, source=extra)
        conn.network.update_port(port, allowed_address_pairs=[])
    finally:
        instance_exec(s["client"].id, f"ip addr del {extra}/24 dev eth0")


def test_port_security_disabled_is_not_filtered(cloud):
    conn, s = cloud["conn"], cloud["servers"]
    port = port_of(cloud, "peer")
    assert not connects(s["web"], fixed(s["peer"]), 8001)
    conn.network.update_port(port, security_group_ids=[], port_security_enabled=False)
    try:
        assert wait_until(lambda: connects(s["web"], fixed(s["peer"]), 8001, timeout=1), CHANGE_WITHIN) is not None
    finally:
        conn.network.update_port(port, port_security_enabled=True)
        conn.network.update_port(port, security_group_ids=[conn.network.find_security_group("default").id])
    assert wait_until(lambda: not connects(s["web"], fixed(s["peer"]), 8001, timeout=1), CHANGE_WITHIN) is not None


def test_console_log_shows_the_ssh_host_keys_of_the_first_boot(cloud):
    conn, web = cloud["conn"], cloud["servers"]["web"]
    console = conn.compute.get_server_console_output(web)["output"]
    keys_in_console = set(console_host_keys(console))
    assert "-----BEGIN SSH HOST KEY FINGERPRINTS-----" in console
    on_disk = instance_exec(web.id, "cat /etc/ssh/ssh_host_*_key.pub").stdout
    assert keys_in_console == {" ".join(line.split()[:2]) for line in on_disk.splitlines()}
    fingerprints = instance_exec(web.id, "for f in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf $f; done").stdout
    for line in fingerprints.splitlines():
        assert line.split()[1] in console


def test_cleanup_leaves_no_router_port(cloud):
    """Deleting the router's interface and the router leaves no port behind (the
    project's own teardown as the bundle does it)."""
    conn = cloud["conn"]
    for server in cloud["servers"].values():
        conn.compute.delete_server(server)
    for server in cloud["servers"].values():
        conn.compute.wait_for_delete(server, wait=120)
    router = cloud["router"]
    for port in conn.network.ports(device_id=router.id, device_owner="network:router_interface"):
        conn.network.remove_interface_from_router(router, port_id=port.id)
    conn.network.update_router(router, external_gateway_info=None)
    conn.network.delete_router(router)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.network.get_router(router.id)
    assert list(conn.network.ports(project_id=cloud["project"].project_id)) == []
