# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Shared base of the monoscape.paas OpenStack modules (``os_*``).

One class, :class:`OpenStackModule`, gives every module the same things:

- the common options (``cloud`` from clouds.yaml or a dict, ``auth``, region,
  TLS, ``wait``/``timeout``, ``api_retries``) documented once in the
  ``monoscape.paas.openstack`` doc fragment;
- a lazily opened openstacksdk connection (a module that fails argument checks
  never talks to the cloud);
- :meth:`OpenStackModule.call`: every API call retried with exponential backoff
  on 409, 429, 5xx and connection failures; creates are re-checked before a
  retry so a lost response never makes a duplicate;
- :meth:`OpenStackModule.wait_for`: status polling with a timeout that says
  what it waited for and what it saw last;
- errors turned into failures that say what to fix (bad credentials, unknown
  cloud, unreachable endpoint, policy refusals, unknown image/flavor/network
  with the names that do exist);
- check mode and ``--diff`` plumbing (:meth:`exit` takes before/after).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import stat
import time
import traceback
from typing import ClassVar

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

try:
    import openstack
    from openstack import exceptions as sdk_exc

    try:
        from keystoneauth1 import exceptions as ks_exc
    except ImportError:  # pragma: no cover - keystoneauth1 is an openstacksdk dependency
        ks_exc = None
    SDK_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised on hosts without the SDK
    openstack = None
    sdk_exc = None
    ks_exc = None
    SDK_IMPORT_ERROR = traceback.format_exc()

MIN_SDK_VERSION = (1, 0)
#: seconds one HTTP request to the cloud may take (the api_timeout option; 0 means no limit)
DEFAULT_API_TIMEOUT = 60
#: what the catalog's service types are called in messages
SERVICE_NAMES = {
    "identity": "identity (Keystone)",
    "compute": "compute (Nova)",
    "network": "network (Neutron)",
    "image": "image (Glance)",
    "placement": "placement",
    "volumev3": "block-storage (Cinder)",
    "block-storage": "block-storage (Cinder)",
}
RETRY_STATUS = frozenset({409, 429, 500, 502, 503, 504})
HINT_LIMIT = 15

COMMON_ARGUMENT_SPEC = {
    "api_retries": {"type": "int", "default": 3},
    "api_timeout": {"type": "int", "default": DEFAULT_API_TIMEOUT},
    "auth": {"type": "dict", "no_log": True},
    "auth_type": {"type": "str"},
    "ca_cert": {"type": "str", "aliases": ["cacert"]},
    "client_cert": {"type": "str", "aliases": ["cert"]},
    "client_key": {"type": "str", "no_log": True, "aliases": ["key"]},
    "cloud": {"type": "raw"},
    "interface": {"type": "str", "default": "public", "choices": ["admin", "internal", "public"]},
    "region_name": {"type": "str"},
    "timeout": {"type": "int", "default": 180},
    "token_cache": {"type": "path", "fallback": (env_fallback, ["MONOSCAPE_TOKEN_CACHE"])},
    "validate_certs": {"type": "bool", "aliases": ["verify"]},
    "wait": {"type": "bool", "default": True},
}

_CONNECTION_OPTIONS = ("auth", "auth_type", "ca_cert", "client_cert", "client_key", "region_name", "validate_certs")
# keys of a connection dictionary (the cloud option) whose values are secrets
SECRET_KEYS = frozenset({"password", "secret", "token", "application_credential_secret", "key", "passcode", "totp"})


def secret_values(value):
    """Every secret string inside a clouds.yaml-style dictionary (nested), for no_log."""
    found = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and str(key).lower() in SECRET_KEYS and item:
                found.add(item)
            else:
                found |= secret_values(item)
    elif isinstance(value, list):
        for item in value:
            found |= secret_values(item)
    return found


#: cached tokens not used for this long are removed (Keystone's tokens live 1 h by default)
TOKEN_CACHE_MAX_AGE = 24 * 3600


