"""os_* modules against an in-memory cloud (tests/unit/os_fake_cloud.py): each
module creates, is idempotent on a second run, changes nothing in check mode,
and fails with a message that says what to fix - before changing anything."""

import os
import stat

import pytest

from ansible_collections.monoscape.paas.plugins.action.os_ec2_credentials import ActionModule as Ec2Action
from ansible_collections.monoscape.paas.plugins.action.os_keypair import ActionModule as KeypairAction
from ansible_collections.monoscape.paas.plugins.modules import (
    os_ec2_credentials,
    os_image,
    os_keypair,
    os_project,
    os_role_assignment,
    os_security_group,
    os_server,
    os_server_snapshot,
    os_user,
)
from ansible_collections.monoscape.paas.plugins.plugin_utils.secret_result import has_secret

from .os_fake_cloud import Res

# test fixtures, not real credentials
PASSWORD, PASSWORD_2 = "s3cret-pw", "other-pw"
SECRET, SECRET_2 = "first-secret", "second-secret"
MASKED = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
ED25519_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDlVxPj0XBlWf1Uu2lkyP7J3q6J0xs3Jg8v1WZ5Zq9nV alice@example"
ED25519_PUB_2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq8ZxY1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9 bob@example"


def assert_idempotent(run, cloud, module, args):
    """First run changes, check mode of the second changes nothing, second run is a no-op."""
    first = run(module, args)
    assert not first["failed"], first["msg"] if first["failed"] else ""
    assert first["changed"]
    cloud.calls.clear()
    check = run(module, args, check_mode=True)
    assert not check["changed"], check
    second = run(module, args)
    assert not second["failed"]
    assert not second["changed"], second
    assert cloud.calls.mutations() == []
    return first, second


def assert_check_mode_changes_nothing(run, cloud, module, args):
    result = run(module, args, check_mode=True)
    assert not result["failed"], result.get("msg")
    assert result["changed"]
    assert cloud.calls.mutations() == [], cloud.calls.mutations()
    return result


def ok(result, changed=None):
    """A module result that did not fail (and, when given, changed or did not): the result."""
    assert not result["failed"], result["msg"]
    if changed is not None:
        assert result["changed"] is changed, result
    return result


def assert_refused(run, cloud, module, args, *fragments):
    result = run(module, args)
    assert result["failed"], result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    assert cloud.calls.mutations() == [], cloud.calls.mutations()
    return result


# ---------------------------------------------------------------------- os_project


def test_project_create_idempotent(run, cloud):
    assert_check_mode_changes_nothing(run, cloud, os_project, {"name": "acme", "description": "tenant"})
    first, _ = assert_idempotent(run, cloud, os_project, {"name": "acme", "description": "tenant"})
    assert first["project"]["name"] == "acme"
    assert first["project"]["id"] in cloud.identity.projects


def test_project_update_shows_a_diff(run, cloud):
    run(os_project, {"name": "acme", "description": "old"})
    result = run(os_project, {"name": "acme", "description": "new", "enabled": False}, diff=True)
    assert result["changed"]
    assert result["diff"]["before"]["description"] == "old"
    assert result["diff"]["after"]["description"] == "new"
    assert result["diff"]["after"]["is_enabled"] is False


@pytest.mark.parametrize(("name", "fragment"), [("a" * 65, "at most 64"), ("acme ", "whitespace"), ("", "empty")])
def test_project_invalid_name_creates_nothing(run, cloud, name, fragment):
    assert_refused(run, cloud, os_project, {"name": name}, fragment, "nothing was changed")


def test_project_absent(run, cloud):
    run(os_project, {"name": "acme"})
    assert run(os_project, {"name": "acme", "state": "absent"}, check_mode=True)["changed"]
    assert any(p.name == "acme" for p in cloud.identity.projects.values())
    assert run(os_project, {"name": "acme", "state": "absent"})["changed"]
    assert not run(os_project, {"name": "acme", "state": "absent"})["changed"]


# ---------------------------------------------------------------------- os_user


