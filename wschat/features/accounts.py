"""Accounts: sign-up, log-in (password or device token), log-out, devices, password change. NO I/O.

The handlers here validate a request, refuse it early when limits say so (before any password
is hashed), and ask the store (`wschat.features.account_records`); the store hashes passwords
off the event loop and answers through `Hub.store_result`, where the continuations below finish
the log-in with `sessions.accept` (the same path as a guest's name).

Rules that matter for security:
- an unknown name and a wrong password take the same path and get the same answer
  (`bad_credentials`, same sentence), and the store verifies a dummy hash for an unknown name;
- failed log-ins are counted per name and per address (`Book.by_account`, `Book.by_address`)
  with a growing wait, refused before hashing, the wait in the answer (`retry_after`);
- at most `Config.max_hashes` hashes are in flight; past that a log-in is refused at once;
- guests cannot take a registered name, nor one that looks like one (`name_registered`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from wschat import outbound
from wschat import protocol as p
from wschat.effects import Close, Effect, Send
from wschat.features import offline
from wschat.features.account_records import (
    AccountSession,
    CheckPassword,
    CheckToken,
    CreateAccount,
    DeviceSession,
    EndSession,
    ReadSessions,
    SetPassword,
)
from wschat.hub import devices, sessions
from wschat.hub.state import Session
from wschat.names import InvalidName, check_username, lookalike_keys

if TYPE_CHECKING:
    from wschat.hub.core import Hub

MIN_PASSWORD_CHARS = 8
WRONG = "The name or the password is wrong."


def _name_error(s: Session, code: str, text: str, retry: float | None = None) -> list[Effect]:
    return [Send((s.cid,), outbound.username_error(code, text, retry))]


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


def _extend_deadline(hub: Hub, s: Session, now: float) -> None:
    """Each attempt moves the name deadline on, as set_username does (never past 6 timeouts)."""
    since, _ = hub.unnamed.get(s.cid, (now, now))
    timeout = hub.config.name_timeout
    hub.unnamed[s.cid] = (since, min(now + timeout, since + 6 * timeout))


def guest_login(hub: Hub, s: Session, req: p.SetUsername, now: float) -> list[Effect]:
    """`set_username`: refused for a registered name or a look-alike, or when guests are off."""
    if not s.name:
        if hub.config.accounts_required:
            _extend_deadline(hub, s, now)
            text = "This server is for registered users only: log in or register."
            return _name_error(s, p.ACCOUNTS_REQUIRED, text)
        try:
            name, key = check_username(req.username)
        except InvalidName:
            return sessions.login(hub, s, req, now)  # which says what is wrong with the name
        owner = hub.accounts.holder_of(key, lookalike_keys(name))
        if owner is not None:
            _extend_deadline(hub, s, now)
            same = "is" if owner == name else f"looks too much like '{owner}', which is"
            text = f"'{name}' {same} a registered name: log in with its password, or choose another."
            return _name_error(s, p.NAME_REGISTERED, text)
    return sessions.login(hub, s, req, now)


def _start(hub: Hub, s: Session, username: str, now: float) -> tuple[str, str] | list[Effect]:
    """What register and login check first; the (name, key), or the refusal."""
    if s.name:
        return [hub.error(s, p.ALREADY_LOGGED_IN, f"You are already logged in as {s.name}.")]
    _extend_deadline(hub, s, now)
    if s.cid in hub.accounts.pending:
        text = "Your last log-in is still being checked; wait for its answer."
        return _name_error(s, p.RATE_LIMITED, text, 1.0)
    try:
        return check_username(username)
    except InvalidName as exc:
        return _name_error(s, exc.code, str(exc))


def _busy(hub: Hub, s: Session) -> list[Effect] | None:
    """Refuse at once when too many hashes are in flight (a log-in flood must not queue up)."""
    if hub.accounts.hashing < hub.config.max_hashes:
        return None
    return _name_error(s, p.RATE_LIMITED, "The server is busy checking log-ins; try again in 1 s.", 1.0)


def _weak(password: str, name: str) -> str | None:
    if len(password) < MIN_PASSWORD_CHARS:
        return f"Choose a password of at least {MIN_PASSWORD_CHARS} characters."
    if password.casefold() == name.casefold():
        return "The password must not be the name."
    return None


def register(hub: Hub, s: Session, req: p.Register, now: float) -> list[Effect]:
    started = _start(hub, s, req.username, now)
    if isinstance(started, list):
        return started
    name, key = started
    book = hub.accounts
    looks = lookalike_keys(name)
    owner = book.holder_of(key, looks)
    if owner is not None:
        same = "is registered already"
        if owner != name:
            same = f"looks too much like '{owner}', a registered name"
        return _name_error(s, p.NAME_REGISTERED, f"'{name}' {same}; choose another (or log in).")
    refusal = sessions.name_refusal(hub, s, name, key, looks, None)  # someone online has it
    if refusal is not None:
        return [Send((s.cid,), refusal)]
    if (weak := _weak(req.password, name)) is not None:
        return _name_error(s, p.WEAK_PASSWORD, weak)
    if wait := book.registrations.wait(s.address, now):
        text = f"Too many accounts were made from your address; wait {_seconds(wait)} s."
        return _name_error(s, p.RATE_LIMITED, text, float(_seconds(wait)))
    if (busy := _busy(hub, s)) is not None:
        return busy
    book.registrations.failed(s.address, now)  # counts every registration, not only failures
    book.hashing += 1
    book.pending.add(s.cid)
    asked = CreateAccount(key, name, req.password, req.device, now)
    return [hub.ask(asked, _registered, (s.cid, req))]


def _registered(hub: Hub, context: tuple[int, p.Register], result: Any, now: float) -> list[Effect]:
    cid, req = context
    book = hub.accounts
    book.hashing -= 1
    book.pending.discard(cid)
    if isinstance(result, AccountSession):
        book.add(result.name)
    s = hub.sessions.get(cid)
    if s is None or s.name:
        return []
    if isinstance(result, BaseException):
        return _name_error(s, p.STORE_FAILED, "The server could not save the account; try again.", 5.0)
    if result is None:
        return _name_error(s, p.NAME_REGISTERED, f"'{req.username}' was just registered by someone else.")
    return _logged_in(hub, s, result, req.rooms, req.resume, now)


def login(hub: Hub, s: Session, req: p.Login, now: float) -> list[Effect]:
    started = _start(hub, s, req.username, now)
    if isinstance(started, list):
        return started
    _, key = started
    book = hub.accounts
    # The same answer whether the name exists or not: limits apply to unknown names too.
    wait = book.by_address.wait(s.address, now)
    if req.password is not None:  # a token is unguessable: only its address is limited
        wait = max(wait, book.by_account.wait(key, now))
    if wait:
        text = f"Too many failed log-ins for this name or from your address; wait {_seconds(wait)} s."
        return _name_error(s, p.RATE_LIMITED, text, float(_seconds(wait)))
    book.pending.add(s.cid)
    if req.session_token is not None:
        return [hub.ask(CheckToken(key, req.session_token, now), _checked, (s.cid, req, key))]
    if (busy := _busy(hub, s)) is not None:
        book.pending.discard(s.cid)
        return busy
    book.hashing += 1
    return [hub.ask(CheckPassword(key, req.password or "", req.device, now), _checked, (s.cid, req, key))]


def _checked(hub: Hub, context: tuple[int, p.Login, str], result: Any, now: float) -> list[Effect]:
    cid, req, key = context
    book = hub.accounts
    if req.session_token is None:
        book.hashing -= 1
    book.pending.discard(cid)
    s = hub.sessions.get(cid)
    if s is None or s.name:
        return []
    if isinstance(result, BaseException):
        return _name_error(s, p.STORE_FAILED, "The server could not check the log-in; try again.", 5.0)
    if result is None:
        book.by_address.failed(s.address, now)
        if req.session_token is not None:
            text = "This device's session has ended (logged out, revoked or password changed); log in again."
            return _name_error(s, p.BAD_TOKEN, text)
        book.by_account.failed(key, now)
        return _name_error(s, p.BAD_CREDENTIALS, WRONG)
    book.by_account.succeeded(key)
    if req.session_token is not None:  # the device keeps the token it logged in with
        result = replace(result, token=req.session_token)
    return _logged_in(hub, s, result, req.rooms, req.resume, now)


def _logged_in(
    hub: Hub,
    s: Session,
    account: AccountSession,
    rooms: tuple[str, ...],
    resume: dict[str, p.Position],
    now: float,
) -> list[Effect]:
    """Give the connection the account's name, as a guest's accepted name is given."""
    looks = lookalike_keys(account.name)
    named = p.SetUsername(account.name, rooms, resume)
    login = (account.token, account.session_id)
    # An account from entering its first room on: moderation tells accounts from guests there.
    s.account, s.session_id = True, account.session_id
    out = sessions.accept(hub, s, account.name, account.key, looks, named, now, login)
    if s.claiming and not s.name:  # cluster mode: the store checks the name, sessions._claimed goes on
        return out
    if not s.name:
        s.account, s.session_id = False, ""
    else:
        out.append(offline.after_login(hub, s))  # private messages this device has not seen
        out += sessions.rooms.profiles.after_login(hub, s)  # the account's stored status
    return out


def _account(hub: Hub, s: Session) -> list[Effect] | None:
    if s.account:
        return None
    return [hub.error(s, p.NOT_AN_ACCOUNT, "You are a guest: that needs a registered account.")]


def logout(hub: Hub, s: Session, req: p.Logout, now: float) -> list[Effect]:
    """End this device's session, then close the connection."""
    if (refusal := _account(hub, s)) is not None:
        return refusal
    return [hub.ask(EndSession(s.key, s.session_id), _logged_out, s.cid)]


