"""wschat.hub.cluster without sockets: messages from any process, delivered in seq order, once."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from hubharness import Harness, only

from wschat.broker import LocalBroker
from wschat.features import mod_cluster, offline, profile_cluster
from wschat.features.mod_records import RemoteKick, Restriction
from wschat.features.private_records import DeliverStored, MarkDelivered
from wschat.features.profile_records import ShareProfile
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


def test_a_repeat_this_process_never_delivered_the_first_copy_of_is_read_from_the_store() -> None:
    """Its first call's answer was lost, and the broker skips this process's own published copies."""
    h = ClusterHarness()
    h.login(1, "alice")
    h.auto_commit = False
    h.chat(1, "hi", client_msg_id="c1")
    [m] = h.held
    m.id, m.seq, m.duplicate = 3, 1, True
    h.commit_held()
    assert only(h.take(1), "chat") == []
    [(token, asked)] = h.ranges
    assert (asked.room, asked.after_seq) == ("general", 0)
    stored = Message(3, "general", 1, "alice", "alice", m.client_id, "hi", m.ts, "c1", m.epoch)
    h.answer(token, [stored])
    assert [(f["seq"], f["message"]) for f in only(h.take(1), "chat")] == [(1, "hi")]


def test_people_on_other_processes_count_in_lists_and_leave_when_their_process_dies() -> None:
    h = ClusterHarness()
    h.login(1, "alice")
    h.run(h.hub.remote_presence("general", "bob", "procB", "join", h.now))
    [join] = only(h.take(1), "user_join")
    assert (join["username"], join["online_users"], sorted(join["users_list"])) == (
        "bob",
        2,
        ["alice", "bob"],
    )
    h.run(h.hub.remote_presence("general", "bob", "procB", "join", h.now))  # heard twice: once
    assert h.take(1) == []
    h.run(h.hub.remote_presence("general", "bob", "procC", "resume", h.now))  # bob moved to C
    h.run(h.hub.remote_presence("general", "bob", "procB", "disconnect", h.now))  # B's late leave
    assert only(h.take(1), "user_leave") == []
    h.run(h.hub.process_gone("procC", h.now))
    [leave] = only(h.take(1), "user_leave")
    assert (leave["username"], leave["online_users"], leave["reason"]) == ("bob", 1, "disconnect")


def test_the_members_redis_lists_replace_what_the_process_believed() -> None:
    h = ClusterHarness()
    h.login(1, "alice")
    h.run(h.hub.remote_members("general", {"bob": "B", "carol": "C"}, h.now))
    h.take(1)
    h.run(h.hub.remote_members("general", {"carol": "C"}, h.now))  # bob left while unsubscribed
    [leave] = only(h.take(1), "user_leave")
    assert leave["username"] == "bob" and sorted(h.hub.rooms["general"].remote) == ["carol"]


def test_a_room_redis_lost_starts_a_new_epoch_and_its_members_are_told() -> None:
    h = ClusterHarness()
    h.login(1, "alice")
    old = h.hub.rooms["general"].epoch
    for seq in (1, 2):
        h.run(h.hub.arrived(remote(seq, old), h.now))
    h.take(1)
    h.run(h.hub.arrived(remote(1, "new-epoch"), h.now))
    hist, chat = h.take(1)
    assert (hist["type"], hist["epoch"], hist["epoch_changed"], hist["messages"]) == (
        "history",
        "new-epoch",
        True,
        [],
    )
    assert (chat["type"], chat["seq"]) == ("chat", 1)


def test_a_user_here_and_on_another_process_is_listed_once_and_leaves_with_its_last_process() -> None:
    h = ClusterHarness()
    h.login(1, "alice")
    h.login(2, "carol")
    h.take(2)
    h.run(h.hub.remote_presence("general", "alice", "procB", "join", h.now))  # another device of hers
    assert only(h.take(2), "user_join") == []
    h.send(2, {"type": "get_users", "room": "general"})
    [listed] = only(h.take(2), "online_users")
    assert (sorted(listed["users"]), listed["count"]) == (["alice", "carol"], 2)
    h.run(h.hub.disconnect(1, h.now))  # her device here goes; the one on procB stays
    assert only(h.take(2), "user_leave") == []
    h.send(2, {"type": "get_users", "room": "general"})
    assert only(h.take(2), "online_users")[0]["users"] == ["carol", "alice"]
    h.run(h.hub.remote_presence("general", "alice", "procB", "disconnect", h.now))  # her last
    [leave] = only(h.take(2), "user_leave")
    assert (leave["username"], leave["online_users"], leave["reason"]) == ("alice", 1, "disconnect")


def test_a_room_left_on_another_process_is_left_by_the_users_connections_here() -> None:
    h = ClusterHarness()
    h.login(1, "alice")
    h.login(2, "carol")
    h.take(1)
    h.take(2)
    h.run(h.hub.remote_presence("general", "alice", "procB", "join", h.now))
    h.run(h.hub.remote_presence("general", "alice", "procB", "leave", h.now))  # she asked to leave
    assert only(h.take(1), "left") == [{"type": "left", "room": "general"}]
    [leave] = only(h.take(2), "user_leave")
    assert (leave["username"], leave["reason"]) == ("alice", "leave")
    assert "alice" not in h.hub.rooms["general"].remote and 1 not in h.hub.rooms["general"].members


def test_a_mute_or_a_server_ban_from_another_process_applies_here_at_once() -> None:
    h = ClusterHarness()
    h.login(1, "gus")
    h.take(1)
    subject = f"address:{h.hub.sessions[1].address}"
    mute = RemoteKick("", 1, "", "Op", "calm", "mute", subject, "gus", h.now + 60)
    h.run(mod_cluster.arrived(h.hub, mute.payload(), h.now))
    [told] = only(h.take(1), "moderation")
    assert (told["action"], told["by"], told["reason"]) == ("mute", "Op", "calm")
    h.send(1, {"type": "private", "to": "nobody", "message": "hi"})
    assert only(h.take(1), "error")[0]["code"] == "muted"
    h.run(mod_cluster.arrived(h.hub, b"not json at all", h.now))  # nothing but what we wrote
    assert h.take(1) == [] and 1 not in h.closed
    ban = RemoteKick("", 1, "", "Op", "spam", "ban", subject, "gus")
    h.run(mod_cluster.arrived(h.hub, ban.payload(), h.now))
    assert only(h.take(1), "moderation")[0]["action"] == "ban" and h.closed[1][0] == 4003


class Recording(ClusterHarness):
    """Keeps every store command the hub asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[Any] = []

    def execute(self, token: int, command: Any) -> None:
        self.asked.append(command)
        super().execute(token, command)


