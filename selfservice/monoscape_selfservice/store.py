"""The service's state on the controller, in one SQLite file shared by the server's
workers: sessions (a random id in the cookie, everything else here, so logout and
expiry end a session for good) and failed logins (the rate limit)."""

import json
import secrets
import time

from .db import create, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    roles TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failed_logins (
    key TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS failed_logins_key ON failed_logins (key, at);
"""


class Store:
    def __init__(self, path, clock=time.time):
        self.path, self.clock = str(path), clock
        create(self.path, SCHEMA)

    # ------------------------------------------------------------------ sessions
    def open_session(self, identity, lifetime):
        """A new session for a Keystone identity; ends at the token's expiry or after
        `lifetime` seconds, whichever comes first. Returns (session id, csrf token)."""
        now = self.clock()
        expires = min(now + lifetime, identity.expires_at.timestamp())
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with transaction(self.path) as db:
            db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sid, identity.user_id, identity.user_name, json.dumps(sorted(identity.roles)), csrf, now, expires),
            )
        return sid, csrf

    def session(self, sid):
        """The live session of this id as a dict, or None (unknown or expired)."""
        if not sid:
            return None
        with transaction(self.path) as db:
            row = db.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()
            if row is None:
                return None
            if row["expires"] <= self.clock():
                db.execute("DELETE FROM sessions WHERE id = ?", (sid,))
                return None
        found = dict(row)
        found["roles"] = frozenset(json.loads(found["roles"]))
        return found

    def close_session(self, sid):
        with transaction(self.path) as db:
            db.execute("DELETE FROM sessions WHERE id = ?", (sid,))

    # ------------------------------------------------------------------ rate limit
    def failures(self, keys, window):
        """Failed logins within the last `window` seconds, per key."""
        since = self.clock() - window
        with transaction(self.path) as db:
            db.execute("DELETE FROM failed_logins WHERE at < ?", (since,))
            query = "SELECT COUNT(*) FROM failed_logins WHERE key = ? AND at >= ?"
            return {key: db.execute(query, (key, since)).fetchone()[0] for key in keys}

    def record_failure(self, keys):
        now = self.clock()
        with transaction(self.path) as db:
            db.executemany("INSERT INTO failed_logins VALUES (?, ?)", [(key, now) for key in keys])

    def clear_failures(self, keys):
        with transaction(self.path) as db:
            db.executemany("DELETE FROM failed_logins WHERE key = ?", [(key,) for key in keys])