def _logged_out(hub: Hub, cid: int, result: Any, now: float) -> list[Effect]:
    if cid not in hub.sessions:
        return []
    if isinstance(result, BaseException):
        return [hub.error(hub.sessions[cid], p.STORE_FAILED, "The server could not log you out; try again.")]
    frame = outbound.logged_out("You are logged out on this device.")
    return [Send((cid,), frame), Close(cid, p.CLOSE_NORMAL, "logged out")]


def list_sessions(hub: Hub, s: Session, req: p.ListSessions, now: float) -> list[Effect]:
    if (refusal := _account(hub, s)) is not None:
        return refusal
    return [hub.ask(ReadSessions(s.key), _sessions_read, (s.cid, s.session_id))]


def _sessions_read(hub: Hub, context: tuple[int, str], result: Any, now: float) -> list[Effect]:
    cid, current = context
    s = hub.sessions.get(cid)
    if s is None:
        return []
    if isinstance(result, BaseException):
        return [hub.error(s, p.STORE_FAILED, "The server could not read your sessions; try again.")]
    rows: list[DeviceSession] = result
    listing = [
        {
            "id": row.id,
            "device": row.device,
            "created": outbound.timestamp(row.created),
            "last_used": outbound.timestamp(row.last_used),
            "current": row.id == current,
        }
        for row in rows
    ]
    return [Send((cid,), outbound.account_sessions(listing))]


