"""os_known_hosts against the in-memory cloud: keys read from console logs (real
keys made by ssh-keygen), pinned under the server's name with its id, left alone
without any API call when already pinned, a changed key refused with the re-pin
command, check mode writing nothing, --diff showing the lines."""

import os
import stat

import pytest

from ansible_collections.monoscape.paas.plugins.module_utils import openstack as base
from ansible_collections.monoscape.paas.plugins.module_utils.host_keys import HEADER, read_pins, sha256_fingerprint
from ansible_collections.monoscape.paas.plugins.modules import os_known_hosts

from .test_host_keys import BOOT_NOISE, Server, keygen_fingerprint


@pytest.fixture(scope="module")
def keysets(tmp_path_factory):
    """Three servers' worth of host keys (ssh-keygen is slow enough to make them once)."""
    folder = tmp_path_factory.mktemp("hostkeys")
    return [Server(folder / f"k{n}", f"k{n}") for n in range(3)]


def boot(cloud, name, keys, log=None):
    """A server whose console log shows ``keys`` as cloud-init prints them."""
    flavor = cloud.compute.find_flavor("m1.tiny")
    net = cloud.network.find_network("private")
    server = cloud.compute.create_server(name=name, flavor_id=flavor.id, image_id="i", networks=[{"uuid": net.id}])
    cloud.compute.console_logs[server.id] = log if log is not None else BOOT_NOISE + keys.console()
    return server


@pytest.fixture
def path(tmp_path):
    return tmp_path / "known_hosts"


@pytest.fixture
def nodes(cloud, keysets):
    servers = [boot(cloud, f"acme-node-{n}", keysets[n]) for n in range(2)]
    cloud.calls.clear()
    return servers


@pytest.fixture
def connections(monkeypatch, cloud):
    """Every connection the module opens."""
    opened = []

    def connect(self):
        opened.append(self.params["cloud"])
        return cloud

    monkeypatch.setattr(base.OpenStackModule, "connect", connect)
    return opened


def pinned_lines(path, name):
    return [line for line in path.read_text().splitlines() if line.startswith(f"{name} ")]


# ---------------------------------------------------------------------- present


def test_pins_keys_from_the_console_log(run, cloud, nodes, keysets, path):
    args = {"path": str(path), "servers": ["acme-node-0", "acme-node-1"]}
    check = run(os_known_hosts, args, check_mode=True)
    assert check["changed"]
    assert not path.exists(), "check mode writes nothing"
    result = run(os_known_hosts, args)
    assert result["changed"]
    assert result["path"] == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER
    for server, keys in zip(nodes, keysets, strict=False):
        assert pinned_lines(path, server.name) == [
            f"{server.name} {t} {keys.keys[t]} monoscape-server-id={server.id}" for t in sorted(keys.keys)
        ]
    first = result["pinned"][0]
    assert first == {
        "name": "acme-node-0",
        "id": nodes[0].id,
        "fingerprints": [sha256_fingerprint(keysets[0].keys[t]) for t in sorted(keysets[0].keys)],
        "changed": True,
    }
    assert sorted(first["fingerprints"]) == sorted(keygen_fingerprint(p)[1] for p in keysets[0].pubs.values())
    # the second run: same file, no change, no console read
    before = path.read_bytes()
    cloud.calls.clear()
    again = run(os_known_hosts, args)
    assert not again["changed"]
    assert [p["changed"] for p in again["pinned"]] == [False, False]
    assert again["pinned"][0]["fingerprints"] == first["fingerprints"]
    assert path.read_bytes() == before
    assert "get_server_console_output" not in cloud.calls


def test_unresolved_names_take_one_filtered_server_list(run, cloud, nodes, keysets, path):
    boot(cloud, "acme-lb", keysets[2])
    cloud.calls.clear()
    run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0", "acme-lb", "acme-node-1"]})
    listings = [c for c in cloud.calls if c.startswith("list servers")]
    assert listings == ["list servers name=^(acme-lb|acme-node-0|acme-node-1)$"]
    assert cloud.calls.count("get_server_console_output") == 3
    assert set(read_pins(path.read_text())) == {"acme-node-0", "acme-node-1", "acme-lb"}


