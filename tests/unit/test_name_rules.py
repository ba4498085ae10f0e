"""One tenant and app name rule, one release version rule, one instance name rule
and one rule for a tenant and an app together (issue #16), written once in
module_utils/monoscape_package.py: every place that
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
import zipfile

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.module_utils.testing import patch_module_args

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
    "a" * 53,  # with hello or demo (5 and 4 characters): at most the pair's limit, 58
    "a" * 54,  # with hello, 59: a valid name, but not with the app hello
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
# A tenant and an app, each a valid name, and whether they fit together: the names derived
# from both (<tenant>.<app>.<n>, app.<tenant>.<app>) have limits of their own.
LIMIT = pkg.APP_IDENTITY_MAX_LEN
AT_LIMIT = ("t" * (LIMIT - 20), "a-b_c" * 4)
PAIRS = [
    (("demo", "hello"), True),
    (AT_LIMIT, True),
    (("x", "a" * (LIMIT - 1)), True),
    (("a" * (LIMIT - 1), "x"), True),
    (("a" * 40, "b" * 40), False),
    (("t" * (LIMIT - 19), "a-b_c" * 4), False),
    (("x", "a" * LIMIT), False),
    (("a" * 63, "b"), False),
    (("a" * 63, "b" * 63), False),
]
TOO_LONG = ("a" * 40, "b" * 40)


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


def pair_ok(pair):
    try:
        pkg.check_app_identity(*pair)
    except pkg.PackageError:
        return False
    return True


def instances_ok(count):
    return 1 <= count <= pkg.INSTANCES_PER_NODE_MAX


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


# --- a tenant and an app together: the names derived from both fit their limits ------------
def test_the_pairs_are_valid_names_each():
    assert all(name_ok(tenant) and name_ok(app) for (tenant, app), _ in PAIRS)
    assert sum(len(part) for part in AT_LIMIT) == LIMIT


@pytest.mark.parametrize(("pair", "accepted"), PAIRS)
def test_check_app_identity(pair, accepted):
    assert pair_ok(pair) == accepted


def test_a_too_long_pair_is_refused_with_one_line_that_says_what_to_fix():
    with pytest.raises(pkg.PackageError) as exc:
        pkg.check_app_identity(*TOO_LONG)
    assert str(exc.value) == (
        f"tenant {TOO_LONG[0]!r} and app {TOO_LONG[1]!r} are together 80 characters; their derived names "
        f"(<tenant>.<app>.<n>, app.<tenant>.<app>) allow at most {LIMIT}: shorten one or both by {80 - LIMIT}"
    )


def test_check_app_identity_checks_each_name_first():
    with pytest.raises(pkg.PackageError, match="tenant name 'Demo' has 'D' at position 1"):
        pkg.check_app_identity("Demo", "hello")
    with pytest.raises(pkg.PackageError, match=r"app name 'a\.b' has '\.' at position 2"):
        pkg.check_app_identity("demo", "a.b")
    with pytest.raises(pkg.PackageError, match="app name must not be empty"):
        pkg.check_app_identity("demo", None)


def test_the_limit_comes_from_the_derived_names_limits():
    """58: app.<tenant>.<app> within HAProxy's 63 (the instance names' 63, with <n> up to 50, allow 59)."""
    instance_room = pkg.INSTANCE_NAME_MAX_LEN - len(f"..{pkg.INSTANCES_PER_NODE_MAX}")
    backend_room = pkg.HAPROXY_NAME_MAX_LEN - len("app..")
    assert (instance_room, backend_room) == (59, 58)
    assert min(instance_room, backend_room) == LIMIT
    assert hr.HAPROXY_NAME_MAX_LEN == pkg.HAPROXY_NAME_MAX_LEN


def derived_names_pass(tenant, app):
    """Whether every name the bundle derives from the pair passes its own check."""
    try:
        for index in range(1, pkg.INSTANCES_PER_NODE_MAX + 1):
            pkg.check_instance_name(pkg.instance_name(tenant, app, index))
        hr.check_haproxy_name("backend", pkg.backend_name(tenant, app))
    except (pkg.PackageError, hr.HAProxyError):
        return False
    return True


def test_the_derived_names_of_a_pair_at_the_limit_pass_their_checks():
    assert pkg.instance_name(*AT_LIMIT, 1) == f"{AT_LIMIT[0]}.{AT_LIMIT[1]}.1"
    assert pkg.backend_name(*AT_LIMIT) == f"app.{AT_LIMIT[0]}.{AT_LIMIT[1]}"
    for tenant_len in range(1, LIMIT):  # every split of the limit
        assert derived_names_pass("t" * tenant_len, "a" * (LIMIT - tenant_len)), tenant_len


@pytest.mark.parametrize(("pair", "accepted"), PAIRS)
def test_the_rule_is_exactly_the_derived_names_checks(pair, accepted):
    """Not stricter than the derived names need either: a pair one character longer has one that fails."""
    assert derived_names_pass(*pair) == accepted


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
    assert package_module.check_app_identity is pkg.check_app_identity
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
    for pair in ((None, "hello"), ("demo", 1), (["demo"], "hello")):
        assert not tests.monoscape_app_identity(*pair)


@pytest.mark.parametrize(("pair", "accepted"), PAIRS)
def test_jinja_test_monoscape_app_identity(pair, accepted):
    assert tests.monoscape_app_identity(*pair) == accepted


@pytest.mark.parametrize(("pair", "accepted"), PAIRS)
def test_filter_monoscape_app_identity_error(pair, accepted):
    message = filters.monoscape_app_identity_error(*pair)
    if accepted:
        assert message == ""
    else:
        with pytest.raises(pkg.PackageError) as exc:
            pkg.check_app_identity(*pair)
        assert message == str(exc.value) and "\n" not in message


@pytest.fixture
def package(tmp_path_factory):
    path = tmp_path_factory.mktemp("package") / "hello.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("web.config", "<configuration/>")
    return path


def run_package_module(capsys, **params):
    with patch_module_args({"_ansible_check_mode": True, **params}), pytest.raises(SystemExit) as exc:
        package_module.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("pair", "accepted"), PAIRS)
def test_module_monoscape_package_checks_the_pair(capsys, package, pair, accepted):
    rc, result = run_package_module(capsys, path=str(package), tenant=pair[0], app=pair[1], version="1.0.0")
    assert rc == (0 if accepted else 1), result
    if not accepted:
        assert result["msg"] == filters.monoscape_app_identity_error(*pair)


def test_module_monoscape_package_checks_a_lone_name_alone(capsys, package):
    """Without the other name there is no pair to check (a 63-character tenant is a tenant)."""
    rc, _ = run_package_module(capsys, path=str(package), tenant="a" * 63)
    assert rc == 0


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
            # the rules' own file (roles/selfservice ships it to the controllers by a link)
            if path.resolve() == ROOT / "plugins/module_utils/monoscape_package.py":
                continue
            text = path.read_text(errors="replace")
            copies += [f"{path.relative_to(ROOT)}: {frag}" for frag in COPIES if frag in text]
    assert copies == []


# --- the roles, the playbook and the HAProxy template, through Ansible ---------------------
# (place, the name checked, the task file that checks it); each case's value is the
# tenant, the app, the version, the instance name, the instance count or the tenant
# and the app together (pair); the others stay valid.
PLACES = {
    "mono_runtime": "roles/mono_runtime/tasks/validate.yml",
    "load_balancer": "roles/load_balancer/tasks/check_backend.yml",
    "mono_app": "roles/mono_app/tasks/validate.yml",
    "undeploy_app": None,  # the first play of playbooks/undeploy_app.yml (written out below)
    "deploy_app": None,  # the first play of playbooks/deploy_app.yml: the package check, then mono_app's
}
FIRST_PLAYS = {"undeploy_app": "playbooks/undeploy_app.yml", "deploy_app": "playbooks/deploy_app.yml"}
KINDS = {
    "mono_runtime": ("tenant", "app", "instance", "pair"),
    "load_balancer": ("tenant", "app", "pair"),
    "mono_app": ("tenant", "app", "version", "instances", "pair"),
    "undeploy_app": ("tenant", "app", "pair"),
    # a module run per case (its single names are test_module_monoscape_package_*'s); each case is
    # another pair, so none is skipped as checked earlier in the run (mono_app_checked)
    "deploy_app": ("pair",),
}
INSTANCE_COUNTS = [1, pkg.INSTANCES_PER_NODE_MAX, 0, pkg.INSTANCES_PER_NODE_MAX + 1]
CORPUS = {
    "tenant": NAMES,
    "app": NAMES,
    "version": VERSIONS,
    "instance": INSTANCE_NAMES,
    "instances": INSTANCE_COUNTS,
    "pair": [pair for pair, _ in PAIRS],
}
VALID = {"tenant": "demo", "app": "hello", "version": "1.0.0", "instance": "demo.hello.1", "instances": 1}
# A tenant is checked with the valid app, an app with the valid tenant: every place checks
# the pair too, so a 63-character name, valid alone, is refused with either (63 + 5 > 58).
RULE = {
    "tenant": lambda value: name_ok(value) and pair_ok((value, VALID["app"])),
    "app": lambda value: name_ok(value) and pair_ok((VALID["tenant"], value)),
    "version": version_ok,
    "instance": instance_ok,
    "instances": instances_ok,
    "pair": pair_ok,
}

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
    mono_app_instances_per_node: "{{ case.instances }}"
    mono_app_releases_kept: 1
    mono_app_health_path: ""
    mono_app_health_timeout: 5
    mono_app_port_range_start: 9081
    mono_app_port_range_end: 9999
    mono_app_lb_hosts: [localhost]
    app_tenant: "{{ case.tenant }}"
    app_name: "{{ case.app }}"
    app_version: "{{ case.version }}"
    app_package: "{{ package }}"
    app_instances_per_node: "{{ case.instances }}"
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
    - name: The mono_app role's derived names
      ansible.builtin.include_vars: "{{ root }}/roles/mono_app/vars/main.yml"
    - name: Write the verdicts, the frontend and the names derived from a tenant and an app at the limit
      vars:
        mono_app_tenant: "{{ at_limit[0] }}"
        mono_app_name: "{{ at_limit[1] }}"
        mono_app_instances_per_node: "{{ instances_max }}"
      ansible.builtin.copy:
        dest: "{{ out }}"
        mode: "0600"
        content: >-
          {{ {'verdicts': verdicts,
              'frontend': lookup('ansible.builtin.template', root ~ '/roles/load_balancer/templates/frontend.cfg.j2'),
              'derived': {'instances': mono_app__instance_names, 'backend': mono_app__backend,
                          'backend_settings': lookup('ansible.builtin.template',
                                                     root ~ '/roles/load_balancer/templates/backend-settings.cfg.j2',
                                                     template_vars={'item': {'tenant': at_limit[0],
                                                                             'app': at_limit[1]}})}}
             | to_json }}
"""


