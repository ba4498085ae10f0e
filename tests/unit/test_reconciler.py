"""playbooks/reconciler.yml on the control node: the reconcile service and timer
(written and checked with systemd-analyze; this machine runs no systemd, so the
timer itself is not started here), idempotent, removed again, and a clear refusal
to enable a timer where no systemd runs."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def reconciler(units: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    """reconciler.yml with the lab inventory's settings; the admin clouds.yaml (which the
    monoscape role only checks exists) is a stand-in, so the lab need not be up."""
    clouds_yaml = units.parent / f"{units.name}-clouds.yaml"
    clouds_yaml.write_text("clouds: {}\n")
    extra = ("-e", f"monoscape_clouds_yaml={clouds_yaml}", *extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PATH=f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}")
    return subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "ansible-playbook"),
            "-i",
            "inventory/lab",
            "playbooks/reconciler.yml",
            "-e",
            f"monoscape_reconcile_unit_dir={units}",
            "-e",
            "monoscape_deployment=unit-test",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def changed(proc) -> int:
    return int(re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", proc.stdout).group(1))


def test_units_are_written_verified_idempotent_and_removed(tmp_path):
    first = reconciler(tmp_path, "-e", "monoscape_reconcile_enable=false", "-e", "monoscape_reconcile_interval=2min")
    assert first.returncode == 0, first.stdout[-3000:]
    service = (tmp_path / "monoscape-reconcile-unit-test.service").read_text()
    timer = (tmp_path / "monoscape-reconcile-unit-test.timer").read_text()
    assert f"WorkingDirectory={ROOT}" in service
    assert re.search(
        rf"^ExecStart=\S+/ansible-playbook -i {ROOT}/inventory/lab playbooks/reconcile.yml$", service, re.M
    )
    assert "OnUnitInactiveSec=2min" in timer and "WantedBy=timers.target" in timer
    for unit in ("service", "timer"):
        check = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(tmp_path / f"monoscape-reconcile-unit-test.{unit}")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stderr
    again = reconciler(tmp_path, "-e", "monoscape_reconcile_enable=false", "-e", "monoscape_reconcile_interval=2min")
    assert again.returncode == 0 and changed(again) == 0, again.stdout[-3000:]
    gone = reconciler(tmp_path, "-e", "monoscape_reconcile_enable=false", "-e", "monoscape_reconcile_state=absent")
    assert gone.returncode == 0, gone.stdout[-3000:]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(pathlib.Path("/run/systemd/system").is_dir(), reason="this machine runs systemd")
def test_no_running_systemd_is_a_clear_refusal(tmp_path):
    proc = reconciler(tmp_path)
    assert proc.returncode != 0
    assert "runs no systemd" in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    assert list(tmp_path.iterdir()) == []
