"""QR codes of the web client's address (`segno`): in the terminal, with half-block characters
that fit 40 columns, and as SVG for the printable `/join` page. NO I/O.

In the terminal each character cell holds two modules, one above the other (`▀`, `▄`, `█` or a
space), so the code is as tall as it is wide on a usual terminal font. Dark modules are drawn
with the ink; with colour the code is drawn black on white whatever the terminal's own colours,
because many phone cameras read only dark-on-light codes.
"""

from __future__ import annotations

import segno

MAX_COLUMNS = 40  # the widest a terminal code may be, quiet zone included
BORDER = 2  # quiet zone in modules: less than the standard 4, which a terminal's margin makes up
BLACK_ON_WHITE = "\x1b[30;107m"
RESET = "\x1b[0m"
_CELLS = {(0, 0): " ", (1, 0): "▀", (0, 1): "▄", (1, 1): "█"}


def make(url: str) -> segno.QRCode:
    """The code for `url`: the smallest QR code (not micro) at the best error correction that fits."""
    return segno.make(url, micro=False, boost_error=True)


def modules(code: segno.QRCode, border: int = BORDER) -> list[list[int]]:
    """The code's modules with a quiet zone: 1 dark, 0 light, row by row."""
    size = len(code.matrix)
    blank = [0] * (size + 2 * border)
    rows = [list(blank) for _ in range(border)]
    rows += [[0] * border + [1 if m else 0 for m in row] + [0] * border for row in code.matrix]
    rows += [list(blank) for _ in range(border)]
    return rows


def half_blocks(rows: list[list[int]]) -> list[str]:
    """Two module rows per line of text (an odd last row is paired with a light one)."""
    lines = []
    for top in range(0, len(rows), 2):
        upper = rows[top]
        lower = rows[top + 1] if top + 1 < len(rows) else [0] * len(upper)
        lines.append("".join(_CELLS[(a, b)] for a, b in zip(upper, lower, strict=True)))
    return lines


def terminal(url: str, *, color: bool) -> list[str]:
    """The code as lines of text for the banner; [] when it cannot fit `MAX_COLUMNS` columns."""
    rows = modules(make(url))
    if len(rows[0]) > MAX_COLUMNS:
        return []
    lines = half_blocks(rows)
    return [f"{BLACK_ON_WHITE}{line}{RESET}" for line in lines] if color else lines


def read_half_blocks(lines: list[str]) -> list[list[int]]:
    """The modules back from `half_blocks`' text (what a test compares with segno's matrix)."""
    cells = {v: k for k, v in _CELLS.items()}
    rows: list[list[int]] = []
    for line in lines:
        pairs = [cells[ch] for ch in line]
        rows += [[a for a, _ in pairs], [b for _, b in pairs]]
    return rows


def svg(url: str, scale: int = 8) -> str:
    """The code as an inline `<svg>` element (dark on light, the standard 4-module quiet zone),
    with a viewBox and no fixed size, so the page's style sizes it for the screen or the paper."""
    return make(url).svg_inline(scale=scale, border=4, dark="#000", light="#fff", title=url, omitsize=True)
