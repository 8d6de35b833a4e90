"""The terminal client's end-to-end encryption: its device key, encrypting, decrypting. NO I/O.

`E2EEClient` is the part of `ClientState` (wschat.clientstate) for PROTOCOL.md's "End-to-end
encrypted private messages". An account's device asks the I/O layer for its key file
(`Job("e2ee_open")`, `wschat.clientkeys`) at its first log-in and publishes the public key
(`publish_key`) at each. `/msg` to an account fetches both accounts' device keys (`get_keys`),
encrypts for every device (`wschat.e2ee`), and queues the frame in the outbox like any message
(a `stale_keys` refusal fetches the keys and encrypts it again, same `client_msg_id`). Where
encryption is not possible (a guest at either end, a recipient without keys) the message goes
in clear and a notice says so. Incoming copies are decrypted before they are shown, with a lock;
one that does not decrypt, or a replay of a message id already seen, is refused with a warning
and never shown as text. Trust in keys (pins, safety numbers) is in `wschat.clienttrust`.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from typing import Any

from wschat import clientaccount, e2ee
from wschat import display as d
from wschat.clientframes import ONLINE, Effect, Job, Outgoing, Send, Show, as_str, note, preview
from wschat.clienttrust import KeyCommands, Pins, changed_text
from wschat.names import name_key

MAX_FRAME = 60_000  # bytes: under the server's default frame limit (64 KiB), with room to spare
MAX_RESENDS = 3  # stale_keys refusals of one message before it is given up
SEEN_KEPT = 5000


class E2EEClient(KeyCommands):
    """Encryption state and handlers, mixed into `ClientState`."""

    me: str
    account: str | None
    phase: str
    logins: int
    max_chars: int
    outbox: OrderedDict[str, Outgoing]
    private_seen: OrderedDict[str, None]
    new_id: Any
    _queue: Any
    _on_error: Any

    def _init_e2ee(self) -> None:
        self.e2ee_key: Any = None  # this device's private key, once the I/O layer opened it
        self.e2ee_opening = False
        self.e2ee_off = ""  # why this device cannot encrypt (no key file, a server without it)
        self.e2ee_pins = Pins()
        self.e2ee_devices: dict[str, tuple[str, list[e2ee.Device] | None]] = {}  # None: not an account
        self.e2ee_asked: set[str] = set()  # name keys whose `keys` are awaited
        self.e2ee_waiting: dict[str, list[tuple[str, str, str]]] = {}  # name key -> [(cmid, to, text)]
        self.e2ee_texts: dict[str, tuple[str, int]] = {}  # cmid -> (text, stale_keys refusals)
        self.e2ee_inbox: list[tuple[str, dict[str, Any]]] = []  # frames that came before the key
        self.e2ee_seen: OrderedDict[tuple[str, str], str] = OrderedDict()  # (sender, mid) -> id
        self.e2ee_told: set[str] = set()
        self.e2ee_safety: set[str] = set()  # name keys whose safety number is to be shown

    # ------------------------------------------------------------------ the device key

    def e2ee_opened(self, key: Any, pins: dict[str, Any], path: str) -> list[Effect]:
        self.e2ee_key, self.e2ee_pins = key, Pins(pins)
        out: list[Effect] = [Send(self._publish())] if self.phase == ONLINE else []
        inbox, self.e2ee_inbox = self.e2ee_inbox, []
        for kind, frame in inbox:
            out += _FRAMES[kind](self, frame, 0.0)
        return out

    def e2ee_failed(self, reason: str) -> list[Effect]:
        self.e2ee_opening = False
        out: list[Effect] = [
            *self._switch_off("This device has no encryption key"),
            note(f"{reason}. Encrypted messages cannot be read or sent on this device.", "error"),
        ]
        for kind, frame in self.e2ee_inbox:
            if kind == "private":
                out.append(self._refuse(frame, "this device has no key"))
        self.e2ee_inbox = []
        return out

    def _publish(self) -> dict[str, Any]:
        return {"type": "publish_key", "key": e2ee.public_text(self.e2ee_key)}

    def _save_pins(self) -> Job:
        return Job("e2ee_save", {"account": self.me, "pins": self.e2ee_pins.data})

    def _ask_keys(self, name: str) -> list[Effect]:
        key = name_key(name)
        if self.phase != ONLINE or self.e2ee_key is None or key in self.e2ee_asked:
            return []
        self.e2ee_asked.add(key)
        return [Send({"type": "get_keys", "username": name})]

    # ------------------------------------------------------------------ sending

    def _private_line(self, to: str, text: str) -> list[Effect]:
        """`/msg to text`: encrypted between accounts, in clear (said) otherwise."""
        if not self.account or self.e2ee_off:
            why = self.e2ee_off or "You are a guest (log in to an account to encrypt them)"
            out = self._tell_once(
                "off", f"{why}: private messages are not end-to-end encrypted; they go in clear."
            )
            return out + self._queue({"type": "private", "to": to, "message": text}, text)
        if len(text) > self.max_chars:
            return [
                note(
                    f"Not sent: the message has {len(text)} characters; the limit is {self.max_chars}.",
                    "error",
                )
            ]
        key = name_key(to)
        cmid = self.new_id()
        self.e2ee_texts[cmid] = (text, 0)
        self.e2ee_waiting.setdefault(key, []).append((cmid, to, text))
        out = self._flush(key, to)
        if self.phase != ONLINE:
            out.append(
                note(
                    f'Not connected: "{preview(text)}" is queued and goes out encrypted once reconnected.',
                    "queued",
                )
            )
        return out

    def _flush(self, key: str, name: str) -> list[Effect]:
        """Encrypt and queue what waits for `key`, if both accounts' keys are known."""
        waiting = self.e2ee_waiting.get(key)
        if not waiting or self.e2ee_key is None:
            return []
        mine, theirs = self.e2ee_devices.get(name_key(self.me)), self.e2ee_devices.get(key)
        if mine is None or theirs is None:
            return (self._ask_keys(self.me) if mine is None else []) + (
                self._ask_keys(name) if theirs is None else []
            )
        shown, devices = theirs
        if devices is None or not devices:
            return self._in_clear(key, shown, devices is None)
        if self.e2ee_pins.changed(key):
            return [note(f"Not sent yet ({len(waiting)} waiting): " + changed_text(shown), "error")]
        targets = {dev.id: dev for dev in [*devices, *(mine[1] or [])]}
        out: list[Effect] = []  # queued in the outbox: `pump()` sends them
        for cmid, _, text in self.e2ee_waiting.pop(key):
            envelope = e2ee.encrypt(
                self.e2ee_key, self.me, shown, self.new_id(), text, list(targets.values())
            )
            frame = {"type": "private", "to": shown, "client_msg_id": cmid, "e2ee": envelope}
            if len(json.dumps(frame)) > MAX_FRAME:  # the server would close the connection (1009)
                why = f"encrypted for {len(targets)} devices it is too large; split it"
                out.append(note(f'Not sent ("{preview(text)}"): {why}.', "error"))
                continue
            self.outbox[cmid] = Outgoing(cmid, frame, waited=self.phase != ONLINE and self.logins > 0)
        return out

    def _in_clear(self, key: str, name: str, guest: bool) -> list[Effect]:
        why = "is not an account (a guest)" if guest else "has no device with an encryption key yet"
        out = (
            []
            if self.e2ee_off
            else self._tell_once(
                f"clear:{key}",
                f"{name} {why}: messages to {name} cannot be end-to-end "
                "encrypted and are sent in clear (the server can read them).",
            )
        )
        for cmid, _, text in self.e2ee_waiting.pop(key, []):
            self.e2ee_texts.pop(cmid, None)
            self.outbox[cmid] = Outgoing(
                cmid, {"type": "private", "to": name, "message": text, "client_msg_id": cmid}
            )
        return out

    def _tell_once(self, what: str, text: str) -> list[Effect]:
        if what in self.e2ee_told:
            return []
        self.e2ee_told.add(what)
        return [note(text, "info")]

    # ------------------------------------------------------------------ frames

    def _e2ee_accepted(self, frame: dict[str, Any], now: float) -> list[Effect]:
        out = self._on_username_accepted(frame, now)  # type: ignore[attr-defined]
        self.e2ee_devices.clear()
        self.e2ee_asked.clear()
        if not self.account:
            return out
        if self.e2ee_key is not None:
            return [*out, Send(self._publish())]
        if not self.e2ee_opening:
            self.e2ee_opening = True
            out.append(Job("e2ee_open", {"account": self.me}))
        return out

    def _on_keys(self, frame: dict[str, Any], now: float) -> list[Effect]:
        name = as_str(frame.get("username"))
        key = name_key(name) if name else ""
        self.e2ee_asked.discard(key)
        raw = frame.get("devices") if isinstance(frame.get("devices"), list) else []
        devices = [
            e2ee.Device(as_str(x.get("id")), as_str(x.get("key")), as_str(x.get("device")))
            for x in raw
            if isinstance(x, dict) and _valid(x)
        ]
        self.e2ee_devices[key] = (name, devices if frame.get("registered") is True else None)
        out: list[Effect] = []
        if frame.get("registered") is True and devices:
            out += self._pin(name, {dev.id: dev.key for dev in devices}, devices)
        if key == name_key(self.me):  # our own list: what waited for it can go now
            for other in list(self.e2ee_waiting):
                out += self._flush(other, self._shown(other))
        else:
            out += self._flush(key, name)
        if key in self.e2ee_safety or (key == name_key(self.me) and self.e2ee_safety):
            out += self._show_safety()
        return out

    def _shown(self, key: str) -> str:
        known = self.e2ee_devices.get(key)
        if known is not None:
            return known[0]
        waiting = self.e2ee_waiting.get(key)
        return waiting[0][1] if waiting else key

    def _pin(self, name: str, keys: dict[str, str], devices: list[e2ee.Device] | None = None) -> list[Effect]:
        seen = self.e2ee_pins.see(name, keys)
        if not seen:
            return []
        out: list[Effect] = [self._save_pins()]
        if name_key(name) == name_key(self.me):
            if seen == "changed":
                new = set(self.e2ee_pins.data[name_key(name)]["pending"])
                self.e2ee_pins.accept(name, None, False)
                labels = (
                    ", ".join(dev.label or dev.id for dev in devices or [] if dev.id in new) or "a device"
                )
                out.append(
                    note(
                        f"Your account has a new device key ({labels}). If that device is not "
                        "yours, revoke it (/sessions, /revoke ID) and change your password.",
                        "error",
                    )
                )
            return out
        if seen == "first":
            out.append(
                note(
                    f"🔒 Messages with {name} are end-to-end encrypted. To be sure no one is in "
                    f"between, compare safety numbers: /safety {name}",
                    "ok",
                )
            )
        else:
            out.append(note("⚠ " + changed_text(name), "error"))
        return out

    def _e2ee_private(self, frame: dict[str, Any], now: float) -> list[Effect]:
        if not isinstance(frame.get("e2ee"), dict):
            return clientaccount.on_private(self, frame, now)  # type: ignore[arg-type]
        if self.e2ee_key is None:
            self.e2ee_inbox.append(("private", frame))
            return []
        pid = as_str(frame.get("id"))
        if pid and pid in self.private_seen:
            return []
        opened = self._open(frame)
        if isinstance(opened, Show):
            if pid:
                self.private_seen[pid] = None
            return [opened]
        text, lock, extra = opened
        shown = clientaccount.on_private(self, {**frame, "message": text, "e2ee": None}, now)  # type: ignore[arg-type]
        cmid = frame.get("client_msg_id")
        if isinstance(cmid, str):
            self.e2ee_texts.pop(cmid, None)
        return extra + _locked(shown, lock)

    def _open(self, frame: dict[str, Any]) -> tuple[str, str, list[Effect]] | Show:
        """Decrypt this device's copy: (text, lock, notices), or the warning shown instead."""
        sender, to, envelope = as_str(frame.get("from")), as_str(frame.get("to")), frame["e2ee"]
        try:
            text = e2ee.decrypt(self.e2ee_key, sender, to, envelope)
        except e2ee.Undecryptable as exc:
            return self._refuse(frame, str(exc))
        seen = (name_key(sender), as_str(envelope.get("mid")))
        pid = as_str(frame.get("id"))
        if self.e2ee_seen.get(seen, pid) != pid:
            return Show(
                d.Notice(
                    f"⚠ Refused a replayed message from {sender}: a message with the same "
                    "id was delivered before (the server or someone sent it again).",
                    "error",
                )
            )
        self.e2ee_seen[seen] = pid
        if len(self.e2ee_seen) > SEEN_KEPT:
            self.e2ee_seen.popitem(last=False)
        other = to if name_key(sender) == name_key(self.me) else sender
        extra = self._pin(sender, {as_str(envelope.get("from_key")): as_str(envelope.get("from_pub"))})
        lock = "verified" if self.e2ee_pins.verified(name_key(other)) else "e2ee"
        if self.e2ee_pins.changed(name_key(other)):
            lock = "changed"
        return text, lock, extra

    def _refuse(self, frame: dict[str, Any], why: str) -> Show:
        sender = as_str(frame.get("from")) or "someone"
        text = f"⚠ A private message from {sender} could not be decrypted ({why}); it is not shown."
        return Show(d.Notice(text, "error"))

    def _e2ee_history(self, frame: dict[str, Any], now: float) -> list[Effect]:
        raw = frame.get("messages")
        if (
            self.e2ee_key is None
            and isinstance(raw, list)
            and any(isinstance(m, dict) and m.get("e2ee") for m in raw)
        ):
            self.e2ee_inbox.append(("private_history", frame))
            return []
        messages, locks, warnings = [], [], []
        for m in raw if isinstance(raw, list) else []:
            if not isinstance(m, dict) or not isinstance(m.get("e2ee"), dict):
                messages.append(m)
                locks.append("")
                continue
            opened = self._open(m)
            if isinstance(opened, Show):
                warnings.append(opened)
                continue
            messages.append({**m, "message": opened[0], "e2ee": None})
            locks.append(opened[1])
        shown = clientaccount.on_private_history(self, {**frame, "messages": messages}, now)  # type: ignore[arg-type]
        return warnings + _locked(shown, *locks)

    def _switch_off(self, why: str) -> list[Effect]:
        """Encryption is not possible here: what waits goes in clear, and the user is told."""
        self.e2ee_off = why
        out = self._tell_once(
            "off", f"{why}: private messages are not end-to-end encrypted; they go in clear."
        )
        for key, waiting in list(self.e2ee_waiting.items()):
            out += self._in_clear(key, waiting[0][1], True)
        return out

    def _e2ee_error(self, frame: dict[str, Any], now: float) -> list[Effect]:
        refused = as_str(frame.get("message"))
        if frame.get("code") == "unknown_type" and ("'publish_key'" in refused or "'get_keys'" in refused):
            return self._switch_off("This server does not support end-to-end encryption")
        cmid = frame.get("client_msg_id")
        item = self.outbox.get(cmid) if isinstance(cmid, str) else None
        if frame.get("code") != "stale_keys" or item is None or cmid not in self.e2ee_texts:
            return self._on_error(frame, now)
        text, refusals = self.e2ee_texts[cmid]
        to = as_str(item.frame.get("to"))
        if refusals >= MAX_RESENDS:
            del self.outbox[cmid]
            return [
                note(f'Not sent ("{preview(text)}"): the devices of {to} keep changing; try again.', "error")
            ]
        self.e2ee_texts[cmid] = (text, refusals + 1)
        del self.outbox[cmid]  # encrypted again once the keys are fetched again
        key = name_key(to)
        self.e2ee_waiting.setdefault(key, []).append((cmid, to, text))
        self.e2ee_devices.pop(key, None)
        self.e2ee_devices.pop(name_key(self.me), None)
        return self._ask_keys(self.me) + self._ask_keys(to)

    def _e2ee_revoked(self, frame: dict[str, Any], now: float) -> list[Effect]:
        out = clientaccount.on_session_revoked(self, frame, now)  # type: ignore[arg-type]
        self.e2ee_devices.pop(name_key(self.me), None)
        return out + self._ask_keys(self.me)


def _valid(x: dict[str, Any]) -> bool:
    try:
        return e2ee.key_id(as_str(x.get("key"))) == x.get("id")
    except ValueError:
        return False


def _locked(effects: list[Effect], *locks: str) -> list[Effect]:
    """The private messages among `effects`, marked with these locks in turn."""
    out: list[Effect] = []
    it = iter(locks)
    for e in effects:
        if isinstance(e, Show) and isinstance(e.event, d.PrivateMessage):
            e = Show(dataclasses.replace(e.event, lock=next(it, locks[-1] if locks else "")), e.key)
        out.append(e)
    return out


_FRAMES: dict[str, Any] = {
    "username_accepted": E2EEClient._e2ee_accepted,
    "keys": E2EEClient._on_keys,
    "private": E2EEClient._e2ee_private,
    "private_history": E2EEClient._e2ee_history,
    "error": E2EEClient._e2ee_error,
    "session_revoked": E2EEClient._e2ee_revoked,
}
FRAMES = _FRAMES
