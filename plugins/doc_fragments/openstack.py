# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Options shared by every monoscape.paas os_* module (module_utils/openstack.py)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  api_retries:
    description:
      - How many times an API call is retried after a conflict (HTTP 409), a rate limit (429),
        a server error (5xx) or a lost connection, with exponential backoff (0.5 s, 1 s, 2 s, ...).
      - A create is looked up again before it is retried, so a lost answer never makes a duplicate.
      - C(0) disables retries.
    type: int
    default: 3
  api_timeout:
    description:
      - Seconds a single HTTP request to the cloud may take (the token request included). A request
        that takes longer fails the task naming the service that did not answer (a hung API never
        hangs the run); it is not retried.
      - C(0) means no limit. Set it once for a play with C(module_defaults) and the
        C(group/monoscape.paas.openstack) action group.
    type: int
    default: 60
  auth:
    description:
      - Credentials when no clouds.yaml entry is used, as openstacksdk takes them
        (C(auth_url), C(username), C(password), C(project_name), C(user_domain_name),
        C(project_domain_name), ...).
      - Mutually exclusive with a dictionary in O(cloud).
    type: dict
  auth_type:
    description:
      - Keystone authentication plugin, for example C(password), C(v3applicationcredential) or C(token).
    type: str
  ca_cert:
    description:
      - CA bundle that signs the cloud's TLS certificates.
    type: str
    aliases: [cacert]
  client_cert:
    description:
      - Client certificate for mutual TLS.
    type: str
    aliases: [cert]
  client_key:
    description:
      - Private key of O(client_cert).
    type: str
    aliases: [key]
  cloud:
    description:
      - Name of a cloud in C(clouds.yaml) (searched in C(./clouds.yaml), C(~/.config/openstack/),
        C(/etc/openstack/) and E(OS_CLIENT_CONFIG_FILE)), or a dictionary of connection settings
        in the same form as a clouds.yaml entry.
      - Or an entry of a given clouds.yaml file, as a dictionary with exactly C(name) and
        C(clouds_yaml) (its path; it must be readable by this user only). The password then stays
        in that file and never passes through the task's arguments or logs - the Monoscape
        playbooks reach the tenant user this way.
      - Set it once per play with C(module_defaults) and the C(group/monoscape.paas.openstack) action group.
      - When neither O(cloud) nor O(auth) is given, the C(OS_*) environment variables are used.
    type: raw
  interface:
    description:
      - Which endpoints of the service catalog to use.
    type: str
    choices: [admin, internal, public]
    default: public
  region_name:
    description:
      - Region of the cloud to work in.
    type: str
  timeout:
    description:
      - Seconds to wait for a resource to reach its target state when O(wait=true).
    type: int
    default: 180
  token_cache:
    description:
      - A private folder (0700, created when missing) where the Keystone token of these credentials
        is kept between module runs, so the tasks of a playbook run authenticate once, not once
        each. One 0600 file per set of connection settings, named by their hash; a token near its
        expiry or refused is replaced by a new authentication; files unused for a day are removed.
        A folder or file that others can read is not used.
      - The Monoscape playbooks set it (E(MONOSCAPE_TOKEN_CACHE)) to C(~/.cache/monoscape/tokens).
        Unset means no cache.
    type: path
    env:
      - name: MONOSCAPE_TOKEN_CACHE
  validate_certs:
    description:
      - Whether to verify the cloud's TLS certificates. Unset means what clouds.yaml says (default true).
    type: bool
    aliases: [verify]
  wait:
    description:
      - Wait until the resource reaches its target state (for example a server C(ACTIVE),
        an image C(active), a deleted server gone).
    type: bool
    default: true
requirements:
  - python >= 3.11
  - openstacksdk >= 1.0.0 (on the control node; the modules run there)
notes:
  - >-
    These modules talk to the cloud from the host they run on. Run them on the control node
    (C(hosts: localhost) or C(delegate_to: localhost)) with
    C(ansible_python_interpreter: "{{ ansible_playbook_python }}") so the Python that has openstacksdk is used.
  - Every module supports check mode fully; modules that change attributes also support C(--diff).
"""
