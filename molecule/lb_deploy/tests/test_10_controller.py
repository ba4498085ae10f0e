"""The controller after converge: HAProxy from Debian, configuration from
fragments that validates, the Runtime API admin socket for root only and a read-only one, the
statistics page on the loopback, Monoscape's routing and error pages, and app
membership persisted so that a reload keeps it."""

import http.client
import os
import pathlib
import re
import ssl

import pytest
from conftest import (
    BACKEND,
    CONTROLLER,
    NODES,
    PREFIX,
    VARS,
    address,
    backend_servers,
    fetch,
    get,
    served_versions,
    sh,
)

testinfra_hosts = [f"podman://{CONTROLLER}"]


def test_haproxy_from_debian_running_and_enabled(host):
    assert host.package("haproxy").is_installed
    assert host.package("haproxy").version.startswith("2.6")
    svc = host.service("haproxy")
    assert svc.is_running
    assert svc.is_enabled


def test_whole_configuration_validates(host):
    out = host.run("haproxy -c -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d")
    assert out.rc == 0, out.stdout + out.stderr
    assert "Configuration file is valid" in out.stdout + out.stderr


def test_fragment_validator_refuses_a_broken_fragment(host):
    out = host.run(
        "printf 'backend app.x.y\\n    balance nonsense\\n' > /tmp/bad.cfg; "
        "/usr/local/lib/monoscape/haproxy-check-fragment /etc/haproxy/conf.d/50-app.x.y.cfg /tmp/bad.cfg"
    )
    assert out.rc != 0
    assert "50-app.x.y.cfg:2" in out.stdout + out.stderr  # the candidate, checked under its target name
    assert not host.file("/etc/haproxy/conf.d/50-app.x.y.cfg").exists


def test_runtime_api_admin_socket_is_root_only_and_stats_socket_read_only(host):
    sock = host.file("/run/haproxy/admin.sock")
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == ("root", "root", 0o600)
    stats = host.file("/run/haproxy/stats.sock")
    assert stats.is_socket
    assert (stats.user, stats.group, stats.mode) == ("root", "haproxy-stats", 0o660)
    # level operator: statistics are read (with addresses), an admin command is refused
    assert "pxname" in host.check_output("echo 'show stat' | socat stdio /run/haproxy/stats.sock")
    refused = host.check_output("echo 'disable frontend monoscape-http' | socat stdio /run/haproxy/stats.sock")
    assert "Permission denied" in refused
    master = host.file("/run/haproxy-master.sock")
    assert master.is_socket
    assert master.mode & 0o077 == 0


def test_statistics_page_on_the_loopback_only(host):
    ip, port = VARS["lb_deploy_stats_bind"].rsplit(":", 1)
    assert host.socket(f"tcp://{ip}:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    page = host.check_output(f"curl -sf http://{ip}:{port}/")
    assert "Statistics Report" in page
    assert BACKEND in page


def test_public_frontend_listens(host):
    assert host.socket(f"tcp://0.0.0.0:{VARS['lb_deploy_http_port']}").is_listening


def https_get(path, context):
    conn = http.client.HTTPSConnection(address(CONTROLLER), VARS["lb_deploy_https_port"], timeout=10, context=context)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_https_serves_the_app_with_the_deployment_certificate():
    """HTTPS on the frontend, verified the strict way: against the scenario's self-signed
    certificate (converge.yml), for the controller's address (IP subject alternative name)."""
    ca = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "lb-ca.pem"
    context = ssl.create_default_context(cafile=str(ca))
    status, body = https_get(PREFIX, context)
    assert status == 200, body
    assert f"version: {VARS['lb_deploy_first_version']}" in body
    # a client that does not trust it refuses it
    with pytest.raises(ssl.SSLCertVerificationError, match=r"self[- ]signed certificate"):
        https_get(PREFIX, ssl.create_default_context())
    # TLS below 1.2: a client that offers only TLS 1.1 gets the server's protocol_version alert
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(str(ca))
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client itself may offer TLS 1.1
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError) as refused:
        https_get(PREFIX, old)
    assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", refused.value


def test_certificate_key_is_root_only(host):
    pem = host.file("/etc/haproxy/certs/monoscape.pem")
    assert (pem.user, pem.group, pem.mode) == ("root", "root", 0o600)
    assert (host.file("/etc/haproxy/certs").mode, host.file("/etc/haproxy/certs").user) == (0o700, "root")
    assert host.socket(f"tcp://0.0.0.0:{VARS['lb_deploy_https_port']}").is_listening