def test_an_unban_from_another_process_lifts_the_ban_here_at_once() -> None:
    h = ClusterHarness()
    h.login(1, "gus")
    h.take(1)
    subject = f"address:{h.hub.sessions[1].address}"
    h.hub.moderation.add(Restriction("ban", "yard", subject, "gus", 0.0, "spam", "Op"))
    h.send(1, {"type": "join", "room": "yard"})
    assert only(h.take(1), "error")[0]["code"] == "banned"
    lift = RemoteKick("", 0, "yard", "Op", "", "unban", subject, "gus")  # for every process
    h.run(mod_cluster.arrived(h.hub, lift.payload(), h.now))
    h.send(1, {"type": "join", "room": "yard"})
    assert "joined" in h.types(1)


def test_a_stored_private_message_from_another_process_moves_the_cursor_of_a_device_still_here() -> None:
    h = Recording()
    h.login(1, "quin")
    h.take(1)
    h.hub.sessions[1].session_id = "d1"
    frame = b'{"type": "private", "id": "pm7", "seq": 3, "from": "pia", "to": "quin", "message": "hi"}'
    h.run(offline.delivered_here(h.hub, DeliverStored("", 1, "d1", 7, frame).payload(), h.now))
    assert [f["message"] for f in only(h.take(1), "private")] == ["hi"]
    [mark] = [c for c in h.asked if isinstance(c, MarkDelivered)]
    assert (mark.ids, mark.cursors) == ([], {"d1": 7})
    h.asked.clear()
    # A connection gone meanwhile, another device's connection, or not ours: nothing given, and
    # no cursor moved (the device gets it at its next log-in).
    for stale in (DeliverStored("", 2, "d1", 8, frame), DeliverStored("", 1, "d0", 8, frame)):
        h.run(offline.delivered_here(h.hub, stale.payload(), h.now))
    h.run(offline.delivered_here(h.hub, b"not ours", h.now))
    assert h.take(1) == [] and h.asked == []


