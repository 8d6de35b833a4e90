"""End-to-end encryption in the hub: publishing device keys, handing them out, checking envelopes. NO I/O.

- `publish_key`: an account's device says its public key (`wschat.e2ee`); the server keeps it
  with the device's session (`SaveDeviceKey`) and sends the account's devices their new list.
- `get_keys`: anyone may ask for a name's device keys (`keys`; `registered: false` and no
  devices for a name that is not an account).
- An encrypted `private` (`req.e2ee`) is checked before it goes the way of every stored private
  message (`wschat.features.offline`): both ends accounts, the sender's `from_key` the key this
  device published, and one copy for each current device of the recipient and of the sender,
  no more and no fewer; otherwise `stale_keys` (the client fetches the keys again, encrypts
  again, and sends the same `client_msg_id`). The server never sees the text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wschat import protocol as p
from wschat.e2ee import key_id, load_public
from wschat.effects import Effect, Send
from wschat.features.e2ee_records import DeviceKey, ReadDeviceKeys, SaveDeviceKey
from wschat.features.e2ee_wire import GetKeys, PublishKey, keys
from wschat.hub import devices
from wschat.hub.handlers import HANDLERS
from wschat.hub.state import Session
from wschat.names import name_key

if TYPE_CHECKING:
    from wschat.hub.core import Hub


def _listing(devices: list[DeviceKey]) -> list[dict[str, Any]]:
    """The devices as `keys` lists them: each key once (a browser's tabs share one key)."""
    listed = {d.key_id: {"id": d.key_id, "key": d.public, "device": d.device} for d in devices}
    return list(listed.values())


def _account_cids(hub: Hub, key: str) -> tuple[int, ...]:
    """This server's connections of account `key` (each of its devices online here)."""
    return tuple(
        c for c in devices.connections(hub, key) if (s := hub.sessions.get(c)) is not None and s.account
    )


def _store_failed(hub: Hub, cid: int, cmid: str | None = None) -> list[Effect]:
    text = "The server could not read or save device keys; try again in a few seconds."
    return [Send((cid,), p.outbound.error(p.STORE_FAILED, text, retry_after=5.0, client_msg_id=cmid))]


def publish_key(hub: Hub, s: Session, req: PublishKey, now: float) -> list[Effect]:
    if not s.account:
        return [hub.error(s, p.NOT_AN_ACCOUNT, "Only accounts have device keys; you are a guest.")]
    try:
        load_public(req.key)
    except ValueError:
        return [hub.error(s, p.BAD_FIELD, "'key' must be a P-256 public key (base64 of its 65-byte point).")]
    asked = SaveDeviceKey(s.key, s.session_id, key_id(req.key), req.key, now)
    return [hub.ask(asked, _saved, (s.cid, s.key, s.name))]


def _saved(hub: Hub, context: tuple[int, str, str], result: Any, now: float) -> list[Effect]:
    cid, key, name = context
    if isinstance(result, BaseException):
        return _store_failed(hub, cid) if cid in hub.sessions else []
    targets = tuple(dict.fromkeys((*_account_cids(hub, key), *((cid,) if cid in hub.sessions else ()))))
    return [Send(targets, keys(name, True, _listing(result)))] if targets else []


def get_keys(hub: Hub, s: Session, req: GetKeys, now: float) -> list[Effect]:
    key = name_key(req.username.strip())
    name = hub.accounts.registered.get(key)
    if name is None:
        return [Send((s.cid,), keys(req.username[:64], False, []))]
    return [hub.ask(ReadDeviceKeys((key,)), _read, (s.cid, key, name))]


def _read(hub: Hub, context: tuple[int, str, str], result: Any, now: float) -> list[Effect]:
    cid, key, name = context
    if cid not in hub.sessions:
        return []
    if isinstance(result, BaseException):
        return _store_failed(hub, cid)
    return [Send((cid,), keys(name, True, _listing(result.get(key, []))))]


# ------------------------------------------------------------------ encrypted private messages

_inner, _needs_name = HANDLERS[p.Private]


def private(hub: Hub, s: Session, req: p.Private, now: float) -> list[Effect]:
    """An encrypted `private` is checked against the devices' keys first; a plain one goes on."""
    if req.e2ee is None:
        return _inner(hub, s, req, now)
    cmid = req.client_msg_id
    if cmid is not None and hub.ids.repeat_ack(s.key, cmid) is not None:
        return _inner(hub, s, req, now)  # a resend of a stored message: acknowledged again
    to_key = name_key(req.to)
    recipient = hub.accounts.registered.get(to_key)
    if not s.account:
        text = "Encrypted messages are between accounts; you are a guest (log in or register)."
        return [hub.error(s, p.NOT_AN_ACCOUNT, text, cmid)]
    if recipient is None:
        text = f"{req.to[:40]} is not a registered name: encrypted messages go to accounts only."
        return [hub.error(s, p.NO_SUCH_USER, text, cmid)]
    return [hub.ask(ReadDeviceKeys((to_key, s.key)), _checked, (s.cid, s.session_id, req))]


def _stale(hub: Hub, s: Session, req: p.Private, why: str) -> list[Effect]:
    text = f"{why} Fetch the keys again (get_keys) and encrypt the message again."
    frame = p.outbound.error(p.STALE_KEYS, text, client_msg_id=req.client_msg_id)
    return [Send((s.cid,), frame)]


def _checked(hub: Hub, context: tuple[int, str, p.Private], result: Any, now: float) -> list[Effect]:
    cid, session_id, req = context
    s = hub.sessions.get(cid)
    if s is None or s.session_id != session_id:
        return []
    if isinstance(result, BaseException):
        return _store_failed(hub, cid, req.client_msg_id)
    envelope = req.e2ee or {}
    own = [d for d in result.get(s.key, []) if d.session_id == session_id]
    if not own or own[0].key_id != envelope.get("from_key") or own[0].public != envelope.get("from_pub"):
        return _stale(hub, s, req, "This device has not published the key the message was encrypted with.")
    to_key = name_key(req.to)
    if not result.get(to_key):  # nobody could ever read it
        return _stale(hub, s, req, f"{req.to[:40]} has no device with an encryption key.")
    wanted = {d.key_id for devices in result.values() for d in devices}
    if set(envelope.get("copies", {})) != wanted:
        why = f"The devices of you or {req.to[:40]} changed since you fetched their keys."
        return _stale(hub, s, req, why)
    return _inner(hub, s, req, now)


HANDLERS[p.Private] = (private, _needs_name)
HANDLERS[PublishKey] = (publish_key, True)
HANDLERS[GetKeys] = (get_keys, True)
