"""monoscape.paas os_* modules against the lab cloud, through real ansible-playbook
runs (no mocks): every module in check mode (nothing is created), twice for real
(the second run changes nothing), with bad input (failed, a message that says
what to fix, nothing created), and back to absent (twice).

Identity modules run as the lab admin; the tenant's resources run as the member
user of a fresh project (its clouds.yaml entry given as a `cloud:` dictionary).
Servers use the lab's `fake` availability zone (no host behind them), except one
that proves `nova` (podman hosts) works too. Few playbook runs on purpose: each
costs seconds of Ansible start-up."""

import hashlib
import json
import secrets
import stat
import subprocess

import openstack
import pytest
from os_play import Play, assert_idempotent, failed, ok, twice

pytestmark = pytest.mark.lab

CHECK = {"check_mode": True}


@pytest.fixture
def play(tmp_path, lab_clouds_yaml):
    return Play(tmp_path, lab_clouds_yaml)


# ---------------------------------------------------------------------- identity


def test_identity_modules(play, lab_admin, lab_admin_cloud, tmp_path):
    prefix = f"osm-{secrets.token_hex(3)}"
    project, user = f"{prefix}-tenant", f"{prefix}-user"
    password = secrets.token_urlsafe(12)
    identity = lab_admin.identity
    tenant = [
        ("project", {"monoscape.paas.os_project": {"name": project, "description": "tenant"}}),
        (
            "user",
            {
                "monoscape.paas.os_user": {
                    "name": user,
                    "password": password,
                    "update_password": "always",
                    "default_project": project,
                }
            },
        ),
        ("role", {"monoscape.paas.os_role_assignment": {"user": user, "project": project, "role": "member"}}),
        ("ec2", {"monoscape.paas.os_ec2_credentials": {"user": user, "project": project}}),
    ]
    try:
        # check mode creates nothing (the user without the project that check mode did not create)
        check = [tenant[0], ("user", {"monoscape.paas.os_user": {"name": user, "password": password}})]
        results, _ = play(lab_admin_cloud, check, check_mode=True)
        ok(results["project"], changed=True)
        ok(results["user"], changed=True)
        assert identity.find_project(project) is None
        assert identity.find_user(user) is None

        # twice: the second run changes nothing; the EC2 pair is reused; no secret is printed at -v
        results, proc = play(lab_admin_cloud, twice(tenant))
        assert_idempotent(results, tenant)
        credential = results["ec2_1"]["credential"]
        assert credential["secret"]
        assert results["ec2_2"]["credential"] == credential
        assert credential["secret"] not in proc.stdout + proc.stderr
        assert password not in proc.stdout + proc.stderr

        # the pair works: Keystone's /v3/ec2tokens issues a token for a request signed with it;
        # a wrong secret is refused; the secret is in no output
        pair = tmp_path / "ec2.json"
        pair.write_text(json.dumps(credential))
        wrong_pair = tmp_path / "ec2-wrong.json"
        wrong_pair.write_text(json.dumps(dict(credential, secret="x" + credential["secret"])))
        checks = [
            ("good", {"monoscape.paas.os_cloud_info": {"ec2_credentials_file": str(pair)}}),
            ("wrong", {"monoscape.paas.os_cloud_info": {"ec2_credentials_file": str(wrong_pair)}}),
            ("missing", {"monoscape.paas.os_cloud_info": {"ec2_credentials_file": str(tmp_path / "none.json")}}),
        ]
        results, proc = play(lab_admin_cloud, checks)
        assert results["good"]["ec2_verified"] is True and results["good"]["ec2_error"] is None, results["good"]
        assert results["wrong"]["ec2_verified"] is False and "HTTP 401" in results["wrong"]["ec2_error"]
        assert results["missing"]["ec2_verified"] is False and "no EC2 credentials" in results["missing"]["ec2_error"]
        assert credential["secret"] not in proc.stdout + proc.stderr
        user_id, project_id = identity.find_user(user).id, identity.find_project(project).id
        assert len([c for c in identity.credentials(user_id=user_id, type="ec2") if c.project_id == project_id]) == 1
        assert len(list(identity.role_assignments(user_id=user_id, scope_project_id=project_id))) == 1
        as_user = openstack.connect(
            auth_url=lab_admin.config.config["auth"]["auth_url"],
            username=user,
            password=password,
            project_name=project,
            user_domain_name="Default",
            project_domain_name="Default",
        )
        assert as_user.current_user_id == user_id
        as_user.close()

        # check mode of changes; bad input and bad credentials: clear messages, nothing created
        wrong = {
            "auth": {**lab_admin.config.config["auth"], "password": "wrong-" + password},
            "region_name": "RegionOne",
        }
        role_reader = {"user": user, "project": project, "role": "reader"}
        results, proc = play(
            lab_admin_cloud,
            [
                ("role", {"monoscape.paas.os_role_assignment": role_reader, **CHECK}),
                (
                    "ec2",
                    {
                        "monoscape.paas.os_ec2_credentials": {"user": user, "project": project, "state": "absent"},
                        **CHECK,
                    },
                ),
                ("long", {"monoscape.paas.os_project": {"name": "x" * 65}}),
                ("spaces", {"monoscape.paas.os_user": {"name": f" {prefix}-u2"}}),
                ("noproject", {"monoscape.paas.os_user": {"name": f"{prefix}-u3", "default_project": f"{prefix}-no"}}),
                ("norole", {"monoscape.paas.os_role_assignment": {**role_reader, "role": "membr"}}),
                ("noaccess", {"monoscape.paas.os_ec2_credentials": {"user": user, "project": project, "access": "no"}}),
                ("badauth", {"monoscape.paas.os_project": {"name": f"{prefix}-other", "cloud": wrong}}),
            ],
        )
        ok(results["role"], changed=True)
        ok(results["ec2"], changed=True)
        assert len(list(identity.role_assignments(user_id=user_id, scope_project_id=project_id))) == 1
        assert len(list(identity.credentials(user_id=user_id, type="ec2"))) == 1
        failed(results["long"], "at most 64", "nothing was changed")
        failed(results["spaces"], "leading or trailing whitespace")
        failed(results["noproject"], f"unknown project '{prefix}-no'")
        failed(results["norole"], "unknown role 'membr'", "member")
        failed(results["noaccess"], "no EC2 credential with access key 'no'")
        failed(results["badauth"], "authentication failed", "username=admin")
        assert "wrong-" + password not in proc.stdout + proc.stderr
        assert identity.find_user(f"{prefix}-u3") is None
        assert identity.find_project(f"{prefix}-other") is None
        assert not [p for p in identity.projects() if p.name.startswith("x" * 64)]

        # back to absent, twice
        teardown = [
            ("ec2", {"monoscape.paas.os_ec2_credentials": {"user": user, "project": project, "state": "absent"}}),
            ("role", {"monoscape.paas.os_role_assignment": {**role_reader, "role": "member", "state": "absent"}}),
            ("user", {"monoscape.paas.os_user": {"name": user, "state": "absent"}}),
            ("project", {"monoscape.paas.os_project": {"name": project, "state": "absent"}}),
        ]
        results, _ = play(lab_admin_cloud, twice(teardown))
        assert_idempotent(results, teardown)
        assert identity.find_project(project) is None
        assert identity.find_user(user) is None
    finally:
        found = identity.find_user(user)
        if found:
            identity.delete_user(found)
        found = identity.find_project(project)
        if found:
            identity.delete_project(found)


