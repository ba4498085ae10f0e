"""monoscape.paas os_* modules against the lab cloud, through real ansible-playbook
runs (no mocks): every module in check mode (nothing is created), twice for real
(the second run changes nothing), with bad input (failed, a message that says
what to fix, nothing created), and back to absent.

Identity modules run as the lab admin; the tenant's resources run as the member
user of a fresh project (a clouds.yaml entry given as a `cloud:` dictionary).
Servers use the lab's `fake` availability zone (no host behind them), except one
that proves `nova` (podman) works too."""

import hashlib
import secrets
import socket
import stat
import subprocess

import openstack
import pytest
from os_play import Play, failed, ok

pytestmark = pytest.mark.lab


@pytest.fixture
def play(tmp_path, lab_clouds_yaml):
    return Play(tmp_path, lab_clouds_yaml)


# ---------------------------------------------------------------------- identity


def test_identity_modules(play, lab_admin, lab_admin_cloud):
    prefix = f"osm-{secrets.token_hex(3)}"
    project, user = f"{prefix}-tenant", f"{prefix}-user"
    password = secrets.token_urlsafe(12)
    identity = lab_admin.identity
    try:
        # check mode creates nothing
        results, _ = play(
            lab_admin_cloud,
            [
                ("project", {"monoscape.paas.os_project": {"name": project, "description": "tenant"}}),
                ("user", {"monoscape.paas.os_user": {"name": user, "password": password}}),
            ],
            check_mode=True,
        )
        ok(results["project"], changed=True)
        ok(results["user"], changed=True)
        assert identity.find_project(project) is None
        assert identity.find_user(user) is None

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
        first, proc1 = play(lab_admin_cloud, tenant)
        second, proc2 = play(lab_admin_cloud, tenant)
        for name, _ in tenant:
            ok(first[name], changed=True)
            ok(second[name], changed=False)
        # the EC2 pair is reused, and its secret never printed even at -v
        secret = first["ec2"]["credential"]["secret"]
        assert secret
        assert second["ec2"]["credential"] == first["ec2"]["credential"]
        assert secret not in proc1.stdout + proc1.stderr + proc2.stdout + proc2.stderr
        assert password not in proc1.stdout + proc2.stdout
        user_id = identity.find_user(user).id
        project_id = identity.find_project(project).id
        ec2 = [c for c in identity.credentials(user_id=user_id, type="ec2") if c.project_id == project_id]
        assert len(ec2) == 1
        assigned = list(identity.role_assignments(user_id=user_id, scope_project_id=project_id))
        assert len(assigned) == 1
        # the user's password works (it was set on create, verified on update)
        auth_url = lab_admin.config.config["auth"]["auth_url"]
        as_user = openstack.connect(
            auth_url=auth_url,
            username=user,
            password=password,
            project_name=project,
            user_domain_name="Default",
            project_domain_name="Default",
        )
        assert as_user.current_user_id == user_id
        as_user.close()

        # in check mode, role and EC2 changes are reported, not made
        results, _ = play(
            lab_admin_cloud,
            [
                ("role", {"monoscape.paas.os_role_assignment": {"user": user, "project": project, "role": "reader"}}),
                ("ec2", {"monoscape.paas.os_ec2_credentials": {"user": user, "project": project, "state": "absent"}}),
            ],
            check_mode=True,
        )
        ok(results["role"], changed=True)
        ok(results["ec2"], changed=True)
        assert len(list(identity.role_assignments(user_id=user_id, scope_project_id=project_id))) == 1
        assert len(list(identity.credentials(user_id=user_id, type="ec2"))) == 1

        # bad input: clear messages, nothing created
        bad, _ = play(
            lab_admin_cloud,
            [
                ("long", {"monoscape.paas.os_project": {"name": "x" * 65}}),
                ("spaces", {"monoscape.paas.os_user": {"name": f" {prefix}-u2"}}),
                (
                    "noproject",
                    {"monoscape.paas.os_user": {"name": f"{prefix}-u3", "default_project": f"{prefix}-nope"}},
                ),
                ("norole", {"monoscape.paas.os_role_assignment": {"user": user, "project": project, "role": "membr"}}),
                (
                    "noaccess",
                    {"monoscape.paas.os_ec2_credentials": {"user": user, "project": project, "access": "nope"}},
                ),
            ],
        )
        failed(bad["long"], "at most 64", "nothing was changed")
        failed(bad["spaces"], "leading or trailing whitespace")
        failed(bad["noproject"], f"unknown project '{prefix}-nope'")
        failed(bad["norole"], "unknown role 'membr'", "member")
        failed(bad["noaccess"], "no EC2 credential with access key 'nope'")
        assert identity.find_user(f"{prefix}-u3") is None
        assert not [p for p in identity.projects() if p.name.startswith("x" * 64)]

        # bad credentials: the cloud says no, the message says why and names the user
        wrong = {
            "auth": {
                "auth_url": "http://127.0.0.1:5000/v3",
                "username": "admin",
                "password": "wrong-" + password,
                "project_name": "admin",
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": "RegionOne",
        }
        results, proc = play(wrong, [("project", {"monoscape.paas.os_project": {"name": f"{prefix}-other"}})])
        failed(results["project"], "authentication failed", "username=admin")
        assert "wrong-" + password not in proc.stdout
        assert identity.find_project(f"{prefix}-other") is None

        # back to absent, twice
        teardown = [
            ("ec2", {"monoscape.paas.os_ec2_credentials": {"user": user, "project": project, "state": "absent"}}),
            (
                "role",
                {
                    "monoscape.paas.os_role_assignment": {
                        "user": user,
                        "project": project,
                        "role": "member",
                        "state": "absent",
                    }
                },
            ),
            ("user", {"monoscape.paas.os_user": {"name": user, "state": "absent"}}),
            ("project", {"monoscape.paas.os_project": {"name": project, "state": "absent"}}),
        ]
        first, _ = play(lab_admin_cloud, teardown)
        second, _ = play(lab_admin_cloud, teardown)
        for name, _ in teardown:
            ok(first[name], changed=True)
            ok(second[name], changed=False)
        assert identity.find_project(project) is None
        assert identity.find_user(user) is None
    finally:
        for found in [identity.find_user(user)]:
            if found:
                identity.delete_user(found)
        for found in [identity.find_project(project)]:
            if found:
                identity.delete_project(found)


# ---------------------------------------------------------------------- the tenant's resources


def test_keypair_security_group_image(play, lab_project, tmp_path):
    cloud, conn = lab_project.cloud, lab_project.conn
    key_path = tmp_path / "deploy.key"
    image_file = tmp_path / "disk.raw"
    image_file.write_bytes(secrets.token_bytes(64 * 1024))
    rules = [
        {"port": "80", "remote_ip_prefix": "0.0.0.0/0"},
        {"port": "22", "remote_ip_prefix": "198.51.100.7"},
        {"port": "9000-9100", "remote_group": "self"},
        {"protocol": "icmp", "port_range_min": 8, "remote_group": "self"},
    ]
    tasks = [
        ("keypair", {"monoscape.paas.os_keypair": {"name": "deploy", "private_key_path": str(key_path)}}),
        ("generated", {"monoscape.paas.os_keypair": {"name": "generated"}}),
        ("group", {"monoscape.paas.os_security_group": {"name": "monoscape-lb", "description": "lb", "rules": rules}}),
        (
            "image",
            {
                "monoscape.paas.os_image": {
                    "name": "tenant-image",
                    "filename": str(image_file),
                    "disk_format": "raw",
                    "properties": {"os_distro": "debian"},
                }
            },
        ),
    ]
    check, _ = play(cloud, tasks, check_mode=True)
    for name, _ in tasks:
        ok(check[name], changed=True)
    assert not key_path.exists()
    assert list(conn.compute.keypairs()) == []
    assert conn.network.find_security_group("monoscape-lb", project_id=lab_project.project_id) is None
    assert conn.image.find_image("tenant-image") is None

    first, proc1 = play(cloud, tasks)
    second, _ = play(cloud, tasks)
    for name, _ in tasks:
        ok(first[name], changed=True)
        ok(second[name], changed=False)
    # key pair: private half only on the control node (0600), never printed
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    public = subprocess.run(["ssh-keygen", "-y", "-f", str(key_path)], capture_output=True, text=True, check=True)
    assert conn.compute.find_keypair("deploy").public_key.split()[:2] == public.stdout.split()[:2]
    private = first["generated"]["private_key"]
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert private.splitlines()[1] not in proc1.stdout + proc1.stderr
    # security group: exactly these rules (plus the default egress)
    group = conn.network.find_security_group("monoscape-lb", project_id=lab_project.project_id)
    described = second["group"]["security_group"]["rules"]
    assert "ingress IPv4 tcp 22 from 198.51.100.7/32" in described
    assert len(list(conn.network.security_group_rules(security_group_id=group.id))) == len(rules) + 2
    # image: uploaded once, Glance's checksum is the file's
    image = conn.image.find_image("tenant-image")
    assert image.checksum == hashlib.md5(image_file.read_bytes(), usedforsecurity=False).hexdigest()
    assert first["image"]["uploaded"] and not second["image"]["uploaded"]

    # changes: a rule less and one more; new image content; another key without replace
    image_file.write_bytes(secrets.token_bytes(32 * 1024))
    other_key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    changes, _ = play(
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
        ],
    )
    ok(changes["group"], changed=True)
    assert changes["group"]["rules_added"] == ["ingress IPv4 tcp 443 from 0.0.0.0/0"]
    assert len(changes["group"]["rules_removed"]) == 1
    ok(changes["image"], changed=True)
    assert changes["image"]["deleted"] == [image.id]
    assert [i.id for i in conn.image.images(owner=lab_project.project_id, name="tenant-image")] == [
        changes["image"]["image"]["id"]
    ]
    failed(changes["keypair"], "exists with another public key", "replace: true")

    # bad input: nothing created
    bad, _ = play(
        cloud,
        [
            ("keyname", {"monoscape.paas.os_keypair": {"name": "bad/name"}}),
            ("port", {"monoscape.paas.os_security_group": {"name": "bad-group", "rules": [{"port": "70000"}]}}),
            (
                "remote",
                {"monoscape.paas.os_security_group": {"name": "bad-group", "rules": [{"remote_group": "nope"}]}},
            ),
            ("file", {"monoscape.paas.os_image": {"name": "bad-image", "filename": str(tmp_path / "missing")}}),
        ],
    )
    failed(bad["keyname"], "is not valid")
    failed(bad["port"], "65535", "nothing was changed")
    failed(bad["remote"], "unknown security group 'nope'")
    failed(bad["file"], "does not exist")
    assert conn.network.find_security_group("bad-group", project_id=lab_project.project_id) is None
    assert conn.image.find_image("bad-image") is None
    assert conn.compute.find_keypair("bad/name") is None

    teardown = [
        ("keypair", {"monoscape.paas.os_keypair": {"name": "deploy", "state": "absent"}}),
        ("group", {"monoscape.paas.os_security_group": {"name": "monoscape-lb", "state": "absent"}}),
        ("image", {"monoscape.paas.os_image": {"name": "tenant-image", "state": "absent"}}),
    ]
    first, _ = play(cloud, teardown)
    second, _ = play(cloud, teardown)
    for name, _ in teardown:
        ok(first[name], changed=True)
        ok(second[name], changed=False)


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
    tasks = [
        ("server", {"monoscape.paas.os_server": server}),
        (
            "snapshot",
            {"monoscape.paas.os_server_snapshot": {"server": "node-1", "name": "golden", "properties": {"v": "1"}}},
        ),
    ]
    check, _ = play(cloud, tasks[:1], check_mode=True)
    ok(check["server"], changed=True)
    assert list(conn.compute.servers()) == []

    first, _ = play(cloud, tasks)
    # check mode of the snapshot, now that the server exists
    check, _ = play(
        cloud,
        [("snapshot", {"monoscape.paas.os_server_snapshot": {"server": "node-1", "name": "golden-2"}})],
        check_mode=True,
    )
    second, _ = play(cloud, tasks)
    for name, _ in tasks:
        ok(first[name], changed=True)
        ok(second[name], changed=False)
    ok(check["snapshot"], changed=True)
    assert conn.image.find_image("golden-2") is None
    created = first["server"]["server"]
    assert created["status"] == "ACTIVE"
    assert created["availability_zone"] == "fake"
    assert created["access_ip"]
    nova = conn.compute.get_server(created["id"])
    assert nova.metadata == {"monoscape_role": "node", "monoscape_tenant": lab_project.name}
    image = conn.image.find_image("golden")
    assert image.status == "active"
    assert first["snapshot"]["image"]["v"] == "1"
    assert first["snapshot"]["image"]["instance_uuid"] == created["id"]

    # in place: metadata, power state; drift: fail (default), ignore, recreate
    steps, _ = play(
        cloud,
        [
            ("metadata", {"monoscape.paas.os_server": {**server, "metadata": {"purpose": "web"}}}),
            ("stopped", {"monoscape.paas.os_server": {**server, "state": "stopped"}}),
            ("started", {"monoscape.paas.os_server": server}),
            ("drift_fail", {"monoscape.paas.os_server": {**server, "flavor": "m1.small"}}),
            ("drift_ignore", {"monoscape.paas.os_server": {**server, "flavor": "m1.small", "drift": "ignore"}}),
        ],
    )
    ok(steps["metadata"], changed=True)
    ok(steps["stopped"], changed=True)
    assert steps["stopped"]["server"]["status"] == "SHUTOFF"
    ok(steps["started"], changed=True)
    failed(steps["drift_fail"], "flavor: m1.tiny -> wanted m1.small", "Nothing was changed", "drift: recreate")
    ok(steps["drift_ignore"], changed=False)
    assert steps["drift_ignore"]["drift"] == [{"attribute": "flavor", "current": "m1.tiny", "wanted": "m1.small"}]
    assert conn.compute.get_server(created["id"]).flavor.original_name == "m1.tiny"
    recreate, _ = play(
        cloud, [("server", {"monoscape.paas.os_server": {**server, "flavor": "m1.small", "drift": "recreate"}})]
    )
    ok(recreate["server"], changed=True)
    assert recreate["server"]["recreated"]
    assert recreate["server"]["server"]["id"] != created["id"]
    assert recreate["server"]["server"]["flavor"] == "m1.small"
    assert [s.id for s in conn.compute.servers()] == [recreate["server"]["server"]["id"]]

    # bad input: clear messages, nothing created
    bad_names = ["bad-image", "bad-flavor", "bad-net", "bad-az", "bad-tenant"]
    bad, _ = play(
        cloud,
        [
            ("image", {"monoscape.paas.os_server": {**server, "name": "bad-image", "image": "no-such-image"}}),
            ("flavor", {"monoscape.paas.os_server": {**server, "name": "bad-flavor", "flavor": "m1.huge"}}),
            ("network", {"monoscape.paas.os_server": {**server, "name": "bad-net", "networks": ["no-such-net"]}}),
            ("zone", {"monoscape.paas.os_server": {**server, "name": "bad-az", "availability_zone": "mars"}}),
            ("tenant", {"monoscape.paas.os_server": {**server, "name": "bad-tenant", "monoscape_tenant": "Big Corp"}}),
            ("name", {"monoscape.paas.os_server": {**server, "name": "tab\there"}}),
            ("snapshot", {"monoscape.paas.os_server_snapshot": {"server": "no-such-server", "name": "bad-snap"}}),
        ],
    )
    failed(bad["image"], "unknown image 'no-such-image'", "debian-12")
    failed(bad["flavor"], "unknown flavor 'm1.huge'", "m1.tiny")
    failed(bad["network"], "unknown network 'no-such-net'", "private")
    failed(bad["zone"], "unknown availability zone 'mars'", "fake", "nova")
    failed(bad["tenant"], "monoscape_tenant")
    failed(bad["name"], "control character")
    failed(bad["snapshot"], "unknown server 'no-such-server'")
    names = {s.name for s in lab_admin.compute.servers(all_projects=True, project_id=lab_project.project_id)}
    assert not names & set(bad_names)
    assert conn.image.find_image("bad-snap") is None

    teardown = [
        ("snapshot", {"monoscape.paas.os_server_snapshot": {"name": "golden", "state": "absent"}}),
        ("server", {"monoscape.paas.os_server": {"name": "node-1", "state": "absent"}}),
    ]
    first, _ = play(cloud, teardown)
    second, _ = play(cloud, teardown)
    for name, _ in teardown:
        ok(first[name], changed=True)
        ok(second[name], changed=False)
    assert list(conn.compute.servers()) == []
    assert conn.image.find_image("golden") is None


def test_server_on_a_podman_host(play, lab_project):
    """AZ nova runs servers as real (podman) hosts: booted, sshd answers at the fixed IP, deleted."""
    server = {
        "name": "real-1",
        "image": "debian-12",
        "flavor": "m1.tiny",
        "networks": ["private"],
        "availability_zone": "nova",
        "monoscape_role": "builder",
    }
    first, _ = play(
        lab_project.cloud, [("a", {"monoscape.paas.os_server": server}), ("b", {"monoscape.paas.os_server": server})]
    )
    ok(first["a"], changed=True)
    ok(first["b"], changed=False)
    created = first["a"]["server"]
    assert created["status"] == "ACTIVE"
    assert created["availability_zone"] == "nova"
    with socket.create_connection((created["access_ip"], 22), timeout=10) as ssh:
        assert ssh.recv(64).startswith(b"SSH-")
    gone, _ = play(lab_project.cloud, [("server", {"monoscape.paas.os_server": {"name": "real-1", "state": "absent"}})])
    ok(gone["server"], changed=True)
    assert list(lab_project.conn.compute.servers()) == []