def test_user_create_idempotent_without_password_in_result(run, cloud):
    run(os_project, {"name": "acme"})
    args = {"name": "acme-paas", "password": PASSWORD, "default_project": "acme", "email": "ops@acme.example"}
    first, _ = assert_idempotent(run, cloud, os_user, args)
    assert PASSWORD not in repr(first)
    user = cloud.identity.find_user("acme-paas")
    assert user.password == PASSWORD
    assert user.default_project_id == cloud.identity.find_project("acme").id


def test_user_update_password_always_is_verified_by_logging_in(run, cloud, monkeypatch):
    run(os_user, {"name": "u1", "password": PASSWORD})
    monkeypatch.setattr(os_user.UserModule, "password_works", lambda self, uid, pw: pw == PASSWORD)
    unchanged = run(os_user, {"name": "u1", "password": PASSWORD, "update_password": "always"})
    assert not unchanged["changed"]
    assert not unchanged["password_changed"]
    check = run(os_user, {"name": "u1", "password": PASSWORD_2, "update_password": "always"}, check_mode=True)
    assert check["changed"]
    assert check["password_changed"]
    assert cloud.identity.find_user("u1").password == PASSWORD
    changed = run(os_user, {"name": "u1", "password": PASSWORD_2, "update_password": "always"})
    assert changed["changed"]
    assert cloud.identity.find_user("u1").password == PASSWORD_2


def test_user_password_file_is_read_by_the_module_not_passed(run, cloud, tmp_path, monkeypatch):
    """password_file: the module reads the password (trailing newline dropped); the task's
    arguments and results never hold it; update_password=always verifies against it."""
    monkeypatch.setattr(
        os_user.UserModule, "password_works", lambda self, uid, pw: pw == cloud.identity.find_user("u1").password
    )
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    args = {"name": "u1", "password_file": str(secret), "update_password": "always"}
    first, second = assert_idempotent(run, cloud, os_user, args)
    assert cloud.identity.find_user("u1").password == PASSWORD
    assert first["password_changed"] and not second["password_changed"]
    assert PASSWORD not in repr(first) + repr(second)
    secret.write_text(PASSWORD_2)
    changed = run(os_user, args)
    assert changed["changed"] and changed["password_changed"]
    assert cloud.identity.find_user("u1").password == PASSWORD_2
    assert PASSWORD_2 not in repr(changed)


def test_user_password_file_not_written_yet_in_check_mode(run, cloud, tmp_path, monkeypatch):
    """Check mode before the file exists (tenant.yml --check on a new deployment): a new
    user, or a password set on an existing one, is predicted; nothing changes."""
    monkeypatch.setattr(os_user.UserModule, "password_works", lambda self, uid, pw: True)
    args = {"name": "u1", "password_file": str(tmp_path / "password"), "update_password": "always"}
    created = assert_check_mode_changes_nothing(run, cloud, os_user, args)
    assert created["password_changed"]
    run(os_user, {"name": "u1", "password": PASSWORD})
    cloud.calls.clear()
    existing = assert_check_mode_changes_nothing(run, cloud, os_user, args)
    assert existing["password_changed"]


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "does not exist: write the user's password there"), ("", "is empty"), ("\n", "is empty")],
)
def test_user_password_file_missing_or_empty_is_refused(run, cloud, tmp_path, content, says):
    secret = tmp_path / "password"
    if content is not None:
        secret.write_text(content)
    result = assert_refused(
        run, cloud, os_user, {"name": "u1", "password_file": str(secret)}, f"password_file {secret} {says}"
    )
    assert "nothing was changed" in result["msg"]


def test_user_password_and_password_file_are_exclusive(run, cloud, tmp_path):
    assert_refused(
        run,
        cloud,
        os_user,
        {"name": "u1", "password": PASSWORD, "password_file": str(tmp_path / "p")},
        "mutually exclusive",
    )
    assert_refused(run, cloud, os_user, {"name": "u1", "update_password": "always"}, "password, password_file")


def test_user_unknown_default_project(run, cloud):
    assert_refused(run, cloud, os_user, {"name": "u1", "default_project": "nope"}, "unknown project 'nope'")


# ---------------------------------------------------------------------- os_role_assignment


