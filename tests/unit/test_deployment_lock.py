"""monoscape.paas.deployment_lock: one run at a time. The holders are real processes
(`sleep`, started and ended by the tests; a record edited to look like a reused pid,
a restarted machine or another host), the lock a real file under an flock: free ->
taken; the same holder -> unchanged; a live other holder -> fails at once naming it;
waiting; stale locks taken over; check mode writes nothing. Then two real
ansible-playbook runs on localhost."""

import json
import os
import pathlib
import re
import stat
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest

from ansible_collections.monoscape.paas.plugins.action import deployment_lock as action
from ansible_collections.monoscape.paas.plugins.plugin_utils import deployment_lock as lock

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLAYBOOKS = ["/srv/bundle/playbooks/site.yml"]


@pytest.fixture
def path(tmp_path):
    """The lock file, in a folder that does not exist yet."""
    return str(tmp_path / "config" / "acme.lock")


@pytest.fixture
def me():
    """This test process as the run asking."""
    return lock.record_of(os.getpid(), PLAYBOOKS)


@pytest.fixture
def spawn():
    """Start `sleep` processes (ended after the test): spawn() -> Popen."""
    started = []

    def _spawn(seconds=60):
        proc = subprocess.Popen(["sleep", str(seconds)])
        started.append(proc)
        return proc

    yield _spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def holder(proc, playbooks=("/srv/bundle/playbooks/deploy_app.yml",)):
    return lock.record_of(proc.pid, list(playbooks))


def put(path, record):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lock.write(path, record)


def on_disk(path):
    with open(path) as handle:
        return json.load(handle)


def one_line(text):
    return " ".join(text.split())


# ---------------------------------------------------------------------- taking it


def test_free_lock_is_taken_0600_in_a_0700_folder(path, me):
    result = lock.acquire(path, me)
    assert result["outcome"] == "taken"
    assert on_disk(path) == me
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert os.listdir(os.path.dirname(path)) == ["acme.lock"], "no temporary file is left"


def test_the_record_names_the_process_its_start_and_the_playbooks(me):
    with open(f"/proc/{os.getpid()}/stat") as handle:
        ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
    assert me["pid"] == os.getpid()
    assert me["start_ticks"] == ticks
    assert me["playbooks"] == PLAYBOOKS
    assert me["started_at"].endswith("Z")
    assert set(lock.RECORD_KEYS) <= set(me)


def test_the_same_holder_takes_it_again_without_writing(path, me):
    lock.acquire(path, me)
    before = os.stat(path)
    result = lock.acquire(path, me)
    assert result["outcome"] == "held"
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    assert os.stat(path).st_ino == before.st_ino


def test_a_live_other_run_fails_at_once_naming_it(path, me, spawn):
    other = holder(spawn())
    put(path, other)
    started = time.monotonic()
    with pytest.raises(lock.LockError) as failed:
        lock.acquire(path, me)
    assert time.monotonic() - started < 1
    msg = str(failed.value)
    assert "\n" not in msg
    assert f"pid {other['pid']} (ansible-playbook /srv/bundle/playbooks/deploy_app.yml)" in msg
    assert f"user {other['user']} on {other['host']}, started {other['started_at']} (" in msg
    assert f"lock file {path}" in msg
    assert "-e monoscape_lock_wait=SECONDS" in msg
    assert failed.value.holder == other
    assert on_disk(path) == other, "the other run's lock is not touched"


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({}, "has ended"),  # the process exited
        ({"start_ticks": -1}, "the pid now belongs to another process"),  # pid reused
        ({"boot_id": "00000000-0000-0000-0000-000000000000"}, "this machine was restarted"),
    ],
    ids=["dead-pid", "reused-pid", "rebooted"],
)
def test_a_stale_lock_is_taken_over(path, me, spawn, edit, reason):
    proc = spawn()
    stale = dict(holder(proc), **edit)
    if not edit:
        proc.kill()
        proc.wait()
    put(path, stale)
    result = lock.acquire(path, me)
    assert result["outcome"] == "taken_over"
    assert result["previous"] == stale
    assert f"took over the deployment lock {path} from pid {stale['pid']}" in result["msg"]
    assert reason in result["msg"]
    assert on_disk(path) == me


def test_a_zombie_holder_has_ended(path, me):
    """A run that has exited but was not reaped yet (its parent has not waited) is over."""
    proc = subprocess.Popen(["true"])
    try:
        other = lock.record_of(proc.pid, PLAYBOOKS)
        deadline = time.monotonic() + 10
        while lock.proc_stat(proc.pid)[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        put(path, other)
        assert lock.acquire(path, me)["outcome"] == "taken_over"
    finally:
        proc.wait()


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        ({"host": "ctl-2", "boot_id": "00000000-0000-0000-0000-000000000000"}, "it runs on host ctl-2"),
        ({"pid_namespace": "pid:[1]"}, "another pid namespace"),
    ],
    ids=["other-host", "other-pid-namespace"],
)
def test_a_holder_that_cannot_be_checked_counts_as_held(path, me, spawn, edit, says):
    other = dict(holder(spawn()), **edit)
    put(path, other)
    with pytest.raises(lock.LockError) as failed:
        lock.acquire(path, me)
    msg = str(failed.value)
    assert says in msg
    assert f"if it does not, delete {path}" in msg
    assert on_disk(path) == other


