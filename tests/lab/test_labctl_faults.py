"""labctl on the running lab: idempotent `up`, and the faults it must explain in
one line (with the log to read) or recover from: a port taken by a foreign
process, a missing prerequisite, a service that fails to start, stale pid files
and crashed services, leftover containers and networks, a crash of the whole lab.

These tests break parts of the shared lab on purpose and repair them; each
leaves the lab up. They run last among the lab tests (tests/conftest.py orders them)."""

import json
import os
import pathlib
import subprocess
import time
import uuid

from lab_helpers import SERVICES, kill_service, labctl, podman, power_cut, status


def assert_all_up():
    rows = status()
    down = {name: state for name, (state, _) in rows.items() if state != "up"}
    assert not down and len(rows) == len(SERVICES), f"services not up: {down}"


def assert_one_line_error(proc, *needles):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("labctl: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def lab_dir(lab_env):
    return pathlib.Path(lab_env["MONOSCAPE_LAB_DIR"])


def test_up_is_idempotent_and_fast_when_the_lab_runs(lab_env):
    started = time.monotonic()
    proc = labctl("up")
    assert proc.returncode == 0, proc.stderr
    assert "all services already running" in proc.stdout
    assert time.monotonic() - started < 20
    assert_all_up()


def test_a_port_taken_by_a_foreign_process_is_one_line_with_the_log(lab_env, tmp_path):
    """A second lab (another state dir) finds the first one's processes on its ports."""
    env = dict(os.environ, MONOSCAPE_LAB_DIR=str(tmp_path / "lab2"))
    started = time.monotonic()
    proc = labctl("up", "--no-install", env=env, timeout=120)
    line = assert_one_line_error(proc, "port 127.0.0.1:3306", "mariadb", f"see {tmp_path}/lab2/logs/labctl.log")
    assert "(mariadbd)" in line
    assert time.monotonic() - started < 60
    assert not (tmp_path / "lab2" / "etc").exists()  # nothing was initialised
    assert_all_up()  # and the real lab was not touched


def test_a_missing_prerequisite_is_one_line(lab_env, tmp_path):
    env = dict(os.environ, MONOSCAPE_LAB_DIR=str(tmp_path / "lab3"), MONOSCAPE_IMAGE="localhost/monoscape/absent:0")
    proc = labctl("up", "--no-install", env=env, timeout=120)
    assert_one_line_error(proc, "missing prerequisite", "localhost/monoscape/absent:0", "scripts/test-hosts.sh")


def test_stale_pid_file_and_a_crashed_service_are_recovered(lab_env):
    run = lab_dir(lab_env) / "run"
    old = kill_service("placement-api")
    # the pid file now names a process that is not the lab's: labctl must not touch it
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        (run / "placement-api.pid").write_text(f"{bystander.pid}\n")
        assert status()["placement-api"][0] == "down"
        proc = labctl("up")
        assert proc.returncode == 0, proc.stderr
        assert "starting placement-api" in proc.stdout
        assert bystander.poll() is None
        new = int((run / "placement-api.pid").read_text())
        assert new != bystander.pid and new not in old
        assert_all_up()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_service_that_fails_to_start_names_its_log(lab_env):
    conf = lab_dir(lab_env) / "etc" / "glance" / "glance-api.conf"
    good = conf.read_text()
    kill_service("glance-api")
    try:
        conf.write_text(good + "\n[DEFAULT]\nthis line is not an option\n")  # a broken config file
        started = time.monotonic()
        proc = labctl("up")
        log = lab_dir(lab_env) / "logs" / "glance-api.log"
        assert_one_line_error(proc, "glance-api", f"see {log}")
        assert time.monotonic() - started < 90
    finally:
        conf.write_text(good)
    proc = labctl("up")
    assert proc.returncode == 0, proc.stderr
    assert_all_up()


def test_leftover_containers_and_networks_are_removed(lab_env):
    lab = lab_dir(lab_env)
    cloud_id = json.loads((lab / "state.json").read_text())["cloud_id"]
    image = podman("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "localhost/monoscape/debian-systemd").stdout
    orphan = str(uuid.uuid4())
    labels = ["--label", f"monoscape.lab.dir={lab}", "--label", f"monoscape.lab.cloud={cloud_id}"]
    net = f"monoscape-lab-test{orphan[:6]}"
    ctr = f"monoscape-lab-{orphan}"
    podman(
        "network", "create", "--subnet", "10.42.200.0/24", *labels, "--label", f"monoscape.lab.network={orphan}", net
    )
    podman(
        "create",
        "--name",
        ctr,
        *labels,
        "--label",
        "monoscape.lab.role=instance",
        "--label",
        f"monoscape.lab.instance={orphan}",
        "--network",
        "none",
        image.split()[0],
        "/sbin/init",
        check=True,
    )
    netns = f"mslab-vm-{orphan}"  # the network namespace of an instance deleted while nova-compute was down
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        proc = labctl("up")
        assert proc.returncode == 0, proc.stderr
        assert "removing leftovers: 1 containers, 1 networks, 0 images, 1 instance namespaces" in proc.stdout
        assert podman("container", "exists", ctr, check=False).returncode == 1
        assert podman("network", "exists", net, check=False).returncode == 1
        assert not pathlib.Path("/run/netns", netns).exists()
    finally:
        podman("rm", "-f", ctr, check=False)
        podman("network", "rm", "-f", net, check=False)
        subprocess.run(["ip", "netns", "delete", netns], check=False)


def test_the_lab_recovers_from_a_crash_of_all_its_processes(lab_project, lab_ssh, lab_admin, lab_external):
    """kill -9 every process of the lab (pid files stay behind): `labctl up`
    brings it back, and a server booted before is ACTIVE and reachable again at
    its floating IP (the network state is rebuilt from Neutron's)."""
    conn = lab_project.conn
    key = conn.compute.create_keypair(name=f"{lab_project.name}-key", public_key=lab_ssh.public_key)
    network, ssh_group = lab_project.operator_network(lab_external)
    server = conn.compute.create_server(
        name=f"{lab_project.name}-crash",
        image_id=conn.image.find_image("debian-12").id,
        flavor_id=conn.compute.find_flavor("m1.tiny").id,
        networks=[{"uuid": network.id}],
        security_groups=[{"name": ssh_group.name}],
        key_name=key.name,
    )
    server = conn.compute.wait_for_server(server, interval=0.3, wait=180)
    ip = lab_project.floating_ip(server, lab_external)
    lab_ssh.pin(conn, server)
    lab_ssh.wait(ip, server.id)
    deadline = time.monotonic() + 60  # settled: no task running, power state recorded
    while time.monotonic() < deadline:
        server = conn.compute.get_server(server.id)
        if server.task_state is None and server.power_state == 1:
            break
        time.sleep(0.5)
    time.sleep(2)
    power_cut()
    time.sleep(1)
    assert all(not left for _, left in status().values())
    started = time.monotonic()
    proc = labctl("up", timeout=600)
    assert proc.returncode == 0, proc.stderr
    print(f"recovery after a crash: {time.monotonic() - started:.1f}s")
    assert_all_up()
    assert conn.compute.get_server(server.id).status == "ACTIVE"
    lab_ssh.wait(ip, server.id, timeout=60)
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=0.3, wait=60)