def test_role_assignment_idempotent_and_revocable(run, cloud):
    run(os_project, {"name": "acme"})
    run(os_user, {"name": "u1"})
    cloud.calls.clear()
    args = {"user": "u1", "project": "acme", "role": "member"}
    assert_check_mode_changes_nothing(run, cloud, os_role_assignment, args)
    assert not cloud.identity.assignments
    assert_idempotent(run, cloud, os_role_assignment, args)
    assert len(cloud.identity.assignments) == 1
    revoke = run(os_role_assignment, dict(args, state="absent"))
    assert revoke["changed"]
    assert not cloud.identity.assignments


def test_role_assignment_unknown_role_lists_roles(run, cloud):
    run(os_project, {"name": "acme"})
    run(os_user, {"name": "u1"})
    cloud.calls.clear()
    assert_refused(
        run,
        cloud,
        os_role_assignment,
        {"user": "u1", "project": "acme", "role": "membr"},
        "unknown role 'membr'",
        "member",
    )


def test_role_assignment_refusal_is_not_silent(run, cloud):
    """openstacksdk's assign_project_role_to_user returns False on a refusal; this module fails."""
    run(os_project, {"name": "acme"})
    run(os_user, {"name": "u1"})
    cloud.refuse_role_assignment = True
    result = run(os_role_assignment, {"user": "u1", "project": "acme", "role": "admin"})
    assert result["failed"]
    assert "not allowed" in result["msg"]


def test_role_assignment_needs_user_or_group(run, cloud):
    result = run(os_role_assignment, {"project": "acme", "role": "member"})
    assert result["failed"]
    assert "one of the following is required: user, group" in result["msg"]


# ---------------------------------------------------------------------- os_ec2_credentials


@pytest.fixture
def tenant(run, cloud):
    run(os_project, {"name": "acme"})
    run(os_user, {"name": "u1"})
    run(os_role_assignment, {"user": "u1", "project": "acme", "role": "member"})
    cloud.calls.clear()


def test_ec2_credentials_reuse_the_existing_pair(run, cloud, tenant):
    args = {"user": "u1", "project": "acme"}
    assert_check_mode_changes_nothing(run, cloud, os_ec2_credentials, args)
    first, second = assert_idempotent(run, cloud, os_ec2_credentials, args)
    assert first["credential"]["secret"]
    assert has_secret(first, Ec2Action.SECRET_KEYS), "the action plugin hides this result"
    assert second["credential"] == first["credential"]
    assert len(cloud.identity.ec2) == 1


def test_ec2_credentials_import_a_chosen_pair_and_update_its_secret(run, cloud, tenant):
    args = {"user": "u1", "project": "acme", "access": "a" * 32, "secret": SECRET}
    first = run(os_ec2_credentials, args)
    assert first["changed"]
    assert first["credential"]["secret"] == SECRET
    assert first["invocation"]["module_args"]["secret"] == MASKED
    assert not run(os_ec2_credentials, args)["changed"]
    rotated = run(os_ec2_credentials, {**args, "secret": SECRET_2})
    assert rotated["changed"]
    assert cloud.identity.ec2["a" * 32]["secret"] == SECRET_2


def test_ec2_credentials_unknown_access_key_fails(run, cloud, tenant):
    assert_refused(
        run, cloud, os_ec2_credentials, {"user": "u1", "project": "acme", "access": "nope"}, "no EC2 credential"
    )


def test_ec2_credentials_absent_removes_every_pair(run, cloud, tenant):
    run(os_ec2_credentials, {"user": "u1", "project": "acme"})
    run(os_ec2_credentials, {"user": "u1", "project": "acme", "access": "b" * 32, "secret": "x"})
    check = run(os_ec2_credentials, {"user": "u1", "project": "acme", "state": "absent"}, check_mode=True)
    assert len(check["deleted"]) == 2
    assert len(cloud.identity.ec2) == 2
    gone = run(os_ec2_credentials, {"user": "u1", "project": "acme", "state": "absent"})
    assert gone["changed"]
    assert not cloud.identity.ec2


# ---------------------------------------------------------------------- os_keypair


