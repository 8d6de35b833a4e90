"""The hub's rate limits and flood rule, without sockets: legitimate bursts survive, floods are closed."""

from __future__ import annotations

import json

from wschat.hub import Close, Config, Hub, Send

DEFAULTS = Config()


def frames_to(actions: list, cid: int) -> list[dict]:
    return [json.loads(a.data) for a in actions if isinstance(a, Send) and cid in a.targets]


def closes(actions: list) -> list[Close]:
    return [a for a in actions if isinstance(a, Close)]


def logged_in_hub(config: Config = DEFAULTS, now: float = 1000.0) -> Hub:
    hub = Hub(config, new_token=iter(f"tok{i:020d}" for i in range(10**6)).__next__)
    hub.connect(1, now)
    hub.receive(1, json.dumps({"type": "set_username", "username": "Alice"}), now)
    return hub


def chat(i: int) -> str:
    return json.dumps({"type": "chat", "message": f"m{i}", "client_msg_id": f"id{i}"})


def test_outbox_resend_that_overshoots_the_burst_gets_retry_times_and_is_not_disconnected() -> None:
    hub = logged_in_hub()
    now = 2000.0
    out: list = []
    for i in range(40):  # a reconnecting web client flushing a 40-message outbox at once
        out += hub.receive(1, chat(i), now)
    assert not closes(out)
    refused = [f for f in frames_to(out, 1) if f.get("code") == "rate_limited"]
    assert len(refused) == 40 - int(DEFAULTS.chat_burst)
    # every refused message gets its own later slot, so resending each after its retry_after works
    retries = [f["retry_after"] for f in refused]
    assert retries == sorted(retries) and len(set(retries)) == len(retries)
    for f in refused:
        again = hub.receive(1, chat(int(f["client_msg_id"][2:])), now + f["retry_after"])
        assert not closes(again)
        assert not [x for x in frames_to(again, 1) if x.get("code") == "rate_limited"], f


def test_naive_client_resending_its_outbox_after_the_first_retry_is_not_disconnected() -> None:
    # Not the documented way (each refused message has its own retry_after), but a 30-message
    # outbox resent whole after the first retry_after must still drain without a disconnect.
    hub = logged_in_hub()
    now = 2000.0
    pending = list(range(30))
    for _round in range(20):
        out: list = []
        for i in pending:
            out += hub.receive(1, chat(i), now)
        assert not closes(out), f"closed in round {_round}"
        refused = [f for f in frames_to(out, 1) if f.get("code") == "rate_limited"]
        if not refused:
            break
        pending = [int(f["client_msg_id"][2:]) for f in refused]
        now += refused[0]["retry_after"]
    else:
        raise AssertionError("the outbox never drained")


def test_rejoining_five_rooms_and_asking_for_their_users_fits_the_control_burst() -> None:
    hub = Hub(DEFAULTS)
    now = 1000.0
    hub.connect(1, now)
    rooms = ["general", "dev", "random", "music", "games"]
    out = hub.receive(1, json.dumps({"type": "set_username", "username": "Al", "rooms": rooms}), now)
    for room in rooms:
        out += hub.receive(1, json.dumps({"type": "join", "room": room}), now)
        out += hub.receive(1, json.dumps({"type": "get_users", "room": room}), now)
        out += hub.receive(1, json.dumps({"type": "fetch_history", "room": room, "before_seq": 1}), now)
    out += hub.receive(1, json.dumps({"type": "list_rooms"}), now)
    assert not [f for f in frames_to(out, 1) if f.get("code") == "rate_limited"]


def test_a_flooder_is_warned_then_closed_with_1008_after_the_strike_limit() -> None:
    hub = logged_in_hub()
    now = 2000.0
    limited = 0
    for i in range(1000):
        out = hub.receive(1, chat(i), now + i / 1000)
        limited += sum(1 for f in frames_to(out, 1) if f.get("code") == "rate_limited")
        if closes(out):
            (close,) = closes(out)
            assert close.code == 1008
            break
    else:
        raise AssertionError("a flooder was never closed")
    assert limited == DEFAULTS.flood_strikes  # every refusal up to the limit is answered, then the close
    assert i < DEFAULTS.chat_burst + DEFAULTS.flood_strikes + 5


def test_garbage_frames_count_against_the_control_limit_and_end_in_1008() -> None:
    hub = logged_in_hub()
    out: list = []
    for i in range(500):
        out += hub.receive(1, "{not json", 3000.0 + i / 1000)
        if closes(out):
            break
    assert [c.code for c in closes(out)] == [1008]


def test_strikes_are_forgiven_once_the_client_waits_as_told() -> None:
    hub = logged_in_hub()
    now = 2000.0
    for _episode in range(10):  # each episode: overshoot by 30, then wait until every slot has passed
        out: list = []
        for i in range(int(DEFAULTS.chat_burst) + 30):
            out += hub.receive(1, chat(i), now)
        assert not closes(out)
        last = max(f["retry_after"] for f in frames_to(out, 1) if f.get("code") == "rate_limited")
        now += last + DEFAULTS.chat_burst / DEFAULTS.chat_rate  # bucket full again
        out = hub.receive(1, json.dumps({"type": "chat", "message": "calm"}), now)
        assert not closes(out)
