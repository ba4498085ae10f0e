"""Verify the devstack role on the molecule host, twice: after converge and
idempotence (phase "converged"), and after side_effect.yml (phase "final":
re-stack with a failed first attempt, reboot and recovery, a stack.sh that
keeps failing).

The fake DevStack (files/fake-devstack) appends every stack.sh / unstack.sh
call to calls.log. Expectations come from the scenario's vars.yml, not from
literals repeated here."""

import hashlib
import json
import os
import pathlib
import re
import stat

import pytest
import yaml

SCENARIO = pathlib.Path(__file__).resolve().parent.parent
VARS = yaml.safe_load((SCENARIO / "vars.yml").read_text())
DEFAULTS = yaml.safe_load((SCENARIO.parent.parent / "roles" / "devstack" / "defaults" / "main.yml").read_text())
HOSTNAME = "monoscape-devstack-aio"

USER = DEFAULTS["devstack_user"]
GROUP = DEFAULTS["devstack_group"]
DEST = DEFAULTS["devstack_dest"]
DEVSTACK_DIR = f"{DEST}/devstack"
LOCAL_CONF = f"{DEVSTACK_DIR}/local.conf"
LOGFILE = f"{DEST}/logs/stack.sh.log"
STATE_DIR = DEFAULTS["devstack_state_dir"]
PASSWORD_FILE = f"{STATE_DIR}/admin-password"
MARKER = f"{STATE_DIR}/stack-success.json"
CLOUDS_YAML = f"{STATE_DIR}/clouds.yaml"
FAKE_STATE = VARS["devstack_localrc"]["FAKE_DEVSTACK_STATE"]
RESTACK = VARS["devstack_test_restack"]
FAILING = VARS["devstack_test_failing"]
FAILING_ATTEMPTS = FAILING["stack_retries"] + 1
EPHEMERAL = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])

REFERENCE = re.compile(r"(?<!\\)\$\{?([A-Za-z_][A-Za-z0-9_]*)")
ASSIGNMENT = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)="(.*)"$')


@pytest.fixture(scope="module")
def phase(host):
    marker = host.file(f"{FAKE_STATE}/phase")
    return marker.content_string.strip() if marker.exists else "converged"


@pytest.fixture(scope="module")
def local_conf(host):
    return host.file(LOCAL_CONF).content_string


@pytest.fixture(scope="module")
def localrc(local_conf):
    """The [[local|localrc]] section as (kind, name or line, value) entries, in order."""
    lines = local_conf.split("[[local|localrc]]\n", 1)[1].split("\n\n", 1)[0].splitlines()
    entries = []
    for line in lines:
        match = ASSIGNMENT.match(line)
        entries.append(("var", match.group(1), match.group(2)) if match else ("cmd", line, None))
    return entries


@pytest.fixture(scope="module")
def password(host):
    return host.file(PASSWORD_FILE).content_string.strip()


@pytest.fixture(scope="module")
def host_ip(host, phase):
    if phase == "final":
        return RESTACK["host_ip"]
    route = json.loads(host.check_output("ip -4 -json route show default"))
    addresses = json.loads(host.check_output(f"ip -4 -json address show dev {route[0]['dev']}"))
    return addresses[0]["addr_info"][0]["local"]


def expected_localrc(phase):
    """The scenario's localrc; the final local.conf is the failing run's."""
    localrc = dict(VARS["devstack_localrc"])
    if phase == "final":
        localrc |= FAILING["extra_localrc"]
    return localrc


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def calls(host):
    return [line.split() for line in host.file(f"{FAKE_STATE}/calls.log").content_string.splitlines()]


# --- user, sudo, checkout ----------------------------------------------------


def test_stack_user_and_group(host):
    user = host.user(USER)
    assert user.exists
    assert user.group == GROUP
    assert user.home == DEST
    assert user.shell == "/bin/bash"
    assert host.group(GROUP).exists


def test_home_is_world_executable(host):
    home = host.file(DEST)
    assert home.is_directory
    assert home.user == USER
    assert home.group == GROUP
    assert home.mode == 0o755


def test_sudoers_drop_in(host):
    drop_in = host.file("/etc/sudoers.d/50_stack_sh")
    assert drop_in.user == "root"
    assert drop_in.group == "root"
    assert drop_in.mode == 0o440
    assert drop_in.content_string.splitlines()[0] == f"{USER} ALL=(root) NOPASSWD:ALL"
    assert host.run("visudo -c").rc == 0
    assert host.run(f"visudo -cf {drop_in.path}").rc == 0
    # the drop-in works: the stack user becomes root without a password
    assert host.check_output(f"runuser -u {USER} -- sudo -n id -u") == "0"