def test_unknown_app_gets_the_404_page():
    status, body = get("/nobody/nothing/")
    assert status == 404
    assert "no app here" in body
    assert "/&lt;tenant&gt;/&lt;app&gt;/" in body
    # names are case-sensitive: an upper-case spelling is another (unknown) app
    assert get(PREFIX.upper())[0] == 404


def test_app_root_without_slash_is_redirected():
    status, _, headers = fetch(PREFIX.rstrip("/") + "?q=1")
    assert status == 301
    assert headers["location"] == PREFIX + "?q=1"


def test_paths_escaping_the_prefix_are_refused():
    for path in (PREFIX + "../../web.config", PREFIX + "%2e%2e/web.config", PREFIX + "./Default.aspx"):
        assert get(path)[0] == 400, path


def test_monitor_uri_answers():
    assert get("/_monoscape/health")[0] == 200


def test_app_served_by_both_nodes_through_its_backend():
    seen = served_versions(10)
    assert {version for version, _ in seen} == {VARS["lb_deploy_first_version"]}
    assert {host for _, host in seen} == set(NODES)


def test_membership_is_persisted_in_the_backend_fragment(host):
    text = host.file(f"/etc/haproxy/conf.d/50-{BACKEND}.cfg").content_string
    assert f"backend {BACKEND}" in text
    for node in NODES:
        port = re.search(r'"port": (\d+)', sh(node, "cat /etc/monoscape/ports.json")).group(1)
        assert re.search(rf"^\s+server {node}-1 {re.escape(address(node))}:{port} weight \d+ check ", text, re.M), text


def test_reload_keeps_the_membership(host):
    before = backend_servers()
    host.check_output("systemctl reload haproxy")
    # the new worker serves the same servers (persisted), and they pass their checks
    out = host.run(
        f"for i in $(seq 1 40); do echo 'show stat {BACKEND} 4 -1' | socat stdio /run/haproxy/admin.sock "
        "| grep -c ',UP,' | grep -qx 2 && exit 0; sleep 0.5; done; exit 1"
    )
    assert out.rc == 0
    after = backend_servers()
    assert sorted(after) == sorted(before)
    assert {(s["srv_addr"], s["srv_port"]) for s in after.values()} == {
        (s["srv_addr"], s["srv_port"]) for s in before.values()
    }
    assert {host for _, host in served_versions(10)} == set(NODES)


COUNTER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 18099))
s.listen(16)
n = 0
while True:
    c, _ = s.accept()
    c.recv(65536)
    n += 1
    open("/tmp/retry-probe.count", "w").write(str(n))
    c.close()  # an empty response: retry-on empty-response applies
"""


def test_only_idempotent_requests_are_retried_after_the_server_saw_them(host):
    """A server that reads each request and closes without answering: a GET is
    re-sent (1 + load_balancer_retries times in all), a POST is sent once."""
    fragment = "/etc/haproxy/conf.d/50-app.retry.probe.cfg"
    host.check_output("cat > /tmp/retry-probe.py <<'PY'\n" + COUNTER + "PY")
    host.check_output("setsid python3 /tmp/retry-probe.py >/dev/null 2>&1 & echo $! > /tmp/retry-probe.pid")
    host.check_output(
        f"printf 'backend app.retry.probe\\n    mode http\\n    server probe 127.0.0.1:18099\\n' > {fragment}"
        " && systemctl reload haproxy"
    )
    url = f"http://127.0.0.1:{VARS['lb_deploy_http_port']}/retry/probe/"
    try:
        counts = {}
        for method in ("GET", "POST"):
            # the probe counts every request it reads since it started
            before = int(host.run("cat /tmp/retry-probe.count").stdout.strip() or 0)
            status = host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' -X {method} -d x=1 {url}")
            assert status == "502", (method, status)
            counts[method] = int(host.check_output("cat /tmp/retry-probe.count")) - before
        assert counts == {"GET": 1 + 3, "POST": 1}  # load_balancer_retries: 3 (default)
    finally:
        host.run(f"rm -f {fragment} && systemctl reload haproxy; kill $(cat /tmp/retry-probe.pid)")
        host.run("rm -f /tmp/retry-probe.count /tmp/retry-probe.pid /tmp/retry-probe.py")
