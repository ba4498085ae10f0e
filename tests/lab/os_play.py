"""Run monoscape.paas os_* tasks through the real `ansible-playbook` on the control
node and hand back what each task registered (no module is imported here)."""

import json
import os
import pathlib
import subprocess
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


class Play:
    """``play(cloud, [(name, task), ...])`` runs the tasks in one playbook with
    ``module_defaults: group/monoscape.paas.openstack: {cloud: ...}``; each task is
    registered under its name with ``ignore_errors`` (a test decides what must
    fail). A task may carry its own ``check_mode``. Returns ``(results, proc)``."""

    def __init__(self, workdir, clouds_yaml):
        self.workdir = pathlib.Path(workdir)
        self.env = dict(
            os.environ,
            OS_CLIENT_CONFIG_FILE=str(clouds_yaml),
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            NO_COLOR="1",
            PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
        )
        self.count = 0
        self.timings = []

    def __call__(self, cloud, tasks, check_mode=False, verbose=True):
        self.count += 1
        results = self.workdir / f"results-{self.count}.json"
        body = []
        for name, task in tasks:
            body.append({"name": name, **task, "register": name, "ignore_errors": True})
        names = ", ".join(f"'{name}': {name}" for name, _ in tasks)
        body.append(
            {
                "name": "save the results",
                "ansible.builtin.copy": {"dest": str(results), "content": "{{ {" + names + "} | to_json }}"},
                "check_mode": False,
                "no_log": True,
            }
        )
        play = [
            {
                "name": f"os modules {self.count}",
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "check_mode": check_mode,
                "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                "module_defaults": {"group/monoscape.paas.openstack": {"cloud": cloud, "timeout": 300}},
                "tasks": body,
            }
        ]
        path = self.workdir / f"play-{self.count}.yml"
        path.write_text(yaml.safe_dump(play, sort_keys=False))
        cmd = ["ansible-playbook", "-i", "localhost,", str(path)] + (["-v"] if verbose else [])
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, check=False, timeout=1200)
        self.timings.append((self.count, [name for name, _ in tasks], round(time.monotonic() - started, 1)))
        if not results.exists():
            raise AssertionError(
                f"ansible-playbook did not finish ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return json.loads(results.read_text()), proc


def twice(tasks):
    """The tasks, then the same tasks again: names get _1 and _2."""
    return [(f"{name}_{run}", task) for run in (1, 2) for name, task in tasks]


def assert_idempotent(results, tasks):
    """Each task of ``twice(tasks)`` changed on the first run and not on the second."""
    for name, _ in tasks:
        ok(results[f"{name}_1"], changed=True)
        ok(results[f"{name}_2"], changed=False)


def ok(result, changed=None):
    """Assert a task succeeded (and changed or not); returns the result."""
    assert not result.get("failed"), result.get("msg")
    if changed is not None:
        assert result["changed"] is changed, result
    return result


def failed(result, *fragments):
    """Assert a task failed with every fragment in its message."""
    assert result.get("failed"), result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    return result
