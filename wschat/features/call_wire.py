"""Calls on the wire: the `call` request and frame. NO I/O.

A `call` frame carries the set-up of a WebRTC voice or video call between two people (the
offer and answer SDP, ICE candidates, ringing, accept, decline, hang-up). The server relays it
to the other party only, never stores it and never broadcasts it (`wschat.features.calls`).
`wschat.protocol` imports this module at its end and it adds its frame types to
`protocol.FRAME_TYPES`. PROTOCOL.md ("Calls") is the specification.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from wschat import outbound
from wschat import protocol as p

ACTIONS = ("invite", "ringing", "accept", "decline", "candidate", "hangup")
KINDS = ("audio", "video")
MAX_SDP_CHARS = 32_000  # an offer with audio, video and a dozen candidates is about 6,000
MAX_CANDIDATE_CHARS = 1_000
CALL_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
REASON = re.compile(r"[a-z_]{1,32}")
# Why a call ended, when the server ends it: a client may not claim these (a forged "glare"
# would make the other page answer the sender's next call by itself).
SERVER_REASONS = ("busy", "no_answer", "offline", "disconnected", "glare")


@dataclass(frozen=True, slots=True)
class Call:
    call_id: str
    to: str
    action: str
    kind: str = "audio"
    sdp: str | None = None
    candidate: dict[str, Any] | None = None
    reason: str | None = None


def _candidate(obj: dict) -> dict[str, Any] | None:
    """An RTCIceCandidateInit ({candidate, sdpMid, sdpMLineIndex, usernameFragment}); None: the
    sender has no more candidates."""
    raw = obj.get("candidate")
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("candidate"), str):
        raise p.ProtocolError(p.BAD_FIELD, "'candidate' must be an ICE candidate object (or null).")
    kept: dict[str, Any] = {}
    for key, kinds in (
        ("candidate", (str,)),
        ("sdpMid", (str, type(None))),
        ("sdpMLineIndex", (int, type(None))),
        ("usernameFragment", (str, type(None))),
    ):
        value = raw.get(key)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise p.ProtocolError(p.BAD_FIELD, f"'candidate.{key}' has the wrong type.")
        if isinstance(value, str) and len(value) > MAX_CANDIDATE_CHARS:
            raise p.ProtocolError(p.TOO_LONG, "An ICE candidate is at most 1,000 characters.")
        if key in raw:
            kept[key] = value
    return kept


def _call(obj: dict, limits: p.Limits) -> Call:
    call_id = p._text(obj, "call_id")
    if not CALL_ID.fullmatch(call_id):
        raise p.ProtocolError(p.BAD_FIELD, "'call_id' must be 8-64 letters, digits, '-' or '_'.")
    to = p._text(obj, "to")
    if len(to) > 64:
        raise p.ProtocolError(p.BAD_FIELD, "'to' must be a user's name.")
    action = p._text(obj, "action")
    if action not in ACTIONS:
        raise p.ProtocolError(p.BAD_FIELD, f"'action' must be one of: {', '.join(ACTIONS)}.")
    kind = p._text(obj, "kind", required=False, default="audio")
    if kind not in KINDS:
        raise p.ProtocolError(p.BAD_FIELD, "'kind' must be 'audio' or 'video'.")
    sdp = p._text(obj, "sdp", required=action in ("invite", "accept"))
    if sdp is not None and len(sdp) > MAX_SDP_CHARS:
        raise p.ProtocolError(p.TOO_LONG, f"'sdp' is at most {MAX_SDP_CHARS} characters.")
    reason = p._text(obj, "reason", required=False)
    if reason is not None and not REASON.fullmatch(reason):
        raise p.ProtocolError(p.BAD_FIELD, "'reason' must be a short word (a-z and '_').")
    if reason in SERVER_REASONS:
        raise p.ProtocolError(
            p.BAD_FIELD, f"'reason' {reason} is the server's to give; say 'hangup' or 'failed'."
        )
    candidate = _candidate(obj) if action == "candidate" else None
    return Call(call_id, to, action, kind, sdp if action in ("invite", "accept") else None, candidate, reason)


def call(req_fields: dict[str, Any]) -> bytes:
    """A `call` frame for one party: the fields relayed, with `from` the other party's name."""
    return outbound.encode({"type": "call", **{k: v for k, v in req_fields.items() if v is not None}})


TYPES = (p.FrameType("call", _call, call),)
p.FRAME_TYPES.update((t.name, t) for t in TYPES)
p._DECODERS.update((t.name, t.decode) for t in TYPES if t.decode is not None)
