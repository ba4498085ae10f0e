"""The web app for the WSGI server (gunicorn 'monoscape_selfservice.wsgi:app' under
systemd), configured by MONOSCAPE_SELFSERVICE_SETTINGS (default
/etc/monoscape/selfservice.json)."""

import os

from .app import create_app
from .settings import Settings

SETTINGS = os.environ.get("MONOSCAPE_SELFSERVICE_SETTINGS", "/etc/monoscape/selfservice.json")

app = create_app(Settings.load(SETTINGS))
