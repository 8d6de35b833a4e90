"""The admin command line under `--redis`: the same commands, on the cluster's Redis. I/O.

`python chat-server.py admin --redis URL ...` (or `CHAT_REDIS`) lists accounts, resets a
password, grants or removes operator, bans and unbans, lists bans and the audit, on the keys
every process shares (`wschat.redisaccounts`, `wschat.redismod`). Every process re-reads
moderation every --admin-poll seconds, and a ban, an unban, a grant or a revoke also says on
`wschat:news` that moderation changed (`m <admin> moderation`): every process reads it at
once, so a ban closes the banned user's connections wherever they are. A reset password
closes the account's connections at once too (`x`, `wschat.redisaccounts`).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time

from redis.exceptions import RedisError

from wschat.admin import ACTOR, _new_password, print_accounts, print_audit, print_restrictions
from wschat.cli import redis_shown
from wschat.features.mod_records import Moderate, Restriction
from wschat.names import name_key
from wschat.redisaccounts import NEWS, RedisAccounts, acct_key
from wschat.redisstore import connect


def main(opts: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(opts))
    except (RedisError, OSError) as exc:
        raise SystemExit(f"Cannot reach Redis at {redis_shown(opts.redis)}: {exc}") from None


async def _account(acc: RedisAccounts, name: str) -> tuple[str, str]:
    key = name_key(name.strip())
    shown = await acc.client.hget(acct_key(key), "name")
    if shown is None:
        raise SystemExit(f"There is no account '{name}'.")
    return key, shown.decode()


async def _subject(acc: RedisAccounts, opts: argparse.Namespace) -> tuple[str, str]:
    if (opts.name is None) == (opts.address is None):
        raise SystemExit("Give either a NAME (an account) or --address.")
    if opts.address is not None:
        return f"address:{opts.address}", opts.address
    key, shown = await _account(acc, opts.name)
    return f"account:{key}", shown


async def _accounts(acc: RedisAccounts, now: float) -> None:
    state = await acc.mod.read(now)
    rows = await acc.accounts()
    print_accounts([(key, name, created, devices) for name, key, created, devices in rows], state)


async def _ban(acc: RedisAccounts, opts: argparse.Namespace, now: float, lift: bool) -> None:
    subject, shown = await _subject(acc, opts)
    where = "#" + opts.room if opts.room else "the server"
    if lift:
        state = await acc.mod.read(now)
        held = [r for r in state.restrictions if r.what == "ban" and r.scope == opts.room]
        if not any(r.subject == subject for r in held):
            raise SystemExit(f"{shown} is not banned from {where}.")
        await acc.mod.moderate(Moderate("unban", ACTOR, opts.room, subject, shown, "", now))
        print(f"{shown} is no longer banned.")
        return
    until = now + opts.seconds if opts.seconds > 0 else 0.0
    r = Restriction("ban", opts.room, subject, shown, until, opts.reason, ACTOR)
    await acc.mod.moderate(Moderate("ban", ACTOR, opts.room, subject, shown, "", now, r))
    print(f"{shown} is banned from {where}.")


async def _main(opts: argparse.Namespace) -> int:
    client = connect(opts.redis)
    acc = RedisAccounts(client, lambda fn, result: None, "admin-" + secrets.token_hex(4))
    now = time.time()
    try:
        await _command(acc, opts, now)
    finally:
        acc.close()
        await client.aclose(close_connection_pool=True)
    return 0


async def _command(acc: RedisAccounts, opts: argparse.Namespace, now: float) -> None:
    if opts.command == "accounts":
        await _accounts(acc, now)
    elif opts.command == "reset-password":
        key, shown = await _account(acc, opts.name)
        ended = await acc.reset_password(key, _new_password(shown))
        print(f"{shown}'s password is reset; {ended} session(s) ended (those devices log in again).")
    elif opts.command in ("grant", "revoke"):
        key, shown = await _account(acc, opts.name)
        await acc.mod.moderate(Moderate(opts.command, ACTOR, "", key, shown, "", now))
        print(f"{shown} is {'now' if opts.command == 'grant' else 'no longer'} an operator.")
    elif opts.command in ("ban", "unban"):
        await _ban(acc, opts, now, lift=opts.command == "unban")
    elif opts.command == "bans":
        print_restrictions(await acc.mod.read(now))
    else:
        print_audit(await acc.mod.audit(opts.limit))
    if opts.command in ("grant", "revoke", "ban", "unban"):  # every process reads it now
        await acc.client.publish(NEWS, f"m {acc.process} moderation")