def test_pinned_with_the_same_ids_opens_no_connection(run, cloud, nodes, path, connections):
    servers = [{"name": s.name, "id": s.id} for s in nodes]
    run(os_known_hosts, {"path": str(path), "servers": servers})
    assert len(connections) == 1
    cloud.calls.clear()
    result = run(os_known_hosts, {"path": str(path), "servers": servers})
    assert not result["changed"]
    assert len(connections) == 1, "no second connection: every server was pinned with that id"
    assert cloud.calls == []
    # a pinned id alone needs no look-up either
    assert not run(os_known_hosts, {"path": str(path), "servers": [nodes[0].id]})["changed"]
    assert len(connections) == 1


def test_the_inventory_plugins_server_variables_are_accepted_as_they_are(run, cloud, nodes, path, connections):
    """playbooks/host_keys.yml passes each host's `openstack` variable: name and id count,
    the other keys (addresses, metadata, ...) are ignored."""
    servers = [
        {
            "name": s.name,
            "id": s.id,
            "status": "ACTIVE",
            "fixed_ips": ["10.0.0.9"],
            "metadata": {"monoscape_role": "node"},
        }
        for s in nodes
    ]
    assert run(os_known_hosts, {"path": str(path), "servers": servers})["changed"]
    result = run(os_known_hosts, {"path": str(path), "servers": servers})
    assert not result["changed"]
    assert len(connections) == 1, "the second run knew every id: no connection"


def test_given_name_and_id_skip_the_server_list(run, cloud, nodes, path):
    run(os_known_hosts, {"path": str(path), "servers": [{"name": nodes[0].name, "id": nodes[0].id}]})
    assert not [c for c in cloud.calls if c.startswith("list servers")]
    assert cloud.calls.count("get_server_console_output") == 1


def test_an_id_is_found_in_the_full_listing(run, cloud, nodes, path):
    result = run(os_known_hosts, {"path": str(path), "servers": [nodes[1].id, {"id": nodes[0].id}]})
    assert [p["name"] for p in result["pinned"]] == ["acme-node-1", "acme-node-0"]
    assert [c for c in cloud.calls if c.startswith("list servers")] == ["list servers"]


