"""Self-service jobs: the queue (one job per app at a time, decided by the database),
the worker (the playbook's output in the job's log as it comes, progress, the result
and the audit), a restart that cuts a job (failed, never lost or run twice), and the
HTTP API that submits and follows them. The playbook run is a stand-in here (the
runner function); the lab tests run the real playbooks with ansible-runner."""

import json
import os
import pathlib

import pytest
from monoscape_selfservice import app as webapp
from monoscape_selfservice import worker
from monoscape_selfservice.audit import AuditLog
from monoscape_selfservice.jobs import Busy, Jobs, worker_identity

from . import zip_corpus as zc
from .selfservice_helpers import api_login, audit


@pytest.fixture
def jobs(tmp_path, clock):
    return Jobs(tmp_path / "jobs.sqlite", tmp_path / "logs", clock=clock)


def fake_runner(rc=0, lines=("PLAY [Deploy]", "TASK [one]", "TASK [two]"), seen=None):
    def run(playbook, variables, settings, on_event, private_dir):
        if seen is not None:
            seen.append((playbook, variables, private_dir))
        for line in lines:
            kind = "playbook_on_task_start" if line.startswith("TASK") else "playbook_on_play_start"
            on_event({"event": kind, "stdout": line})
        return rc

    return run


@pytest.fixture
def member(app):
    client = app.test_client()
    return client, api_login(client, "dev").json["csrf_token"]


