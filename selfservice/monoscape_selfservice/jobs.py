"""Jobs: every change to an app (deploy a release, roll back, stop, start, scale,
undeploy) is a job that the job worker (worker.py, its own systemd service) runs with
ansible-runner, executing the bundle's own playbooks against the nodes.

The queue is a SQLite table shared by the web app (which submits and reads jobs) and
the worker (which claims and finishes them):
- one job per app at a time: a second one for the same app is refused while one is
  queued or running (a unique index decides, not a read-then-write race);
- a job records who asked, what, when, its state (queued, running, succeeded,
  failed), its progress (tasks done of the expected total) and its log file;
- a job the worker was running when it stopped (a service restart, a crash, a
  reboot) is marked failed when the worker starts again - never lost, never run
  twice: the worker's processes end with its service (systemd's control group)."""

import json
import os
import sqlite3
import time

from .db import create, transaction

STATES = ("queued", "running", "succeeded", "failed")
ACTIVE = ("queued", "running")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    app TEXT NOT NULL,
    action TEXT NOT NULL,
    params TEXT NOT NULL,
    user TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    rc INTEGER,
    message TEXT NOT NULL DEFAULT '',
    tasks_done INTEGER NOT NULL DEFAULT 0,
    tasks_total INTEGER NOT NULL DEFAULT 0,
    worker TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_job_per_app ON jobs (tenant, app) WHERE state IN ('queued', 'running');
"""


class Busy(Exception):
    """The app has a job queued or running already."""

    def __init__(self, job):
        super().__init__(f"{job['tenant']}/{job['app']} has job {job['id']} ({job['action']}) {job['state']}")
        self.job = job


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def worker_identity(pid=None):
    """Who runs a job: pid, the process's start time and the boot (a pid is reused)."""
    pid = pid or os.getpid()
    try:
        with open(f"/proc/{pid}/stat") as handle:
            started = handle.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        started = ""
    return f"{boot_id()}:{pid}:{started}"


def alive(identity):
    boot, _, rest = identity.partition(":")
    pid, _, started = rest.partition(":")
    return boot == boot_id() and pid.isdigit() and worker_identity(int(pid)) == identity and bool(started)


class Jobs:
    def __init__(self, path, logs_dir, clock=time.time):
        self.path, self.logs_dir, self.clock = str(path), str(logs_dir), clock
        os.makedirs(self.logs_dir, mode=0o750, exist_ok=True)
        create(self.path, SCHEMA)

    @staticmethod
    def _job(row):
        if row is None:
            return None
        job = dict(row)
        job["params"] = json.loads(job["params"])
        return job

    def log_path(self, job_id):
        return os.path.join(self.logs_dir, f"{int(job_id)}.log")

    def submit(self, tenant, app, action, params, user):
        """Queue a job; raises Busy when the app has one queued or running."""
        with transaction(self.path) as db:
            try:
                cursor = db.execute(
                    "INSERT INTO jobs (tenant, app, action, params, user, state, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (tenant, app, action, json.dumps(params, sort_keys=True), user, "queued", self.clock()),
                )
            except sqlite3.IntegrityError:
                active = db.execute(
                    "SELECT * FROM jobs WHERE tenant = ? AND app = ? AND state IN ('queued', 'running')", (tenant, app)
                ).fetchone()
                raise Busy(self._job(active)) from None
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (cursor.lastrowid,)).fetchone())

    def get(self, job_id):
        with transaction(self.path) as db:
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def list(self, tenant=None, app=None, limit=50):
        query, args = "SELECT * FROM jobs", []
        if tenant is not None:
            query, args = query + " WHERE tenant = ? AND app = ?", [tenant, app]
        with transaction(self.path) as db:
            rows = db.execute(query + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
        return [self._job(row) for row in rows]

    def claim(self, worker):
        """The oldest queued job, now running by `worker` (None when the queue is empty)."""
        with transaction(self.path) as db:
            row = db.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', started = ?, worker = ? WHERE id = ?",
                (self.clock(), worker, row["id"]),
            )
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())

    def progress(self, job_id, done, total):
        with transaction(self.path) as db:
            db.execute("UPDATE jobs SET tasks_done = ?, tasks_total = ? WHERE id = ?", (done, total, job_id))

    def finish(self, job_id, rc, message=""):
        state = "succeeded" if rc == 0 else "failed"
        with transaction(self.path) as db:
            db.execute(
                "UPDATE jobs SET state = ?, rc = ?, ended = ?, message = ? WHERE id = ? AND state = 'running'",
                (state, rc, self.clock(), message, job_id),
            )
        return self.get(job_id)

    def recover(self, is_alive=alive):
        """Mark failed every running job whose worker is gone (a restart cut it); returns them."""
        with transaction(self.path) as db:
            rows = db.execute("SELECT * FROM jobs WHERE state = 'running'").fetchall()
            cut = [row for row in rows if not is_alive(row["worker"])]
            for row in cut:
                db.execute(
                    "UPDATE jobs SET state = 'failed', ended = ?, message = ? WHERE id = ?",
                    (self.clock(), "cut by a restart of the job service before it ended: run it again", row["id"]),
                )
        return [self.get(row["id"]) for row in cut]

    def expected_tasks(self, tenant, app, action):
        """The task count of the last successful job of this action (the progress bar's total;
        0 when there is none yet)."""
        with transaction(self.path) as db:
            row = db.execute(
                "SELECT tasks_done FROM jobs WHERE action = ? AND state = 'succeeded' AND tenant = ? AND app = ?"
                " ORDER BY id DESC LIMIT 1",
                (action, tenant, app),
            ).fetchone()
            if row is None:
                row = db.execute(
                    "SELECT tasks_done FROM jobs WHERE action = ? AND state = 'succeeded' ORDER BY id DESC LIMIT 1",
                    (action,),
                ).fetchone()
        return row[0] if row else 0
