"""Profiles in the hub: status messages, presence (online, away, busy), avatars, last seen, `whois`. NO I/O.

A user's presence is its devices' together: busy if one of them says busy, else online if one
is online, else away (the clients set away by themselves after a while idle). The status is the
user's (an account's is stored, `wschat.features.profile_records`; a guest's lives while it is
online). When either changes, a `profile` frame goes to the user's devices and to the members of
its rooms (rooms up to `large_room` members: in a larger one a change is not pushed, `whois`
still tells); under `--redis` on every process (`wschat.features.profile_cluster`). An
account's last device going records its "last seen" time (under `--redis`, its last device on
any process: `wschat.redisnames` records it when it frees the name). An account's avatar
is an uploaded image (`upload_begin` {for: avatar}, then `set_profile` {avatar: its id}): the
media store says whether it is stored and an image (`MediaInfo`) before it is kept and told.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wschat import protocol as p
from wschat.effects import Effect, Send
from wschat.features import profile_cluster
from wschat.features import profile_wire as wire
from wschat.features.media_rules import MediaInfo, StoredFile, inline
from wschat.features.profile_records import ReadProfile, SaveProfile, StoredProfile
from wschat.hub import devices, rooms
from wschat.hub.state import Room, Session
from wschat.names import name_key
from wschat.records import FindDevices, SaveLive, UserPlace

if TYPE_CHECKING:
    from wschat.hub.core import Hub


class ProfileBook:
    """The profiles of the users online here."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}  # name key -> status message
        self.presence: dict[int, str] = {}  # connection -> "away" or "busy" (absent: online)
        self.shown: dict[str, str] = {}  # name key -> the presence last told (absent: online)
        self.avatar: dict[str, str] = {}  # name key -> its avatar's media id (accounts only)


def _book(hub: Hub) -> ProfileBook:
    return hub.profiles


def presence_of(hub: Hub, key: str) -> str:
    """The user's presence: offline, or its devices' together (busy, else online, else away)."""
    cids = devices.connections(hub, key)
    if not cids:
        return "offline"
    return together({_book(hub).presence.get(cid, "online") for cid in cids})


def together(said: set[str]) -> str:
    """Several devices' presence as one: busy if one says so, else online if one is, else away."""
    return "busy" if "busy" in said else "online" if "online" in said else "away"


def card(hub: Hub, s: Session) -> dict[str, Any]:
    book = _book(hub)
    return wire.card(s.name, presence_of(hub, s.key), book.status.get(s.key, ""), book.avatar.get(s.key, ""))


def _plain(hub: Hub, s: Session) -> bool:
    """Online, no status: what a client assumes of anyone listed without a card."""
    book = _book(hub)
    return presence_of(hub, s.key) == "online" and not book.status.get(s.key) and not book.avatar.get(s.key)


def audience(hub: Hub, key: str) -> tuple[int, ...]:
    """Who hears of the user's profile changing: its devices and the members of its small rooms."""
    mine = devices.connections(hub, key)
    targets: dict[int, None] = dict.fromkeys(mine)
    if mine:
        for room_name in hub.sessions[mine[0]].rooms:  # the rooms are the user's (all devices)
            room = hub.rooms[room_name]
            if rooms.online(room) <= hub.config.large_room:
                targets.update(room.members)
    return tuple(targets)


def _frame(hub: Hub, s: Session) -> bytes:
    book = _book(hub)
    status, avatar_id = book.status.get(s.key, ""), book.avatar.get(s.key, "")
    return wire.profile(s.name, presence_of(hub, s.key), status, account=s.account, avatar_id=avatar_id)


def _announce(hub: Hub, s: Session, force: bool) -> list[Effect]:
    """The user's `profile` to its audience, if its presence changed (or `force`)."""
    if hub.broker.names_by_store:  # its devices and rooms may be on other processes too
        return profile_cluster.announce(hub, s, force)
    book = _book(hub)
    presence = presence_of(hub, s.key)
    if not force and book.shown.get(s.key, "online") == presence:
        return []
    book.shown[s.key] = presence
    return [Send(audience(hub, s.key), _frame(hub, s))]