@pytest.fixture(scope="module")
def ansible_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("name_rules")
    for place, playbook in FIRST_PLAYS.items():
        first = yaml.safe_load((ROOT / playbook).read_text())[0]
        assert first["hosts"] == "localhost", f"the name check is no longer {playbook}'s first play"
        (work / f"{place}_checks.yml").write_text(yaml.safe_dump(first["tasks"]))
    package = work / "hello.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("web.config", "<configuration/>")
    cases = []
    for place, kinds in KINDS.items():
        task_file = str(ROOT / PLACES[place]) if PLACES[place] else str(work / f"{place}_checks.yml")
        for kind in kinds:
            for index, value in enumerate(CORPUS[kind]):
                case = dict(VALID, id=f"{place}/{kind}/{index}", file=task_file)
                if kind == "pair":
                    case["tenant"], case["app"] = value
                else:
                    case[kind] = value
                cases.append(case)
    (work / "one_case.yml").write_text(ONE_CASE)
    (work / "site.yml").write_text(PLAYBOOK)
    out = work / "out.json"
    extra = {
        "cases": cases,
        "root": str(ROOT),
        "out": str(out),
        "package": str(package),
        "at_limit": list(AT_LIMIT),
        "instances_max": pkg.INSTANCES_PER_NODE_MAX,
    }
    (work / "vars.json").write_text(json.dumps(extra))
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
    assert wrong == [], f"{PLACES[place] or FIRST_PLAYS[place]} {kind}: (value, its verdict) against the rule"