def test_keypair_generated_once_private_key_returned_hidden(run, cloud):
    first, second = assert_idempotent(run, cloud, os_keypair, {"name": "deploy"})
    assert first["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert has_secret(first, KeypairAction.SECRET_KEYS), "the action plugin hides this result"
    assert "private_key" not in second
    assert not has_secret(second, KeypairAction.SECRET_KEYS)
    assert cloud.compute.keypairs_["deploy"].public_key.startswith("ssh-ed25519 ")


def test_keypair_private_key_file_mode_0600_and_matching(run, cloud, tmp_path):
    path = tmp_path / "deploy.key"
    first, _ = assert_idempotent(run, cloud, os_keypair, {"name": "deploy", "private_key_path": str(path)})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "private_key" not in first
    assert first["private_key_path"] == str(path)
    path.unlink()
    missing = assert_refused(run, cloud, os_keypair, {"name": "deploy", "private_key_path": str(path)}, "cannot give")
    assert "replace: true" in missing["msg"]
    regenerated = run(os_keypair, {"name": "deploy", "private_key_path": str(path), "replace": True})
    assert regenerated["changed"]
    assert path.exists()


def test_keypair_import_and_replace(run, cloud):
    assert_idempotent(run, cloud, os_keypair, {"name": "alice", "public_key": ED25519_PUB})
    # the comment is not part of the key
    same = run(os_keypair, {"name": "alice", "public_key": ED25519_PUB.rsplit(" ", 1)[0] + " other-comment"})
    assert not same["changed"]
    cloud.calls.clear()
    assert_refused(
        run, cloud, os_keypair, {"name": "alice", "public_key": ED25519_PUB_2}, "another public key", "replace: true"
    )
    replaced = run(os_keypair, {"name": "alice", "public_key": ED25519_PUB_2, "replace": True}, diff=True)
    assert replaced["changed"]
    assert replaced["diff"]["before"]["fingerprint"] != replaced["diff"]["after"]["fingerprint"]
    assert cloud.compute.keypairs_["alice"].public_key == ED25519_PUB_2


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"name": "bad/name"}, "not valid"),
        ({"name": "k", "public_key": "ssh-rsa not*base64"}, "not an OpenSSH public key"),
        ({"name": "k", "public_key_file": "/nonexistent/key.pub"}, "cannot read public_key_file"),
    ],
)
def test_keypair_bad_input(run, cloud, args, fragment):
    assert_refused(run, cloud, os_keypair, args, fragment)


# ---------------------------------------------------------------------- os_security_group

LB_RULES = [
    {"port": "80", "remote_ip_prefix": "0.0.0.0/0"},
    {"port": "22", "remote_ip_prefix": "198.51.100.7"},
    {"protocol": "icmp", "port_range_min": 8, "remote_group": "self"},
]


def test_security_group_declarative_rules_idempotent(run, cloud):
    assert_check_mode_changes_nothing(run, cloud, os_security_group, {"name": "lb", "rules": LB_RULES})
    assert not cloud.network.groups_
    first, second = assert_idempotent(run, cloud, os_security_group, {"name": "lb", "rules": LB_RULES})
    assert "ingress IPv4 tcp 22 from 198.51.100.7/32" in first["rules_added"]
    assert "ingress IPv4 tcp 80 from 0.0.0.0/0" in first["rules_added"]
    assert any(r.startswith("ingress IPv4 icmp 8 from group ") for r in first["rules_added"])
    # default egress rules are kept
    assert "egress IPv4 any to 0.0.0.0/0" in second["security_group"]["rules"]


def test_security_group_removes_unlisted_rules_after_adding(run, cloud):
    run(os_security_group, {"name": "lb", "rules": LB_RULES})
    cloud.calls.clear()
    result = run(os_security_group, {"name": "lb", "rules": [*LB_RULES[:1], {"port": "443"}]}, diff=True)
    assert result["rules_added"] == ["ingress IPv4 tcp 443 from 0.0.0.0/0"]
    assert len(result["rules_removed"]) == 2
    mutations = cloud.calls.mutations()
    assert mutations.index("create_security_group_rule") < mutations.index("delete_security_group_rule")
    assert "ingress IPv4 tcp 22 from 198.51.100.7/32" in result["diff"]["before"]["rules"]
    assert "ingress IPv4 tcp 22 from 198.51.100.7/32" not in result["diff"]["after"]["rules"]


