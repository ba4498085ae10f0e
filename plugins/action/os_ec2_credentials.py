# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Runs monoscape.paas.os_ec2_credentials and hides its result (it holds the secret key)."""

from ansible_collections.monoscape.paas.plugins.plugin_utils.secret_result import SecretResultAction


class ActionModule(SecretResultAction):
    SECRET_KEYS = ("credential",)
