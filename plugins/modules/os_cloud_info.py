#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)

DOCUMENTATION = r"""
module: os_cloud_info
short_description: Check an OpenStack cloud connection and that named resources exist
description:
  - Authenticates with the given cloud (a token is issued) and describes the connection -
    the clouds.yaml file used, auth URL, region, user and project - without any secret.
  - Optionally checks that images, flavors, networks and availability zones exist, and fails
    with one message that lists every missing one next to the names that do exist. A playbook
    runs it first, so bad input stops the run before anything is created.
  - With O(fail_on_error=false) a failed authentication is reported (C(authenticated=false),
    C(error)) instead of failing the task, for status pages.
  - With O(ec2_credentials_file), also checks that an EC2 access/secret pair works, not just that it
    exists - it signs a request with the secret (AWS signature version 2, HMAC-SHA256) and asks Keystone's
    C(/v3/ec2tokens) for a token with it, as an EC2 API service does for its clients. Keystone lets only
    service users and administrators validate EC2 signatures (policy C(identity:ec2tokens_validate)), so
    O(cloud) must be such a user - the admin cloud, not the pair's own user. The secret is read from the
    file on the control node; it never passes through the task's arguments or its result.
  - Never changes anything; check mode is supported.
version_added: 0.1.0
author: Monoscape developers
options:
  ec2_credentials_file:
    description:
      - A JSON file on the control node with the EC2 pair to verify, an object with C(access) and C(secret) (what
        playbooks/tenant.yml writes, mode 0600). The result is in RV(ec2_verified) and RV(ec2_error); the
        task does not fail on a rejected pair.
    type: path
  availability_zones:
    description:
      - Availability zones that must exist and be available.
    type: list
    elements: str
    default: []
  fail_on_error:
    description:
      - With C(false), authentication and connection errors are returned in C(error) with
        C(authenticated=false) instead of failing. Missing resources always fail.
    type: bool
    default: true
  flavors:
    description:
      - Names or ids of flavors that must exist.
    type: list
    elements: str
    default: []
  images:
    description:
      - Names or ids of images that must exist and be C(active).
    type: list
    elements: str
    default: []
  networks:
    description:
      - Names or ids of networks that must exist.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - monoscape.paas.openstack
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: The admin cloud answers and has what the deployment needs
  monoscape.paas.os_cloud_info:
    cloud: lab-admin
    images: [debian-12]
    flavors: [m1.small]
    networks: [private]
    availability_zones: [nova]
  register: admin_cloud

- name: Build the tenant's connection from the admin cloud's endpoint
  ansible.builtin.set_fact:
    tenant_cloud:
      auth:
        auth_url: "{{ admin_cloud.cloud.auth_url }}"
        username: acme
        password: "{{ acme_password }}"
        project_name: acme
        user_domain_name: Default
        project_domain_name: Default
      region_name: "{{ admin_cloud.cloud.region_name }}"

- name: Can the tenant user get a token? (for a status page, never fails)
  monoscape.paas.os_cloud_info:
    cloud: "{{ tenant_cloud }}"
    fail_on_error: false
  register: tenant_auth
"""

RETURN = r"""
authenticated:
  description: Whether a token was issued.
  returned: always
  type: bool
  sample: true
error:
  description: Why authentication or the connection failed (only with O(fail_on_error=false)).
  returned: always
  type: str
  sample: "authentication failed for cloud lab-admin (...): the credentials were rejected."
ec2_verified:
  description:
    - Whether Keystone issued a token for a request signed with the EC2 pair of O(ec2_credentials_file);
      null without that option.
  returned: always
  type: bool
  sample: true
ec2_error:
  description: Why the EC2 pair was not verified (missing file, rejected signature, ...); null when it was.
  returned: always
  type: str
  sample: "Keystone refused the EC2 signature (HTTP 401): Invalid EC2 signature."
checked_at:
  description: UTC time of the check (ISO 8601).
  returned: always
  type: str
  sample: "2026-11-25T18:00:00Z"
cloud:
  description: The connection, without secrets.
  returned: always
  type: dict
  contains:
    name:
      description: clouds.yaml entry name (or a label for an inline connection).
      type: str
      sample: lab-admin
    config_file:
      description: The clouds.yaml file that was read, if any.
      type: str
      sample: /root/.cache/monoscape/lab/clouds.yaml
    auth_url:
      description: Keystone URL.
      type: str
      sample: http://127.0.0.1:5000/v3
    region_name:
      description: Region.
      type: str
      sample: RegionOne
    interface:
      description: Endpoint interface used.
      type: str
      sample: public
    username:
      description: User name of the credentials.
      type: str
      sample: admin
    user_id:
      description: Id of the authenticated user.
      type: str
    user_domain_name:
      description: Domain of the user.
      type: str
      sample: Default
    project_name:
      description: Project name of the credentials.
      type: str
      sample: admin
    project_id:
      description: Id of the project the token is scoped to.
      type: str
    project_domain_name:
      description: Domain of the project.
      type: str
      sample: Default
resources:
  description: Ids of the resources that were asked for, by the name given.
  returned: always
  type: dict
  sample:
    images: {debian-12: 5f4c...}
    flavors: {m1.small: 2}
    networks: {private: 9a1b...}
    availability_zones: [nova]
"""

