"""Answers the two URLs the devstack role checks, the way DevStack's services
do: Keystone's version document at /identity/v3 and Horizon's login page at
/dashboard/auth/login/. Everything else is 404. Usage: fake-web.py ADDRESS PORT"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

KEYSTONE_V3 = {
    "version": {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": "/identity/v3/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    }
}
LOGIN_PAGE = """<!DOCTYPE html>
<html><head><title>Login - OpenStack Dashboard</title></head><body>
<form id="" method="POST" action="/dashboard/auth/login/" autocomplete="off">
<input type="hidden" name="csrfmiddlewaretoken" value="fake">
<input type="text" name="username"><input type="password" name="password">
<button id="loginBtn" type="submit">Sign In</button>
</form></body></html>
"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/identity/v3":
            self.answer(200, "application/json", json.dumps(KEYSTONE_V3))
        elif self.path == "/dashboard/auth/login/":
            self.answer(200, "text/html; charset=utf-8", LOGIN_PAGE)
        else:
            self.answer(404, "text/plain", "not found\n")

    def answer(self, status, content_type, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    HTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
