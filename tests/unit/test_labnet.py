"""The lab network's rendering (lab/monoscape_lab/labnet.py): a Neutron model in,
nftables scripts and router plans out. Every rendered script is also checked by
the real nft (`nft -c`, which loads nothing) in a namespace of its own."""

import pathlib
import secrets
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "lab"))

from monoscape_lab import labnet  # noqa: E402 - after the path set-up

HOST = "lab-podman"
NET = "11111111-aaaa-4aaa-8aaa-000000000001"
EXT = "22222222-bbbb-4bbb-8bbb-000000000002"
SUBNET = "33333333-cccc-4ccc-8ccc-000000000003"
EXT_SUBNET = "44444444-dddd-4ddd-8ddd-000000000004"
DEFAULT_SG = "sg-default-0000000000000000000000"
WEB_SG = "sg-web-000000000000000000000000000"


def port(pid, ip, groups=(DEFAULT_SG,), **extra):
    values = {
        "network_id": NET,
        "mac": f"fa:16:3e:00:00:{int(ip.rsplit('.', 1)[1]):02x}",
        "device_owner": "compute:nova",
        "device_id": f"vm-{pid}",
        "host": HOST,
        "fixed_ips": [(ip, SUBNET)],
        "security_groups": list(groups),
    }
    values.update(extra)
    return labnet.Port(pid, **values)


def rule(rid, direction, **extra):
    values = {
        "ethertype": "IPv4",
        "protocol": None,
        "port_min": None,
        "port_max": None,
        "remote_ip_prefix": None,
        "remote_group_id": None,
    }
    values.update(extra)
    return labnet.Rule(rid, direction, **values)


@pytest.fixture
def model():
    m = labnet.Model()
    subnet = labnet.Subnet(SUBNET, NET, "10.0.0.0/24", "10.0.0.1", 4)
    ext_subnet = labnet.Subnet(EXT_SUBNET, EXT, "198.51.100.0/24", "198.51.100.1", 4)
    m.networks[NET] = labnet.Network(NET, 1450, False, subnets=[subnet])
    m.networks[EXT] = labnet.Network(EXT, 1500, True, subnets=[ext_subnet])
    m.subnets = {SUBNET: subnet, EXT_SUBNET: ext_subnet}
    # Neutron's default group: ingress from its members, egress anywhere
    m.groups[DEFAULT_SG] = [
        rule("r1", "ingress", remote_group_id=DEFAULT_SG),
        rule("r2", "ingress", ethertype="IPv6", remote_group_id=DEFAULT_SG),
        rule("r3", "egress"),
        rule("r4", "egress", ethertype="IPv6"),
    ]
    m.groups[WEB_SG] = [
        rule("w1", "ingress", protocol="tcp", port_min=80, port_max=80, remote_ip_prefix="0.0.0.0/0"),
        rule("w2", "ingress", protocol="tcp", port_min=9080, port_max=9999, remote_group_id=DEFAULT_SG),
        rule("w3", "ingress", protocol="icmp", port_min=8, port_max=0, remote_ip_prefix="198.51.100.1/32"),
        rule("w4", "ingress", protocol="112", remote_group_id=WEB_SG),  # VRRP between members
        rule("w5", "ingress", ethertype="IPv6", protocol="tcp", port_min=22, port_max=22),
        rule("w6", "egress"),
    ]
    m.ports["aaaaaaaa-0001"] = port("aaaaaaaa-0001", "10.0.0.11")
    m.ports["bbbbbbbb-0002"] = port("bbbbbbbb-0002", "10.0.0.12", groups=(WEB_SG,))
    m.ports["router-if-0003"] = labnet.Port(
        "router-if-0003", NET, "fa:16:3e:00:01:01", labnet.ROUTER_INTERFACE, "r-1", fixed_ips=[("10.0.0.1", SUBNET)]
    )
    m.ports["router-gw-0004"] = labnet.Port(
        "router-gw-0004",
        EXT,
        "fa:16:3e:00:01:02",
        labnet.ROUTER_GATEWAY,
        "r-1",
        fixed_ips=[("198.51.100.20", EXT_SUBNET)],
    )
    m.routers["r-1"] = labnet.Router("r-1", True, "router-gw-0004", True, ["router-if-0003"])
    return m


def chain(script, name):
    """The body lines of one chain of a rendered script."""
    lines = script.splitlines()
    start = lines.index(f"  chain {name} {{")
    end = lines.index("  }", start)
    return [line.strip() for line in lines[start + 1 : end]]


