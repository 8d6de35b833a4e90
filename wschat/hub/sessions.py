"""Sessions and names: choosing a name, taking a session over, leaving, the name deadline. NO I/O.

A connection has a `Session` from `connect()`; it becomes a user when `set_username` is
accepted. Names are unique after NFKC and case folding (`names.name_key`), and a name that looks
like the name of someone online is refused; the broker owns names across processes.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import TYPE_CHECKING

from wschat import outbound
from wschat import protocol as p
from wschat.effects import Close, Effect, Send
from wschat.features import calls
from wschat.hub import devices, reach, rooms
from wschat.hub.state import GENERAL, Session
from wschat.names import InvalidName, check_room, check_username, lookalike_keys
from wschat.records import ClaimName, NameClaim

if TYPE_CHECKING:
    from wschat.hub.core import Hub

AccountLogin = tuple[str, str]  # an account's (session token, session id) for username_accepted


def login(hub: Hub, s: Session, req: p.SetUsername, now: float) -> list[Effect]:
    """`set_username`: accept the name (taking over its session with the token) and enter rooms."""
    if s.name:
        return [hub.error(s, p.ALREADY_LOGGED_IN, f"You are already logged in as {s.name}.")]
    since, _ = hub.unnamed[s.cid]
    timeout = hub.config.name_timeout
    hub.unnamed[s.cid] = (since, min(now + timeout, since + 6 * timeout))
    try:
        name, key = check_username(req.username)
    except InvalidName as exc:
        return [Send((s.cid,), outbound.username_error(exc.code, str(exc)))]
    looks = lookalike_keys(name)
    refusal = name_refusal(hub, s, name, key, looks, req.session_token)
    if refusal is not None:
        return [Send((s.cid,), refusal)]
    return accept(hub, s, name, key, looks, req, now)


def accept(
    hub: Hub,
    s: Session,
    name: str,
    key: str,
    looks: frozenset[str],
    req: p.SetUsername,
    now: float,
    account: AccountLogin | None = None,
) -> list[Effect]:
    """Give `s` the name (taking over whoever holds it) and enter the rooms `req` asks for.

    `account` is set when an account logged in (wschat.features.accounts): `username_accepted`
    then carries its device's session token instead of a guest's takeover token.
    """
    if hub.broker.names_by_store:  # cluster mode: the store answers, then _claimed goes on
        return _claim(hub, s, name, key, looks, req, account)
    out: list[Effect] = []
    holder = hub.by_key.get(key)
    if account is not None and holder is not None and hub.sessions[holder].account:
        _replace_device(hub, key, account[1], now, out)  # another device of it stays online
        if key in hub.by_key:
            _grant(hub, s, name, key, looks, req, hub.new_token(), bool(out), account, now, out)
            return out
        holder = None
    takeover = holder is not None or bool(out)
    if holder is not None:
        out.append(Close(holder, p.CLOSE_TAKEOVER, "logged in again from another connection"))
        out.extend(logout(hub, holder, now))
    if not hub.broker.claim(key, s.cid):
        text = f"The name '{name}' is taken (names ignore case and width); choose another."
        return [Send((s.cid,), outbound.username_error(p.NAME_TAKEN, text))]
    _grant(hub, s, name, key, looks, req, hub.new_token(), takeover, account, now, out)
    return out


def _replace_device(hub: Hub, key: str, session_id: str, now: float, out: list[Effect]) -> None:
    """An account's device logs in again: its older connection goes (4000), its other devices stay."""
    for cid in devices.same_device(hub, key, session_id):
        out.append(Close(cid, p.CLOSE_TAKEOVER, "logged in again from another connection"))
        out.extend(logout(hub, cid, now))


