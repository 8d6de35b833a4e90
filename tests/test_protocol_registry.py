"""protocol's registry of frame types and codes agrees with PROTOCOL.md, both ways."""

from __future__ import annotations

import re
from pathlib import Path

from wschat import protocol as p
from wschat.hub.handlers import HANDLERS

DOC = (Path(__file__).resolve().parent.parent / "PROTOCOL.md").read_text()


def section(title: str) -> str:
    """The text under a heading, up to the next heading."""
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#|\Z)", DOC, re.M | re.S)
    assert match, title
    return match.group(1)


def first_column(text: str) -> set[str]:
    """The backquoted names in the first column of the markdown tables in `text`."""
    return set(re.findall(r"^\| `([a-z_]+)` \|", text, re.M))


def test_every_client_frame_type_is_documented_and_decoded() -> None:
    documented = first_column(section("Client → server"))
    decoded = {name for name, t in p.FRAME_TYPES.items() if t.decode is not None}
    assert documented == decoded


def test_every_server_frame_type_is_documented_and_built() -> None:
    documented = first_column(section("Server → client"))
    built = {name for name, t in p.FRAME_TYPES.items() if t.build is not None}
    assert documented == built


def test_every_error_code_is_documented_and_named() -> None:
    assert first_column(section("Errors")) == set(p.ERROR_CODES)


def test_every_username_error_code_is_documented_and_named() -> None:
    line = re.search(r"`username_error` codes: (.*?)\.\n", DOC, re.S)
    assert line
    assert set(re.findall(r"`([a-z_]+)`", line.group(1))) == set(p.NAME_ERROR_CODES)


def test_every_close_code_is_documented_and_named() -> None:
    documented = {int(code) for code in re.findall(r"^\| (\d{4}) \|", section("Close codes"), re.M)}
    assert documented == set(p.CLOSE_CODES)
    assert p.CLOSE_TAKEOVER == 4000


def test_every_request_kind_has_exactly_one_handler() -> None:
    sample = {"username": "a", "message": "m", "to": "b", "room": "r", "before_seq": 1,
              "target": 1, "key": "+1", "seq": 1, "epoch": "e", "query": "q",
              "password": "pw", "id": "i", "old": "o", "new": "n", "with": "w",
              "topic": "t", "invite_only": True, "status": "s"}  # fmt: skip
    samples = {  # frames whose fields exclude one another
        "upload_begin": {"name": "f.txt", "size": 1, "sha256": "0" * 64, "room": "r"},
        "upload_cancel": {"upload_id": "u"},
        "call": {"call_id": "call-0001", "to": "b", "action": "hangup"},
    }
    decoders = [(t.name, t.decode) for t in p.FRAME_TYPES.values() if t.decode is not None]
    request_classes = {type(decode(samples.get(name, sample), p.Limits())) for name, decode in decoders}
    assert request_classes == set(HANDLERS)
