"""WSGI entry points of the lab's APIs for gunicorn (run in the lab venv).

Keystone, Nova, Neutron and Placement parse sys.argv with oslo.config when their
application is built and would reject gunicorn's own options, so the module
hides argv while importing the application. Each app finds its config through
OS_<SERVICE>_CONFIG_DIR (set by labctl). Usage: gunicorn lab_wsgi:keystone
"""

import importlib
import sys

_MODULES = {
    "glance": "glance.wsgi.api",
    "keystone": "keystone.wsgi.api",
    "neutron": "neutron.wsgi.api",
    "nova": "nova.wsgi.osapi_compute",
    "placement": "placement.wsgi.api",
}


def __getattr__(name):
    if name not in _MODULES:
        raise AttributeError(name)
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        return importlib.import_module(_MODULES[name]).application
    finally:
        sys.argv = argv
