"""The node image content hash (roles/node_image/tasks/hash.yml), run for real with
ansible-playbook on a copy of the roles: stable when nothing that shapes the image
changes (docs, other files of node_image, checkout location), different when a role
file, a builder variable, the controller address or the base image changes."""

import json
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    cases:
      base: {base: img-1, address: 10.0.0.5, node_vars: {}, deployment: acme}
      other_base: {base: img-2, address: 10.0.0.5, node_vars: {}, deployment: acme}
      other_address: {base: img-1, address: 10.0.0.6, node_vars: {}, deployment: acme}
      other_vars: {base: img-1, address: 10.0.0.5, node_vars: {mono_runtime_warmup: false}, deployment: acme}
      other_deployment: {base: img-1, address: 10.0.0.5, node_vars: {}, deployment: other}
    hashes: {}
  tasks:
    - name: hash each case
      ansible.builtin.include_tasks: one.yml
      loop: "{{ cases | dict2items }}"
    - name: write the hashes
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ hashes | to_json }}"
        mode: "0644"
"""

ONE = """
- name: hash one case
  ansible.builtin.include_role:
    name: node_image
    tasks_from: hash
  vars:
    node_image__base_image_id: "{{ item.value.base }}"
    node_image_controller_address: "{{ item.value.address }}"
    node_image_node_vars: "{{ item.value.node_vars }}"
    node_image_deployment: "{{ item.value.deployment }}"
- name: keep it
  ansible.builtin.set_fact:
    hashes: "{{ hashes | combine({item.key: node_image__hash, item.key ~ '_name': node_image__name}) }}"
"""


def copy_roles(dest):
    for role in ("mono_runtime", "node_controller", "node_image"):
        shutil.copytree(ROOT / "roles" / role, dest / "roles" / role)
    (dest / "play.yml").write_text(PLAYBOOK)
    (dest / "one.yml").write_text(ONE)


def hashes(work):
    out = work / "hashes.json"
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(work / "roles"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_INVENTORY="localhost,",
        ANSIBLE_NOCOLOR="1",
    )
    proc = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "play.yml", "-e", f"out={out}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    a = tmp_path_factory.mktemp("a")
    copy_roles(a)
    first = hashes(a)
    # another checkout location, docs edited, a node_image file that does not shape the image
    b = tmp_path_factory.mktemp("b")
    copy_roles(b)
    (b / "roles/node_controller/README.md").write_text("changed docs\n")
    with (b / "roles/node_image/tasks/retention.yml").open("a") as f:
        f.write("# a comment\n")
    same = hashes(b)
    # a template the builder gets
    with (b / "roles/node_controller/templates/node.conf.j2").open("a") as f:
        f.write("# new line\n")
    template = hashes(b)
    # the sysprep tasks shape the image too
    c = tmp_path_factory.mktemp("c")
    copy_roles(c)
    with (c / "roles/node_image/tasks/sysprep.yml").open("a") as f:
        f.write("# changed\n")
    sysprep = hashes(c)
    return first, same, template, sysprep


def test_hash_shape_and_name(runs):
    first = runs[0]
    assert len(first["base"]) == 64
    assert first["base_name"] == "monoscape-node-" + first["base"][:12]


def test_inputs_change_the_hash(runs):
    first = runs[0]
    values = [first[k] for k in ("base", "other_base", "other_address", "other_vars", "other_deployment")]
    assert len(set(values)) == 5, "two deployments of one project never share a node image"


def test_docs_location_and_unrelated_files_do_not(runs):
    first, same = runs[0], runs[1]
    assert same == first


def test_role_template_and_sysprep_change_it(runs):
    first, _, template, sysprep = runs
    assert template["base"] != first["base"]
    assert sysprep["base"] != first["base"]
    assert sysprep["base"] != template["base"]