def _grant(
    hub: Hub,
    s: Session,
    name: str,
    key: str,
    looks: frozenset[str],
    req: p.SetUsername,
    token: str,
    takeover: bool,
    account: AccountLogin | None,
    now: float,
    out: list[Effect],
) -> None:
    """The name is `s`'s: `username_accepted`, then enter the rooms `req` asks for."""
    hub.unnamed.pop(s.cid, None)
    # An account from entering its first room on (moderation tells accounts from guests there).
    s.account, s.session_id = (True, account[1]) if account is not None else (False, "")
    s.name, s.key, s.token, s.looks = name, key, token, looks
    if account is not None:  # also when the name was claimed asynchronously (cluster mode)
        s.account, s.session_id = True, account[1]
    hub.by_key.setdefault(key, s.cid)  # an account's further device: its first one stays there
    for look in looks:
        hub.by_look.setdefault(look, s.cid)
    wanted = _wanted_rooms(hub, s, req, out)
    for other in devices.siblings(hub, s):  # the account's rooms are this device's too
        for room_name in other.rooms:
            wanted.setdefault(room_name, None)
    devices.add(hub, s)
    cfg = hub.config
    limits = {
        "max_message_chars": cfg.max_message_chars,
        "history_size": cfg.history_size,
        "page_size": cfg.page_size,
        "chat_rate": cfg.chat_rate,
        "chat_burst": cfg.chat_burst,
    }
    if account is None:
        accepted = outbound.username_accepted(
            name, s.client_id, s.token, list(wanted), limits, calls=calls.offer(hub)
        )
    else:
        token, session_id = account
        accepted = outbound.username_accepted(
            name, s.client_id, token, list(wanted), limits, account=True, session_id=session_id,
            calls=calls.offer(hub),
        )  # fmt: skip
    out.insert(0, Send((s.cid,), accepted))
    # A reconnect that resumes is not news: the others update their lists without "X joined".
    resumed = takeover or bool(req.resume)
    for room_name, position in wanted.items():
        try:
            rooms.enter(hub, s, room_name, position, resumed, now, out)
        except p.ProtocolError as exc:
            out.append(hub.error(s, exc.code, str(exc)))
    calls.logged_in(hub, s, out)


def _claim(
    hub: Hub,
    s: Session,
    name: str,
    key: str,
    looks: frozenset[str],
    req: p.SetUsername,
    account: AccountLogin | None,
) -> list[Effect]:
    """Cluster mode: ask the store for the name (`ClaimName`); `_claimed` goes on with its answer.

    A guest takes a session over with its token; an account that logged in takes over its
    name wherever it is held (as `accept` does in one process).
    """
    if s.claiming:
        text = "Your previous name is still being checked; wait for its answer."
        return [Send((s.cid,), outbound.username_error(p.RATE_LIMITED, text, 1.0))]
    s.claiming = True
    token = hub.new_token()
    offered = req.session_token or ""
    device = account[1] if account is not None else ""  # an account's devices share the name
    looks_ = tuple(sorted(looks))
    claim = ClaimName(key, name, looks_, s.cid, token, offered, account is not None, device, s.address)
    return [hub.ask(claim, _claimed, (s.cid, req, name, key, looks, token, account))]


def _claimed(hub: Hub, context: tuple, result: NameClaim | BaseException, now: float) -> list[Effect]:
    """Cluster mode: the store's answer to a name claim."""
    cid, req, name, key, looks, token, account = context
    s = hub.sessions.get(cid)
    if s is None:  # gone meanwhile: free what it won
        if isinstance(result, NameClaim) and result.status == "ok":
            hub.broker.release(key, cid)
        return []
    s.claiming = False
    if (isinstance(result, BaseException) or result.status != "ok") and not s.name:
        s.account, s.session_id = False, ""  # no name: not logged in as anyone
    if isinstance(result, BaseException):
        text = "The server could not check that name (its storage is unreachable); try again shortly."
        return [Send((cid,), outbound.username_error(p.STORE_FAILED, text, hub.config.store_retry))]
    if result.status == "confusable":
        text = f"'{name}' looks too much like '{result.holder}', who is online; choose another name."
        return [Send((cid,), outbound.username_error(p.NAME_CONFUSABLE, text))]
    if result.status != "ok":
        text = f"The name '{result.holder or name}' is taken (names ignore case and width); choose another."
        return [Send((cid,), outbound.username_error(p.NAME_TAKEN, text))]
    out: list[Effect] = []
    old = {result.local_cid, hub.by_key.get(key, 0)} - {0, cid}
    if account is not None:  # the account's other devices stay: only a guest that held it goes
        old = {c for c in old if c in hub.sessions and not hub.sessions[c].account}
        old |= set(devices.same_device(hub, key, account[1])) - {cid}  # this device, reconnecting
    for holder in old:  # a session of this process taken over
        out.append(Close(holder, p.CLOSE_TAKEOVER, "logged in again from another connection"))
        out.extend(logout(hub, holder, now))
    takeover = bool(old) or bool(req.session_token)
    _grant(hub, s, name, key, looks, req, token, takeover, account, now, out)
    if account is not None:
        # imported here: wschat.features imports the hub (a cycle at import time)
        from wschat.features import offline

        out.append(offline.after_login(hub, s))  # private messages this device has not seen
        out += reach.rooms_from_elsewhere(hub, s)  # and the rooms of its devices on other processes
    return out


