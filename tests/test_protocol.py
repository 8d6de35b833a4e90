"""wschat.protocol: decoding and validating inbound frames, building outbound ones."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from wschat import protocol as p


def err(text: str, limits: p.Limits | None = None) -> p.ProtocolError:
    with pytest.raises(p.ProtocolError) as info:
        p.decode(text, limits or p.Limits())
    return info.value


def test_seed_message_types_decode_with_seed_fields() -> None:
    assert p.decode('{"type":"set_username","username":"Alice"}') == p.SetUsername("Alice")
    assert p.decode('{"type":"chat","message":"hi"}') == p.Chat("hi", "general", None)
    assert p.decode('{"type":"get_users"}') == p.GetUsers("general")


def test_chat_ignores_a_username_in_the_payload() -> None:
    req = p.decode('{"type":"chat","message":"hi","username":"Mallory","timestamp":"x"}')
    assert req == p.Chat("hi")


def test_new_request_types_decode() -> None:
    assert p.decode('{"type":"chat","message":"m","room":"dev","client_msg_id":"a1"}') == p.Chat(
        "m", "dev", "a1"
    )
    assert p.decode('{"type":"private","to":"Bob","message":"psst"}') == p.Private("Bob", "psst")
    assert p.decode('{"type":"list_rooms"}') == p.ListRooms()
    assert p.decode('{"type":"join","room":"dev"}') == p.Join("dev")
    assert p.decode('{"type":"join","room":"dev","epoch":"e","seq":4}') == p.Join("dev", p.Position("e", 4))
    assert p.decode('{"type":"leave","room":"dev"}') == p.Leave("dev")
    assert p.decode('{"type":"fetch_history","room":"dev","before_seq":9}') == p.FetchHistory("dev", 9, 50)


def test_set_username_carries_rooms_resume_and_token() -> None:
    req = p.decode(
        json.dumps(
            {
                "type": "set_username",
                "username": "A",
                "rooms": ["dev"],
                "resume": {"general": {"epoch": "e1", "seq": 3}},
                "session_token": "t",
            }
        )
    )
    assert req == p.SetUsername("A", ("dev",), {"general": p.Position("e1", 3)}, "t")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "bad_json"),
        ("", "bad_json"),
        ('{"type":"chat","message":NaN}', "bad_json"),
        ("[1,2]", "bad_frame"),
        ('"chat"', "bad_frame"),
        ("{}", "bad_frame"),
        ('{"type":5}', "bad_frame"),
        ('{"type":"dance"}', "unknown_type"),
        ('{"type":"chat"}', "bad_field"),
        ('{"type":"chat","message":5}', "bad_field"),
        ('{"type":"chat","message":"   "}', "bad_field"),
        ('{"type":"chat","message":"\\ud800"}', "bad_json"),
        ('{"type":"chat","message":"x","room":["general"]}', "bad_field"),
        ('{"type":"chat","message":"x","client_msg_id":""}', "bad_field"),
        ('{"type":"set_username"}', "bad_field"),
        ('{"type":"set_username","username":null}', "bad_field"),
        ('{"type":"set_username","username":"a","rooms":"general"}', "bad_field"),
        ('{"type":"set_username","username":"a","resume":{"g":5}}', "bad_field"),
        ('{"type":"fetch_history","room":"g","before_seq":-1}', "bad_field"),
        ('{"type":"fetch_history","room":"g","before_seq":true}', "bad_field"),
        ('{"type":"fetch_history","room":"g","before_seq":5,"limit":101}', "bad_field"),
        ('{"type":"private","message":"x"}', "bad_field"),
    ],
)
def test_bad_frames_raise_a_protocol_error_with_its_code(text: str, code: str) -> None:
    assert err(text).code == code


def test_deep_nesting_is_bad_json_not_a_crash() -> None:
    assert err("[" * 100_000 + "]" * 100_000).code == "bad_json"
    assert err('{"type":"chat","message":' + "[" * 50_000).code == "bad_json"


def test_huge_numbers_are_refused_cleanly() -> None:
    assert err('{"type":"fetch_history","room":"g","before_seq":' + "9" * 5000 + "}").code == "bad_json"
    assert err('{"type":"fetch_history","room":"g","before_seq":1e999}').code == "bad_json"  # no double
    assert err('{"type":"fetch_history","room":"g","before_seq":1e300}').code == "bad_field"  # not an int


def test_too_long_message_names_the_limit_and_keeps_the_client_msg_id() -> None:
    e = err('{"type":"chat","message":"' + "x" * 11 + '","client_msg_id":"m1"}', p.Limits(10))
    assert e.code == "too_long"
    assert "10" in str(e)
    assert e.client_msg_id == "m1"


def test_unknown_type_is_echoed_shortened() -> None:
    e = err(json.dumps({"type": "x" * 500}))
    assert e.code == "unknown_type"
    assert len(str(e)) < 120


def test_encode_is_compact_utf8() -> None:
    assert p.encode({"type": "chat", "message": "héllo"}) == '{"type":"chat","message":"héllo"}'.encode()


def test_timestamp_is_iso8601_utc_with_milliseconds() -> None:
    ts = p.timestamp(1_700_000_000.5)
    assert ts == "2023-11-14T22:13:20.500+00:00"
    assert datetime.fromisoformat(ts).utcoffset().total_seconds() == 0
