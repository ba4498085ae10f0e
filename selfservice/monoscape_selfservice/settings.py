"""The service's settings: one JSON file written by the selfservice role
(/etc/monoscape/selfservice.json), every key checked when the service starts."""

import dataclasses
import json


@dataclasses.dataclass(frozen=True)
class Settings:
    keystone_url: str  # the cloud's public identity endpoint
    project_id: str  # the deployment's project: roles on it decide what a user may do
    state_dir: str  # sessions and rate limit (SQLite), 0700, owned by the service
    audit_log: str
    status_file: str  # the status document status.yml publishes (read-only here)
    bundle_dir: str = ""  # the bundle (playbooks, roles, plugins, ansible.cfg) the jobs run
    inventory: str = ""  # the nodes and controllers the jobs reach (written by the selfservice role)
    releases_dir: str = ""  # uploaded packages (default: <state_dir>/releases)
    releases_kept: int = 5  # uploads kept per app, besides the version the app runs
    upload_max_bytes: int = 64 * 1024 * 1024  # the package rules' limit (DEFAULT_MAX_BYTES)
    user_domain: str = "Default"
    session_lifetime: int = 3600  # seconds; never longer than the Keystone token
    secure_cookies: bool = False  # true behind TLS: the session cookie is Secure
    login_failures_allowed: int = 5  # failed logins per client address and per user name ...
    login_failure_window: int = 300  # ... within this many seconds; then 429 until the window passes
    keystone_timeout: float = 10.0
    proxy_hops: int = 0  # reverse proxies in front (nginx: 1) whose X-Forwarded-For/-Proto are trusted
    max_instances_per_node: int = 8
    deploy_roles: tuple = ("member", "admin")
    read_roles: tuple = ("reader",)

    @classmethod
    def load(cls, path):
        with open(path) as handle:
            document = json.load(handle)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(document) - set(fields))
        if unknown:
            raise ValueError(f"{path}: unknown settings {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
        for name in ("deploy_roles", "read_roles"):
            if name in document:
                document[name] = tuple(document[name])
        return cls(**document)