import base64
import datetime
import hashlib
import hmac
import json
import urllib.parse
from typing import ClassVar

from ansible_collections.monoscape.paas.plugins.module_utils.openstack import (
    ModuleFailure,
    OpenStackModule,
    ks_exc,
    names_hint,
    sdk_exc,
)

try:
    import openstack
except ImportError:  # pragma: no cover - the base class reports the missing SDK
    openstack = None

AUTH_KEYS = ("auth_url", "username", "user_domain_name", "project_name", "project_domain_name")


def ec2_signed_request(access, secret, host, now=None):
    """The body of a POST to Keystone's /v3/ec2tokens: a GET / on ``host`` signed with
    the EC2 secret (AWS signature version 2, HMAC-SHA256), as an EC2 API service passes
    its client's request on to Keystone."""
    now = now or datetime.datetime.now(datetime.UTC)
    params = {
        "AWSAccessKeyId": access,
        "Action": "DescribeInstances",
        "SignatureMethod": "HmacSHA256",
        "SignatureVersion": "2",
        "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": "2016-11-15",
    }
    query = "&".join(
        urllib.parse.quote(key, safe="") + "=" + urllib.parse.quote(str(params[key]), safe="-_~")
        for key in sorted(params)
    )
    string_to_sign = f"GET\n{host}\n/\n{query}"
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).digest()
    signature = base64.b64encode(digest).decode()
    return {
        "credentials": {
            "access": access,
            "signature": signature,
            "host": host,
            "verb": "GET",
            "path": "/",
            "params": params,
        }
    }


