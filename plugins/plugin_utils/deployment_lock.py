# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""The deployment lock of monoscape.paas.deployment_lock: one run at a time.

The lock is a JSON file on the control node naming the process that holds it: the
ansible-playbook process of a run (pid, and its start time in clock ticks since boot
so that a reused pid is not taken for the holder), the machine (boot id, pid
namespace, host name), the user, the playbooks and when the run started. Nothing
releases it at the end of a run: it goes stale when that process is gone, and the
next run takes it over. Reads and writes happen under an flock on the lock file's
folder; the file is replaced atomically (a 0600 temporary file renamed over it).

No Ansible imports: the action plugin (plugins/action/deployment_lock.py) passes in
who is asking."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pwd
import socket
import time
import typing

from ansible_collections.monoscape.paas.plugins.module_utils.locking import locked, write_private

FORMAT = 1
POLL = 1.0  # seconds between two looks at a lock held by another run
WAIT_HINT = "-e monoscape_lock_wait=SECONDS"
RECORD_KEYS = ("pid", "start_ticks", "boot_id", "pid_namespace", "host", "user", "playbooks", "started_at")


class LockError(Exception):
    """The lock cannot be taken or released; the message says why and what to do."""

    def __init__(self, msg, holder=None):
        super().__init__(msg)
        self.holder = holder


# ---------------------------------------------------------------------- processes


def proc_stat(pid):
    """(state, ppid, start_ticks) of a process from /proc/<pid>/stat, or None if there is
    no such process. The command name (field 2) may hold spaces and parentheses: the
    fields are counted after its last ')'."""
    try:
        with open(f"/proc/{int(pid)}/stat") as handle:
            text = handle.read()
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state), fields[1] field 4 (ppid), fields[19] field 22 (starttime)
    return fields[0], int(fields[1]), int(fields[19])


def cmdline(pid):
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as handle:
            raw = handle.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_ansible_playbook(pid):
    """True if the process runs ansible-playbook (the script, or python running it)."""
    return any(os.path.basename(arg).startswith("ansible-playbook") for arg in cmdline(pid)[:2])


def run_pid():
    """The ansible-playbook process of the run asking. ansible-core forks its workers from
    that process (ansible/utils/multiprocessing.py: the fork start method), so it is the
    worker's parent. Should a process ever sit between them, the nearest ancestor running
    ansible-playbook is taken; failing that, the parent."""
    parent = os.getppid()
    pid = parent
    while pid > 1:
        if is_ansible_playbook(pid):
            return pid
        stat = proc_stat(pid)
        if stat is None:
            break
        pid = stat[1]
    return parent


def boot_id():
    with open("/proc/sys/kernel/random/boot_id") as handle:
        return handle.read().strip()


