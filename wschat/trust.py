"""Trusting a server's TLS certificate on first use (TOFU), as ssh trusts host keys. NO I/O.

This module imports neither asyncio nor websockets nor ssl and touches no file or socket. It owns:

- `fingerprint()`: a certificate's SHA-256 fingerprint in the form the server's banner prints
  (colon-separated upper-case hex), so people can compare the two by eye;
- the known-servers list: `parse_known()` / `render_known()` turn the file's text into a
  `{"host:port": fingerprint}` mapping and back; `default_known_path()` says where it lives;
- `decide()`: a presented fingerprint against the list: TRUSTED, UNKNOWN or CHANGED;
- the sentences the terminal client shows for each case.

The terminal client (wschat.client) fetches certificates, asks the question and reads and writes
the file; what it does with the answers is decided here.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

KNOWN_ENV = "WSCHAT_KNOWN_SERVERS"  # overrides where the known-servers file is
KNOWN_FILE = "known_servers.json"

_FINGERPRINT_RE = re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){31}")


class Verdict(enum.Enum):
    TRUSTED = "trusted"  # the fingerprint remembered for this server
    UNKNOWN = "unknown"  # nothing remembered for this server: ask
    CHANGED = "changed"  # something else remembered: refuse, loudly


class KnownServersError(ValueError):
    """The known-servers file cannot be used; str(self) says which file and what to do."""


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as `AB:CD:...` (95 characters), like the server's banner."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def normalise_fingerprint(text: str) -> str | None:
    """A fingerprint typed or stored in any common spelling (case, colons, spaces), or None."""
    bare = re.sub(r"[\s:]", "", text).upper()
    if not re.fullmatch(r"[0-9A-F]{64}", bare):
        return None
    return ":".join(bare[i : i + 2] for i in range(0, 64, 2))


def server_key(display: str) -> str:
    """The known-servers key of an address shown as `host:port` (`[v6]:port`): host names ignore case."""
    return display.lower()


def decide(known: Mapping[str, str], key: str, presented: str) -> Verdict:
    """What to do with the certificate `key` presents, given the fingerprints trusted so far."""
    trusted = known.get(key)
    if trusted is None:
        return Verdict.UNKNOWN
    return Verdict.TRUSTED if trusted == presented else Verdict.CHANGED


def is_yes(answer: str) -> bool:
    """The answer to `[y/N]`: only an explicit yes trusts; Enter alone means no."""
    return answer.strip().lower() in ("y", "yes")


# ---------------------------------------------------------------- the file


def default_known_path(env: Mapping[str, str], home: str, windows: bool = False) -> str:
    """`$WSCHAT_KNOWN_SERVERS`, else the user's config folder: `~/.config/wschat/known_servers.json`
    (`$XDG_CONFIG_HOME` if set; `%APPDATA%\\wschat` on Windows)."""
    if env.get(KNOWN_ENV):
        return env[KNOWN_ENV]
    if windows and env.get("APPDATA"):
        return env["APPDATA"] + "\\wschat\\" + KNOWN_FILE
    config = env.get("XDG_CONFIG_HOME") or home.rstrip("/") + "/.config"
    return f"{config}/wschat/{KNOWN_FILE}"


def parse_known(text: str, path: str) -> dict[str, str]:
    """The file's text -> {"host:port": fingerprint}. An empty file is an empty list.

    Raises KnownServersError rather than guessing: a file that cannot be read must not make
    the client forget, and so silently re-ask about, a server whose certificate changed.
    """
    if not text.strip():
        return {}
    fix = "fix it or delete it (the servers in it will be asked about again)"
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise KnownServersError(f"The known servers file {path} is not valid JSON ({exc}); {fix}.") from None
    servers = data.get("servers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise KnownServersError(f'The known servers file {path} has no "servers" object; {fix}.')
    known: dict[str, str] = {}
    for key, entry in servers.items():
        fp = entry.get("sha256") if isinstance(entry, dict) else None
        fp = normalise_fingerprint(fp) if isinstance(fp, str) else None
        if fp is None:
            raise KnownServersError(
                f'The entry "{key}" in the known servers file {path} has no valid "sha256" '
                f"fingerprint; {fix}."
            )
        known[server_key(key)] = fp
    return known


def render_known(text: str, key: str, fp: str, when: str) -> str:
    """The file's text with `key` trusting `fp` (since `when`, ISO 8601), other entries kept as they were."""
    data: Any = json.loads(text) if text.strip() else {}
    if not isinstance(data, dict) or not isinstance(data.get("servers"), dict):
        data = {}
    servers = data.setdefault("servers", {})
    servers[key] = {"sha256": fp, "trusted_since": when}
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


# ---------------------------------------------------------------- what the client says


def unknown_lines(key: str, fp: str, reason: str) -> list[str]:
    """Shown before asking whether to trust a certificate nobody vouches for."""
    return [
        f"The certificate of {key} is not signed by an authority this computer trusts ({reason}).",
        "Its SHA-256 fingerprint is:",
        f"  {fp}",
        "Compare it with the fingerprint the server printed when it started (ask whoever runs it);",
        "if they differ, someone may be intercepting the connection: answer n.",
    ]


QUESTION = "Trust this certificate? [y/N] "


def trusted_note(key: str, path: str, problem: str | None = None) -> str:
    if problem is not None:
        return (
            f"Trusting the certificate of {key} for this session only: it could not be remembered "
            f"in {path} ({problem.rstrip('.')})."
        )
    return f"Trusting the certificate of {key} from now on (remembered in {path})."


def declined(key: str) -> str:
    return f"Not connecting: you did not trust the certificate of {key}."


def noninteractive_refusal(key: str, fp: str, reason: str) -> str:
    return (
        f"Not connecting: the certificate of {key} is not trusted ({reason}; SHA-256 {fp}) and there is no "
        "terminal to ask whether to trust it; use --cafile with the server's certificate "
        "(cert.pem in its data folder), or connect once interactively and answer y."
    )


def changed_warning(key: str, trusted: str, presented: str, path: str) -> str:
    """Loud on purpose, like ssh's: this is the one case where a machine in the middle shows."""
    bar = "@" * 64
    return "\n".join(
        [
            bar,
            f"WARNING: THE CERTIFICATE OF {key} HAS CHANGED!",
            bar,
            "Someone may be intercepting the connection (a machine in the middle), or the server",
            "was given a new certificate (its data folder was deleted, or it runs elsewhere now).",
            f"Trusted:   {trusted}",
            f"Presented: {presented}",
            "Not connecting. Compare the new fingerprint with the one the server prints when it starts;",
            f'if you expect this change, remove the entry "{key}" from {path} and connect again.',
        ]
    )