class CloudInfoModule(OpenStackModule):
    argument_spec: ClassVar[dict] = {
        "availability_zones": {"type": "list", "elements": "str", "default": []},
        "ec2_credentials_file": {"type": "path"},
        "fail_on_error": {"type": "bool", "default": True},
        "flavors": {"type": "list", "elements": "str", "default": []},
        "images": {"type": "list", "elements": "str", "default": []},
        "networks": {"type": "list", "elements": "str", "default": []},
    }

    def describe(self):
        """The connection's settings, without any secret."""
        config = self._conn.config
        auth = dict(config.config.get("auth") or {})
        described = {
            "name": self._cloud_label,
            "config_file": None,
            "region_name": config.get_region_name() if hasattr(config, "get_region_name") else None,
            "interface": config.get_interface() if hasattr(config, "get_interface") else None,
            "user_id": None,
            "project_id": None,
        }
        for key in AUTH_KEYS:
            described[key] = auth.get(key)
        if isinstance(self.params.get("cloud"), str):
            try:
                described["config_file"] = openstack.config.OpenStackConfig().config_filename
            except Exception:  # only informative
                described["config_file"] = None
        return described

    def authenticate(self, described):
        try:
            self.call(self.conn.authorize)
        except sdk_exc.SDKException as exc:
            # authorize() wraps keystoneauth's errors: explain the real one (401, refused, ...)
            cause = exc.__cause__ or exc.__context__
            if ks_exc is not None and isinstance(cause, ks_exc.ClientException):
                raise cause from exc
            raise
        described["user_id"] = self.conn.current_user_id
        described["project_id"] = self.conn.current_project_id

    def _lookup(self, kind, finder, listing, name):
        """(id, problem) of one named resource."""
        found = self.call(finder, name, ignore_missing=True)
        if found is None:
            known = names_hint(r.name for r in self.call(lambda: list(listing())))
            return None, f"unknown {kind} {name!r} ({kind}s: {known})"
        status = getattr(found, "status", None)
        if kind == "image" and status != "active":
            return None, f"image {name!r} ({found.id}) is {status}, not active"
        return found.id, None

    def resolve(self):
        """Ids of the wanted resources; one failure listing every missing one."""
        compute, network, image_api = self.conn.compute, self.conn.network, self.conn.image
        problems = []
        found = {"images": {}, "flavors": {}, "networks": {}, "availability_zones": []}
        for key, kind, finder, listing in (
            ("images", "image", image_api.find_image, image_api.images),
            ("flavors", "flavor", compute.find_flavor, compute.flavors),
            ("networks", "network", network.find_network, network.networks),
        ):
            for name in self.params[key]:
                resource_id, problem = self._lookup(kind, finder, listing, name)
                if problem:
                    problems.append(problem)
                else:
                    found[key][name] = resource_id
        if self.params["availability_zones"]:
            zones = self.call(lambda: list(compute.availability_zones()))
            available = {z.name for z in zones if (getattr(z, "state", None) or {}).get("available", True)}
            for name in self.params["availability_zones"]:
                if name in available:
                    found["availability_zones"].append(name)
                else:
                    problems.append(
                        f"unknown or unavailable availability zone {name!r} (zones: {names_hint(available)})"
                    )
        if problems:
            raise ModuleFailure(f"cloud {self._cloud_label}: " + "; ".join(problems), resources=found)
        return found

    def verify_ec2(self):
        """(verified, error) of the EC2 pair in ec2_credentials_file, asked of Keystone."""
        path = self.params["ec2_credentials_file"]
        try:
            with open(path, encoding="utf-8") as handle:
                pair = json.load(handle)
            access, secret = pair["access"], pair["secret"]
        except FileNotFoundError:
            return False, f"no EC2 credentials at {path} (playbooks/tenant.yml writes them)"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return False, f"{path} does not hold an EC2 pair (access, secret): {type(exc).__name__}"
        self.ansible.no_log_values.add(secret)
        session = self.conn.session
        identity = session.get_endpoint(service_type="identity", interface=self.conn.config.get_interface())
        url = identity.rstrip("/") + ("" if identity.rstrip("/").endswith("/v3") else "/v3") + "/ec2tokens"
        body = ec2_signed_request(access, secret, urllib.parse.urlsplit(url).netloc)
        response = self.call(session.post, url, json=body, raise_exc=False)
        if response.status_code in (200, 201):
            return True, None
        if response.status_code == 403:
            return False, (
                f"cloud {self._cloud_label} may not validate EC2 signatures (Keystone policy "
                "identity:ec2tokens_validate: a service user or an administrator): give the admin cloud"
            )
        if response.status_code == 503:
            return False, "Keystone does not issue tokens for EC2 credentials: add ec2credential to [auth] methods"

        try:
            detail = response.json().get("error", {}).get("message", "")
        except ValueError:
            detail = response.text[:200]
        return False, f"Keystone refused the EC2 signature (HTTP {response.status_code}): {detail}".rstrip(": ")

    def run(self):
        checked_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        result = {"authenticated": False, "error": None, "checked_at": checked_at, "cloud": {}, "resources": {}}
        result.update(ec2_verified=None, ec2_error=None)
        try:
            self.conn  # noqa: B018 - opening the connection reads and checks the configuration
            described = self.describe()
            result["cloud"] = described
            self.authenticate(described)
        except Exception as exc:
            if self.params["fail_on_error"]:
                raise
            result["cloud"] = result["cloud"] or {"name": self._cloud_label}
            if isinstance(exc, ModuleFailure):
                result["error"] = exc.msg
            elif self._is_sdk_error(exc):
                result["error"] = self.explain(exc)
            else:
                raise
            return result
        result["authenticated"] = True
        if self.params["ec2_credentials_file"]:
            result["ec2_verified"], result["ec2_error"] = self.verify_ec2()
        result["resources"] = self.resolve()
        return result

    @staticmethod
    def _is_sdk_error(exc):
        return (sdk_exc is not None and isinstance(exc, sdk_exc.SDKException)) or (
            ks_exc is not None and isinstance(exc, ks_exc.ClientException)
        )


def main():
    CloudInfoModule()()


if __name__ == "__main__":
    main()
