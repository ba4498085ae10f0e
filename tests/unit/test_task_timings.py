"""The task_timings callback on a real ansible-playbook run (localhost, no services):
each task measured, the slowest printed first, the JSON written where asked."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

PLAYBOOK = """
- name: Timed
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Slow one
      ansible.builtin.wait_for:
        timeout: 1
    - name: Fast one
      ansible.builtin.debug:
        msg: hi
"""


def run(tmp_path, **env):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(tmp_path / "play.yml"),
        ],
        cwd=ROOT,
        env=dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="monoscape.paas.task_timings", **env),
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_task_measured_and_the_slowest_printed_first(tmp_path):
    output = tmp_path / "out" / "timings.json"
    proc = run(tmp_path, MONOSCAPE_TASK_TIMINGS=str(output))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = json.loads(output.read_text())
    tasks = {t["task"]: t["seconds"] for t in document["tasks"]}
    assert set(tasks) == {"Slow one", "Fast one"}
    assert tasks["Slow one"] >= 1.0 > tasks["Fast one"]
    assert [p["play"] for p in document["plays"]] == ["Timed"]
    assert document["run_s"] >= sum(tasks.values())
    printed = proc.stdout.split("TASK TIMINGS", 1)[1].splitlines()
    assert "Slow one" in printed[1] and "Fast one" in printed[2], printed


def test_nothing_written_or_printed_unless_asked(tmp_path):
    proc = run(tmp_path, MONOSCAPE_TASK_TIMINGS_TOP="0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TASK TIMINGS" not in proc.stdout
    assert list(tmp_path.iterdir()) == [tmp_path / "play.yml"]