# ---------------------------------------------------------------------- the tenant's resources


def test_keypair_security_group_image(play, lab_project, tmp_path):
    cloud, conn, project_id = lab_project.cloud, lab_project.conn, lab_project.project_id
    key_path = tmp_path / "deploy.key"
    image_file = tmp_path / "disk.raw"
    image_file.write_bytes(secrets.token_bytes(64 * 1024))
    rules = [
        {"port": "80", "remote_ip_prefix": "0.0.0.0/0"},
        {"port": "22", "remote_ip_prefix": "198.51.100.7"},
        {"port": "9000-9100", "remote_group": "self"},
        {"protocol": "icmp", "port_range_min": 8, "remote_group": "self"},
    ]
    image = {
        "name": "tenant-image",
        "filename": str(image_file),
        "disk_format": "raw",
        "properties": {"os_distro": "debian"},
    }
    tasks = [
        ("keypair", {"monoscape.paas.os_keypair": {"name": "deploy", "private_key_path": str(key_path)}}),
        ("generated", {"monoscape.paas.os_keypair": {"name": "generated"}}),
        ("group", {"monoscape.paas.os_security_group": {"name": "monoscape-lb", "description": "lb", "rules": rules}}),
        ("image", {"monoscape.paas.os_image": image}),
    ]
    results, _ = play(cloud, tasks, check_mode=True)
    for name, _ in tasks:
        ok(results[name], changed=True)
    assert not key_path.exists()
    assert list(conn.compute.keypairs()) == []
    assert conn.network.find_security_group("monoscape-lb", project_id=project_id) is None
    assert conn.image.find_image("tenant-image") is None

    results, proc = play(cloud, twice(tasks))
    assert_idempotent(results, tasks)
    # key pairs: the private half only on the control node (0600) or in a hidden result
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    public = subprocess.run(["ssh-keygen", "-y", "-f", str(key_path)], capture_output=True, text=True, check=True)
    assert conn.compute.find_keypair("deploy").public_key.split()[:2] == public.stdout.split()[:2]
    private = results["generated_1"]["private_key"]
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert private.splitlines()[1] not in proc.stdout + proc.stderr
    # security group: exactly these rules (plus the default egress)
    group = conn.network.find_security_group("monoscape-lb", project_id=project_id)
    assert "ingress IPv4 tcp 22 from 198.51.100.7/32" in results["group_2"]["security_group"]["rules"]
    assert len(list(conn.network.security_group_rules(security_group_id=group.id))) == len(rules) + 2
    # image: uploaded once; Glance's checksum is the file's
    uploaded = conn.image.find_image("tenant-image")
    assert uploaded.checksum == hashlib.md5(image_file.read_bytes(), usedforsecurity=False).hexdigest()
    assert results["image_1"]["uploaded"]
    assert not results["image_2"]["uploaded"]

    # changes, and bad input (nothing created)
    image_file.write_bytes(secrets.token_bytes(32 * 1024))
    other_key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    results, _ = play(
        cloud,
        [
            (
                "group",
                {"monoscape.paas.os_security_group": {"name": "monoscape-lb", "rules": [*rules[:3], {"port": "443"}]}},
            ),
            (
                "image",
                {
                    "monoscape.paas.os_image": {
                        "name": "tenant-image",
                        "filename": str(image_file),
                        "disk_format": "raw",
                    }
                },
            ),
            ("keypair", {"monoscape.paas.os_keypair": {"name": "deploy", "public_key_file": f"{other_key}.pub"}}),
            ("keyname", {"monoscape.paas.os_keypair": {"name": "bad/name"}}),
            ("port", {"monoscape.paas.os_security_group": {"name": "bad-group", "rules": [{"port": "70000"}]}}),
            (
                "remote",
                {"monoscape.paas.os_security_group": {"name": "bad-group", "rules": [{"remote_group": "nope"}]}},
            ),
            ("file", {"monoscape.paas.os_image": {"name": "bad-image", "filename": str(tmp_path / "missing")}}),
        ],
    )
    ok(results["group"], changed=True)
    assert results["group"]["rules_added"] == ["ingress IPv4 tcp 443 from 0.0.0.0/0"]
    assert len(results["group"]["rules_removed"]) == 1
    ok(results["image"], changed=True)
    assert results["image"]["deleted"] == [uploaded.id]
    names = [i.id for i in conn.image.images(owner=project_id, name="tenant-image")]
    assert names == [results["image"]["image"]["id"]]
    failed(results["keypair"], "exists with another public key", "replace: true")
    failed(results["keyname"], "is not valid")
    failed(results["port"], "65535", "nothing was changed")
    failed(results["remote"], "unknown security group 'nope'")
    failed(results["file"], "does not exist")
    assert conn.network.find_security_group("bad-group", project_id=project_id) is None
    assert conn.image.find_image("bad-image") is None
    assert {k.name for k in conn.compute.keypairs()} == {"deploy", "generated"}

    teardown = [
        ("keypair", {"monoscape.paas.os_keypair": {"name": "deploy", "state": "absent"}}),
        ("group", {"monoscape.paas.os_security_group": {"name": "monoscape-lb", "state": "absent"}}),
        ("image", {"monoscape.paas.os_image": {"name": "tenant-image", "state": "absent"}}),
    ]
    results, _ = play(cloud, twice(teardown))
    assert_idempotent(results, teardown)
    assert conn.image.find_image("tenant-image") is None


