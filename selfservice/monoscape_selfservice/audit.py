"""The audit log: one JSON object per line, appended under a lock - who did what, when,
from where, and the result. Never a password or a token."""

import datetime
import fcntl
import json
import os


class AuditLog:
    def __init__(self, path):
        self.path = str(path)

    def record(self, user, action, result, client="", *, target="", detail=""):
        entry = {
            "at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "user": user,
            "client": client,
            "action": action,
            "target": target,
            "result": result,
        }
        if detail:
            entry["detail"] = detail
        line = json.dumps(entry, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        return entry

    def entries(self):
        try:
            with open(self.path) as handle:
                return [json.loads(line) for line in handle if line.strip()]
        except FileNotFoundError:
            return []
