"""The monoscape.paas.openstack_servers inventory plugin against the lab cloud:
servers booted with Monoscape metadata (by os_server, through ansible-playbook),
one with a floating IP, one in ERROR, one without an address; then
`ansible-inventory --list` must show the groups, hostvars and ansible_host."""

import json
import os
import subprocess
import time

import pytest
import yaml
from os_play import ROOT, Play, ok

pytestmark = pytest.mark.lab


def plain(value):
    """ansible-inventory marks plugin-made strings as {"__ansible_unsafe": ...}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def wait_for(what, check, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def inventory(workdir, clouds_yaml, **config):
    path = workdir / "openstack_servers.yml"
    path.write_text(yaml.safe_dump({"plugin": "monoscape.paas.openstack_servers", **config}))
    env = dict(
        os.environ,
        OS_CLIENT_CONFIG_FILE=str(clouds_yaml),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
    )
    proc = subprocess.run(
        ["ansible-inventory", "-i", str(path), "--list"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    return proc, plain(json.loads(proc.stdout)) if proc.returncode == 0 else None


def hosts(data, group):
    return sorted(data.get(group, {}).get("hosts", []))


def test_inventory_groups_hostvars_and_addresses(tmp_path, lab_project, lab_admin, lab_clouds_yaml):
    conn, tenant = lab_project.conn, lab_project.name
    base = {"image": "debian-12", "flavor": "m1.tiny", "networks": ["private"], "availability_zone": "fake"}
    servers = {
        "ctl": {"monoscape_role": "controller", "monoscape_tenant": tenant},
        "node-a": {"monoscape_role": "node", "monoscape_tenant": tenant, "monoscape_app": "hello"},
        "node-b": {"monoscape_role": "node", "monoscape_tenant": tenant, "monoscape_app": "hello,blog"},
        "broken": {"monoscape_role": "node", "monoscape_tenant": tenant},
        "noaddr": {"monoscape_role": "node", "monoscape_tenant": tenant},
    }
    play = Play(tmp_path, lab_clouds_yaml)
    booted, _ = play(
        lab_project.cloud,
        [
            (name.replace("-", "_"), {"monoscape.paas.os_server": {"name": name, **base, **meta}})
            for name, meta in servers.items()
        ],
    )
    ids = {}
    for name in servers:
        ids[name] = ok(booted[name.replace("-", "_")], changed=True)["server"]["id"]

    # node-a gets a floating IP, broken is put in ERROR, noaddr loses its port
    public = lab_admin.network.find_network("public", ignore_missing=False)
    port_a = next(conn.network.ports(device_id=ids["node-a"]))
    fip = conn.network.create_ip(floating_network_id=public.id, port_id=port_a.id)
    lab_admin.compute.reset_server_state(ids["broken"], "error")
    for port in conn.network.ports(device_id=ids["noaddr"]):
        lab_admin.network.delete_port(port)  # a member may not delete a compute port
    wait_for(
        "the floating IP in Nova", lambda: "floating" in json.dumps(conn.compute.get_server(ids["node-a"]).addresses)
    )
    wait_for("noaddr without addresses", lambda: not conn.compute.get_server(ids["noaddr"]).addresses)
    fixed = {
        name: next(conn.network.ports(device_id=ids[name])).fixed_ips[0]["ip_address"] for name in ("ctl", "node-a")
    }

    cloud = f"inv-{tenant}"
    clouds_yaml = lab_project.clouds_yaml(tmp_path / "clouds.yaml", cloud)
    proc, data = inventory(tmp_path, clouds_yaml, clouds=[cloud])
    assert proc.returncode == 0, proc.stderr
    tenant_group = "tenant_" + tenant.replace("-", "_")
    assert hosts(data, "role_controller") == ["ctl"]
    assert hosts(data, "role_node") == ["node-a", "node-b"]
    assert hosts(data, tenant_group) == ["ctl", "node-a", "node-b"]
    assert hosts(data, "app_hello") == ["node-a", "node-b"]
    assert hosts(data, "app_blog") == ["node-b"]
    assert hosts(data, "openstack_error") == ["broken"]
    assert hosts(data, "openstack_no_address") == ["noaddr"]
    assert hosts(data, "cloud_" + cloud.replace("-", "_")) == sorted(servers)
    hostvars = data["_meta"]["hostvars"]
    assert hostvars["node-a"]["ansible_host"] == fip.floating_ip_address
    assert hostvars["node-a"]["openstack"]["private_ip"] == fixed["node-a"]
    assert hostvars["ctl"]["ansible_host"] == fixed["ctl"]
    assert "ansible_host" not in hostvars["noaddr"]
    assert hostvars["ctl"]["openstack"]["metadata"] == servers["ctl"]
    assert hostvars["ctl"]["openstack"]["availability_zone"] == "fake"
    assert hostvars["ctl"]["openstack"]["flavor"] == "m1.tiny"
    assert hostvars["broken"]["openstack"]["status"] == "ERROR"

    # private: true - the fixed address even where a floating one exists
    proc, data = inventory(tmp_path, clouds_yaml, clouds=[cloud], private=True)
    assert proc.returncode == 0, proc.stderr
    assert data["_meta"]["hostvars"]["node-a"]["ansible_host"] == fixed["node-a"]

    # a cloud that cannot be read fails the inventory, unless partial results are allowed
    entries = yaml.safe_load(clouds_yaml.read_text())
    entries["clouds"]["wrong"] = json.loads(json.dumps(entries["clouds"][cloud]))
    entries["clouds"]["wrong"]["auth"]["password"] += "-wrong"
    clouds_yaml.write_text(yaml.safe_dump(entries))
    proc, _ = inventory(tmp_path, clouds_yaml, clouds=[cloud, "wrong"])
    assert proc.returncode != 0
    assert "cloud wrong: authentication failed" in proc.stderr
    proc, data = inventory(tmp_path, clouds_yaml, clouds=[cloud, "wrong"], allow_partial=True)
    assert proc.returncode == 0, proc.stderr
    assert "skipped - cloud wrong" in proc.stderr
    assert hosts(data, "role_controller") == ["ctl"]