def test_security_group_equivalent_spellings_are_not_changes(run, cloud):
    run(os_security_group, {"name": "g", "rules": [{"port": "8000-8100", "protocol": "tcp"}]})
    same = run(
        os_security_group,
        {"name": "g", "rules": [{"port_range_min": 8000, "port_range_max": 8100, "protocol": "6"}]},
    )
    assert not same["changed"], same


def test_security_group_without_default_egress(run, cloud):
    result = run(os_security_group, {"name": "g", "rules": [], "keep_default_egress": False})
    assert sorted(result["rules_removed"]) == ["egress IPv4 any to 0.0.0.0/0", "egress IPv6 any to ::/0"]
    assert result["security_group"]["rules"] == []


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"port": "70000"}, "65535"),
        ({"port": "abc"}, "must be a number"),
        ({"port": "22", "protocol": "any"}, "ports need protocol"),
        ({"port_range_max": 22}, "needs port_range_min"),
        ({"remote_ip_prefix": "10.0.0.0/33"}, "rules[0]"),
        ({"remote_ip_prefix": "::/0", "ethertype": "IPv4"}, "IPv6 but ethertype is IPv4"),
        ({"remote_group": "nope"}, "unknown security group 'nope'"),
    ],
)
def test_security_group_bad_rules_change_nothing(run, cloud, rule, fragment):
    assert_refused(run, cloud, os_security_group, {"name": "g", "rules": [rule]}, fragment)
    assert not cloud.network.groups_


# ---------------------------------------------------------------------- os_image


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "disk.qcow2"
    path.write_bytes(b"qcow2 data" * 1000)
    return path


def test_image_upload_idempotent_by_checksum(run, cloud, image_file):
    args = {"name": "debian-12", "filename": str(image_file), "properties": {"os_distro": "debian"}}
    check = assert_check_mode_changes_nothing(run, cloud, os_image, args)
    assert check["uploaded"]
    assert not cloud.image.images_
    first, second = assert_idempotent(run, cloud, os_image, args)
    assert first["uploaded"]
    assert not second["uploaded"]
    assert first["image"]["os_hash_value"] == first["local_hashes"]["sha512"]
    assert first["image"]["os_distro"] == "debian"


def test_image_new_content_replaces_old_image(run, cloud, image_file):
    first = run(os_image, {"name": "debian-12", "filename": str(image_file)})
    image_file.write_bytes(b"other data")
    refused = run(os_image, {"name": "debian-12", "filename": str(image_file), "replace": False})
    assert refused["failed"]
    assert "exists with other content" in refused["msg"]
    replaced = run(os_image, {"name": "debian-12", "filename": str(image_file)})
    assert replaced["uploaded"]
    assert replaced["deleted"] == [first["image"]["id"]]
    assert [i["id"] for i in cloud.image.images_.values()] == [replaced["image"]["id"]]


def test_image_leftover_of_failed_upload_is_not_the_image(run, cloud, image_file):
    leftover = cloud.image.add("debian-12", status="queued")
    result = run(os_image, {"name": "debian-12", "filename": str(image_file)})
    assert result["uploaded"]
    assert leftover["id"] in result["deleted"]
    assert leftover["id"] not in cloud.image.images_


def test_image_property_update_without_upload(run, cloud, image_file):
    run(os_image, {"name": "debian-12", "filename": str(image_file)})
    cloud.calls.clear()
    result = run(os_image, {"name": "debian-12", "filename": str(image_file), "min_disk": 2, "tags": ["base"]})
    assert result["changed"]
    assert not result["uploaded"]
    assert "put image data" not in cloud.calls


def test_image_corrupted_upload_is_deleted(run, cloud, image_file):
    cloud.image.corrupt_uploads = True
    result = run(os_image, {"name": "debian-12", "filename": str(image_file)})
    assert result["failed"]
    assert "arrived corrupted" in result["msg"]
    assert not cloud.image.images_


def test_image_missing_file(run, cloud, tmp_path):
    assert_refused(run, cloud, os_image, {"name": "x", "filename": str(tmp_path / "nope")}, "does not exist")


def test_image_absent_removes_all_of_that_name(run, cloud, image_file):
    cloud.image.add("debian-12")
    cloud.image.add("debian-12", status="killed")
    result = run(os_image, {"name": "debian-12", "state": "absent"})
    assert len(result["deleted"]) == 2
    assert not cloud.image.images_