def test_default_group_admits_its_members_and_lets_everything_out(model):
    script = labnet.render_fabric(model, HOST)
    assert chain(script, "ingress_aaaaaaaa-00") == ["ip saddr { 10.0.0.11 } accept", "drop"]
    assert chain(script, "egress_aaaaaaaa-00") == ["meta nfproto ipv4 return", "drop"]


def test_rules_become_matches_and_ipv6_rules_are_left_out(model):
    ingress = chain(labnet.render_fabric(model, HOST), "ingress_bbbbbbbb-00")
    assert ingress == [
        "meta l4proto tcp th dport 80 accept",
        "ip saddr { 10.0.0.11 } meta l4proto tcp th dport 9080-9999 accept",
        "ip saddr 198.51.100.1/32 meta l4proto icmp icmp type 8 icmp code 0 accept",
        "ip saddr { 10.0.0.12 } meta l4proto 112 accept",
        "drop",
    ]


def test_a_remote_group_without_members_matches_nothing(model):
    model.groups[WEB_SG].append(rule("w7", "ingress", protocol="tcp", port_min=22, remote_group_id="sg-empty"))
    assert "th dport 22" not in labnet.render_fabric(model, HOST)


def test_every_port_is_marked_and_spoofing_is_dropped(model):
    script = labnet.render_fabric(model, HOST)
    assert chain(script, "from_aaaaaaaa-00") == [
        "ether saddr != { fa:16:3e:00:00:0b } drop",
        "ether type arp arp saddr ip != { 10.0.0.11 } drop",
        "ether type ip ip saddr != { 10.0.0.11 } drop",
        "ether type ip6 drop",
        "meta mark set 0x1 accept",
    ]
    assert chain(script, "to_bbbbbbbb-00") == ["ether type ip6 drop", "meta mark set meta mark or 0x20000 accept"]
    prerouting = chain(script, "prerouting")
    assert prerouting[-1] == 'iifname "tap*" drop'  # a port nobody knows passes nothing
    assert '"taprouter-if-0" : accept' in prerouting[-2]  # router legs are not filtered


def test_allowed_address_pairs_may_send_and_are_group_members(model):
    model.ports["aaaaaaaa-0001"].allowed_pairs.append(("fa:16:3e:99:99:99", "10.0.0.100"))
    script = labnet.render_fabric(model, HOST)
    anti_spoof = chain(script, "from_aaaaaaaa-00")
    assert anti_spoof[0] == "ether saddr != { fa:16:3e:00:00:0b, fa:16:3e:99:99:99 } drop"
    assert anti_spoof[2] == "ether type ip ip saddr != { 10.0.0.100, 10.0.0.11 } drop"
    assert chain(script, "ingress_aaaaaaaa-00")[0] == "ip saddr { 10.0.0.100, 10.0.0.11 } accept"


def test_port_security_disabled_means_no_filter_at_all(model):
    model.ports["bbbbbbbb-0002"].port_security = False
    model.ports["bbbbbbbb-0002"].security_groups = []
    script = labnet.render_fabric(model, HOST)
    assert chain(script, "from_bbbbbbbb-00") == ["accept"]
    assert "ingress_bbbbbbbb-00" not in script and "to_bbbbbbbb-00" not in script
    assert '"tapbbbbbbbb-00" : accept' in chain(script, "forward")[1]


def test_an_administratively_down_port_passes_nothing(model):
    model.ports["aaaaaaaa-0001"].admin_up = False
    script = labnet.render_fabric(model, HOST)
    assert chain(script, "from_aaaaaaaa-00") == ["drop"]
    assert '"tapaaaaaaaa-00" : drop' in chain(script, "forward")[1]


def test_ports_of_other_hosts_are_not_filtered_here_but_count_as_members(model):
    model.ports["cccccccc-0005"] = port("cccccccc-0005", "10.0.0.13", host="lab-fake")
    script = labnet.render_fabric(model, HOST)
    assert "from_cccccccc-00" not in script
    assert chain(script, "ingress_aaaaaaaa-00")[0] == "ip saddr { 10.0.0.11, 10.0.0.13 } accept"


def test_established_connections_are_rechecked_in_their_original_direction(model):
    forward = [line for line in labnet.render_fabric(model, HOST).splitlines() if "ct " in line]
    assert [line.strip() for line in forward] == [
        "ct state invalid drop",
        "ct state related accept",
        "ct state established ct direction reply accept",
    ]


