"""The status table filter."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.monoscape.paas.plugins.filter.monoscape import monoscape_table


def test_table_aligns_columns_and_formats_values():
    rows = [
        {"name": "monoscape-node-1", "status": "ACTIVE", "ok": True, "addresses": ["10.42.0.5", "fd00::5"]},
        {"name": "n2", "status": None, "ok": False, "addresses": []},
    ]
    lines = monoscape_table(rows, ["name", ["status", "state"], "ok", "addresses"], title="Nodes")
    assert lines[0] == "Nodes"
    assert lines[1].split() == ["name", "state", "ok", "addresses"]
    assert lines[3].split() == ["monoscape-node-1", "ACTIVE", "yes", "10.42.0.5,", "fd00::5"]
    assert lines[4].split() == ["n2", "-", "no", "-"]
    # the second column starts at the same offset on every line
    offset = lines[1].index("state")
    assert lines[3][offset:].startswith("ACTIVE")
    assert lines[4][offset:].startswith("-")


def test_empty_table_says_so():
    assert monoscape_table([], ["name"])[-1] == "(none)"


@pytest.mark.parametrize(("rows", "columns"), [("x", ["a"]), ([{"a": 1}], [["a", "b", "c"]])])
def test_bad_input_is_a_clear_error(rows, columns):
    with pytest.raises(AnsibleFilterError, match="monoscape_table"):
        monoscape_table(rows, columns)