def upload(client, csrf, version="2.0.0"):
    data = zc.site(zc.entry("version.txt", version.encode()))
    response = client.put(f"/api/apps/demo/hello/releases/{version}", data=data, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201, response.json


def submit(client, csrf, **body):
    return client.post(
        "/api/apps/demo/hello/jobs",
        data=json.dumps(body),
        headers={"X-CSRF-Token": csrf},
        content_type="application/json",
    )


# ---------------------------------------------------------------------- the queue
def test_one_job_per_app_at_a_time(jobs):
    first = jobs.submit("demo", "hello", "deploy", {"version": "2.0.0"}, "dev")
    with pytest.raises(Busy, match=f"demo/hello has job {first['id']} \\(deploy\\) queued"):
        jobs.submit("demo", "hello", "rollback", {}, "dev")
    other = jobs.submit("demo", "other", "rollback", {}, "dev")  # another app: fine
    claimed = jobs.claim("w")
    assert claimed["id"] == first["id"] and claimed["state"] == "running"
    with pytest.raises(Busy, match="running"):
        jobs.submit("demo", "hello", "rollback", {}, "dev")
    jobs.finish(first["id"], 0)
    assert jobs.submit("demo", "hello", "rollback", {}, "dev")["state"] == "queued"
    assert jobs.claim("w")["id"] == other["id"]  # oldest first


def test_a_job_cut_by_a_restart_is_failed_not_lost_nor_run_again(jobs):
    cut = jobs.submit("demo", "hello", "deploy", {"version": "2.0.0"}, "dev")
    jobs.claim("boot:1:gone")  # a worker that no longer exists
    live = jobs.submit("demo", "other", "deploy", {"version": "1.0.0"}, "dev")
    jobs.claim(worker_identity())  # this process: alive
    recovered = jobs.recover()
    assert [j["id"] for j in recovered] == [cut["id"]]
    assert jobs.get(cut["id"])["state"] == "failed" and "cut by a restart" in jobs.get(cut["id"])["message"]
    assert jobs.get(live["id"])["state"] == "running"
    assert jobs.claim("w") is None  # the cut job is not queued again
    assert jobs.finish(cut["id"], 0)["state"] == "failed"  # a late finish of the cut run changes nothing


# ---------------------------------------------------------------------- the worker
def test_the_worker_runs_the_playbook_and_logs_progress_and_the_result(jobs, settings, app, tmp_path):
    releases = app.extensions["monoscape"].releases
    releases.receive(open_zip(tmp_path), "demo", "hello", "2.0.0", user="dev")
    job = jobs.submit("demo", "hello", "deploy", {"version": "2.0.0", "instances_per_node": 2}, "dev")
    seen, log = [], AuditLog(settings.audit_log)
    finished = worker.run_job(jobs.claim("w"), jobs, releases, settings, runner=fake_runner(seen=seen), audit=log)
    assert finished["state"] == "succeeded" and finished["rc"] == 0
    assert (finished["tasks_done"], finished["tasks_total"]) == (2, 2)
    ((playbook, variables, private_dir),) = seen
    assert playbook == "playbooks/deploy_app.yml"
    assert variables == {
        "app_tenant": "demo",
        "app_name": "hello",
        "app_version": "2.0.0",
        "app_package": str(releases.path("demo", "hello", "2.0.0")),
        "app_instances_per_node": 2,
    }
    assert oct(os.stat(private_dir).st_mode & 0o777) == "0o700"
    text = pathlib.Path(jobs.log_path(job["id"])).read_text()
    assert "TASK [one]\nTASK [two]\n" in text and text.endswith("# rc=0\n")
    assert audit(settings)[-1]["action"] == "deploy" and audit(settings)[-1]["result"] == "succeeded"
    # the next run of the action expects as many tasks
    assert jobs.expected_tasks("demo", "hello", "deploy") == 2


def test_a_failed_playbook_fails_the_job(jobs, settings, app, tmp_path):
    releases = app.extensions["monoscape"].releases
    job = jobs.submit("demo", "hello", "rollback", {}, "dev")
    finished = worker.run_job(jobs.claim("w"), jobs, releases, settings, runner=fake_runner(rc=2))
    assert finished["state"] == "failed" and "playbooks/rollback_app.yml failed (rc 2)" in finished["message"]
    assert job["id"] == finished["id"]


def test_a_release_no_longer_kept_fails_the_job_without_running(jobs, settings, app):
    seen = []
    jobs.submit("demo", "hello", "deploy", {"version": "9.9.9"}, "dev")
    finished = worker.run_job(
        jobs.claim("w"), jobs, app.extensions["monoscape"].releases, settings, runner=fake_runner(seen=seen)
    )
    assert finished["state"] == "failed" and "upload it again" in finished["message"] and seen == []


def test_serve_recovers_then_runs_the_queue(settings, app):
    svc = app.extensions["monoscape"]
    cut = svc.jobs.submit("demo", "old", "rollback", {}, "dev")
    svc.jobs.claim("boot:1:gone")
    queued = svc.jobs.submit("demo", "hello", "undeploy", {}, "dev")
    stop, seen = [], []

    def runner(*args):
        seen.append(args[0])
        stop.append(True)  # one job, then the loop ends
        return fake_runner()(*args)

    worker.serve(settings, svc.releases, svc.audit, idle=0.01, runner=runner, stop=stop)
    assert svc.jobs.get(cut["id"])["state"] == "failed"
    assert svc.jobs.get(queued["id"])["state"] == "succeeded" and seen == ["playbooks/undeploy_app.yml"]


def open_zip(tmp_path):
    path = tmp_path / "pkg.zip"
    path.write_bytes(zc.site(zc.entry("version.txt", b"2.0.0")))
    return path.open("rb")


# ---------------------------------------------------------------------- the API
def test_a_member_submits_and_follows_a_job(member, app, settings):
    client, csrf = member
    upload(client, csrf)
    response = submit(client, csrf, action="deploy", version="2.0.0")
    assert response.status_code == 202, response.json
    job = response.json["job"]
    assert (job["action"], job["state"], job["user"], job["params"]) == (
        "deploy",
        "queued",
        "dev",
        {"version": "2.0.0", "instances_per_node": 1},
    )
    # a second job for the app while this one is queued: refused, naming it
    response = submit(client, csrf, action="rollback")
    assert response.status_code == 409 and f"/api/jobs/{job['id']}" in response.json["error"]
    assert audit(settings)[-1]["result"] == "refused"
    svc = app.extensions["monoscape"]
    worker.run_job(svc.jobs.claim("w"), svc.jobs, svc.releases, settings, runner=fake_runner())
    assert client.get(f"/api/jobs/{job['id']}").json["job"]["state"] == "succeeded"
    log = client.get(f"/api/jobs/{job['id']}/log").json
    assert "TASK [two]" in log["text"] and log["state"] == "succeeded" and log["tasks_done"] == 2
    rest = client.get(f"/api/jobs/{job['id']}/log?offset={log['offset']}").json
    assert rest["text"] == "" and rest["offset"] == log["offset"]
    assert [j["id"] for j in client.get("/api/apps/demo/hello/jobs").json["jobs"]] == [job["id"]]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"action": "format-the-disk"}, 400, "unknown action 'format-the-disk'"),
        ({"action": "deploy", "version": "3.0.0"}, 404, "no kept release '3.0.0': upload the package first"),
        ({"action": "deploy", "version": "2.0.0", "instances_per_node": 99}, 400, "from 1 to 8"),
        ({"action": "deploy", "version": "2.0.0", "instances_per_node": "2; rm -rf /"}, 400, "whole number"),
        ({"action": "rollback", "version": "2.0.0"}, 400, "rollback takes no version"),
        ({"action": "deploy", "version": "2.0.0", "extra_vars": {"x": 1}}, 400, "deploy takes no extra_vars"),
    ],
    ids=["unknown-action", "not-uploaded", "too-many-instances", "not-a-number", "stray-parameter", "extra-vars"],
)
def test_a_bad_job_request_is_refused_and_queues_nothing(member, app, body, status, message):
    client, csrf = member
    upload(client, csrf)
    response = submit(client, csrf, **body)
    assert response.status_code == status and message in response.json["error"], response.json
    assert app.extensions["monoscape"].jobs.list() == []


