"""Login against the cloud's own Keystone: a user is who Keystone says, with the roles
Keystone's token lists on the deployment's project. Nothing else decides.

One POST to /v3/auth/tokens (password method, scoped to the project): 201 and a token
body, or a refusal. The token itself is never kept: the session holds only what the
token said (user, roles, expiry), and a new login asks Keystone again."""

import dataclasses
import datetime
import json
import urllib.error
import urllib.request


class LoginRefused(Exception):
    """Keystone did not issue a token for these credentials on this project."""


class KeystoneUnavailable(Exception):
    """Keystone could not be asked (down, unreachable, or an answer that is not Keystone's)."""


@dataclasses.dataclass(frozen=True)
class Identity:
    user_id: str
    user_name: str
    project_id: str
    roles: frozenset
    expires_at: datetime.datetime


def _parse_time(text):
    # Keystone: 2026-12-07T20:00:00.000000Z
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def authenticate(auth_url, username, password, project_id, *, user_domain="Default", timeout=10.0, context=None):
    """Ask Keystone for a token scoped to `project_id`; return the Identity it describes.

    A user with no role on the project gets no project-scoped token from Keystone (401),
    so "anyone else" is refused here already."""
    if not username or not password:
        raise LoginRefused("user name and password are required")
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": username, "domain": {"name": user_domain}, "password": password}},
            },
            "scope": {"project": {"id": project_id}},
        }
    }
    url = auth_url.rstrip("/")
    if not url.endswith("/v3"):
        url += "/v3"
    request = urllib.request.Request(  # noqa: S310 - the operator's configured Keystone URL (http or https)
        url + "/auth/tokens?nocatalog",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310 - see above
            status, document = response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 401, 403, 404):
            raise LoginRefused(f"Keystone refused the login ({exc.code})") from None
        raise KeystoneUnavailable(f"Keystone answered {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise KeystoneUnavailable(f"cannot reach Keystone at {auth_url}: {getattr(exc, 'reason', exc)}") from None
    token = document.get("token") if isinstance(document, dict) else None
    if status != 201 or not isinstance(token, dict):
        raise KeystoneUnavailable(f"unexpected answer from Keystone ({status})")
    try:
        user = token["user"]
        project = token["project"]
        roles = frozenset(role["name"] for role in token.get("roles") or [])
        expires_at = _parse_time(token["expires_at"])
    except (KeyError, TypeError, ValueError):
        raise KeystoneUnavailable("Keystone's token has no user, project or expiry") from None
    if project.get("id") != project_id:
        raise LoginRefused("the token is not scoped to the deployment's project")
    return Identity(user["id"], user.get("name", username), project["id"], roles, expires_at)
