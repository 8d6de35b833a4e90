"""The terminal client's profiles: `/status /away /busy /back /whois /autoaway`, going away by
itself after a while without typing, and the lines for `profile` and `profiles` frames. NO I/O.

`Presence` is this device's presence as the user chose it (`online`, `away`, `busy`) and
whether it went away by itself; `ClientState.pump` asks `pump()` for a `set_profile` when the
idle time (`/autoaway`, 10 minutes by default) has passed, `ClientState.line`/`edited` call
`active()` on every keystroke and line, which brings an automatic away back to online. After a
reconnect the chosen presence is sent again (a new connection starts online).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wschat import commands
from wschat.clientframes import Job, Send, as_str, note
from wschat.clientmod import _duration

if TYPE_CHECKING:
    from wschat.clientframes import Effect
    from wschat.clientstate import ClientState

AWAY_AFTER = 600.0  # seconds without typing before this device says it is away


@dataclass(slots=True)
class Presence:
    chosen: str = "online"  # what the user chose with /away, /busy, /back
    auto: bool = False  # away by itself (idle); typing brings it back
    away_after: float = AWAY_AFTER  # 0: never
    last_input: float | None = None
    told_gen: int = -1  # the connection the presence was last sent on
    whois: set[str] = field(default_factory=set)  # names asked about (their answer is shown in full)
    # what the others said of themselves: folded name -> (name, presence, status); plain ones left out
    cards: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def of_users(self, names: tuple[str, ...] | list[str]) -> list[Effect]:
        """After a user list: who of them is away or busy, or has a status (one line)."""
        known = [self.cards[n.casefold()] for n in names if n.casefold() in self.cards]
        if not known:
            return []
        said = ", ".join(_card(name, {"presence": p, "status": status}) for name, p, status in known)
        return [note(said, "users")]

    def keep(self, name: str, f: dict[str, Any]) -> None:
        presence, status = as_str(f.get("presence"), "online"), as_str(f.get("status"))
        if (presence in ("online", "offline") and not status) or f.get("online") is False:
            self.cards.pop(name.casefold(), None)
        else:
            self.cards[name.casefold()] = (name, presence, status)

    def frame(self) -> dict[str, Any]:
        return {"type": "set_profile", "presence": "away" if self.auto else self.chosen}

    def pump(self, now: float, gen: int, frames: list[dict[str, Any]]) -> float | None:
        """Frames due (the presence after a reconnect, going away); when to look again."""
        if self.last_input is None:
            self.last_input = now
        if self.told_gen != gen:
            self.told_gen = gen
            if self.auto or self.chosen != "online":
                frames.append(self.frame())
        if self.chosen != "online" or self.auto or self.away_after <= 0:
            return None
        due = self.last_input + self.away_after
        if now < due:
            return due
        self.auto = True
        frames.append(self.frame())
        return None

    def active(self, now: float) -> list[dict[str, Any]]:
        """The user typed: back from an automatic away."""
        self.last_input = now
        if not self.auto:
            return []
        self.auto = False
        return [self.frame()]


@dataclass(frozen=True, slots=True)
class ProfileCmd:
    frame: dict[str, Any] | None
    presence: str | None = None  # this device's presence, chosen
    away_after: float | None = None  # /autoaway
    avatar_path: str | None = None  # /avatar FILE: upload it, then set it (wschat.clientfiles)


def _presence(kind: str) -> Any:
    def parse(arg: str) -> ProfileCmd:
        frame: dict[str, Any] = {"type": "set_profile", "presence": kind}
        if arg.strip():
            frame["status"] = arg.strip()
        return ProfileCmd(frame, kind)

    return parse


def _whois(arg: str) -> Any:
    name = arg.strip()
    if not name or " " in name:
        return commands.Usage("Usage: /whois NAME")
    return ProfileCmd({"type": "whois", "username": name})


def _avatar(arg: str) -> Any:
    path = arg.strip().strip('"')
    if not path:
        return commands.Usage("Usage: /avatar FILE (an image: PNG, JPEG, GIF or WebP) or /avatar off")
    if path.lower() in ("off", "none"):
        return ProfileCmd({"type": "set_profile", "avatar": ""})
    return ProfileCmd(None, avatar_path=path)


def _autoaway(arg: str) -> Any:
    word = arg.strip().lower()
    seconds = 0 if word == "off" else _duration(word)
    if seconds is None:
        return commands.Usage("Usage: /autoaway 10m|30s|1h|off (away after that long without typing)")
    return ProfileCmd(None, away_after=float(seconds))


COMMANDS = {
    "status": lambda arg: ProfileCmd({"type": "set_profile", "status": arg.strip()}),
    "away": _presence("away"),
    "busy": _presence("busy"),
    "back": _presence("online"),
    "whois": _whois,
    "autoaway": _autoaway,
    "avatar": _avatar,
}
HELP = [
    ("/status [TEXT]", "set your status message (none: clear it)"),
    ("/away [TEXT], /busy [TEXT]", "say you are away or busy (optionally with a status)"),
    ("/back", "online again"),
    ("/whois NAME", "someone's profile: presence, status, avatar, last seen"),
    ("/avatar FILE|off", "upload an image as your avatar, or remove it (accounts)"),
    ("/autoaway 10m|off", "go away by yourself after that long without typing (default 10m)"),
]


def command(st: ClientState, cmd: ProfileCmd) -> list[Effect]:
    if cmd.away_after is not None:
        st.presence.away_after = cmd.away_after
        said = "never" if not cmd.away_after else f"after {int(cmd.away_after)} s without typing"
        return [note(f"You will be shown as away {said}.", "ok")]
    if cmd.avatar_path is not None:
        return [Job("hash", {"path": cmd.avatar_path, "room": None, "to": None, "avatar": True})]
    if cmd.presence is not None:
        st.presence.chosen, st.presence.auto = cmd.presence, False
    assert cmd.frame is not None
    if cmd.frame["type"] == "whois":
        st.presence.whois.add(cmd.frame["username"].casefold())
    return [Send(cmd.frame)]


def _card(name: str, f: dict[str, Any]) -> str:
    presence, status = as_str(f.get("presence")), as_str(f.get("status"))
    text = name + ("" if presence in ("online", "") else f" ({presence})")
    return text + (f": {status}" if status else "")


def on_profile(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    name = as_str(frame.get("username"))
    st.presence.keep(name, frame)
    if name.casefold() in st.presence.whois:
        st.presence.whois.discard(name.casefold())
        kind = "account" if frame.get("account") is True else "guest"
        seen = as_str(frame.get("last_seen"))
        when = f", last seen {seen[:10]} {seen[11:16]} UTC" if seen else ""
        return [note(f"{_card(name, frame)} [{_avatar_said(frame)}] ({kind}{when})", "users")]
    if name == st.me:
        status = as_str(frame.get("status")) or "none"
        image = "; avatar: an image" if _has_image(frame) else ""
        return [note(f"You are {as_str(frame.get('presence'))}; status: {status}{image}.")]
    return [note(_card(name, frame), "users")]


def _has_image(frame: dict[str, Any]) -> bool:
    drawn = frame.get("avatar")
    return isinstance(drawn, dict) and isinstance(drawn.get("url"), str)


def _avatar_said(frame: dict[str, Any]) -> str:
    """The initials (what a terminal can draw), and whether an uploaded image is set."""
    drawn = frame.get("avatar")
    initials = as_str(drawn.get("initials")) if isinstance(drawn, dict) else ""
    return initials + (", avatar image set" if _has_image(frame) else "")


def on_profiles(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    cards = frame.get("profiles")
    if not isinstance(cards, dict) or not cards:
        return []
    for name, c in cards.items():
        if isinstance(c, dict):
            st.presence.keep(str(name), c)
    shown = ", ".join(_card(str(n), c) for n, c in list(cards.items())[:10] if isinstance(c, dict))
    return [note(f"#{as_str(frame.get('room'))}: {shown}", "users")]


FRAMES = {"profile": on_profile, "profiles": on_profiles}

# The commands join the command table and /help (before "/help" itself) when this is imported
# (by wschat.clientlines).
commands._COMMANDS.update(COMMANDS)
_at = next(i for i, (usage, _) in enumerate(commands.HELP) if usage == "/help")
commands.HELP[_at:_at] = HELP
