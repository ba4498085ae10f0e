"""One tenant and app name rule, one release version rule, one instance name rule
(issue #16), written once in module_utils/monoscape_package.py: every place that
checks a name gets the same verdicts as the rule, on a corpus of names each place
would get wrong if it held a copy that drifted (a trailing newline that `^...$`
lets through, one character too many, a '.', a leading '-' ...).

The places: the Python modules and filters (the same functions), the role and
playbook checks (run by ansible-playbook here, with each name as the tenant, then
as the app, so neither check can hide the other), and the HAProxy frontend's
/<tenant>/<app> regex (rendered from the role's template)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.monoscape.paas.plugins.filter import monoscape as filters
from ansible_collections.monoscape.paas.plugins.module_utils import haproxy_runtime as hr
from ansible_collections.monoscape.paas.plugins.module_utils import monoscape_package as pkg
from ansible_collections.monoscape.paas.plugins.modules import app_info, app_ports, os_server
from ansible_collections.monoscape.paas.plugins.modules import monoscape_package as package_module
from ansible_collections.monoscape.paas.plugins.test import monoscape as tests

ROOT = pathlib.Path(__file__).resolve().parents[2]

NAMES = [
    "demo",
    "0app",
    "my_app-2",
    "a" * 63,
    "",
    "Demo",
    "a.b",
    "-x",
    "_x",
    "a" * 64,
    "café",
    "a b",
    "hello\n",
    "../etc",
]
VERSIONS = ["2.0.1-broken", "1.0+build_5", "v1", "a" * 64, "", "1..0", "-1", ".1", "a" * 65, "1.0\n", "1/0"]
INSTANCE_NAMES = ["demo.hello.1", "x_y-z.10", "a" * 63, "", "Demo.hello.1", ".x", "a" * 64, "a.b.1\n", "a/b"]


def passes(check, value) -> bool:
    try:
        check(value)
    except pkg.PackageError:
        return False
    return True


def name_ok(value):
    return passes(lambda v: pkg.check_name("name", v), value)


def version_ok(value):
    return passes(pkg.check_version, value)


def instance_ok(value):
    return passes(pkg.check_instance_name, value)


def test_the_corpus_has_both_verdicts():
    for rule, corpus in ((name_ok, NAMES), (version_ok, VERSIONS), (instance_ok, INSTANCE_NAMES)):
        verdicts = {rule(value) for value in corpus}
        assert verdicts == {True, False}, rule


# --- the rule itself: each pattern is the whole rule ---------------------------------------
@pytest.mark.parametrize("value", NAMES)
def test_name_pattern_is_the_whole_name_rule(value):
    assert bool(re.fullmatch(pkg.NAME_PATTERN, value)) == name_ok(value)


@pytest.mark.parametrize("value", VERSIONS)
def test_version_pattern_is_the_whole_version_rule(value):
    assert bool(re.fullmatch(pkg.VERSION_PATTERN, value)) == version_ok(value)


@pytest.mark.parametrize("value", INSTANCE_NAMES)
def test_instance_name_pattern_is_the_whole_instance_rule(value):
    assert bool(re.fullmatch(pkg.INSTANCE_NAME_PATTERN, value)) == instance_ok(value)


def test_the_rules_as_they_were():
    """The rules' meaning did not change when they were gathered here (issue #16)."""
    assert pkg.NAME_PATTERN == r"[a-z0-9][a-z0-9_-]{0,62}"
    assert pkg.VERSION_PATTERN == r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._+-]{0,63}"
    assert pkg.INSTANCE_NAME_PATTERN == r"[a-z0-9][a-z0-9_.-]{0,62}"


def test_every_instance_name_is_refused_as_a_tenant_or_app_name_when_it_has_a_dot():
    """Different rules on purpose: an instance name is <tenant>.<app>.<n>."""
    assert instance_ok("demo.hello.1") and not name_ok("demo.hello.1")


# HAProxy's backend and server names: a rule of their own (wider), named as such
@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("app.demo.hello", True),
        ("node-1_9081", True),
        ("ipv6:1", True),
        ("x" * 63, True),
        ("", False),
        ("a b", False),
        ("x" * 64, False),
        ("node-1\n", False),
    ],
)
def test_haproxy_names_are_their_own_rule(value, accepted):
    try:
        hr.check_haproxy_name("server", value)
        verdict = True
    except hr.HAProxyError:
        verdict = False
    assert verdict == accepted


def test_haproxy_runtime_has_no_check_name():
    """Its name check is check_haproxy_name: check_name is the tenant and app rule's."""
    assert not hasattr(hr, "check_name") and not hasattr(hr, "NAME_RE")


# --- Python: the modules and plugins call the rule's functions ------------------------------
def test_modules_use_the_rule_functions():
    assert app_info.check_name is pkg.check_name
    assert app_info.check_version is pkg.check_version
    assert os_server.check_name is pkg.check_name
    assert package_module.check_name is pkg.check_name
    assert package_module.check_version is pkg.check_version
    assert app_ports.check_instance_name is pkg.check_instance_name
    assert not hasattr(app_ports, "NAME_RE")


