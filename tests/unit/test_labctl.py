"""labctl's logic without services: generated configs, process marking and
stale pid files, port owner parsing, plugin sync, orphan detection, errors."""

import configparser
import ipaddress
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "lab"))

from monoscape_lab import LabError, configs, install, procs, settings  # noqa: E402 - after the path set-up
from monoscape_lab.podman import Podman  # noqa: E402

LAB = pathlib.Path("/var/tmp/lab-under-test")


@pytest.fixture
def lab_settings(tmp_path):
    return settings.Settings(
        lab_dir=tmp_path / "lab",
        cache=tmp_path / "cache",
        python=sys.executable,
        image="localhost/monoscape/debian-systemd:12-v1",
        cidr=settings.DEFAULT_CIDR,
        containers_conf=tmp_path / "containers.conf",
    )


@pytest.fixture
def rendered(lab_settings, tmp_path):
    secrets = {name: f"pw-{name}" for name in ("admin", *settings.SERVICE_USERS)}
    return configs.render(lab_settings, secrets, tmp_path / "venv" / "etc", "c0ffee")


def parse(text):
    parser = configparser.ConfigParser(interpolation=None, strict=True, default_section="no-default")
    parser.read_string(text)
    return parser


def test_every_ini_file_parses_and_binds_loopback_only(rendered):
    ini_files = {k: v for k, v in rendered.items() if isinstance(v, str) and k.endswith((".conf", ".cnf", ".ini"))}
    assert len(ini_files) >= 9
    for name, text in ini_files.items():
        if name.startswith("rabbitmq/"):
            continue
        parser = parse(text)
        for section in parser.sections():
            for key, value in parser.items(section):
                if key.endswith(("_url", "_uri")) or key in (
                    "connection",
                    "bind-address",
                    "my_ip",
                    "memcached_servers",
                ):
                    assert "127.0.0.1" in value, f"{name} [{section}] {key} = {value}"
    assert "listeners.tcp.default = 127.0.0.1:5672" in rendered["rabbitmq/rabbitmq.conf"]


def test_nova_compute_configs_have_no_database_and_their_own_host(rendered, lab_settings):
    for name, host, driver in (
        ("nova/nova-compute-podman.conf", "lab-podman", "monoscape_podman.PodmanDriver"),
        ("nova/nova-compute-fake.conf", "lab-fake", "monoscape_fake.PersistentFakeDriver"),
    ):
        conf = parse(rendered[name])
        assert not conf.has_section("database") and not conf.has_section("api_database")
        assert conf["DEFAULT"]["host"] == host
        assert conf["DEFAULT"]["compute_driver"] == driver
        assert conf["DEFAULT"]["state_path"] == str(lab_settings.data / host)  # node identity per host
    podman = parse(rendered["nova/nova-compute-podman.conf"])["monoscape_podman"]
    assert podman["cloud_id"] == "c0ffee" and podman["lab_dir"] == str(lab_settings.lab_dir)
    nova = parse(rendered["nova/nova.conf"])
    assert nova["DEFAULT"]["default_schedule_zone"] == "nova"
    assert all(value == "-1" for value in nova["quota"].values())
    assert nova["DEFAULT"]["periodic_fuzzy_delay"] == "0"


def test_neutron_binds_ports_with_the_lab_driver_and_unlimited_quotas(rendered):
    assert parse(rendered["neutron/plugins/ml2/ml2_conf.ini"])["ml2"]["mechanism_drivers"] == "monoscape_lab"
    neutron = parse(rendered["neutron/neutron.conf"])
    assert neutron["DEFAULT"]["rpc_workers"] == "0"
    assert all(value == "-1" for value in neutron["quotas"].values())


def test_clouds_yaml_is_yaml_with_the_admin_cloud(rendered):
    yaml = pytest.importorskip("yaml")
    clouds = yaml.safe_load(configs.clouds_yaml({"admin": "s3cret"}))["clouds"]
    assert clouds["lab-admin"]["auth"]["project_name"] == "admin"
    assert clouds["lab-admin"]["auth"]["password"] == "s3cret"  # noqa: S105 - test value


def test_default_tenant_subnet_avoids_podmans_molecule_pool():
    assert not ipaddress.ip_network(settings.DEFAULT_CIDR).overlaps(ipaddress.ip_network("10.89.60.0/22"))


def test_versions_come_from_scripts_versions_sh():
    versions = settings.read_versions()
    assert versions["MONOSCAPE_IMAGE"].startswith("localhost/monoscape/debian-systemd:12-")


