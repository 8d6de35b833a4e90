"""The file-sharing handlers without sockets: checks before any byte, pieces in order, the post."""

from __future__ import annotations

import hashlib
from typing import Any

from hubharness import Harness, only

from wschat.features.media_rules import (
    MediaBegin,
    MediaCancel,
    MediaFinish,
    MediaRefused,
    MediaWrite,
    StoredFile,
)

DATA = bytes(range(256)) * 40  # 10,240 bytes
SHA = hashlib.sha256(DATA).hexdigest()


class FileHarness(Harness):
    """A Harness whose media store keeps partial files in a dict and answers at once."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.partials: dict[str, bytearray] = {}
        self.media: list[Any] = []
        self.stored_as = StoredFile("application/octet-stream")

    def execute(self, token: int, command: Any) -> None:
        if isinstance(command, (MediaBegin, MediaWrite, MediaFinish, MediaCancel)):
            self.media.append(command)
            self.answer(token, self.media_answer(command))
        else:
            super().execute(token, command)

    def media_answer(self, c: Any) -> Any:
        if isinstance(c, MediaBegin):
            return len(self.partials.setdefault(c.partial, bytearray()))
        if isinstance(c, MediaWrite):
            part = self.partials[c.partial]
            assert c.offset == len(part), "pieces are written in order"
            part += c.data
            return None
        if isinstance(c, MediaFinish):
            if hashlib.sha256(self.partials.pop(c.partial)).hexdigest() != c.sha256:
                return MediaRefused("hash_mismatch", "wrong hash")
            return self.stored_as
        self.partials.pop(c.partial, None)
        return None

    def begin(self, cid: int, size: int = len(DATA), sha: str = SHA, **target: Any) -> dict:
        if "to" not in target and "room" not in target:
            target["room"] = "general"
        frame = {"type": "upload_begin", "name": "a.bin", "size": size, "sha256": sha, **target}
        self.send(cid, frame)
        return self.take(cid)[-1]

    def piece(self, cid: int, upload_id: str, data: bytes) -> None:
        self.run(self.hub.binary(cid, bytes([len(upload_id)]) + upload_id.encode() + data, self.now))


def test_limits_are_checked_before_any_byte_and_ask_nothing_of_the_store() -> None:
    h = FileHarness(max_file_bytes=1000, daily_upload_bytes=5000)
    h.login(1, "Alice")
    assert h.begin(1, size=1001)["code"] == "file_too_large"
    assert h.begin(1, size=10, room="elsewhere")["code"] == "not_in_room"
    assert h.begin(1, size=10, to="Nobody")["code"] == "no_such_user"
    assert h.begin(1, size=0)["code"] == "bad_field"
    assert h.media == []


def test_pieces_are_written_in_order_and_the_file_is_posted_with_a_seed_readable_message() -> None:
    h = FileHarness(upload_chunk=4096)
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.take(1)
    ready = h.begin(1, client_msg_id="c1")
    assert ready["type"] == "upload_ready" and ready["offset"] == 0 and ready["chunk_size"] == 4096
    for at in range(0, len(DATA), 4096):
        h.piece(1, ready["upload_id"], DATA[at : at + 4096])
    mine = h.take(1)
    assert [f["type"] for f in mine] == ["upload_done", "chat", "ack"]
    chat = only(h.take(2), "chat")[0]
    assert chat["file"] == mine[0]["file"] and chat["message"] == "📎 a.bin (10.0 KB)"
    assert chat["file"]["url"] == f"/media/{chat['file']['id']}" and SHA not in chat["file"]["url"]


def test_a_piece_too_big_or_past_the_size_cancels_the_upload() -> None:
    h = FileHarness(upload_chunk=4096)
    h.login(1, "Alice")
    ready = h.begin(1)
    h.piece(1, ready["upload_id"], b"x" * 4097)
    err = h.take(1)[-1]
    assert err["code"] == "bad_upload" and err["upload_id"] == ready["upload_id"]
    h.piece(1, ready["upload_id"], b"x")  # the upload is gone: a stray binary frame now
    assert h.take(1)[-1]["code"] == "binary_unsupported"


def test_another_connections_upload_id_is_not_accepted() -> None:
    h = FileHarness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    ready = h.begin(1)
    h.piece(2, ready["upload_id"], b"x")
    assert h.take(2)[-1]["code"] == "binary_unsupported"


def test_a_dropped_connection_resumes_at_the_offset_the_store_has() -> None:
    h = FileHarness(upload_chunk=4096)
    h.login(1, "Alice")
    ready = h.begin(1)
    h.piece(1, ready["upload_id"], DATA[:4096])
    h.leave(1)
    h.login(1, "Alice")
    again = h.begin(1)
    assert again["offset"] == 4096 and again["upload_id"] != ready["upload_id"]


def test_a_wrong_hash_is_refused_and_does_not_count_against_the_quota() -> None:
    h = FileHarness(daily_upload_bytes=len(DATA) + 10)
    h.login(1, "Alice")
    ready = h.begin(1, sha="0" * 64)
    h.piece(1, ready["upload_id"], DATA)
    assert h.take(1)[-1]["code"] == "hash_mismatch"
    ready = h.begin(1)  # the quota is untouched
    assert ready["type"] == "upload_ready"
    h.piece(1, ready["upload_id"], DATA)
    h.take(1)
    assert h.begin(1)["code"] == "upload_quota"  # now it is used


def test_a_private_file_goes_to_both_ends() -> None:
    h = FileHarness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.login(3, "Carol")
    for c in (1, 2, 3):
        h.take(c)
    ready = h.begin(1, to="Bob")
    h.piece(1, ready["upload_id"], DATA)
    assert only(h.take(2), "private")[0]["file"]["name"] == "a.bin"
    assert only(h.take(1), "private")
    assert not h.take(3)


def test_a_failed_write_says_store_failed_and_forgets_the_partial_file() -> None:
    h = FileHarness(upload_chunk=4096)
    h.login(1, "Alice")
    ready = h.begin(1)
    h.media_answer = lambda c: OSError("disk full") if isinstance(c, MediaWrite) else None  # type: ignore[method-assign]
    h.piece(1, ready["upload_id"], DATA[:4096])
    err = h.take(1)[-1]
    assert err["code"] == "store_failed" and err["upload_id"] == ready["upload_id"]
    assert isinstance(h.media[-1], MediaCancel)


def test_at_most_a_few_pieces_of_a_connection_are_written_at_once() -> None:
    h = FileHarness(upload_chunk=1024)
    h.login(1, "Alice")
    ready = h.begin(1)
    asked: list[Any] = []
    h.execute = lambda token, command: asked.append(command)  # type: ignore[method-assign]
    holds = []
    for at in range(0, 8 * 1024, 1024):
        effects = h.hub.binary(
            1, bytes([len(ready["upload_id"])]) + ready["upload_id"].encode() + DATA[at : at + 1024], h.now
        )
        holds += [e.holds for e in effects]
    assert holds[:3] == [0, 0, 0] and holds[3] == 1  # the fourth piece holds the connection's input


def test_a_file_message_keeps_its_file_through_reactions_and_edits_and_loses_it_when_deleted() -> None:
    h = FileHarness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    ready = h.begin(1)
    h.piece(1, ready["upload_id"], DATA)
    (posted,) = only(h.take(1), "chat")
    h.send(2, {"type": "react", "room": "general", "target": posted["seq"], "key": "👍"})
    h.send(1, {"type": "edit", "room": "general", "target": posted["seq"], "message": "the slides"})
    h.send(2, {"type": "chat", "room": "general", "message": "thanks", "reply_to": posted["seq"]})
    (reply,) = only(h.take(2), "chat")[-1:]
    assert reply["reply_preview"]["username"] == "Alice"
    (hist,) = only(h.login(3, "Carol"), "history")
    shared = hist["messages"][0]
    assert shared["file"] == posted["file"] and shared["message"] == "the slides"
    assert shared["reactions"] == {"👍": ["Bob"]} and shared["edited_at"]
    h.send(1, {"type": "delete", "room": "general", "target": posted["seq"]})
    assert only(h.take(2), "delete")
    (hist,) = only(h.login(4, "Dan"), "history")
    assert all(m.get("file") is None for m in hist["messages"])
    assert posted["file"]["id"] not in str(hist)