# ---------------------------------------------------------------------- os_server


@pytest.fixture
def base_image(cloud):
    return cloud.image.add("debian-12")


SERVER = {
    "name": "acme-node-1",
    "image": "debian-12",
    "flavor": "m1.small",
    "networks": ["private"],
    "availability_zone": "fake",
    "monoscape_role": "node",
    "monoscape_tenant": "acme",
}


def test_server_create_idempotent(run, cloud, base_image):
    check = assert_check_mode_changes_nothing(run, cloud, os_server, SERVER)
    assert check["server"]["metadata"] == {"monoscape_role": "node", "monoscape_tenant": "acme"}
    assert not cloud.compute.servers_
    first, second = assert_idempotent(run, cloud, os_server, SERVER)
    server = first["server"]
    assert server["status"] == "ACTIVE"
    assert server["availability_zone"] == "fake"
    assert server["access_ip"].startswith("10.0.0.")
    assert second["drift"] == []


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"image": "nope"}, "unknown image 'nope'; known images: debian-12"),
        ({"flavor": "m1.huge"}, "unknown flavor 'm1.huge'; known flavors: m1.small, m1.tiny"),
        ({"networks": ["nonet"]}, "unknown network 'nonet'; known networks: private"),
        ({"availability_zone": "mars"}, "unknown availability zone 'mars'; available zones: fake, nova"),
        ({"key_name": "nokey"}, "unknown key pair 'nokey'"),
        ({"security_groups": ["nosg"]}, "unknown security group 'nosg'"),
        ({"name": " padded"}, "whitespace"),
        ({"monoscape_tenant": "Acme Corp"}, "monoscape_tenant"),
        ({"metadata": {"k": ["list"]}}, "must be a string"),
        ({"networks": [{"net": "private"}]}, "networks[0] must be"),
    ],
)
def test_server_bad_input_creates_nothing(run, cloud, base_image, override, fragment):
    assert_refused(run, cloud, os_server, dict(SERVER, **override), fragment)
    assert not cloud.compute.servers_


def test_server_drift_fail_is_the_default_and_changes_nothing(run, cloud, base_image):
    run(os_server, SERVER)
    cloud.calls.clear()
    result = assert_refused(run, cloud, os_server, dict(SERVER, flavor="m1.tiny"), "flavor: m1.small -> wanted m1.tiny")
    assert "drift: recreate" in result["msg"]
    assert result["drift"] == [{"attribute": "flavor", "current": "m1.small", "wanted": "m1.tiny"}]


def test_server_drift_ignore_warns(run, cloud, base_image):
    run(os_server, SERVER)
    cloud.calls.clear()
    result = run(os_server, dict(SERVER, availability_zone="nova", drift="ignore"))
    assert not result["changed"]
    assert result["drift"][0]["attribute"] == "availability_zone"
    assert cloud.calls.mutations() == []


def test_server_drift_recreate(run, cloud, base_image):
    first = run(os_server, SERVER)
    new_image = cloud.image.add("debian-12-v2")
    check = run(os_server, dict(SERVER, image="debian-12-v2", drift="recreate"), check_mode=True)
    assert check["recreated"]
    assert first["server"]["id"] in cloud.compute.servers_
    result = run(os_server, dict(SERVER, image="debian-12-v2", drift="recreate"))
    assert result["changed"]
    assert result["recreated"]
    assert result["server"]["image_id"] == new_image["id"]
    assert first["server"]["id"] not in cloud.compute.servers_
    assert len(cloud.compute.servers_) == 1


def test_server_metadata_in_place(run, cloud, base_image):
    run(os_server, dict(SERVER, metadata={"keep": "no"}))
    result = run(os_server, dict(SERVER, metadata={"purpose": "web"}), diff=True)
    assert result["changed"]
    assert result["diff"]["after"]["metadata"] == {
        "purpose": "web",
        "monoscape_role": "node",
        "monoscape_tenant": "acme",
    }
    server = next(iter(cloud.compute.servers_.values()))
    assert server.metadata == {"purpose": "web", "monoscape_role": "node", "monoscape_tenant": "acme"}
    # without metadata, monoscape_* options only add their keys
    run(os_server, dict(SERVER, monoscape_app="hello,blog"))
    assert server.metadata["purpose"] == "web"
    assert server.metadata["monoscape_app"] == "hello,blog"