def fake_proc(root, pid, env, comm="python3"):
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "environ").write_bytes(b"\0".join(f"{k}={v}".encode() for k, v in env.items()) + b"\0")
    (d / "comm").write_text(comm + "\n")
    (d / "cmdline").write_bytes(comm.encode() + b"\0")


def test_lab_processes_are_found_by_marker_only(tmp_path):
    proc = tmp_path / "proc"
    fake_proc(proc, 10, {procs.MARK_DIR: str(LAB), procs.MARK_SERVICE: "keystone", "PATH": "/bin"})
    fake_proc(proc, 11, {procs.MARK_DIR: str(LAB), procs.MARK_SERVICE: "mariadb"}, comm="mariadbd")
    fake_proc(proc, 12, {procs.MARK_DIR: "/other/lab", procs.MARK_SERVICE: "keystone"})  # another lab
    fake_proc(proc, 13, {"PATH": "/bin"}, comm="sleep")  # not the lab's
    fake_proc(proc, 14, {procs.MARK_DIR: str(LAB), procs.MARK_SERVICE: "nova-compute-podman"}, comm="conmon")
    (proc / "self").mkdir()
    assert procs.lab_processes(LAB, proc=proc) == {10: "keystone", 11: "mariadb"}
    assert procs.lab_processes(LAB, "mariadb", proc=proc) == {11: "mariadb"}
    # a pid file naming pid 13 is stale: that process is not the service's
    assert procs.pid_is_service(10, LAB, "keystone", proc=proc)
    assert not procs.pid_is_service(13, LAB, "keystone", proc=proc)
    assert not procs.pid_is_service(99, LAB, "keystone", proc=proc)
    assert not procs.pid_is_service(None, LAB, "keystone", proc=proc)


def test_read_pid_tolerates_garbage(tmp_path):
    (tmp_path / "a.pid").write_text("123\n")
    (tmp_path / "b.pid").write_text("not a pid")
    assert procs.read_pid(tmp_path / "a.pid") == 123
    assert procs.read_pid(tmp_path / "b.pid") is None
    assert procs.read_pid(tmp_path / "missing.pid") is None


def test_spawned_processes_carry_the_marker_and_are_stopped(tmp_path):
    log = tmp_path / "svc.log"
    p = procs.spawn(
        ["sleep", "30"], lab_dir=tmp_path, service="svc", log=log, env={"PATH": os.environ["PATH"]}, cwd=tmp_path
    )
    try:
        assert procs.lab_processes(tmp_path) == {p.pid: "svc"}
        assert "labctl starts svc" in log.read_text()
        assert procs.stop_processes(tmp_path, "svc", grace=5) == {p.pid: "svc"}
        p.wait(timeout=5)
        assert procs.lab_processes(tmp_path) == {}
    finally:
        p.kill()


def test_port_owners_are_parsed_from_ss():
    text = (
        'LISTEN 0 80 127.0.0.1:3306 0.0.0.0:* users:(("mariadbd",pid=4242,fd=21))\n'
        'LISTEN 0 128 0.0.0.0:2024 0.0.0.0:* users:(("sshd",pid=7,fd=3),("sshd",pid=8,fd=3))\n'
        "LISTEN 0 5 [::1]:631 [::]:*\n"
    )
    assert procs.parse_ss_listeners(text) == [
        ("127.0.0.1", 3306, [("mariadbd", 4242)]),
        ("0.0.0.0", 2024, [("sshd", 7), ("sshd", 8)]),  # noqa: S104 - parsed text, nothing binds
        ("[::1]", 631, []),
    ]


def test_http_answers_means_any_http_response():
    assert not procs.http_answers("http://127.0.0.1:9/", timeout=0.5)  # discard port: nothing listens


def test_errors_are_one_line_with_the_log():
    err = LabError("nova-api exited with code 3\nwhile starting", "/x/logs/nova-api.log")
    assert err.one_line() == "nova-api exited with code 3 while starting; see /x/logs/nova-api.log"
    assert "\n" not in err.one_line()


