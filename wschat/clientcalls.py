"""The terminal client and calls: incoming calls told, `/decline`, the end of a call. NO I/O.

Calls happen in the web page (WebRTC); a terminal cannot take one. It says who is calling
("Alice is calling (video call): answer in the web page, or /decline") and `/decline` refuses
the call ringing. A call's outcome arrives as a private message ("📞 Missed video call"), shown
in the conversation like any other. `ClientState` shows what `FRAMES` return; `wschat.commands`
gets `/decline` from `COMMANDS` when this is imported (by `wschat.clientlines`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wschat import commands
from wschat.clientframes import Send, as_str, note

if TYPE_CHECKING:
    from wschat.clientframes import Effect
    from wschat.clientstate import ClientState

KIND_WORDS = {"audio": "voice call", "video": "video call"}
ENDED = {
    "no_answer": "{p}'s call stopped ringing (missed).",
    "hangup": "{p} hung up before you answered (missed).",
    "disconnected": "{p} went offline before you answered (missed).",
    "glare": "{p}'s call ended.",
}


@dataclass(frozen=True, slots=True)
class Decline:
    """`/decline`: refuse the call ringing for you."""


def on_call(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    action, call_id, who = (
        as_str(frame.get("action")),
        as_str(frame.get("call_id")),
        as_str(frame.get("from")),
    )
    if action == "invite" and who:
        if st.ringing.get("call_id") == call_id:
            return []  # told again after a reconnect: still the same call
        st.ringing = {"call_id": call_id, "from": who}
        kind = KIND_WORDS.get(as_str(frame.get("kind")), "call")
        return [note(f"{who} is calling ({kind}): answer in the web page, or /decline.", "system")]
    if action in ("hangup", "decline") and st.ringing.get("call_id") == call_id:
        st.ringing = {}
        reason = as_str(frame.get("reason"), "hangup")
        return [note(ENDED.get(reason, ENDED["glare"]).format(p=who or "The caller"), "system")]
    return []


def command(st: ClientState, cmd: Decline) -> list[Effect]:
    if not st.ringing:
        return [note("Nobody is calling you.", "error")]
    ringing, st.ringing = st.ringing, {}
    frame = {"type": "call", "call_id": ringing["call_id"], "to": ringing["from"], "action": "decline"}
    return [Send(frame), note(f"You declined {ringing['from']}'s call.")]


def _decline(arg: str) -> Any:
    return commands.Usage("Usage: /decline (refuses the call ringing for you)") if arg else Decline()


FRAMES = {"call": on_call}

commands._COMMANDS["decline"] = _decline
_at = next(i for i, (usage, _) in enumerate(commands.HELP) if usage == "/help")
commands.HELP[_at:_at] = [
    ("/decline", "refuse the call ringing for you (calls are answered in the web page)")
]
