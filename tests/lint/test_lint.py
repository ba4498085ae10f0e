"""Lint is a test: ansible-lint (production profile), yamllint, ruff; every
module and plugin renders with ansible-doc; every playbook passes
--syntax-check; every role documents its variables."""

import os
import pathlib
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))
INVENTORY_PLUGINS = sorted(p.stem for p in (ROOT / "plugins" / "inventory").glob("*.py") if not p.name.startswith("_"))
CALLBACKS = sorted(p.stem for p in (ROOT / "plugins" / "callback").glob("*.py") if not p.name.startswith("_"))
# filter plugins are documented in one <filter>.yml file each
FILTERS = sorted(p.stem for p in (ROOT / "plugins" / "filter").glob("*.yml"))
TESTS = sorted(p.stem for p in (ROOT / "plugins" / "test").glob("*.yml"))
PLAYBOOKS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "playbooks").glob("*.yml"))
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())


def run(*cmd):
    env = dict(os.environ, NO_COLOR="1", PY_COLORS="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_ansible_lint_production_profile():
    rc, out = run("ansible-lint", "--profile", "production", "--strict")
    assert rc == 0, out


def test_yamllint():
    rc, out = run("yamllint", "--strict", ".")
    assert rc == 0, out


def test_ruff_check():
    rc, out = run("ruff", "check", ".")
    assert rc == 0, out


def test_ruff_format():
    rc, out = run("ruff", "format", "--check", ".")
    assert rc == 0, out


# modules, filters and tests: the sections a reader of ansible-doc needs
DOCUMENTED = [("module", m) for m in MODULES] + [("filter", f) for f in FILTERS] + [("test", t) for t in TESTS]


@pytest.mark.parametrize(("kind", "name"), DOCUMENTED)
def test_ansible_doc_renders(kind, name):
    rc, out = run("ansible-doc", "-t", kind, f"monoscape.paas.{name}")
    assert rc == 0, out
    for section in ("EXAMPLES:", "RETURN VALUES:", "OPTIONS"):
        assert section in out, f"ansible-doc of {kind} {name} lacks {section}"


@pytest.mark.parametrize("plugin", INVENTORY_PLUGINS)
def test_ansible_doc_renders_inventory_plugin(plugin):
    rc, out = run("ansible-doc", "-t", "inventory", f"monoscape.paas.{plugin}")
    assert rc == 0, out
    assert "OPTIONS" in out


@pytest.mark.parametrize("plugin", CALLBACKS)
def test_ansible_doc_renders_callback_plugin(plugin):
    rc, out = run("ansible-doc", "-t", "callback", f"monoscape.paas.{plugin}")
    assert rc == 0, out
    assert "OPTIONS" in out


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook):
    rc, out = run("ansible-playbook", "--syntax-check", "-i", "localhost,", playbook)
    assert rc == 0, out


@pytest.mark.parametrize("role", ROLES)
def test_role_documents_every_default(role):
    """Every default is prefixed with the role name and declared in
    meta/argument_specs.yml; the README mentions it."""
    role_dir = ROOT / "roles" / role
    defaults_file = role_dir / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
    specs = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    declared = set()
    for entry in specs.values():
        declared |= set(entry.get("options", {}))
    readme = (role_dir / "README.md").read_text()
    for name in defaults or {}:
        assert name.startswith(role + "_"), f"{role}: default {name} is not prefixed with {role}_"
        assert name in declared, f"{role}: default {name} missing from meta/argument_specs.yml"
        assert name in readme, f"{role}: default {name} not documented in README.md"