def test_a_file_that_is_not_a_lock_is_refused(path, me):
    os.makedirs(os.path.dirname(path))
    pathlib.Path(path).write_text("pid=12\n")
    with pytest.raises(lock.LockError, match="is not a deployment lock this bundle wrote"):
        lock.acquire(path, me)
    assert pathlib.Path(path).read_text() == "pid=12\n"


# ---------------------------------------------------------------------- waiting


def test_waiting_takes_it_when_the_holder_ends(path, me, spawn):
    proc = spawn()
    put(path, holder(proc))
    threading.Timer(0.5, proc.kill).start()
    started = time.monotonic()
    result = lock.acquire(path, me, wait=10, poll=0.05)
    assert 0.4 < time.monotonic() - started < 5
    assert result["outcome"] == "taken_over"
    assert on_disk(path) == me


def test_waiting_fails_when_the_holder_keeps_it(path, me, spawn):
    other = holder(spawn())
    put(path, other)
    started = time.monotonic()
    with pytest.raises(lock.LockError) as failed:
        lock.acquire(path, me, wait=1, poll=0.05)
    assert 1 <= time.monotonic() - started < 3
    msg = str(failed.value)
    assert "still locked by another run after waiting 1 s" in msg
    assert f"pid {other['pid']} (ansible-playbook" in msg
    assert on_disk(path) == other


# ---------------------------------------------------------------------- check mode


def test_check_mode_makes_neither_the_folder_nor_the_file(path, me):
    result = lock.acquire(path, me, check_mode=True)
    assert result["outcome"] == "taken"
    assert result["msg"].startswith("would take")
    assert not os.path.exists(os.path.dirname(path))


def test_check_mode_leaves_a_stale_lock_as_it_is(path, me, spawn):
    proc = spawn()
    stale = holder(proc)
    proc.kill()
    proc.wait()
    put(path, stale)
    result = lock.acquire(path, me, check_mode=True)
    assert result["outcome"] == "taken_over"
    assert on_disk(path) == stale
    assert os.listdir(os.path.dirname(path)) == ["acme.lock"]


def test_check_mode_still_fails_when_another_run_holds_it(path, me, spawn):
    put(path, holder(spawn()))
    with pytest.raises(lock.LockError, match="locked by another run"):
        lock.acquire(path, me, check_mode=True)


# ---------------------------------------------------------------------- releasing


def test_release_removes_only_this_runs_lock(path, me, spawn):
    assert lock.release(path, me)["outcome"] == "not_held"
    lock.acquire(path, me)
    assert lock.release(path, me, check_mode=True)["outcome"] == "released"
    assert os.path.exists(path), "check mode removes nothing"
    assert lock.release(path, me)["outcome"] == "released"
    assert not os.path.exists(path)
    other = holder(spawn())
    put(path, other)
    with pytest.raises(lock.LockError, match=f"held by another run, not this one: pid {other['pid']}"):
        lock.release(path, me)
    assert on_disk(path) == other


# ---------------------------------------------------------------------- the action plugin


def run_action(args, check_mode=False):
    """The action plugin as ansible-core's TaskExecutor calls it."""
    task = SimpleNamespace(args=args, check_mode=check_mode, async_val=0, action="monoscape.paas.deployment_lock")
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
    plugin = action.ActionModule(task, connection, play_context=None, loader=None, templar=None)
    plugin._load_name = "monoscape.paas.deployment_lock"
    return plugin.run(task_vars={})


@pytest.fixture
def this_run(monkeypatch):
    """The action's holder: this test process (as if it were ansible-playbook)."""
    monkeypatch.setattr(lock, "run_pid", os.getpid)
    monkeypatch.setattr(action, "playbooks", lambda: PLAYBOOKS)


def test_action_never_reports_a_change(path, this_run, spawn):
    first = run_action({"path": path})
    assert (first["changed"], first["outcome"]) == (False, "taken")
    again = run_action({"path": path})
    assert (again["changed"], again["outcome"]) == (False, "held")
    proc = spawn()
    put(path, holder(proc))
    proc.kill()
    proc.wait()
    over = run_action({"path": path})
    assert (over["changed"], over["outcome"]) == (False, "taken_over")
    assert over["holder"]["pid"] == os.getpid()


def test_action_fails_naming_the_holder(path, this_run, spawn):
    other = holder(spawn())
    put(path, other)
    result = run_action({"path": path, "wait": 0})
    assert result["failed"] is True
    assert result["changed"] is False
    assert result["holder"] == other
    assert f"pid {other['pid']}" in result["msg"]