def set_profile(hub: Hub, s: Session, req: wire.SetProfile, now: float) -> list[Effect]:
    book = _book(hub)
    out: list[Effect] = []
    if req.avatar is not None:
        out += _set_avatar(hub, s, req.avatar)
        if req.status is None and req.presence is None:
            return out
    if req.presence == "online":
        book.presence.pop(s.cid, None)
    elif req.presence is not None:
        book.presence[s.cid] = req.presence
    changed = req.status is not None and req.status != book.status.get(s.key, "")
    if changed:
        book.status[s.key] = req.status or ""
        if s.account:
            out.append(hub.ask(SaveProfile(s.key, status=req.status), _saved, None))
    if hub.broker.names_by_store and (changed or req.presence is not None):  # for whois elsewhere
        status = book.status.get(s.key, "")
        for cid in devices.connections(hub, s.key) if changed else (s.cid,):
            out.append(hub.ask(SaveLive(s.key, cid, book.presence.get(cid, "online"), status), _saved, None))
    return out + _announce(hub, s, changed or req.presence is not None)


def _saved(hub: Hub, context: Any, result: Any, now: float) -> list[Effect]:
    return []  # a status not saved (storage failed) lasts while the user is online


def _set_avatar(hub: Hub, s: Session, media_id: str) -> list[Effect]:
    """`set_profile {avatar}`: "" removes it; an id is checked in the media store first."""
    if not s.account:
        return [hub.error(s, p.NOT_AN_ACCOUNT, "Only accounts have avatars; log in or register first.")]
    if media_id:
        return [hub.ask(MediaInfo(media_id), _avatar_checked, (s.cid, media_id))]
    if _book(hub).avatar.pop(s.key, None) is None:
        return []
    return [hub.ask(SaveProfile(s.key, avatar=""), _saved, None), *_announce(hub, s, True)]


def _avatar_checked(hub: Hub, context: tuple[int, str], result: Any, now: float) -> list[Effect]:
    cid, media_id = context
    s = hub.sessions.get(cid)
    if s is None:
        return []
    if isinstance(result, BaseException):
        return [hub.error(s, p.STORE_FAILED, "The server could not read its files; try again shortly.")]
    if not isinstance(result, StoredFile):
        return [hub.error(s, p.NO_SUCH_FILE, "There is no stored file with that id; upload the image again.")]
    if not (inline(result.mime) and result.thumb):
        return [hub.error(s, p.NOT_AN_IMAGE, "An avatar must be an image (PNG, JPEG, GIF or WebP).")]
    _book(hub).avatar[s.key] = media_id
    return [hub.ask(SaveProfile(s.key, avatar=media_id), _saved, None), *_announce(hub, s, True)]


def after_login(hub: Hub, s: Session) -> list[Effect]:
    """An account's first device logged in: read its stored status."""
    if devices.connections(hub, s.key) != (s.cid,):
        return []  # another device has it already
    return [hub.ask(ReadProfile(s.key), _read, s.cid)]


def _read(hub: Hub, cid: int, result: Any, now: float) -> list[Effect]:
    s = hub.sessions.get(cid)
    if s is None or not isinstance(result, StoredProfile) or not (result.status or result.avatar):
        return []
    book = _book(hub)
    if result.avatar:
        book.avatar.setdefault(s.key, result.avatar)  # one set meanwhile on a device is newer
    if result.status:
        book.status.setdefault(s.key, result.status)
    return _announce(hub, s, True)


def entered(hub: Hub, s: Session, room: Room) -> list[Effect]:
    """After `joined`: the profiles of the room's members that are not plain (away, busy, or
    with a status) to `s`, and `s`'s to them if it is not plain; nothing for a room of plain ones."""
    if rooms.online(room) > hub.config.large_room:
        return []
    sessions = hub.sessions
    members = [sessions[c] for c in room.members if c not in room.doubles and c != s.cid]
    cards = {o.name: card(hub, o) for o in members if not _plain(hub, o)}
    out: list[Effect] = []
    if hub.broker.names_by_store:  # members elsewhere too: with them, in one `profiles`
        out += profile_cluster.entered(hub, s, room, cards)
    elif cards:
        out.append(Send((s.cid,), wire.profiles(room.name, cards)))
    if not _plain(hub, s) and s.cid not in room.doubles:  # a further device: the room knows it
        out.append(Send(tuple(c for c in room.members if c != s.cid), _frame(hub, s)))
    return out


