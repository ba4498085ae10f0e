"""The dashboard renderer (roles/dashboard/files/monoscape-dashboard.py): page
and JSON from a status document and HAProxy's `show stat` over a unix socket."""

import importlib.util
import json
import socket
import threading

import pytest

STAT = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,"
    "status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,"
    "rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,addr\n"
    "http-in,FRONTEND,,,1,2,,,,,,,,,,,,OPEN,,,,,,,,,,,,,,,,,,,,,,,\n"
    "app_demo_hello,node-1_9081,0,0,3,5,,,,,,,,,,,,UP,1,1,0,0,0,12,0,,1,3,1,,,,2,,,,L7OK,200,2,,10.0.0.12:9081\n"
    "app_demo_hello,node-2_9081,0,0,0,1,,,,,,,,,,,,DRAIN,1,1,0,0,0,3,0,,1,3,2,,,,2,,,,L7OK,200,2,,10.0.0.13:9081\n"
    "app_demo_hello,BACKEND,0,0,3,5,,,,,,,,,,,,UP,2,2,0,,0,12,0,,1,3,0,,,,1,,,,,,,,\n"
)


@pytest.fixture(scope="module")
def renderer(root):
    spec = importlib.util.spec_from_file_location("dashboard", root / "roles/dashboard/files/monoscape-dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def stats_socket(tmp_path):
    path = str(tmp_path / "admin.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    requests = []

    def serve():
        conn, _ = server.accept()
        with conn:
            requests.append(conn.recv(1024))
            conn.sendall(STAT.encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, requests
    thread.join(timeout=5)
    server.close()


def test_renders_status_and_live_backends(renderer, stats_socket, tmp_path):
    path, requests = stats_socket
    status = {
        "generated_at": "2026-11-25T18:00:00Z",
        "iaas": {"cloud": "lab", "project": "demo", "user": "demo", "authenticated": True, "ec2_credentials": False},
        "images": [
            {"name": "monoscape-node-abc", "status": "active", "properties": {"monoscape_node_hash": "f00dcafe"}}
        ],
        "nodes": [{"name": "node-1", "status": "ACTIVE", "address": "10.0.0.12"}],
        "apps": [
            {"tenant": "demo", "app": "hello", "version": "2.0.0", "instances": [{"node": "node-1", "port": 9081}]}
        ],
    }
    status_file = tmp_path / "status.json"
    status_file.write_text(json.dumps(status))
    out = tmp_path / "www"
    out.mkdir()
    assert renderer.main(["--status", str(status_file), "--socket", path, "--out", str(out)]) == 0
    assert requests == [b"show stat\n"]
    page = (out / "index.html").read_text()
    for text in (
        "monoscape-node-abc",
        "f00dcafe",
        "node-1",
        "10.0.0.12",
        "2.0.0",
        "node-1:9081",
        "node-2_9081",
        "DRAIN",
    ):
        assert text in page
    assert '<td class="ok">yes</td>' in page  # token issued
    assert '<td class="bad">no</td>' in page  # no EC2 credentials
    document = json.loads((out / "dashboard.json").read_text())
    assert [b["svname"] for b in document["backends"]] == ["node-1_9081", "node-2_9081"]
    assert document["backends"][0]["check_status"] == "L7OK"
    assert document["backends"][1]["addr"] == "10.0.0.13:9081"
    assert document["backends_error"] is None


def test_missing_socket_and_status_still_render(renderer, tmp_path):
    out = tmp_path / "www"
    out.mkdir()
    code = renderer.main(
        ["--status", str(tmp_path / "none.json"), "--socket", str(tmp_path / "no.sock"), "--out", str(out)]
    )
    assert code == 0
    page = (out / "index.html").read_text()
    assert "HAProxy stats unavailable" in page
    assert "no apps deployed" in page


def test_html_is_escaped(renderer):
    page = renderer.render({"nodes": [{"name": "<script>x</script>", "status": "ACTIVE"}]}, [], None, "t", 5)
    assert "<script>x</script>" not in page
    assert "&lt;script&gt;" in page


def test_nodes_show_their_addresses_and_image_name(renderer):
    """os_deployment_info gives addresses (a list) and image_id: the page shows both."""
    status = {
        "images": [{"id": "img-1", "name": "monoscape-node-abc", "status": "active"}],
        "nodes": [
            {"name": "node-1", "status": "ACTIVE", "addresses": ["10.0.0.12", "203.0.113.7"], "image_id": "img-1"},
            {"name": "node-2", "status": "ACTIVE", "addresses": [], "image_id": "gone"},
        ],
    }
    page = renderer.render(status, [], None, "t", 5)
    assert "<td>10.0.0.12, 203.0.113.7</td><td>monoscape-node-abc</td>" in page
    assert "<td>gone</td>" in page


def test_self_healing_runs_newest_first(renderer):
    status = {
        "reconcile": [
            {"at": "2026-12-07T01:00:00Z", "booted": ["demo-node-2"], "started": [], "deployed": ["demo-node-2"]},
            {"at": "2026-12-07T01:05:00Z", "booted": [], "started": ["demo-node-1"], "deployed": []},
        ]
    }
    page = renderer.render(status, [], None, "t", 5)
    section = page[page.index('id="self-healing"') :]
    assert section.index("01:05:00") < section.index("01:00:00")
    assert "<td>demo-node-2</td>" in section and "<td>demo-node-1</td>" in section
    assert "no repair needed so far" in renderer.render({}, [], None, "t", 5)
