"""The job worker (systemd service monoscape-selfservice-jobs): claims queued jobs one
at a time and runs each with ansible-runner - the bundle's own playbook for the action,
against the deployment's nodes (an inventory the selfservice role writes: the nodes and
controllers, reached with the controller's deploy key and their pinned host keys; no
cloud credentials). The playbook's output goes to the job's log as it comes; progress
is the tasks started out of those the last successful run of the action had."""

import os
import signal
import time

from .jobs import Jobs, worker_identity

# action -> (playbook in the bundle, the parameters it takes)
ACTIONS = {
    "deploy": ("playbooks/deploy_app.yml", ("version", "instances_per_node")),
    "scale": ("playbooks/deploy_app.yml", ("version", "instances_per_node")),
    "rollback": ("playbooks/rollback_app.yml", ()),
    "undeploy": ("playbooks/undeploy_app.yml", ()),
}


def extravars(job, releases):
    """The playbook's variables for a job (the runbook's -e options)."""
    params, found = job["params"], {"app_tenant": job["tenant"], "app_name": job["app"]}
    if job["action"] in ("deploy", "scale"):
        path = releases.path(job["tenant"], job["app"], params["version"])
        if path is None:
            raise LookupError(f"{job['tenant']}/{job['app']} {params['version']} is not kept here: upload it again")
        found.update(app_version=params["version"], app_package=str(path))
        found["app_instances_per_node"] = int(params.get("instances_per_node") or 1)
    return found


def ansible_runner_run(playbook, variables, settings, on_event, private_dir):
    """Run a playbook of the bundle with ansible-runner; returns its rc."""
    import ansible_runner  # noqa: PLC0415 - the worker's dependency only, not the web app's

    result = ansible_runner.run(
        private_data_dir=private_dir,
        project_dir=settings.bundle_dir,
        playbook=os.path.join(settings.bundle_dir, playbook),
        inventory=settings.inventory,
        extravars=variables,
        envvars={"ANSIBLE_CONFIG": os.path.join(settings.bundle_dir, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        event_handler=on_event,
        quiet=True,
    )
    return result.rc


def run_job(job, jobs, releases, settings, *, runner=ansible_runner_run, audit=None):
    """Run one claimed job to its end (audited); returns the finished job."""
    finished = _run(job, jobs, releases, settings, runner)
    if audit is not None:
        target = f"{job['tenant']}/{job['app']}"
        detail = f"job {job['id']} {job['params']}" + (f": {finished['message']}" if finished["message"] else "")
        audit.record(job["user"], job["action"], finished["state"], "job service", target=target, detail=detail)
    return finished


def _run(job, jobs, releases, settings, runner):
    log_path = jobs.log_path(job["id"])
    expected = jobs.expected_tasks(job["tenant"], job["app"], job["action"])
    done = 0
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"# job {job['id']}: {job['action']} {job['tenant']}/{job['app']} {job['params']} by {job['user']}\n")
        log.flush()
        try:
            playbook, _ = ACTIONS[job["action"]]
            variables = extravars(job, releases)
        except (KeyError, LookupError) as exc:
            message = str(exc) if isinstance(exc, LookupError) else f"unknown action {job['action']!r}"
            log.write(f"# refused: {message}\n")
            return jobs.finish(job["id"], 2, message)

        def on_event(event):
            nonlocal done
            text = event.get("stdout") or ""
            if text:
                log.write(text + "\n")
                log.flush()
            if event.get("event") == "playbook_on_task_start":
                done += 1
                jobs.progress(job["id"], done, max(expected, done))
            return False  # ansible-runner keeps no copy of the event on disk beyond its own artifacts

        private_dir = os.path.join(settings.state_dir, "runner", str(job["id"]))
        os.makedirs(private_dir, mode=0o700, exist_ok=True)
        rc = runner(playbook, variables, settings, on_event, private_dir)
        jobs.progress(job["id"], done, done if rc == 0 else max(expected, done))
        log.write(f"# rc={rc}\n")
    return jobs.finish(job["id"], rc, "" if rc == 0 else f"{playbook} failed (rc {rc}): see the job's log")


def serve(settings, releases, audit, *, idle=1.0, runner=ansible_runner_run, stop=None):
    """The worker's loop: mark the jobs a restart cut as failed, then run queued jobs in turn."""
    jobs = open_jobs(settings)
    for job in jobs.recover():
        audit.record(
            job["user"],
            job["action"],
            "failed",
            "job service",
            target=f"{job['tenant']}/{job['app']}",
            detail=f"job {job['id']}: {job['message']}",
        )
    me = worker_identity()
    stopping = stop if stop is not None else []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    while not stopping:
        job = jobs.claim(me)
        if job is None:
            time.sleep(idle)
            continue
        run_job(job, jobs, releases, settings, runner=runner, audit=audit)


def open_jobs(settings, clock=time.time):
    """The job queue of the service (web app and worker open the same one)."""
    return Jobs(os.path.join(settings.state_dir, "jobs.sqlite"), os.path.join(settings.state_dir, "jobs"), clock=clock)