def test_other_hosts_lines_are_kept(run, nodes, path):
    theirs = (
        "# operator's own\n"
        "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    path.write_text(theirs)
    run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"]})
    text = path.read_text()
    assert text.startswith(HEADER + "\n" + theirs)
    assert len(pinned_lines(path, "acme-node-0")) == 3


def test_diff_shows_the_lines(run, nodes, path):
    result = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"]}, diff=True)
    assert result["diff"]["before"] == ""
    assert result["diff"]["after"] == path.read_text()
    assert result["diff"]["after_header"] == str(path)
    assert "diff" not in run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"]}, diff=True)


@pytest.fixture
def meanwhile(monkeypatch):
    """``meanwhile(change)``: ``change()`` runs after the console logs were read, before the
    file is written - as another task writing the same file at that moment."""

    def install(change):
        read_keys = os_known_hosts.KnownHostsModule.read_keys

        def read_then_change(self, items):
            read_keys(self, items)
            change()

        monkeypatch.setattr(os_known_hosts.KnownHostsModule, "read_keys", read_then_change)

    return install


def test_lines_written_while_the_task_ran_are_kept(run, nodes, path, meanwhile):
    """Tasks delegated to the control node for each host write one file at once."""
    other = "acme-lb ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2U= monoscape-server-id=lb\n"
    meanwhile(lambda: path.write_text(HEADER + "\n" + other))
    result = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"]})
    assert result["changed"]
    assert set(read_pins(path.read_text())) == {"acme-lb", "acme-node-0"}


def test_a_pin_changed_while_the_task_ran_fails(run, cloud, nodes, path, meanwhile):
    given = {"name": nodes[0].name, "id": nodes[0].id}
    run(os_known_hosts, {"path": str(path), "servers": [given]})
    replaced = path.read_text().replace(nodes[0].id, "someone-else")
    meanwhile(lambda: path.write_text(replaced))
    result = run(os_known_hosts, {"path": str(path), "servers": [given, "acme-node-1"]})
    assert result["failed"]
    assert "was changed by someone else while this task ran; run it again" in result["msg"]
    assert path.read_text() == replaced


# ---------------------------------------------------------------------- re-created servers


@pytest.fixture
def recreate(cloud, keysets):
    """``recreate(server, n)``: delete the server, boot one of the same name whose console shows keysets[n]."""

    def _recreate(server, n):
        cloud.compute.delete_server(server.id)
        cloud.calls.clear()
        return boot(cloud, server.name, keysets[n])

    return _recreate


def test_recreated_with_the_same_keys_only_updates_the_id(run, nodes, path, recreate):
    run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"]})
    new = recreate(nodes[0], 0)  # a server booted from a snapshot that kept its keys
    result = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"]})
    assert result["changed"]
    assert result["pinned"][0]["id"] == new.id
    assert read_pins(path.read_text())["acme-node-0"].server_id == new.id


def test_recreated_with_other_keys_fails_and_names_everything(run, nodes, keysets, path, recreate):
    run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"]})
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    new = recreate(nodes[0], 2)
    result = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0", "acme-node-1"]})
    assert result["failed"]
    msg = result["msg"]
    assert "the SSH host keys of server 'acme-node-0' differ from the keys pinned in" in msg
    for key in keysets[0].keys.values():
        assert sha256_fingerprint(key) in msg
    for key in keysets[2].keys.values():
        assert sha256_fingerprint(key) in msg
    assert f"(server id {nodes[0].id})" in msg
    assert f"(server id {new.id})" in msg
    assert "ansible-playbook playbooks/host_keys.yml -e monoscape_repin=acme-node-0" in msg
    assert "Nothing was changed" in msg
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime
    assert "acme-node-1" not in path.read_text(), "nothing written for the others either"


def test_repin_replaces_and_reports(run, nodes, path, recreate, module_warnings):
    old_prints = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"]})["pinned"][0]["fingerprints"]
    new = recreate(nodes[0], 2)
    check = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"], "repin": True}, check_mode=True)
    assert check["changed"]
    assert read_pins(path.read_text())["acme-node-0"].server_id == nodes[0].id
    result = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"], "repin": True})
    assert result["changed"]
    assert result["pinned"][0]["previous"] == {"id": nodes[0].id, "fingerprints": old_prints}
    assert result["pinned"][0]["id"] == new.id
    pin = read_pins(path.read_text())["acme-node-0"]
    assert pin.fingerprints == result["pinned"][0]["fingerprints"]
    assert not set(pin.fingerprints) & set(old_prints)
    assert pin.server_id == new.id
    assert len(module_warnings) == 2  # check mode and the real run
    assert module_warnings[-1].startswith("re-pinned server 'acme-node-0': keys " + old_prints[0])
    assert f"(server id {new.id})" in module_warnings[-1]


def test_a_hand_pin_without_the_id_mark_gets_the_id_when_keys_match(run, cloud, nodes, keysets, path):
    path.write_text("".join(f"acme-node-0 {t} {k}\n" for t, k in keysets[0].keys.items()))
    result = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"]})
    assert result["changed"]
    assert read_pins(path.read_text())["acme-node-0"].server_id == nodes[0].id


# ---------------------------------------------------------------------- console logs


def test_waits_for_the_keys_of_a_server_that_just_booted(run, cloud, keysets, path):
    server = boot(cloud, "acme-node-0", keysets[0])
    cloud.compute.console_logs[server.id] = ["", BOOT_NOISE, BOOT_NOISE + keysets[0].console()]
    cloud.compute.console_building[server.id] = 2  # Nova answers 409 while the server builds
    cloud.calls.clear()
    result = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"], "console_timeout": 60})
    assert not result["failed"], result.get("msg")
    assert result["changed"]
    assert cloud.calls.count("get_server_console_output") == 5


def test_no_keys_in_the_console_log_fails_and_says_how_to_pin_by_hand(run, cloud, keysets, path):
    server = boot(cloud, "acme-node-0", keysets[0], log=BOOT_NOISE)
    result = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"], "console_timeout": 0})
    assert result["failed"]
    msg = result["msg"]
    assert f"the console log of server 'acme-node-0' ({server.id}) shows no SSH host keys" in msg
    assert "cloud-init prints them at first boot" in msg
    assert "To pin by hand" in msg
    assert str(path) in msg
    assert "monoscape-server-id=<server id>" in msg
    assert not path.exists()


def test_wait_false_reads_each_console_once(run, cloud, keysets, path):
    boot(cloud, "acme-node-0", keysets[0], log=BOOT_NOISE)
    cloud.calls.clear()
    result = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"], "wait": False})
    assert result["failed"]
    assert cloud.calls.count("get_server_console_output") == 1


def test_an_inconsistent_console_log_fails(run, cloud, keysets, path):
    mixed = keysets[0].console().split("-----BEGIN SSH HOST KEY KEYS-----")[0]
    mixed += "-----BEGIN SSH HOST KEY KEYS-----\n" + keysets[1].key_lines()[0] + "\n-----END SSH HOST KEY KEYS-----\n"
    boot(cloud, "acme-node-0", keysets[0], log=mixed)
    result = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"]})
    assert result["failed"]
    assert "inconsistent" in result["msg"]
    assert "openstack console log show" in result["msg"]
    assert not path.exists()


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("servers", "fragment"),
    [
        (["ghost"], "servers[0]: unknown server 'ghost'"),
        ([{"ip": "10.0.0.1"}], "servers[0] must be a server name or id"),
        ([{"name": 5}], "servers[0] must be a server name or id"),
        ([""], "servers[0] is empty"),
        ([{"name": "bad name", "id": "x"}], "cannot be a known_hosts host name"),
        ([{"name": "acme-node-0", "id": "no-such-id"}], "with id no-such-id does not exist"),
    ],
)
@pytest.mark.usefixtures("nodes")
def test_bad_servers_write_nothing(run, path, servers, fragment):
    result = run(os_known_hosts, {"path": str(path), "servers": servers})
    assert result["failed"]
    assert fragment in result["msg"], result["msg"]
    assert not path.exists()


