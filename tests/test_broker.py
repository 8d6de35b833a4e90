"""wschat.broker: the local broker, and the hub working through whatever broker it is given."""

from __future__ import annotations

import json
from collections.abc import Mapping

from hubharness import Harness, only

from wschat.broker import LocalBroker
from wschat.effects import Send
from wschat.hub import Config, Hub


def test_publish_reaches_the_members_at_the_moment_of_publishing() -> None:
    broker = LocalBroker()
    members: dict[int, None] = {1: None, 2: None}
    broker.follow("dev", members, last_seq=0)
    members[3] = None  # a live view, not a copy
    assert broker.publish("dev", b"x") == Send((1, 2, 3), b"x")
    del members[1]
    assert broker.publish("dev", b"y").targets == (2, 3)
    broker.unfollow("dev")
    assert broker.publish("dev", b"z").targets == ()


def test_sequence_numbers_go_on_from_what_the_store_had() -> None:
    broker = LocalBroker()
    broker.follow("dev", {}, last_seq=41)
    assert [broker.next_seq("dev") for _ in range(3)] == [42, 43, 44]
    broker.unfollow("dev")
    broker.follow("dev", {}, last_seq=44)  # loaded again from the store
    assert broker.next_seq("dev") == 45


def test_a_name_has_one_owner_until_it_is_released() -> None:
    broker = LocalBroker()
    assert broker.claim("alice", 1) and broker.claim("alice", 1)
    assert not broker.claim("alice", 2)
    broker.release("alice", 2)  # not the owner: nothing happens
    assert not broker.claim("alice", 2)
    broker.release("alice", 1)
    assert broker.claim("alice", 2)


class ClusterBroker(LocalBroker):
    """A broker that says another process holds some names and records what is published."""

    def __init__(self, taken: set[str]) -> None:
        super().__init__()
        self.taken = taken
        self.published: list[tuple[str, str]] = []

    def claim(self, key: str, owner: int) -> bool:
        return key not in self.taken and super().claim(key, owner)

    def publish(self, room: str, data: bytes) -> Send:
        self.published.append((room, json.loads(data)["type"]))
        return super().publish(room, data)

    def follow(self, room: str, members: Mapping[int, None], last_seq: int) -> None:
        super().follow(room, members, last_seq + 100)  # the cluster is further on


def test_the_hub_works_through_the_broker_it_is_given() -> None:
    h = Harness()
    broker = ClusterBroker({"bob"})
    h.hub = Hub(Config(), broker=broker)
    h.login(1, "Alice")
    assert only(h.login(2, "Bob"), "username_error")[0]["code"] == "name_taken"  # held elsewhere
    h.chat(1, "hi")
    (chat,) = only(h.take(1), "chat")
    assert chat["seq"] == 101 and h.hub.rooms["general"].last_seq == 101
    assert broker.published == [("general", "user_join"), ("general", "chat")]
