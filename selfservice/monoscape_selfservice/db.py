"""SQLite as the service's processes share it (web workers and the job worker): WAL, so
readers never wait for a writer, and every access one short immediate transaction."""

import contextlib
import sqlite3


def create(path, schema):
    db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(schema)
    finally:
        db.close()


@contextlib.contextmanager
def transaction(path):
    db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        db.execute("BEGIN IMMEDIATE")
        yield db
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    finally:
        db.close()
