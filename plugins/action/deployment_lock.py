# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""monoscape.paas.deployment_lock, run in the Ansible worker on the control node (no
module is sent anywhere): the holder is the ansible-playbook process the worker was
forked from. The mechanics are in plugins/plugin_utils/deployment_lock.py."""

import os

from ansible import context
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.monoscape.paas.plugins.plugin_utils import deployment_lock as lock

ARGUMENT_SPEC = {
    "path": {"type": "path", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["absent", "present"]},
    "wait": {"type": "int", "default": 0},
}


def playbooks():
    """The playbooks given to ansible-playbook (the worker inherits its parsed command
    line), as absolute paths."""
    return [os.path.abspath(p) for p in (context.CLIARGS.get("args") or ())]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        result = super().run(tmp, task_vars)
        if args["wait"] < 0:
            raise AnsibleActionFail(f"wait is {args['wait']}: give 0 (fail at once) or more seconds")
        path = os.path.abspath(args["path"])
        if os.path.isdir(path):
            raise AnsibleActionFail(f"path {path} is a folder: give the lock file's path")
        check_mode = bool(self._task.check_mode)
        try:
            me = lock.record_of(lock.run_pid(), playbooks())
            if args["state"] == "absent":
                outcome = lock.release(path, me, check_mode=check_mode)
            else:
                outcome = lock.acquire(path, me, wait=args["wait"], check_mode=check_mode)
        except lock.LockError as exc:
            result.update(failed=True, changed=False, msg=str(exc), path=path)
            if exc.holder is not None:
                result["holder"] = exc.holder
            return result
        except OSError as exc:
            raise AnsibleActionFail(
                f"deployment lock {path}: {exc.strerror or exc} ({exc.filename or os.path.dirname(path)})"
            ) from exc
        # bookkeeping of the control node, not a change to the deployment: a re-run that
        # changes nothing reports changed=0 (see the module's documentation)
        result.update(outcome, changed=False)
        return result