@pytest.mark.parametrize("value", NAMES)
def test_jinja_test_monoscape_name(value):
    assert tests.monoscape_name(value) == name_ok(value)


@pytest.mark.parametrize("value", VERSIONS)
def test_jinja_test_monoscape_version(value):
    assert tests.monoscape_version(value) == version_ok(value)


@pytest.mark.parametrize("value", INSTANCE_NAMES)
def test_jinja_test_monoscape_instance_name(value):
    assert tests.monoscape_instance_name(value) == instance_ok(value)


def test_jinja_tests_refuse_what_is_not_a_string():
    for test in (tests.monoscape_name, tests.monoscape_version, tests.monoscape_instance_name):
        assert not test(None) and not test(1) and not test(["demo"])


@pytest.mark.parametrize("value", NAMES)
def test_filter_monoscape_app_account_takes_tenant_and_app_names(value):
    for tenant, app in ((value, "hello"), ("demo", value)):
        try:
            filters.monoscape_app_account(tenant, app)
            accepted = True
        except AnsibleFilterError:
            accepted = False
        assert accepted == name_ok(value), (tenant, app)


def test_filter_monoscape_rule_pattern():
    assert filters.monoscape_rule_pattern("name") == pkg.NAME_PATTERN
    assert filters.monoscape_rule_pattern("version") == pkg.VERSION_PATTERN
    assert filters.monoscape_rule_pattern("instance_name") == pkg.INSTANCE_NAME_PATTERN
    with pytest.raises(AnsibleFilterError, match="'tenant' is not one of instance_name, name, version"):
        filters.monoscape_rule_pattern("tenant")


def test_filter_monoscape_rule_pattern_doc_lists_every_rule():
    doc = yaml.safe_load((ROOT / "plugins/filter/monoscape_rule_pattern.yml").read_text())
    assert sorted(doc["DOCUMENTATION"]["options"]["_input"]["choices"]) == sorted(filters.RULE_PATTERNS)


# --- no copy left: the rules' regexes appear nowhere else ---------------------------------
# Fragments of the three rules' regexes (any of them in a file is a copy of a rule).
COPIES = ("[a-z0-9][", "A-Za-z0-9._+-", "[A-Za-z0-9][A-Za-z0-9._")
# every top-level folder but the tests (which hold the corpus) and the prose
NOT_SCANNED = {"tests", "docs", "build", "dist"}


def scanned_folders():
    return [
        p for p in sorted(ROOT.iterdir()) if p.is_dir() and p.name not in NOT_SCANNED and not p.name.startswith(".")
    ]


def test_no_copy_of_a_rule_outside_module_utils():
    assert {"plugins", "roles", "playbooks"} <= {p.name for p in scanned_folders()}
    copies = []
    for top in scanned_folders():
        for path in sorted(top.rglob("*")):
            if not path.is_file() or path.suffix not in {".py", ".yml", ".yaml", ".j2", ".sh", ".cfg", ".html", ".js"}:
                continue
            if path == ROOT / "plugins/module_utils/monoscape_package.py":
                continue
            text = path.read_text(errors="replace")
            copies += [f"{path.relative_to(ROOT)}: {frag}" for frag in COPIES if frag in text]
    assert copies == []


# --- the roles, the playbook and the HAProxy template, through Ansible ---------------------
# (place, the name checked, the task file that checks it); each case's value is the
# tenant, the app, the version or the instance name; the others stay valid.
PLACES = {
    "mono_runtime": "roles/mono_runtime/tasks/validate.yml",
    "load_balancer": "roles/load_balancer/tasks/check_backend.yml",
    "mono_app": "roles/mono_app/tasks/validate.yml",
    "undeploy_app": None,  # the first play of playbooks/undeploy_app.yml (written out below)
}
KINDS = {
    "mono_runtime": ("tenant", "app", "instance"),
    "load_balancer": ("tenant", "app"),
    "mono_app": ("tenant", "app", "version"),
    "undeploy_app": ("tenant", "app"),
}
CORPUS = {"tenant": NAMES, "app": NAMES, "version": VERSIONS, "instance": INSTANCE_NAMES}
RULE = {"tenant": name_ok, "app": name_ok, "version": version_ok, "instance": instance_ok}
VALID = {"tenant": "demo", "app": "hello", "version": "1.0.0", "instance": "demo.hello.1"}

