# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Action plugin base for modules whose result carries a secret (an EC2 secret
key, a generated private key). The module returns the secret on purpose - the
play needs it - and this runs the module on the controller side, then marks the
result no_log: callbacks and logs show it censored while `register` keeps the
values. (A module cannot do this itself: ansible-core drops `_ansible_no_log`
from module results.)"""

from ansible.plugins.action import ActionBase


class SecretResultAction(ActionBase):
    """Subclasses list the result keys that hold secrets in SECRET_KEYS."""

    SECRET_KEYS: tuple = ()
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        result.update(self._execute_module(module_name=self._task.resolved_action, task_vars=task_vars))
        if has_secret(result, self.SECRET_KEYS):
            result["_ansible_no_log"] = True
        return result


def has_secret(result, keys):
    """True if any of ``keys`` is in the result (top level or one dict deep)."""
    for key in keys:
        if key in result:
            return True
        for value in result.values():
            if isinstance(value, dict) and key in value:
                return True
    return False