def test_server_tags_on_create_and_added_to_an_older_server(run, cloud, base_image):
    tagged = dict(SERVER, tags=["monoscape_deployment=prod"])
    first = run(os_server, tagged)
    server = cloud.compute.servers_[first["server"]["id"]]
    assert server.tags == ["monoscape_deployment=prod"]
    assert first["server"]["tags"] == ["monoscape_deployment=prod"]
    assert "add_tag_to_server" not in cloud.calls  # given to Nova with the create call

    # a server made before tags existed gets the tag in place (check mode and diff first)
    server.tags = ["team=web"]
    cloud.calls.clear()
    check = run(os_server, tagged, check_mode=True, diff=True)
    assert check["changed"]
    assert cloud.calls.mutations() == []
    assert check["diff"]["after"]["tags"] == ["monoscape_deployment=prod", "team=web"]
    _, second = assert_idempotent(run, cloud, os_server, tagged)
    assert sorted(server.tags) == ["monoscape_deployment=prod", "team=web"]  # others stay
    assert second["server"]["tags"] == ["monoscape_deployment=prod", "team=web"]

    run(os_server, dict(tagged, purge_tags=True))
    assert server.tags == ["monoscape_deployment=prod"]
    assert not run(os_server, SERVER)["changed"]  # no tags option: left alone


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [("a/b", "has a '/' or ','"), ("a,b", "has a '/' or ','"), ("x" * 61, "at most 60"), ("", "must not be empty")],
)
def test_server_bad_tags_change_nothing(run, cloud, base_image, tag, fragment):
    assert_refused(run, cloud, os_server, dict(SERVER, tags=[tag]), fragment)
    assert not cloud.compute.servers_


def test_server_of_another_deployment_is_never_taken_over(run, cloud, base_image):
    theirs = run(os_server, dict(SERVER, metadata={"monoscape_deployment": "staging"}))
    cloud.calls.clear()
    result = assert_refused(
        run,
        cloud,
        os_server,
        dict(SERVER, metadata={"monoscape_deployment": "prod"}, tags=["monoscape_deployment=prod"]),
        "belongs to deployment 'staging'",
    )
    assert "not to 'prod'" in result["msg"]
    server = cloud.compute.servers_[theirs["server"]["id"]]
    assert server.metadata["monoscape_deployment"] == "staging"
    assert server.tags == []


def test_server_power_states(run, cloud, base_image):
    run(os_server, SERVER)
    stopped = run(os_server, dict(SERVER, state="stopped"))
    assert stopped["changed"]
    assert stopped["server"]["status"] == "SHUTOFF"
    assert not run(os_server, dict(SERVER, state="stopped"))["changed"]
    started = run(os_server, dict(SERVER, state="started"))
    assert started["server"]["status"] == "ACTIVE"


def test_server_build_error_is_cleaned_up(run, cloud, base_image):
    cloud.compute.build_status = "ERROR"
    result = run(os_server, SERVER)
    assert result["failed"]
    assert "failed to build: No valid host was found." in result["msg"]
    assert not cloud.compute.servers_


def test_a_build_that_never_ends_names_nova_compute_and_keeps_the_server(run, cloud, base_image):
    cloud.compute.build_status = "BUILD"  # the compute service that should build it is down
    result = run(os_server, dict(SERVER, timeout=0))
    assert result["failed"]
    assert "waiting for server 'acme-node-1' to become ACTIVE (last seen: BUILD)" in result["msg"]
    assert "(task_state scheduling): is Nova's compute service (nova-compute)" in result["msg"]
    assert "nova-scheduler and nova-conductor" in result["msg"]
    assert len(cloud.compute.servers_) == 1  # kept: the next run waits for it (or replaces it in ERROR)
    again = run(os_server, dict(SERVER, timeout=0))
    assert again["failed"] and "to leave BUILD (last seen: BUILD)" in again["msg"]
    assert "nova-compute" in again["msg"] and len(cloud.compute.servers_) == 1


