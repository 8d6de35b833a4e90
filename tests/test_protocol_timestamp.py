"""protocol.timestamp(): ISO 8601 UTC with milliseconds, exactly as datetime formats it."""

from __future__ import annotations

from datetime import UTC, datetime

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