def gone(hub: Hub, s: Session, now: float, out: list[Effect]) -> None:
    """Connection `s` went: its presence with it; the last device going records "last seen"."""
    book = _book(hub)
    book.presence.pop(s.cid, None)
    left = devices.connections(hub, s.key)
    if left:
        out += _announce(hub, hub.sessions[left[0]], False)
        return
    cluster = hub.broker.names_by_store
    if cluster and s.account:  # its devices elsewhere (if any) make its presence now
        out += profile_cluster.announce(hub, s, False, book.shown.get(s.key, "online"))
    book.status.pop(s.key, None)
    book.shown.pop(s.key, None)
    book.avatar.pop(s.key, None)
    if s.account and not cluster:  # under --redis: when its last device anywhere goes (redisnames)
        out.append(hub.ask(SaveProfile(s.key, last_seen=now), _saved, None))


def whois(hub: Hub, s: Session, req: wire.Whois, now: float) -> list[Effect]:
    key = name_key(req.username.strip())
    online = devices.connections(hub, key)
    here = hub.sessions[online[0]] if online else None
    if hub.broker.names_by_store and (here is None or here.account):  # devices on other processes?
        return [hub.ask(FindDevices(key), _whois_found, (s.cid, key, req.username))]
    if here is not None:
        return [Send((s.cid,), _frame(hub, here))]
    return _whois_stored(hub, s, key, req.username, ())


def _whois_found(hub: Hub, context: tuple[int, str, str], places: Any, now: float) -> list[Effect]:
    """Cluster mode: the user's connections on the other processes, with what each says."""
    cid, key, asked = context
    s = hub.sessions.get(cid)
    if s is None:
        return []
    if not isinstance(places, tuple):
        return [hub.error(s, p.STORE_FAILED, "The server could not read that profile; ask again shortly.")]
    online = devices.connections(hub, key)
    if online:  # online here (and perhaps there): its devices' presence together
        book, o = _book(hub), hub.sessions[online[0]]
        said = {book.presence.get(c, "online") for c in online} | {d.presence for d in places}
        status, avatar_id = book.status.get(key, ""), book.avatar.get(key, "")
        return [
            Send((cid,), wire.profile(o.name, together(said), status, account=o.account, avatar_id=avatar_id))
        ]
    if places and key not in hub.accounts.registered:  # a guest elsewhere: all it has is live
        presence = together({d.presence for d in places})
        return [Send((cid,), wire.profile(places[0].name, presence, places[0].status, account=False))]
    return _whois_stored(hub, s, key, asked, places)


def _whois_stored(hub: Hub, s: Session, key: str, asked: str, places: tuple[UserPlace, ...]) -> list[Effect]:
    name = hub.accounts.registered.get(key)
    if name is None:
        return [hub.error(s, p.NO_SUCH_USER, f"{asked[:40]} is not online and has no account.")]
    return [hub.ask(ReadProfile(key), _whois_read, (s.cid, name, places))]


def _whois_read(hub: Hub, context: tuple, result: Any, now: float) -> list[Effect]:
    cid, name, places = context
    s = hub.sessions.get(cid)
    if s is None:
        return []
    if not isinstance(result, StoredProfile):
        return [hub.error(s, p.STORE_FAILED, "The server could not read that profile; ask again shortly.")]
    if places:  # online on other processes: its devices' presence together, as here
        presence = together({d.presence for d in places})
        frame = wire.profile(name, presence, result.status, account=True, avatar_id=result.avatar)
        return [Send((cid,), frame)]
    frame = wire.profile(
        name, "offline", result.status, account=True, last_seen=result.last_seen, avatar_id=result.avatar
    )
    return [Send((cid,), frame)]


HANDLERS = {wire.SetProfile: set_profile, wire.Whois: whois}

from wschat.hub.handlers import HANDLERS as _REGISTRY  # noqa: E402  (see wschat.hub.handlers)

_REGISTRY.update((kind, (handler, True)) for kind, handler in HANDLERS.items())
