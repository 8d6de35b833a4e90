"""The host's admin command line: `python chat-server.py admin ...`. I/O.

What must work without a client: list accounts, reset a password, grant or remove operator,
ban and unban, show the bans and the audit. It opens the server's SQLite database on a
connection of its own (WAL: the running server keeps going) and writes the same tables the
server does (`wschat.accountstore`, `wschat.modstore`); the running server re-reads moderation
every few seconds, so a ban closes the banned user's connection within about two seconds.
With `--redis` (servers that share a Redis) the same commands work there (`wschat.adminredis`).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sqlite3
import sys
import time

from wschat import program_name
from wschat.accountstore import SCHEMA as ACCOUNTS_SCHEMA
from wschat.accountstore import hasher
from wschat.features.accounts import MIN_PASSWORD_CHARS
from wschat.features.mod_records import Moderate, ModState, Restriction
from wschat.modstore import SCHEMA as MODERATION_SCHEMA
from wschat.modstore import audit, moderate, read
from wschat.names import name_key
from wschat.sqlitetx import write_transaction

ACTOR = "admin (host)"


def build_parser() -> argparse.ArgumentParser:
    from wschat.cli import DEFAULT_DB

    ap = argparse.ArgumentParser(
        prog=program_name("chat-server.py") + " admin",
        description="Manage accounts and moderation on the host, while the server runs or not.",
    )
    ap.add_argument("--db", default=DEFAULT_DB, help=f"the server's database (default {DEFAULT_DB})")
    ap.add_argument(
        "--redis",
        default=os.environ.get("CHAT_REDIS") or None,
        metavar="URL",
        help="the servers' Redis when they run with --redis (env CHAT_REDIS): accounts and "
        "moderation are there, not in --db",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("accounts", help="list the accounts (name, created, operator, devices, banned)")
    reset = sub.add_parser("reset-password", help="set a new password (asked for) and end every session")
    reset.add_argument("name")
    for cmd, text in (("grant", "make NAME an operator"), ("revoke", "make NAME no longer an operator")):
        sub.add_parser(cmd, help=text).add_argument("name")
    ban = sub.add_parser("ban", help="ban an account (NAME) or an --address, from the server or a --room")
    unban = sub.add_parser("unban", help="lift a ban")
    for p in (ban, unban):
        p.add_argument("name", nargs="?", help="a registered account")
        p.add_argument("--address", help="an IP address (guests are banned by address)")
        p.add_argument("--room", default="", help="only from this room (default: the whole server)")
    ban.add_argument("--seconds", type=int, default=0, help="for this long (default: until unbanned)")
    ban.add_argument("--reason", default="", help="told to the banned user")
    sub.add_parser("bans", help="list bans and mutes")
    log = sub.add_parser("audit", help="the latest moderation actions")
    log.add_argument("--limit", type=int, default=50)
    return ap


def _open(path: str) -> sqlite3.Connection:
    if path != ":memory:" and not os.path.exists(path):
        raise SystemExit(f"There is no database at {path}; start the server once, or give --db.")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 5000")
    db.executescript(ACCOUNTS_SCHEMA)
    db.executescript(MODERATION_SCHEMA)
    return db


def _account(db: sqlite3.Connection, name: str) -> tuple[str, str]:
    key = name_key(name.strip())
    row = db.execute("SELECT key, name FROM accounts WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise SystemExit(f"There is no account '{name}'.")
    return row


def _accounts(db: sqlite3.Connection) -> None:
    state = read(db, time.time())
    rows = db.execute(
        "SELECT a.key, a.name, a.created, (SELECT count(*) FROM account_sessions s WHERE s.account = a.key) "
        "FROM accounts a ORDER BY a.created"
    ).fetchall()
    print_accounts(rows, state)


def print_accounts(rows: list[tuple[str, str, float, int]], state: ModState) -> None:
    """`admin accounts`: (key, name, created, devices) rows, oldest first, with who operates and
    who is banned (the SQLite and the Redis admin commands print the same lines)."""
    first = rows[0][0] if rows else None
    for key, name, created, devices in rows:
        granted = state.operators.get(key)
        op = granted if granted is not None else key == first
        banned = any(r.subject == f"account:{key}" and r.what == "ban" for r in state.restrictions)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(created))
        flags = (" operator" if op else "") + (" banned" if banned else "")
        print(f"{name}\tcreated {when}\t{devices} device(s){flags}")
    if not rows:
        print("No accounts yet.")


def _new_password(name: str) -> str:
    if sys.stdin.isatty():
        password = getpass.getpass(f"New password for {name}: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("The two passwords differ; nothing was changed.")
    else:  # a script: the first line of standard input (never an argument: ps shows those)
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_PASSWORD_CHARS or password.casefold() == name.casefold():
        raise SystemExit(f"Choose a password of at least {MIN_PASSWORD_CHARS} characters, not the name.")
    return password


def _reset(db: sqlite3.Connection, name: str) -> None:
    key, shown = _account(db, name)
    hashed = hasher().hash(_new_password(shown))
    with write_transaction(db):
        db.execute("UPDATE accounts SET hash = ? WHERE key = ?", (hashed, key))
        ended = db.execute("DELETE FROM account_sessions WHERE account = ?", (key,)).rowcount
        # the running server looks at this counter every 2 s and closes the account's connections
        db.execute("INSERT INTO session_ends (account, at) VALUES (?, ?)", (key, time.time()))
    print(f"{shown}'s password is reset; {ended} session(s) ended (its devices online are logged out).")


def _subject(db: sqlite3.Connection, opts: argparse.Namespace) -> tuple[str, str]:
    if (opts.name is None) == (opts.address is None):
        raise SystemExit("Give either a NAME (an account) or --address.")
    if opts.address is not None:
        return f"address:{opts.address}", opts.address
    key, shown = _account(db, opts.name)
    return f"account:{key}", shown


def _ban(db: sqlite3.Connection, opts: argparse.Namespace, now: float) -> None:
    subject, shown = _subject(db, opts)
    until = now + opts.seconds if opts.seconds > 0 else 0.0
    r = Restriction("ban", opts.room, subject, shown, until, opts.reason, ACTOR)
    moderate(db, Moderate("ban", ACTOR, opts.room, subject, shown, "", now, r))
    print(f"{shown} is banned from {'#' + opts.room if opts.room else 'the server'}.")


def _unban(db: sqlite3.Connection, opts: argparse.Namespace, now: float) -> None:
    subject, shown = _subject(db, opts)
    found = db.execute(
        "SELECT 1 FROM restrictions WHERE what = 'ban' AND scope = ? AND subject = ?", (opts.room, subject)
    ).fetchone()
    if found is None:
        raise SystemExit(f"{shown} is not banned from {'#' + opts.room if opts.room else 'the server'}.")
    moderate(db, Moderate("unban", ACTOR, opts.room, subject, shown, "", now))
    print(f"{shown} is no longer banned.")


def print_restrictions(state: ModState) -> None:
    """`admin bans`: every ban and mute in force (the SQLite and Redis admin commands alike)."""
    for r in state.restrictions:
        where = "#" + r.scope if r.scope else "server"
        until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.until)) if r.until else "no end"
        print(f"{r.what}\t{where}\t{r.name} ({r.subject})\tuntil {until}\tby {r.by}\t{r.reason}")
    if not state.restrictions:
        print("No bans or mutes.")


def print_audit(rows: list[tuple]) -> None:
    """`admin audit`: the newest moderation actions, one line each."""
    for at, actor, action, scope, target, detail in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
        print(f"{when}\t{actor}\t{action}\t{'#' + scope if scope else 'server'}\t{target}\t{detail}")


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    if opts.redis:  # the cluster keeps accounts and moderation in Redis (wschat.adminredis)
        from wschat.adminredis import main as redis_main

        return redis_main(opts)
    db = _open(opts.db)
    now = time.time()
    try:
        if opts.command == "accounts":
            _accounts(db)
        elif opts.command == "reset-password":
            _reset(db, opts.name)
        elif opts.command in ("grant", "revoke"):
            key, shown = _account(db, opts.name)
            moderate(db, Moderate(opts.command, ACTOR, "", key, shown, "", now))
            print(f"{shown} is {'now' if opts.command == 'grant' else 'no longer'} an operator.")
        elif opts.command == "ban":
            _ban(db, opts, now)
        elif opts.command == "unban":
            _unban(db, opts, now)
        elif opts.command == "bans":
            print_restrictions(read(db, now))
        else:
            print_audit(audit(db, opts.limit))
    finally:
        db.close()
    return 0