def test_devstack_checkout_at_the_pinned_version(host):
    checkout = host.file(DEVSTACK_DIR)
    assert checkout.user == USER
    tag = host.check_output(f"runuser -u {USER} -- git -C {DEVSTACK_DIR} describe --tags --exact-match HEAD")
    assert tag == VARS["devstack_version"]


# --- local.conf ----------------------------------------------------------------


def test_local_conf_mode(host):
    conf = host.file(LOCAL_CONF)
    assert conf.user == USER
    assert conf.group == GROUP
    assert conf.mode == 0o600


def test_localrc_definitions_come_before_references(localrc):
    defined = set()
    names = {name for kind, name, _ in localrc if kind == "var"}
    for kind, name, value in localrc:
        if kind != "var":
            continue
        for ref in REFERENCE.findall(value):
            if ref in names and ref != name:
                assert ref in defined, f"{name} refers to ${ref} before its definition"
        defined.add(name)
    # the scenario has references across the alphabet in both directions
    assert {"SERVICE_HOST", "SYSLOG_HOST", "KEYSTONE_URL_TEST", "SWIFT_HASH"} <= names


def test_localrc_commands_follow_the_variables_plugins_last(localrc):
    kinds = [kind for kind, _, _ in localrc]
    first_cmd = kinds.index("cmd")
    assert set(kinds[first_cmd:]) == {"cmd"}, "a variable follows enable_service/enable_plugin"
    commands = [line for kind, line, _ in localrc if kind == "cmd"]
    plugin = VARS["devstack_plugins"][0]
    assert commands == [
        "enable_service " + " ".join(VARS["devstack_enabled_services"]),
        "disable_service " + " ".join(VARS["devstack_disabled_services"]),
        f"enable_plugin {plugin['name']} {plugin['url']} {plugin['ref']}",
    ]


def test_localrc_values(localrc, password, host_ip, phase):
    variables = {name: value for kind, name, value in localrc if kind == "var"}
    assert variables["ADMIN_PASSWORD"] == password
    assert variables["HOST_IP"] == host_ip
    assert variables["DEST"] == DEST
    assert variables["LOGFILE"] == LOGFILE
    assert variables["DATABASE_PASSWORD"] == "$ADMIN_PASSWORD"  # noqa: S105 - a reference, not a password
    for name, value in expected_localrc(phase).items():
        assert variables[name] == value


def test_meta_sections(local_conf):
    meta = local_conf.split("\n\n", 1)[1]
    for phase_name, files in VARS["devstack_local_conf"].items():
        for filename, sections in files.items():
            assert f"[[{phase_name}|{filename}]]\n" in meta
            for section, options in sections.items():
                block = f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in sorted(options.items()))
                assert block in meta


def test_bash_resolved_the_localrc(host, password, host_ip, phase):
    """What the fake stack.sh got when bash sourced localrc (set -u) at its last successful run."""
    resolved = dict(
        line.split("=", 1) for line in host.file(f"{FAKE_STATE}/localrc.resolved").content_string.splitlines()
    )
    assert resolved["DATABASE_PASSWORD"] == resolved["ADMIN_PASSWORD"] == password
    assert resolved["SWIFT_HASH"] == password
    assert resolved["SYSLOG_HOST"] == resolved["SERVICE_HOST"] == host_ip
    assert resolved["FAKE_WEB_ROOT"] == f"{DEST}/fake-web"
    assert resolved["KEYSTONE_URL_TEST"] == f"http://{host_ip}/identity"
    services = resolved["ENABLED_SERVICES"].split(",")
    assert set(VARS["devstack_enabled_services"]) <= set(services)
    assert not set(VARS["devstack_disabled_services"]) & set(services)
    assert resolved["PLUGINS"] == VARS["devstack_plugins"][0]["name"]
    if phase == "final":
        # the last successful run is the re-stack; the failing run resolved nothing
        assert resolved["RESTACK_MARK"] == f"{host_ip}-restacked"
        assert "FAILING_MARK" not in resolved


# --- secrets, state, clouds.yaml ---------------------------------------------------


def test_role_state_is_root_only(host, password, phase):
    state = host.file(STATE_DIR)
    assert (state.user, state.group, state.mode) == ("root", "root", 0o700)
    password_file = host.file(PASSWORD_FILE)
    assert (password_file.user, password_file.group, password_file.mode) == ("root", "root", 0o600)
    assert re.fullmatch(r"[A-Za-z0-9]+", password)
    if phase == "converged":
        assert len(password) == DEFAULTS["devstack_admin_password_length"]  # generated
    else:
        assert password == RESTACK["admin_password"]  # from the variable, kept by the failing run


