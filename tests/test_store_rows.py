"""wschat.store_schema: a plain chat message's short row (its later columns left to SQLite's
defaults) reads back exactly as the full row would, and only plain messages take it."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from pathlib import Path

import pytest
from test_rich_search import said

from wschat import store_index, store_rich, store_schema
from wschat.records import Message


def values(m: Message) -> list:
    return [getattr(m, f.name) for f in fields(Message)]  # Message compares by identity


NOT_DEFAULT = {str: "edit", int: 7, float: 5.0, bool: True, dict: {"mentions": ["Bob"]}}


def test_every_rich_column_set_makes_a_message_not_plain() -> None:
    """A column added to store_rich.COLUMNS without a test in is_plain fails here."""
    assert store_rich.is_plain(said(1, "hi"))
    for name, _ in store_rich.COLUMNS:
        m = said(1, "hi")
        default = getattr(m, name)
        setattr(m, name, NOT_DEFAULT[dict if default is None else type(default)])
        assert not store_rich.is_plain(m), name
    with_file = said(1, "hi")
    with_file.file = {"id": "f1"}
    plain, full = store_schema.rows([said(1, "a"), with_file])
    assert [r[0] for r in plain] == [1] and [r[0] for r in full] == [1]


@pytest.mark.parametrize("plain", [True, False])
def test_the_short_row_reads_back_as_the_full_one(tmp_path: Path, plain: bool) -> None:
    db = sqlite3.connect(str(tmp_path / "chat.db"), isolation_level=None)
    db.executescript(store_schema.SCHEMA)
    store_schema.add_file_column(db)
    store_rich.migrate(db)
    store_index.migrate(db)
    m = said(1, "hello")
    if plain:
        db.execute(store_schema.INSERT_PLAIN, store_schema.rows([m])[0][0])
    else:
        db.execute(store_schema.INSERT, store_schema.row(m))
    back: Message = store_schema.message(
        db.execute(f"SELECT {store_schema.COLUMNS} FROM messages").fetchone()
    )
    back.epoch = "ep"  # the room's, kept in `rooms`
    assert values(back) == values(said(1, "hello"))
    db.close()
