"""Growing from one process to several: the SQLite history imported into Redis, once. I/O.

The first start with `--redis` on a host whose `--db` file exists copies its rooms into Redis,
so sequence numbers and epochs continue and clients resume without noticing: each room's
epoch and newest messages (up to the retention) with their ids and seqs, the history's epoch,
the message id counter, and the client_msg_ids of the imported messages (so a resend after
the move is still recognised). A room Redis already has is left alone (its history there is
newer). The database's epoch, recorded in `wschat:imported:<epoch>`, makes a second start
import nothing; a lock key keeps two processes starting together from importing twice.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable

import redis

from wschat.records import Message
from wschat.redisentry import body
from wschat.redisstore import PREFIX, SENT_TTL, meta_key, sent_key, stream_key

log = logging.getLogger("wschat.redisimport")

BATCH = 2000
RAISE_LUA = """
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1])
end
"""
_COLUMNS = "id, room, seq, username, user_key, client_id, text, ts, client_msg_id"


def import_sqlite(path: str, url: str, cap: int, progress: Callable[[str], None] = print) -> int:
    """Import the database at `path` into Redis unless it was imported before: messages copied."""
    if path == ":memory:" or not os.path.isfile(path):
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    r = redis.Redis.from_url(url, socket_timeout=30)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        if row is None:
            return 0
        epoch = row[0]
        done_key = f"{PREFIX}imported:{epoch}"
        if r.exists(done_key) or not r.set(f"{PREFIX}importing", epoch, nx=True, ex=600):
            return 0
        try:
            copied = _copy(db, r, epoch, cap, progress)
            r.set(done_key, copied)
        finally:
            r.delete(f"{PREFIX}importing")
        return copied
    except sqlite3.Error:
        return 0  # not a chat database (or an empty new one): nothing to import
    finally:
        db.close()
        r.close()


Progress = Callable[[str], None]


def _copy(db: sqlite3.Connection, r: redis.Redis, epoch: str, cap: int, progress: Progress) -> int:
    r.set(PREFIX + "epoch", epoch, nx=True)
    rooms = db.execute("SELECT name, epoch FROM rooms ORDER BY name").fetchall()
    total = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    copied = 0
    max_id = 0
    has_file = "file" in {row[1] for row in db.execute("PRAGMA table_info(messages)")}
    for room, room_epoch in rooms:
        if r.exists(meta_key(room)):
            log.info("#%s is in Redis already: not imported", room)
            continue
        last = db.execute("SELECT max(seq), max(id) FROM messages WHERE room = ?", (room,)).fetchone()
        last_seq, last_id = last[0] or 0, last[1] or 0
        max_id = max(max_id, last_id)
        columns = _COLUMNS + (", file" if has_file else "")  # a shared file (wschat.features.files)
        query = f"SELECT {columns} FROM messages WHERE room = ? AND seq > ? ORDER BY seq"
        cursor = db.execute(query, (room, last_seq - cap))
        while rows := cursor.fetchmany(BATCH):
            pipe = r.pipeline(transaction=False)
            for row in rows:
                m = Message(*row[:9], epoch=room_epoch)
                if has_file and row[9] is not None:
                    m.file = json.loads(row[9])
                head = f"{m.id} {m.seq} {room_epoch}"
                pipe.xadd(stream_key(room), {"m": b"m " + head.encode() + b" " + body(m)}, id=f"{m.seq}-1")
                if m.client_msg_id is not None:
                    pipe.set(sent_key(m.user_key, m.client_msg_id), head, ex=SENT_TTL)
            pipe.execute()
            copied += len(rows)
            progress(f"Importing {db_name(db)} into Redis: {copied} of up to {total} messages")
        r.hset(meta_key(room), mapping={"e": room_epoch, "s": last_seq})
        if last_id:
            r.zadd(PREFIX + "rooms", {room: last_id})
    # ids go on after the imported ones (never back: other processes may have used some)
    r.eval(RAISE_LUA, 1, PREFIX + "next_id", max_id)
    return copied


def db_name(db: sqlite3.Connection) -> str:
    row = db.execute("PRAGMA database_list").fetchone()
    return os.path.relpath(row[2]) if row and row[2] else "the database"