def test_server_and_snapshot(play, lab_project, lab_admin):
    cloud, conn = lab_project.cloud, lab_project.conn
    server = {
        "name": "node-1",
        "image": "debian-12",
        "flavor": "m1.tiny",
        "networks": ["private"],
        "availability_zone": "fake",
        "monoscape_role": "node",
        "monoscape_tenant": lab_project.name,
        "state": "started",
    }
    snapshot = {"server": "node-1", "name": "golden", "properties": {"v": "1"}}
    tasks = [
        ("server", {"monoscape.paas.os_server": server}),
        ("snapshot", {"monoscape.paas.os_server_snapshot": snapshot}),
    ]
    results, _ = play(cloud, tasks[:1], check_mode=True)
    ok(results["server"], changed=True)
    assert list(conn.compute.servers()) == []

    # twice; the snapshot's check mode runs once the server exists
    results, _ = play(
        cloud,
        [
            *twice(tasks),
            ("snapcheck", {"monoscape.paas.os_server_snapshot": {**snapshot, "name": "golden-2"}, **CHECK}),
        ],
    )
    assert_idempotent(results, tasks)
    ok(results["snapcheck"], changed=True)
    assert conn.image.find_image("golden-2") is None
    created = results["server_1"]["server"]
    assert created["status"] == "ACTIVE"
    assert created["availability_zone"] == "fake"
    assert created["access_ip"]
    assert conn.compute.get_server(created["id"]).metadata == {
        "monoscape_role": "node",
        "monoscape_tenant": lab_project.name,
    }
    assert conn.image.find_image("golden").status == "active"
    assert results["snapshot_1"]["image"]["v"] == "1"
    assert results["snapshot_1"]["image"]["instance_uuid"] == created["id"]

    # in place (metadata, power), drift (fail by default, ignore, recreate), bad input
    results, _ = play(
        cloud,
        [
            ("metadata", {"monoscape.paas.os_server": {**server, "metadata": {"purpose": "web"}}}),
            ("stopped", {"monoscape.paas.os_server": {**server, "state": "stopped"}}),
            ("started", {"monoscape.paas.os_server": server}),
            ("drift_fail", {"monoscape.paas.os_server": {**server, "flavor": "m1.small"}}),
            ("drift_ignore", {"monoscape.paas.os_server": {**server, "flavor": "m1.small", "drift": "ignore"}}),
            ("recreate", {"monoscape.paas.os_server": {**server, "flavor": "m1.small", "drift": "recreate"}}),
            ("image", {"monoscape.paas.os_server": {**server, "name": "bad-image", "image": "no-such-image"}}),
            ("flavor", {"monoscape.paas.os_server": {**server, "name": "bad-flavor", "flavor": "m1.huge"}}),
            ("network", {"monoscape.paas.os_server": {**server, "name": "bad-net", "networks": ["no-such-net"]}}),
            ("zone", {"monoscape.paas.os_server": {**server, "name": "bad-az", "availability_zone": "mars"}}),
            ("tenant", {"monoscape.paas.os_server": {**server, "name": "bad-tenant", "monoscape_tenant": "Big Corp"}}),
            ("name", {"monoscape.paas.os_server": {**server, "name": "tab\there"}}),
            ("snapfail", {"monoscape.paas.os_server_snapshot": {"server": "no-such-server", "name": "bad-snap"}}),
        ],
    )
    ok(results["metadata"], changed=True)
    ok(results["stopped"], changed=True)
    assert results["stopped"]["server"]["status"] == "SHUTOFF"
    ok(results["started"], changed=True)
    failed(results["drift_fail"], "flavor: m1.tiny -> wanted m1.small", "Nothing was changed", "drift: recreate")
    ok(results["drift_ignore"], changed=False)
    assert results["drift_ignore"]["drift"] == [{"attribute": "flavor", "current": "m1.tiny", "wanted": "m1.small"}]
    ok(results["recreate"], changed=True)
    assert results["recreate"]["recreated"]
    recreated = results["recreate"]["server"]
    assert recreated["id"] != created["id"]
    assert recreated["flavor"] == "m1.small"
    assert [s.id for s in conn.compute.servers()] == [recreated["id"]]
    failed(results["image"], "unknown image 'no-such-image'", "debian-12")
    failed(results["flavor"], "unknown flavor 'm1.huge'", "m1.tiny")
    failed(results["network"], "unknown network 'no-such-net'", "private")
    failed(results["zone"], "unknown availability zone 'mars'", "fake", "nova")
    failed(results["tenant"], "monoscape_tenant")
    failed(results["name"], "control character")
    failed(results["snapfail"], "unknown server 'no-such-server'")
    assert conn.image.find_image("bad-snap") is None

    teardown = [
        ("snapshot", {"monoscape.paas.os_server_snapshot": {"name": "golden", "state": "absent"}}),
        ("server", {"monoscape.paas.os_server": {"name": "node-1", "state": "absent"}}),
    ]
    results, _ = play(cloud, twice(teardown))
    assert_idempotent(results, teardown)
    assert list(lab_admin.compute.servers(all_projects=True, project_id=lab_project.project_id)) == []
    assert conn.image.find_image("golden") is None