def test_a_profile_from_another_process_reaches_the_members_of_the_users_rooms_here() -> None:
    h = ClusterHarness()
    h.login(1, "near")
    h.take(1)
    h.hub.rooms["general"].remote["Rita"] = {"p2": None}  # listed here from another process
    share = ShareProfile("rita", "Rita", True, "busy", "in a meeting", "")
    h.run(profile_cluster.arrived(h.hub, share.payload(), h.now))
    [got] = only(h.take(1), "profile")
    assert (got["username"], got["presence"], got["status"]) == ("Rita", "busy", "in a meeting")
    h.run(profile_cluster.arrived(h.hub, b"not json", h.now))
    assert h.take(1) == []


def test_a_profile_shared_for_one_room_reaches_its_members_here_and_nothing_in_a_large_room() -> None:
    h = ClusterHarness()
    h.login(1, "near")
    h.login(2, "also")
    for cid in (1, 2):
        h.take(cid)
    joined = ShareProfile("rita", "Rita", True, "away", "out", "", room="general")  # she joined it
    h.run(profile_cluster.arrived(h.hub, joined.payload(), h.now))
    for cid in (1, 2):
        [got] = only(h.take(cid), "profile")
        assert (got["username"], got["presence"], got["status"]) == ("Rita", "away", "out")
    assert ShareProfile.parse(joined.payload()) == joined
    h.hub.config = dataclasses.replace(h.hub.config, large_room=1)  # general is large now
    for room in ("nook", "general"):  # a room nobody here is in; one above --large-room
        h.run(profile_cluster.arrived(h.hub, dataclasses.replace(joined, room=room).payload(), h.now))
        assert h.take(1) == [] and h.take(2) == []


def test_a_device_still_given_what_it_missed_keeps_its_cursor_when_one_comes_from_another_process() -> None:
    h = Recording()
    h.login(1, "quin")
    h.take(1)
    s = h.hub.sessions[1]
    s.session_id = "d1"
    h.hub.broker.names_by_store = True  # cluster mode from here on (its name is held)
    h.run([offline.after_login(h.hub, s)])  # what it missed is being read (not answered yet)
    h.asked.clear()
    frame = b'{"type": "private", "id": "pm9", "seq": 4, "from": "pia", "to": "quin", "message": "new"}'
    h.run(offline.delivered_here(h.hub, DeliverStored("", 1, "d1", 9, frame).payload(), h.now))
    # given, but its cursor stays, so the read of what it missed cannot start past those
    assert [f["message"] for f in only(h.take(1), "private")] == ["new"]
    assert not [c for c in h.asked if isinstance(c, MarkDelivered)]


def test_a_message_that_arrives_during_a_catch_up_read_is_not_taken_for_the_end_of_a_trimmed_gap() -> None:
    """4 and 5 are stored after the catch-up read ran and are still on their way on pub/sub
    when 6 arrives (this process's own, from the store's answer): the read's answer must not
    skip them as trimmed, or their copies are dropped as already delivered."""
    h = ClusterHarness()
    h.login(1, "alice")
    epoch = h.hub.rooms["general"].epoch
    h.run(h.hub.arrived(remote(1, epoch), h.now))
    h.run(h.hub.arrived(remote(3, epoch), h.now))  # a gap: the read covers up to 3
    h.run(h.hub.arrived(remote(6, epoch), h.now))  # while the read runs
    [(token, asked)] = h.ranges
    h.answer(token, [remote(2, epoch), remote(3, epoch)])  # what the stream held when it ran
    assert [f["seq"] for f in only(h.take(1), "chat")] == [1, 2, 3]
    [(again, asked)] = h.ranges[1:]  # read again, not skipped
    assert asked.after_seq == 3
    h.run(h.hub.arrived(remote(4, epoch), h.now))
    h.run(h.hub.arrived(remote(5, epoch), h.now))
    assert [f["seq"] for f in only(h.take(1), "chat")] == [4, 5, 6]
    h.answer(again, [remote(4, epoch), remote(5, epoch), remote(6, epoch)])
    assert h.take(1) == []  # each once


def test_a_gap_the_store_no_longer_holds_is_skipped_once_the_read_covered_it() -> None:
    h = ClusterHarness()
    h.login(1, "alice")
    epoch = h.hub.rooms["general"].epoch
    h.run(h.hub.arrived(remote(1, epoch), h.now))
    h.run(h.hub.arrived(remote(5, epoch), h.now))  # 2-4 were trimmed by the retention meanwhile
    [(token, _)] = h.ranges
    h.answer(token, [])  # the read, issued after 5 was stored, found nothing before it
    assert [f["seq"] for f in only(h.take(1), "chat")] == [1, 5]
    assert len(h.ranges) == 1
