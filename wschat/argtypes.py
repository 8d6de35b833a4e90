"""The server's option value types: what argparse calls on each option's text. NO I/O.

`port_number`, `count(low)`, `amount(low)` and `seconds(zero=...)` turn the text into a value or
refuse it with `argparse.ArgumentTypeError`, whose sentence argparse prints before exiting with
status 2 (`--port 99999`, `--rate -1`, `CHAT_PORT=abc`), never a traceback from deep inside the
server. `wschat.cli` holds the option table that uses them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

MAX_COUNT = 1 << 40  # beyond any sensible size or count, and far from where numbers overflow
MAX_SECONDS = 7 * 24 * 3600.0


def port_number(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a port number; use 0 to 65535 (0 picks a free one)"
        )
    return port


def count(low: int) -> Callable[[str], int]:
    """A whole number from `low` up."""

    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            n = low - 1
        if not low <= n <= MAX_COUNT:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least {low}")
        return n

    return parse


def _real(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        return math.nan
    return x


def amount(low: float = 0.0) -> Callable[[str], float]:
    """A number above 0 (and at least `low` when that is more)."""

    def parse(value: str) -> float:
        x = _real(value)
        if not (x > 0 and x >= low and x <= MAX_COUNT):
            least = f"at least {low:g}" if low else "above 0"
            raise argparse.ArgumentTypeError(f"{value!r} is not a number {least}")
        return x

    return parse


def seconds(*, zero: bool = False) -> Callable[[str], float]:
    """A number of seconds, above 0 (or 0 too when `zero`), at most a week."""

    def parse(value: str) -> float:
        x = _real(value)
        if not ((x > 0 or (zero and x == 0)) and x <= MAX_SECONDS):
            least = "0 or more" if zero else "above 0"
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a number of seconds {least} (and at most a week)"
            )
        return x

    return parse
