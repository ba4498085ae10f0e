"""`monoscape`: the self-service API from a terminal (docs/runbooks/app-developer.md).

  monoscape login URL [--user NAME]          sign in (password from MONOSCAPE_PASSWORD or asked)
  monoscape apps                              the apps and their versions
  monoscape push PACKAGE --tenant T --app A --version V [--instances N]
                                              upload, deploy, follow the job; exit code = result
  monoscape rollback --tenant T --app A       roll back, follow the job
  monoscape logs JOB                          a job's log (follows it while it runs)
  monoscape logout

The session (cookie and CSRF token, never the password) is kept in
$XDG_CONFIG_HOME/monoscape/session.json (0600). --ca-file trusts the deployment's
self-signed certificate (tls/lb-ca.pem in its state folder)."""

import argparse
import getpass
import json
import os
import pathlib
import ssl
import sys
import time
import urllib.error
import urllib.request

TERMINAL = ("succeeded", "failed")


class Failure(Exception):
    """An error for the user: printed, exit code 1 (2 for a failed job)."""


def session_path():
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return pathlib.Path(base, "monoscape", "session.json")


class Client:
    def __init__(self, url, cookie="", csrf="", ca_file=None):
        self.url, self.cookie, self.csrf, self.ca_file = url.rstrip("/"), cookie, csrf, ca_file
        context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    @classmethod
    def load(cls):
        path = session_path()
        try:
            saved = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            raise Failure("not signed in: monoscape login URL") from None
        return cls(saved["url"], saved["cookie"], saved["csrf"], saved.get("ca_file"))

    def save(self):
        path = session_path()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"url": self.url, "cookie": self.cookie, "csrf": self.csrf, "ca_file": self.ca_file}, handle)

    def call(self, method, path, body=None, data=None, content_type="application/json"):
        headers = {"Accept": "application/json"}
        if self.cookie:
            headers["Cookie"] = f"monoscape_session={self.cookie}"
        if self.csrf and method not in ("GET", "HEAD"):
            headers["X-CSRF-Token"] = self.csrf
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self.opener.open(request, timeout=60) as response:
                document = json.loads(response.read() or b"{}")
                for header in response.headers.get_all("Set-Cookie") or []:
                    name, _, rest = header.partition("=")
                    if name.strip() == "monoscape_session":
                        self.cookie = rest.split(";", 1)[0]
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error") or exc.reason
            except ValueError:
                message = exc.reason
            raise Failure(f"{method} {path}: {exc.code} {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise Failure(f"cannot reach {self.url}: {getattr(exc, 'reason', exc)}") from None
        return document


def follow(client, job, out=sys.stdout, poll=1.0):
    """Print the job's log as it grows until it ends; returns the finished job."""
    offset = 0
    while True:
        chunk = client.call("GET", f"/api/jobs/{job['id']}/log?offset={offset}")
        out.write(chunk["text"])
        out.flush()
        offset = chunk["offset"]
        if chunk["state"] in TERMINAL and not chunk["text"]:
            return client.call("GET", f"/api/jobs/{job['id']}")["job"]
        if not chunk["text"]:
            time.sleep(poll)


def finished(job, out):
    out.write(
        f"job {job['id']} {job['action']} {job['tenant']}/{job['app']}: {job['state']}"
        + (f" ({job['message']})" if job["message"] else "")
        + "\n"
    )
    return 0 if job["state"] == "succeeded" else 2


def main(argv=None, out=sys.stdout, poll=1.0):
    parser = argparse.ArgumentParser(prog="monoscape", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    login = commands.add_parser("login", help="sign in with your OpenStack credentials")
    login.add_argument("url")
    login.add_argument("--user", default=os.environ.get("OS_USERNAME") or getpass.getuser())
    login.add_argument("--ca-file", help="trust this certificate (the deployment's tls/lb-ca.pem)")
    commands.add_parser("logout")
    commands.add_parser("apps")
    push = commands.add_parser("push", help="upload a package and deploy it")
    push.add_argument("package", type=pathlib.Path)
    for name in ("--tenant", "--app", "--version"):
        push.add_argument(name, required=True)
    push.add_argument("--instances", type=int, default=1)
    rollback = commands.add_parser("rollback")
    rollback.add_argument("--tenant", required=True)
    rollback.add_argument("--app", required=True)
    logs = commands.add_parser("logs")
    logs.add_argument("job", type=int)
    args = parser.parse_args(argv)
    try:
        return run(args, out, poll)
    except Failure as exc:
        print(f"monoscape: {exc}", file=sys.stderr)
        return 1


def run(args, out, poll):
    if args.command == "login":
        password = os.environ.get("MONOSCAPE_PASSWORD") or getpass.getpass(f"Password for {args.user}: ")
        client = Client(args.url, ca_file=args.ca_file)
        client.csrf = client.call("POST", "/api/login", {"username": args.user, "password": password})["csrf_token"]
        client.save()
        who = client.call("GET", "/api/session")
        out.write(f"signed in to {client.url} as {who['user']} ({', '.join(who['roles'])})\n")
        return 0
    client = Client.load()
    if args.command == "logout":
        client.call("POST", "/api/logout")
        session_path().unlink(missing_ok=True)
        return 0
    if args.command == "apps":
        for app in client.call("GET", "/api/apps")["apps"]:
            out.write(f"{app['tenant']}/{app['app']} {app['version']} {app.get('url', '')}\n")
        return 0
    if args.command == "logs":
        return finished(follow(client, {"id": args.job}, out, poll), out)
    where = f"/api/apps/{args.tenant}/{args.app}"
    if args.command == "push":
        try:
            data = args.package.read_bytes()
        except OSError as exc:
            raise Failure(f"cannot read {args.package}: {exc.strerror}") from None
        release = client.call("PUT", f"{where}/releases/{args.version}", data=data, content_type="application/zip")
        out.write(f"uploaded {args.tenant}/{args.app} {args.version} (sha256 {release['release']['sha256']})\n")
        body = {"action": "deploy", "version": args.version, "instances_per_node": args.instances}
    else:
        body = {"action": "rollback"}
    job = client.call("POST", f"{where}/jobs", body)["job"]
    out.write(f"job {job['id']} queued\n")
    return finished(follow(client, job, out, poll), out)


if __name__ == "__main__":
    sys.exit(main())