ONE_CASE = """\
- name: One case
  vars:
    mono_runtime_instances:
      - {name: "{{ case.instance }}", tenant: "{{ case.tenant }}", app: "{{ case.app }}", root: /srv/x, port: 9081}
    load_balancer__backend: {tenant: "{{ case.tenant }}", app: "{{ case.app }}"}
    load_balancer_health_path: ""
    mono_app_tenant: "{{ case.tenant }}"
    mono_app_name: "{{ case.app }}"
    mono_app_version: "{{ case.version }}"
    mono_app_package: /srv/hello.zip
    mono_app_instances_per_node: 1
    mono_app_releases_kept: 1
    mono_app_health_path: ""
    mono_app_health_timeout: 5
    mono_app_port_range_start: 9081
    mono_app_port_range_end: 9999
    mono_app_lb_hosts: [localhost]
    app_tenant: "{{ case.tenant }}"
    app_name: "{{ case.app }}"
  block:
    - name: The place's checks
      ansible.builtin.include_tasks: "{{ case.file }}"
    - name: Accepted
      ansible.builtin.set_fact:
        verdicts: "{{ verdicts | combine({case.id: true}) }}"
  rescue:
    - name: Refused
      ansible.builtin.set_fact:
        verdicts: "{{ verdicts | combine({case.id: false}) }}"
"""

PLAYBOOK = """\
- name: Every place's verdicts, and the HAProxy frontend
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    verdicts: {}
  tasks:
    - name: Each case
      ansible.builtin.include_tasks: one_case.yml
      loop: "{{ cases }}"
      loop_control:
        loop_var: case
        label: "{{ case.id }}"
    - name: The load balancer role's variables
      ansible.builtin.include_vars: "{{ item }}"
      loop: ["{{ root }}/roles/load_balancer/defaults/main.yml", "{{ root }}/roles/load_balancer/vars/main.yml"]
    - name: Write the verdicts and the frontend
      ansible.builtin.copy:
        dest: "{{ out }}"
        mode: "0600"
        content: >-
          {{ {'verdicts': verdicts,
              'frontend': lookup('ansible.builtin.template', root ~ '/roles/load_balancer/templates/frontend.cfg.j2')}
             | to_json }}
"""


@pytest.fixture(scope="module")
def ansible_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("name_rules")
    undeploy = yaml.safe_load((ROOT / "playbooks/undeploy_app.yml").read_text())[0]
    assert undeploy["hosts"] == "localhost", "the name check is no longer undeploy_app.yml's first play"
    (work / "undeploy_app_checks.yml").write_text(yaml.safe_dump(undeploy["tasks"]))
    cases = []
    for place, kinds in KINDS.items():
        task_file = str(ROOT / PLACES[place]) if PLACES[place] else str(work / "undeploy_app_checks.yml")
        for kind in kinds:
            for index, value in enumerate(CORPUS[kind]):
                case = dict(VALID, id=f"{place}/{kind}/{index}", file=task_file)
                case[kind] = value
                cases.append(case)
    (work / "one_case.yml").write_text(ONE_CASE)
    (work / "site.yml").write_text(PLAYBOOK)
    out = work / "out.json"
    (work / "vars.json").write_text(json.dumps({"cases": cases, "root": str(ROOT), "out": str(out)}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PATH=f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}")
    proc = subprocess.run(
        [
            str(ROOT / ".venv/bin/ansible-playbook"),
            "-i",
            "localhost,",
            str(work / "site.yml"),
            "-e",
            f"@{work}/vars.json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize(("place", "kind"), [(p, k) for p, kinds in KINDS.items() for k in kinds])
def test_role_and_playbook_checks_give_the_rules_verdicts(ansible_run, place, kind):
    verdicts = ansible_run["verdicts"]
    wrong = [
        (value, verdicts[f"{place}/{kind}/{index}"])
        for index, value in enumerate(CORPUS[kind])
        if verdicts[f"{place}/{kind}/{index}"] != RULE[kind](value)
    ]
    assert wrong == [], f"{PLACES[place] or 'playbooks/undeploy_app.yml'} {kind}: (value, its verdict) against the rule"


def frontend_app_root_regex(frontend: str) -> str:
    found = re.findall(r"^\s*acl monoscape_app_root path_reg -- (\S+)$", frontend, re.M)
    assert len(found) == 1, frontend
    return found[0]


def test_haproxy_redirect_regex_is_rendered_from_the_name_rule(ansible_run):
    assert frontend_app_root_regex(ansible_run["frontend"]) == f"^/{pkg.NAME_PATTERN}/{pkg.NAME_PATTERN}$"


@pytest.mark.parametrize("value", NAMES)
def test_haproxy_redirects_exactly_the_routable_names(ansible_run, value):
    """Python's re and HAProxy's PCRE2 read this pattern alike (a class, a bounded repeat)."""
    regex = frontend_app_root_regex(ansible_run["frontend"])
    for tenant, app in ((value, "hello"), ("demo", value)):
        if "/" in value or "\n" in value:
            continue  # not one path segment: a different question (HAProxy sees the path's segments)
        assert bool(re.search(regex, f"/{tenant}/{app}")) == name_ok(value), (tenant, app)
