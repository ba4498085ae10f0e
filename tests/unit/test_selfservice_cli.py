"""The `monoscape` command against the self-service app served over HTTP on the
loopback (werkzeug's server in a thread) with a job worker thread whose playbook run is
a stand-in: login keeps a session but never the password, push uploads, deploys and
follows the job (exit code = result), a rejected package exits non-zero with the
rule's message and queues nothing."""

import importlib
import io
import os
import pathlib
import stat
import threading

import pytest
from monoscape_selfservice import cli, worker
from werkzeug.serving import make_server

from . import zip_corpus as zc
from .selfservice_helpers import USERS


@pytest.fixture
def served(app, settings, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    svc, stop, outcome = app.extensions["monoscape"], [], {"rc": 0}

    def runner(playbook, variables, settings, on_event, private_dir):
        on_event({"event": "playbook_on_task_start", "stdout": f"TASK [{playbook}]"})
        return outcome["rc"]

    thread = threading.Thread(
        target=worker.serve,
        args=(settings, svc.releases, svc.audit),
        kwargs={"idle": 0.05, "runner": runner, "stop": stop},
        daemon=True,
    )
    # serve() installs a SIGTERM handler, which only the main thread may do
    monkeypatch.setattr(worker.signal, "signal", lambda *args: None)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", outcome, svc
    stop.append(True)
    thread.join(5)
    server.shutdown()


def monoscape(*argv):
    out = io.StringIO()
    rc = cli.main(list(argv), out=out, poll=0.05)
    return rc, out.getvalue()


def login(url, monkeypatch, user="dev"):
    monkeypatch.setenv("MONOSCAPE_PASSWORD", USERS[user][0])
    return monoscape("login", url, "--user", user)


def test_login_keeps_a_session_never_the_password(served, monkeypatch):
    url, _, _ = served
    rc, out = login(url, monkeypatch)
    assert rc == 0 and f"signed in to {url} as dev (member, reader)" in out
    path = cli.session_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert USERS["dev"][0] not in path.read_text()
    assert monoscape("apps") == (0, "demo/hello 1.0.0 http://lb/demo/hello/\n")


def test_push_uploads_deploys_and_follows_the_job(served, monkeypatch, tmp_path, capsys):
    url, outcome, svc = served
    login(url, monkeypatch)
    package = tmp_path / "hello-2.0.0.zip"
    package.write_bytes(zc.site(zc.entry("v.txt", b"2")))
    rc, out = monoscape("push", str(package), "--tenant", "demo", "--app", "hello", "--version", "2.0.0")
    assert rc == 0, out + capsys.readouterr().err
    assert "uploaded demo/hello 2.0.0 (sha256 " in out and "TASK [playbooks/deploy_app.yml]" in out
    assert out.rstrip().endswith("deploy demo/hello: succeeded")
    (job,) = svc.jobs.list()
    assert monoscape("logs", str(job["id"]))[0] == 0
    # a failing playbook: exit code 2
    outcome["rc"] = 2
    rc, out = monoscape("rollback", "--tenant", "demo", "--app", "hello")
    assert rc == 2 and "rollback demo/hello: failed (playbooks/rollback_app.yml failed (rc 2)" in out


def test_a_rejected_package_exits_non_zero_and_queues_nothing(served, monkeypatch, tmp_path, capsys):
    url, _, svc = served
    login(url, monkeypatch)
    package = tmp_path / "slip.zip"
    name, data, _, message = next(c for c in zc.corpus() if "slip" in c[0])
    package.write_bytes(data)
    rc, _ = monoscape("push", str(package), "--tenant", "demo", "--app", "hello", "--version", "2.0.0")
    err = capsys.readouterr().err
    assert rc == 1 and "422" in err and message in err, (name, err)
    assert svc.jobs.list() == [] and svc.releases.list("demo", "hello") == []


def test_commands_need_a_session(served, capsys):
    assert monoscape("apps")[0] == 1
    assert "not signed in: monoscape login URL" in capsys.readouterr().err


def test_a_wrong_password_is_named(served, monkeypatch, capsys):
    url, _, _ = served
    monkeypatch.setenv("MONOSCAPE_PASSWORD", "wrong")
    assert monoscape("login", url, "--user", "dev")[0] == 1
    assert "401 wrong user name or password" in capsys.readouterr().err
    assert not cli.session_path().exists()


def test_the_monoscape_command_is_an_entry_point_of_the_project():
    """pyproject's [project.scripts] names cli.main, and bin/monoscape (a clone's command) runs it."""
    import subprocess  # noqa: PLC0415 - only this test runs a process
    import tomllib  # noqa: PLC0415

    root = pathlib.Path(__file__).resolve().parents[2]
    target = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]["monoscape"]
    module, _, function = target.partition(":")
    assert (module, function) == ("monoscape_selfservice.cli", "main")
    assert cli.main is getattr(importlib.import_module(module), function)
    proc = subprocess.run([root / "bin" / "monoscape", "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "{login,logout,apps,push,rollback,logs}" in proc.stdout, proc.stderr