def test_without_a_worker_jobs_are_refused_not_queued(settings, clock):
    app = webapp.create_app(type(settings)(**{**settings.__dict__, "bundle_dir": ""}), clock=clock)
    client = app.test_client()
    csrf = api_login(client, "dev").json["csrf_token"]
    upload(client, csrf)
    response = submit(client, csrf, action="deploy", version="2.0.0")
    assert response.status_code == 503 and "no job worker" in response.json["error"], response.json
    assert app.extensions["monoscape"].jobs.list() == []
    page = client.get("/apps/demo/hello").data.decode()
    assert "need the controller's job worker" in page and "Deploy 2.0.0" not in page and "Undeploy" not in page


def test_a_reader_sees_jobs_but_cannot_submit_and_csrf_is_needed(app, member):
    client, csrf = member
    upload(client, csrf)
    assert submit(client, "", action="deploy", version="2.0.0").status_code == 403
    reader = app.test_client()
    reader_csrf = api_login(reader, "viewer").json["csrf_token"]
    assert submit(reader, reader_csrf, action="deploy", version="2.0.0").status_code == 403
    assert reader.get("/api/apps/demo/hello/jobs").json == {"jobs": []}


# ---------------------------------------------------------------------- a real ansible-runner run
PLAYBOOK = """\
- name: Deploy (stand-in of the bundle's playbook)
  hosts: all
  gather_facts: false
  tasks:
    - name: Show the app
      ansible.builtin.debug:
        msg: "{{ app_tenant }}/{{ app_name }} {{ app_version }} x{{ app_instances_per_node }}"
    - name: Fail when asked
      ansible.builtin.fail:
        msg: asked to fail
      when: app_version == "6.6.6"
"""


@pytest.mark.parametrize("outcome", [("2.0.0", "succeeded"), ("6.6.6", "failed")], ids=["succeeds", "fails"])
def test_ansible_runner_runs_the_bundles_playbook(tmp_path, jobs, settings, app, outcome):
    version, state = outcome
    bundle = tmp_path / "bundle"
    (bundle / "playbooks").mkdir(parents=True)
    (bundle / "playbooks" / "deploy_app.yml").write_text(PLAYBOOK)
    (bundle / "ansible.cfg").write_text("[defaults]\nstdout_callback = ansible.builtin.default\n")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("node-1 ansible_connection=local ansible_python_interpreter=python3\n")
    run_settings = type(settings)(**{**settings.__dict__, "bundle_dir": str(bundle), "inventory": str(inventory)})
    releases = app.extensions["monoscape"].releases
    releases.receive(open_zip(tmp_path), "demo", "hello", version, user="dev")
    job = jobs.submit("demo", "hello", "deploy", {"version": version, "instances_per_node": 3}, "dev")
    finished = worker.run_job(jobs.claim("w"), jobs, releases, run_settings)
    text = pathlib.Path(jobs.log_path(job["id"])).read_text()
    assert finished["state"] == state, text
    assert f"demo/hello {version} x3" in text and "TASK [Show the app]" in text
    assert finished["tasks_done"] == 2


def test_the_worker_command_needs_the_bundle_and_inventory(settings, tmp_path, monkeypatch, capsys):
    from monoscape_selfservice import __main__ as command  # noqa: PLC0415 - the module under test

    path = tmp_path / "selfservice.json"
    document = {k: v for k, v in settings.__dict__.items() if not isinstance(v, tuple)}
    path.write_text(json.dumps(document | {"bundle_dir": ""}))
    monkeypatch.setenv("MONOSCAPE_SELFSERVICE_SETTINGS", str(path))
    assert command.main(["worker"]) == 2
    assert "set bundle_dir, inventory in the settings" in capsys.readouterr().err
    assert command.main(["serve"]) == 2
