"""Callback plugin monoscape.paas.task_timings: where a run's time goes."""

from __future__ import annotations

DOCUMENTATION = r"""
name: task_timings
type: aggregate
short_description: Wall time of every task and play of a run, the slowest printed at the end
description:
  - Measures the wall time of each task, from its start to the start of the next task or the end of
    the play (all hosts together, as the linear strategy runs them), and of each play.
  - At the end of the run prints the slowest tasks (O(top)) with their share of the run, and writes
    every measurement as JSON when O(output) is set. A measurement for benchmarks
    (C(make bench-site)); it changes nothing and is off unless enabled.
  - Enable with C(ANSIBLE_CALLBACKS_ENABLED=monoscape.paas.task_timings).
options:
  output:
    description: File the measurements are written to as JSON (C(run_s), C(plays), C(tasks)); none when empty.
    type: str
    default: ""
    env:
      - name: MONOSCAPE_TASK_TIMINGS
  top:
    description: How many of the slowest tasks to print; 0 prints none.
    type: int
    default: 15
    env:
      - name: MONOSCAPE_TASK_TIMINGS_TOP
"""

import json
import pathlib
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "monoscape.paas.task_timings"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._started = time.monotonic()
        self._play = None  # [name, start]
        self._task = None  # [play name, task name, path, start]
        self.plays = []
        self.tasks = []

    def _end_task(self, now):
        if self._task is not None:
            play, name, path, start = self._task
            self.tasks.append({"play": play, "task": name, "path": path, "seconds": round(now - start, 3)})
            self._task = None

    def _end_play(self, now):
        self._end_task(now)
        if self._play is not None:
            name, start = self._play
            self.plays.append({"play": name, "seconds": round(now - start, 3)})
            self._play = None

    def v2_playbook_on_play_start(self, play):
        now = time.monotonic()
        self._end_play(now)
        self._play = [play.get_name().strip(), now]

    def _start_task(self, task):
        now = time.monotonic()
        self._end_task(now)
        play = self._play[0] if self._play else ""
        self._task = [play, task.get_name().strip(), task.get_path() or "", now]

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start_task(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start_task(task)

    def v2_playbook_on_stats(self, stats):
        now = time.monotonic()
        self._end_play(now)
        run = now - self._started
        output = self.get_option("output")
        if output:
            path = pathlib.Path(output).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            document = {"run_s": round(run, 3), "plays": self.plays, "tasks": self.tasks}
            path.write_text(json.dumps(document, indent=2) + "\n")
        top = self.get_option("top")
        if top <= 0 or not self.tasks:
            return
        self._display.banner(f"TASK TIMINGS (the {top} slowest of {len(self.tasks)}, run {run:.1f} s)")
        for entry in sorted(self.tasks, key=lambda t: t["seconds"], reverse=True)[:top]:
            share = 100 * entry["seconds"] / run if run else 0
            self._display.display(f"{entry['seconds']:7.2f} s {share:4.1f} %  {entry['play']} | {entry['task']}")
