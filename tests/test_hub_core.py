"""wschat.hub.core: the Hub's entry points: rate limits, floods, bad frames (no sockets)."""

from __future__ import annotations

import pytest
from hubharness import Harness, only


def test_rate_limit_refuses_then_closes_a_flooder() -> None:
    h = Harness(chat_rate=5, chat_burst=20, flood_strikes=10)
    h.login(1, "Alice")
    h.take(1)
    for i in range(100):
        h.chat(1, f"m{i}", client_msg_id=f"id{i}")
    frames = h.take(1)
    assert len(only(frames, "chat")) == 20
    errors = only(frames, "error")
    # flood_strikes refusals are all answered; the one after them closes (PROTOCOL.md)
    assert len(errors) == 10 and all(e["code"] == "rate_limited" for e in errors)
    assert errors[0]["client_msg_id"] == "id20" and errors[0]["retry_after"] > 0
    assert h.closed[1][0] == 1008


def test_a_client_that_slows_down_is_forgiven() -> None:
    h = Harness(chat_rate=5, chat_burst=20, flood_strikes=3)
    h.login(1, "Alice")
    for _ in range(3):
        for i in range(22):  # two over the burst each round
            h.chat(1, f"m{i}")
        h.advance(10)
    assert h.closed == {}


def test_garbage_frames_count_against_the_control_limit() -> None:
    h = Harness(control_rate=1, control_burst=5, flood_strikes=3)
    h.connect(1)
    for _ in range(20):
        h.send(1, "{garbage")
    assert h.closed[1][0] == 1008


def test_binary_frames_get_an_error() -> None:
    h = Harness()
    h.connect(1)
    h.run(h.hub.binary(1, b"\x00not an upload", h.now))
    assert h.take(1)[0]["code"] == "binary_unsupported"


def test_too_long_message_is_refused_with_too_long() -> None:
    h = Harness(max_message_chars=10)
    h.login(1, "Alice")
    h.chat(1, "x" * 11)
    assert h.take(1)[0]["code"] == "too_long"


def test_frames_after_a_hub_close_are_ignored() -> None:
    h = Harness()
    token = h.login(1, "Alice")[0]["session_token"]
    h.login(2, "Alice", session_token=token)
    h.chat(1, "zombie")
    assert h.take(1) == []


def test_a_wall_clock_step_back_does_not_make_an_honest_client_a_flooder() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.take(1)
    h.advance(-3600)  # NTP corrects the clock by an hour
    for _ in range(60):
        h.chat(1, "steady")
        h.advance(1)
    frames = h.take(1)
    assert len(only(frames, "chat")) == 60 and not only(frames, "error")
    assert h.closed == {}


def test_a_request_kind_without_a_handler_is_a_bug_not_some_other_answer() -> None:
    h = Harness()
    h.login(1, "Alice")

    class Unhandled:  # a request kind the protocol decodes but no handler was written for
        pass

    with pytest.raises(LookupError, match="no handler for Unhandled"):
        h.hub.handle(h.hub.sessions[1], Unhandled(), h.now)  # type: ignore[arg-type]