def revoke_session(hub: Hub, s: Session, req: p.RevokeSession, now: float) -> list[Effect]:
    if (refusal := _account(hub, s)) is not None:
        return refusal
    return [hub.ask(EndSession(s.key, req.id), _revoked, (s.cid, s.key, req.id))]


def _revoked(hub: Hub, context: tuple[int, str, str], result: Any, now: float) -> list[Effect]:
    cid, key, session_id = context
    s = hub.sessions.get(cid)
    if s is None:
        return []
    if isinstance(result, BaseException):
        return [hub.error(s, p.STORE_FAILED, "The server could not end that session; try again.")]
    if not result:
        return [hub.error(s, p.NO_SUCH_SESSION, "There is no such session on your account.")]
    out: list[Effect] = [Send((cid,), outbound.session_revoked(session_id))]
    out.extend(_end_connections(hub, key, lambda other: other.session_id == session_id))
    return out


def change_password(hub: Hub, s: Session, req: p.ChangePassword, now: float) -> list[Effect]:
    if (refusal := _account(hub, s)) is not None:
        return refusal
    if (weak := _weak(req.new, s.name)) is not None:
        return [hub.error(s, p.WEAK_PASSWORD, weak)]
    book = hub.accounts
    if wait := book.by_account.wait(s.key, now):
        text = f"Too many wrong passwords; wait {_seconds(wait)} s."
        return [Send((s.cid,), outbound.error(p.RATE_LIMITED, text, retry_after=float(_seconds(wait))))]
    if book.hashing >= hub.config.max_hashes:
        text = "The server is busy checking log-ins; try again in 1 s."
        return [Send((s.cid,), outbound.error(p.RATE_LIMITED, text, retry_after=1.0))]
    book.hashing += 1
    asked = SetPassword(s.key, req.old, req.new, s.session_id)
    return [hub.ask(asked, _password_set, (s.cid, s.key, s.session_id))]


def _password_set(hub: Hub, context: tuple[int, str, str], result: Any, now: float) -> list[Effect]:
    cid, key, kept = context
    hub.accounts.hashing -= 1
    s = hub.sessions.get(cid)
    if isinstance(result, int) and not isinstance(result, bool):
        # Every other device of the account is logged out, here and now.
        out = list(_end_connections(hub, key, lambda other: other.session_id != kept))
        if s is not None:
            text = "Your password is changed; every other device of yours is logged out."
            out.insert(0, Send((cid,), outbound.password_changed(text, result)))
        return out
    if s is None:
        return []
    if isinstance(result, BaseException):
        return [hub.error(s, p.STORE_FAILED, "The server could not change the password; try again.")]
    hub.accounts.by_account.failed(key, now)
    return [hub.error(s, p.BAD_CREDENTIALS, "The current password is wrong; nothing was changed.")]


def _end_connections(hub: Hub, key: str, which: Any) -> list[Effect]:
    """Close the account's connections (its devices on this server) that `which(session)` picks."""
    out: list[Effect] = []
    for cid in devices.connections(hub, key):
        other = hub.sessions.get(cid)
        if other is not None and other.account and which(other):
            out.append(Close(cid, p.CLOSE_SESSION_ENDED, "this device's session has ended"))
    return out


def registered_elsewhere(hub: Hub, name: str) -> None:
    """Cluster mode: another process registered `name`; a guest can no longer take it here."""
    hub.accounts.add(name)


def sessions_ended(hub: Hub, key: str, session_id: str, *, all_but: bool) -> list[Effect]:
    """Cluster mode: a session of account `key` ended on another process (a log-out, a revoke;
    `all_but`: a password change ended every session but `session_id`): close it here too."""
    if all_but:
        return _end_connections(hub, key, lambda other: other.session_id != session_id)
    return _end_connections(hub, key, lambda other: other.session_id == session_id)


HANDLERS: dict[type, tuple[Any, bool]] = {
    p.SetUsername: (guest_login, False),
    p.Register: (register, False),
    p.Login: (login, False),
    p.Logout: (logout, True),
    p.ListSessions: (list_sessions, True),
    p.RevokeSession: (revoke_session, True),
    p.ChangePassword: (change_password, True),
}
