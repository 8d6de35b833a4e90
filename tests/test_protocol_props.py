"""Property tests of protocol.decode: every input gives a request or a ProtocolError, nothing else."""

from __future__ import annotations

import json
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wschat import protocol as p

REQUESTS = typing.get_args(p.Request)
TYPES = ["set_username", "chat", "private", "get_users", "list_rooms", "join", "leave", "fetch_history"]
FIELDS = [
    "type", "username", "message", "room", "rooms", "resume", "session_token", "client_msg_id",
    "to", "epoch", "seq", "before_seq", "limit",
]  # fmt: skip
SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(SETTINGS, max_examples=300)  # generated JSON trees cost more to make than to decode


def decodes_cleanly(text: str) -> p.Request | p.ProtocolError:
    try:
        req = p.decode(text)
    except p.ProtocolError as exc:
        assert exc.code in {"bad_json", "bad_frame", "unknown_type", "bad_field", "too_long"}, exc.code
        assert str(exc)
        return exc
    assert isinstance(req, REQUESTS)
    return req


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
frames = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | st.text(max_size=12)},
    optional={f: json_values for f in FIELDS[1:]},
)


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_decodes_to_a_request_or_a_protocol_error(text: str) -> None:
    decodes_cleanly(text)


@SLOW
@given(frames)
def test_any_json_object_with_known_fields_decodes_cleanly(obj: dict) -> None:
    decodes_cleanly(json.dumps(obj))


@SLOW
@given(json_values)
def test_any_json_value_decodes_cleanly(value: object) -> None:
    decodes_cleanly(json.dumps(value))


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_seen_as_text_decode_cleanly(data: bytes) -> None:
    decodes_cleanly(data.decode("utf-8", "surrogateescape"))  # lone surrogates included


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        '{"type":"chat","message":' + "[" * 100_000 + "]" * 100_000 + "}",
        "[" * 100_000,  # deep and truncated
    ],
)
def test_100000_deep_nesting_is_a_bad_json_error(text: str) -> None:
    err = decodes_cleanly(text)
    assert isinstance(err, p.ProtocolError) and err.code == "bad_json"


@pytest.mark.parametrize(
    "number",
    ["1" + "0" * 5000, "-" + "9" * 5000, "1e400", "-1e400", "1" + "0" * 5000 + ".5", "123456789" * 500],
)
@pytest.mark.parametrize("field", ["before_seq", "limit", "room"])
def test_huge_numbers_are_refused_in_plain_words(number: str, field: str) -> None:
    text = '{"type":"fetch_history","room":"general","before_seq":5,"epoch":"e","seq":1,'
    text += f'"{field}":{number}}}'
    err = decodes_cleanly(text)
    assert isinstance(err, p.ProtocolError)
    assert err.code in ("bad_json", "bad_field")
    assert len(str(err)) < 300  # the number is not echoed back


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"chat","message":"\\ud800"}',
        '{"type":"chat","message":"ok","client_msg_id":"\\udfff"}',
        '{"type":"set_username","username":"A\\ud800"}',
        '{"type":"join","room":"\\ud83d"}',
        '{"type":"private","to":"\\udc00","message":"hi"}',
        '{"type":"\\ud800"}',
        '{"type":"set_username","username":"Bob","rooms":["\\ud800"]}',
        '{"type":"set_username","username":"Bob","resume":{"\\udfff":{"epoch":"e","seq":1}}}',
    ],
)
def test_lone_surrogates_anywhere_are_refused(text: str) -> None:
    err = decodes_cleanly(text)
    assert isinstance(err, p.ProtocolError) and err.code == "bad_json"


def test_escaped_surrogate_pairs_are_fine() -> None:
    assert p.decode('{"type":"chat","message":"\\ud83d\\ude00"}') == p.Chat("\U0001f600")


def test_nan_and_infinity_literals_are_not_json() -> None:
    for text in ('{"type":"chat","message":NaN}', '{"type":"join","room":"g","seq":-Infinity}'):
        err = decodes_cleanly(text)
        assert isinstance(err, p.ProtocolError) and err.code == "bad_json"
