"""The terminal client's trust in contacts' keys: pins, changed keys, safety numbers. NO I/O.

Each contact's device keys are pinned the first time they are seen (trust on first use), per
account of this device. A key not pinned (a new device, a changed key) makes the contact
"changed": loud notices, and no message goes to it until the user accepts it (`/accept NAME`)
or verifies the safety number (`/safety NAME`, then `/verify NAME`). Verified contacts are
marked. The pins are a JSON-able dict the I/O layer keeps (`wschat.clientkeys`):
`{name key: {"name", "keys": {key id: public key}, "pending": {...}, "verified": bool}}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wschat import commands, e2ee
from wschat.clientframes import Effect, note
from wschat.e2ee import Device
from wschat.names import name_key


@dataclass(frozen=True, slots=True)
class KeyCommand:
    """/safety NAME, /verify NAME, /accept NAME."""

    action: str
    name: str


def _parse(action: str) -> Any:
    def parse(arg: str) -> commands.Command | KeyCommand:
        name = arg.strip().strip('"').strip()
        if not name:
            return commands.Usage(f"Usage: /{action} NAME")
        return KeyCommand(action, name)

    return parse


commands._COMMANDS.update({w: _parse(w) for w in ("safety", "verify", "accept")})
_HELP = [
    ("/safety USER", "the safety number of your encrypted conversation with USER: compare it with theirs"),
    ("/verify USER", "mark USER verified, once your safety numbers match"),
    ("/accept USER", "trust USER's new or changed keys without verifying them"),
]
_at = next(i for i, (usage, _) in enumerate(commands.HELP) if usage == "/help")
commands.HELP[_at:_at] = _HELP


def changed_text(name: str) -> str:
    return (
        f"{name}'s keys changed: verify before you trust this conversation. Compare safety numbers "
        f"with /safety {name}, then /verify {name} (or /accept {name} to trust the new keys unverified)."
    )


class Pins:
    """The pinned keys of one account's contacts (the account itself included, under its key)."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = {}
        for k, v in (data or {}).items():
            if isinstance(v, dict) and isinstance(v.get("keys"), dict):
                pending = v.get("pending") if isinstance(v.get("pending"), dict) else {}
                entry = {"name": str(v.get("name", k)), "keys": dict(v["keys"]), "pending": pending}
                self.data[k] = {**entry, "verified": v.get("verified") is True}

    def changed(self, key: str) -> bool:
        entry = self.data.get(key)
        return bool(entry and entry["pending"])

    def verified(self, key: str) -> bool:
        entry = self.data.get(key)
        return bool(entry and entry["verified"] and not entry["pending"])

    def see(self, name: str, devices: dict[str, str]) -> str:
        """Keys seen for `name` ({id: public}): "first" (pinned now), "changed" (new keys
        pending, newly), or "" (nothing new)."""
        key = name_key(name)
        entry = self.data.get(key)
        if entry is None:
            self.data[key] = {"name": name, "keys": dict(devices), "pending": {}, "verified": False}
            return "first"
        new = {i: pub for i, pub in devices.items() if i not in entry["keys"] and i not in entry["pending"]}
        if not new:
            return ""
        entry["pending"].update(new)
        return "changed"

    def accept(self, name: str, devices: list[Device] | None, verified: bool) -> None:
        """Trust the pending keys (accept), or exactly the current ones (verify)."""
        key = name_key(name)
        entry = self.data.setdefault(key, {"name": name, "keys": {}, "pending": {}, "verified": False})
        if verified and devices is not None:
            entry["keys"] = {d.id: d.key for d in devices}
        else:
            entry["keys"].update(entry["pending"])
        entry["pending"] = {}
        entry["verified"] = verified


def safety_lines(me: str, other: str, number: str, verified: bool) -> list[str]:
    groups = number.split()
    state = f"{other} is verified." if verified else f"Not verified yet: once they match, /verify {other}."
    return [
        f"Safety number of your conversation with {other} (compare it with theirs, in person or on a call):",
        "  " + " ".join(groups[:6]),
        "  " + " ".join(groups[6:]),
        state,
    ]


class KeyCommands:
    """/safety, /verify and /accept: the part of `wschat.cliente2ee.E2EEClient` about trust."""

    me: str
    account: str | None
    e2ee_key: Any
    e2ee_pins: Pins
    e2ee_devices: dict[str, tuple[str, list[Device] | None]]
    e2ee_safety: set[str]
    _save_pins: Any
    _flush: Any
    _shown: Any
    _ask_keys: Any

    def _key_command(self, cmd: KeyCommand) -> list[Effect]:
        if not self.account or self.e2ee_key is None:
            return [note("Encryption keys are for accounts (log in with --login or --register).", "error")]
        key = name_key(cmd.name)
        if cmd.action == "accept":
            if not self.e2ee_pins.changed(key):
                return [note(f"Nothing to accept: {cmd.name}'s keys have not changed.", "info")]
            self.e2ee_pins.accept(cmd.name, None, False)
            out: list[Effect] = [
                self._save_pins(),
                note(f"{cmd.name}'s new keys are trusted (not verified).", "ok"),
            ]
            return out + self._flush(key, self._shown(key))
        if cmd.action == "verify":
            known = self.e2ee_devices.get(key)
            if known is None or not known[1]:
                return [note(f"Look at the safety number first: /safety {cmd.name}", "error")]
            self.e2ee_pins.accept(known[0], known[1], True)
            out = [
                self._save_pins(),
                note(f"✔ {known[0]} is verified: their current keys are trusted.", "ok"),
            ]
            return out + self._flush(key, known[0])
        self.e2ee_safety.add(key)
        self.e2ee_devices.pop(key, None)  # the number is of the keys as they are now
        self.e2ee_devices.pop(name_key(self.me), None)
        return self._ask_keys(self.me) + self._ask_keys(cmd.name)

    def _show_safety(self) -> list[Effect]:
        mine = self.e2ee_devices.get(name_key(self.me))
        out: list[Effect] = []
        for key in list(self.e2ee_safety):
            theirs = self.e2ee_devices.get(key)
            if mine is None or theirs is None:
                continue
            self.e2ee_safety.discard(key)
            if not theirs[1] or not mine[1]:
                out.append(note(f"{theirs[0]} has no encryption keys: there is no safety number.", "error"))
                continue
            number = e2ee.safety_number([x.key for x in mine[1]], [x.key for x in theirs[1]])
            lines = safety_lines(self.me, theirs[0], number, self.e2ee_pins.verified(key))
            out += [note(line, "info") for line in lines]
        return out