def test_server_on_a_podman_host(play, lab_project, lab_external):
    """AZ nova runs servers as real (podman) hosts: booted on a routed network, given a
    floating IP, sshd answers there from this machine (outside the cloud), deleted."""
    network, ssh_group = lab_project.operator_network(lab_external)
    server = {
        "name": "real-1",
        "image": "debian-12",
        "flavor": "m1.tiny",
        "networks": [network.name],
        "security_groups": [ssh_group.name],
        "availability_zone": "nova",
        "monoscape_role": "builder",
    }
    fip = {"server": "real-1", "network": "public"}
    results, _ = play(
        lab_project.cloud,
        [
            *twice([("server", {"monoscape.paas.os_server": server})]),
            ("fip", {"monoscape.paas.os_floating_ip": fip}),
            (
                "sshd",
                {
                    "ansible.builtin.wait_for": {
                        "host": "{{ fip.floating_ip.floating_ip_address }}",
                        "port": 22,
                        "search_regex": "SSH-",
                        "timeout": 30,
                    }
                },
            ),
            ("released", {"monoscape.paas.os_floating_ip": {**fip, "state": "absent"}}),
            ("gone", {"monoscape.paas.os_server": {"name": "real-1", "state": "absent"}}),
        ],
    )
    assert_idempotent(results, [("server", None)])
    assert results["server_1"]["server"]["status"] == "ACTIVE"
    assert results["server_1"]["server"]["availability_zone"] == "nova"
    ok(results["fip"], changed=True)
    ok(results["sshd"])
    ok(results["released"], changed=True)
    ok(results["gone"], changed=True)
    assert list(lab_project.conn.compute.servers()) == []
    assert list(lab_project.conn.network.ips(project_id=lab_project.project_id)) == []