def test_action_check_mode_writes_nothing(path, this_run):
    result = run_action({"path": path}, check_mode=True)
    assert (result["changed"], result["outcome"]) == (False, "taken")
    assert not os.path.exists(os.path.dirname(path))
    released = run_action({"path": path, "state": "absent"}, check_mode=True)
    assert released["outcome"] == "not_held"
    assert not os.path.exists(os.path.dirname(path))


def test_action_refuses_bad_arguments(path, this_run):
    from ansible.errors import AnsibleActionFail  # noqa: PLC0415 - only this test raises it

    with pytest.raises(AnsibleActionFail, match="wait is -1"):
        run_action({"path": path, "wait": -1})
    with pytest.raises(AnsibleActionFail, match="is a folder"):
        run_action({"path": os.path.dirname(os.path.dirname(path))})
    with pytest.raises(AnsibleActionFail, match="Unsupported parameters"):
        run_action({"path": path, "timeout": 3})


def test_run_pid_is_the_nearest_ansible_playbook_above(monkeypatch):
    """In ansible-playbook the worker's parent is ansible-playbook (the real runs below
    check it). Should a process sit in between, the nearest ansible-playbook above is the
    holder; with none above, the parent. A made-up process tree (worker 300 -> 200 ->
    100 -> init), so the test does not depend on what runs pytest."""
    parents = {300: 200, 200: 100, 100: 1}
    commands = {100: ["/venv/bin/python3", "/venv/bin/ansible-playbook", "site.yml"]}
    monkeypatch.setattr(lock.os, "getppid", lambda: 200)
    monkeypatch.setattr(lock, "proc_stat", lambda pid: ("S", parents[pid], 0) if pid in parents else None)
    monkeypatch.setattr(lock, "cmdline", lambda pid: commands.get(pid, ["python3", "-m", "pytest"]))
    assert lock.run_pid() == 100
    commands[200] = ["/usr/local/bin/ansible-playbook", "deploy_app.yml"]
    assert lock.run_pid() == 200
    commands.clear()
    assert lock.run_pid() == 200
    parents[200] = 999  # an ancestor that is gone: the parent
    assert lock.run_pid() == 200


# ---------------------------------------------------------------------- two real runs

PLAYBOOK = """\
- name: Lock test
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Take the lock
      monoscape.paas.deployment_lock:
        path: "{{ lock_file }}"
        wait: "{{ lock_wait | default(0) }}"
      register: lock_test_result

    - name: Report it
      ansible.builtin.debug:
        msg: "outcome={{ lock_test_result.outcome }} waited={{ lock_test_result.waited }}"

    - name: Hold it until told
      ansible.builtin.wait_for:
        path: "{{ release_file }}"
        timeout: 60
        sleep: 1
      when: hold | default(false) | bool
"""


class Run:
    """ansible-playbook in the background, its output collected line by line."""

    def __init__(self, playbook, env, *extra):
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(playbook), *extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def finish(self, timeout=120):
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        self.proc.stdout.close()
        return rc, "".join(self.lines)


def children(pid):
    """pids of the processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = lock.proc_stat(entry)
            if stat is not None and stat[1] == pid:
                found.append(int(entry))
    return found


def until(condition, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_two_real_runs(tmp_path):
    """The first run holds the lock until told: a second fails at once naming it
    (the holder is its ansible-playbook process), a third with a wait takes the lock
    over once the first has ended."""
    playbook = tmp_path / "lock_test.yml"
    playbook.write_text(PLAYBOOK)
    lock_file, release_file = tmp_path / "state.lock", tmp_path / "release"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PATH=f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}")
    files = ["-e", f"lock_file={lock_file}", "-e", f"release_file={release_file}"]

    runs = [Run(playbook, env, *files, "-e", "hold=true")]
    first = runs[0]
    try:
        until(lambda: lock_file.exists() or first.proc.poll() is not None, what="the first run's lock")
        assert on_disk(lock_file)["pid"] == first.proc.pid, "the holder is the ansible-playbook process"
        third = Run(playbook, env, *files, "-e", "lock_wait=60")
        second = Run(playbook, env, *files)
        runs += [third, second]
        rc, output = second.finish()
        assert first.proc.poll() is None, "".join(first.lines)
        assert rc != 0, output
        assert f"pid {first.proc.pid} (ansible-playbook {playbook})" in one_line(output), output
        assert "-e monoscape_lock_wait=SECONDS" in one_line(output)
        # the third run is waiting for the lock (its worker runs the task): let the first one end
        until(lambda: any("TASK [Take the lock]" in line for line in third.lines), what="the third run's lock task")
        until(lambda: children(third.proc.pid), what="the third run's worker")
        time.sleep(1)
        release_file.touch()
        rc, output = first.finish()
        assert rc == 0, output
        assert "outcome=taken " in output
        rc, output = third.finish()
        assert rc == 0, output
        waited = re.search(r"outcome=taken_over waited=(\d+)", output)
        assert waited and int(waited.group(1)) >= 1, output
        assert on_disk(lock_file)["pid"] == third.proc.pid
    finally:
        release_file.touch()
        for run in runs:
            if run.proc.poll() is None:
                run.proc.kill()
            run.finish()