@pytest.mark.parametrize("place", list(KINDS))
def test_every_place_refuses_a_too_long_pair_and_takes_one_at_the_limit(ansible_run, place):
    """40 + 40 characters: each a valid name, together too long for app.<tenant>.<app>."""
    assert "pair" in KINDS[place]
    verdicts = ansible_run["verdicts"]
    pairs = CORPUS["pair"]
    assert verdicts[f"{place}/pair/{pairs.index(TOO_LONG)}"] is False
    assert verdicts[f"{place}/pair/{pairs.index(AT_LIMIT)}"] is True


def test_the_roles_derive_the_names_the_limit_is_made_of(ansible_run):
    """The names mono_app and load_balancer build from a pair at the limit are pkg's, and pass."""
    derived = ansible_run["derived"]
    tenant, app = AT_LIMIT
    expected = [pkg.instance_name(tenant, app, n) for n in range(1, pkg.INSTANCES_PER_NODE_MAX + 1)]
    assert derived["instances"] == expected
    assert derived["backend"] == pkg.backend_name(tenant, app)
    assert derived["backend_settings"].splitlines()[0] == f"backend {pkg.backend_name(tenant, app)}"
    for name in derived["instances"]:
        pkg.check_instance_name(name)
    hr.check_haproxy_name("backend", derived["backend"])
    assert len(derived["backend"]) == pkg.HAPROXY_NAME_MAX_LEN  # the limit is the backend's


STATED_LIMIT = re.compile(r"at most\s+(\d+)\s+characters\s+together")


def test_documents_give_the_limit():
    """The texts that state how long a tenant and an app may be together state the rule's number."""
    stated = {}
    for top in ("plugins", "roles", "playbooks", "docs"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in {".py", ".yml", ".md"}:
                for number in STATED_LIMIT.findall(path.read_text(errors="replace")):
                    stated.setdefault(int(number), []).append(str(path.relative_to(ROOT)))
    for path in (ROOT / "README.md", ROOT / "CHANGELOG.md"):
        for number in STATED_LIMIT.findall(path.read_text()):
            stated.setdefault(int(number), []).append(path.name)
    assert set(stated) == {LIMIT}, stated


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
