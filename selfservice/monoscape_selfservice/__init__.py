"""Monoscape self-service: app developers sign in with their OpenStack credentials,
upload packages and start, stop, roll back or scale their apps (issue #15). Runs on
the controller (role selfservice); the package rules are the bundle's own
(plugins/module_utils/monoscape_package.py)."""