def test_server_duplicate_names_are_refused(run, cloud, base_image):
    run(os_server, SERVER)
    server = next(iter(cloud.compute.servers_.values()))
    twin = Res(server, id="twin")
    cloud.compute.servers_["twin"] = twin
    cloud.calls.clear()
    assert_refused(run, cloud, os_server, SERVER, "2 servers are named 'acme-node-1'")


def test_server_absent(run, cloud, base_image):
    run(os_server, SERVER)
    assert run(os_server, {"name": SERVER["name"], "state": "absent"}, check_mode=True)["changed"]
    assert cloud.compute.servers_
    assert run(os_server, {"name": SERVER["name"], "state": "absent"})["changed"]
    assert not cloud.compute.servers_
    assert not cloud.network.ports_


# ---------------------------------------------------------------------- os_server_snapshot


@pytest.fixture
def builder(run, cloud, base_image):
    server = run(os_server, dict(SERVER, name="builder"))["server"]
    cloud.calls.clear()
    return server


def test_snapshot_idempotent_by_name(run, cloud, builder):
    args = {"server": "builder", "name": "golden-1", "properties": {"monoscape_content": "abc"}}
    check = assert_check_mode_changes_nothing(run, cloud, os_server_snapshot, args)
    assert check["snapshot_taken"]
    first, second = assert_idempotent(run, cloud, os_server_snapshot, args)
    assert first["snapshot_taken"]
    assert first["image"]["instance_uuid"] == builder["id"]
    assert first["image"]["monoscape_content"] == "abc"
    assert not second["snapshot_taken"]


def test_snapshot_properties_updated_in_place(run, cloud, builder):
    run(os_server_snapshot, {"server": "builder", "name": "golden-1"})
    cloud.calls.clear()
    result = run(os_server_snapshot, {"server": "builder", "name": "golden-1", "properties": {"v": "2"}})
    assert result["changed"]
    assert not result["snapshot_taken"]
    assert "create_server_image" not in cloud.calls


def test_snapshot_replace_and_leftovers(run, cloud, builder):
    old = run(os_server_snapshot, {"server": "builder", "name": "golden"})["image"]
    leftover = cloud.image.add("golden", status="killed")
    new = run(os_server_snapshot, {"server": "builder", "name": "golden", "replace": True})
    assert new["snapshot_taken"]
    assert sorted(new["deleted"]) == sorted([old["id"], leftover["id"]])
    assert [i["id"] for i in cloud.image.images_.values() if i["name"] == "golden"] == [new["image"]["id"]]


def test_snapshot_failure_leaves_nothing(run, cloud, builder):
    cloud.snapshot_status = "killed"
    result = run(os_server_snapshot, {"server": "builder", "name": "golden"})
    assert result["failed"]
    assert "was deleted" in result["msg"]
    assert not [i for i in cloud.image.images_.values() if i["name"] == "golden"]


def test_snapshot_unknown_server(run, cloud, builder):
    assert_refused(run, cloud, os_server_snapshot, {"server": "nope", "name": "g"}, "unknown server 'nope'", "builder")


def test_snapshot_absent(run, cloud, builder):
    run(os_server_snapshot, {"server": "builder", "name": "golden"})
    assert run(os_server_snapshot, {"name": "golden", "state": "absent"})["changed"]
    assert not run(os_server_snapshot, {"name": "golden", "state": "absent"})["changed"]


def test_revoking_from_what_is_gone_is_a_no_op(run, cloud):
    """Teardown runs twice: the second finds the user/project/role gone and changes nothing."""
    absent = {"state": "absent"}
    assert not run(os_role_assignment, {"user": "ghost", "project": "admin", "role": "member", **absent})["changed"]
    assert not run(os_role_assignment, {"user": "admin", "project": "gone", "role": "member", **absent})["changed"]
    assert not run(os_role_assignment, {"user": "admin", "project": "admin", "role": "nope", **absent})["changed"]
    assert not run(os_ec2_credentials, {"user": "ghost", "project": "admin", **absent})["changed"]
    assert not run(os_ec2_credentials, {"user": "admin", "project": "gone", **absent})["changed"]
    assert cloud.calls.mutations() == []
    # but granting needs them to exist
    assert run(os_role_assignment, {"user": "ghost", "project": "admin", "role": "member"})["failed"]