def pid_namespace():
    """The pid namespace of this process (pids only mean something inside one)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def boot_time():
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith("btime "):
                return int(line.split()[1])
    raise OSError("no btime in /proc/stat")


def iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_name():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def record_of(pid, playbooks):
    """The lock record naming process ``pid`` (a live process) as the holder."""
    stat = proc_stat(pid)
    if stat is None:
        raise LockError(f"process {pid} (the run asking for the lock) is not running")
    started = boot_time() + stat[2] / os.sysconf("SC_CLK_TCK")
    return {
        "format": FORMAT,
        "pid": int(pid),
        "start_ticks": stat[2],
        "boot_id": boot_id(),
        "pid_namespace": pid_namespace(),
        "host": socket.gethostname(),
        "user": user_name(),
        "playbooks": list(playbooks),
        "started_at": iso(started),
    }


def same_holder(record, me):
    return all(record.get(key) == me[key] for key in ("pid", "start_ticks", "boot_id", "pid_namespace"))


def liveness(record, me):
    """(alive, reason) of the holder a record names: alive True (its process runs), False
    (stale: the reason says why) or None (it cannot be checked from here: another machine,
    or another pid namespace)."""
    pid = record["pid"]
    if record["boot_id"] != me["boot_id"]:
        if record["host"] == me["host"]:
            return False, f"this machine was restarted since pid {pid} took it"
        return None, f"it runs on host {record['host']}, not on this one ({me['host']})"
    if record["pid_namespace"] != me["pid_namespace"]:
        return None, f"it runs in another pid namespace ({record['pid_namespace']}: a container?)"
    stat = proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False, f"pid {pid} has ended"
    if stat[2] != record["start_ticks"]:
        return False, f"pid {pid} has ended (the pid now belongs to another process)"
    return True, f"pid {pid} is running"


def ago(seconds):
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def describe(record):
    """pid 4242 (ansible-playbook /srv/bundle/playbooks/site.yml), user alice on ctl-1,
    started 2025-12-06T19:50:00Z (3 min ago)"""
    playbooks = " ".join(record.get("playbooks") or []) or "(playbook unknown)"
    started = record.get("started_at", "?")
    with contextlib.suppress(ValueError):
        then = datetime.datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
        started += f" ({ago(time.time() - then.timestamp())} ago)"
    return (
        f"pid {record['pid']} (ansible-playbook {playbooks}), user {record.get('user', '?')}"
        f" on {record.get('host', '?')}, started {started}"
    )


# ---------------------------------------------------------------------- the lock file


def read(path):
    """The record in the lock file, or None when there is none."""
    try:
        with open(path) as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LockError(f"cannot read the deployment lock {path}: {exc.strerror}") from exc
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not all(k in record for k in RECORD_KEYS):
        raise LockError(
            f"{path} is not a deployment lock this bundle wrote (format {FORMAT}); if no run is going, delete it"
        )
    return record


def write(path, record):
    """Replace the lock file atomically (0600 temporary file in the same folder, renamed)."""
    write_private(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def held_message(path, holder, reason, alive, waited):
    where = (
        ""
        if alive
        else f" ({reason}: whether that run still goes cannot be checked from here - if it does not, delete {path})"
    )
    if waited:
        return (
            f"the deployment is still locked by another run after waiting {waited} s: {describe(holder)}{where};"
            f" lock file {path}. Let that run finish, or wait longer ({WAIT_HINT})"
        )
    return (
        f"the deployment is locked by another run: {describe(holder)}{where}; lock file {path}."
        f" Let that run finish, or wait for it ({WAIT_HINT})"
    )


class Busy(typing.NamedTuple):
    """Another run holds the lock: its record, whether it runs (True, or None: cannot be
    checked from here) and why."""

    holder: dict
    alive: bool | None
    reason: str


def _try_take(path, me, check_mode):
    """One look: the outcome when the lock is free, stale or this run's (taken, unless in
    check mode), or Busy when another run holds it."""
    directory = os.path.dirname(path)
    verb = "would take" if check_mode else "took"
    taken = {"outcome": "taken", "holder": me, "msg": f"{verb} the deployment lock {path}"}
    if not os.path.isdir(directory):
        if check_mode:  # never made in check mode; nobody holds a lock in a folder that does not exist
            return taken
        os.makedirs(directory, mode=0o700, exist_ok=True)
    with locked(directory):
        current = read(path)
        if current is None:
            if not check_mode:
                write(path, me)
            return taken
        if same_holder(current, me):
            return {"outcome": "held", "holder": current, "msg": f"this run holds the deployment lock {path} already"}
        alive, reason = liveness(current, me)
        if alive is not False:
            return Busy(current, alive, reason)
        if not check_mode:
            write(path, me)
        msg = f"{verb} over the deployment lock {path} from {describe(current)}: {reason}"
        return {"outcome": "taken_over", "holder": me, "previous": current, "msg": msg}


def acquire(path, me, *, wait=0, check_mode=False, poll=POLL, sleep=time.sleep, monotonic=time.monotonic):
    """Take the lock at ``path`` for the holder ``me`` (record_of), waiting up to ``wait``
    seconds for another live run to end. Returns the outcome (taken, taken_over, held);
    raises LockError naming the holder when another run keeps it."""
    started = monotonic()
    while True:
        look = _try_take(path, me, check_mode)
        waited = round(monotonic() - started)
        if not isinstance(look, Busy):
            if waited:
                look["msg"] += f" (after waiting {waited} s)"
            return dict(look, path=path, waited=waited)
        remaining = wait - (monotonic() - started)
        if remaining <= 0:
            raise LockError(held_message(path, look.holder, look.reason, look.alive, waited), holder=look.holder)
        sleep(min(poll, remaining))


def release(path, me, *, check_mode=False):
    """Remove the lock at ``path`` if ``me`` holds it. A lock that is free or stale is left
    as it is (outcome not_held); one held by another run is not released (LockError)."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        return {"outcome": "not_held", "path": path, "waited": 0, "msg": f"no deployment lock at {path}"}
    verb = "would release" if check_mode else "released"
    with locked(directory):
        current = read(path)
        if current is None:
            return {"outcome": "not_held", "path": path, "waited": 0, "msg": f"no deployment lock at {path}"}
        if same_holder(current, me):
            if not check_mode:
                os.unlink(path)
            return {"outcome": "released", "path": path, "waited": 0, "msg": f"{verb} the deployment lock {path}"}
        alive, reason = liveness(current, me)
        if alive is False:
            msg = f"this run does not hold the deployment lock {path} (left to the next run: {reason})"
            return {"outcome": "not_held", "path": path, "holder": current, "waited": 0, "msg": msg}
    raise LockError(
        f"the deployment lock {path} is held by another run, not this one: {describe(current)}; not released",
        holder=current,
    )
