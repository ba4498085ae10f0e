"""labctl: the lab cloud's one command (see lab/README.md)."""

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import time

from . import LabError, procs
from .cloud import Lab
from .processes import now_utc
from .services import SERVICES
from .settings import ADMIN_CLOUD, Settings

USAGE = """labctl up [--no-install] | down [--purge] | status | wait [--timeout S] | env
       | rss | logs [SERVICE] [-n N] | restart SERVICE... | openstack ARGS..."""


def cmd_up(lab, args):
    lab.up(do_install=not args.no_install)
    return 0


def cmd_down(lab, args):
    lab.down(purge=args.purge)
    return 0


def print_status(lab):
    rows = lab.status()
    width = max(len(svc.name) for svc in SERVICES)
    for svc, pids, ok in rows:
        where = f"127.0.0.1:{svc.port}" if svc.port else svc.host
        state = "up" if ok else ("NOT ANSWERING" if pids else "down")
        print(f"{svc.name:<{width}}  {state:<13}  {where:<15}  pids {','.join(map(str, pids)) or '-'}")
    up = sum(ok for _, _, ok in rows)
    print(f"{up}/{len(rows)} services up; state {lab.s.lab_dir}")
    return up, len(rows)


def cmd_status(lab, args):
    up, total = print_status(lab)
    return 0 if up == total else 3


def cmd_wait(lab, args):
    """Wait for an `up` in progress (e.g. started in the background), then
    check that every service answers. Fails within seconds if no `up` runs and
    the lab is down."""
    deadline = time.monotonic() + args.timeout
    grace = time.monotonic() + min(10, args.timeout)  # an `up` started just before may not hold the lock yet
    while True:
        while lab.busy():
            if time.monotonic() > deadline:
                msg = f"`labctl up` still running after {args.timeout}s; see {lab.s.labctl_log}"
                print(f"labctl: error: {msg}", file=sys.stderr)
                return 1
            time.sleep(1)
        rows = lab.status()
        down = [svc.name for svc, _, ok in rows if not ok]
        if not down or time.monotonic() > grace:
            break
        time.sleep(1)
    if down or not lab.s.clouds_yaml.exists():
        last = ""
        if lab.s.labctl_log.exists():
            lines = [ln for ln in lab.s.labctl_log.read_text(errors="replace").splitlines() if ln.strip()]
            last = f" (last: {lines[-1][20:]})" if lines else ""
        what = ", ".join(down) if down else "no clouds.yaml"
        print(
            f"labctl: error: the lab is not up ({what}){last}; run `lab/labctl up`; see {lab.s.labctl_log}",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_env(lab, args):
    s = lab.s
    values = {
        "OS_CLIENT_CONFIG_FILE": s.clouds_yaml,
        "OS_CLOUD": ADMIN_CLOUD,
        "MONOSCAPE_LAB_DIR": s.lab_dir,
        "MONOSCAPE_LAB_VENV": s.venv,
        "MONOSCAPE_LAB_OPENSTACK": s.venv_bin("openstack"),
        "CONTAINERS_CONF": s.containers_conf,
    }
    for key, value in values.items():
        print(f"export {key}={shlex.quote(str(value))}")
    return 0


def cmd_rss(lab, args):
    by_service = {}
    for pid, name in procs.lab_processes(lab.s.lab_dir).items():
        by_service.setdefault(name, []).append(pid)
    total = 0
    for svc in SERVICES:
        kib = procs.rss_kib(by_service.get(svc.name, []))
        total += kib
        print(f"{svc.name:<20} {kib / 1024:8.1f} MiB  ({len(by_service.get(svc.name, []))} processes)")
    containers = [c["name"] for c in lab.podman.containers() if c["state"] == "running"]
    print(f"{'total':<20} {total / 1024:8.1f} MiB  ({sum(map(len, by_service.values()))} processes)")
    if containers:
        out = lab.podman.run("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *containers).stdout
        print(f"instance containers: {len(containers)}")
        print(out.rstrip())
    return 0


def cmd_logs(lab, args):
    if not args.service:
        for path in sorted(lab.s.logs.glob("*.log")):
            print(f"{path.stat().st_size:>10}  {path}")
        return 0
    path = lab.s.log(args.service)
    if not path.exists():
        print(f"labctl: error: no log {path}", file=sys.stderr)
        return 1
    return subprocess.run(["tail", "-n", str(args.lines), str(path)], check=False).returncode


def cmd_restart(lab, args):
    names = args.services
    unknown = [n for n in names if n not in {s.name for s in SERVICES}]
    if unknown:
        print(f"labctl: error: unknown service {' '.join(unknown)}", file=sys.stderr)
        return 2
    with lab.lock("restart"):
        lab.stop(names)
        since = now_utc()
        started = {svc.name: lab.start(svc) for svc in SERVICES if svc.name in names}
        lab.wait(started, since=since)
    return 0


def cmd_openstack(lab, args):
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(lab.s.clouds_yaml))
    env.setdefault("OS_CLOUD", ADMIN_CLOUD)
    argv = [str(lab.s.venv_bin("openstack")), *args.args]
    os.execve(argv[0], argv, env)  # noqa: S606 - replaces labctl by the venv CLI, argument list
    return 1  # not reached


def parser():
    p = argparse.ArgumentParser(prog="labctl", description="The lab OpenStack cloud.", usage=USAGE)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the lab (installs and initialises on first use); idempotent")
    up.add_argument("--no-install", action="store_true", help="fail instead of installing a missing prerequisite")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the lab's processes and its instance containers")
    down.add_argument("--purge", action="store_true", help="also remove containers, networks, images and the state")
    down.set_defaults(func=cmd_down)
    sub.add_parser("status", help="which services answer (exit 3 if any does not)").set_defaults(func=cmd_status)
    wait = sub.add_parser("wait", help="wait for an `up` in progress, then require every service up")
    wait.add_argument("--timeout", type=float, default=1800)
    wait.set_defaults(func=cmd_wait)
    sub.add_parser("env", help='shell exports for the lab (eval "$(labctl env)")').set_defaults(func=cmd_env)
    sub.add_parser("rss", help="memory of the lab's processes and instances").set_defaults(func=cmd_rss)
    logs = sub.add_parser("logs", help="list the log files, or tail one service's log")
    logs.add_argument("service", nargs="?")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.set_defaults(func=cmd_logs)
    restart = sub.add_parser("restart", help="restart some services")
    restart.add_argument("services", nargs="+")
    restart.set_defaults(func=cmd_restart)
    osc = sub.add_parser("openstack", help="the lab venv's openstack CLI as the lab admin")
    osc.add_argument("args", nargs=argparse.REMAINDER)
    osc.set_defaults(func=cmd_openstack)
    return p


def echo(line):
    """Progress goes to stdout; a closed stdout (`labctl up | head`) must not
    interrupt the work: the line is in labctl.log anyway."""
    try:
        print(line, flush=True)
    except (BrokenPipeError, ValueError):
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        lab = Lab(Settings.from_env(), echo=echo)
        return args.func(lab, args)
    except LabError as err:
        print(f"labctl: error: {err.one_line()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("labctl: interrupted", file=sys.stderr)
        return 130
