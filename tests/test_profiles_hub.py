"""wschat.features.profiles without sockets: presence from all of a user's devices, status
changes pushed to the user's rooms, `profiles` on entering a room, `whois` of an offline account
read from the store, and "last seen" saved when the last device goes."""

from __future__ import annotations

from hubharness import only
from test_accounts_hub import AccountHarness, logged_in_account

from wschat.features.media_rules import MediaInfo, StoredFile
from wschat.features.profile_records import ReadProfile, SaveProfile, StoredProfile
from wschat.hub import Snapshot


def setup() -> AccountHarness:
    h = AccountHarness(Snapshot(accounts=["Alice"]))
    logged_in_account(h, 1, "Alice")
    logged_in_account(h, 2, "Alice")
    h.login(3, "Bob")
    for cid in (1, 2, 3):
        h.take(cid)
    return h


def answer_profile_reads(h: AccountHarness) -> None:
    for token, command in list(h.asked):
        if isinstance(command, ReadProfile):
            h.asked.remove((token, command))
            h.answer(token, StoredProfile())


def test_presence_is_the_devices_together_and_reaches_the_room() -> None:
    h = setup()
    answer_profile_reads(h)
    h.send(1, {"type": "set_profile", "presence": "away"})
    assert [f["presence"] for f in only(h.take(3), "profile")] == ["online"]  # device 2 is online
    h.send(2, {"type": "set_profile", "presence": "away"})
    told = only(h.take(3), "profile")
    assert [(f["username"], f["presence"]) for f in told] == [("Alice", "away")]
    assert told[0]["avatar"] == {"initials": "A", "colour": told[0]["avatar"]["colour"]}
    h.send(1, {"type": "set_profile", "presence": "busy"})
    assert only(h.take(2), "profile")[-1]["presence"] == "busy"  # the other device hears it too
    cards = only(h.login(4, "Carol"), "profiles")
    assert [(f["room"], list(f["profiles"])) for f in cards] == [("general", ["Alice"])]  # Bob is plain
    assert cards[0]["profiles"]["Alice"]["presence"] == "busy"


def test_an_accounts_status_is_stored_and_last_seen_saved_when_the_last_device_goes() -> None:
    h = setup()
    answer_profile_reads(h)
    h.send(2, {"type": "set_profile", "status": "on a train"})
    assert only(h.take(3), "profile")[0]["status"] == "on a train"
    saved = [c for _, c in h.asked if isinstance(c, SaveProfile)]
    assert saved == [SaveProfile("alice", status="on a train")]
    h.leave(1)
    h.leave(2)
    last = [c for _, c in h.asked if isinstance(c, SaveProfile)][-1]
    assert last.key == "alice" and last.last_seen == h.now and last.status is None


def test_whois_answers_online_from_memory_and_offline_from_the_store() -> None:
    h = setup()
    answer_profile_reads(h)
    h.send(1, {"type": "whois", "username": "bob"})
    bob = only(h.take(1), "profile")[0]
    assert bob["online"] is True and bob["account"] is False and bob["last_seen"] is None
    h.leave(1)
    h.leave(2)
    h.send(3, {"type": "whois", "username": "ALICE"})
    token, command = h.asked[-1]
    assert command == ReadProfile("alice")
    h.answer(token, StoredProfile("gone fishing", 1_000_000.0))
    alice = only(h.take(3), "profile")[0]
    assert alice["presence"] == "offline" and alice["status"] == "gone fishing"
    assert alice["last_seen"].startswith("1970-01-12")
    h.send(3, {"type": "whois", "username": "nobody"})
    assert only(h.take(3), "error")[0]["code"] == "no_such_user"


def _asked(h: AccountHarness, kind: type) -> list[tuple[int, object]]:
    return [(token, c) for token, c in h.asked if isinstance(c, kind)]


def test_an_uploaded_image_becomes_the_avatar_in_profile_and_cards_and_is_stored() -> None:
    h = setup()
    answer_profile_reads(h)
    h.send(1, {"type": "set_profile", "avatar": "Med1a-id_9"})
    token, command = _asked(h, MediaInfo)[-1]
    assert command == MediaInfo("Med1a-id_9")
    assert only(h.take(3), "profile") == []  # nothing told before the store said it is an image
    h.answer(token, StoredFile("image/png", 10, 10, thumb=True))
    told = only(h.take(3), "profile")[0]["avatar"]
    assert told["url"] == "/media/Med1a-id_9/thumb" and told["id"] == "Med1a-id_9" and told["initials"] == "A"
    assert [c for _, c in _asked(h, SaveProfile)][-1] == SaveProfile("alice", avatar="Med1a-id_9")
    cards = only(h.login(4, "Carol"), "profiles")[0]["profiles"]
    assert cards["Alice"]["avatar"]["url"] == "/media/Med1a-id_9/thumb"  # a user list shows it
    h.send(2, {"type": "set_profile", "avatar": ""})
    assert "url" not in only(h.take(3), "profile")[0]["avatar"]  # back to the initials
    assert [c for _, c in _asked(h, SaveProfile)][-1] == SaveProfile("alice", avatar="")


def test_an_avatar_that_is_unknown_not_an_image_or_a_guests_is_refused_clearly() -> None:
    h = setup()
    answer_profile_reads(h)
    h.send(1, {"type": "set_profile", "avatar": "nope"})
    h.answer(_asked(h, MediaInfo)[-1][0], None)
    assert only(h.take(1), "error")[0]["code"] == "no_such_file"
    h.send(1, {"type": "set_profile", "avatar": "doc"})
    h.answer(_asked(h, MediaInfo)[-1][0], StoredFile("application/pdf"))
    assert only(h.take(1), "error")[0]["code"] == "not_an_image"
    h.send(3, {"type": "set_profile", "avatar": "x"})  # Bob is a guest
    assert only(h.take(3), "error")[0]["code"] == "not_an_account"
    h.send(3, {"type": "set_profile", "avatar": "../etc/passwd"})
    assert only(h.take(3), "error")[0]["code"] == "bad_field"
    assert not _asked(h, SaveProfile) and only(h.take(3), "profile") == []


def test_a_stored_avatar_comes_back_at_log_in_and_in_an_offline_whois() -> None:
    h = AccountHarness(Snapshot(accounts=["Alice"]))
    h.login(3, "Bob")
    logged_in_account(h, 1, "Alice")
    token = _asked(h, ReadProfile)[-1][0]
    h.answer(token, StoredProfile("", None, "pic"))
    assert only(h.take(3), "profile")[-1]["avatar"]["url"] == "/media/pic/thumb"
    h.leave(1)
    h.send(3, {"type": "whois", "username": "alice"})
    h.answer(_asked(h, ReadProfile)[-1][0], StoredProfile("", 5.0, "pic"))
    assert only(h.take(3), "profile")[-1]["avatar"]["id"] == "pic"
