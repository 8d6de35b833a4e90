"""One SQLite write transaction for every store module: BEGIN IMMEDIATE, COMMIT, and a rollback
on any failure that never hides the failure itself. I/O."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


@contextlib.contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`with write_transaction(db):` the statements inside commit together or not at all.

    BEGIN IMMEDIATE takes the write lock at once, so a second writer (another process, the admin
    command) waits for `busy_timeout` here rather than failing half-way through."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back by itself (a full disk, an I/O error): a ROLLBACK then fails
        # with "no transaction is active", which must not hide the cause.
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise
