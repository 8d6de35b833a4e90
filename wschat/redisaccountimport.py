"""Growing from one process to several: the SQLite accounts imported into Redis, once. I/O.

Under `--redis` accounts live in Redis (`wschat.redisaccounts`), so the first start with
`--redis` on a host whose `--db` file has accounts copies them: accounts with their argon2id
hashes, device sessions (token SHA-256s: devices stay logged in) and their published device keys
(end-to-end encryption), stored private messages with their ids, seqs, delivery times, files,
call outcomes and encrypted envelopes, and device cursors, profiles (status, last seen), and
moderation (operators, room rules and invitations, bans and mutes, the audit). An account Redis
already has is left alone (another host registered it), and so is a profile field it has.
`wschat:imported-accounts:<database epoch>` makes a second start import nothing; it is separate
from the history's mark, so a host that moved its history before accounts lived in Redis still
brings its accounts.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

import orjson
import redis

from wschat.redisaccounts import A, acct_key, sess_key
from wschat.rediskeys import keys_key
from wschat.redismod import AUDIT_KEPT, M
from wschat.redisprivate import SENT_TTL, P, sent_key

RAISE_LUA = """
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1])
end
"""


def _tables(db: sqlite3.Connection) -> set[str]:
    return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def import_accounts(path: str, url: str, progress: Callable[[str], None] = print) -> int:
    """Import the accounts of the database at `path` unless done before: accounts copied."""
    if path == ":memory:" or not os.path.isfile(path):
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    r = redis.Redis.from_url(url, socket_timeout=30)
    try:
        tables = _tables(db)
        if "accounts" not in tables or "meta" not in tables:
            return 0
        row = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        done = f"{A}imported-accounts:{row[0] if row else path}"
        if r.exists(done) or not r.set(f"{A}importing-accounts", 1, nx=True, ex=600):
            return 0
        try:
            copied = _accounts(db, r)
            if "private_messages" in tables:
                _private(db, r)
            if "operators" in tables:
                _moderation(db, r)
            if "device_keys" in tables:
                _device_keys(db, r)
            if "profiles" in tables:
                _profiles(db, r)
            r.set(done, copied)
        finally:
            r.delete(f"{A}importing-accounts")
        if copied:
            progress(f"Imported {copied} accounts into Redis")
        return copied
    finally:
        db.close()
        r.close()


def _accounts(db: sqlite3.Connection, r: redis.Redis) -> int:
    copied = 0
    for key, name, hashed, created in db.execute("SELECT key, name, hash, created FROM accounts"):
        if not r.hsetnx(acct_key(key), "hash", hashed):
            continue  # registered in Redis already (another host): that one stays
        r.hset(acct_key(key), mapping={"name": name, "created": created})
        r.zadd(A + "accounts", {name: created})
        query = "SELECT id, token_hash, device, created, last_used FROM account_sessions WHERE account = ?"
        rows = db.execute(query, (key,))
        for sid, digest, device, made, used in rows:
            r.hset(sess_key(key), sid, orjson.dumps([bytes(digest).hex(), device, made, used]))
        copied += 1
    return copied


def _private(db: sqlite3.Connection, r: redis.Redis) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(private_messages)")}
    # databases made before file sharing, calls or encryption lack these columns
    extra = ", ".join(c if c in columns else "NULL" for c in ("file", "call", "e2ee"))
    query = (
        "SELECT id, conversation, seq, sender, sender_key, recipient, recipient_key, text, ts, "
        f"client_msg_id, delivered, {extra} FROM private_messages ORDER BY id"
    )
    pipe = r.pipeline(transaction=False)
    top = 0
    for mid, conv, seq, sender, sk, recipient, rk, text, ts, cmid, delivered, *more in db.execute(query):
        f = {"c": conv, "s": sender, "sk": sk, "r": recipient, "rk": rk, "t": text, "ts": ts, "cm": cmid}
        file, call, e2ee = (orjson.loads(v) if v else None for v in more)
        f["f"] = file
        if call is not None:  # as wschat.redisprivate stores them: only when set
            f["call"] = call
        if e2ee is not None:
            f["e2ee"] = e2ee
        pipe.hset(P + "msg", mid, f"{seq} ".encode() + orjson.dumps(f))
        pipe.zadd(P + f"by:{sk}", {mid: mid})
        pipe.zadd(P + f"by:{rk}", {mid: mid})
        pipe.zadd(P + f"conv:{conv}", {mid: seq})
        if cmid is not None:  # a resend after the move is recognised, as one stored in Redis
            pipe.set(sent_key(sk, cmid), f"{mid} {seq}", ex=SENT_TTL)
        if delivered is None:
            pipe.zadd(P + f"waiting:{rk}", {mid: mid})
        else:
            pipe.hset(P + "delivered", mid, delivered)
        top = max(top, mid)
    for conv, last in db.execute("SELECT conversation, max(seq) FROM private_messages GROUP BY conversation"):
        pipe.hset(P + "seq", conv, last)
    for sid, last in db.execute("SELECT session_id, last_id FROM device_cursors"):
        pipe.hset(P + "cursor", sid, last)
    pipe.execute()
    r.eval(RAISE_LUA, 1, P + "next", top)


def _device_keys(db: sqlite3.Connection, r: redis.Redis) -> None:
    """Published keys of the sessions imported (as `wschat.rediskeys` keeps them)."""
    pipe = r.pipeline(transaction=False)
    query = (
        "SELECT k.account, k.session_id, k.key_id, k.public_key, k.created FROM device_keys k "
        "JOIN account_sessions s ON s.id = k.session_id"
    )
    for account, sid, key_id, public, created in db.execute(query):
        pipe.hset(keys_key(account), sid, orjson.dumps([key_id, public, created]))
    pipe.execute()


def _profiles(db: sqlite3.Connection, r: redis.Redis) -> None:
    """Status messages and last-seen times (as `wschat.redisaccounts` keeps them)."""
    pipe = r.pipeline(transaction=False)
    for key, status, seen in db.execute("SELECT key, status, last_seen FROM profiles"):
        pipe.hsetnx(f"{A}profile:{key}", "status", status)  # what Redis has (newer) stays
        if seen is not None:
            pipe.hsetnx(f"{A}profile:{key}", "last_seen", seen)
    pipe.execute()


def _moderation(db: sqlite3.Connection, r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    for key, granted in db.execute("SELECT key, granted FROM operators"):
        pipe.hset(M + "ops", key, granted)
    rules_rows = db.execute("SELECT room, creator, topic, invite_only FROM room_rules")
    for room, creator, topic, invite_only in rules_rows:
        rules = {"creator": creator, "topic": topic, "invite_only": bool(invite_only)}
        pipe.hset(M + "rooms", room, orjson.dumps(rules))
    for room, key in db.execute("SELECT room, key FROM room_invites"):
        pipe.sadd(M + "invites", f"{room}\n{key}")
    rows = db.execute("SELECT what, scope, subject, name, until, reason, by FROM restrictions")
    for what, scope, subject, name, until, reason, by in rows:
        pipe.hset(M + "restrictions", f"{what}\n{scope}\n{subject}", orjson.dumps([name, until, reason, by]))
    audit = db.execute("SELECT at, actor, action, scope, target, detail FROM moderation_audit ORDER BY id")
    for at, actor, action, scope, target, detail in audit:
        entry = {"at": at, "actor": actor, "action": action, "scope": scope, "target": target}
        entry["detail"] = detail
        pipe.xadd(M + "audit", entry, maxlen=AUDIT_KEPT, approximate=True)
    pipe.execute()
