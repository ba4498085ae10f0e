"""Processes of the lab: start with a marker, find by marker, stop by pid.

Every process the lab starts carries two environment variables,
MONOSCAPE_LAB_DIR=<state dir> and MONOSCAPE_LAB_SERVICE=<name>, and its
children inherit them. So labctl finds exactly its own processes (also the
orphans of a crash, whatever their pid files say) and never touches anything
else: a stale pid file whose pid now belongs to another program is ignored.
"""

import contextlib
import os
import pathlib
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

MARK_DIR = "MONOSCAPE_LAB_DIR"
MARK_SERVICE = "MONOSCAPE_LAB_SERVICE"
# never signalled even if marked: podman's container monitors (the lab's podman
# driver strips the marker, this is a second guard)
SPARE = {"conmon"}


def proc_environ(pid, proc=pathlib.Path("/proc")):
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def proc_comm(pid, proc=pathlib.Path("/proc")):
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def proc_cmdline(pid, proc=pathlib.Path("/proc")):
    try:
        return (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def lab_processes(lab_dir, service=None, proc=pathlib.Path("/proc")):
    """{pid: service} of the live processes marked with this lab dir."""
    found = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        env = proc_environ(entry.name, proc)
        if env.get(MARK_DIR) != str(lab_dir) or MARK_SERVICE not in env:
            continue
        if service is not None and env[MARK_SERVICE] != service:
            continue
        if proc_comm(entry.name, proc) in SPARE:
            continue
        found[int(entry.name)] = env[MARK_SERVICE]
    return found


def read_pid(pid_file):
    try:
        return int(pathlib.Path(pid_file).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_is_service(pid, lab_dir, service, proc=pathlib.Path("/proc")):
    """Is `pid` alive and one of this lab's processes of `service`?"""
    if pid is None:
        return False
    env = proc_environ(pid, proc)
    return env.get(MARK_DIR) == str(lab_dir) and env.get(MARK_SERVICE) == service


def spawn(argv, *, lab_dir, service, log, env, cwd, settle=5.0):
    """Start a daemon in its own session, marked, output appended to `log`. Returns once
    /proc shows the marker (or the process has ended, or after `settle` seconds): Popen
    returns when execve closes the error pipe, before the kernel has set up the new
    environment, and until then lab_processes() and stop_processes() would miss it."""
    full_env = dict(env)
    full_env[MARK_DIR] = str(lab_dir)
    full_env[MARK_SERVICE] = service
    with open(log, "ab") as out:
        out.write(f"\n===== {time.strftime('%F %T')} labctl starts {service}: {' '.join(map(str, argv))}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=full_env,
            cwd=cwd,
        )
    deadline = time.monotonic() + settle
    while proc_environ(proc.pid).get(MARK_DIR) != str(lab_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def signal_pids(pids, sig):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_processes(lab_dir, service=None, grace=15.0):
    """TERM the lab's processes (of `service`, or all of them), KILL what is left
    after `grace` seconds. Returns {pid: service} of what was found."""
    pids = lab_processes(lab_dir, service)
    if not pids:
        return {}
    signal_pids(list(pids), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return pids
        time.sleep(0.1)
    # whatever ignored TERM, and children started meanwhile: KILL (still by marker)
    signal_pids(list(lab_processes(lab_dir, service)), signal.SIGKILL)
    time.sleep(0.2)
    return pids


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies count as gone
    with contextlib.suppress(OSError):
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


# ---------------------------------------------------------------- ports
def port_open(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_SS_PID = re.compile(r'\("([^"]*)",pid=(\d+)')


def parse_ss_listeners(text):
    """`ss -ltnpH` output -> [(local address, port, [(comm, pid), ...])]."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        local = fields[3]
        addr, _, port = local.rpartition(":")
        if not port.isdigit():
            continue
        rows.append((addr, int(port), [(c, int(p)) for c, p in _SS_PID.findall(line)]))
    return rows


def port_owners(port):
    """[(comm, pid)] of the processes listening on TCP `port` (any address)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=False).stdout
    owners = []
    for _addr, p, procs in parse_ss_listeners(out):
        if p == port:
            owners.extend(procs)
    return owners


def http_answers(url, timeout=2.0):
    """Any HTTP response (even 401 or 300) means the server is up."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - fixed http://127.0.0.1 URLs
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def rss_kib(pids):
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total
