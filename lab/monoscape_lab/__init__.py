"""The lab cloud: a real OpenStack control plane on 127.0.0.1 whose instances are
podman containers (see lab/README.md).

This package is run by lab/labctl with Debian's python3 and uses the standard
library only; the OpenStack services run from their own virtualenv
(~/.cache/monoscape/lab-venv-<hash>).
"""


class LabError(Exception):
    """A failure explained in one line, with the log file to read."""

    def __init__(self, reason, log=None):
        super().__init__(reason)
        self.reason = reason
        self.log = log

    def one_line(self):
        text = " ".join(str(self.reason).split())
        return f"{text}; see {self.log}" if self.log else text