def private_path(path, kind):
    """True when ``path`` is a ``kind`` ('file' or 'dir') of this user that nobody else can read."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    right_kind = stat.S_ISDIR(info.st_mode) if kind == "dir" else stat.S_ISREG(info.st_mode)
    return right_kind and info.st_uid == os.geteuid() and not info.st_mode & 0o077


class TokenCache:
    """Keystone tokens (keystoneauth's auth state: token, expiry, catalog) kept between
    module runs in a private folder, one file per set of credentials, so that the
    modules of one playbook run authenticate once instead of once each. The file
    name is a hash of the connection settings (the password included: other
    credentials never see this token); keystoneauth authenticates again when the
    token is near its expiry or refused."""

    def __init__(self, folder, config, plugin):
        self.folder = folder
        identity = {
            "plugin": type(plugin).__module__ + "." + type(plugin).__name__,
            "auth": config.get("auth"),
            "region_name": config.get("region_name"),
            "interface": config.get("interface"),
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
        self.path = os.path.join(folder, digest[:40] + ".json")
        self.loaded = None

    def load(self, plugin):
        """Give ``plugin`` the cached token, if there is a private cache file for it."""
        if not (private_path(self.folder, "dir") and private_path(self.path, "file")):
            return
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            with open(self.path) as handle:
                state = handle.read()
            plugin.set_auth_state(state)
            self.loaded = state

    def save(self, plugin):
        """Keep the plugin's token when it is new; forget tokens nobody used for a day."""
        with contextlib.suppress(Exception):  # a cache that cannot be written only costs time
            state = plugin.get_auth_state()
            if not state or state == self.loaded:
                return
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            if not private_path(self.folder, "dir"):
                return  # a folder others can read gets no token
            temporary = f"{self.path}.{os.getpid()}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(state)
            os.replace(temporary, self.path)
            self.prune()

    def prune(self):
        now = time.time()
        for name in os.listdir(self.folder):
            path = os.path.join(self.folder, name)
            with contextlib.suppress(OSError):
                if name.endswith((".json", ".tmp")) and now - os.lstat(path).st_mtime > TOKEN_CACHE_MAX_AGE:
                    os.unlink(path)


class ModuleFailure(Exception):
    """Raised inside a module's ``run`` to fail with a prepared message."""

    def __init__(self, msg, **extra):
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


def sdk_version():
    """The installed openstacksdk version as a tuple of ints (0, 0) if unknown."""
    try:
        from importlib.metadata import version  # noqa: PLC0415 - only needed here

        parts = version("openstacksdk").split(".")
        return tuple(int(p) for p in parts[:2] if p.isdigit())
    except Exception:  # any metadata problem means "unknown"
        return (0, 0)


def http_status(exc):
    """HTTP status code of an SDK or keystoneauth exception, else None."""
    for attr in ("status_code", "http_status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def is_retriable(exc):
    """True for errors worth another attempt: 409/429/5xx and refused or lost connections.
    A request that timed out is not tried again: a hung API would hold the run for
    api_retries more timeouts (the failure names the service instead)."""
    if ks_exc is not None and isinstance(exc, ks_exc.ConnectTimeout):
        return False
    if ks_exc is not None and isinstance(exc, ks_exc.ConnectFailure):
        return True
    status = http_status(exc)
    return status in RETRY_STATUS


def error_details(exc):
    """The server's own words for an HTTP error (JSON ``message``), else str(exc)."""
    details = getattr(exc, "details", None)
    if details and isinstance(details, str):
        return details.strip()
    return str(exc).strip()


def _failure_where(exc):
    """'Unable to establish connection to URL', the head of keystoneauth's long urllib3 chain."""
    return str(exc).split(": HTTP", 1)[0].split(": (", 1)[0]


def connect_error(exc):
    """'Unable to establish connection to URL (connection refused)' out of
    keystoneauth's long urllib3 chain."""
    text = str(exc)
    where = _failure_where(exc)
    for reason in ("Connection refused", "timed out", "Name or service not known", "No route to host"):
        if reason in text:
            return f"{where} ({reason.lower()})"
    return where


def _is_ks(exc, *names):
    """Is ``exc`` one of keystoneauth's exceptions of these names?"""
    classes = [getattr(ks_exc, n) for n in names if ks_exc is not None and hasattr(ks_exc, n)]
    return bool(classes) and isinstance(exc, tuple(classes))


def start_it(service):
    """The advice for a service that is down (a message's last sentence)."""
    return f" Is the {service} service running? Start it, then run again"


def failed_url(exc):
    """The URL a keystoneauth connection failure was about, else None."""
    last = _failure_where(exc).rsplit(" ", 1)[-1]
    return last if last.startswith(("http://", "https://")) else None


def request_url(exc):
    """The URL of the request a keystoneauth timeout was about ('Request to URL timed out')."""
    text = str(exc)
    marker = "Request to "
    if marker in text:
        return text.split(marker, 1)[1].split(" timed out", 1)[0].strip()
    return None


def names_hint(names, limit=HINT_LIMIT):
    """'a, b, c' (sorted, at most ``limit``, '… and N more') or 'none'."""
    names = sorted({n for n in names if n})
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f" … and {len(names) - limit} more"
    return shown


def to_dict(resource):
    """A plain JSON-able dict of an SDK resource (or dict), without the
    client-side ``location`` block."""
    if resource is None:
        return None
    data = resource.to_dict(computed=False) if hasattr(resource, "to_dict") else dict(resource)
    data.pop("location", None)
    return data


def check_text(kind, value, max_len=255, allow_empty=False):
    """Return an error message if ``value`` is not a usable OpenStack name, else None."""
    if value is None or (value == "" and not allow_empty):
        return f"{kind} must not be empty"
    if not isinstance(value, str):
        return f"{kind} must be a string, got {type(value).__name__}"
    if len(value) > max_len:
        return f"{kind} {value[:40]!r}… is {len(value)} characters long; OpenStack allows at most {max_len}"
    if value != value.strip():
        return f"{kind} {value!r} has leading or trailing whitespace"
    for pos, char in enumerate(value):
        if ord(char) < 32 or ord(char) == 127:
            return f"{kind} {value!r} has a control character at position {pos + 1}"
    return None


def _as_text(value):
    """A metadata value as a string (booleans as 'true'/'false'), or None if it has no text form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return ""
    return value if isinstance(value, str) else None


def normalize_metadata(kind, metadata, max_key=255, max_value=255):
    """Metadata as a dict of str → str. Scalars are turned into strings (booleans
    as 'true'/'false'); nested values and over-long keys are refused with a
    message. Returns (dict, error)."""
    if metadata is None:
        return None, None
    if not isinstance(metadata, dict):
        return None, f"{kind} must be a dictionary of strings, got {type(metadata).__name__}"
    result = {}
    for raw_key, raw_value in metadata.items():
        key, value = str(raw_key), _as_text(raw_value)
        if not key or len(key) > max_key:
            return None, f"{kind} key {key[:40]!r} must have 1 to {max_key} characters"
        if value is None:
            return None, f"{kind} value of {key!r} must be a string, not a {type(raw_value).__name__}"
        if len(value) > max_value:
            return None, f"{kind} value of {key!r} is {len(value)} characters long; the limit is {max_value}"
        result[key] = value
    return result, None


class OpenStackModule:
    """Base class: subclasses set ``argument_spec`` (module options only, sorted),
    ``module_kwargs`` and implement :meth:`run`, which returns the result dict
    (``changed`` and the resource) or calls :meth:`exit` / :meth:`fail`."""

    argument_spec: ClassVar[dict] = {}
    module_kwargs: ClassVar[dict] = {}
    #: first back-off delay in seconds; doubled per attempt (tests set 0)
    retry_delay = 0.5
    retry_delay_max = 15.0
    poll_interval = 1.0

    def __init__(self):
        spec = dict(COMMON_ARGUMENT_SPEC)
        spec.update(self.argument_spec)
        kwargs = dict(self.module_kwargs)
        kwargs.setdefault("supports_check_mode", True)
        self.ansible = AnsibleModule(argument_spec=spec, **kwargs)
        self.params = self.ansible.params
        # a connection dictionary in `cloud` may hold a password: never echo it back
        self.ansible.no_log_values.update(secret_values(self.params.get("cloud")))
        self.check_mode = self.ansible.check_mode
        self.warnings = []
        self._conn = None
        self._cloud_label = None
        self._token_cache = None
        if SDK_IMPORT_ERROR is not None:
            self.ansible.fail_json(
                msg=missing_required_lib("openstacksdk")
                + ". The module runs on the control node: point ansible_python_interpreter at the"
                " Python that has openstacksdk (for example {{ ansible_playbook_python }}).",
                exception=SDK_IMPORT_ERROR,
            )
        if sdk_version() < MIN_SDK_VERSION:
            self.ansible.fail_json(msg=f"openstacksdk >= {'.'.join(map(str, MIN_SDK_VERSION))} is required")

    # ------------------------------------------------------------------ connection
    @property
    def conn(self):
        if self._conn is None:
            self._conn = self.connect()
        return self._conn

    def cloud_reference(self):
        """(name, clouds.yaml path) when ``cloud`` names an entry of a given clouds.yaml
        ({name, clouds_yaml}), else None. The file must be private to this user (it holds
        the password): the secret then never passes through the task's arguments."""
        cloud = self.params.get("cloud")
        if not (isinstance(cloud, dict) and "clouds_yaml" in cloud):
            return None
        if set(cloud) != {"name", "clouds_yaml"} or not all(isinstance(v, str) and v for v in cloud.values()):
            raise ModuleFailure(
                "cloud with clouds_yaml refers to an entry of that file: give exactly name and clouds_yaml"
                f" (got {', '.join(sorted(map(str, cloud)))})"
            )
        path = os.path.expanduser(cloud["clouds_yaml"])
        self._cloud_label = f"{cloud['name']} ({path})"
        if not os.path.isfile(path):
            raise ModuleFailure(f"clouds.yaml {path} does not exist (the tenant step, playbooks/tenant.yml, writes it)")
        if not private_path(path, "file"):
            raise ModuleFailure(
                f"clouds.yaml {path} holds a password but others can read it (or it is not this user's):"
                f" chmod 600 {path}"
            )
        return cloud["name"], path

    def connection_kwargs(self):
        cloud = self.params.get("cloud")
        if isinstance(cloud, dict):
            given = [opt for opt in _CONNECTION_OPTIONS if self.params.get(opt) is not None]
            if given:
                raise ModuleFailure(
                    f"cloud is a dictionary of connection settings, so {', '.join(given)} must go inside it"
                    " (or name a clouds.yaml entry in cloud and keep them as options)"
                )
            kwargs = dict(cloud)
            self._cloud_label = kwargs.get("name") or "(inline cloud)"
        else:
            if cloud is not None and not isinstance(cloud, str):
                raise ModuleFailure(
                    f"cloud must be a clouds.yaml entry name or a dictionary, got {type(cloud).__name__}"
                )
            kwargs = {"cloud": cloud}
            for option, sdk_name in (
                ("auth", "auth"),
                ("auth_type", "auth_type"),
                ("region_name", "region_name"),
                ("validate_certs", "verify"),
                ("ca_cert", "cacert"),
                ("client_cert", "cert"),
                ("client_key", "key"),
            ):
                if self.params.get(option) is not None:
                    kwargs[sdk_name] = self.params[option]
            self._cloud_label = cloud or "(OS_* environment)"
        if self.params.get("api_timeout"):  # 0 (or unset) leaves requests without a limit
            kwargs["api_timeout"] = self.params["api_timeout"]
        kwargs["interface"] = self.params.get("interface") or "public"
        return kwargs

    def connect(self):
        reference = self.cloud_reference()
        kwargs = self.connection_kwargs() if reference is None else {}
        try:
            if reference is None:
                conn = openstack.connect(app_name="monoscape.paas", **kwargs)
            else:
                conn = self.connect_to_entry(*reference)
            if self.params.get("token_cache") and getattr(conn.session, "auth", None) is not None:
                self._token_cache = TokenCache(self.params["token_cache"], conn.config.config, conn.session.auth)
                self._token_cache.load(conn.session.auth)
            return conn
        except sdk_exc.ConfigException as exc:
            raise ModuleFailure(self._explain_config_error(exc, kwargs.get("cloud"))) from exc
        except Exception as exc:
            if ks_exc is not None and isinstance(exc, ks_exc.ClientException):
                raise ModuleFailure(
                    f"cannot set up authentication for cloud {self._cloud_label}: {exc}."
                    " Give a clouds.yaml entry in cloud, or auth with auth_url, username, password and project_name."
                ) from exc
            raise

    def connect_to_entry(self, name, path):
        """A connection to entry ``name`` of clouds.yaml ``path`` (only that file is read)."""
        from openstack import connection  # noqa: PLC0415 - the SDK is imported lazily by openstack.connect too
        from openstack.config import loader  # noqa: PLC0415

        settings = {"interface": self.params.get("interface") or "public"}
        if self.params.get("api_timeout"):
            settings["api_timeout"] = self.params["api_timeout"]
        if self.params.get("region_name"):
            settings["region_name"] = self.params["region_name"]
        # only that file: no OS_CLIENT_CONFIG_FILE or OS_* variables mixed in
        config = loader.OpenStackConfig(config_files=[path], vendor_files=[], secure_files=[], load_envvars=False)
        if name not in config.get_cloud_names():
            raise ModuleFailure(
                f"cloud {name!r} is not defined in {path}; defined clouds: {names_hint(config.get_cloud_names())}"
            )
        return connection.Connection(config=config.get_one(cloud=name, **settings), app_name="monoscape.paas")

    def _explain_config_error(self, exc, cloud):
        text = str(exc)
        if cloud and "was not found" in text:
            try:
                config = openstack.config.OpenStackConfig()
                known = config.get_cloud_names()
                files = config.config_filename or "no clouds.yaml found"
            except Exception:  # the hint is optional
                known, files = [], "unknown"
            return (
                f"cloud {cloud!r} is not defined in clouds.yaml ({files}); defined clouds: {names_hint(known)}."
                " Fix the cloud option or set OS_CLIENT_CONFIG_FILE to the right clouds.yaml."
            )
        return f"invalid OpenStack configuration for cloud {self._cloud_label}: {text}"

    def service_of(self, url):
        """Which service of the token's catalog ``url`` belongs to (for messages), else 'OpenStack'."""
        if not url:
            return "OpenStack"
        best, found = "", None
        auth_url = self._auth_settings().get("auth_url")
        if auth_url and url.startswith(auth_url.rstrip("/")):
            best, found = auth_url.rstrip("/"), "identity"
        for service in self._held_catalog():
            for endpoint in service.get("endpoints") or []:
                prefix = (endpoint.get("url") or "").rstrip("/")
                if prefix and url.startswith(prefix) and len(prefix) > len(best):
                    best, found = prefix, service.get("type")
        return SERVICE_NAMES.get(found, found) or "OpenStack"

    def _auth_settings(self):
        """The connection's auth settings (auth_url, user, project...), {} when unknown (for messages)."""
        with contextlib.suppress(Exception):  # best effort, only for messages
            return dict(self._conn.config.config.get("auth") or {}) if self._conn is not None else {}
        return {}

    def _held_catalog(self):
        """The service catalog of the token already held, [] without one (for messages): asking
        Keystone for a token here could fail (or hang) again."""
        with contextlib.suppress(Exception):  # a catalog that cannot be read names no service
            access = getattr(self._conn.session.auth, "auth_ref", None) if self._conn is not None else None
            return list((access.service_catalog.catalog if access is not None else None) or [])
        return []

    def unreachable(self, url):
        """Why ``url`` does not answer (refused, timed out, HTTP 5xx), else None (for messages only)."""
        try:
            response = self._conn.session.get(url, authenticated=False, raise_exc=False, timeout=5)
        except Exception as exc:  # refused, timed out: that is the answer
            return connect_error(exc)
        return f"HTTP {response.status_code} from {url}" if response.status_code >= 500 else None

    def identity_unreachable(self):
        """Why the cloud's Keystone (auth_url) does not answer, else None: a service that
        answers 503 may be up but unable to check tokens (for messages only)."""
        auth_url = self._auth_settings().get("auth_url")
        return self.unreachable(auth_url) if auth_url else None

    def endpoint_of(self, service_type):
        """The URL of a service in the catalog of the token already held (the module's
        interface first), else None (for messages only)."""
        interface = self.params.get("interface") or "public"
        for service in self._held_catalog():
            if service.get("type") != service_type:
                continue
            endpoints = service.get("endpoints") or []
            chosen = [e for e in endpoints if e.get("interface") == interface] or endpoints
            if chosen and chosen[0].get("url"):
                return chosen[0]["url"]
        return None

    def _auth_summary(self):
        """auth_url / user / project of the connection, never the password."""
        auth = self._auth_settings()
        parts = []
        for key in ("auth_url", "username", "user_id", "project_name", "project_id"):
            if auth.get(key):
                parts.append(f"{key}={auth[key]}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ calls
    def call(self, func, *args, recheck=None, **kwargs):
        """Call ``func(*args, **kwargs)``; on 409/429/5xx or a lost connection
        wait (exponential backoff with jitter) and try again, up to
        ``api_retries`` more times. ``recheck`` (for creates) is called before
        each retry; if it returns something, that is the result (the first
        attempt did succeed, only its answer was lost)."""
        attempts = max(0, int(self.params.get("api_retries") or 0)) + 1
        for attempt in range(1, attempts + 1):
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                if attempt >= attempts or not is_retriable(exc):
                    raise
                delay = min(self.retry_delay * (2 ** (attempt - 1)), self.retry_delay_max)
                delay += random.uniform(0, delay / 4) if delay else 0  # noqa: S311 - jitter, not crypto
                self.ansible.log(f"retrying after HTTP {http_status(exc)}: {error_details(exc)} (attempt {attempt})")
                time.sleep(delay)
                if recheck is not None:
                    found = recheck()
                    if found:
                        return found
        raise AssertionError("unreachable")  # pragma: no cover

    def wait_for(self, fetch, ready, what, *, failed=None, timeout=None, stuck=None):
        """Poll ``fetch()`` until ``ready(obj)``; fail early if ``failed(obj)``
        returns a reason; on timeout fail saying what was awaited, what was
        seen last and (``stuck(obj)``, if given) what to check. Returns the last object."""
        timeout = self.params.get("timeout") if timeout is None else timeout
        deadline = time.monotonic() + max(0, timeout)
        interval = self.poll_interval
        last = None
        while True:
            last = self.call(fetch)
            if ready(last):
                return last
            if failed is not None:
                reason = failed(last)
                if reason:
                    raise ModuleFailure(f"{what} failed: {reason}")
            if time.monotonic() >= deadline:
                seen = getattr(last, "status", None) if last is not None else "nothing"
                advice = (stuck(last) if stuck is not None and last is not None else None) or (
                    "raise timeout or check the cloud"
                )
                raise ModuleFailure(f"timed out after {timeout} s waiting for {what} (last seen: {seen}); {advice}")
            time.sleep(interval)
            interval = min(interval * 1.5, 5.0)

    # ------------------------------------------------------------------ lookups
    def find(self, kind, finder, name_or_id, *, listing=None, required=True, hint="", **query):
        """Find one resource by name or id. Several matches and (with
        ``required``) no match are failures that name what does exist."""
        try:
            found = self.call(finder, name_or_id, ignore_missing=True, **query)
        except sdk_exc.DuplicateResource as exc:
            raise ModuleFailure(
                f"{kind} name {name_or_id!r} is ambiguous: several {kind}s have it; use the id instead"
            ) from exc
        if found is None and required:
            known = ""
            if listing is not None:
                try:
                    known = f"; known {kind}s: {names_hint(getattr(r, 'name', None) for r in listing())}"
                except Exception:  # the hint is optional
                    known = ""
            raise ModuleFailure(f"unknown {kind} {name_or_id!r}{known}{hint}")
        return found

    # ------------------------------------------------------------------ identity lookups
    def domain_id(self, name_or_id, required=True):
        """Id of a Keystone domain given by name or id. Accounts that may not
        read domains (non-admins) get the value back unchanged, taken as an id."""
        if not name_or_id:
            return None
        try:
            domain = self.call(self.conn.identity.find_domain, name_or_id, ignore_missing=True)
        except sdk_exc.ForbiddenException:
            return name_or_id
        if domain is None:
            if not required:
                return None
            raise ModuleFailure(f"unknown domain {name_or_id!r}; 'default' is the usual one")
        return domain.id

    def project_id(self, name_or_id, domain=None, required=True):
        """Id of a project by name or id (in ``domain``). Falls back to the
        caller's own projects when listing projects is not allowed."""
        if not name_or_id:
            return self.conn.current_project_id
        domain_id = self.domain_id(domain, required)
        if domain and domain_id is None:
            return None
        query = {"domain_id": domain_id} if domain_id else {}
        try:
            project = self.call(self.conn.identity.find_project, name_or_id, ignore_missing=True, **query)
        except sdk_exc.ForbiddenException:
            project = None
            for own in self.call(lambda: list(self.conn.identity.user_projects(self.conn.current_user_id))):
                if name_or_id in (own.id, own.name):
                    project = own
                    break
        if project is None:
            if required:
                raise ModuleFailure(f"unknown project {name_or_id!r}" + (f" in domain {domain!r}" if domain else ""))
            return None
        return project.id

    def user_id(self, name_or_id, domain=None, required=True):
        """Id of a user by name or id (in ``domain``); the caller's own user
        when ``name_or_id`` is empty or is the caller's name."""
        if not name_or_id:
            return self.conn.current_user_id
        domain_id = self.domain_id(domain, required)
        if domain and domain_id is None:
            return None
        query = {"domain_id": domain_id} if domain_id else {}
        try:
            user = self.call(self.conn.identity.find_user, name_or_id, ignore_missing=True, **query)
        except sdk_exc.ForbiddenException:
            auth = self.conn.config.config.get("auth") or {}
            if name_or_id in (auth.get("username"), self.conn.current_user_id):
                return self.conn.current_user_id
            raise
        if user is None:
            if required:
                raise ModuleFailure(f"unknown user {name_or_id!r}" + (f" in domain {domain!r}" if domain else ""))
            return None
        return user.id

    def ec2_pairs(self, user_id, project_id):
        """The EC2 pairs (Keystone's OS-EC2 dicts, secrets included) of a user on a project,
        sorted by access key. A user may list its own; other users' need the admin role."""
        response = self.call(self.conn.identity.get, f"/users/{user_id}/credentials/OS-EC2")
        sdk_exc.raise_from_response(response)
        found = [c for c in response.json().get("credentials", []) if c.get("tenant_id") == project_id]
        return sorted(found, key=lambda c: c.get("access") or "")

    # ------------------------------------------------------------------ Glance v2, raw
    # Glance returns custom properties as top-level keys; the raw API keeps them
    # that way (the SDK's Image resource moves unknown keys around).
    JSON_PATCH: ClassVar[dict] = {"Content-Type": "application/openstack-images-v2.1-json-patch"}

    def glance(self, method, path, **kwargs):
        response = self.call(getattr(self.conn.image, method), path, **kwargs)
        sdk_exc.raise_from_response(response)
        return response

    def own_images(self, name):
        """Images of the connection's project with exactly this name, oldest first."""
        owner = self.conn.current_project_id
        body = self.glance("get", "/images", params={"name": name, "owner": owner, "limit": 100}).json()
        images = [i for i in body.get("images", []) if i.get("name") == name and i.get("owner") == owner]
        return sorted(images, key=lambda i: (i.get("created_at") or "", i["id"]))

    def get_image(self, image_id):
        return self.glance("get", f"/images/{image_id}").json()

    def patch_image(self, image_id, ops):
        self.glance("patch", f"/images/{image_id}", json=ops, headers=self.JSON_PATCH)
        return self.get_image(image_id)

    def delete_image(self, image):
        """Delete an image (dict); protected images fail with what to do."""
        if image.get("protected"):
            raise ModuleFailure(
                f"image {image['id']} ({image.get('name')}) is protected; set protected: false on it first"
            )
        with contextlib.suppress(sdk_exc.NotFoundException):
            self.glance("delete", f"/images/{image['id']}")

    @staticmethod
    def property_ops(image, wanted):
        """JSON-patch operations that give ``image`` the ``wanted`` top-level values."""
        return [
            {"op": "replace" if key in image else "add", "path": f"/{key}", "value": value}
            for key, value in wanted.items()
            if image.get(key) != value
        ]

    # ------------------------------------------------------------------ results
    def warn(self, msg):
        self.warnings.append(msg)
        self.ansible.warn(msg)

    def fail(self, msg, **extra):
        raise ModuleFailure(msg, **extra)

    def exit(self, changed, before=None, after=None, **result):
        """Exit with ``changed`` and ``result``; with --diff, ``before``/``after``
        (dicts or None) become the task's diff."""
        if self.ansible._diff and (before is not None or after is not None):
            result["diff"] = {"before": before or {}, "after": after or {}}
        self.ansible.exit_json(changed=changed, **result)

    # ------------------------------------------------------------------ main
    def run(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def explain(self, exc):
        """A failure message for an exception raised by the SDK: what went wrong
        and what to fix, never a bare traceback."""
        status = http_status(exc)
        details = error_details(exc)
        return self.explain_outage(exc, status, details) or self.explain_refusal(exc, status, details)

    def explain_refusal(self, exc, status, details):
        """The message for a request the cloud answered with an error (or refused to build)."""
        cloud = self._cloud_label
        if _is_ks(exc, "Unauthorized") or status == 401:
            message = (
                f"authentication failed for cloud {cloud} ({self._auth_summary()}): the credentials were rejected."
                " Check the username, password, project and domains in clouds.yaml or auth."
            )
        elif _is_ks(exc, "EndpointNotFound") or isinstance(exc, sdk_exc.EndpointNotFound):
            message = f"cloud {cloud} has no such service endpoint ({exc}); check region_name and interface"
        elif _is_ks(exc, "MissingRequiredOptions"):
            message = (
                f"incomplete credentials for cloud {cloud}: {exc}. Give a clouds.yaml entry in cloud,"
                " or auth with auth_url, username, password and project_name"
            )
        elif status == 403:
            message = (
                f"not allowed by the cloud's policy ({details}) for {self._auth_summary()};"
                " use an account with the needed role (admin for identity changes)"
            )
        elif isinstance(exc, sdk_exc.ResourceTimeout):
            message = f"{details}; raise timeout or check the cloud"
        elif status is not None:
            message = f"OpenStack API error {status}: {details}"
        else:
            message = details
        return message

    def explain_outage(self, exc, status, details):
        """The message for a service that is down, hung or cut off from Keystone (it
        names the service), else None."""
        cloud = self._cloud_label
        if _is_ks(exc, "ConnectTimeout"):
            url = request_url(exc)
            return (
                f"the {self.service_of(url)} API of cloud {cloud} did not answer within"
                f" {self.params.get('api_timeout')} s ({url or connect_error(exc)}): is that service hung or"
                " overloaded? Check it; raise api_timeout only if it is merely slow"
            )
        if _is_ks(exc, "ConnectFailure"):
            service = self.service_of(failed_url(exc))
            return f"cannot reach the {service} API of cloud {cloud}: {connect_error(exc)}." + (
                " Is the cloud running and auth_url right?" if service == "OpenStack" else start_it(service)
            )
        found = isinstance(exc, sdk_exc.NotSupported) and re.match(
            r"The (\S+) service for \S+ exists but does not have any supported versions", details
        )
        if found:  # the SDK's version discovery got nothing: most often the service is down
            name = SERVICE_NAMES.get(found.group(1), found.group(1))
            url = self.endpoint_of(found.group(1))
            down = self.unreachable(url) if url else None
            if down:
                return f"cannot reach the {name} API of cloud {cloud}: {down}.{start_it(name)}"
            return (
                f"the {name} API of cloud {cloud} ({url or 'not in the catalog'}) offers no API version"
                f" this openstacksdk supports ({details}); check that service and its catalog entry"
            )
        down = self.identity_unreachable() if status == 503 else None
        if down:
            return (
                f"OpenStack API error 503: {details} The identity (Keystone) API of cloud {cloud} does not answer"
                f" ({down}), and every other service needs it to check tokens.{start_it(SERVICE_NAMES['identity'])}"
            )
        return None

    def __call__(self):
        try:
            self._call()
        finally:  # exit_json and fail_json end the process with SystemExit: the token is kept on the way out
            if self._token_cache is not None and self._conn is not None:
                self._token_cache.save(self._conn.session.auth)

    def _call(self):
        try:
            result = self.run()
            if isinstance(result, dict):
                changed = result.pop("changed", False)
                self.exit(changed, **result)
            self.exit(False)
        except ModuleFailure as failure:
            self.ansible.fail_json(msg=failure.msg, **failure.extra)
        except Exception as exc:  # every SDK error becomes a readable failure
            if (sdk_exc is not None and isinstance(exc, sdk_exc.SDKException)) or (
                ks_exc is not None and isinstance(exc, ks_exc.ClientException)
            ):
                extra = {}
                status = http_status(exc)
                if status is not None:
                    extra["status_code"] = status
                request_id = getattr(exc, "request_id", None)
                if request_id:
                    extra["request_id"] = request_id
                self.ansible.fail_json(msg=self.explain(exc), **extra)
            raise