def test_router_plan_and_nat(model):
    model.floating_ips["f-1"] = labnet.FloatingIP("f-1", "198.51.100.50", EXT, "aaaaaaaa-0001", "10.0.0.11", "r-1")
    model.floating_ips["f-2"] = labnet.FloatingIP("f-2", "198.51.100.51", EXT, None, None, None)  # not associated
    plan = labnet.plan_router(model, model.routers["r-1"])
    assert plan.interfaces == [
        ("qr-router-if-0", "taprouter-if-0", "mslb-11111111-a", "fa:16:3e:00:01:01", "10.0.0.1/24", 1450)
    ]
    assert plan.gateway == (
        "qg-router-gw-0",
        "mslgrouter-gw-0",
        "mslx-22222222-b",
        "fa:16:3e:00:01:02",
        "198.51.100.20/24",
        "198.51.100.1",
    )
    assert plan.floating == [("198.51.100.50", "10.0.0.11")]
    script = labnet.render_router(plan)
    assert "ip daddr 198.51.100.50 dnat to 10.0.0.11" in script
    assert 'oifname "qg-router-gw-0" ip saddr 10.0.0.11 snat to 198.51.100.50' in script
    assert 'oifname "qg-router-gw-0" ip saddr { 10.0.0.0/24 } snat to 198.51.100.20' in script
    assert chain(script, "forward")[1:] == [  # from outside only what a floating IP lets in
        'iifname "qg-router-gw-0" ct status dnat accept',
        'iifname "qg-router-gw-0" ct state established,related accept',
        'iifname "qg-router-gw-0" drop',
    ]


def test_a_router_without_gateway_has_no_way_out(model):
    model.routers["r-1"].gw_port_id = None
    plan = labnet.plan_router(model, model.routers["r-1"])
    assert plan.gateway is None and plan.snat is None
    assert "snat to" not in labnet.render_router(plan)


def test_host_rules_and_leak_guard(model):
    assert labnet.external_bridges(model) == {"mslx-22222222-b": ("198.51.100.1/24", "198.51.100.0/24", 1500)}
    script = labnet.render_host(model)
    assert 'iifname "mslx-22222222-b" ip saddr != 198.51.100.0/24 drop' in script
    assert 'ip saddr 198.51.100.0/24 oifname != "mslx-22222222-b" oifname != "mslx-*" masquerade' in script
    assert labnet.leak_guard(model) == ["10.0.0.0/24"]
    assert "dnat to" not in script, "nothing of the host is published unless asked"


def test_published_ports_answer_on_the_external_gateway_only(model):
    script = labnet.render_host(model, published=[5000, "5000"])
    dnat = [line.strip() for line in script.splitlines() if "dnat to" in line]
    assert dnat == ['iifname "mslx-22222222-b" ip daddr 198.51.100.1 tcp dport 5000 dnat to 127.0.0.1:5000']
    # the rest of the loopback stays out of reach of the external networks
    assert 'iifname "mslx-*" ip daddr 127.0.0.0/8 ct status dnat accept' in script
    assert script.index("ct status dnat accept") < script.index("ip daddr 127.0.0.0/8 drop")


def test_names_fit_in_an_interface_name():
    uuid = "0123456789ab-cdef-0123-456789abcdef"
    for name in (labnet.bridge_name(uuid), labnet.tap_name(uuid), labnet.qr_name(uuid), labnet.ext_peer_name(uuid)):
        assert len(name) <= 15, name


def test_every_rendered_script_is_valid_nftables(model):
    """Runs as root, as `make test` does (the lab needs it too)."""
    model.floating_ips["f-1"] = labnet.FloatingIP("f-1", "198.51.100.50", EXT, "aaaaaaaa-0001", "10.0.0.11", "r-1")
    model.ports["aaaaaaaa-0001"].allowed_pairs.append((None, "10.0.0.96/28"))
    scripts = [
        labnet.render_fabric(model, HOST),
        labnet.render_router(labnet.plan_router(model, model.routers["r-1"])),
        labnet.render_host(model),
        labnet.render_host(model, published=[5000]),
        labnet.CLOSED_FABRIC,
        labnet.render_fabric(labnet.Model(), HOST),  # an empty cloud
    ]
    ns = f"mslab-test-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for script in scripts:
            argv = ["ip", "netns", "exec", ns, "nft", "-c", "-f", "-"]
            proc = subprocess.run(argv, input=script, capture_output=True, text=True, check=False)
            assert proc.returncode == 0, f"{proc.stderr}\n{script}"
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