def taken_over(hub: Hub, cid: int, now: float) -> list[Effect]:
    """Cluster mode: this process's connection `cid` lost its session to another process."""
    if cid not in hub.sessions:
        return []
    out: list[Effect] = [Close(cid, p.CLOSE_TAKEOVER, "logged in again from another connection")]
    out.extend(logout(hub, cid, now))
    return out


def name_refusal(
    hub: Hub, s: Session, name: str, key: str, looks: frozenset[str], token: str | None
) -> bytes | None:
    """The `username_error` for a name someone online holds or looks like, else None."""
    holder = hub.by_key.get(key)
    for look in looks:
        other = hub.by_look.get(look)
        if other is not None and other not in (s.cid, holder):  # the same name: see below
            who = hub.sessions[other].name
            text = f"'{name}' looks too much like '{who}', who is online; choose another name."
            return outbound.username_error(p.NAME_CONFUSABLE, text)
    if holder is None:
        return None
    old = hub.sessions[holder]
    offered = (token or "").encode()  # bytes: compare_digest refuses non-ASCII str
    if offered and secrets.compare_digest(offered, old.token.encode()):
        return None
    text = f"The name '{old.name}' is taken (names ignore case and width); choose another."
    return outbound.username_error(p.NAME_TAKEN, text)


def _wanted_rooms(
    hub: Hub, s: Session, req: p.SetUsername, out: list[Effect]
) -> dict[str, p.Position | None]:
    """The rooms a login asks for (`rooms` and `resume`), with the position to resume from."""
    wanted: dict[str, p.Position | None] = {}
    resume = {}
    for raw, position in req.resume.items():
        with contextlib.suppress(InvalidName):  # a bad name is reported below
            resume[check_room(raw)] = position
    for raw in (*req.rooms, *req.resume):
        try:
            room_name = check_room(raw)
            wanted.setdefault(room_name, resume.get(room_name))
        except InvalidName as exc:
            out.append(hub.error(s, exc.code, f"Room '{raw[:40]}': {exc}"))
    if not wanted:
        wanted[GENERAL] = None
    return wanted


def logout(hub: Hub, cid: int, now: float) -> list[Effect]:
    """The connection is gone: free its name and leave its rooms ("left the chat")."""
    s = hub.sessions.pop(cid, None)
    hub.unnamed.pop(cid, None)
    if s is None or not s.name:
        return []
    heir = devices.remove(hub, s)  # another device of the account that now holds the name
    if hub.by_key.get(s.key) == cid:
        del hub.by_key[s.key]
    hub.broker.release(s.key, cid)
    if heir is not None and not hub.broker.names_by_store:  # in Redis each device has its own claim
        hub.broker.claim(s.key, heir)
    for look in s.looks:
        if hub.by_look.get(look) == cid:
            del hub.by_look[look]
    out: list[Effect] = calls.left(hub, s, now)
    rooms.profiles.gone(hub, s, now, out)  # its presence; an account's "last seen"
    for room_name in list(s.rooms):
        rooms.leave(hub, s, hub.rooms[room_name], "disconnect", now, out)
    return out


def expire_unnamed(hub: Hub, now: float, out: list[Effect]) -> None:
    """Close connections that chose no name in time (the deadline moves with the wall clock)."""
    if now < hub.last_tick:  # the wall clock stepped back: deadlines move with it
        step = hub.last_tick - now
        hub.unnamed = {cid: (since - step, end - step) for cid, (since, end) in hub.unnamed.items()}
    hub.last_tick = now
    expired = [cid for cid, (_, deadline) in hub.unnamed.items() if now >= deadline]
    for cid in expired:
        del hub.unnamed[cid]
        reason = f"no name chosen within {hub.config.name_timeout:g} s"
        out.append(Close(cid, p.CLOSE_POLICY, reason))