def test_admin_clouds_yaml_on_host_and_control_node(host, password, host_ip):
    on_host = host.file(CLOUDS_YAML)
    assert (on_host.user, on_host.group, on_host.mode) == ("root", "root", 0o600)
    cloud = yaml.safe_load(on_host.content_string)["clouds"][DEFAULTS["devstack_clouds_yaml_cloud"]]
    assert cloud["auth"]["password"] == password
    assert cloud["auth"]["username"] == "admin"
    assert cloud["auth"]["auth_url"] == f"http://{host_ip}/identity"
    assert cloud["region_name"] == DEFAULTS["devstack_region_name"]
    fetched = EPHEMERAL / "fetched" / HOSTNAME / "clouds.yaml"
    assert stat.S_IMODE(fetched.stat().st_mode) == 0o600
    assert stat.S_IMODE(fetched.parent.stat().st_mode) == 0o700
    assert fetched.read_text() == on_host.content_string


# --- stack.sh runs --------------------------------------------------------------------


def test_stack_sh_calls(host, local_conf, phase):
    """converged: stack.sh ran once (converge), not again (idempotence).
    final: + re-stack (unstack first; attempt 1 fails, unstack, attempt 2 succeeds)
    + failing run (unstack first; every attempt fails, each followed by unstack)."""
    recorded = calls(host)
    first_sha = recorded[0][2]
    expected = [["stack", "ok", first_sha]]
    if phase == "final":
        restack_sha = recorded[2][2]
        expected += [["unstack", "ok", "-"]]
        expected += [["stack", "fail", restack_sha], ["unstack", "ok", "-"]] * RESTACK["stack_failures"]
        expected += [["stack", "ok", restack_sha]]
        expected += [["unstack", "ok", "-"]]
        expected += [["stack", "fail", sha256(local_conf)], ["unstack", "ok", "-"]] * FAILING_ATTEMPTS
        assert len({first_sha, restack_sha, sha256(local_conf)}) == 3
    else:
        assert first_sha == sha256(local_conf)
    assert recorded == expected


def test_success_marker(host, local_conf, host_ip, phase):
    marker = host.file(MARKER)
    if phase == "final":
        assert not marker.exists, "a failed run must not leave the marker of an earlier success"
        return
    assert (marker.user, marker.mode) == ("root", 0o600)
    record = json.loads(marker.content_string)
    assert record["local_conf_sha256"] == sha256(local_conf)
    assert record["host_ip"] == host_ip
    assert record["devstack_version"] == VARS["devstack_version"]
    head = host.check_output(f"runuser -u {USER} -- git -C {DEVSTACK_DIR} rev-parse HEAD")
    assert record["devstack_commit"] == head


def test_devstack_units_enabled(host, phase):
    for unit in ("devstack@fake-web.service", "devstack@fake-worker.service"):
        service = host.service(unit)
        # fake-worker is left disabled by the fake stack.sh: the role enabled it
        assert service.is_enabled
        # the failing run's unstack.sh stopped them
        assert service.is_running == (phase == "converged")


def test_keystone_and_horizon_answer(host, host_ip, phase):
    keystone = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' http://{host_ip}/identity/v3")
    assert keystone.stdout == ("200" if phase == "converged" else "000")


def test_public_bridge_address_and_nat(host):
    """Set by stack.sh; in the final phase, put back by recovery after the reboot."""
    gateway = DEFAULTS["devstack_public_network_gateway"]
    prefix = DEFAULTS["devstack_floating_range"].split("/")[1]
    bridge = json.loads(host.check_output(f"ip -json address show dev {DEFAULTS['devstack_public_bridge']}"))
    assert {(a["local"], a["prefixlen"]) for a in bridge[0]["addr_info"] if a["family"] == "inet"} == {
        (gateway, int(prefix))
    }
    nat = host.check_output("iptables -t nat -S POSTROUTING")
    assert f"-s {DEFAULTS['devstack_floating_range']}" in nat
    assert "-j MASQUERADE" in nat


def test_failing_stack_fails_the_play_naming_the_log(host, phase):
    record = EPHEMERAL / "failing-run.json"
    if phase == "converged":
        assert not record.exists()
        return
    run = json.loads(record.read_text())
    out = run["stdout"] + run["stderr"]
    assert run["rc"] == 2, out[-3000:]
    assert f"stack.sh failed {FAILING_ATTEMPTS} time(s) on {HOSTNAME}" in out
    assert "unstack.sh ran after each failure" in out
    logs = re.findall(r"Full log: (" + re.escape(LOGFILE) + r"\.\d{4}-\d\d-\d\d-\d{6})", out)
    assert logs, out[-3000:]
    log = host.file(logs[-1])
    assert log.exists
    assert "FAKE-STACK-FAILURE" in log.content_string
    # the error quotes the end of the log
    assert "FAKE-STACK-FAILURE" in out
    assert re.search(rf"{re.escape(HOSTNAME)}\s*:\s*ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=1", out)
