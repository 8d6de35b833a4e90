"""The terminal client's side of accounts: log-in frames, account answers, account commands. NO I/O.

`ClientState` (wschat.clientstate) calls these when it runs as an account (`--login NAME` or
`--register NAME`): the first log-in sends the password the I/O layer read with getpass, every
later one (reconnects, later runs) the device's session token; the token the server gives is
handed to the I/O layer to keep (`SaveToken`) and the password is forgotten at once. The
token file and getpass are in `wschat.clientauth` (I/O).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wschat import display as d
from wschat.clientframes import (
    CONNECTED,
    NAMING,
    OFFLINE,
    Job,
    SaveToken,
    Send,
    Show,
    Stop,
    as_int,
    as_num,
    as_str,
    note,
)
from wschat.commands import Conversation, Logout, Passwd, Revoke, Sessions
from wschat.render import seconds

if TYPE_CHECKING:
    from wschat.clientframes import Effect
    from wschat.clientstate import ClientState


def login_frame(st: ClientState) -> dict[str, Any]:
    """`login` with the device's token if it has one, else `register` / `login` with the password."""
    frame: dict[str, Any] = {"username": st.name, "device": st.device}
    if st.account_token:
        frame.update(type="login", session_token=st.account_token)
    else:
        frame.update(type=st.account, password=st.password or "")
    return frame


def accepted(st: ClientState, frame: dict[str, Any]) -> list[Effect]:
    """An account's `username_accepted`: keep the token (the I/O layer saves it), drop the password."""
    token = as_str(frame.get("session_token"))
    st.password = None
    if not token or token == st.account_token:
        return []
    st.account_token = token
    return [SaveToken(token)]


def refused(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect] | None:
    """An account's `username_error`; None to let the guest rules answer (`rate_limited`: retry).

    A wrong password, a taken name or a weak password end the run (with the reason): typing the
    same again cannot help, and the password is read once, at start.
    """
    code = as_str(frame.get("code"))
    reason = as_str(frame.get("message")) or "The server refused the log-in."
    if code == "rate_limited":
        return None
    if code == "store_failed":  # the server's storage failed: try again later
        wait = as_num(frame.get("retry_after"), 5.0)
        st.login_at = now + wait
        st.phase = CONNECTED if st.connected else OFFLINE
        return [note(f"{reason} Trying again in {seconds(wait)}.", "queued")]
    if code == "bad_token":
        st.account_token = None
        if st.password:  # the password was read this run: log in with it instead
            st.phase = CONNECTED if st.connected else OFFLINE
            return [SaveToken(None)]
        again = f"Run again with --login {st.name} to type your password."
        return [SaveToken(None), Stop(1, f"{reason} {again}")]
    st.phase = NAMING if st.phase == NAMING else OFFLINE
    return [Stop(1, reason)]


def command(st: ClientState, cmd: Any) -> list[Effect]:
    """/logout, /sessions, /revoke ID."""
    if not st.account:
        return [note("That is for registered accounts; you are a guest (see --login, --register).", "error")]
    if isinstance(cmd, Logout):
        return [Send({"type": "logout"})]
    if isinstance(cmd, Sessions):
        return [Send({"type": "sessions"})]
    if isinstance(cmd, Passwd):  # the passwords are read by the I/O layer, never by the state
        if not st.interactive:
            return [note("/passwd needs a terminal to read the passwords without echo.", "error")]
        return [Job("passwd", {})]
    if isinstance(cmd, Conversation):
        frame: dict[str, Any] = {"type": "fetch_private", "with": cmd.name, "limit": cmd.count}
        before = st.conversation_before.get(cmd.name.casefold())
        if before is not None:
            frame["before_seq"] = before
        return [Send(frame)]
    assert isinstance(cmd, Revoke)
    return [Send({"type": "revoke_session", "id": cmd.id})]


def on_logged_out(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    st.account_token = None
    return [SaveToken(None), Stop(0, "Logged out on this device (its session token is forgotten).")]


def on_sessions(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    rows = frame.get("sessions")
    rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    out: list[Effect] = [note(f"Your account's sessions ({len(rows)}); /revoke ID ends one:")]
    for r in rows:
        current = "  (this device)" if r.get("current") is True else ""
        used = as_str(r.get("last_used"))[:16].replace("T", " ")
        device = as_str(r.get("device")) or "unnamed device"
        out.append(note(f"  {as_str(r.get('id'))}  {device}  last used {used}{current}"))
    return out


def on_session_revoked(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    return [note(f"Session {as_str(frame.get('id'))} ended; that device must log in again.", "ok")]


def on_password_changed(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    return [note(as_str(frame.get("message")) or "Your password is changed.", "ok")]


# -- private messages between accounts (stored; PROTOCOL.md "Stored private messages")


def on_private(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    shown = st._on_private(frame, now)
    if shown and frame.get("offline") is True and not st.offline_told:
        st.offline_told = True
        return [note("Private messages that arrived while you were away:", "history"), *shown]
    return shown


def on_ack(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    out = st._on_ack(frame, now)
    to = as_str(frame.get("to"))
    if to and frame.get("stored") is False and to not in st.unstored_told:
        st.unstored_told.add(to)
        why = "you are a guest" if not st.account else f"{to} is a guest"
        out.append(
            note(f"Private messages with {to} are not stored ({why}): they reach {to} only while online.")
        )
    return out


def on_delivered(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    return [note(f"Delivered to {as_str(frame.get('to'))} (message {as_int(frame.get('seq'))}).", "ok")]


def on_private_history(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    other = as_str(frame.get("with"))
    raw = frame.get("messages")
    messages = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
    if not messages:
        return [note(f"No stored private messages with {other}.", "history")]
    first = as_int(messages[0].get("seq"))
    if first is not None:  # the next /conversation with them goes on from here
        st.conversation_before[other.casefold()] = first
    more = f" (/conversation {other} again for older ones)" if frame.get("more") is True else ""
    head = f"Private conversation with {other}, {len(messages)} messages{more}:"
    out: list[Effect] = [note(head, "history")]
    for m in messages:
        sender = as_str(m.get("from"))
        text = st._file_text(m) or as_str(m.get("message"))  # a shared file: its line (wschat.clientfiles)
        event = d.PrivateMessage(sender, as_str(m.get("to")), text,
                                 as_str(m.get("timestamp")) or None, sender == st.me)  # fmt: skip
        out.append(Show(event))
    return out


FRAMES = {
    "private": on_private,
    "ack": on_ack,
    "delivered": on_delivered,
    "private_history": on_private_history,
    "logged_out": on_logged_out,
    "sessions": on_sessions,
    "session_revoked": on_session_revoked,
    "password_changed": on_password_changed,
}