def test_plugins_are_synced_into_the_venv_and_their_users_restarted(lab_settings, monkeypatch):
    site = lab_settings.cache / "site"
    monkeypatch.setattr(settings.Settings, "site_packages", property(lambda self: site))
    changed = install.sync_plugins(lab_settings)
    assert changed == {"nova-compute-podman", "nova-compute-fake", "neutron-api", "lab-network"}
    assert (site / "monoscape_labnet.py").read_bytes() == (ROOT / "lab" / "monoscape_lab" / "labnet.py").read_bytes()
    assert (site / "nova" / "virt" / "monoscape_podman.py").read_bytes() == (
        ROOT / "lab" / "nova_virt" / "monoscape_podman.py"
    ).read_bytes()
    entry_points = (site / install.ML2_DIST / "entry_points.txt").read_text()
    assert "monoscape_lab = monoscape_lab_ml2:LabMechanismDriver" in entry_points
    assert install.sync_plugins(lab_settings) == set()  # nothing changed: nothing to restart
    (site / "monoscape_lab_ml2.py").write_text("# edited\n")
    assert install.sync_plugins(lab_settings) == {"neutron-api"}


def test_orphans_are_what_the_cloud_does_not_know(lab_settings, monkeypatch):
    lab = str(lab_settings.lab_dir)

    def labels(cloud, role, **extra):
        return {settings.LABEL_DIR: lab, settings.LABEL_CLOUD: cloud, "monoscape.lab.role": role, **extra}

    containers = [
        {"name": "known", "state": "running", "labels": labels("c1", "instance", **{"monoscape.lab.instance": "i1"})},
        {"name": "gone", "state": "exited", "labels": labels("c1", "instance", **{"monoscape.lab.instance": "i2"})},
        {
            "name": "old-cloud",
            "state": "running",
            "labels": labels("c0", "instance", **{"monoscape.lab.instance": "i1"}),
        },
        {"name": "sysprep", "state": "created", "labels": labels("c1", "sysprep")},
    ]
    networks = [
        {"name": "net-known", "labels": labels("c1", "network", **{"monoscape.lab.network": "n1"})},
        {"name": "net-gone", "labels": labels("c1", "network", **{"monoscape.lab.network": "n2"})},
    ]
    images = [
        {"id": "img-known", "names": [], "labels": labels("c1", "snapshot", **{"monoscape.lab.image": "g1"})},
        {"id": "img-gone", "names": [], "labels": labels("c1", "snapshot", **{"monoscape.lab.image": "g2"})},
    ]
    monkeypatch.setattr(Podman, "containers", lambda self: containers)
    monkeypatch.setattr(Podman, "networks", lambda self: networks)
    monkeypatch.setattr(Podman, "images", lambda self: images)
    got = Podman(lab_settings).orphans("c1", {"i1"}, {"n1"}, {"g1"})
    assert got == (["gone", "old-cloud", "sysprep"], ["net-gone"], ["img-gone"])


def test_labctl_env_prints_shell_exports(tmp_path):
    env = dict(os.environ, MONOSCAPE_LAB_DIR=str(tmp_path / "lab"))
    out = subprocess.run([str(ROOT / "lab" / "labctl"), "env"], capture_output=True, text=True, env=env, check=True)
    exports = dict(line[len("export ") :].split("=", 1) for line in out.stdout.splitlines())
    assert exports["OS_CLIENT_CONFIG_FILE"] == str(tmp_path / "lab" / "clouds.yaml")
    assert exports["OS_CLOUD"] == "lab-admin"
    assert exports["MONOSCAPE_LAB_OPENSTACK"].endswith("/bin/openstack")


def test_labctl_status_of_a_lab_that_never_ran_exits_3(tmp_path):
    env = dict(os.environ, MONOSCAPE_LAB_DIR=str(tmp_path / "lab"))
    proc = subprocess.run(
        [str(ROOT / "lab" / "labctl"), "status"], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 3
    assert "0/13 services up" in proc.stdout
    wait = subprocess.run(
        [str(ROOT / "lab" / "labctl"), "wait", "--timeout", "1"], capture_output=True, text=True, env=env, check=False
    )
    assert wait.returncode == 1
    assert "the lab is not up" in wait.stderr and len(wait.stderr.strip().splitlines()) == 1


def test_the_state_files_are_json(lab_settings):
    lab_settings.lab_dir.mkdir(parents=True)
    assert lab_settings.read_state() == {}
    lab_settings.write_state({"cloud_id": "c1"})
    assert json.loads(lab_settings.state_file.read_text()) == {"cloud_id": "c1"}
    pw = lab_settings.secrets(create=True)
    assert oct(lab_settings.secrets_file.stat().st_mode & 0o777) == "0o600"
    assert lab_settings.secrets() == pw
