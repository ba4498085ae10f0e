"""The checksums filter the playbooks fingerprint their inputs with: files and folders
(recursively), relative paths, excluded names, and an error for a path that is neither."""

import hashlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.monoscape.paas.plugins.filter.monoscape import monoscape_checksums


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def test_files_and_folders_are_summed_relative_to_the_root(tmp_path):
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "site.yml").write_text("site\n")
    (tmp_path / "playbooks" / "other.yml").write_text("not named\n")
    role = tmp_path / "roles" / "r" / "tasks" / "deep"
    role.mkdir(parents=True)
    (role / "main.yml").write_text("task\n")
    (tmp_path / "roles" / "r" / "README.md").write_text("docs\n")
    (tmp_path / "roles" / "r" / "x.pyc").write_bytes(b"\0")
    sums = monoscape_checksums([str(tmp_path / "playbooks" / "site.yml"), str(tmp_path / "roles" / "r")], str(tmp_path))
    assert sums == {"playbooks/site.yml": sha("site\n"), "roles/r/tasks/deep/main.yml": sha("task\n")}


def test_a_change_in_any_file_changes_the_sums(tmp_path):
    (tmp_path / "a.yml").write_text("one\n")
    before = monoscape_checksums([str(tmp_path / "a.yml")], str(tmp_path))
    (tmp_path / "a.yml").write_text("one \n")  # trailing whitespace counts
    assert monoscape_checksums([str(tmp_path / "a.yml")], str(tmp_path)) != before


def test_a_missing_path_or_a_bare_string_is_refused(tmp_path):
    with pytest.raises(AnsibleFilterError, match="neither a file nor a folder"):
        monoscape_checksums([str(tmp_path / "nope.yml")], str(tmp_path))
    with pytest.raises(AnsibleFilterError, match="list of paths"):
        monoscape_checksums(str(tmp_path), str(tmp_path))
