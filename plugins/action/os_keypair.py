# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Runs monoscape.paas.os_keypair and hides its result when it holds a generated private key."""

from ansible_collections.monoscape.paas.plugins.plugin_utils.secret_result import SecretResultAction


class ActionModule(SecretResultAction):
    SECRET_KEYS = ("private_key",)