def test_two_servers_of_one_name_are_refused(run, cloud, nodes, keysets, path):
    boot(cloud, "acme-node-0", keysets[2])
    result = run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0"]})
    assert result["failed"]
    assert "2 servers are named 'acme-node-0'; give the one to pin as {name, id}" in result["msg"]


def test_missing_folder_fails(run, nodes, tmp_path):
    result = run(os_known_hosts, {"path": str(tmp_path / "nope" / "known_hosts"), "servers": ["acme-node-0"]})
    assert result["failed"]
    assert "does not exist; create it first" in result["msg"]


# ---------------------------------------------------------------------- absent


def test_absent_removes_only_those_lines_without_asking_the_cloud(run, cloud, nodes, path, connections):
    run(os_known_hosts, {"path": str(path), "servers": ["acme-node-0", "acme-node-1"]})
    opened = len(connections)
    path.write_text(path.read_text() + "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2U=\n")
    before = path.read_bytes()
    args = {"path": str(path), "servers": ["acme-node-0", "acme-node-7"], "state": "absent"}
    check = run(os_known_hosts, args, check_mode=True, diff=True)
    assert check["changed"]
    assert check["removed"] == ["acme-node-0"]
    assert "acme-node-0" in check["diff"]["before"]
    assert "acme-node-0" not in check["diff"]["after"]
    assert path.read_bytes() == before
    result = run(os_known_hosts, args)
    assert result["changed"]
    assert set(read_pins(path.read_text())) == {"acme-node-1", "github.com"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not run(os_known_hosts, args)["changed"]
    # by id, as the pin records it
    assert run(os_known_hosts, {"path": str(path), "servers": [nodes[1].id], "state": "absent"})["removed"] == [
        "acme-node-1"
    ]
    assert len(connections) == opened, "absent never connects"
