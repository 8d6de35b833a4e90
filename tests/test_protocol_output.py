"""protocol's outbound helpers: encode() writes the JSON the standard library would, and
timestamp() the text datetime would, only faster."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from wschat import protocol as p


def reference(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))  # 1970 to 2100
def test_timestamp_is_the_text_datetime_gives(now: float) -> None:
    assert p.timestamp(now) == reference(now)


def test_timestamp_rounds_into_the_next_second_like_datetime() -> None:
    for now in (1_764_097_279.9999996, 1_764_097_279.9999994, 1_764_097_280.0, 0.0005, 1e9 + 0.0015):
        assert p.timestamp(now) == reference(now)
    assert p.timestamp(1_764_097_279.9999996) == "2025-11-25T19:01:20.000+00:00"


def test_timestamps_in_the_same_second_and_across_seconds_each_get_their_own_time() -> None:
    assert p.timestamp(1_764_097_279.123) == "2025-11-25T19:01:19.123+00:00"
    assert p.timestamp(1_764_097_279.456) == "2025-11-25T19:01:19.456+00:00"
    assert p.timestamp(1_764_097_280.001) == "2025-11-25T19:01:20.001+00:00"
    assert p.timestamp(1_764_097_279.5) == "2025-11-25T19:01:19.500+00:00"


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)  # no lone surrogates
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=8,
)
frames = st.dictionaries(texts, values, max_size=6)


@given(frames)
def test_encode_is_the_compact_utf8_json_the_standard_library_writes(frame: dict[str, Any]) -> None:
    out = p.encode(frame)
    assert json.loads(out) == frame
    if not _has_float(frame):  # floats may be spelled differently (1e-07 / 1e-7), same value
        assert out == json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode()


def test_encode_keeps_non_ascii_text_as_utf8_and_escapes_control_characters() -> None:
    assert p.encode({"type": "chat", "message": 'é\n\u2028\x01"\\'}) == (
        b'{"type":"chat","message":"\xc3\xa9\\n\xe2\x80\xa8\\u0001\\"\\\\"}'
    )


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False
