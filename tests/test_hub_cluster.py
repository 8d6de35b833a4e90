"""wschat.hub.cluster without sockets: messages from any process, delivered in seq order, once."""

from __future__ import annotations

import itertools
from typing import Any

from hubharness import Harness, only

from wschat.broker import LocalBroker
from wschat.hub import Config, Hub, Message
from wschat.records import ReadRange


class StoredSeqs(LocalBroker):
    """What the Redis broker tells the hub: the store assigns seqs."""

    stored_seqs = True

    def next_seq(self, room: str) -> int:
        return 0


class ClusterHarness(Harness):
    def __init__(self) -> None:
        super().__init__()
        counter = itertools.count(1)
        self.hub = Hub(
            Config(), None, broker=StoredSeqs(), new_token=lambda: f"t{next(counter):06d}xxxxxxxxxxx"
        )
        self.ranges: list[tuple[int, ReadRange]] = []

    def execute(self, token: int, command: Any) -> None:
        if isinstance(command, ReadRange):
            self.ranges.append((token, command))
        else:
            super().execute(token, command)


def remote(seq: int, epoch: str, text: str = "") -> Message:
    return Message(100 + seq, "general", seq, "bob", "bob", "cb", text or f"m{seq}", 1.0, None, epoch)


def test_messages_arriving_out_of_order_wait_for_the_gap_to_be_read_from_the_store() -> None:
    h = ClusterHarness()
    h.login(1, "alice")
    epoch = h.hub.rooms["general"].epoch
    h.run(h.hub.arrived(remote(1, epoch), h.now))
    h.run(h.hub.arrived(remote(3, epoch), h.now))  # 2 was lost by pub/sub
    assert [f["seq"] for f in only(h.take(1), "chat")] == [1]
    [(token, asked)] = h.ranges
    assert (asked.room, asked.after_seq) == ("general", 1)
    h.run(h.hub.arrived(remote(4, epoch), h.now))
    assert h.take(1) == [] and len(h.ranges) == 1  # one catch-up at a time
    h.answer(token, [remote(2, epoch), remote(3, epoch)])
    assert [f["seq"] for f in only(h.take(1), "chat")] == [2, 3, 4]
    h.run(h.hub.arrived(remote(3, epoch), h.now))  # a late copy
    assert h.take(1) == []


def test_a_resync_delivers_what_the_stream_holds_after_the_last_delivered_seq() -> None:
    h = ClusterHarness()
    h.login(1, "alice")
    epoch = h.hub.rooms["general"].epoch
    h.run(h.hub.arrived(remote(1, epoch), h.now))
    h.take(1)
    h.run(h.hub.resync("general", h.now))
    [(token, asked)] = h.ranges
    assert asked.after_seq == 1
    h.answer(token, [remote(2, epoch)])
    assert [f["seq"] for f in only(h.take(1), "chat")] == [2]


def test_own_message_acknowledged_once_and_delivered_once_whichever_copy_comes_first() -> None:
    h = ClusterHarness()
    h.login(1, "alice")
    h.auto_commit = False
    h.chat(1, "hi", client_msg_id="c1")
    [m] = h.held
    m.id, m.seq = 7, 1  # what the store's script assigned
    echo = Message(7, "general", 1, "alice", "alice", m.client_id, "hi", m.ts, "c1", m.epoch)
    h.run(h.hub.arrived(echo, h.now))  # the pub/sub copy came first
    h.commit_held()
    frames = h.take(1)
    assert [f["seq"] for f in only(frames, "chat")] == [1]
    [ack] = only(frames, "ack")
    assert (ack["id"], ack["seq"], ack.get("duplicate")) == ("7", 1, None)


def test_a_message_the_store_found_stored_before_is_acknowledged_as_duplicate_and_not_delivered() -> None:
    h = ClusterHarness()
    h.login(1, "alice")
    h.auto_commit = False
    h.chat(1, "hi", client_msg_id="c1")
    [m] = h.held
    m.id, m.seq, m.duplicate = 3, 2, True
    h.commit_held()
    frames = h.take(1)
    assert only(frames, "chat") == []
    [ack] = only(frames, "ack")
    assert (ack["id"], ack["seq"], ack["duplicate"]) == ("3", 2, True)
