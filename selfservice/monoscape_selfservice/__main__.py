"""`python3 -m monoscape_selfservice worker`: the job worker (systemd service), with the
settings the web app reads (MONOSCAPE_SELFSERVICE_SETTINGS, default
/etc/monoscape/selfservice.json)."""

import os
import sys

from .audit import AuditLog
from .releases import Releases
from .settings import Settings
from .worker import serve


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["worker"]:
        print("usage: python3 -m monoscape_selfservice worker", file=sys.stderr)
        return 2
    settings = Settings.load(os.environ.get("MONOSCAPE_SELFSERVICE_SETTINGS", "/etc/monoscape/selfservice.json"))
    missing = [name for name in ("bundle_dir", "inventory") if not getattr(settings, name)]
    if missing:
        print(f"monoscape_selfservice worker: set {', '.join(missing)} in the settings", file=sys.stderr)
        return 2
    serve(settings, Releases.from_settings(settings), AuditLog(settings.audit_log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
